//! PROTOCOL case 22 with member processes (n = 4, every member a selected builder): member 3
//! fetches through a lying upstream that serves manifests whose bytes do not match the
//! digest asked for. Its build fails and it attests nothing; the other three commit the real
//! digest, the commit carries no attestation of member 3, and member 3 never serves the lie
//! under that digest.

use std::time::Duration;

use pyrsia_core::tlog::entry::Entry;
use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::http::{get, get_bytes};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::members::Members;
use pyrsia_tests::process::wait_until;
use pyrsia_tests::proxy::{Fault, FaultProxy};
use pyrsia_tests::registry::Registry;

const SMALL: &str = "docker.io/library/small";
const LIAR: usize = 3;

#[test]
fn a_member_whose_upstream_lies_attests_nothing_and_the_others_commit() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let images = push_standard_images(work.path(), &registry.authority());
    let proxy = FaultProxy::start(&registry.url());
    proxy.set_fault(Fault::GarbleManifests { keep_digest: true });
    let lying_url = proxy.url();
    let extra = move |i: usize| {
        if i == LIAR {
            vec!["--upstream".to_string(), lying_url.clone()]
        } else {
            Vec::new()
        }
    };
    let members = Members::start(work.path(), &registry.url(), 4, &extra);
    let digest = images[0].digest;

    let out = skopeo_copy(
        &members.nodes[0].authority(),
        "library/small:small",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "small through member 0", &members.nodes[0].log());
    members.wait_committed(&[0, 1, 2, LIAR], SMALL, &digest);
    wait_until(
        "the member behind the lying upstream gives its build up",
        Duration::from_secs(30),
        &|| members.nodes[LIAR].log(),
        || {
            members.nodes[LIAR]
                .log()
                .contains("build failed; not attesting")
        },
    );
    assert!(
        members.nodes[LIAR]
            .log()
            .contains("upstream manifest does not match its digest"),
        "{}",
        members.nodes[LIAR].log()
    );

    // The commit holds f+1 or more attestations, none of them member 3's.
    let liar_key = members.nodes[LIAR].log_status()["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    let lookup = format!(
        "{}/pyrsia/log/lookup?name={SMALL}&digest={digest}",
        members.nodes[0].url()
    );
    let found: serde_json::Value = serde_json::from_str(&get(&lookup).unwrap().small_body).unwrap();
    let index = found["commit"].as_u64().expect("committed");
    let url = format!("{}/pyrsia/log/entries/{index}", members.nodes[0].url());
    let (status, bytes) = get_bytes(&url).unwrap();
    assert_eq!(status, 200, "{url}");
    let Ok(Entry::Commit(commit)) = Entry::decode(&bytes) else {
        panic!("entry {index} is not a commit");
    };
    let signers: Vec<String> = commit
        .attestations
        .iter()
        .map(|a| a.signer.to_string())
        .collect();
    assert!(signers.len() >= 2, "{signers:?}");
    assert!(
        !signers.contains(&liar_key),
        "member 3 attested what its upstream lied about: {signers:?}"
    );

    // Member 3 serves the manifest only as its digest says (from its peers), never the lie.
    let manifest = get(&format!(
        "{}/v2/library/small/manifests/{digest}",
        members.nodes[LIAR].url()
    ))
    .unwrap();
    if manifest.status == 200 {
        assert_eq!(manifest.body_digest, digest, "member 3 served other bytes");
    }
    drop(proxy);
}
