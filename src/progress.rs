//! Progress on stderr: an `indicatif` bar (steps/s, ETA, a message such as the loss) when stderr
//! is a terminal; one plain line every 10 seconds (and at the end) when it is not, so logs get
//! lines instead of carriage returns; nothing with `--quiet`.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static QUIET: AtomicBool = AtomicBool::new(false);

/// `--quiet`: no progress output at all (errors and results are still printed).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// A one-line note on stderr (a conversion made, a default taken), unless `--quiet`.
pub fn note(msg: &str) {
    if !QUIET.load(Ordering::Relaxed) {
        eprintln!("note: {msg}");
    }
}

/// Seconds between two plain lines when stderr is not a terminal.
pub const LINE_INTERVAL: Duration = Duration::from_secs(10);

/// One task's progress.
pub struct Progress {
    what: String,
    total: u64,
    bar: Option<ProgressBar>,
    lines: bool,
    t0: Instant,
    last: Instant,
    done: u64,
}

impl Progress {
    /// Progress of `what` over `total` units, timed from now.
    pub fn new(what: &str, total: u64) -> Progress {
        Progress::since(what, total, Instant::now())
    }

    /// The same for a task that began at `t0` (rates and ETA count from there).
    pub fn since(what: &str, total: u64, t0: Instant) -> Progress {
        let quiet = QUIET.load(Ordering::Relaxed);
        let term = std::io::stderr().is_terminal();
        let bar = (!quiet && term).then(|| {
            let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{prefix} [{bar:24}] {pos}/{len} {per_sec} ETA {eta} {msg}")
                .expect("a valid template")
                .progress_chars("#> ");
            b.set_style(style);
            b.set_prefix(what.to_string());
            b
        });
        if let Some(b) = &bar {
            b.reset_elapsed();
        }
        Progress { what: what.into(), total, bar, lines: !quiet && !term, t0, last: Instant::now(), done: 0 }
    }

    /// `done` of the total, with a message (e.g. "loss 0.1234").
    pub fn set(&mut self, done: u64, msg: &str) {
        self.done = done;
        if let Some(b) = &self.bar {
            b.set_position(done);
            b.set_message(msg.to_string());
        } else if self.lines && (self.last.elapsed() >= LINE_INTERVAL || done >= self.total) {
            self.last = Instant::now();
            let secs = self.t0.elapsed().as_secs_f64();
            let rate = done as f64 / secs.max(1e-9);
            let eta = (self.total.saturating_sub(done)) as f64 / rate.max(1e-9);
            eprintln!(
                "{}: {done}/{} ({:.1}%) {rate:.2}/s ETA {eta:.0} s {msg}",
                self.what,
                self.total,
                100.0 * done as f64 / self.total.max(1) as f64
            );
        }
    }

    /// Leave the bar's last state on screen.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
