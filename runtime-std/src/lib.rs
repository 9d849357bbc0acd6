//! # pyrsia-std
//!
//! The server runtime. It owns every source of IO the core refuses to touch: the clock, the
//! operating system's randomness, disks and sockets. Today it provides the clock that turns
//! wall time into the core's [`pyrsia_core::time::Instant`]; the store, the upstream client
//! and the libp2p network join it with the registry-mirror and P2P issues.

pub mod clock;
pub mod metrics;
pub mod mirror;
pub mod store;
pub mod upstream;
