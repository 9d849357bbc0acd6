//! Core's log catch-up (`tlog::sync::LogSync`) against real logs: the quorum check, the log's
//! refusal of altered entries and of a wrong proof, and a long gap in proven chunks, stored
//! through [`Log::store_fetched`] and [`Log::store_fetched_prefix`] as the daemon does.

use pyrsia_core::digest::Digest;
use pyrsia_core::identity::SecretKey;
use pyrsia_core::time::Instant;
use pyrsia_core::tlog::checkpoint::SignedCheckpoint;
use pyrsia_core::tlog::sync::{CatchUpRequest, LogSync, SyncAction};

use super::{DockerCommit, Log};

const NOW: u64 = 1_795_694_400;
const PEER: u8 = 7;

fn leader_and_follower(dir: &std::path::Path) -> (Log, Log) {
    let leader = Log::open(&dir.join("a"), SecretKey::from_seed([1; 32]), None, NOW).unwrap();
    leader
        .commit_docker(
            &DockerCommit {
                name: "docker.io/library/x",
                manifest: Digest::sha256(b"m"),
                outputs: vec![Digest::sha256(b"l")],
                piece_roots: Vec::new(),
                tag: Some("v1"),
                source: "http://127.0.0.1:1",
            },
            NOW,
        )
        .unwrap();
    let follower = Log::open(
        &dir.join("b"),
        SecretKey::from_seed([2; 32]),
        Some(leader.genesis()),
        NOW,
    )
    .unwrap();
    (leader, follower)
}

/// Answers every request from `leader` and stores through `follower` until the catch-up
/// asks nothing more; `alter` may change the entries on the way. Returns the strikes.
fn run(
    sync: &mut LogSync<u8, u64>,
    leader: &Log,
    follower: &Log,
    first: Vec<SyncAction<u8>>,
    alter: impl Fn(&mut Vec<Vec<u8>>),
) -> Vec<String> {
    let mut strikes = Vec::new();
    let mut queue = std::collections::VecDeque::from(first);
    let mut id = 0;
    while let Some(action) = queue.pop_front() {
        let next = match action {
            SyncAction::Request(_, CatchUpRequest::Entries { start, count }) => {
                id += 1;
                sync.sent(id, Instant::ZERO);
                let mut batch = leader.entries(start, count, usize::MAX);
                alter(&mut batch);
                follower.with_state(|log| sync.on_entries(log, id, batch))
            }
            SyncAction::Request(_, CatchUpRequest::Consistency { from, to }) => {
                id += 1;
                sync.sent(id, Instant::ZERO);
                let proof = leader.consistency_proof(from, to).unwrap();
                follower.with_state(|log| sync.on_consistency(log, id, proof))
            }
            SyncAction::Strike(_, why) => {
                strikes.push(why);
                Vec::new()
            }
            SyncAction::Apply {
                peer,
                note,
                entries,
            } => {
                let stored = follower.store_fetched(&note, &entries);
                follower.with_state(|log| sync.applied(log, peer, stored))
            }
            SyncAction::ApplyPrefix {
                note,
                entries,
                proof,
                ..
            } => {
                let stored = follower.store_fetched_prefix(&note, &entries, &proof);
                follower.with_state(|log| sync.prefix_applied(log, stored))
            }
        };
        queue.extend(next);
    }
    strikes
}

#[test]
fn a_forged_checkpoint_or_altered_entries_are_struck_and_honest_ones_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (leader, follower) = leader_and_follower(dir.path());
    let mut sync = LogSync::new();

    // A note signed by a non-member: struck by the quorum check, nothing fetched.
    let note = leader.checkpoint().unwrap();
    let mut forged = SignedCheckpoint::unsigned(note.checkpoint.clone());
    forged
        .add(note.checkpoint.sign(&SecretKey::from_seed([9; 32])))
        .unwrap();
    let actions = follower.with_state(|log| sync.on_note(log, PEER, forged, Instant::ZERO));
    assert!(matches!(actions[..], [SyncAction::Strike(PEER, _)]));

    // Entries altered in flight: the log refuses them, the peer is struck, nothing stored.
    let first = follower.with_state(|log| sync.on_note(log, PEER, note.clone(), Instant::ZERO));
    let strikes = run(&mut sync, &leader, &follower, first, |batch| {
        batch[0][5] ^= 1
    });
    assert_eq!(strikes.len(), 1, "{strikes:?}");
    assert_eq!(follower.size(), 0);

    // Honest entries: stored with the checkpoint, nobody struck.
    let first = follower.with_state(|log| sync.on_note(log, PEER, note.clone(), Instant::ZERO));
    assert!(run(&mut sync, &leader, &follower, first, |_| {}).is_empty());
    assert_eq!(follower.checkpoint(), Some(note));
}

#[test]
fn a_long_gap_is_taken_in_chunks_each_proven_a_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let (leader, follower) = leader_and_follower(dir.path());
    for i in 0..3 {
        let name = format!("docker.io/library/y{i}");
        leader
            .commit_docker(
                &DockerCommit {
                    name: &name,
                    manifest: Digest::sha256(name.as_bytes()),
                    outputs: Vec::new(),
                    piece_roots: Vec::new(),
                    tag: None,
                    source: "http://127.0.0.1:1",
                },
                NOW + 1 + i,
            )
            .unwrap();
    }
    let note = leader.checkpoint().unwrap();
    let size = note.checkpoint.size;
    assert!(size > 6);
    let mut sync = LogSync::with_chunk(3);
    let first = follower.with_state(|log| sync.on_note(log, PEER, note.clone(), Instant::ZERO));
    assert!(run(&mut sync, &leader, &follower, first, |_| {}).is_empty());
    assert_eq!(follower.checkpoint(), Some(note));
    assert_eq!(follower.size(), size);
}
