//! # pyrsia-std
//!
//! The server runtime. It owns every source of IO the core refuses to touch: the clock, the
//! operating system's randomness, disks and sockets: the clocks, the content store, the
//! upstream client, the registry mirror and the node's copy of the transparency log.

pub mod activity;
pub mod buffers;
pub mod clock;
pub mod consensus;
pub mod edge;
pub mod log;
pub mod maven;
pub mod metrics;
pub mod mirror;
pub mod network;
pub mod npm;
pub mod operator;
pub mod packages;
pub mod peers;
pub mod piece_bytes;
pub mod pypi;
pub mod rebuild;
mod reopen;
pub mod store;
pub mod ttl_cache;
pub mod upstream;
