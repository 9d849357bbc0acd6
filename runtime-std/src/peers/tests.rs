//! The piece scheduler against a fake network (peers that serve, stall, lie or lack the blob).

use std::collections::HashMap;
use std::sync::Mutex;

use super::*;
use pyrsia_core::tlog::leaf_hash;

#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    Serves,
    /// Sends the true hash list but flips a byte in every piece.
    CorruptPieces,
    /// Its copy rotted: list and pieces come from a blob with one flipped byte.
    Rotten,
    /// Claims the blob is twice its size (true list, true bytes otherwise).
    WrongTotal,
    Stalls,
    ShortPieces,
    Lacks,
    /// Still downloading: holds the first this many pieces, serves those, lacks the rest.
    Partial(u32),
    /// A relay: holds nothing and is no provider, but serves every piece when asked to
    /// bridge the blob.
    Bridges,
    /// Holds the blob but answers its first this many piece requests `Busy`.
    BusyFirst(u32),
    /// Holds the blob but answers every piece request that does not insist `Elsewhere`,
    /// naming this peer and one nobody knows; serves those that insist.
    SendsTo(&'static str),
    /// Says it holds the blob but answers every piece request `Elsewhere`, insisting or not,
    /// naming this peer.
    AlwaysElsewhere(&'static str),
}

struct FakeNetwork {
    blob: Vec<u8>,
    peers: Vec<(String, Behaviour)>,
    served: Mutex<HashMap<String, usize>>,
    penalised: Mutex<Vec<String>>,
    /// Peers reached only through a relay, with the relay.
    relayed: Vec<(String, String)>,
    /// `Busy` answers sent, by peer.
    busied: Mutex<HashMap<String, u32>>,
}

impl PeerNetwork for FakeNetwork {
    fn providers(&self, _: &Digest, _: Duration) -> Vec<String> {
        self.peers
            .iter()
            .filter(|(_, b)| *b != Behaviour::Bridges)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn path(&self, peer: &str) -> Path {
        match self.relayed.iter().find(|(id, _)| id == peer) {
            Some((_, relay)) => Path::Relayed(relay.clone()),
            None => Path::Direct,
        }
    }

    fn local_id(&self) -> String {
        "me".into()
    }

    fn live_peers(&self) -> Vec<String> {
        self.peers.iter().map(|(id, _)| id.clone()).collect()
    }

    fn request_piece(
        &self,
        peer: &str,
        request: PieceRequest,
        if_missing: IfMissing<'_>,
        tag: u64,
        reply: Sender<PieceReply>,
    ) {
        let mut behaviour = self.peers.iter().find(|(id, _)| id == peer).unwrap().1;
        if request.ask == Ask::Bytes && self.relayed.iter().any(|(id, _)| id == peer) {
            // The network refuses bytes over a circuit before anything is sent.
            let result = Err("reached only through a relay".to_string());
            let _ = reply.send(PieceReply { tag, result });
            return;
        }
        if behaviour == Behaviour::Bridges {
            behaviour = match (request.ask, if_missing) {
                (Ask::Bytes, IfMissing::Bridge { .. }) => Behaviour::Serves,
                _ => Behaviour::Lacks,
            };
        }
        if let Behaviour::BusyFirst(first) = behaviour {
            let mut busied = self.busied.lock().unwrap();
            let count = busied.entry(peer.to_string()).or_default();
            if request.ask == Ask::Bytes && *count < first {
                *count += 1;
                let _ = reply.send(PieceReply {
                    tag,
                    result: Ok(PieceAnswer::Busy),
                });
                return;
            }
            behaviour = Behaviour::Serves;
        }
        match behaviour {
            Behaviour::SendsTo(named) if request.ask == Ask::Bytes && !request.insist => {
                let ids = vec![named.to_string(), "nobody".to_string()];
                let _ = reply.send(PieceReply {
                    tag,
                    result: Ok(PieceAnswer::Elsewhere(ids)),
                });
                return;
            }
            Behaviour::AlwaysElsewhere(named) if request.ask == Ask::Bytes => {
                let _ = reply.send(PieceReply {
                    tag,
                    result: Ok(PieceAnswer::Elsewhere(vec![named.to_string()])),
                });
                return;
            }
            _ => {}
        }
        let mut blob = self.blob.clone();
        if behaviour == Behaviour::Rotten {
            blob[10] ^= 1;
        }
        if request.ask == Ask::Have {
            let result = match behaviour {
                Behaviour::Stalls => return,
                Behaviour::Lacks => Ok(PieceAnswer::Missing),
                Behaviour::Partial(pieces) => Ok(PieceAnswer::Have {
                    total: self.blob.len() as u64,
                    pieces,
                    load: 0,
                    ahead: Vec::new(),
                }),
                Behaviour::WrongTotal => Ok(PieceAnswer::Have {
                    total: 2 * self.blob.len() as u64,
                    pieces: u32::MAX,
                    load: 0,
                    ahead: Vec::new(),
                }),
                _ => Ok(PieceAnswer::Have {
                    total: self.blob.len() as u64,
                    pieces: u32::MAX,
                    load: 0,
                    ahead: Vec::new(),
                }),
            };
            let _ = reply.send(PieceReply { tag, result });
            return;
        }
        if request.ask == Ask::Hashes {
            let source = if behaviour == Behaviour::Rotten {
                &blob
            } else {
                &self.blob
            };
            let list = source.chunks(PIECE_LEN as usize).map(leaf_hash).collect();
            let _ = reply.send(PieceReply {
                tag,
                result: Ok(PieceAnswer::Hashes(list)),
            });
            return;
        }
        let start = request.offset as usize;
        let end = (start + request.len as usize).min(self.blob.len());
        let result = match behaviour {
            Behaviour::CorruptPieces => {
                let mut bytes = self.blob[start..end].to_vec();
                bytes[0] ^= 0xff;
                Ok(PieceAnswer::Data {
                    total: self.blob.len() as u64,
                    bytes: bytes.into(),
                })
            }
            Behaviour::WrongTotal => Ok(PieceAnswer::Data {
                total: 2 * self.blob.len() as u64,
                bytes: self.blob[start..end].to_vec().into(),
            }),
            Behaviour::Rotten => Ok(PieceAnswer::Data {
                total: blob.len() as u64,
                bytes: blob[start..end].to_vec().into(),
            }),
            Behaviour::Stalls => return,
            Behaviour::Lacks | Behaviour::Bridges => Ok(PieceAnswer::Missing),
            Behaviour::Partial(pieces) if end as u64 > u64::from(pieces) * u64::from(PIECE_LEN) => {
                Ok(PieceAnswer::Missing)
            }
            Behaviour::ShortPieces => Ok(PieceAnswer::Data {
                total: self.blob.len() as u64,
                bytes: self.blob[start..end - 1].to_vec().into(),
            }),
            Behaviour::Serves
            | Behaviour::Partial(_)
            | Behaviour::BusyFirst(_)
            | Behaviour::SendsTo(_)
            | Behaviour::AlwaysElsewhere(_) => {
                *self
                    .served
                    .lock()
                    .unwrap()
                    .entry(peer.to_string())
                    .or_default() += 1;
                Ok(PieceAnswer::Data {
                    total: self.blob.len() as u64,
                    bytes: self.blob[start..end].to_vec().into(),
                })
            }
        };
        let _ = reply.send(PieceReply { tag, result });
    }

    fn penalise(&self, peer: &str, _: &str) {
        self.penalised.lock().unwrap().push(peer.to_string());
    }
}

fn network(peers: &[(&str, Behaviour)], len: usize) -> Arc<FakeNetwork> {
    Arc::new(FakeNetwork {
        blob: (0..len).map(|i| (i * 7 % 251) as u8).collect(),
        peers: peers.iter().map(|(id, b)| (id.to_string(), *b)).collect(),
        served: Mutex::new(HashMap::new()),
        penalised: Mutex::new(Vec::new()),
        relayed: Vec::new(),
        busied: Mutex::new(HashMap::new()),
    })
}

fn fetch(net: &Arc<FakeNetwork>) -> io::Result<Vec<u8>> {
    let digest = Digest::sha256(&net.blob);
    let (total, mut fetcher) = PieceFetcher::open(net.clone(), digest, 0)
        .ok_or_else(|| io::Error::other("no providers"))?;
    assert_eq!(total, net.blob.len() as u64);
    let mut out = Vec::new();
    fetcher.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn pieces_come_from_several_peers_in_order() {
    let len = 10 * PIECE_LEN as usize + 12_345;
    let net = network(
        &[
            ("a", Behaviour::Serves),
            ("b", Behaviour::Serves),
            ("c", Behaviour::Serves),
        ],
        len,
    );
    assert_eq!(fetch(&net).unwrap(), net.blob);
    let served = net.served.lock().unwrap();
    assert_eq!(
        served.values().sum::<usize>(),
        11 + 1,
        "each piece fetched once, and one probe confirming the size"
    );
    assert_eq!(served.len(), 3, "every peer served some: {:?}", *served);
}

#[test]
fn liars_are_penalised_and_their_pieces_fetched_elsewhere() {
    let len = 4 * PIECE_LEN as usize;
    let net = network(
        &[
            ("liar", Behaviour::ShortPieces),
            ("lacks", Behaviour::Lacks),
            ("good", Behaviour::Serves),
        ],
        len,
    );
    assert_eq!(fetch(&net).unwrap(), net.blob);
    assert_eq!(*net.penalised.lock().unwrap(), vec!["liar".to_string()]);
}

#[test]
fn a_busy_peer_is_asked_again_later_not_blamed_and_its_pieces_go_elsewhere_meanwhile() {
    let len = 8 * PIECE_LEN as usize;
    // The only holder at first turns down the handshake twice: it is asked again after the
    // backoff. Then the fetch spreads over both; the busy one is never penalised.
    let net = network(
        &[
            ("busy", Behaviour::BusyFirst(4)),
            ("good", Behaviour::Serves),
        ],
        len,
    );
    assert_eq!(fetch(&net).unwrap(), net.blob);
    assert!(net.penalised.lock().unwrap().is_empty());
    assert_eq!(net.busied.lock().unwrap()["busy"], 4);
    let only = network(&[("busy", Behaviour::BusyFirst(3))], len);
    assert_eq!(
        fetch(&only).unwrap(),
        only.blob,
        "a lone busy holder still serves"
    );
    assert!(only.penalised.lock().unwrap().is_empty());
    assert!(
        only.served.lock().unwrap()["busy"] >= 8,
        "every piece came from it"
    );
}

#[test]
fn a_stalled_peer_costs_one_timeout() {
    let len = 3 * PIECE_LEN as usize;
    let net = network(
        &[("good", Behaviour::Serves), ("stalls", Behaviour::Stalls)],
        len,
    );
    let started = Instant::now();
    assert_eq!(fetch(&net).unwrap(), net.blob);
    assert!(
        started.elapsed() < PIECE_TIMEOUT * 2 + Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn no_usable_peer_means_no_fetcher_or_an_error() {
    let net = network(&[("lacks", Behaviour::Lacks)], 1000);
    assert!(PieceFetcher::open(net.clone(), Digest::sha256(&net.blob), 0).is_none());
    let none = network(&[], 1000);
    assert!(PieceFetcher::open(none.clone(), Digest::sha256(&none.blob), 0).is_none());
}

#[test]
fn a_holder_reached_only_through_a_relay_is_fetched_through_that_relay_as_a_bridge() {
    let len = 3 * PIECE_LEN as usize + 10;
    let mut net = network(
        &[("holder", Behaviour::Serves), ("relay", Behaviour::Bridges)],
        len,
    );
    Arc::get_mut(&mut net)
        .unwrap()
        .relayed
        .push(("holder".into(), "relay".into()));
    let digest = Digest::sha256(&net.blob);
    let hint = FetchHint {
        host: "registry.test".into(),
        repository: "library/large".into(),
    };
    let (total, mut fetcher) = PieceFetcher::find(net.clone(), digest, None, hint, 0, false)
        .found()
        .expect("the relay bridges the blob");
    assert_eq!(total, len as u64);
    let mut out = Vec::new();
    fetcher.read_to_end(&mut out).unwrap();
    assert_eq!(out, net.blob);
    let served = net.served.lock().unwrap();
    assert!(!served.contains_key("holder"), "{served:?}");
    assert!(served["relay"] >= 4, "{served:?}");
    assert!(net.penalised.lock().unwrap().is_empty());
    // Without the origin a lookup cannot ask a bridge: the holder is out of reach.
    drop(served);
    assert!(PieceFetcher::open(net.clone(), digest, 0).is_none());
}

#[test]
fn every_node_picks_the_same_upstream_fetcher() {
    let net = network(&[("a", Behaviour::Serves), ("b", Behaviour::Serves)], 10);
    let digest = Digest::sha256(b"blob");
    let chosen = upstream_fetcher(&*net, &digest);
    let expected =
        pyrsia_core::rendezvous::nearest(digest.as_bytes(), [&b"a"[..], &b"b"[..], &b"me"[..]])
            .unwrap();
    match chosen {
        Some(peer) => assert_eq!(peer.as_bytes(), expected),
        None => assert_eq!(expected, b"me"),
    }
}

fn fetch_checked(net: &Arc<FakeNetwork>) -> io::Result<Vec<u8>> {
    let digest = Digest::sha256(&net.blob);
    let leaves: Vec<Hash> = net.blob.chunks(PIECE_LEN as usize).map(leaf_hash).collect();
    let root = pyrsia_core::pieces::piece_root(&leaves);
    let (_, mut fetcher) = PieceFetcher::open_checked(net.clone(), digest, 0, Some(root))
        .ok_or_else(|| io::Error::other("no providers"))?;
    let mut out = Vec::new();
    fetcher.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn with_a_committed_piece_root_bad_pieces_cost_only_their_peer() {
    let len = 6 * PIECE_LEN as usize + 99;
    // The rotten peer comes first: its list is refused; the corrupting peer's list is true but
    // its pieces are not, and each is caught on arrival.
    let net = network(
        &[
            ("rotten", Behaviour::Rotten),
            ("corrupt", Behaviour::CorruptPieces),
            ("good", Behaviour::Serves),
        ],
        len,
    );
    assert_eq!(fetch_checked(&net).unwrap(), net.blob);
    let mut penalised = net.penalised.lock().unwrap().clone();
    penalised.sort();
    penalised.dedup();
    assert_eq!(penalised, ["corrupt", "rotten"]);
    assert_eq!(
        net.served.lock().unwrap().get("good"),
        Some(&7),
        "every piece from the good peer"
    );
}

#[test]
fn a_size_that_contradicts_the_piece_list_is_not_adopted() {
    let len = 3 * PIECE_LEN as usize + 5;
    let net = network(
        &[("big", Behaviour::WrongTotal), ("good", Behaviour::Serves)],
        len,
    );
    assert_eq!(fetch_checked(&net).unwrap(), net.blob);
    assert_eq!(*net.penalised.lock().unwrap(), ["big".to_string()]);
}

#[test]
fn without_a_piece_list_a_size_dispute_blames_nobody_and_gives_up_the_peers() {
    let len = 3 * PIECE_LEN as usize;
    for order in [
        [
            ("liar", Behaviour::WrongTotal),
            ("honest", Behaviour::Serves),
        ],
        [
            ("honest", Behaviour::Serves),
            ("liar", Behaviour::WrongTotal),
        ],
    ] {
        let net = network(&order, len);
        let digest = Digest::sha256(&net.blob);
        assert!(
            PieceFetcher::open(net.clone(), digest, 0).is_none(),
            "no fetcher: the caller goes to the upstream"
        );
        assert!(net.penalised.lock().unwrap().is_empty(), "nobody blamed");
    }
}

#[test]
fn nodes_still_downloading_serve_the_pieces_they_hold() {
    let len = 12 * PIECE_LEN as usize + 5;
    let net = network(
        &[
            ("whole", Behaviour::Serves),
            ("half", Behaviour::Partial(6)),
            ("none", Behaviour::Partial(0)),
        ],
        len,
    );
    assert_eq!(fetch(&net).unwrap(), net.blob);
    let served = net.served.lock().unwrap().clone();
    assert!(served.get("half").copied().unwrap_or(0) > 0, "{served:?}");
    assert!(!served.contains_key("none"), "{served:?}");
    assert!(
        net.penalised.lock().unwrap().is_empty(),
        "holding less is no fault"
    );
}

#[test]
fn a_peer_that_sends_the_fetch_elsewhere_is_not_blamed_and_its_pieces_come_from_those_named() {
    let len = 12 * PIECE_LEN as usize;
    // The seed names "b" for every piece not asked insisting: those come from "b" (or, when
    // "b" is full, from the seed insisting), each piece once, and nobody is penalised.
    let net = network(
        &[("seed", Behaviour::SendsTo("b")), ("b", Behaviour::Serves)],
        len,
    );
    assert_eq!(fetch(&net).unwrap(), net.blob);
    assert!(net.penalised.lock().unwrap().is_empty());
    let served = net.served.lock().unwrap();
    assert_eq!(
        served.values().sum::<usize>(),
        12 + 1,
        "each piece once, and one probe confirming the size: {:?}",
        *served
    );
    assert!(served.get("b").copied().unwrap_or(0) > 1, "{:?}", *served);
    drop(served);

    // One that sends even insisting requests elsewhere is treated as lacking the pieces.
    let net = network(
        &[
            ("good", Behaviour::Serves),
            ("liar", Behaviour::AlwaysElsewhere("good")),
        ],
        len,
    );
    assert_eq!(fetch(&net).unwrap(), net.blob);
    assert!(net.penalised.lock().unwrap().is_empty());
}

#[test]
fn a_shelf_hands_over_a_piece_that_arrives_while_waited_for_and_nothing_after_the_patience() {
    let shelf = Arc::new(Shelf::default());
    assert!(shelf.wait_for(3, Duration::ZERO).is_none());
    let started = std::time::Instant::now();
    assert!(shelf.wait_for(3, Duration::from_millis(50)).is_none());
    assert!(started.elapsed() >= Duration::from_millis(50));
    let putting = {
        let shelf = shelf.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            shelf.put(3, vec![7; 4]);
        })
    };
    let bytes = shelf.wait_for(3, Duration::from_secs(10)).expect("arrives");
    assert_eq!(*bytes, vec![7; 4]);
    putting.join().unwrap();
    assert!(shelf.wait_for(4, Duration::ZERO).is_none(), "another piece");
}
