//! # pyrsia-sim
//!
//! The deterministic simulation harness. One seed derives every random choice, so a failing
//! run is replayed exactly from its seed. [`net::SimNet`] carries messages between simulated
//! nodes; [`builds`] runs the verified-build rounds of `core::consensus` under faults and
//! byzantine members, checking invariants after every step; [`ordering`] runs Tendermint
//! ordering the same way; [`clients`] has light clients follow the final checkpoints while
//! an adversary feeds them forged, older and frozen ones; [`pieces`] models piece
//! scheduling at scale; [`claims`] runs the source search and the claimants' rule (one
//! upstream fetch per network) at scale.

pub mod builds;
pub mod claims;
pub mod clients;
pub mod members;
pub mod net;
pub mod ordering;
pub mod pieces;
