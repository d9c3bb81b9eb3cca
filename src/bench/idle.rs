//! The idle-waits scenario: every agent keeps one `receive_messages` long-poll open while
//! the benchmark reads the server's resident memory, then two messages end the waits.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tracing::warn;

use super::agent::{Agent, CallError};
use super::report::Check;
use super::scenarios::{Measurement, ServerProcess, Team, run_together};

/// Long-poll timeout each agent requests, in seconds. It must outlast the registration
/// limit below plus the memory reading, or a wait ends before the wake-up message.
const WAIT_SECONDS: u64 = 50;

/// Maximum time to wait for the server to register every long-poll. After it the memory is
/// read anyway, and the check on registration fails.
const REGISTRATION_LIMIT: Duration = Duration::from_secs(20);

/// Pause before the memory reading when the server's long-poll cap is unknown, so that no
/// probe can tell when every wait is registered.
const UNPROBED_SETTLE: Duration = Duration::from_secs(2);

/// Pause between two probes, and before a long-poll rejected by the cap is sent again.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Error code of a long-poll rejected because the server is at its long-poll cap.
const TOO_MANY_WAITERS: &str = "TOO_MANY_WAITERS";

/// Resident memory of the server, in megabytes (10^6 bytes), read from `VmRSS`.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryReadings {
    /// After the team joined the project, before any long-poll.
    pub before_waits_mb: Option<f64>,
    /// While every agent waits.
    pub during_waits_mb: Option<f64>,
}

/// Result of one task of the scenario: a waiting agent, or the coordinator that reads the
/// memory and sends the wake-up messages.
#[derive(Debug, Default)]
struct Outcome {
    latencies: Vec<Duration>,
    /// Long-polls rejected with `TOO_MANY_WAITERS` and sent again.
    rejected_waits: u64,
    problems: Vec<String>,
    /// Whether the server rejected a probe because it held every wait; `None` when the
    /// coordinator could not probe.
    all_registered: Option<bool>,
    memory: MemoryReadings,
}

/// Runs the idle-waits scenario. Every agent starts `receive_messages {wait: true}` with
/// nothing to receive. Once the server has registered them all, or after a bounded time, the
/// server's resident memory is read. Then agent 0 broadcasts one message and sends one to itself,
/// and every agent must receive exactly that message. Latency is from just before the
/// wake-up send to just after the receive returns.
pub async fn idle_waits(
    team: &Team,
    server: ServerProcess,
    progress: &Arc<AtomicU64>,
) -> anyhow::Result<Measurement> {
    let coordinator = team
        .agents
        .first()
        .context("idle-waits needs at least one agent")?
        .clone();
    let before_waits_mb = server.pid.and_then(read_rss_mb);
    let epoch = Instant::now();
    let (sent_tx, sent_rx) = mpsc::unbounded_channel();
    let mut tasks: Vec<BoxFuture<'static, anyhow::Result<Outcome>>> = Vec::new();
    tasks.push(
        coordinate(
            coordinator.clone(),
            team.project_id.clone(),
            team.agents.len(),
            server,
            sent_rx,
            epoch,
        )
        .boxed(),
    );
    for agent in &team.agents {
        tasks.push(
            wait_for_wake_up(
                agent.clone(),
                team.project_id.clone(),
                coordinator.name.clone(),
                sent_tx.clone(),
                epoch,
                progress.clone(),
            )
            .boxed(),
        );
    }
    drop(sent_tx);
    let (outcomes, elapsed) = run_together(tasks).await?;

    let mut measurement = Measurement {
        elapsed,
        ..Measurement::default()
    };
    measurement.memory.before_waits_mb = before_waits_mb;
    let mut problems = Vec::new();
    let mut all_registered = None;
    for outcome in outcomes {
        measurement.ops += outcome.latencies.len() as u64;
        measurement.latencies.extend(outcome.latencies);
        measurement.conflicts += outcome.rejected_waits;
        problems.extend(outcome.problems);
        all_registered = all_registered.or(outcome.all_registered);
        if outcome.memory.during_waits_mb.is_some() {
            measurement.memory.during_waits_mb = outcome.memory.during_waits_mb;
        }
    }
    if let Some(registered) = all_registered {
        measurement.checks.push(Check::equal(
            "the server held every long-poll when its memory was read",
            true,
            registered,
        ));
    }
    measurement.checks.push(Check::none_of(
        "every agent woken once, by the wake-up message",
        &problems,
    ));
    Ok(measurement)
}

/// Waits until every agent has sent its long-poll and the server has registered them all,
/// then reads the server's memory. Then sends the wake-up messages: one broadcast, which
/// reaches every agent but the sender, and one direct message from the sender to itself.
async fn coordinate(
    coordinator: Arc<Agent>,
    project_id: String,
    agents: usize,
    server: ServerProcess,
    mut sent: mpsc::UnboundedReceiver<()>,
    epoch: Instant,
) -> anyhow::Result<Outcome> {
    for index in 0..agents {
        if sent.recv().await.is_none() {
            bail!("an agent stopped before it sent its long-poll ({index} of {agents} sent)");
        }
    }
    let mut outcome = Outcome::default();
    // A probe can tell that every wait is registered only when the cap equals the agent
    // count: the server then rejects one more long-poll.
    if server.max_long_polls == Some(agents as u64) {
        outcome.all_registered = Some(probe_until_full(&coordinator, &project_id).await?);
    } else {
        tokio::time::sleep(UNPROBED_SETTLE).await;
    }
    outcome.memory.during_waits_mb = server.pid.and_then(read_rss_mb);

    let wake_up = |broadcast: bool| {
        let mut args = json!({
            "project_id": project_id,
            "from_agent": coordinator.name,
            "reply_expected": false,
            "payload": {"wake_up": true, "sent_at_us": epoch.elapsed().as_micros() as u64},
        });
        if broadcast {
            args["broadcast"] = json!(true);
        } else {
            args["to_agent"] = json!(coordinator.name);
        }
        args
    };
    if agents > 1 {
        let result = coordinator.call("send_message", wake_up(true)).await?;
        let recipients = result["recipients"]
            .as_array()
            .ok_or_else(|| CallError::missing("send_message", "recipients", &result))?
            .len();
        if recipients != agents - 1 {
            outcome.problems.push(format!(
                "the wake-up broadcast went to {recipients} agents, expected {}",
                agents - 1
            ));
        }
    }
    coordinator.call("send_message", wake_up(false)).await?;
    Ok(outcome)
}

/// Sends `receive_messages {wait: true, timeout_seconds: 0}` for the coordinator until the
/// server rejects it because the whole process is at `--max-long-polls`, and returns
/// whether that happened within the registration limit. The probe's own wait times out
/// right after one check of the empty inbox, so it takes a place under the cap only
/// briefly. An agent rejected in that moment sends its wait again.
async fn probe_until_full(coordinator: &Agent, project_id: &str) -> anyhow::Result<bool> {
    let deadline = Instant::now() + REGISTRATION_LIMIT;
    while Instant::now() < deadline {
        let probe = coordinator
            .call(
                "receive_messages",
                json!({
                    "project_id": project_id,
                    "agent_name": coordinator.name,
                    "wait": true,
                    "timeout_seconds": 0,
                }),
            )
            .await;
        match probe {
            Err(CallError::Tool { code, body, .. })
                if code == TOO_MANY_WAITERS && body["details"]["max_long_polls"].is_u64() =>
            {
                return Ok(true);
            }
            Err(err) => return Err(err.into()),
            Ok(result) if result["count"] == json!(0) => tokio::time::sleep(RETRY_PAUSE).await,
            Ok(result) => bail!("the probe received a message before the wake-up: {result}"),
        }
    }
    Ok(false)
}

/// Signals on `sent` just before its first long-poll, then waits for the wake-up message
/// from `sender` and records its latency. A long-poll rejected by the cap is sent again.
async fn wait_for_wake_up(
    agent: Arc<Agent>,
    project_id: String,
    sender: String,
    sent: mpsc::UnboundedSender<()>,
    epoch: Instant,
    progress: Arc<AtomicU64>,
) -> anyhow::Result<Outcome> {
    let name = agent.name.clone();
    let mut outcome = Outcome::default();
    let mut signalled = false;
    let result = loop {
        if !signalled {
            if sent.send(()).is_err() {
                bail!("{name}: the coordinator stopped before the long-poll was sent");
            }
            signalled = true;
        }
        let call = agent
            .call(
                "receive_messages",
                json!({
                    "project_id": project_id,
                    "agent_name": name,
                    "wait": true,
                    "timeout_seconds": WAIT_SECONDS,
                }),
            )
            .await;
        match call {
            Ok(result) => break result,
            Err(err) if err.code() == Some(TOO_MANY_WAITERS) => {
                outcome.rejected_waits += 1;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(err) => return Err(err.into()),
        }
    };
    let received_at = epoch.elapsed();
    let messages = result["messages"]
        .as_array()
        .ok_or_else(|| CallError::missing("receive_messages", "messages", &result))?;
    match messages.as_slice() {
        [] => bail!(
            "{name}: the long-poll timed out after {WAIT_SECONDS} s without the wake-up message"
        ),
        [message] => match wake_up_sent_at(message, &sender) {
            Some(sent_at) => {
                outcome.latencies.push(received_at.saturating_sub(sent_at));
                progress.fetch_add(1, Ordering::Relaxed);
            }
            None => outcome
                .problems
                .push(format!("{name} got an unexpected message: {message}")),
        },
        more => outcome.problems.push(format!(
            "{name} got {} messages, expected one wake-up message",
            more.len()
        )),
    }
    Ok(outcome)
}

/// Returns the send time of a wake-up message from `sender`, or `None` for any other
/// message.
fn wake_up_sent_at(message: &Value, sender: &str) -> Option<Duration> {
    let payload = &message["payload"];
    let from_sender = message["from_agent"].as_str() == Some(sender);
    let is_wake_up = payload["wake_up"] == json!(true);
    let sent_at_us = payload["sent_at_us"].as_u64()?;
    (from_sender && is_wake_up).then(|| Duration::from_micros(sent_at_us))
}

/// Reads the resident memory of process `pid` from `/proc/<pid>/status` (`VmRSS`, which
/// Linux gives in KiB) and returns it in megabytes. Logs a warning and returns `None` when
/// the file cannot be read, for example on a system without `/proc`.
fn read_rss_mb(pid: u32) -> Option<f64> {
    let path = format!("/proc/{pid}/status");
    let status = match std::fs::read_to_string(&path) {
        Ok(status) => status,
        Err(err) => {
            warn!(%path, error = %err, "failed to read the server's memory usage");
            return None;
        }
    };
    let kib = parse_vm_rss_kib(&status);
    if kib.is_none() {
        warn!(%path, "no VmRSS line in the server's process status");
    }
    kib.map(|kib| kib as f64 * 1024.0 / 1e6)
}

/// Returns the value of the `VmRSS:` line of a `/proc/<pid>/status` text, in KiB.
fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_parsed_in_kib() {
        let status = "Name:\tbrainstorm\nVmPeak:\t  90000 kB\nVmRSS:\t   12345 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss_kib(status), Some(12345));
        assert_eq!(parse_vm_rss_kib("Name:\tbrainstorm\n"), None);
    }

    #[test]
    fn own_memory_is_readable() {
        let rss = read_rss_mb(std::process::id()).expect("VmRSS of this process");
        assert!(rss > 0.0, "resident memory {rss} MB");
    }

    #[test]
    fn wake_up_needs_sender_and_flag() {
        let message =
            json!({"from_agent": "agent-0", "payload": {"wake_up": true, "sent_at_us": 7}});
        assert_eq!(
            wake_up_sent_at(&message, "agent-0"),
            Some(Duration::from_micros(7))
        );
        assert_eq!(wake_up_sent_at(&message, "agent-1"), None);
        let other = json!({"from_agent": "agent-0", "payload": {"seq": 0, "sent_at_us": 7}});
        assert_eq!(wake_up_sent_at(&other, "agent-0"), None);
    }
}
