//! Progress on stderr: a live line while a run goes on (only when stderr is a terminal), and
//! one summary line per finished run. Standard output carries only the results.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::report::{RunResult, run_label};

/// Interval between updates of the live line.
const REFRESH: Duration = Duration::from_millis(200);

/// ANSI sequence that returns to the start of the line and erases it.
const CLEAR_LINE: &str = "\r\x1b[2K";

/// The live progress line of one run.
pub struct ProgressLine {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl ProgressLine {
    /// Starts redrawing `label: done/total ops` on stderr, where `done` is read from `counter`.
    /// Draws nothing when stderr is not a terminal.
    pub fn start(label: String, total: u64, counter: Arc<AtomicU64>) -> Self {
        if !std::io::stderr().is_terminal() {
            return ProgressLine {
                stop: None,
                task: None,
            };
        }
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(REFRESH);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = ticks.tick() => {
                        let done = counter.load(Ordering::Relaxed);
                        let mut stderr = std::io::stderr().lock();
                        let _ = write!(stderr, "{CLEAR_LINE}bench: {label}: {done}/{total} ops");
                        let _ = stderr.flush();
                    }
                }
            }
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "{CLEAR_LINE}");
            let _ = stderr.flush();
        });
        ProgressLine {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops redrawing and erases the line.
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Prints one line on stderr that summarizes a finished run.
pub fn report_finished(result: &RunResult) {
    let run = run_label(result.scenario, result.agents);
    let line = if let Some(reason) = &result.skipped {
        format!("bench: {run}: skipped: {reason}")
    } else if let Some(error) = &result.error {
        let first_line = error.lines().next().unwrap_or_default();
        format!("bench: {run}: failed: {first_line}")
    } else {
        let verdict = if result.passed {
            "invariants hold"
        } else {
            "INVARIANTS FAILED"
        };
        format!(
            "bench: {run}: {} ops in {:.2} s ({:.0} ops/s), {verdict}",
            result.ops, result.seconds, result.ops_per_second
        )
    };
    eprintln!("{line}");
}
