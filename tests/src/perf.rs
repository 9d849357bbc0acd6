//! `perf record` around one stretch of a benchmark: the benches start it when
//! `PYRSIA_BENCH_PERF=<file>` asks for a profile of the measured part alone (not the pushes,
//! node starts or upstream fetches before it). Read the file with `perf report -i <file>`.
//! `PYRSIA_BENCH_PERF_CALL_GRAPH=dwarf` records call stacks by DWARF unwinding (the release
//! build keeps no frame pointers, so the default stacks stop at the first frame; DWARF costs
//! more while recording).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// What a profile samples.
pub enum Sampled<'a> {
    /// These processes only (`perf record -p`).
    Processes(&'a [u32]),
    /// Every CPU of the machine (`perf record -a`): every node, client and the registry.
    Machine,
}

/// A running `perf record`; [`Profile::stop`] makes it write its file.
pub struct Profile {
    recorder: Child,
}

impl Profile {
    /// Starts a profile writing `out` when `PYRSIA_BENCH_PERF=<file>` is set (the file
    /// name is `<file>` with `suffix` appended); `None` when it is not.
    pub fn if_asked(sampled: Sampled<'_>, suffix: &str) -> Option<Profile> {
        let out = std::env::var("PYRSIA_BENCH_PERF").ok()?;
        Some(Profile::start(&format!("{out}{suffix}"), sampled))
    }

    /// Starts `perf record` with call stacks at 4,000 samples a second (1,000 with DWARF
    /// stacks), writing `out`, and waits half a second for it to attach.
    pub fn start(out: &str, sampled: Sampled<'_>) -> Profile {
        let mut command = Command::new("perf");
        command.args(["record", "-o", out]);
        match std::env::var("PYRSIA_BENCH_PERF_CALL_GRAPH").as_deref() {
            Ok("dwarf") => command.args(["--call-graph", "dwarf", "-F", "1000"]),
            _ => command.args(["-g", "-F", "4000"]),
        };
        match sampled {
            Sampled::Processes(pids) => {
                let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
                command.args(["-p", &pids.join(",")]);
            }
            Sampled::Machine => {
                command.arg("-a");
            }
        }
        let recorder = command
            .stderr(Stdio::null())
            .spawn()
            .expect("perf record (install linux-perf)");
        std::thread::sleep(Duration::from_millis(500));
        Profile { recorder }
    }

    /// Stops the recorder the way Ctrl-C would, so that it writes its file.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.recorder.id().to_string()])
            .status();
        let _ = self.recorder.wait();
    }
}
