//! The Debian package, installed for real: `scripts/package` builds it, `apt-get install`
//! installs it on this machine (root, as CI runs), `systemd-analyze verify` accepts its unit,
//! the system user, state dir and config file exist, and the installed binary, run as that
//! user with the installed config, serves a skopeo pull from the test registry. Then the
//! package is purged and leaves nothing behind.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use pyrsia_tests::clients::{assert_succeeded, skopeo_copy};
use pyrsia_tests::image::push_standard_images;
use pyrsia_tests::output_text;
use pyrsia_tests::process::{Daemon, free_port, wait_http_ok};
use pyrsia_tests::registry::Registry;

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed:\n{}", output_text(out));
}

/// Purges the package when the test ends, however it ends.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("apt-get", &["purge", "-y", "-qq", "pyrsia"]);
    }
}

#[test]
fn the_debian_package_installs_and_its_binary_serves_a_pull() {
    assert!(
        running_as_root(),
        "this test installs a package: run it as root (CI does)"
    );
    let work = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(root.join("scripts/package"))
        .args(["--profile", "debug", "--out"])
        .arg(work.path())
        .output()
        .expect("scripts/package");
    assert_ok(&out, "scripts/package");
    let deb = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        deb.ends_with(".deb") && Path::new(&deb).exists(),
        "{}",
        output_text(&out)
    );

    let contents = output_text(&run("dpkg-deb", &["--contents", &deb]));
    for path in [
        "./usr/bin/pyrsia",
        "./usr/bin/pyrsia-lite",
        "./lib/systemd/system/pyrsia.service",
        "./etc/pyrsia/config.toml",
    ] {
        assert!(
            contents.contains(path),
            "the package lacks {path}:\n{contents}"
        );
    }

    let _purge = Purge;
    assert_ok(
        &run("apt-get", &["install", "-y", "-qq", &deb]),
        "apt-get install",
    );
    let verify = run(
        "systemd-analyze",
        &["verify", "/lib/systemd/system/pyrsia.service"],
    );
    assert_ok(&verify, "systemd-analyze verify");
    assert!(
        output_text(&verify).trim().is_empty(),
        "systemd-analyze has remarks:\n{}",
        output_text(&verify)
    );
    assert_ok(&run("id", &["pyrsia"]), "the pyrsia system user");
    let shown = run(
        "/usr/bin/pyrsia",
        &["config", "--config", "/etc/pyrsia/config.toml", "show"],
    );
    assert_ok(&shown, "pyrsia config show");
    assert!(
        output_text(&shown).contains("data-dir = \"/var/lib/pyrsia\"  # file"),
        "{}",
        output_text(&shown)
    );

    // The installed binary, as the service runs it (its user, its config), on a test port
    // with the test registry as its upstream.
    let registry = Registry::start(&work.path().join("registry"));
    push_standard_images(work.path(), &registry.authority());
    let port = free_port();
    // setpriv execs the node as the user (runuser would stand between, and kill it 2 s
    // after passing on a SIGTERM).
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=pyrsia", "--regid=pyrsia", "--init-groups", "--"])
        .args(["/usr/bin/pyrsia", "node"])
        .args(["--config", "/etc/pyrsia/config.toml"])
        .args(["--http", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &registry.url(), "--no-mdns"])
        .args([
            "--p2p-listen",
            &format!("/ip4/127.0.0.1/tcp/{}", free_port()),
        ]);
    let mut node = Daemon::spawn(command, &work.path().join("installed-node.log"));
    wait_http_ok(
        &format!("http://127.0.0.1:{port}/healthz"),
        Duration::from_secs(20),
        &|| node.log_text(),
    );
    let out = skopeo_copy(
        &format!("127.0.0.1:{port}"),
        "library/small:small",
        &work.path().join("copy"),
    );
    assert_succeeded(&out, "skopeo through the installed node", &node.log_text());
    assert!(
        node.log_text().contains("data_dir=/var/lib/pyrsia"),
        "the installed config's data dir is used:\n{}",
        node.log_text()
    );
    assert!(
        node.terminate(),
        "the node stops cleanly on SIGTERM:\n{}",
        node.log_text()
    );

    assert_ok(
        &run("apt-get", &["purge", "-y", "-qq", "pyrsia"]),
        "apt-get purge",
    );
    assert!(
        !Path::new("/usr/bin/pyrsia").exists(),
        "purge removes the binary"
    );
    assert!(
        !Path::new("/var/lib/pyrsia").exists(),
        "purge removes the state dir"
    );
    assert!(
        !run("id", &["pyrsia"]).status.success(),
        "purge removes the user"
    );
}

fn running_as_root() -> bool {
    run("id", &["-u"]).stdout.starts_with(b"0\n")
}
