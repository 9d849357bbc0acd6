//! # pyrsia-embedded
//!
//! The edge cache for microcontrollers: `no_std`, no allocator, every buffer sized by a named
//! constant. It trusts nothing but the genesis entry it was provisioned with:
//!
//! 1. [`EdgeCache::refresh`] asks the parent (a full node or another edge cache, over any
//!    `embedded-io` stream: a UART, a socket) for its latest checkpoint and checks it with
//!    [`pyrsia_core::light`]: membership epochs, the quorum q = ⌈(n+f+1)/2⌉, the link to the trusted tree,
//!    freshness. The trusted checkpoint is saved in flash before it is used, so a reset never
//!    rolls trust back.
//! 2. [`EdgeCache::fetch`] gets the `Commit` listing a digest with its inclusion proof, then
//!    every piece with its proof in the committed piece root, streaming each into flash while
//!    hashing it; a piece is sealed only if it matches.
//! 3. [`EdgeCache::serve`] answers LAN peers with the same protocol ([`pyrsia_core::edge`]),
//!    from flash, pulling through the parent on a miss.
//!
//! The flash layout ([`store`]) survives power loss at any write or erase and spreads wear by
//! writing as a circular log. `defmt` formatting of the public types is behind the `defmt`
//! feature.
#![no_std]
#![forbid(unsafe_code)]

pub mod cache;
pub mod clock;
pub mod error;
pub mod link;
pub mod ram_flash;
pub mod serve;
pub mod store;

pub use cache::{EdgeCache, Scratch};
pub use clock::{Clock, TickClock};
pub use error::EdgeError;
pub use link::{Link, LinkBuffers, LinkError, ParentBuffers, PeerBuffers};
pub use ram_flash::RamFlash;
pub use serve::Served;
pub use store::Store;
