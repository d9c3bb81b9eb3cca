//! The benchmark scenarios: what each agent does, and the invariants checked afterwards. The
//! message scenarios are in [`super::messages`], and idle-waits is in [`super::idle`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use futures_util::FutureExt;
use futures_util::future::{BoxFuture, join_all};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use super::agent::{Agent, CallError};
use super::idle::{MemoryReadings, idle_waits};
use super::messages::{Group, messages};
use super::report::Check;
use crate::client::{Backoff, retry_on_conflict};

/// Id of the shared counter document in the counter scenarios.
const COUNTER_ID: &str = "counter";

/// A benchmark workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// Etag-guarded read, increment and store on one counter, retried on ETAG_MISMATCH.
    CounterEtag,
    /// `update_resource {operation: "increment"}` on one counter.
    CounterAtomic,
    /// Each agent writes its own document with chained etags.
    DistinctWrites,
    /// Pairs of agents: one sends direct messages to the other, which is waiting for them.
    MessageLatency,
    /// One agent broadcasts to all the others, which are waiting for the messages.
    Broadcast,
    /// Every agent waits in one long-poll while the server's resident memory is read; one
    /// message then wakes each. Runs only when requested with --scenario.
    IdleWaits,
}

impl Scenario {
    /// The scenarios run when none is requested, in that order. idle-waits is left out,
    /// because it measures memory rather than throughput.
    pub const ALL: [Scenario; 5] = [
        Scenario::CounterEtag,
        Scenario::CounterAtomic,
        Scenario::DistinctWrites,
        Scenario::MessageLatency,
        Scenario::Broadcast,
    ];

    /// Returns the name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::CounterEtag => "counter-etag",
            Scenario::CounterAtomic => "counter-atomic",
            Scenario::DistinctWrites => "distinct-writes",
            Scenario::MessageLatency => "message-latency",
            Scenario::Broadcast => "broadcast",
            Scenario::IdleWaits => "idle-waits",
        }
    }

    /// Returns how many operations a run with `agents` agents and `ops` per agent completes:
    /// increments or writes for the resource scenarios, deliveries for the message ones, and
    /// one wake-up per agent for idle-waits, which ignores `ops`.
    pub fn expected_ops(self, agents: usize, ops: u64) -> u64 {
        let agents = agents as u64;
        match self {
            Scenario::IdleWaits => agents,
            Scenario::CounterEtag | Scenario::CounterAtomic | Scenario::DistinctWrites => {
                agents * ops
            }
            Scenario::MessageLatency => agents / 2 * ops,
            Scenario::Broadcast => agents.saturating_sub(1) * ops,
        }
    }

    /// Returns why a run with `agents` agents cannot be done, if it cannot.
    pub fn skip_reason(self, agents: usize) -> Option<String> {
        let needs_pair = matches!(self, Scenario::MessageLatency | Scenario::Broadcast);
        (needs_pair && agents < 2).then(|| "needs at least 2 agents".to_owned())
    }

    /// Returns the arguments for the server of a run: `extra`, and for idle-waits also
    /// `--max-long-polls` and `--max-waiters` equal to the agent count unless `extra` sets
    /// them. The servers' defaults (1000 and 100) would otherwise reject some waits.
    pub fn server_args(self, agents: usize, extra: &[String]) -> Vec<String> {
        let mut args = extra.to_vec();
        if self == Scenario::IdleWaits {
            for flag in ["--max-long-polls", "--max-waiters"] {
                if flag_value(extra, flag).is_none() {
                    args.push(format!("{flag}={agents}"));
                }
            }
        }
        args
    }
}

/// Returns the value of `flag` in server arguments, given as `--flag=VALUE` or as
/// `--flag VALUE`; the last one counts.
pub fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let mut value = None;
    for (index, arg) in args.iter().enumerate() {
        if arg == flag {
            value = args.get(index + 1).map(String::as_str);
        } else if let Some(inline) = arg
            .strip_prefix(flag)
            .and_then(|rest| rest.strip_prefix('='))
        {
            value = Some(inline);
        }
    }
    value
}

/// The server process of a run. Both fields are `None` unless the benchmark started it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerProcess {
    /// Process id, when the benchmark started the server itself.
    pub pid: Option<u32>,
    /// `--max-long-polls` given to a server the benchmark started.
    pub max_long_polls: Option<u64>,
}

/// Settings shared by every run.
#[derive(Debug, Clone, Copy)]
pub struct RunSettings {
    /// Operations per agent (messages per sender in the message scenarios).
    pub ops: u64,
    /// Pause between the receivers' signal that they are about to wait and the send.
    pub settle: Duration,
}

/// Measurements and checks of one scenario run.
#[derive(Debug, Default)]
pub struct Measurement {
    pub ops: u64,
    pub elapsed: Duration,
    pub conflicts: u64,
    pub latencies: Vec<Duration>,
    pub checks: Vec<Check>,
    /// Resident memory of the server (idle-waits only).
    pub memory: MemoryReadings,
}

/// The agents of one run, all members of one new project.
pub struct Team {
    pub project_id: String,
    pub agents: Vec<Arc<Agent>>,
}

impl Team {
    /// Connects `count` agents to `url`, creates the project `bench-{tag}` as the first one,
    /// and joins the others. Each agent gets its own working directory, so its own client id.
    pub async fn assemble(url: &str, count: usize, tag: &str) -> anyhow::Result<Team> {
        let connects = (0..count).map(|index| {
            let name = format!("agent-{index}");
            let working_directory = format!("/brainstorm-bench/{tag}/{name}");
            Agent::connect(url, name, working_directory)
        });
        let agents: Vec<Arc<Agent>> = join_all(connects)
            .await
            .into_iter()
            .map(|agent| agent.map(Arc::new))
            .collect::<anyhow::Result<_>>()?;
        let project_id = format!("bench-{tag}");
        let creator = agents.first().context("a team needs at least one agent")?;
        creator
            .call(
                "create_project",
                json!({
                    "project_id": project_id,
                    "name": format!("Benchmark {tag}"),
                    "created_by": creator.name,
                }),
            )
            .await?;
        let joins = agents.iter().skip(1).map(|agent| {
            agent.call(
                "join_project",
                json!({"project_id": project_id, "agent_name": agent.name}),
            )
        });
        for joined in join_all(joins).await {
            joined?;
        }
        Ok(Team { project_id, agents })
    }

    /// Deletes the project when `delete_project` is set, then closes every client.
    pub async fn dismantle(self, delete_project: bool) -> anyhow::Result<()> {
        let mut outcome = Ok(());
        if delete_project && let Some(creator) = self.agents.first() {
            let deleted = creator
                .call(
                    "delete_project",
                    json!({"project_id": self.project_id, "agent_name": creator.name}),
                )
                .await;
            outcome = deleted
                .map(|_| ())
                .with_context(|| format!("failed to delete the project {}", self.project_id));
        }
        let closes = self
            .agents
            .into_iter()
            .filter_map(Arc::into_inner)
            .map(Agent::close);
        join_all(closes).await;
        outcome
    }
}

/// Runs `scenario` on `team` and checks its invariants. `progress` counts completed
/// operations while the run goes on.
pub async fn measure(
    scenario: Scenario,
    team: &Team,
    settings: RunSettings,
    server: ServerProcess,
    progress: &Arc<AtomicU64>,
) -> anyhow::Result<Measurement> {
    match scenario {
        Scenario::IdleWaits => idle_waits(team, server, progress).await,
        Scenario::CounterEtag => counter(team, settings.ops, progress, CounterKind::Etag).await,
        Scenario::CounterAtomic => counter(team, settings.ops, progress, CounterKind::Atomic).await,
        Scenario::DistinctWrites => distinct_writes(team, settings.ops, progress).await,
        Scenario::MessageLatency => {
            let groups = team
                .agents
                .chunks_exact(2)
                .map(|pair| Group {
                    sender: pair[0].clone(),
                    receivers: vec![pair[1].clone()],
                    broadcast: false,
                })
                .collect();
            messages(team, groups, settings, progress).await
        }
        Scenario::Broadcast => {
            let (sender, receivers) = team
                .agents
                .split_first()
                .context("broadcast needs at least one agent")?;
            let group = Group {
                sender: sender.clone(),
                receivers: receivers.to_vec(),
                broadcast: true,
            };
            messages(team, vec![group], settings, progress).await
        }
    }
}

/// Starts every task at the same moment and waits for all of them. Returns their outputs in
/// task order and the time from the start until the last one finished. The first failure
/// aborts the remaining tasks and is returned.
pub(super) async fn run_together<T: Send + 'static>(
    tasks: Vec<BoxFuture<'static, anyhow::Result<T>>>,
) -> anyhow::Result<(Vec<T>, Duration)> {
    let count = tasks.len();
    let start = Arc::new(Barrier::new(count + 1));
    let mut running = JoinSet::new();
    for (index, task) in tasks.into_iter().enumerate() {
        let start = start.clone();
        running.spawn(async move {
            start.wait().await;
            let output = task.await?;
            anyhow::Ok((index, output, Instant::now()))
        });
    }
    start.wait().await;
    let started = Instant::now();
    let mut outputs: Vec<Option<T>> = (0..count).map(|_| None).collect();
    let mut last_finish = started;
    while let Some(joined) = running.join_next().await {
        let outcome = joined
            .map_err(|err| anyhow!("an agent task panicked or was cancelled: {err}"))
            .and_then(|outcome| outcome);
        match outcome {
            Ok((index, output, finished)) => {
                outputs[index] = Some(output);
                last_finish = last_finish.max(finished);
            }
            Err(err) => {
                running.abort_all();
                return Err(err);
            }
        }
    }
    let outputs = outputs.into_iter().flatten().collect();
    Ok((outputs, last_finish - started))
}

/// Latencies and retries of one agent.
#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    conflicts: u64,
}

/// Adds the agents' tallies into one measurement.
fn combine(tallies: Vec<Tally>, elapsed: Duration) -> Measurement {
    let mut measurement = Measurement {
        elapsed,
        ..Measurement::default()
    };
    for tally in tallies {
        measurement.ops += tally.latencies.len() as u64;
        measurement.conflicts += tally.conflicts;
        measurement.latencies.extend(tally.latencies);
    }
    measurement
}

/// Content, manifest version and etag of a document.
struct Document {
    content: String,
    version: u64,
    etag: String,
}

/// Reads the current state of a document.
async fn read_document(
    agent: &Agent,
    project_id: &str,
    resource_id: &str,
) -> Result<Document, CallError> {
    let result = agent
        .call(
            "get_resource",
            json!({"project_id": project_id, "resource_id": resource_id, "agent_name": agent.name}),
        )
        .await?;
    let missing = |field: &str| CallError::missing("get_resource", field, &result);
    Ok(Document {
        content: result["content"]
            .as_str()
            .ok_or_else(|| missing("content"))?
            .to_owned(),
        version: result["manifest"]["version"]
            .as_u64()
            .ok_or_else(|| missing("manifest.version"))?,
        etag: result["etag"]
            .as_str()
            .ok_or_else(|| missing("etag"))?
            .to_owned(),
    })
}

/// Returns the `etag` of a write result.
fn etag_of(tool: &str, result: &Value) -> Result<String, CallError> {
    result["etag"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| CallError::missing(tool, "etag", result))
}

/// Method by which the counter scenarios add one.
#[derive(Debug, Clone, Copy)]
enum CounterKind {
    /// Read, then store the value plus one with the etag read; retry on ETAG_MISMATCH.
    Etag,
    /// One `update_resource` increment on the server.
    Atomic,
}

/// Runs a counter scenario: every agent adds one `ops` times to a shared counter that starts
/// at 0. Afterwards the counter must equal agents x ops, and its version must show one write
/// per increment.
async fn counter(
    team: &Team,
    ops: u64,
    progress: &Arc<AtomicU64>,
    kind: CounterKind,
) -> anyhow::Result<Measurement> {
    let creator = team
        .agents
        .first()
        .context("a counter run needs an agent")?;
    creator
        .call(
            "store_resource",
            json!({
                "project_id": team.project_id,
                "resource_id": COUNTER_ID,
                "name": "Counter",
                "agent_name": creator.name,
                "content": "0",
                "permissions": {"read": ["*"], "write": ["*"]},
            }),
        )
        .await?;

    let tasks = team
        .agents
        .iter()
        .map(|agent| {
            let agent = agent.clone();
            let project_id = team.project_id.clone();
            let progress = progress.clone();
            async move {
                let mut tally = Tally::default();
                for _ in 0..ops {
                    let started = Instant::now();
                    match kind {
                        CounterKind::Etag => {
                            tally.conflicts += increment_with_etag(&agent, &project_id).await?;
                        }
                        CounterKind::Atomic => increment_atomically(&agent, &project_id).await?,
                    }
                    tally.latencies.push(started.elapsed());
                    progress.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(tally)
            }
            .boxed()
        })
        .collect();
    let (tallies, elapsed) = run_together(tasks).await?;
    let mut measurement = combine(tallies, elapsed);

    let expected = team.agents.len() as u64 * ops;
    let last = read_document(creator, &team.project_id, COUNTER_ID).await?;
    let value = last.content.trim().parse::<u64>().map_err(|err| {
        anyhow!(
            "the counter contains {:?}, which is not a whole number: {err}",
            last.content
        )
    })?;
    measurement.checks.push(Check::equal(
        "final counter equals agents x ops",
        expected,
        value,
    ));
    // The document was created at version 1, and every increment is one more write.
    measurement.checks.push(Check::equal(
        "counter version equals agents x ops + 1",
        expected + 1,
        last.version,
    ));
    Ok(measurement)
}

/// Adds one to the counter with the etag loop, and returns the number of conflicts retried.
async fn increment_with_etag(agent: &Agent, project_id: &str) -> Result<u64, CallError> {
    // Past the client default of 100 attempts, so that 64 agents on one counter do not give
    // up; the backoff delays stay the defaults.
    let backoff = Backoff {
        max_attempts: 1000,
        ..Backoff::default()
    };
    let attempt = || async {
        let current = read_document(agent, project_id, COUNTER_ID).await?;
        let value: u64 = current
            .content
            .trim()
            .parse()
            .map_err(|_| CallError::Malformed {
                tool: "get_resource".to_owned(),
                message: format!(
                    "the counter contains {:?}, not a whole number",
                    current.content
                ),
            })?;
        agent
            .call(
                "store_resource",
                json!({
                    "project_id": project_id,
                    "resource_id": COUNTER_ID,
                    "name": "Counter",
                    "agent_name": agent.name,
                    "content": (value + 1).to_string(),
                    "etag": current.etag,
                }),
            )
            .await
    };
    let done = retry_on_conflict(&backoff, CallError::is_etag_mismatch, attempt).await?;
    Ok(u64::from(done.conflicts))
}

/// Adds one to the counter with one `update_resource` call.
async fn increment_atomically(agent: &Agent, project_id: &str) -> Result<(), CallError> {
    agent
        .call(
            "update_resource",
            json!({
                "project_id": project_id,
                "resource_id": COUNTER_ID,
                "agent_name": agent.name,
                "operation": "increment",
                "value": 1,
            }),
        )
        .await
        .map(|_| ())
}

/// Runs the distinct-writes scenario: each agent creates its own document and stores `ops`
/// versions of it, each with the etag the previous write returned. Afterwards every document
/// must hold its last write, with that write's etag, at version `ops`.
async fn distinct_writes(
    team: &Team,
    ops: u64,
    progress: &Arc<AtomicU64>,
) -> anyhow::Result<Measurement> {
    let tasks = team
        .agents
        .iter()
        .map(|agent| {
            let agent = agent.clone();
            let project_id = team.project_id.clone();
            let progress = progress.clone();
            async move {
                let resource_id = format!("doc-{}", agent.name);
                let mut tally = Tally::default();
                let mut last = None;
                for write in 1..=ops {
                    let content = format!("{} write {write}", agent.name);
                    let mut args = json!({
                        "project_id": project_id,
                        "resource_id": resource_id,
                        "name": format!("Document of {}", agent.name),
                        "agent_name": agent.name,
                        "content": content,
                    });
                    match &last {
                        Some((etag, _)) => args["etag"] = json!(etag),
                        None => args["if_none_match"] = json!("*"),
                    }
                    let started = Instant::now();
                    let result = agent.call("store_resource", args).await?;
                    tally.latencies.push(started.elapsed());
                    progress.fetch_add(1, Ordering::Relaxed);
                    last = Some((etag_of("store_resource", &result)?, content));
                }
                anyhow::Ok((tally, resource_id, last))
            }
            .boxed()
        })
        .collect();
    let (outputs, elapsed) = run_together(tasks).await?;

    let mut tallies = Vec::new();
    let mut wrong_content = Vec::new();
    let mut wrong_version = Vec::new();
    for ((tally, resource_id, last), agent) in outputs.into_iter().zip(&team.agents) {
        tallies.push(tally);
        let Some((etag, content)) = last else {
            continue;
        };
        let stored = read_document(agent, &team.project_id, &resource_id).await?;
        if stored.content != content || stored.etag != etag {
            wrong_content.push(format!(
                "{resource_id} contains {:?} with etag {}, but the last write was {content:?} with etag {etag}",
                stored.content, stored.etag
            ));
        }
        if stored.version != ops {
            wrong_version.push(format!(
                "{resource_id} is at version {}, expected {ops}",
                stored.version
            ));
        }
    }
    let mut measurement = combine(tallies, elapsed);
    measurement.checks.push(Check::none_of(
        "every document contains its last write and that write's etag",
        &wrong_content,
    ));
    measurement.checks.push(Check::none_of(
        "every document's version equals ops",
        &wrong_version,
    ));
    Ok(measurement)
}
