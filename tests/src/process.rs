//! Child processes that die with the test, free ports, and waiting for readiness.

use std::net::{TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The ports [`free_port`] hands out: below Linux's default ephemeral range (32768–60999),
/// so that no outgoing connection (the nodes dial each other all the time) takes a port
/// between the check here and the daemon's bind. Port 0 would pick one inside that range;
/// a node then failed with "Address already in use" now and then.
const PORTS: std::ops::Range<u32> = 20_000..32_000;

/// A port on 127.0.0.1 free for both TCP and UDP (bound, released: a node listens for QUIC on
/// the UDP port of its TCP port's number), never handed out twice by this process.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let span = PORTS.end - PORTS.start;
    // Test binaries run one after another; each starts elsewhere in the range.
    let offset = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = PORTS.start + (offset + n) % span;
        let port = u16::try_from(port).expect("the range is below 65536");
        if TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port in {PORTS:?}")
}

/// A child process killed (SIGKILL) when dropped, with its output in a log file.
pub struct Daemon {
    child: Option<Child>,
    /// Where its stdout and stderr go.
    pub log: std::path::PathBuf,
}

impl Daemon {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub fn spawn(mut command: Command, log: &Path) -> Daemon {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).expect("log dir");
        }
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        let err = out.try_clone().expect("clone log");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Daemon {
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends SIGTERM and waits for a clean exit; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process was started and not killed (it may have exited by itself).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// SIGKILL, as a crash or power loss would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits up to `timeout` for the process to exit by itself: its status, or `None` if it
    /// is still running (it is left running).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `url` until it answers 200, or panics after `timeout` with `context`.
pub fn wait_http_ok(url: &str, timeout: Duration, context: &dyn Fn() -> String) {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if agent.get(url).call().is_ok_and(|r| r.status() == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} did not become ready in {timeout:?}\n{}", context());
}

/// Polls `done` every 20 ms until it holds, or panics after `timeout` saying `what` never
/// happened, with `context` (a node's log, say).
pub fn wait_until(
    what: &str,
    timeout: Duration,
    context: &dyn Fn() -> String,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// CPU seconds (user + system) process `pid` has used so far (`/proc/<pid>/stat`; the
/// process's threads together).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/<pid>/stat");
    // Fields after the command name (which ends with the last ')'): utime is the 12th and
    // stime the 13th of them, in clock ticks (100 per second on Linux).
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Busy CPU time of the whole machine since boot, in seconds (`/proc/stat`'s first line:
/// user, nice, system, irq and softirq; idle, iowait and steal left out), at the kernel's
/// 100 ticks per second.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .expect("/proc/stat's cpu line")
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().expect("a tick count"))
        .collect();
    let busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6];
    busy as f64 / 100.0
}
