//! One timed fetch with curl whose body is discarded: what the benchmarks time a client by,
//! so that the client's own disk writes (as large as the blob, and on this VM costly: fresh
//! page cache is faulted in from the host) are not part of what is measured.

use std::process::Command;
use std::time::Instant;

/// What one discarded fetch took.
#[derive(Clone, Copy, Debug)]
pub struct Fetched {
    /// Wall seconds from starting curl to its exit.
    pub seconds: f64,
    /// The body's length, as curl counted it.
    pub bytes: u64,
}

/// Fetches `url` with `curl` (a `Command` for the curl program: `Command::new("curl")`, or
/// one run in a network namespace), discarding the body. `Err` carries curl's own words.
pub fn fetch_discarding(mut curl: Command, url: &str) -> Result<Fetched, String> {
    let started = Instant::now();
    let out = curl
        .args(["-sSf", "-o", "/dev/null", "-w", "%{size_download}", url])
        .output()
        .map_err(|e| format!("cannot run curl: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "curl {url} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let bytes = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("curl {url}: unreadable size_download: {e}"))?;
    Ok(Fetched { seconds, bytes })
}
