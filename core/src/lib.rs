//! # pyrsia-core
//!
//! The sans-IO heart of Pyrsia. Everything in this crate is a pure function of its inputs:
//! it never reads a clock, an operating-system RNG, a socket or a file. Time arrives as
//! [`time::Instant`] values, randomness as seeds for [`rng::Rng`], and bytes as slices the
//! caller owns. Runtimes (`pyrsia-std`, `pyrsia-embedded`) turn the core's answers into IO.
//!
//! The crate is `no_std`. Without features it keeps what a microcontroller needs: digests,
//! references, the registry router, wire frames and signatures. `alloc` adds manifest parsing
//! and owned envelopes; `std` adds `std::error::Error` integration through `core::error`.
//!
//! ## A request through the core
//!
//! ```
//! use pyrsia_core::registry::{route, Method, Route};
//!
//! // The HTTP frontend hands the raw request line parts to the router ...
//! let request = route(Method::Get, "/v2/alpine/manifests/3.20", "ns=docker.io").unwrap();
//! // ... and gets back a validated, typed request, or an OCI error to send as JSON.
//! match request {
//!     Route::Manifest { name, reference, registry, .. } => {
//!         assert_eq!(name.as_str(), "alpine");
//!         assert_eq!(reference.to_string(), "3.20");
//!         assert_eq!(registry.unwrap().as_str(), "docker.io");
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! let err = route(Method::Get, "/v2/../etc/manifests/x", "").unwrap_err();
//! assert_eq!(err.status(), 400);
//! assert_eq!(err.code().as_str(), "NAME_INVALID");
//! ```
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod bandwidth;
#[cfg(feature = "alloc")]
pub mod consensus;
pub mod digest;
pub mod edge;
pub mod gossip_score;
pub mod identity;
pub mod light;
#[cfg(feature = "alloc")]
pub mod manifest;
pub mod media_type;
pub mod members;
pub mod package;
pub mod pieces;
pub mod rate;
pub mod reach;
#[cfg(feature = "alloc")]
pub mod redial;
pub mod reference;
pub mod registry;
pub mod rendezvous;
#[cfg(feature = "alloc")]
pub mod restarts;
pub mod rng;
#[cfg(feature = "alloc")]
pub mod source_search;
#[cfg(feature = "alloc")]
pub mod strikes;
pub mod time;
pub mod tlog;
pub mod wire;

pub mod percent;
pub mod piece_link;
#[cfg(feature = "alloc")]
pub mod piece_schedule;
