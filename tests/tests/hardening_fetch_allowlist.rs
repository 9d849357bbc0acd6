//! Issue 14, item 1: neither a stranger on the P2P network nor a client can choose what a node
//! fetches. A raw libp2p peer (its own identity, the node's own wire protocol) sends piece
//! requests whose fetch hints name a loopback address, then a configured but silent upstream;
//! a client names the loopback address in `?ns=`. The sentinel listener must never see a
//! connection, nothing may be stored, and a local pull of the same blob must not wait on the
//! peer's download.

use std::time::{Duration, Instant};

use pyrsia_core::digest::Digest;
use pyrsia_net::codec::{SyncRequest, SyncResponse};
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::http::get;
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::raw_peer::{RawPeer, node_wins};
use pyrsia_tests::registry::Registry;
use pyrsia_tests::tarpit::Tarpit;

/// A piece request for the start of `digest` that asks the node to fetch it from `host`.
fn hinted(digest: &Digest, host: &str, repository: &str) -> SyncRequest {
    SyncRequest::Piece {
        digest: *digest.as_bytes(),
        offset: 0,
        len: 1 << 20,
        fetch: Some((host.to_string(), repository.to_string())),
        insist: true,
    }
}

fn assert_all_missing(answers: &[Result<SyncResponse, String>], what: &str, log: &str) {
    for answer in answers {
        assert_eq!(
            answer.as_ref().ok(),
            Some(&SyncResponse::Missing),
            "{what}: {answers:?}\n{log}"
        );
    }
}

#[test]
fn peers_and_clients_cannot_make_a_node_fetch_from_a_host_of_their_choosing() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let small = images
        .iter()
        .find(|i| i.reference == "library/small:small")
        .expect("the small image");
    let layer = small.layers[0].blob.digest;
    // Never to be contacted: the loopback address a stranger names.
    let sentinel = Tarpit::start();
    // A configured upstream that accepts and never answers.
    let slow = Tarpit::start();
    let slow_mapping = format!("slow.example={}", slow.url());
    let node = Node::start(
        &work.path().join("node"),
        &["--upstream", &registry.url(), "--upstream", &slow_mapping],
    );
    let address = node.p2p_address();
    let node_id = node.peer_id();

    // A client's ?ns= naming the loopback address: 403 DENIED in OCI error JSON.
    let url = format!(
        "{}/v2/library/small/manifests/small?ns={}",
        node.url(),
        sentinel.authority()
    );
    let denied = get(&url).expect("GET");
    assert_eq!(denied.status, 403, "{denied:?}");
    assert!(denied.small_body.contains("\"DENIED\""), "{denied:?}");
    let url = format!(
        "{}/v2/library/small/blobs/{layer}?ns={}",
        node.url(),
        sentinel.authority()
    );
    assert_eq!(get(&url).expect("GET").status, 403);

    // A stranger for whom the node is not one of the nodes to fetch the layer for the network
    // (three strangers connected now are nearer the digest): hints for the loopback address
    // and for the silent upstream, for the layer and for digests nobody has.
    let nearer = || RawPeer::grind(|id| !node_wins(&layer, &node_id, &[id]));
    let loser = nearer();
    let holders: Vec<_> = (0..2)
        .map(|_| {
            let (holder, address) = (nearer(), address.clone());
            let id = holder.peer_id();
            let thread = std::thread::spawn(move || holder.hold(&address, Duration::from_secs(6)));
            (id, thread)
        })
        .collect();
    for (id, _) in &holders {
        wait_until(
            "a nearer stranger connects",
            Duration::from_secs(10),
            &|| node.log(),
            || node.connected_peers().contains(id),
        );
    }
    let nobody = Digest::sha256(b"no such blob");
    let answers = loser.ask(
        &address,
        vec![
            hinted(&layer, &sentinel.authority(), "library/small"),
            hinted(&nobody, &sentinel.authority(), "library/small"),
            hinted(&layer, "slow.example", "library/small"),
            hinted(&layer, "localhost", "library/small"),
        ],
        Duration::from_secs(10),
    );
    assert_all_missing(
        &answers,
        "hints from a stranger the node does not fetch for",
        &node.log(),
    );

    // A stranger that ground its identity to make the node the nearest (once the others are
    // gone from the node's live peers): a loopback hint is still refused...
    let loser_id = loser.peer_id();
    for (_, thread) in holders {
        thread.join().unwrap();
    }
    wait_until(
        "the loser and the nearer strangers leave",
        Duration::from_secs(10),
        &|| node.log(),
        || {
            let connected = node.connected_peers();
            !connected.contains(&loser_id) && connected.is_empty()
        },
    );
    let winner = RawPeer::grind(|id| node_wins(&layer, &node_id, &[id]));
    let answers = winner.ask(
        &address,
        vec![hinted(&layer, &sentinel.authority(), "library/small")],
        Duration::from_secs(10),
    );
    assert_all_missing(&answers, "a loopback hint", &node.log());
    assert_eq!(slow.connections(), 0, "the loser's hint started no fetch");

    // ...while a hint for a configured host is honoured (the check above is not vacuous):
    // the node starts fetching the layer from the silent upstream for the stranger.
    let stranger = std::thread::spawn(move || {
        winner.ask(
            &address,
            vec![hinted(&layer, "slow.example", "library/small")],
            Duration::from_secs(30),
        )
    });
    wait_until(
        "a winning peer's hint for a configured host starts a fetch",
        Duration::from_secs(10),
        &|| node.log(),
        || slow.connections() > 0,
    );

    // A local pull of the same layer from its real source does not join the stranger's
    // stuck download: it completes while that one still hangs.
    let pulled = Instant::now();
    let out = skopeo_copy(
        &node.authority(),
        &small.reference,
        &work.path().join("copy"),
    );
    assert_succeeded(
        &out,
        "local pull during the stranger's stuck fetch",
        &node.log(),
    );
    assert!(
        pulled.elapsed() < Duration::from_secs(8),
        "the local pull waited {:?} on the stranger's download\n{}",
        pulled.elapsed(),
        node.log()
    );
    assert!(node.wait_stored(&layer));
    assert!(
        !stranger.is_finished(),
        "the stranger's download is still stuck while the local pull is done"
    );

    // The stranger gets no bytes (its request times out, or the download gives up on the
    // silent upstream), and nothing of that download is left behind.
    let answers = stranger.join().unwrap();
    assert!(
        !matches!(answers[0], Ok(SyncResponse::Piece { .. })),
        "{answers:?}"
    );
    wait_until(
        "the stuck download gives up",
        Duration::from_secs(30),
        &|| node.log(),
        || node.temp_files() == 0,
    );
    assert_eq!(
        sentinel.connections(),
        0,
        "the node connected to a host nobody configured\n{}",
        node.log()
    );
    assert!(
        !node.stored_blobs().contains(&nobody.hex().to_string()),
        "nothing stored for the unknown digest"
    );
}
