//! What one peer may cost this node on the request-response protocol. The rules (a request
//! rate per peer, when the excess costs a strike) are `pyrsia_core::rate`'s; this module
//! holds the runtime's side: the bound on answers prepared at once off the event loop.
//! Connection counts are bounded by the swarm's `connection_limits` behaviour
//! (`behaviour.rs`).

/// Piece and entry answers prepared at once (each reads the disk off the event loop); beyond,
/// a piece request is answered `Missing` at once and an entries request dropped.
pub(crate) const MAX_ANSWERS_IN_PREPARATION: usize = 64;
