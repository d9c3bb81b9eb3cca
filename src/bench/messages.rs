//! The message scenarios: senders and waiting receivers, with delivery latency measured on
//! one process clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::sync::mpsc;

use super::agent::{Agent, CallError};
use super::report::Check;
use super::scenarios::{Measurement, RunSettings, Team, run_together};

/// Long-poll timeout a receiver requests, in seconds. A message that takes longer counts as
/// lost.
const WAIT_SECONDS: u64 = 30;

/// One sender and the agents that receive its messages.
pub struct Group {
    pub sender: Arc<Agent>,
    pub receivers: Vec<Arc<Agent>>,
    /// Sends with `broadcast: true` instead of `to_agent`; needs exactly the receivers as the
    /// other members of the project.
    pub broadcast: bool,
}

/// Deliveries seen by one receiver.
#[derive(Debug, Default)]
struct Receipts {
    latencies: Vec<Duration>,
    /// Messages that were unexpected, repeated or out of order.
    problems: Vec<String>,
}

/// Runs a message scenario. In each group the sender sends `ops` messages, one at a time, each
/// once all of its receivers are about to wait. The checks then require that every receiver
/// got each message exactly once and in order. Latency is the time from just before the send
/// call to just after the receive call returns, on this process's clock.
pub async fn messages(
    team: &Team,
    groups: Vec<Group>,
    settings: RunSettings,
    progress: &Arc<AtomicU64>,
) -> anyhow::Result<Measurement> {
    let epoch = Instant::now();
    let mut tasks: Vec<BoxFuture<'static, anyhow::Result<Receipts>>> = Vec::new();
    for group in &groups {
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        let target = match (group.broadcast, group.receivers.as_slice()) {
            (true, receivers) => Target::Broadcast {
                recipients: receivers.len(),
            },
            (false, [receiver]) => Target::Direct(receiver.name.clone()),
            (false, receivers) => bail!(
                "a direct message group needs exactly one receiver, not {}",
                receivers.len()
            ),
        };
        let sender = send_messages(
            group.sender.clone(),
            team.project_id.clone(),
            target,
            ready_rx,
            settings,
            epoch,
        );
        tasks.push(sender.boxed());
        for receiver in &group.receivers {
            tasks.push(
                receive_messages(
                    receiver.clone(),
                    team.project_id.clone(),
                    group.sender.name.clone(),
                    settings.ops,
                    ready_tx.clone(),
                    epoch,
                    progress.clone(),
                )
                .boxed(),
            );
        }
    }
    let (receipts, elapsed) = run_together(tasks).await?;

    let mut measurement = Measurement {
        elapsed,
        ..Measurement::default()
    };
    let mut problems = Vec::new();
    for receipt in receipts {
        measurement.ops += receipt.latencies.len() as u64;
        measurement.latencies.extend(receipt.latencies);
        problems.extend(receipt.problems);
    }
    measurement.checks.push(Check::none_of(
        "every message delivered once, in the order sent",
        &problems,
    ));

    let mut leftovers = Vec::new();
    for receiver in groups.iter().flat_map(|group| &group.receivers) {
        let result = receiver
            .call(
                "receive_messages",
                json!({"project_id": team.project_id, "agent_name": receiver.name}),
            )
            .await?;
        let count = result["count"]
            .as_u64()
            .ok_or_else(|| CallError::missing("receive_messages", "count", &result))?;
        if count > 0 {
            leftovers.push(format!("{} has {count} more message(s)", receiver.name));
        }
    }
    measurement.checks.push(Check::none_of(
        "no message left unread after the run",
        &leftovers,
    ));
    Ok(measurement)
}

/// Recipients of a sender's messages.
#[derive(Debug, Clone)]
enum Target {
    /// A direct message to one agent.
    Direct(String),
    /// A broadcast to every other member, `recipients` of them.
    Broadcast { recipients: usize },
}

impl Target {
    /// Returns how many agents receive each message.
    fn recipients(&self) -> usize {
        match self {
            Target::Direct(_) => 1,
            Target::Broadcast { recipients } => *recipients,
        }
    }
}

/// Sends `settings.ops` messages from `sender` to `target`, each after every recipient has
/// signalled on `ready` that it is about to wait for it.
async fn send_messages(
    sender: Arc<Agent>,
    project_id: String,
    target: Target,
    mut ready: mpsc::UnboundedReceiver<()>,
    settings: RunSettings,
    epoch: Instant,
) -> anyhow::Result<Receipts> {
    let mut receipts = Receipts::default();
    let expected = target.recipients();
    for seq in 0..settings.ops {
        for _ in 0..expected {
            if ready.recv().await.is_none() {
                bail!(
                    "{}: a receiver stopped before message {seq} was sent",
                    sender.name
                );
            }
        }
        // NOTE: the signal comes just before the receiver's call, and the client cannot see
        // when the server has registered the wait. A receive that reaches the server
        // after the send finds the message at once, and its latency then includes the rest
        // of its own request.
        tokio::time::sleep(settings.settle).await;
        let mut args = json!({
            "project_id": project_id,
            "from_agent": sender.name,
            "reply_expected": false,
            "payload": {"seq": seq, "sent_at_us": epoch.elapsed().as_micros() as u64},
        });
        match &target {
            Target::Direct(name) => args["to_agent"] = json!(name),
            Target::Broadcast { .. } => args["broadcast"] = json!(true),
        }
        let result = sender.call("send_message", args).await?;
        let recipients = result["recipients"]
            .as_array()
            .ok_or_else(|| CallError::missing("send_message", "recipients", &result))?
            .len();
        if recipients != expected {
            receipts.problems.push(format!(
                "message {seq} from {} went to {recipients} recipients, expected {expected}",
                sender.name
            ));
        }
    }
    Ok(receipts)
}

/// Receives `ops` messages from `sender` with long-polls, signalling on `ready` before each
/// wait for a new message, and records each delivery's latency.
async fn receive_messages(
    receiver: Arc<Agent>,
    project_id: String,
    sender: String,
    ops: u64,
    ready: mpsc::UnboundedSender<()>,
    epoch: Instant,
    progress: Arc<AtomicU64>,
) -> anyhow::Result<Receipts> {
    let name = receiver.name.clone();
    let mut receipts = Receipts::default();
    let mut next = 0;
    let mut signalled = None;
    while next < ops {
        // One signal per expected message: a call that returned only a repeated message
        // waits again without a new signal.
        if signalled != Some(next) {
            if ready.send(()).is_err() {
                bail!("{name}: the sender stopped before message {next}");
            }
            signalled = Some(next);
        }
        let result = receiver
            .call(
                "receive_messages",
                json!({
                    "project_id": project_id,
                    "agent_name": name,
                    "wait": true,
                    "timeout_seconds": WAIT_SECONDS,
                }),
            )
            .await?;
        let received_at = epoch.elapsed();
        let messages = result["messages"]
            .as_array()
            .ok_or_else(|| CallError::missing("receive_messages", "messages", &result))?;
        if messages.is_empty() {
            bail!("{name}: message {next} from {sender} did not arrive within {WAIT_SECONDS} s");
        }
        for message in messages {
            let from = message["from_agent"].as_str().unwrap_or("?");
            let payload = &message["payload"];
            let (Some(seq), Some(sent_at_us)) =
                (payload["seq"].as_u64(), payload["sent_at_us"].as_u64())
            else {
                receipts.problems.push(format!(
                    "{name} got a message without seq or sent_at_us: {message}"
                ));
                continue;
            };
            if from != sender {
                receipts.problems.push(format!(
                    "{name} got message {seq} from {from}, expected {sender}"
                ));
            } else if seq < next {
                receipts.problems.push(format!(
                    "{name} got message {seq} again, or late, after message {}",
                    next - 1
                ));
            } else {
                if seq > next {
                    receipts.problems.push(format!(
                        "{name} got message {seq} while expecting message {next}"
                    ));
                }
                let sent_at = Duration::from_micros(sent_at_us);
                receipts.latencies.push(received_at.saturating_sub(sent_at));
                progress.fetch_add(1, Ordering::Relaxed);
                next = seq + 1;
            }
        }
    }
    Ok(receipts)
}
