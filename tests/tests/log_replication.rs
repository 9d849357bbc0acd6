//! Log replication between node processes over libp2p on 127.0.0.1: a follower (another key,
//! the leader's genesis) learns the leader's checkpoints over gossipsub and fetches the
//! entries by request; it verifies before storing, serves in verified mode what the leader
//! committed, and catches up after a restart.

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::node::Node;
use pyrsia_tests::pyrsia;
use pyrsia_tests::registry::Registry;

#[test]
fn a_follower_replicates_the_log_and_serves_what_it_verified() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let leader = Node::start(
        &work.path().join("leader"),
        &["--upstream", &registry.url()],
    );
    let genesis = work.path().join("genesis.bin");
    leader.save_genesis(&genesis);
    let leader_address = leader.p2p_address();
    let follower_dir = work.path().join("follower");
    let follower_args = [
        "--upstream",
        &registry.url(),
        "--genesis",
        genesis.to_str().unwrap(),
        "--peer",
        &leader_address,
        "--verified-only",
    ];
    let follower = Node::start(&follower_dir, &follower_args);
    let leader_id = leader_address.rsplit('/').next().unwrap().to_string();
    follower.wait_connected(&leader_id);

    // Before the leader commits anything, the follower refuses to serve in verified mode.
    let out = skopeo_copy(
        &follower.authority(),
        "library/small:small",
        &work.path().join("copy"),
    );
    assert!(!out.status.success(), "served before any commit");

    // The leader mirrors and commits; the follower learns it over gossipsub.
    let out = skopeo_copy(
        &leader.authority(),
        "library/small:small",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "small through the leader", &leader.log());
    leader
        .wait_committed("docker.io/library/small", &images[0].digest)
        .expect("leader commit");
    follower
        .wait_committed("docker.io/library/small", &images[0].digest)
        .unwrap_or_else(|| panic!("replicated\n{}\n{}", follower.log(), leader.log()));
    let out = skopeo_copy(
        &follower.authority(),
        "library/small:small",
        &work.path().join("copy"),
    );
    assert_succeeded(
        &out,
        "small through the follower after replication",
        &follower.log(),
    );
    let out = pyrsia(&[
        "verify",
        "docker",
        "--image",
        "library/small:small",
        "--genesis",
        genesis.to_str().unwrap(),
        "--node",
        &follower.url(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // `pyrsia peers` on the follower lists the leader with bytes received from it.
    let out = pyrsia(&["peers", "--node", &follower.url()]);
    let peers = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && peers.contains(&leader_id),
        "{peers}"
    );
    let out = pyrsia(&["status", "--node", &follower.url()]);
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(status.contains("1 peer(s) connected"), "{status}");
    assert!(status.contains("member of a larger network"), "{status}");

    // The follower stops; the leader commits more; the restarted follower catches up on
    // connecting, from what it had persisted.
    let mut follower = follower;
    assert!(follower.terminate());
    let out = skopeo_copy(
        &leader.authority(),
        "team/multi:multi",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "multi through the leader", &leader.log());
    leader
        .wait_committed("docker.io/team/multi", &images[1].digest)
        .expect("leader commit");
    let follower = Node::start_with_p2p(
        "pyrsia",
        &follower_dir,
        follower.port,
        follower.p2p_port,
        &follower_args,
    );
    assert!(
        follower
            .wait_committed("docker.io/library/small", &images[0].digest)
            .is_some()
    );
    follower
        .wait_committed("docker.io/team/multi", &images[1].digest)
        .unwrap_or_else(|| panic!("caught up\n{}", follower.log()));
    let leader_size = pyrsia(&["log", "checkpoint", "--node", &leader.url()]).stdout;
    let follower_size = pyrsia(&["log", "checkpoint", "--node", &follower.url()]).stdout;
    let size = |note: &[u8]| {
        String::from_utf8_lossy(note)
            .lines()
            .nth(1)
            .map(str::to_string)
    };
    assert_eq!(size(&leader_size), size(&follower_size));
}
