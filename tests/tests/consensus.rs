//! The verified-build consensus with member processes on 127.0.0.1 (n = 4, f = 1) and a real
//! upstream registry: members order requests with Tendermint, the selected builders fetch the
//! image themselves and attest, f+1 matching attestations commit it, and the checkpoint's
//! cosignatures are the deciding precommits (a quorum: 3 of 4). A byzantine member that attests a wrong
//! digest loses and is kept as evidence; a member killed mid-round does not stop the others,
//! and catches up when it comes back; `pyrsia authorize` by a quorum of operators adds a member.

use std::time::Duration;

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::members::{Members, node_key};
use pyrsia_tests::node::Node;
use pyrsia_tests::pyrsia;
use pyrsia_tests::registry::Registry;

const SMALL: &str = "docker.io/library/small";
const MULTI: &str = "docker.io/team/multi";

fn none(_: usize) -> Vec<String> {
    Vec::new()
}

#[test]
fn four_members_build_attest_and_commit_with_a_cosigned_checkpoint() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let refresh = |_| vec!["--checkpoint-refresh".to_string(), "4".to_string()];
    let members = Members::start(work.path(), &registry.url(), 4, &refresh);

    // The CLI asks member 1 to verify; it follows the request until the members commit it.
    let out = pyrsia(&[
        "build",
        "docker",
        "--image",
        "library/small:small",
        "--node",
        &members.nodes[1].url(),
        "--timeout",
        "120",
    ]);
    assert!(
        out.status.success(),
        "pyrsia build: {}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        members.logs()
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("committed"), "{printed}");
    members.wait_committed(&[0, 1, 2, 3], SMALL, &images[0].digest);

    // The final checkpoint carries at least q = 3 member cosignatures (n = 4).
    let note =
        pyrsia_tests::http::get(&format!("{}/pyrsia/log/checkpoint", members.nodes[2].url()))
            .unwrap()
            .small_body;
    let cosignatures = note.lines().filter(|l| l.starts_with("— ")).count();
    assert!(
        cosignatures >= 3,
        "checkpoint with {cosignatures} cosignatures:\n{note}"
    );
    members.verify(&members.nodes[3], "library/small:small");

    // Every member built it itself: each attested from its own fetch of the upstream.
    let builders = members
        .nodes
        .iter()
        .filter(|n| n.log().contains("built: attesting"))
        .count();
    assert!(
        builders >= 2,
        "only {builders} members built\n{}",
        members.logs()
    );
    // `pyrsia build` fetched only the manifest: every fetch of the layer from the upstream was
    // a builder's own (they never take attested bytes from peers).
    let layer = images[0].layers[0].blob.digest.to_string();
    assert!(
        registry.blob_gets(&layer) >= builders,
        "{} upstream fetches of the layer for {builders} builders",
        registry.blob_gets(&layer)
    );
    // The log holds the genesis, the request, the tag observation and the commit, once.
    let size = members.nodes[0].log_status()["size"].as_u64().unwrap();
    assert_eq!(size, 4, "{}", members.logs());
    // A second pull of the committed image requests nothing new.
    let out = skopeo_copy(
        &members.nodes[0].authority(),
        "library/small:small",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "small through member 0", &members.nodes[0].log());
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        members.nodes[0].log_status()["size"].as_u64().unwrap(),
        size
    );

    // A quiet log still gets fresh checkpoints: the members order empty batches (heartbeats)
    // once the last one is older than --checkpoint-refresh, cosigned like any other.
    let timestamp = |note: &str| {
        note.lines()
            .find_map(|l| l.strip_prefix("timestamp "))
            .and_then(|t| t.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    let first = timestamp(&note);
    assert!(first > 0, "{note}");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let url = format!("{}/pyrsia/log/checkpoint", members.nodes[1].url());
        let now = pyrsia_tests::http::get(&url).unwrap().small_body;
        if timestamp(&now) > first + 3 {
            let cosigned = now.lines().filter(|l| l.starts_with("— ")).count();
            assert!(cosigned >= 3, "{now}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no heartbeat checkpoint\n{now}\n{}",
            members.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        members.nodes[1].log_status()["size"].as_u64().unwrap(),
        size
    );
}

#[test]
fn a_byzantine_member_attesting_a_wrong_digest_loses_and_is_kept_as_evidence() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let byzantine = |i: usize| {
        if i == 3 {
            vec!["--test-byzantine".to_string(), "wrong-digest".to_string()]
        } else {
            Vec::new()
        }
    };
    let members = Members::start(work.path(), &registry.url(), 4, &byzantine);
    let out = skopeo_copy(
        &members.nodes[0].authority(),
        "team/multi:multi",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "multi through member 0", &members.nodes[0].log());
    members.wait_committed(&[0, 1, 2, 3], MULTI, &images[1].digest);
    // The correct digests were committed: the image verifies blob by blob.
    members.verify(&members.nodes[1], "team/multi:multi");
    assert!(
        members.nodes[3].log().contains("TEST BYZANTINE MEMBER"),
        "{}",
        members.logs()
    );
    // The honest members keep the contradicting attestation as evidence.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let honest_with_evidence = (0..3)
            .filter(|&i| {
                members.nodes[i].log_status()["evidence"]
                    .as_u64()
                    .unwrap_or(0)
                    > 0
            })
            .count();
        if honest_with_evidence >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no evidence kept\n{}",
            members.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        members
            .logs()
            .contains("EVIDENCE: a member attested outputs that contradict")
    );
}

#[test]
fn a_member_killed_mid_round_does_not_stop_the_others_and_catches_up() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let mut members = Members::start(work.path(), &registry.url(), 4, &none);

    // A request enters, and member 3 dies while the round runs.
    let out = skopeo_copy(
        &members.nodes[1].authority(),
        "library/small:small",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "small through member 1", &members.nodes[1].log());
    members.nodes[3].kill();
    members.wait_committed(&[0, 1, 2], SMALL, &images[0].digest);

    // The three left (a quorum of 4) keep ordering: another image commits without member 3.
    let out = skopeo_copy(
        &members.nodes[2].authority(),
        "team/multi:multi",
        &work.path().join("copy2"),
    );
    assert_succeeded(&out, "multi through member 2", &members.nodes[2].log());
    members.wait_committed(&[0, 1, 2], MULTI, &images[1].digest);

    // Member 3 comes back with its data and catches up with the log.
    let restarted = members.start_member(3, &[]);
    members.nodes[3] = restarted;
    members.wait_committed(&[3], MULTI, &images[1].digest);
    members.verify(&members.nodes[3], "team/multi:multi");

    // `pyrsia authorize` on q = 3 members adds a fifth (then q = 4 of 5); the log orders the change.
    let newcomer_dir = work.path().join("newcomer");
    let key = node_key(&newcomer_dir);
    // Only the operator endorses: without the data dir's token, or from a web page (an
    // Origin, as a browser sends on a cross-site or DNS-rebound request), it is refused.
    let endorse = format!("POST /pyrsia/members/endorse?op=add&key={key} HTTP/1.1");
    let token = std::fs::read_to_string(members.dirs[0].join("data/operator-token")).unwrap();
    let attempts = [
        endorse.clone(),
        format!("{endorse}\r\nAuthorization: Bearer {}", "0".repeat(64)),
        format!(
            "{endorse}\r\nAuthorization: Bearer {}\r\nOrigin: http://rebound.example",
            token.trim()
        ),
    ];
    for attempt in &attempts {
        let (status, body) = pyrsia_tests::http::raw(&members.nodes[0].authority(), attempt);
        assert_eq!(status, 403, "{attempt}: {body}");
    }
    assert!(
        !members.nodes[0]
            .log()
            .contains("endorsing a membership change"),
        "an endorsement without the operator token was signed\n{}",
        members.nodes[0].log()
    );
    for i in 0..3 {
        let data_dir = members.dirs[i].join("data");
        let out = pyrsia(&[
            "authorize",
            "--key",
            &key,
            "--node",
            &members.nodes[i].url(),
            "--data-dir",
            data_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "authorize on member {i}: {out:?}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while (0..4).any(|i| members.nodes[i].log_status()["members"].as_u64() != Some(5)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the fifth member was not added\n{}",
            members.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Endorsing from a node that is not a member is refused.
    let newcomer = Node::start(
        &newcomer_dir,
        &[
            "--genesis",
            members.genesis.to_str().unwrap(),
            "--peer",
            &members.nodes[0].p2p_address(),
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while newcomer.log_status()["member"] != serde_json::json!(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "the newcomer did not learn it is a member\n{}",
            newcomer.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let stranger = node_key(&work.path().join("stranger"));
    let outsider_dir = work.path().join("outsider");
    let outsider = Node::start(&outsider_dir, &[]);
    let refused = pyrsia(&[
        "authorize",
        "--key",
        &stranger,
        "--node",
        &outsider.url(),
        "--data-dir",
        outsider_dir.join("data").to_str().unwrap(),
    ]);
    assert!(
        !refused.status.success(),
        "a sole-member node endorsed a change"
    );
    // Every node here is honest: none blamed another, through the kill, the restart and the
    // change of epoch (the checkpoint that added the fifth member carries the old epoch's
    // signatures, and is announced again under the new one).
    for node in members.nodes.iter().chain([&newcomer]) {
        assert!(
            !node.log().contains("peer misbehaved"),
            "an honest peer was struck\n{}",
            node.log()
        );
    }
}
