//! Shared harness for the end-to-end tests in `tests/tests/`: finds the built binaries and
//! runs them as separate processes, the way users and CI run them.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of a workspace binary (`pyrsia`, ...), built by `cargo build --workspace --bins`
/// before the tests run (the README's test command does this). `PYRSIA_TARGET_DIR` overrides
/// the target directory.
pub fn binary(name: &str) -> PathBuf {
    let target = std::env::var_os("PYRSIA_TARGET_DIR")
        .or_else(|| std::env::var_os("CARGO_TARGET_DIR"))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let path = target.join("debug").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Runs the `pyrsia` binary with `args` and returns its output.
pub fn pyrsia(args: &[&str]) -> Output {
    Command::new(binary("pyrsia"))
        .args(args)
        .output()
        .expect("failed to start pyrsia")
}
