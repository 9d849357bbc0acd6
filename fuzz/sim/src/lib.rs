//! # pyrsia-sim
//!
//! The deterministic simulation harness. One seed derives every random choice, so a failing
//! run is replayed exactly from its seed. Today it holds the seeded [`net::SimNet`] that will
//! carry messages between simulated nodes; the consensus issue adds the nodes, the fault
//! schedule and the invariant checks on top of it.

pub mod net;
pub mod pieces;
