//! The `pyrsia reference` command, run as a process: normalisation as users see it, and a
//! clear error with a non-zero exit for bad input.

use pyrsia_tests::pyrsia;

#[test]
fn normalises_docker_hub_references() {
    let out = pyrsia(&["reference", "alpine:3.20"]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("reference:  docker.io/library/alpine:3.20"),
        "{stdout}"
    );
    assert!(stdout.contains("repository: library/alpine"), "{stdout}");
}

#[test]
fn rejects_bad_references_with_a_clear_error() {
    for bad in ["../etc/passwd", "Alpine", "alpine@sha256:123", "alpine:"] {
        let out = pyrsia(&["reference", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains("invalid image reference"),
            "{bad}: {stderr}"
        );
    }
}
