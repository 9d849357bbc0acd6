//! PROTOCOL case 9, a split view, against member processes (n = 4, f = 1, q = 3). The
//! attacker is a log server written here: it passes every request through to an honest
//! member but answers `/pyrsia/log/checkpoint` with a checkpoint of its own: the members' size,
//! another root, signed with the member keys it holds. So one client sees the members' view and
//! another a forged one.
//!
//! - Within the fault bound (one member's key), the forged view has no quorum. `pyrsia verify`
//!   refuses it. A following node refuses it and fetches nothing it names. The same clients
//!   verify through an honest member.
//! - Beyond the bound (three stolen keys, a quorum), the forged view is quorum-signed, yet a
//!   client still cannot be shown an artifact under it: the proofs come from the real tree.
//!   And a node that holds the real view and is shown the forged one exposes the conflict: it
//!   refuses the checkpoint and keeps it as fork evidence.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyrsia_core::digest::Digest;
use pyrsia_core::identity::SecretKey;
use pyrsia_core::tlog::checkpoint::{Checkpoint, SignedCheckpoint};
use pyrsia_std::clock::unix_seconds;
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::members::{Members, ORIGIN};
use pyrsia_tests::node::Node;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::registry::Registry;

const SMALL: &str = "docker.io/library/small";

fn none(_: usize) -> Vec<String> {
    Vec::new()
}

/// A member's signing key, as the daemon derives it from the key file in its data dir.
fn member_key(members: &Members, i: usize) -> SecretKey {
    let node_key =
        pyrsia_std::log::key::load_or_create(&members.dirs[i].join("data")).expect("member key");
    SecretKey::from_seed(node_key.to_seed())
}

/// What the split-view server forges: the checkpoint's size and the keys that sign it.
struct Forgery {
    size: u64,
    signers: Vec<SecretKey>,
}

/// The attacker: a log server that passes everything through to `honest` except the
/// checkpoint. Returns its URL and a count of entry downloads it served.
fn split_view_server(honest: String, forgery: Arc<Mutex<Forgery>>) -> (String, Arc<Mutex<usize>>) {
    let (server, port) = pyrsia_tests::http::test_server();
    let entry_downloads = Arc::new(Mutex::new(0));
    let counted = entry_downloads.clone();
    std::thread::spawn(move || {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        for request in server.incoming_requests() {
            let url = request.url().to_string();
            if url == "/pyrsia/log/checkpoint" {
                let forgery = forgery.lock().unwrap();
                let checkpoint = Checkpoint::new(
                    ORIGIN,
                    forgery.size,
                    *Digest::sha256(b"a root the members never signed").as_bytes(),
                    unix_seconds(),
                )
                .expect("checkpoint");
                let mut note = SignedCheckpoint::unsigned(checkpoint.clone());
                for key in &forgery.signers {
                    note.add(checkpoint.sign(key)).expect("cosignature");
                }
                let _ = request.respond(tiny_http::Response::from_string(note.to_string()));
                continue;
            }
            if url.starts_with("/pyrsia/log/entries") {
                *counted.lock().unwrap() += 1;
            }
            let mut body = Vec::new();
            let status = match agent.get(&format!("{honest}{url}")).call() {
                Ok(mut answer) => {
                    let _ = answer.body_mut().as_reader().read_to_end(&mut body);
                    answer.status().as_u16()
                }
                Err(_) => 502,
            };
            let _ = request.respond(tiny_http::Response::from_data(body).with_status_code(status));
        }
    });
    (format!("http://127.0.0.1:{port}"), entry_downloads)
}

/// `pyrsia verify` of `image` through `node_url`: whether it verified, and what it printed.
fn verify(members: &Members, node_url: &str, image: &str) -> (bool, String) {
    let out = members.verify_output(node_url, image);
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_split_view_needs_a_quorum_and_a_forged_quorum_is_exposed_as_a_fork() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let members = Members::start(work.path(), &registry.url(), 4, &none);
    let out = skopeo_copy(
        &members.nodes[0].authority(),
        &images[0].reference,
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "skopeo through member 0", &members.logs());
    members.wait_committed(&[0, 1, 2, 3], SMALL, &images[0].digest);
    members.verify(&members.nodes[1], "library/small:small");
    let size = members.nodes[0].log_status()["size"].as_u64().unwrap();

    // Within the bound: member 3 is byzantine and signs the forged view alone.
    let forgery = Arc::new(Mutex::new(Forgery {
        size,
        signers: vec![member_key(&members, 3)],
    }));
    let (liar, entry_downloads) = split_view_server(members.nodes[0].url(), forgery.clone());
    let (verified, printed) = verify(&members, &liar, "library/small:small");
    assert!(
        !verified,
        "a view signed by f members is refused:\n{printed}"
    );
    assert!(printed.contains("NOT VERIFIED checkpoint:"), "{printed}");
    let (verified, printed) = verify(&members, &members.nodes[2].url(), "library/small:small");
    assert!(verified, "the members' view verifies:\n{printed}");

    // A node following the liar refuses the checkpoint and fetches nothing it names.
    let genesis = members.genesis.to_str().unwrap().to_string();
    let follower_dir = work.path().join("follower");
    let follower = Node::start(&follower_dir, &["--genesis", &genesis, "--log-from", &liar]);
    wait_until(
        "the follower refuses the forged checkpoint",
        Duration::from_secs(30),
        &|| follower.log(),
        || {
            follower
                .log()
                .contains("checkpoint refused, nothing fetched")
        },
    );
    assert_eq!(*entry_downloads.lock().unwrap(), 0, "no entry fetched");
    assert_eq!(follower.log_status()["size"].as_u64(), Some(0));

    // The follower takes the members' view from an honest member.
    let honest = members.nodes[1].url();
    let follower = follower.restart(
        &follower_dir,
        &["--genesis", &genesis, "--log-from", &honest],
    );
    wait_until(
        "the follower holds the members' log",
        Duration::from_secs(30),
        &|| follower.log(),
        || follower.log_status()["size"].as_u64() >= Some(size),
    );
    let held = follower.log_status()["size"].as_u64().unwrap();
    let real_note = pyrsia_tests::http::get(&format!("{}/pyrsia/log/checkpoint", follower.url()))
        .unwrap()
        .small_body;

    // Beyond the bound: three stolen keys sign a forged view at the follower's size.
    {
        let mut forgery = forgery.lock().unwrap();
        forgery.size = held;
        forgery.signers = (1..4).map(|i| member_key(&members, i)).collect();
    }
    // A client still sees nothing verified under it: the proofs fit only the real tree.
    let (verified, printed) = verify(&members, &liar, "library/small:small");
    assert!(!verified, "a forged root has no proofs:\n{printed}");
    assert!(printed.contains("inclusion proof"), "{printed}");
    // The follower, shown the forged view, exposes the conflict: refused, kept as evidence.
    let follower = follower.restart(&follower_dir, &["--genesis", &genesis, "--log-from", &liar]);
    wait_until(
        "the follower keeps the conflicting checkpoint as fork evidence",
        Duration::from_secs(30),
        &|| follower.log(),
        || follower.log_status()["evidence"].as_u64() >= Some(1),
    );
    assert!(follower.log().contains("FORK"), "{}", follower.log());
    assert_eq!(follower.log_status()["size"].as_u64(), Some(held));
    let note = pyrsia_tests::http::get(&format!("{}/pyrsia/log/checkpoint", follower.url()))
        .unwrap()
        .small_body;
    let root = |note: &str| {
        SignedCheckpoint::parse(note)
            .map(|n| n.checkpoint.root)
            .ok()
    };
    assert!(root(&note).is_some());
    assert_eq!(
        root(&note),
        root(&real_note),
        "the follower keeps the members' root"
    );
}
