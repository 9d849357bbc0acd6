//! What the tests say about a client or CLI process they ran: its output as text, and the
//! assertion that it succeeded, printing its output and the nodes' logs when it did not.

use std::process::Output;

/// A process's stdout followed by its stderr, lossily decoded.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Fails the test unless `out` is a success, showing `what` ran, its output and `logs()`.
pub fn assert_ok(out: &Output, what: &str, logs: &dyn Fn() -> String) {
    assert!(
        out.status.success(),
        "{what} failed\n{}\n{}",
        text(out),
        logs()
    );
}
