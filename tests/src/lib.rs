//! Harness for the end-to-end tests in `tests/tests/`: real parts started as processes on
//! 127.0.0.1 with free ports — Debian's `docker-registry` as the upstream, the `pyrsia`
//! binary as the node, skopeo, podman and ctr as clients — and deterministic test images.

pub mod background;
pub mod clients;
pub mod curl;
pub mod delay_line;
pub mod devpi;
pub mod docker;
pub mod edge;
pub mod fs;
pub mod gossip_attacker;
pub mod http;
pub mod image;
pub mod link_attacker;
pub mod log_liar;
pub mod long_log;
pub mod maven;
pub mod members;
pub mod netns;
pub mod node;
pub mod npm;
pub mod output;
pub mod perf;
pub mod process;
pub mod proxy;
pub mod pypi;
pub mod raw_peer;
pub mod reach;
pub mod rebuild;
pub mod registry;
pub mod stale;
pub mod tarpit;
pub mod tls;
pub mod tls_floor;
pub mod token;

use std::path::PathBuf;
use std::process::{Command, Output};

/// The workspace's target directory (`PYRSIA_TARGET_DIR` or `CARGO_TARGET_DIR` override it):
/// where the binaries and the test tools `scripts/test` installs (`test-tools/`) are.
pub fn target_dir() -> PathBuf {
    std::env::var_os("PYRSIA_TARGET_DIR")
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Path of a workspace binary (`pyrsia`, `pyrsia-lite`), built by
/// `cargo build --workspace --bins` before the tests run (the README's test command does this).
/// `PYRSIA_TARGET_DIR` overrides the target directory, `PYRSIA_PROFILE` the profile (`debug`
/// by default; the benchmark uses `release`). Panics when the binary is missing, or, in the
/// workspace's own target directory, older than a source it was built from ([`stale`]): a
/// test of the previous build would prove nothing about the edit. A `PYRSIA_TARGET_DIR` may
/// hold an older build on purpose (a benchmark's "before"), so its binaries are not checked.
pub fn binary(name: &str) -> PathBuf {
    let target = target_dir();
    let profile = std::env::var("PYRSIA_PROFILE").unwrap_or_else(|_| "debug".into());
    let path = target.join(profile).join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    // Checked once per binary and test process: tests start many nodes.
    static CHECKED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut checked = CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    if std::env::var_os("PYRSIA_TARGET_DIR").is_none()
        && !checked.contains(&path)
        && let Some(source) = stale::newer_source(&path)
    {
        panic!(
            "{} is older than {}, which it is built from: run `cargo build --workspace --bins` \
             first (`cargo test` does not rebuild the binaries the tests spawn)",
            path.display(),
            source.display()
        );
    }
    checked.push(path.clone());
    path
}

/// A command's stdout and stderr as text, for assertions and failure messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `pyrsia verify docker --image IMAGE --node URL` against `node`, with `extra` arguments.
pub fn verify_image(node: &node::Node, image: &str, extra: &[&str]) -> Output {
    let url = node.url();
    let mut args = vec!["verify", "docker", "--image", image, "--node", &url];
    args.extend_from_slice(extra);
    pyrsia(&args)
}

/// Runs the `pyrsia` binary with `args` and returns its output.
pub fn pyrsia(args: &[&str]) -> Output {
    Command::new(binary("pyrsia"))
        .args(args)
        .output()
        .expect("failed to start pyrsia")
}
