//! PROTOCOL cases 30 and 31 with member processes (n = 4, q = 3): two members cut off from
//! the other two (here: the other two are down) are a minority. They cannot finalise
//! anything — a request made on their side stays unordered and no checkpoint grows — and they
//! keep serving what was committed, which a light client still verifies. When the partition
//! heals, the request is ordered and committed on every member, on one log.

use std::time::{Duration, Instant};

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::members::Members;
use pyrsia_tests::node::Node;
use pyrsia_tests::registry::Registry;

const SMALL: &str = "docker.io/library/small";
const MULTI: &str = "docker.io/team/multi";

/// A heartbeat every 2 s: a majority would order something every few seconds.
fn refresh(_: usize) -> Vec<String> {
    vec!["--checkpoint-refresh".into(), "2".into()]
}

/// The node's latest checkpoint: size and root line.
fn checkpoint(node: &Node) -> (u64, String) {
    let note = pyrsia_tests::http::get(&format!("{}/pyrsia/log/checkpoint", node.url()))
        .unwrap()
        .small_body;
    let mut lines = note.lines().skip(1);
    let size = lines.next().and_then(|l| l.parse().ok()).unwrap_or(0);
    (size, lines.next().unwrap_or_default().to_string())
}

#[test]
fn a_minority_cannot_finalise_keeps_serving_and_catches_up_when_the_partition_heals() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let mut members = Members::start(work.path(), &registry.url(), 4, &refresh);
    let out = skopeo_copy(
        &members.nodes[0].authority(),
        "library/small:small",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "small through member 0", &members.nodes[0].log());
    members.wait_committed(&[0, 1, 2, 3], SMALL, &images[0].digest);
    members.wait_tag_observed(&[0, 1, 2, 3], SMALL, "small", &images[0].digest);

    // Members 2 and 3 go away: 0 and 1 are two of four, short of the quorum of 3.
    members.nodes[2].kill();
    members.nodes[3].kill();
    let before: Vec<(u64, String)> = [0, 1].map(|i| checkpoint(&members.nodes[i])).to_vec();

    // A pull on the minority side passes through (the mirror needs no quorum) and asks for
    // its verification, which cannot be ordered.
    let out = skopeo_copy(
        &members.nodes[1].authority(),
        "team/multi:multi",
        &work.path().join("copy-minority"),
    );
    assert_succeeded(&out, "multi through member 1", &members.nodes[1].log());
    let watch_until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < watch_until {
        for (i, old) in [0, 1].iter().zip(&before) {
            assert_eq!(
                &checkpoint(&members.nodes[*i]),
                old,
                "member {i} finalised a checkpoint without a quorum\n{}",
                members.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    for i in [0, 1] {
        let url = format!(
            "{}/pyrsia/log/lookup?name={MULTI}&digest={}",
            members.nodes[i].url(),
            images[1].digest
        );
        let answer: serde_json::Value =
            serde_json::from_str(&pyrsia_tests::http::get(&url).unwrap().small_body).unwrap();
        assert!(
            answer["commit"].is_null() && answer["request"].is_null(),
            "member {i} ordered or committed without a quorum: {answer}"
        );
    }

    // What was committed is still served, and a light client still verifies it.
    let out = skopeo_copy(
        &members.nodes[0].authority(),
        "library/small:small",
        &work.path().join("copy-again"),
    );
    assert_succeeded(
        &out,
        "small again on the minority side",
        &members.nodes[0].log(),
    );
    members.verify(&members.nodes[0], "library/small:small");

    // The partition heals: the request made on the minority side is ordered and committed
    // on every member, and every member holds the same log.
    members.nodes[2] = members.start_member(2, &refresh(2));
    members.nodes[3] = members.start_member(3, &refresh(3));
    members.wait_committed(&[0, 1, 2, 3], MULTI, &images[1].digest);
    for i in 0..4 {
        members.verify(&members.nodes[i], "team/multi:multi");
    }
    let size = (0..4)
        .map(|i| checkpoint(&members.nodes[i]).0)
        .min()
        .unwrap();
    let logs: Vec<Vec<[u8; 32]>> = (0..4)
        .map(|i| {
            (0..size)
                .map(|index| {
                    let url = format!("{}/pyrsia/log/entries/{index}", members.nodes[i].url());
                    *pyrsia_tests::http::get(&url)
                        .unwrap()
                        .body_digest
                        .as_bytes()
                })
                .collect()
        })
        .collect();
    assert!(
        logs.windows(2).all(|w| w[0] == w[1]),
        "the members hold different logs after healing\n{}",
        members.logs()
    );
    assert!(!members.logs().contains("FORK"), "{}", members.logs());
}
