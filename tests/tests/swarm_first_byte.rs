//! Issue 18, item 5: time to first byte through a node that is still receiving the blob from
//! the swarm. Two nodes; the upstream is behind a proxy that holds it to 2 MiB/s, so the
//! 16 MiB layer takes about 8 s to cross it. A client (curl) asks the node that is not the
//! one to fetch it for the network: that node gets it piece by piece from the claimant as
//! the claimant's bytes arrive, and the client gets bytes as those pieces come in, in order:
//! its first MiB arrives within the first half of the transfer, long before the claimant has
//! the whole layer. The body is the layer (its digest matches), the follower's bytes came
//! from its peer, and the upstream served the layer once. (Without a committed piece list the
//! pieces are checked together against the blob's digest: the follower holds back the last
//! byte until that check passes, as for a pull-through from the upstream.)

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pyrsia_tests::node::{Node, wait_mesh};
use pyrsia_tests::proxy::throttled_upstream;
use pyrsia_tests::raw_peer::claimant_order;

const LAYER: u64 = 16 << 20;
const UPSTREAM_RATE: u64 = 2 << 20;

#[test]
fn a_client_gets_bytes_while_its_node_still_receives_the_blob_from_the_swarm() {
    let work = tempfile::tempdir().unwrap();
    let (registry, image, proxy) = throttled_upstream(work.path(), LAYER, UPSTREAM_RATE);
    let layer = image.layers[0].blob.digest;

    let first = Node::start(&work.path().join("node0"), &["--upstream", &proxy.url()]);
    let second = Node::start(
        &work.path().join("node1"),
        &["--upstream", &proxy.url(), "--peer", &first.p2p_address()],
    );
    wait_mesh(&[&first, &second]);
    let nodes = [first, second];
    let ids: Vec<String> = nodes.iter().map(Node::peer_id).collect();
    let order = claimant_order(&layer, &ids);
    let (claimant, follower) = (&nodes[order[0]], &nodes[order[1]]);

    let body = work.path().join("body");
    let started = Instant::now();
    let mut curl = Command::new("curl")
        .args(["-sf", "-o"])
        .arg(&body)
        .arg(format!("{}/v2/library/large/blobs/{layer}", follower.url()))
        .stdout(Stdio::null())
        .spawn()
        .expect("curl");
    let mut first_mib = None;
    let status = loop {
        if first_mib.is_none() && std::fs::metadata(&body).is_ok_and(|m| m.len() >= 1 << 20) {
            first_mib = Some(started.elapsed());
        }
        if let Some(status) = curl.try_wait().expect("curl") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the pull did not end\n{}",
            follower.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let whole = started.elapsed();
    assert!(status.success(), "the pull failed\n{}", follower.log());
    let bytes = std::fs::read(&body).unwrap();
    assert_eq!(pyrsia_core::digest::Digest::sha256(&bytes), layer);
    let first_mib = first_mib.expect("the first MiB was seen before the end");
    println!("first MiB after {first_mib:?}, the whole layer after {whole:?}");
    assert!(
        whole >= Duration::from_secs(4),
        "the upstream link held the layer back ({whole:?})"
    );
    assert!(
        first_mib * 2 < whole,
        "first MiB after {first_mib:?} of {whole:?}: the client waited for the whole blob"
    );
    assert!(
        follower.metric("peer_bytes") >= LAYER,
        "the follower got the layer from its peer\n{}",
        follower.log()
    );
    assert_eq!(
        registry.blob_gets(&layer.to_string()),
        1,
        "one upstream fetch\n{}",
        claimant.log()
    );
}
