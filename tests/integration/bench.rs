//! `brainstorm bench`: the load generator run as a program, on servers it starts and on a
//! running one.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::process::Command;
use tokio::time::timeout;

use crate::common::{HttpEra, HttpServer, Sandbox, ServerOptions, call};

/// Time limit for one bench process; the runs below take a few seconds in a debug build.
const BENCH_LIMIT: Duration = Duration::from_secs(120);

const SCENARIOS: [&str; 5] = [
    "counter-etag",
    "counter-atomic",
    "distinct-writes",
    "message-latency",
    "broadcast",
];

/// Runs `brainstorm bench ARGS` with its temporary folder set to `temp_dir` and returns its
/// output.
async fn run_bench(temp_dir: &Path, args: &[&str]) -> Result<Output> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brainstorm"));
    command
        .arg("bench")
        .args(args)
        .env("TMPDIR", temp_dir)
        .env_remove("BRAINSTORM_LOG")
        .kill_on_drop(true);
    timeout(BENCH_LIMIT, command.output())
        .await
        .with_context(|| {
            format!("brainstorm bench {args:?} did not finish within {BENCH_LIMIT:?}")
        })?
        .context("failed to run brainstorm bench")
}

/// Returns the JSON document a successful `bench --json` printed.
fn report_of(output: &Output) -> Result<Value> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!(
            "brainstorm bench failed with {}\nstderr:\n{stderr}",
            output.status
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "bench --json printed no JSON document:\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// Returns the result of `scenario` with `agents` agents from a bench report.
fn result_of<'a>(report: &'a Value, scenario: &str, agents: u64) -> Result<&'a Value> {
    report["results"]
        .as_array()
        .context("the report has no results array")?
        .iter()
        .find(|result| result["scenario"] == scenario && result["agents"] == agents)
        .with_context(|| format!("no result for {scenario} with {agents} agents in {report}"))
}

/// Returns the operations a run completes when nothing is lost.
fn expected_ops(scenario: &str, agents: u64, ops: u64) -> u64 {
    match scenario {
        "message-latency" => agents / 2 * ops,
        "broadcast" => (agents - 1) * ops,
        // Each agent waits once, whatever the value of --ops.
        "idle-waits" => agents,
        _ => agents * ops,
    }
}

/// Asserts that a completed run passed every check and counted every operation.
fn assert_run_passed(result: &Value, scenario: &str, agents: u64, ops: u64) {
    let run = format!("{scenario} with {agents} agents");
    assert_eq!(result["passed"], true, "{run} failed: {result}");
    assert_eq!(result["error"], Value::Null, "{run} stopped: {result}");
    assert_eq!(
        result["skipped"],
        Value::Null,
        "{run} was skipped: {result}"
    );
    let expected = expected_ops(scenario, agents, ops);
    assert_eq!(
        result["ops"], expected,
        "{run} completed a wrong number of ops"
    );
    assert_eq!(
        result["expected_ops"], expected,
        "{run} expected a wrong number of ops"
    );
    assert_eq!(
        result["latency"]["samples"], expected,
        "{run} has a latency sample per op"
    );
    let checks = result["checks"].as_array().expect("checks is an array");
    assert!(checks.len() >= 2, "{run} made too few checks: {result}");
    for check in checks {
        assert_eq!(check["passed"], true, "{run}: check failed: {check}");
    }
}

/// Returns the names in `folder` that start with `brainstorm-bench-`: data folders a bench
/// run left behind.
fn leftover_data_folders(folder: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(folder).context("failed to list the temporary folder")? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("brainstorm-bench-") {
            names.push(name);
        }
    }
    Ok(names)
}

#[tokio::test]
async fn sweep_reports_every_scenario() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let plot = sandbox.root().join("sweep.svg");
    let plot_arg = plot.to_string_lossy().into_owned();
    let args = [
        "--agents", "2,4", "--ops", "5", "--json", "--plot", &plot_arg,
    ];
    let output = run_bench(&sandbox.root(), &args).await?;
    let report = report_of(&output)?;

    assert_eq!(report["passed"], true, "the report failed: {report}");
    assert_eq!(report["failures"], json!([]));
    assert_eq!(report["ops_per_agent"], 5);
    assert_eq!(report["results"].as_array().map(Vec::len), Some(10));
    for scenario in SCENARIOS {
        for agents in [2, 4] {
            let result = result_of(&report, scenario, agents)?;
            assert_run_passed(result, scenario, agents, 5);
        }
    }

    let svg = std::fs::read_to_string(&plot).context("--plot wrote no file")?;
    assert!(svg.starts_with("<svg"), "the plot is not an SVG document");
    assert!(svg.trim_end().ends_with("</svg>"), "the plot is cut short");
    assert!(
        svg.contains("Throughput"),
        "the plot has no throughput chart"
    );
    assert!(svg.contains("p99 latency"), "the plot has no latency chart");
    for scenario in SCENARIOS {
        assert!(
            svg.contains(scenario),
            "the plot has no line for {scenario}"
        );
    }
    assert_eq!(
        leftover_data_folders(&sandbox.root())?,
        Vec::<String>::new()
    );
    Ok(())
}

#[tokio::test]
async fn single_agent_skips_message_scenarios() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let args = [
        "--agents",
        "1",
        "--ops",
        "3",
        "--json",
        "--scenario",
        "counter-etag,broadcast",
    ];
    let report = report_of(&run_bench(&sandbox.root(), &args).await?)?;

    assert_eq!(report["results"].as_array().map(Vec::len), Some(2));
    assert_run_passed(result_of(&report, "counter-etag", 1)?, "counter-etag", 1, 3);
    let broadcast = result_of(&report, "broadcast", 1)?;
    assert_eq!(broadcast["skipped"], "needs at least 2 agents");
    assert_eq!(broadcast["passed"], true);
    Ok(())
}

#[tokio::test]
async fn running_server_keeps_no_bench_projects() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let args = [
        "--url",
        &server.url(),
        "--agents",
        "3",
        "--ops",
        "4",
        "--json",
        "--scenario",
        "counter-atomic",
        "--scenario",
        "message-latency",
    ];
    let report = report_of(&run_bench(&sandbox.root(), &args).await?)?;

    assert_eq!(report["url"], server.url());
    assert_run_passed(
        result_of(&report, "counter-atomic", 3)?,
        "counter-atomic",
        3,
        4,
    );
    // With 3 agents one pair exchanges messages and the third agent stays idle.
    assert_run_passed(
        result_of(&report, "message-latency", 3)?,
        "message-latency",
        3,
        4,
    );
    let client = server.connect(HttpEra::Stateless).await?;
    let listed = call(&client, "list_projects", json!({})).await?.success()?;
    assert_eq!(listed["count"], 0, "bench left projects behind: {listed}");
    Ok(())
}

#[tokio::test]
async fn url_without_http_is_rejected() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let output = run_bench(&sandbox.root(), &["--url", "127.0.0.1:8765/mcp"]).await?;
    let stderr = String::from_utf8_lossy(&output.stderr);

    assert!(
        !output.status.success(),
        "bench accepted a URL without a scheme"
    );
    assert!(
        stderr.contains("is not an http:// or https:// URL"),
        "stderr: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "bench printed results for a rejected URL"
    );
    Ok(())
}

#[tokio::test]
async fn idle_waits_reports_server_memory() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let args = [
        "--agents",
        "20",
        "--ops",
        "1",
        "--json",
        "--scenario",
        "idle-waits",
    ];
    let report = report_of(&run_bench(&sandbox.root(), &args).await?)?;
    let result = result_of(&report, "idle-waits", 20)?;

    assert_run_passed(result, "idle-waits", 20, 1);
    let checks = result["checks"].to_string();
    assert!(
        checks.contains("the server held every long-poll when its memory was read"),
        "the run did not confirm the waits: {checks}"
    );
    let rss = result["rss_mb"]
        .as_f64()
        .context("rss_mb is not a number")?;
    assert!(rss > 1.0, "implausible resident memory {rss} MB");
    let before = result["rss_before_waits_mb"]
        .as_f64()
        .context("rss_before_waits_mb is not a number")?;
    assert!(before > 1.0, "implausible resident memory {before} MB");
    Ok(())
}

#[tokio::test]
async fn idle_waits_on_running_server_has_no_memory() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let args = [
        "--url",
        &server.url(),
        "--agents",
        "3",
        "--json",
        "--scenario",
        "idle-waits",
    ];
    let report = report_of(&run_bench(&sandbox.root(), &args).await?)?;
    let result = result_of(&report, "idle-waits", 3)?;

    assert_run_passed(result, "idle-waits", 3, 1);
    assert_eq!(result["rss_mb"], Value::Null);
    assert_eq!(result["rss_before_waits_mb"], Value::Null);
    Ok(())
}
