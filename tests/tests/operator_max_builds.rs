//! `--max-builds` on real member processes: four members, each with `--max-builds 1`, are
//! asked to verify six images at once from an upstream that holds every blob download for a
//! second (a slow registry behind the fault proxy). Each selected member builds one image at
//! a time, so the upstream never sees more blob downloads at once than there are members —
//! without the cap twelve builds (two builders per image) would fetch together — and every
//! image is still committed.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pyrsia_tests::binary;
use pyrsia_tests::image::{Layout, OCI_MANIFEST};
use pyrsia_tests::members::Members;
use pyrsia_tests::proxy::{Fault, FaultProxy};
use pyrsia_tests::registry::Registry;

const IMAGES: usize = 6;
const MEMBERS: usize = 4;

#[test]
fn each_member_runs_at_most_max_builds_builds_at_once() {
    let work = tempfile::tempdir().unwrap();
    let registry = Registry::start(&work.path().join("registry"));
    let mut digests = Vec::new();
    for i in 0..IMAGES {
        let mut layout = Layout::new(&work.path().join(format!("layout{i}")));
        let layer = layout.gzip_layer(&[("id.txt", format!("image {i}\n").into_bytes())]);
        let manifest = layout.manifest(&[layer], "amd64");
        layout.tag(&manifest, OCI_MANIFEST, "1");
        layout.push("1", &registry.authority(), &format!("library/img{i}"), None);
        digests.push(manifest.digest);
    }
    let proxy = FaultProxy::start(&registry.url());
    proxy.set_fault(Fault::HoldBlobs(Duration::from_secs(1)));
    let cap = |_| vec!["--max-builds".to_string(), "1".to_string()];
    let members = Members::start(work.path(), &proxy.url(), MEMBERS, &cap);

    // Six `pyrsia build` at once, all through member 0.
    let builds: Vec<Child> = (0..IMAGES)
        .map(|i| {
            Command::new(binary("pyrsia"))
                .args(["build", "docker", "--image", &format!("library/img{i}:1")])
                .args(["--node", &members.nodes[0].url(), "--timeout", "150"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("pyrsia build")
        })
        .collect();
    for (i, build) in builds.into_iter().enumerate() {
        let out = build.wait_with_output().expect("pyrsia build");
        assert!(
            out.status.success(),
            "pyrsia build library/img{i}:1: {}\n{}",
            pyrsia_tests::output_text(&out),
            members.logs()
        );
    }
    for (i, digest) in digests.iter().enumerate() {
        members.wait_committed(&[0], &format!("docker.io/library/img{i}"), digest);
    }
    let most = proxy.most_held_at_once();
    assert!(
        most <= MEMBERS,
        "{most} blob downloads at once: more than one build per member ran at a time"
    );
    assert!(
        most >= 2,
        "the members built side by side ({most} at most at once)"
    );
}
