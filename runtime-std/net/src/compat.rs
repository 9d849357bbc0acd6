//! The one place where tokio meets smol. libp2p 0.57 ships only tokio-based transports (TCP,
//! mDNS); `async-compat` runs them under smol by entering a tokio runtime context (its own,
//! single background thread) whenever a wrapped future is polled. Everything else in this
//! crate is executor-agnostic futures code driven by smol.

use std::future::Future;

/// Runs `future` to completion on the current thread with smol, with tokio's reactor
/// available to the libp2p transports inside it.
pub(crate) fn block_on<F: Future>(future: F) -> F::Output {
    smol::block_on(async_compat::Compat::new(future))
}
