//! The verified-build consensus (PROTOCOL.md §2), sans-IO: who builds a requested artifact
//! ([`selection`]) and when their attestations commit it, dispute it or leave it unverifiable
//! ([`build`]). Nothing here reads a clock or a socket: time arrives as [`crate::time::Instant`]
//! values and what to do comes back as outputs the runtime carries out.
//!
//! Safety never depends on the selection's randomness: a `Commit` needs f+1 valid, distinct,
//! matching attestations bound to the request, whoever was asked. [`ordering`] decides the
//! log's batches (PROTOCOL.md §3) with Tendermint; [`wire`] is what members send each other
//! and the batches they order; [`evidence`] is what a `Dispute` or `Unverifiable` must prove;
//! [`limits`] holds the time rules and per-member budgets, [`mempool`] the entries waiting;
//! [`node`] is the member node that puts them together, which daemons and the simulation run.

pub mod build;
pub mod evidence;
pub mod limits;
pub mod mempool;
#[cfg(feature = "alloc")]
pub mod node;
pub mod ordering;
pub mod selection;
pub mod wire;

pub use build::{AttestationError, BuildOutput, BuildRound, RoundState};
pub use selection::{DEFAULT_SLACK, builder_order, selection_seed};
