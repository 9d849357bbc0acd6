//! Issue 14, item 9: a node whose log holds 150,000 entries (written straight into its data
//! directory, `pyrsia_tests::long_log`) serves followers that start from nothing, one over
//! P2P and one over HTTP (`pyrsia-lite --log-from`): each takes the gap in chunks, every
//! chunk proven a prefix of the one signed checkpoint, and ends with the leader's root.
//! Meanwhile 100 clients ask the leader for inclusion and consistency proofs in parallel
//! (each checked here against the signed checkpoint) while a pull through it is committed:
//! proofs are O(log n) from stored subtree hashes, so neither they nor the commit wait long.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pyrsia_core::tlog::checkpoint::SignedCheckpoint;
use pyrsia_core::tlog::{
    Hash, hash_from_hex, leaf_hash, root_from_inclusion_proof, verify_consistency, verify_inclusion,
};
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::http::{get, get_bytes};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::long_log;
use pyrsia_tests::long_log::now_secs;
use pyrsia_tests::node::Node;
use pyrsia_tests::process::{free_port, wait_until};
use pyrsia_tests::registry::Registry;

/// Entries the leader holds before anyone follows it: more than one apply takes
/// (`MAX_ENTRIES_PER_APPLY`, 100,000).
const HISTORY: u64 = 150_000;
/// Clients asking for proofs at once.
const PROVERS: usize = 100;
/// Proofs each client asks for.
const PROOFS_EACH: u64 = 10;

fn hashes(url: &str) -> Vec<Hash> {
    let answer: serde_json::Value = serde_json::from_str(&get(url).unwrap().small_body).unwrap();
    answer["hashes"]
        .as_array()
        .unwrap_or_else(|| panic!("{url}: {answer}"))
        .iter()
        .map(|h| hash_from_hex(h.as_str().unwrap()).unwrap())
        .collect()
}

/// One client's proofs of `note`'s tree, each checked; returns the slowest answer.
fn ask_proofs(leader: &str, note: &SignedCheckpoint, client: u64) -> Duration {
    let (size, root) = (note.checkpoint.size, note.checkpoint.root);
    let mut slowest = Duration::ZERO;
    for i in 0..PROOFS_EACH {
        let index = (client * 7919 + i * 104_729) % size;
        let started = Instant::now();
        let (status, entry) = get_bytes(&format!("{leader}/pyrsia/log/entries/{index}")).unwrap();
        assert_eq!(status, 200);
        let proof = hashes(&format!(
            "{leader}/pyrsia/log/proof/inclusion?index={index}&size={size}"
        ));
        verify_inclusion(index, size, &leaf_hash(&entry), &proof, &root)
            .unwrap_or_else(|e| panic!("inclusion of {index} in {size}: {e}"));
        // The tree that ends with that entry is a prefix of the checkpoint's: its root from
        // the entry's inclusion proof in it, then the consistency proof.
        let from = index + 1;
        let path = hashes(&format!(
            "{leader}/pyrsia/log/proof/inclusion?index={index}&size={from}"
        ));
        let small_root = root_from_inclusion_proof(index, from, &leaf_hash(&entry), &path)
            .expect("root of the smaller tree");
        let proof = hashes(&format!(
            "{leader}/pyrsia/log/proof/consistency?from={from}&to={size}"
        ));
        verify_consistency(from, size, &proof, &small_root, &root)
            .unwrap_or_else(|e| panic!("consistency {from} -> {size}: {e}"));
        slowest = slowest.max(started.elapsed());
    }
    slowest
}

#[test]
fn followers_150k_behind_catch_up_and_parallel_proofs_leave_commits_on_time() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let leader_dir = work.path().join("leader");
    let written = Instant::now();
    let size = long_log::fill(&leader_dir.join("data"), HISTORY, now_secs());
    assert_eq!(size, HISTORY + 1);
    eprintln!("{size} entries written in {:?}", written.elapsed());
    let leader = Node::start(&leader_dir, &["--upstream", &registry.url()]);
    let note = leader.checkpoint();
    assert_eq!(note.checkpoint.size, size);
    let genesis = work.path().join("genesis.bin");
    leader.save_genesis(&genesis);
    let genesis = genesis.to_str().unwrap().to_string();

    // Two followers start from nothing: 150,001 entries behind.
    let p2p = Node::start_follower(&work.path().join("p2p"), &leader, &[]);
    let lite = Node::start_binary(
        "pyrsia-lite",
        &work.path().join("lite"),
        free_port(),
        &["--genesis", &genesis, "--log-from", &leader.url()],
    );

    // 100 clients prove entries of the long log while a pull is committed.
    let slowest = Arc::new(AtomicU64::new(0));
    let provers: Vec<_> = (0..PROVERS as u64)
        .map(|client| {
            let (url, note, slowest) = (leader.url(), note.clone(), slowest.clone());
            std::thread::spawn(move || {
                let took = ask_proofs(&url, &note, client);
                slowest.fetch_max(took.as_millis() as u64, Ordering::Relaxed);
            })
        })
        .collect();
    let pulled = Instant::now();
    let out = skopeo_copy(
        &leader.authority(),
        &images[0].reference,
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "a pull during the proof storm", &leader.log());
    leader
        .wait_committed("docker.io/library/small", &images[0].digest)
        .expect("the pull is committed during the proof storm");
    let commit_took = pulled.elapsed();
    for prover in provers {
        prover.join().expect("every proof checks out");
    }
    let slowest = Duration::from_millis(slowest.load(Ordering::Relaxed));
    eprintln!(
        "{PROVERS} clients x {PROOFS_EACH} proof rounds: slowest round {slowest:?}; pull committed in {commit_took:?}"
    );
    assert!(
        slowest < Duration::from_secs(10),
        "a proof round took {slowest:?}"
    );
    assert!(
        commit_took < Duration::from_secs(30),
        "the commit took {commit_took:?} during the proof storm"
    );

    // Both followers reach the leader's log, chunk by chunk.
    let latest = leader.checkpoint();
    for (what, follower) in [("p2p", &p2p), ("http", &lite)] {
        wait_until(
            &format!("the {what} follower catches up"),
            Duration::from_secs(240),
            &|| follower.log(),
            || {
                follower.log_status()["size"]
                    .as_u64()
                    .is_some_and(|s| s >= latest.checkpoint.size)
            },
        );
        let theirs = follower.checkpoint();
        assert_eq!(
            (theirs.checkpoint.size, theirs.checkpoint.root),
            (latest.checkpoint.size, latest.checkpoint.root),
            "the {what} follower holds another tree"
        );
        assert!(
            follower.log().contains("catching up with"),
            "the {what} follower took the gap in one piece?\n{}",
            follower.log()
        );
    }
}
