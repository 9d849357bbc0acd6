//! Progress for long CLI work, on stderr so that stdout keeps the results: a bar (indicatif)
//! when stderr is a terminal, plain lines when it is piped or redirected (CI logs, scripts),
//! where a bar's redraws would be noise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// Whether progress is drawn as bars (stderr is a terminal).
pub(crate) fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// A plain progress line is printed each time this share of a known total is passed.
const LINE_EVERY_PERCENT: u64 = 25;
/// Without a known total, a plain line every this many bytes.
const LINE_EVERY_BYTES: u64 = 64 << 20;

/// The progress of one transfer of bytes (fetched and hashed as they arrive).
pub(crate) struct ByteProgress {
    bar: Option<ProgressBar>,
    label: String,
    total: Option<u64>,
    done: u64,
    next_line: u64,
    started: Instant,
}

impl ByteProgress {
    /// Starts showing `label` for `total` bytes (unknown: `None`).
    pub(crate) fn start(label: &str, total: Option<u64>) -> ByteProgress {
        let bar = on_terminal().then(|| {
            let bar = match total {
                Some(total) => ProgressBar::new(total).with_style(
                    ProgressStyle::with_template(
                        "{msg:<24} [{bar:32}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {eta:>4}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template("{msg:<24} {spinner} {bytes:>10} {bytes_per_sec:>12}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                ),
            };
            bar.set_message(label.to_string());
            bar
        });
        ByteProgress {
            bar,
            label: label.to_string(),
            total,
            done: 0,
            next_line: line_step(total),
            started: Instant::now(),
        }
    }

    /// `n` more bytes arrived and were hashed.
    pub(crate) fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None => {
                // With a total, `next_line` counts percent; without one, bytes.
                let reached = match self.total {
                    Some(total) => self.done.saturating_mul(100) / total.max(1),
                    None => self.done,
                };
                if reached >= self.next_line && (self.total.is_none() || reached < 100) {
                    eprintln!("{}", self.line());
                    while self.next_line <= reached {
                        self.next_line += line_step(self.total);
                    }
                }
            }
        }
    }

    /// The transfer ended (verified or not: the caller says so on stdout).
    pub(crate) fn finish(self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{} done", self.line()),
        }
    }

    fn line(&self) -> String {
        let elapsed = self.started.elapsed().max(Duration::from_millis(1));
        let rate = self.done as f64 / elapsed.as_secs_f64() / 1e6;
        match self.total {
            Some(total) => format!(
                "{}: {} of {} bytes ({}%, {rate:.1} MB/s)",
                self.label,
                self.done,
                total,
                self.done
                    .saturating_mul(100)
                    .checked_div(total)
                    .unwrap_or(100)
            ),
            None => format!("{}: {} bytes ({rate:.1} MB/s)", self.label, self.done),
        }
    }
}

/// The step between plain lines: percent with a known total, bytes without.
fn line_step(total: Option<u64>) -> u64 {
    match total {
        Some(_) => LINE_EVERY_PERCENT,
        None => LINE_EVERY_BYTES,
    }
}

/// A long wait shown as a spinner with the current stage on a terminal; piped, the caller's
/// own stage lines are the progress and this draws nothing.
pub(crate) struct Stages {
    spinner: Option<ProgressBar>,
}

impl Stages {
    /// Starts the spinner (on a terminal).
    pub(crate) fn start() -> Stages {
        let spinner = on_terminal().then(|| {
            let spinner = ProgressBar::new_spinner().with_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            spinner.enable_steady_tick(Duration::from_millis(120));
            spinner
        });
        Stages { spinner }
    }

    /// Prints a stage line (above the spinner on a terminal).
    pub(crate) fn line(&self, text: &str) {
        match &self.spinner {
            Some(spinner) => spinner.println(text),
            None => println!("{text}"),
        }
    }

    /// Shows what is going on now next to the spinner (nothing when piped).
    pub(crate) fn status(&self, text: String) {
        if let Some(spinner) = &self.spinner {
            spinner.set_message(text);
        }
    }

    /// Removes the spinner.
    pub(crate) fn finish(self) {
        if let Some(spinner) = self.spinner {
            spinner.finish_and_clear();
        }
    }
}
