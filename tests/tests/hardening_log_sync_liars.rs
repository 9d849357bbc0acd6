//! Log catch-up against lying peers (core's `tlog::sync::LogSync` in a real node): a raw
//! libp2p peer that offers a real, quorum-signed checkpoint and then answers the entries with
//! an answer of another kind is struck; one that never answers costs a request timeout and no
//! blame; neither stores anything, and once an honest peer connects the node catches up with
//! it while both liars are still connected.

use std::time::Duration;

use pyrsia_std::log::{Log, key};
use pyrsia_tests::log_liar::{LogLiar, LogLie};
use pyrsia_tests::long_log;
use pyrsia_tests::long_log::now_secs;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;

/// Entries of the honest log (after the genesis).
const HISTORY: u64 = 40;

fn lines_with<'a>(log: &'a str, words: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .collect()
}

#[test]
fn liars_about_the_log_cost_time_and_the_node_catches_up_from_an_honest_peer() {
    let work = tempfile::tempdir().unwrap();
    // The honest log, written before its node starts; its signed checkpoint is what the
    // liars offer.
    let leader_dir = work.path().join("leader");
    let size = long_log::fill(&leader_dir.join("data"), HISTORY, now_secs());
    let (note, genesis) = {
        let data = leader_dir.join("data");
        let log = Log::open(&data, key::load_or_create(&data).unwrap(), None, now_secs()).unwrap();
        (log.checkpoint().expect("a checkpoint"), log.genesis())
    };
    assert_eq!(note.checkpoint.size, size);
    let genesis_file = work.path().join("genesis.bin");
    std::fs::write(&genesis_file, genesis).unwrap();

    // A follower with nobody but the liars to ask.
    let follower_dir = work.path().join("follower");
    let follower = Node::start(
        &follower_dir,
        &["--genesis", genesis_file.to_str().unwrap()],
    );
    let wrong = LogLiar::start(&follower.p2p_address(), note.to_string(), LogLie::WrongKind);
    let silent = LogLiar::start(&follower.p2p_address(), note.to_string(), LogLie::Silent);

    // The wrong-kind liar is struck; the silent one's request times out without blame.
    wait_until(
        "the follower strikes the liar and gives up on the silent peer",
        Duration::from_secs(60),
        &|| follower.log(),
        || {
            let log = follower.log();
            !lines_with(
                &log,
                &["peer misbehaved", wrong.peer_id(), "another kind of answer"],
            )
            .is_empty()
                && !lines_with(
                    &log,
                    &["log-sync request failed", silent.peer_id(), "Timeout"],
                )
                .is_empty()
        },
    );
    assert!(wrong.entries_asked() >= 1 && silent.entries_asked() >= 1);
    let log = follower.log();
    assert!(
        lines_with(&log, &["peer misbehaved", silent.peer_id()]).is_empty(),
        "a peer that only failed to answer was blamed:\n{log}"
    );
    assert_eq!(
        follower.log_status()["size"].as_u64(),
        Some(0),
        "the follower stored something the liars sent"
    );

    // The honest node comes up and dials the follower: the follower catches up with it while
    // the silent liar is still connected and still offered the same checkpoint.
    let leader = Node::start(&leader_dir, &["--peer", &follower.p2p_address()]);
    wait_until(
        "the follower catches up from the honest node",
        Duration::from_secs(90),
        &|| follower.log(),
        || follower.log_status()["size"].as_u64() == Some(size),
    );
    assert_eq!(
        follower.checkpoint().checkpoint.root,
        leader.checkpoint().checkpoint.root,
        "the follower holds another tree"
    );
    let log = follower.log();
    assert_eq!(
        lines_with(
            &log,
            &["log extended from a peer's checkpoint", &leader.peer_id()]
        )
        .len(),
        1,
        "the follower stored the log from someone else:\n{log}"
    );
    assert!(
        follower
            .connected_peers()
            .iter()
            .any(|p| p == silent.peer_id()),
        "the silent peer was disconnected: the catch-up did not have to get past it"
    );
}
