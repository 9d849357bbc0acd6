//! A node data directory whose log already holds a long history: what catch-up and proof
//! tests need, made in seconds instead of by a hundred thousand pulls. The node's own key (as
//! the daemon loads it) signs the checkpoints of a standalone network (n = 1), so the node
//! started on the directory serves the log as its sole member.

use std::path::Path;

use pyrsia_core::tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use pyrsia_core::tlog::entry::{BuildRequest, Coordinates, DOCKER_FETCH_V1, Entry};
use pyrsia_core::tlog::tree::MerkleTree;
use pyrsia_std::log::{Applied, Log, MAX_ENTRIES_PER_APPLY, key};

/// The wall clock in Unix seconds: the time a written log's checkpoints are signed at.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

/// Writes a standalone log of `requests` build requests (after the genesis) into the data
/// directory `dir`, in checkpoints of at most [`MAX_ENTRIES_PER_APPLY`] entries timed
/// `now_secs`; returns the final size.
pub fn fill(dir: &Path, requests: u64, now_secs: u64) -> u64 {
    std::fs::create_dir_all(dir).expect("data dir");
    let node_key = key::load_or_create(dir).expect("node key");
    let signer = pyrsia_core::identity::SecretKey::from_seed(node_key.to_seed());
    let requester = signer.public().key_id();
    let log = Log::open(dir, node_key, None, now_secs).expect("open the log");
    let origin = log.origin();
    let mut tree = MerkleTree::new();
    tree.push(&log.genesis());
    let mut done = 0;
    while done < requests {
        let chunk = (requests - done).min(MAX_ENTRIES_PER_APPLY);
        let entries: Vec<Vec<u8>> = (done..done + chunk)
            .map(|i| {
                let name = format!("docker.io/history/image{i}");
                let version = pyrsia_core::digest::Digest::sha256(name.as_bytes()).to_string();
                Entry::BuildRequest(BuildRequest {
                    coordinates: Coordinates {
                        ecosystem: "docker",
                        name: &name,
                        version: &version,
                    },
                    build_type: DOCKER_FETCH_V1,
                    source: "https://registry-1.docker.io",
                    requester,
                })
                .encode()
            })
            .collect();
        for bytes in &entries {
            tree.push(bytes);
        }
        let size = tree.size();
        let checkpoint = Checkpoint {
            origin: heapless::String::try_from(origin.as_str()).expect("origin"),
            size,
            root: tree.root(size).expect("root"),
            timestamp: now_secs,
        };
        let mut note = SignedCheckpoint::unsigned(checkpoint.clone());
        note.add(checkpoint.sign(&signer)).expect("one cosignature");
        let applied = log
            .apply_checkpoint(&note, &entries)
            .expect("the history is a valid log");
        assert_eq!(
            applied,
            Applied::Extended(size),
            "the history extends the log"
        );
        done += chunk;
    }
    log.size()
}
