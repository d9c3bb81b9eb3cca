//! `brainstorm bench`: a load generator that drives concurrent agents over real MCP
//! connections, one rmcp streamable HTTP client per agent, and checks that nothing was lost.
//!
//! Each run (one scenario with one agent count) starts its own `brainstorm serve` on a fresh
//! temporary data folder, unless `--url` names a running server, in which case each run uses
//! a new project there and deletes it afterwards.

mod agent;
mod idle;
mod messages;
mod plot;
mod progress;
mod report;
mod scenarios;
mod server;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use tracing::warn;

use progress::ProgressLine;
use report::{Check, LatencySummary, Report, RunResult};
use scenarios::{RunSettings, Scenario, ServerProcess, Team, flag_value};
use server::BenchServer;

/// Options of `brainstorm bench`.
#[derive(Debug, Clone, Args)]
#[command(
    next_help_heading = "Benchmark options",
    after_help = "The service options under Options, such as --data-dir and \
                  --commit-batch-max, have no effect on bench (only --log does). Pass them to \
                  the servers it starts with --server-arg, for example \
                  --server-arg=--commit-batch-max=1."
)]
pub struct BenchArgs {
    /// Scenarios to run, comma-separated or repeated [default: all but idle-waits].
    #[arg(
        long = "scenario",
        value_name = "NAME",
        value_enum,
        value_delimiter = ','
    )]
    pub scenarios: Vec<Scenario>,

    /// Agent counts to run, comma-separated, each from 1 to 1000 (a server allows 1000
    /// long-polls by default); each count is a separate run (a sweep).
    #[arg(long, value_name = "LIST", value_delimiter = ',', default_value = "8",
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub agents: Vec<u64>,

    /// Operations per agent in each run: increments, writes, or messages per sender
    /// (idle-waits ignores it: each agent waits once).
    #[arg(long, value_name = "COUNT", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub ops: u64,

    /// MCP endpoint of a running server to load, for example http://127.0.0.1:8765/mcp,
    /// instead of starting a server per run. Each run creates and then deletes a project.
    #[arg(long, value_name = "URL", conflicts_with = "server_args")]
    pub url: Option<String>,

    /// Extra argument for each server the benchmark starts, repeated for several, for example
    /// --server-arg=--commit-batch-max=1.
    #[arg(long = "server-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub server_args: Vec<String>,

    /// Print one JSON document with every result to stdout instead of the table.
    #[arg(long)]
    pub json: bool,

    /// Write an SVG file with throughput (ops/s) and p99 latency (ms) against the agent count.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,

    /// Pause between the receivers signalling that they are about to wait and the send, in
    /// milliseconds (message-latency, broadcast). It gives each wait time to reach the server.
    #[arg(long, value_name = "MS", default_value_t = 2)]
    pub settle_ms: u64,
}

/// Runs every requested scenario for every agent count, prints the table or the JSON
/// document, writes the plot, and fails when any run failed or any invariant did not hold.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(url) = &args.url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        bail!(
            "--url {url:?} is not an http:// or https:// URL; pass the MCP endpoint, such as http://127.0.0.1:8765/mcp"
        );
    }
    let scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    let settings = RunSettings {
        ops: args.ops,
        settle: Duration::from_millis(args.settle_ms),
    };
    let started_at = crate::time::format_ms(crate::time::now_ms());

    // Ctrl-C drops the run in progress, which kills its server and removes its data folder.
    let results = tokio::select! {
        results = run_sweep(&args, &scenarios, settings) => results,
        _ = tokio::signal::ctrl_c() => bail!("interrupted; no results are printed"),
    };

    let failures: Vec<String> = results.iter().flat_map(RunResult::failures).collect();
    let report = Report {
        url: args.url.clone(),
        server_args: args.server_args.clone(),
        ops_per_agent: args.ops,
        settle_ms: args.settle_ms,
        started_at,
        passed: failures.is_empty(),
        failures: failures.clone(),
        results,
    };
    let output = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        report::table(&report.results)
    };
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
        .context("failed to write the results to stdout")?;

    if let Some(path) = &args.plot {
        let target = match (&args.url, args.server_args.is_empty()) {
            (Some(url), _) => url.clone(),
            (None, true) => "defaults".to_owned(),
            (None, false) => args.server_args.join(" "),
        };
        let svg = plot::render(&report.results, &target, args.ops);
        std::fs::write(path, svg)
            .with_context(|| format!("failed to write the plot to {}", path.display()))?;
        eprintln!("brainstorm bench: wrote the plot to {}", path.display());
    }

    if !failures.is_empty() {
        bail!(
            "{} invariant(s) or run(s) failed:\n  {}",
            failures.len(),
            failures.join("\n  ")
        );
    }
    Ok(())
}

/// Runs every scenario with every agent count, in that order, and returns the results.
async fn run_sweep(
    args: &BenchArgs,
    scenarios: &[Scenario],
    settings: RunSettings,
) -> Vec<RunResult> {
    let mut results = Vec::new();
    for &scenario in scenarios {
        for &agents in &args.agents {
            let result = run_once(args, scenario, agents as usize, settings).await;
            progress::report_finished(&result);
            results.push(result);
        }
    }
    results
}

/// Runs one scenario with one agent count, on its own server unless `--url` is given.
async fn run_once(
    args: &BenchArgs,
    scenario: Scenario,
    agents: usize,
    settings: RunSettings,
) -> RunResult {
    let expected_ops = scenario.expected_ops(agents, settings.ops);
    if let Some(reason) = scenario.skip_reason(agents) {
        return RunResult::skipped(scenario.name(), agents, expected_ops, reason);
    }
    let progress = Arc::new(AtomicU64::new(0));
    let line = ProgressLine::start(
        report::run_label(scenario.name(), agents),
        expected_ops,
        progress.clone(),
    );
    let outcome = match &args.url {
        Some(url) => {
            let server = ServerProcess::default();
            measure_at(url, true, scenario, agents, settings, server, &progress).await
        }
        None => {
            let server_args = scenario.server_args(agents, &args.server_args);
            start_and_measure(&server_args, scenario, agents, settings, &progress).await
        }
    };
    line.finish().await;

    let measurement = match outcome {
        Ok(measurement) => measurement,
        Err(err) => {
            return RunResult::failed(scenario.name(), agents, expected_ops, format!("{err:#}"));
        }
    };
    let mut checks = vec![Check::equal(
        "all operations completed",
        expected_ops,
        measurement.ops,
    )];
    checks.extend(measurement.checks);
    let seconds = measurement.elapsed.as_secs_f64();
    RunResult {
        scenario: scenario.name(),
        agents,
        ops: measurement.ops,
        expected_ops,
        seconds,
        ops_per_second: if seconds > 0.0 {
            measurement.ops as f64 / seconds
        } else {
            0.0
        },
        conflicts: measurement.conflicts,
        latency: LatencySummary::of(measurement.latencies),
        rss_mb: measurement.memory.during_waits_mb,
        rss_before_waits_mb: measurement.memory.before_waits_mb,
        passed: checks.iter().all(|check| check.passed),
        checks,
        skipped: None,
        error: None,
    }
}

/// Starts a server with `server_args`, runs the scenario on it, and stops it again.
async fn start_and_measure(
    server_args: &[String],
    scenario: Scenario,
    agents: usize,
    settings: RunSettings,
    progress: &Arc<AtomicU64>,
) -> anyhow::Result<scenarios::Measurement> {
    match BenchServer::start(server_args).await {
        Ok(server) => {
            let process = ServerProcess {
                pid: server.pid(),
                max_long_polls: flag_value(server_args, "--max-long-polls")
                    .and_then(|value| value.parse().ok()),
            };
            let outcome = measure_at(
                server.url(),
                false,
                scenario,
                agents,
                settings,
                process,
                progress,
            )
            .await;
            let log_tail = server.log_tail();
            if let Err(err) = server.stop().await {
                warn!(error = %err, "failed to stop the benchmark server");
            }
            outcome.map_err(|err| anyhow!("{err:#}\nserver log, last lines:\n{log_tail}"))
        }
        Err(err) => Err(err.context("failed to start the benchmark server")),
    }
}

/// Assembles a team at `url`, runs the scenario, and takes the team apart again, deleting
/// its project when `delete_project` is set (a shared server keeps no benchmark data).
async fn measure_at(
    url: &str,
    delete_project: bool,
    scenario: Scenario,
    agents: usize,
    settings: RunSettings,
    server: ServerProcess,
    progress: &Arc<AtomicU64>,
) -> anyhow::Result<scenarios::Measurement> {
    let tag = format!("{}-{agents}-{:08x}", scenario.name(), rand::random::<u32>());
    let team = Team::assemble(url, agents, &tag)
        .await
        .context("failed to connect the agents and set up their project")?;
    let outcome = scenarios::measure(scenario, &team, settings, server, progress).await;
    if let Err(err) = team.dismantle(delete_project).await {
        warn!(error = %format!("{err:#}"), "failed to clean up after a benchmark run");
    }
    outcome
}
