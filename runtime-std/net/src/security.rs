//! How a TCP connection is secured: TLS 1.3 (libp2p-tls) offered first, noise second.
//!
//! Both ends of a libp2p connection pick the first security protocol the dialler offers that
//! the listener speaks (multistream-select), so two nodes of this build use TLS and a node of
//! an earlier build, which speaks only noise, still connects. TLS is offered first for its
//! cipher: AES-GCM, which this build's libp2p-tls prefers where the CPU does AES in hardware
//! (`third_party/libp2p-tls`), costs a fraction of noise's ChaCha20-Poly1305 per byte, and on
//! a blob transfer encryption and decryption were the largest CPU costs after hashing
//! (BENCHMARKS.md, "TLS for TCP connections").

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::future::{BoxFuture, Either};
use futures::{FutureExt, TryFutureExt};
use libp2p::PeerId;
use libp2p::core::upgrade::{
    InboundConnectionUpgrade, OutboundConnectionUpgrade, SelectUpgrade, UpgradeInfo,
};

/// How many TCP connections each protocol has secured since the node started (both ways):
/// shared by every [`TlsOrNoise`] of a node, read for `/peers`.
#[derive(Clone, Default)]
pub(crate) struct SecuredCounts {
    tls: Arc<AtomicU64>,
    noise: Arc<AtomicU64>,
}

impl SecuredCounts {
    /// The counts now, as `/peers` shows them.
    pub(crate) fn snapshot(&self) -> pyrsia_std::network::SecuredConnections {
        pyrsia_std::network::SecuredConnections {
            tls: self.tls.load(Ordering::Relaxed),
            noise: self.noise.load(Ordering::Relaxed),
        }
    }

    /// Counts one connection secured by whichever protocol `stream` says.
    fn count<A, B>(&self, stream: &Either<A, B>) {
        let counter = match stream {
            Either::Left(_) => &self.tls,
            Either::Right(_) => &self.noise,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The security upgrade of TCP connections: [`libp2p::tls`] first, [`libp2p::noise`] second.
/// Pass it to `authenticate`; its output is the peer's id and the secured stream of
/// whichever protocol the two ends agreed on, counted in its [`SecuredCounts`].
#[derive(Clone)]
pub(crate) struct TlsOrNoise {
    select: Select,
    counts: SecuredCounts,
}

/// TLS offered first, noise second.
type Select = SelectUpgrade<libp2p::tls::Config, libp2p::noise::Config>;

impl TlsOrNoise {
    /// Both upgrades for this node's identity `key`, counting into `counts`.
    pub(crate) fn new(
        key: &libp2p::identity::Keypair,
        counts: SecuredCounts,
    ) -> Result<TlsOrNoise, Box<dyn std::error::Error + Send + Sync>> {
        Ok(TlsOrNoise {
            select: SelectUpgrade::new(
                libp2p::tls::Config::new(key)?,
                libp2p::noise::Config::new(key)?,
            ),
            counts,
        })
    }
}

impl UpgradeInfo for TlsOrNoise {
    type Info = <Select as UpgradeInfo>::Info;
    type InfoIter = <Select as UpgradeInfo>::InfoIter;

    fn protocol_info(&self) -> Self::InfoIter {
        self.select.protocol_info()
    }
}

/// The peer and the secured stream of whichever protocol was agreed on.
type Secured<C> = (PeerId, Either<TlsStream<C>, NoiseStream<C>>);

impl<C> InboundConnectionUpgrade<C> for TlsOrNoise
where
    C: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
{
    type Output = Secured<C>;
    type Error = <Select as InboundConnectionUpgrade<C>>::Error;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_inbound(self, socket: C, info: Self::Info) -> Self::Future {
        counted(self.counts, self.select.upgrade_inbound(socket, info))
    }
}

impl<C> OutboundConnectionUpgrade<C> for TlsOrNoise
where
    C: futures::AsyncRead + futures::AsyncWrite + Unpin + Send + 'static,
{
    type Output = Secured<C>;
    type Error = <Select as OutboundConnectionUpgrade<C>>::Error;
    type Future = BoxFuture<'static, Result<Self::Output, Self::Error>>;

    fn upgrade_outbound(self, socket: C, info: Self::Info) -> Self::Future {
        counted(self.counts, self.select.upgrade_outbound(socket, info))
    }
}

/// `upgrade` (TLS's or noise's, whichever was agreed) with its stream counted in `counts`
/// when it succeeds, as one peer id and either stream.
fn counted<C, E>(
    counts: SecuredCounts,
    upgrade: impl std::future::Future<
        Output = Result<Either<(PeerId, TlsStream<C>), (PeerId, NoiseStream<C>)>, E>,
    > + Send
    + 'static,
) -> BoxFuture<'static, Result<Secured<C>, E>> {
    upgrade
        .map_ok(move |secured| {
            counts.count(&secured);
            secured.factor_first()
        })
        .boxed()
}

/// A connection secured by TLS.
type TlsStream<C> = libp2p::tls::TlsStream<C>;
/// A connection secured by noise.
type NoiseStream<C> = libp2p::noise::Output<C>;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use libp2p::swarm::{SwarmEvent, dummy};
    use libp2p::{Multiaddr, Swarm, identity};

    use super::*;

    /// A swarm securing TCP as nodes do, counting into `counts`.
    fn node_swarm(counts: &SecuredCounts) -> Swarm<dummy::Behaviour> {
        let counts = counts.clone();
        libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_other_transport(move |key| crate::transport::tcp(key, counts.clone()))
            .expect("transport")
            .with_behaviour(|_| dummy::Behaviour)
            .expect("behaviour")
            .build()
    }

    /// A swarm of a build before TLS: TCP secured by noise only.
    fn noise_only_swarm() -> Swarm<dummy::Behaviour> {
        libp2p::SwarmBuilder::with_existing_identity(identity::Keypair::generate_ed25519())
            .with_tokio()
            .with_tcp(
                libp2p::tcp::Config::default(),
                libp2p::noise::Config::new,
                libp2p::yamux::Config::default,
            )
            .expect("transport")
            .with_behaviour(|_| dummy::Behaviour)
            .expect("behaviour")
            .build()
    }

    /// `dialler` dials `listener` on 127.0.0.1 and both are driven until each has the
    /// connection.
    async fn connect(
        dialler: &mut Swarm<dummy::Behaviour>,
        listener: &mut Swarm<dummy::Behaviour>,
    ) {
        listener
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
            .unwrap();
        let address: Multiaddr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = listener.select_next_some().await {
                break address;
            }
        };
        dialler.dial(address).unwrap();
        let deadline = smol::Timer::after(Duration::from_secs(10));
        let connected = async {
            let (mut dialled, mut accepted) = (false, false);
            while !(dialled && accepted) {
                futures::select! {
                    event = dialler.select_next_some() => match event {
                        SwarmEvent::ConnectionEstablished { .. } => dialled = true,
                        SwarmEvent::OutgoingConnectionError { error, .. } => panic!("dial: {error}"),
                        _ => {}
                    },
                    event = listener.select_next_some() => match event {
                        SwarmEvent::ConnectionEstablished { .. } => accepted = true,
                        SwarmEvent::IncomingConnectionError { error, .. } => panic!("accept: {error}"),
                        _ => {}
                    },
                }
            }
        };
        futures::pin_mut!(connected);
        let connected = futures::future::select(connected, deadline).await;
        assert!(
            matches!(connected, Either::Left(_)),
            "no connection in 10 s"
        );
    }

    #[test]
    fn two_nodes_agree_on_tls_and_a_node_reaches_a_noise_only_peer_over_noise() {
        crate::compat::block_on(async {
            let (dialling, listening) = (SecuredCounts::default(), SecuredCounts::default());
            connect(&mut node_swarm(&dialling), &mut node_swarm(&listening)).await;
            let tls = pyrsia_std::network::SecuredConnections { tls: 1, noise: 0 };
            assert_eq!(dialling.snapshot(), tls);
            assert_eq!(listening.snapshot(), tls);

            // An earlier build's node, dialled and dialling: refuses TLS, agrees on noise.
            let counts = SecuredCounts::default();
            let mut node = node_swarm(&counts);
            connect(&mut node, &mut noise_only_swarm()).await;
            connect(&mut noise_only_swarm(), &mut node).await;
            let noise = pyrsia_std::network::SecuredConnections { tls: 0, noise: 2 };
            assert_eq!(counts.snapshot(), noise);
        });
    }
}
