//! A libp2p behaviour that holds back dials to a peer that refused this node lately (core's
//! [`pyrsia_core::redial`] decides what a refusal is and how long to wait; this only tells it
//! when connections open and close, and denies the dials it rules out, whoever asks for them:
//! Kademlia, log sync, piece requests or the bootstrap redial).

use std::collections::HashMap;
use std::convert::Infallible;
use std::task::{Context, Poll};
use std::time::Instant;

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::behaviour::ConnectionEstablished;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use pyrsia_core::redial::{Closed, DialBackoff};

/// Why a dial was held back (the error a denied dial carries).
#[derive(Debug)]
pub(crate) struct HeldBack {
    /// How long until the peer may be dialled again.
    pub(crate) wait: std::time::Duration,
}

impl std::fmt::Display for HeldBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the peer refused this node's last connection: not dialled for {:.1} s more",
            self.wait.as_secs_f64()
        )
    }
}

impl std::error::Error for HeldBack {}

/// See the module documentation.
pub(crate) struct RedialBackoff {
    backoff: DialBackoff<PeerId>,
    /// When each open connection was established.
    opened: HashMap<ConnectionId, Instant>,
    /// The core clock's zero.
    epoch: Instant,
}

impl RedialBackoff {
    pub(crate) fn new() -> Self {
        RedialBackoff {
            backoff: DialBackoff::default(),
            opened: HashMap::new(),
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> pyrsia_core::time::Instant {
        let micros = self.epoch.elapsed().as_micros();
        pyrsia_core::time::Instant::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    fn on_closed(&mut self, closed: &ConnectionClosed) {
        let Some(opened) = self.opened.remove(&closed.connection_id) else {
            return;
        };
        let lasted = opened.elapsed();
        let facts = Closed {
            lasted: pyrsia_core::time::Duration::from_micros(
                u64::try_from(lasted.as_micros()).unwrap_or(u64::MAX),
            ),
            by_remote: closed.cause.is_some(),
            others_open: closed.remaining_established > 0,
        };
        let now = self.now();
        if let Some(wait) = self.backoff.closed(&closed.peer_id, facts, now) {
            tracing::info!(
                peer = %closed.peer_id,
                refusals = self.backoff.refusals(&closed.peer_id),
                wait_ms = wait.as_millis(),
                "the peer closed the connection at once (at its connection limit?): not dialling it again for a while"
            );
        }
    }
}

impl NetworkBehaviour for RedialBackoff {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: Option<PeerId>,
        _: &[Multiaddr],
        _: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        let Some(peer) = peer else {
            return Ok(Vec::new());
        };
        match self.backoff.may_dial(&peer, self.now()) {
            Ok(()) => Ok(Vec::new()),
            Err(wait) => {
                let wait = std::time::Duration::from_micros(wait.as_micros());
                tracing::debug!(%peer, wait_ms = wait.as_millis(), "dial held back: the peer refused the last connection");
                Err(ConnectionDenied::new(HeldBack { wait }))
            }
        }
    }

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished { connection_id, .. }) => {
                self.opened.insert(connection_id, Instant::now());
            }
            FromSwarm::ConnectionClosed(closed) => self.on_closed(&closed),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

/// Whether a dial's error is this behaviour holding it back (not worth a warning).
pub(crate) fn is_held_back(error: &libp2p::swarm::DialError) -> bool {
    match error {
        libp2p::swarm::DialError::Denied { cause } => cause.downcast_ref::<HeldBack>().is_some(),
        _ => false,
    }
}
