//! The persisted log on a real fjall database in a temp dir, checked with the light client.

use pyrsia_core::light::{Connectivity, LightClient, Policy};
use pyrsia_core::tlog::entry::{Entry, Genesis, KeyList};

use super::*;
use pyrsia_core::tlog::checkpoint::Checkpoint;

const NOW: u64 = 1_795_694_400;

fn key(seed: u8) -> SecretKey {
    SecretKey::from_seed([seed; 32])
}

fn image(tag: &str, manifest: &[u8]) -> (Digest, Vec<Digest>, String) {
    let m = Digest::sha256(manifest);
    (
        m,
        vec![Digest::sha256(b"config"), Digest::sha256(b"layer")],
        tag.to_string(),
    )
}

fn commit(log: &Log, tag: &str, manifest: &[u8]) -> Outcome {
    let (m, outputs, tag) = image(tag, manifest);
    log.commit_docker(
        &DockerCommit {
            name: "docker.io/library/small",
            manifest: m,
            outputs,
            piece_roots: Vec::new(),
            tag: Some(&tag),
            source: "http://127.0.0.1:5000",
        },
        NOW,
    )
    .unwrap()
}

/// Verifies the latest checkpoint and the commit of `manifest` as `pyrsia verify` does.
fn verify(log: &Log, manifest: &[u8]) {
    let mut client = LightClient::new(&log.genesis(), Policy::default()).unwrap();
    let note = log.checkpoint().unwrap();
    let size = note.checkpoint.size;
    client
        .accept_checkpoint(
            &note,
            &log.inclusion_proof(0, size).unwrap(),
            NOW,
            Connectivity::Online,
        )
        .unwrap();
    let digest = Digest::sha256(manifest);
    let index = log
        .find_commit("docker.io/library/small", &digest.to_string())
        .unwrap();
    let entry = log.entry(index).unwrap();
    let proof = log.inclusion_proof(index, size).unwrap();
    client
        .check_committed(&entry, index, &proof, &Digest::sha256(b"layer"))
        .unwrap();
}

#[test]
fn a_standalone_node_commits_what_it_verified() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), key(1), None, NOW).unwrap();
    assert!(log.is_sole_member());
    assert_eq!(log.size(), 1, "the genesis is final at once");
    assert_eq!(commit(&log, "v1", b"m1"), Outcome::Committed(2));
    assert_eq!(log.size(), 4, "request, commit, tag observation");
    verify(&log, b"m1");
    assert!(log.is_committed(&Digest::sha256(b"layer")));
    assert!(log.is_committed(&Digest::sha256(b"m1")));
    assert!(!log.is_committed(&Digest::sha256(b"other")));
    assert_eq!(
        log.find_tag("docker.io/library/small", "v1").unwrap().1,
        Digest::sha256(b"m1")
    );

    // Case 13: the same coordinates again commit nothing; an unchanged tag adds nothing.
    assert_eq!(commit(&log, "v1", b"m1"), Outcome::AlreadyCommitted(2));
    assert_eq!(log.size(), 4);
    // A tag seen at another digest is a new observation, once.
    assert_eq!(commit(&log, "latest", b"m1"), Outcome::AlreadyCommitted(2));
    assert_eq!(log.size(), 5);
    assert_eq!(log.history("docker.io/library/small"), vec![1, 2, 3, 4]);
}

#[test]
fn reopening_keeps_the_log_and_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let (size, root) = {
        let log = Log::open(dir.path(), key(1), None, NOW).unwrap();
        commit(&log, "v1", b"m1");
        let cp = log.checkpoint().unwrap().checkpoint;
        (cp.size, cp.root)
    };
    let log = Log::open(dir.path(), key(1), None, NOW + 10).unwrap();
    let cp = log.checkpoint().unwrap().checkpoint;
    assert_eq!((cp.size, cp.root), (size, root));
    verify(&log, b"m1");
    // Another network's genesis is refused for this data dir.
    let other = Entry::Genesis(Genesis {
        origin: "other",
        faults: 0,
        members: KeyList(&key(1).public().to_bytes()),
        created: 0,
    })
    .encode();
    drop(log);
    assert!(matches!(
        Log::open(dir.path(), key(1), Some(other), NOW),
        Err(LogError::Corrupt(_))
    ));
}

#[test]
fn case_28_crash_between_append_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), key(1), None, NOW).unwrap();
        commit(&log, "v1", b"m1");
        // The process dies after the entries are durable, before their checkpoint is signed.
        let (m, outputs, _) = image("v2", b"m2");
        let orphan = Entry::UnattestedTag(pyrsia_core::tlog::entry::UnattestedTag {
            tag: pyrsia_core::tlog::entry::Coordinates {
                ecosystem: "docker",
                name: "docker.io/library/small",
                version: "v2",
            },
            digest: m,
            checkpoint_size: 4,
            observer: key(1).public().key_id(),
            observed_at: NOW,
        })
        .encode();
        log.append_unsigned_for_test(vec![orphan]).unwrap();
        drop(outputs);
    }
    let log = Log::open(dir.path(), key(1), None, NOW).unwrap();
    assert_eq!(log.size(), 4, "recovered to the last final checkpoint");
    assert!(log.entry(4).is_none());
    assert!(log.find_tag("docker.io/library/small", "v2").is_none());
    // The work is redone and signed consistently with what was signed before.
    assert_eq!(commit(&log, "v2", b"m2"), Outcome::Committed(5));
    verify(&log, b"m2");
    verify(&log, b"m1");
}

#[test]
fn heartbeat_re_signs_the_same_tree_with_a_new_time() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), key(1), None, NOW).unwrap();
    let before = log.checkpoint().unwrap().checkpoint;
    log.refresh(NOW + 10, 3600).unwrap();
    assert_eq!(
        log.checkpoint().unwrap().checkpoint,
        before,
        "not old enough yet"
    );
    log.refresh(NOW + 3600, 3600).unwrap();
    let after = log.checkpoint().unwrap().checkpoint;
    assert_eq!((after.size, after.root), (before.size, before.root));
    assert_eq!(after.timestamp, NOW + 3600);
}

#[test]
fn a_member_of_a_larger_network_does_not_commit_alone() {
    let dir = tempfile::tempdir().unwrap();
    let keys: Vec<u8> = (1..=4).flat_map(|s| key(s).public().to_bytes()).collect();
    let genesis = Entry::Genesis(Genesis {
        origin: "pyrsia.test/four",
        faults: 1,
        members: KeyList(&keys),
        created: NOW,
    })
    .encode();
    let log = Log::open(dir.path(), key(1), Some(genesis), NOW).unwrap();
    assert!(!log.is_sole_member());
    assert_eq!(log.size(), 0, "waits for the network's checkpoints");
    let (m, outputs, _) = image("v1", b"m1");
    let result = log.commit_docker(
        &DockerCommit {
            name: "docker.io/library/small",
            manifest: m,
            outputs,
            piece_roots: Vec::new(),
            tag: None,
            source: "x",
        },
        NOW,
    );
    assert!(matches!(result, Err(LogError::NotSoleMember)));
}

/// A follower (another key, the leader's genesis) and the leader's log after one commit.
fn leader_and_follower() -> (tempfile::TempDir, Log, Log) {
    let dir = tempfile::tempdir().unwrap();
    let leader = Log::open(&dir.path().join("a"), key(1), None, NOW).unwrap();
    commit(&leader, "v1", b"m1");
    let follower = Log::open(&dir.path().join("b"), key(2), Some(leader.genesis()), NOW).unwrap();
    (dir, leader, follower)
}

#[test]
fn a_follower_replicates_verified_checkpoints_and_entries() {
    let (_dir, leader, follower) = leader_and_follower();
    assert!(!follower.is_sole_member());
    let note = leader.checkpoint().unwrap();
    assert_eq!(follower.missing_for(&note), Some((0, 4)));
    let entries = leader.entries(0, 4, usize::MAX);
    assert_eq!(
        follower.apply_checkpoint(&note, &entries).unwrap(),
        Applied::Extended(4)
    );
    assert_eq!(follower.checkpoint(), Some(note.clone()));
    assert!(follower.is_committed(&Digest::sha256(b"layer")));
    verify(&follower, b"m1");
    // Again: nothing new. A re-signed note of the same tree: refreshed.
    assert_eq!(
        follower.apply_checkpoint(&note, &[]).unwrap(),
        Applied::Stale
    );
    leader.refresh(NOW + 7200, 3600).unwrap();
    let refreshed = leader.checkpoint().unwrap();
    assert_eq!(
        follower.apply_checkpoint(&refreshed, &[]).unwrap(),
        Applied::Refreshed
    );
    // The leader grows; the follower takes just the new entries, and keeps them on reopen.
    commit(&leader, "v2", b"m2");
    let note = leader.checkpoint().unwrap();
    let (first, count) = follower.missing_for(&note).unwrap();
    assert_eq!((first, count), (4, 3));
    let batch = leader.entries(first, count, 1);
    assert_eq!(batch.len(), 1, "a byte limit still returns one entry");
    let entries = leader.entries(first, count, usize::MAX);
    follower.apply_checkpoint(&note, &entries).unwrap();
    verify(&follower, b"m2");
}

#[test]
fn a_follower_refuses_what_does_not_check_out() {
    let (_dir, leader, follower) = leader_and_follower();
    let note = leader.checkpoint().unwrap();
    let entries = leader.entries(0, 4, usize::MAX);
    // Entries that do not hash to the root (one altered byte in the tag observation).
    let mut altered = entries.clone();
    let last = altered[3].len() - 1;
    altered[3][last] ^= 1;
    assert!(matches!(
        follower.apply_checkpoint(&note, &altered),
        Err(LogError::Refused(_))
    ));
    // Too few entries.
    assert!(follower.apply_checkpoint(&note, &entries[..3]).is_err());
    // Signed by a key that is not a member.
    let mut forged = SignedCheckpoint::unsigned(note.checkpoint.clone());
    forged.add(note.checkpoint.sign(&key(9))).unwrap();
    assert!(follower.apply_checkpoint(&forged, &entries).is_err());
    assert_eq!(follower.size(), 0, "nothing was stored");
    // The genuine one still applies after the refusals.
    follower.apply_checkpoint(&note, &entries).unwrap();
    // A fork: the leader's key signs another root at the same size.
    let other = Checkpoint::new(&leader.origin(), 4, [9; 32], NOW).unwrap();
    let mut fork = SignedCheckpoint::unsigned(other.clone());
    fork.add(other.sign(&key(1))).unwrap();
    assert!(matches!(
        follower.apply_checkpoint(&fork, &[]),
        Err(LogError::Refused(_))
    ));
    assert_eq!(follower.checkpoint(), Some(note));
}

#[test]
fn replicated_commits_need_valid_attestations() {
    let dir = tempfile::tempdir().unwrap();
    let leader = Log::open(&dir.path().join("a"), key(1), None, NOW).unwrap();
    let follower = Log::open(&dir.path().join("b"), key(2), Some(leader.genesis()), NOW).unwrap();
    // A commit whose attestation is by a non-member, in a tree the leader signed anyway.
    let outputs = Digest::sha256(b"x").as_bytes().to_vec();
    let statement = pyrsia_core::tlog::entry::Statement {
        request_index: 1,
        coordinates: pyrsia_core::tlog::entry::Coordinates {
            ecosystem: "docker",
            name: "docker.io/library/x",
            version: "sha256:00",
        },
        build_type: "docker-fetch/v1",
        outputs: pyrsia_core::tlog::entry::DigestList(&outputs),
        epoch: 0,
        selection_size: 1,
        selection_root: [0; 32],
        piece_roots: pyrsia_core::tlog::entry::PieceRootList(&[]),
    };
    let attestation = statement.sign(&key(7)).to_bytes();
    let bad = Entry::Commit(pyrsia_core::tlog::entry::Commit {
        statement,
        attestations: pyrsia_core::tlog::entry::SignatureList(&attestation),
    })
    .encode();
    let mut state = leader.lock();
    leader
        .append_locked(&mut state, vec![bad.clone()], NOW)
        .unwrap();
    drop(state);
    let note = leader.checkpoint().unwrap();
    let entries = leader.entries(0, 2, usize::MAX);
    let refused = follower.apply_checkpoint(&note, &entries).unwrap_err();
    assert!(refused.to_string().contains("attestations"), "{refused}");
}
