//! Issue 14, item 7: strangers on the P2P port cannot slow the log's gossip between honest
//! nodes, and a peer that sends malformed frames is blocked. A leader and a follower (one log)
//! are connected; raw libp2p identities flood the follower with log-sync requests (30 entry
//! requests each, 20 identities at a time, at least 1,000 in all, and on until the checkpoint has
//! arrived), while the leader commits an image: the follower has the new checkpoint within
//! 2 seconds. One identity over its request rate gets
//! only a bounded share answered; a peer sending malformed frames is blocked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pyrsia_net::codec::{SyncRequest, SyncResponse};
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::{Node, wait_mesh};
use pyrsia_tests::process::wait_until;
use pyrsia_tests::raw_peer::RawPeer;
use pyrsia_tests::registry::Registry;

const IDENTITIES: usize = 1000;
const AT_ONCE: usize = 20;
const REQUESTS_EACH: usize = 30;

fn log_size(node: &Node) -> u64 {
    node.log_status()["size"].as_u64().unwrap_or(0)
}

fn entries_requests(n: usize) -> Vec<SyncRequest> {
    (0..n)
        .map(|_| SyncRequest::Entries {
            start: 0,
            count: 512,
        })
        .collect()
}

#[test]
fn a_thousand_strangers_do_not_slow_gossip_and_malformed_frames_get_blocked() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let leader = Node::start(
        &work.path().join("leader"),
        &["--upstream", &registry.url()],
    );
    let out = skopeo_copy(
        &leader.authority(),
        &images[0].reference,
        &work.path().join("c1"),
    );
    assert_succeeded(&out, "the first pull", &leader.log());
    leader
        .wait_committed("docker.io/library/small", &images[0].digest)
        .expect("committed");
    let follower = Node::start_follower(&work.path().join("follower"), &leader, &[]);
    wait_mesh(&[&leader, &follower]);
    wait_until(
        "the follower catches up",
        Duration::from_secs(30),
        &|| follower.log(),
        || log_size(&follower) >= log_size(&leader),
    );
    let target = follower.p2p_address();

    // The flood: 20 identities at a time, each asking for entries 30 times, until at least 1,000
    // identities have asked and the checkpoint has reached the follower (a fixed count alone
    // could run out before the commit on a fast machine).
    let answered = Arc::new(AtomicUsize::new(0));
    let identities = Arc::new(AtomicUsize::new(0));
    let checkpoint_arrived = Arc::new(AtomicBool::new(false));
    let flooders: Vec<_> = (0..AT_ONCE)
        .map(|_| {
            let (target, answered, identities, checkpoint_arrived) = (
                target.clone(),
                answered.clone(),
                identities.clone(),
                checkpoint_arrived.clone(),
            );
            std::thread::spawn(move || {
                while identities.fetch_add(1, Ordering::SeqCst) < IDENTITIES
                    || !checkpoint_arrived.load(Ordering::SeqCst)
                {
                    let answers = RawPeer::new().ask(
                        &target,
                        entries_requests(REQUESTS_EACH),
                        Duration::from_secs(2),
                    );
                    let ok = answers
                        .iter()
                        .filter(|a| matches!(a, Ok(SyncResponse::Entries(_))))
                        .count();
                    answered.fetch_add(ok, Ordering::SeqCst);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));

    // Meanwhile the leader commits; the follower must have it within 2 s of the commit.
    let before = log_size(&leader);
    let flood_at_pull = identities.load(Ordering::SeqCst);
    let out = skopeo_copy(
        &leader.authority(),
        &images[1].reference,
        &work.path().join("c2"),
    );
    assert_succeeded(&out, "a pull during the flood", &leader.log());
    wait_until(
        "the leader commits",
        Duration::from_secs(30),
        &|| leader.log(),
        || log_size(&leader) > before,
    );
    let committed = Instant::now();
    let size = log_size(&leader);
    while log_size(&follower) < size {
        assert!(
            committed.elapsed() < Duration::from_secs(10),
            "the follower never got the checkpoint during the flood\n{}",
            follower.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let gossip = committed.elapsed();
    let flood_at_checkpoint = identities.load(Ordering::SeqCst);
    checkpoint_arrived.store(true, Ordering::SeqCst);
    // The flood runs to its end: at least 1,000 identities.
    for flooder in flooders {
        flooder.join().unwrap();
    }
    let flooded = identities.load(Ordering::SeqCst) - AT_ONCE;
    eprintln!(
        "checkpoint reached the follower {gossip:?} after the commit; identities {flood_at_pull} at the pull, {flood_at_checkpoint} at the checkpoint; {} entry answers to {flooded} identities",
        answered.load(Ordering::SeqCst)
    );
    assert!(
        flood_at_checkpoint > flood_at_pull,
        "no new identity flooded while the leader committed and gossiped"
    );
    assert!(flooded >= IDENTITIES, "only {flooded} identities flooded");
    assert!(
        gossip < Duration::from_secs(2),
        "gossip took {gossip:?} under the flood"
    );
    assert!(
        answered.load(Ordering::SeqCst) > 0,
        "the flood was answered at all"
    );

    // One identity far over its rate: a bounded share is answered.
    let greedy = RawPeer::new();
    let asked = Instant::now();
    let answers = greedy.ask(&target, entries_requests(1500), Duration::from_secs(3));
    let took = asked.elapsed().as_secs() + 1;
    let ok = answers
        .iter()
        .filter(|a| matches!(a, Ok(SyncResponse::Entries(_))))
        .count() as u64;
    assert!(ok > 0, "{:?}", &answers[..3]);
    assert!(
        ok <= 400 + 200 * took,
        "{ok} of 1,500 requests answered in {took} s: over the per-peer rate"
    );

    // Malformed frames: the sender is blocked.
    let junk = RawPeer::new();
    let frames = pyrsia_tests::raw_peer::malformed_frames();
    let _ = junk.send_raw(&target, frames, Duration::from_secs(2));
    wait_until(
        "the sender of malformed frames is blocked",
        Duration::from_secs(10),
        &|| follower.log(),
        || follower.blocked_peers().contains(&junk.peer_id()),
    );
    assert!(
        !follower.blocked_peers().contains(&leader.peer_id()),
        "the honest leader stays unblocked"
    );
}
