//! A libp2p behaviour that refuses an inbound connection when its IP address already holds
//! [`pyrsia_core::rate::CONNECTIONS_PER_ADDRESS`] (the rule is the core's
//! `ConnectionsPerAddress`; this only counts connections as the swarm reports them).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, ListenFailure, NetworkBehaviour,
    THandler, THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};
use pyrsia_core::rate::ConnectionsPerAddress;

/// Inbound connections per remote IP address.
pub(crate) struct PerAddressLimit {
    open: ConnectionsPerAddress<IpAddr>,
    by_connection: HashMap<ConnectionId, IpAddr>,
}

impl PerAddressLimit {
    /// At most `max` inbound connections per IP address.
    pub(crate) fn new(max: u32) -> Self {
        PerAddressLimit {
            open: ConnectionsPerAddress::new(max),
            by_connection: HashMap::new(),
        }
    }

    fn release(&mut self, connection: &ConnectionId) {
        if let Some(ip) = self.by_connection.remove(connection) {
            self.open.release(&ip);
        }
    }
}

/// The IP address a multiaddr starts with, if any.
fn ip_of(address: &Multiaddr) -> Option<IpAddr> {
    match address.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

impl NetworkBehaviour for PerAddressLimit {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if let Some(ip) = ip_of(remote) {
            if !self.open.admit(ip) {
                tracing::debug!(%ip, "refused a connection: too many from this address");
                return Err(ConnectionDenied::new(std::io::Error::other(
                    "too many connections from this address",
                )));
            }
            self.by_connection.insert(connection, ip);
        }
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
            FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) => {
                self.release(&connection_id);
            }
            // Counted here, then refused by another behaviour: never established.
            FromSwarm::ListenFailure(ListenFailure { connection_id, .. }) => {
                self.release(&connection_id);
            }
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
