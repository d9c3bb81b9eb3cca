//! Results of benchmark runs: latency percentiles, the text table and the JSON document.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// One invariant checked after a run.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// Invariant, for example "final counter equals agents x ops".
    pub name: String,
    pub passed: bool,
    /// The values compared, or what went wrong.
    pub detail: String,
}

impl Check {
    /// Builds a check that passes when `expected == actual`.
    pub fn equal<T: PartialEq + std::fmt::Debug>(name: &str, expected: T, actual: T) -> Self {
        let passed = expected == actual;
        let detail = if passed {
            format!("{actual:?}")
        } else {
            format!("expected {expected:?}, got {actual:?}")
        };
        Check {
            name: name.to_owned(),
            passed,
            detail,
        }
    }

    /// Builds a check that passes when `problems` is empty, and otherwise lists the first few.
    pub fn none_of(name: &str, problems: &[String]) -> Self {
        const SHOWN: usize = 5;
        let detail = match problems.len() {
            0 => "none".to_owned(),
            count => {
                let shown: Vec<&str> = problems.iter().take(SHOWN).map(String::as_str).collect();
                let more = count.saturating_sub(SHOWN);
                let suffix = if more > 0 {
                    format!("; and {more} more")
                } else {
                    String::new()
                };
                format!("{count}: {}{suffix}", shown.join("; "))
            }
        };
        Check {
            name: name.to_owned(),
            passed: problems.is_empty(),
            detail,
        }
    }
}

/// Latency percentiles of one run, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LatencySummary {
    pub samples: usize,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// Summarizes `samples`, or returns `None` when there are none. Percentiles use the
    /// nearest-rank method: the p-th percentile is the smallest sample that is at least p % of
    /// all samples.
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let millis = |duration: Duration| duration.as_secs_f64() * 1000.0;
        let rank = |percent: f64| {
            let index = (percent / 100.0 * samples.len() as f64).ceil() as usize;
            millis(samples[index.clamp(1, samples.len()) - 1])
        };
        let total: Duration = samples.iter().sum();
        Some(LatencySummary {
            samples: samples.len(),
            mean_ms: millis(total) / samples.len() as f64,
            p50_ms: rank(50.0),
            p95_ms: rank(95.0),
            p99_ms: rank(99.0),
            max_ms: millis(samples[samples.len() - 1]),
        })
    }
}

/// Names a run for messages, for example "broadcast with 1 agent".
pub fn run_label(scenario: &str, agents: usize) -> String {
    let noun = if agents == 1 { "agent" } else { "agents" };
    format!("{scenario} with {agents} {noun}")
}

/// Measurements and checks of one run: one scenario with one agent count.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub scenario: &'static str,
    pub agents: usize,
    /// Measured operations completed: increments, writes or message deliveries.
    pub ops: u64,
    /// Operations a run completes when no call fails and nothing is lost.
    pub expected_ops: u64,
    /// Wall-clock time from the start signal until the last agent finished.
    pub seconds: f64,
    pub ops_per_second: f64,
    /// Writes rejected with `ETAG_MISMATCH` and retried, or in idle-waits, long-polls
    /// rejected with `TOO_MANY_WAITERS` and sent again.
    pub conflicts: u64,
    /// Per-operation latency; `None` for a run without samples.
    pub latency: Option<LatencySummary>,
    /// Resident memory (`VmRSS`) of the server while every agent waits in a long-poll, in
    /// megabytes (10^6 bytes). Only idle-waits on a server the benchmark started sets it.
    pub rss_mb: Option<f64>,
    /// Resident memory of the same server after the agents joined, before the long-polls.
    pub rss_before_waits_mb: Option<f64>,
    pub checks: Vec<Check>,
    /// Reason the run was not attempted, for example too few agents for the scenario.
    pub skipped: Option<String>,
    /// Error that stopped the run before its checks.
    pub error: Option<String>,
    /// Whether the run completed (or was skipped) and every check passed.
    pub passed: bool,
}

impl RunResult {
    /// Builds the result of a run that was not attempted.
    pub fn skipped(
        scenario: &'static str,
        agents: usize,
        expected_ops: u64,
        reason: String,
    ) -> Self {
        RunResult {
            scenario,
            agents,
            ops: 0,
            expected_ops,
            seconds: 0.0,
            ops_per_second: 0.0,
            conflicts: 0,
            latency: None,
            rss_mb: None,
            rss_before_waits_mb: None,
            checks: Vec::new(),
            skipped: Some(reason),
            error: None,
            passed: true,
        }
    }

    /// Builds the result of a run that failed before its checks.
    pub fn failed(scenario: &'static str, agents: usize, expected_ops: u64, error: String) -> Self {
        RunResult {
            skipped: None,
            error: Some(error),
            passed: false,
            ..RunResult::skipped(scenario, agents, expected_ops, String::new())
        }
    }

    /// Returns one line per failed check or error, naming the scenario and agent count.
    pub fn failures(&self) -> Vec<String> {
        let run = run_label(self.scenario, self.agents);
        let mut lines = Vec::new();
        if let Some(error) = &self.error {
            lines.push(format!("{run}: {error}"));
        }
        for check in self.checks.iter().filter(|check| !check.passed) {
            lines.push(format!("{run}: {} failed: {}", check.name, check.detail));
        }
        lines
    }
}

/// The JSON document that `--json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// MCP endpoint given with `--url`, or `None` when each run started its own server.
    pub url: Option<String>,
    /// Extra arguments given to each started server.
    pub server_args: Vec<String>,
    pub ops_per_agent: u64,
    pub settle_ms: u64,
    pub started_at: String,
    pub results: Vec<RunResult>,
    /// Every failed check or run error, one line each.
    pub failures: Vec<String>,
    pub passed: bool,
}

/// Formats milliseconds with a precision that suits their size.
fn format_ms(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.2}")
    } else if ms < 1000.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// Renders the results as a text table, one row per run, with a legend below.
pub fn table(results: &[RunResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<16} {:>6} {:>7} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7}  checks",
        "scenario",
        "agents",
        "ops",
        "seconds",
        "ops/s",
        "conflicts",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "RSS MB"
    );
    for result in results {
        let _ = write!(out, "{:<16} {:>6} ", result.scenario, result.agents);
        // A skipped run measured nothing, and a failed one keeps no partial numbers.
        let blank_verdict = match (&result.skipped, &result.error) {
            (Some(reason), _) => Some(format!("skipped: {reason}")),
            (None, Some(_)) => Some("ERROR, listed on stderr".to_owned()),
            (None, None) => None,
        };
        if let Some(verdict) = blank_verdict {
            let _ = writeln!(
                out,
                "{:>7} {:>8} {:>9} {:>9} {:>8} {:>8} {:>8} {:>7}  {verdict}",
                "-", "-", "-", "-", "-", "-", "-", "-"
            );
            continue;
        }
        let (p50, p95, p99) = match &result.latency {
            Some(latency) => (
                format_ms(latency.p50_ms),
                format_ms(latency.p95_ms),
                format_ms(latency.p99_ms),
            ),
            None => ("-".to_owned(), "-".to_owned(), "-".to_owned()),
        };
        let rss = result
            .rss_mb
            .map_or_else(|| "-".to_owned(), |mb| format!("{mb:.1}"));
        let verdict = if result.passed {
            "ok".to_owned()
        } else {
            let failed = result.checks.iter().filter(|check| !check.passed).count();
            format!("FAILED {failed} of {}", result.checks.len())
        };
        let _ = writeln!(
            out,
            "{:>7} {:>8.2} {:>9.1} {:>9} {:>8} {:>8} {:>8} {:>7}  {verdict}",
            result.ops, result.seconds, result.ops_per_second, result.conflicts, p50, p95, p99, rss
        );
    }
    out.push_str(
        "\nops: counter increments (counter-etag, counter-atomic), store_resource calls \
         (distinct-writes), message deliveries (message-latency, broadcast), agents woken \
         from a long-poll (idle-waits).\n\
         latency: one increment from its first read to its successful store, retries and \
         backoff included (counter-etag); one tool call (counter-atomic, distinct-writes); \
         send to receipt (message-latency, broadcast, idle-waits).\n\
         RSS MB: the server's resident memory while every agent waits in a long-poll \
         (idle-waits, on a server the benchmark started).\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let summary = LatencySummary::of(samples).unwrap();
        assert_eq!(summary.samples, 100);
        assert_eq!(summary.p50_ms, 50.0);
        assert_eq!(summary.p95_ms, 95.0);
        assert_eq!(summary.p99_ms, 99.0);
        assert_eq!(summary.max_ms, 100.0);
        assert!((summary.mean_ms - 50.5).abs() < 1e-9);
    }

    #[test]
    fn percentiles_of_one_sample_are_that_sample() {
        let summary = LatencySummary::of(vec![Duration::from_millis(7)]).unwrap();
        assert_eq!(summary.p50_ms, 7.0);
        assert_eq!(summary.p99_ms, 7.0);
        assert!(LatencySummary::of(Vec::new()).is_none());
    }

    #[test]
    fn failures_name_the_run_and_the_check() {
        let mut result = RunResult::skipped("counter-atomic", 4, 40, String::new());
        result.skipped = None;
        result.checks = vec![
            Check::equal("final counter", 40, 39),
            Check::none_of("lost messages", &[]),
        ];
        let failures = result.failures();
        assert_eq!(
            failures,
            vec!["counter-atomic with 4 agents: final counter failed: expected 40, got 39"]
        );
    }
}
