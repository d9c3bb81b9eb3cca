//! Linearizability of etag writes: 16 clients race read-then-write on one document over real
//! MCP connections, and a checker proves that the recorded history fits one sequential order
//! of compare-and-swap writes that also respects real time.
//!
//! The checker is a pure function over the history. Unit tests below feed it broken
//! histories, so that it is known to report each kind of violation.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::time::timeout;

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, ToolOutcome, acting_as, content_of, directory_of,
    etag_of, project_team,
};

const CLIENTS: usize = 16;
const ATTEMPTS_PER_CLIENT: usize = 25;

/// Time limit for all clients' attempts together: 800 calls on a loaded 2-core machine.
const RUN_LIMIT: Duration = Duration::from_secs(180);

const PROJECT: &str = "linear";
const DOCUMENT: &str = "register";
const INITIAL_CONTENT: &str = r#"{"writer":null,"attempt":null}"#;

/// The code a write with a stale etag must be rejected with.
const ETAG_MISMATCH: &str = "ETAG_MISMATCH";

/// Names one attempt: the client that made it and its attempt number, both from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AttemptId {
    client: usize,
    attempt: usize,
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} attempt {}", self.client, self.attempt)
    }
}

/// Result of the write of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// The write was applied and returned this new etag.
    Stored(String),
    /// The write was rejected with this error code.
    Rejected(String),
}

/// One read-then-write attempt. Instants are offsets from one start instant shared by every
/// client, taken just before a call is sent and just after its response arrives, so each
/// interval contains the moment the server applied the call.
#[derive(Debug, Clone)]
struct Attempt {
    id: AttemptId,
    read_invoked: Duration,
    read_responded: Duration,
    /// The etag `get_resource` returned, which the write then presented.
    etag_read: String,
    write_invoked: Duration,
    write_responded: Duration,
    /// The content the write tried to store.
    content: String,
    outcome: Outcome,
}

impl Attempt {
    fn stored_etag(&self) -> Option<&str> {
        match &self.outcome {
            Outcome::Stored(etag) => Some(etag),
            Outcome::Rejected(_) => None,
        }
    }
}

/// A state of the document: its etag and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    etag: String,
    content: String,
}

/// A version that `resource_history` lists, with its content read by `get_resource {version}`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeptVersion {
    number: u64,
    state: Version,
}

/// The document as the server reports it after the run.
#[derive(Debug, Clone)]
struct FinalState {
    current: Version,
    current_version: u64,
    /// Versions the server keeps, oldest first.
    kept: Vec<KeptVersion>,
    /// How many versions the server keeps at most (`kept` in `resource_history`).
    keep_limit: u64,
}

/// A way in which a history is not a linearizable history of etag compare-and-swap writes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Violation {
    /// Two successful writes returned the same etag, or a write returned the initial etag.
    EtagReused {
        etag: String,
        writes: Vec<AttemptId>,
    },
    /// A successful write presented an etag that neither the creation nor any successful
    /// write produced.
    UnknownInput { write: AttemptId, etag: String },
    /// Several successful writes presented the same etag: all but one lost an update.
    Fork {
        etag: String,
        writes: Vec<AttemptId>,
    },
    /// Successful writes that the chain starting at the initial etag does not reach.
    OffChain { writes: Vec<AttemptId> },
    /// `earlier` responded before `later` was invoked, yet the chain orders `later` first.
    RealTimeInversion {
        earlier: AttemptId,
        later: AttemptId,
    },
    /// A read returned an etag that neither the creation nor any successful write produced.
    ReadUnknownEtag { read: AttemptId, etag: String },
    /// A read returned the etag of a write that was invoked only after the read responded.
    ReadFromFuture {
        read: AttemptId,
        producer: AttemptId,
    },
    /// A read returned an etag that a write had replaced before the read was invoked.
    StaleRead {
        read: AttemptId,
        consumer: AttemptId,
    },
    /// A write was rejected with a code other than ETAG_MISMATCH.
    UnexpectedCode { write: AttemptId, code: String },
    /// A write was rejected although no successful write had replaced its etag by the time
    /// the rejection was returned.
    UnjustifiedRejection { write: AttemptId, etag: String },
    /// The document's final etag or content is not that of the last write in the chain.
    FinalStateDiffers { expected: Version, actual: Version },
    /// `current_version` is not 1 (the creation) plus the number of successful writes.
    VersionCount { expected: u64, actual: u64 },
    /// The kept version numbers are not the newest ones up to the keep limit.
    KeptNumbers {
        expected: Vec<u64>,
        actual: Vec<u64>,
    },
    /// A kept version's etag or content is not that of the chain at that position.
    KeptVersionDiffers {
        number: u64,
        expected: Version,
        actual: Version,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |ids: &[AttemptId]| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Violation::EtagReused { etag, writes } => {
                write!(
                    f,
                    "etag {etag} was returned more than once: {}",
                    list(writes)
                )
            }
            Violation::UnknownInput { write, etag } => write!(
                f,
                "{write} succeeded with etag {etag}, \
                 which no creation or successful write produced"
            ),
            Violation::Fork { etag, writes } => write!(
                f,
                "etag {etag} was consumed by {} successful writes (lost update): {}",
                writes.len(),
                list(writes)
            ),
            Violation::OffChain { writes } => write!(
                f,
                "{} successful writes are not on the chain from the initial etag: {}",
                writes.len(),
                list(writes)
            ),
            Violation::RealTimeInversion { earlier, later } => write!(
                f,
                "{earlier} responded before {later} was invoked, but the chain puts {later} first"
            ),
            Violation::ReadUnknownEtag { read, etag } => write!(
                f,
                "the read of {read} returned etag {etag}, \
                 which no creation or successful write produced"
            ),
            Violation::ReadFromFuture { read, producer } => write!(
                f,
                "the read of {read} returned the etag of {producer}, \
                 which was invoked after the read responded"
            ),
            Violation::StaleRead { read, consumer } => write!(
                f,
                "the read of {read} returned an etag that {consumer} had replaced \
                 before the read was invoked"
            ),
            Violation::UnexpectedCode { write, code } => {
                write!(
                    f,
                    "{write} was rejected with {code}, expected {ETAG_MISMATCH}"
                )
            }
            Violation::UnjustifiedRejection { write, etag } => write!(
                f,
                "{write} was rejected, but no successful write invoked before the rejection \
                 replaced etag {etag}"
            ),
            Violation::FinalStateDiffers { expected, actual } => write!(
                f,
                "the document ends as {actual:?}, but the last write in the chain is {expected:?}"
            ),
            Violation::VersionCount { expected, actual } => write!(
                f,
                "current_version is {actual}, expected {expected} (1 plus the successful writes), \
                 so a rejected write bumped it or a success was lost"
            ),
            Violation::KeptNumbers { expected, actual } => {
                write!(f, "kept versions are {actual:?}, expected {expected:?}")
            }
            Violation::KeptVersionDiffers {
                number,
                expected,
                actual,
            } => write!(
                f,
                "kept version {number} is {actual:?}, but the chain has {expected:?} there"
            ),
        }
    }
}

/// What the checker found.
#[derive(Debug)]
struct Verdict {
    /// Indexes into the history of the successful writes, in chain order.
    chain: Vec<usize>,
    violations: Vec<Violation>,
}

/// Checks that `history` is a linearizable history of compare-and-swap writes on one document
/// created as `initial`, and that `final_state` is the state that history leaves.
fn check_history(initial: &Version, history: &[Attempt], final_state: &FinalState) -> Verdict {
    let mut violations = Vec::new();
    let chain = link_chain(initial, history, &mut violations);
    check_real_time(history, &chain, &mut violations);
    check_reads_and_rejections(initial, history, &mut violations);
    check_final_state(initial, history, &chain, final_state, &mut violations);
    Verdict { chain, violations }
}

/// Indexes of the successful writes, grouped by the etag each one presented.
fn consumers_by_etag(history: &[Attempt]) -> HashMap<&str, Vec<usize>> {
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (index, attempt) in history.iter().enumerate() {
        if attempt.stored_etag().is_some() {
            consumers
                .entry(attempt.etag_read.as_str())
                .or_default()
                .push(index);
        }
    }
    consumers
}

/// Indexes of the successful writes, by the etag each one returned. The first write wins
/// when two returned the same etag (which is reported separately).
fn producers_by_etag(history: &[Attempt]) -> HashMap<&str, usize> {
    let mut producers = HashMap::new();
    for (index, attempt) in history.iter().enumerate() {
        if let Some(etag) = attempt.stored_etag() {
            producers.entry(etag).or_insert(index);
        }
    }
    producers
}

/// Follows the successful writes from the initial etag, each consuming the etag the one
/// before produced, and reports etags used twice, forks and writes the chain misses.
fn link_chain(
    initial: &Version,
    history: &[Attempt],
    violations: &mut Vec<Violation>,
) -> Vec<usize> {
    let mut returned: HashMap<&str, Vec<AttemptId>> = HashMap::new();
    for attempt in history {
        if let Some(etag) = attempt.stored_etag() {
            returned.entry(etag).or_default().push(attempt.id);
        }
    }
    let mut reused: Vec<_> = returned
        .into_iter()
        .filter(|(etag, writes)| writes.len() > 1 || *etag == initial.etag)
        .collect();
    reused.sort_by_key(|(etag, _)| etag.to_string());
    for (etag, writes) in reused {
        violations.push(Violation::EtagReused {
            etag: etag.to_owned(),
            writes,
        });
    }

    let producers = producers_by_etag(history);
    for attempt in history.iter().filter(|a| a.stored_etag().is_some()) {
        let input = attempt.etag_read.as_str();
        if input != initial.etag && !producers.contains_key(input) {
            violations.push(Violation::UnknownInput {
                write: attempt.id,
                etag: input.to_owned(),
            });
        }
    }

    let consumers = consumers_by_etag(history);
    let mut forks: Vec<_> = consumers
        .iter()
        .filter(|(_, writes)| writes.len() > 1)
        .collect();
    forks.sort_by_key(|(_, writes)| writes[0]);
    for (etag, writes) in forks {
        violations.push(Violation::Fork {
            etag: (*etag).to_owned(),
            writes: writes.iter().map(|&index| history[index].id).collect(),
        });
    }

    // Along a fork the chain follows the first consumer in history order, so the others then
    // show up as off the chain.
    let mut chain = Vec::new();
    let mut on_chain = vec![false; history.len()];
    let mut current = initial.etag.as_str();
    while let Some(&next) = consumers.get(current).and_then(|writes| writes.first()) {
        if on_chain[next] {
            break;
        }
        on_chain[next] = true;
        chain.push(next);
        current = history[next].stored_etag().unwrap_or_default();
    }
    let off_chain: Vec<AttemptId> = history
        .iter()
        .enumerate()
        .filter(|(index, attempt)| attempt.stored_etag().is_some() && !on_chain[*index])
        .map(|(_, attempt)| attempt.id)
        .collect();
    if !off_chain.is_empty() {
        violations.push(Violation::OffChain { writes: off_chain });
    }
    chain
}

/// Reports every pair of chained writes where the one that finished first in real time
/// comes later in the chain.
fn check_real_time(history: &[Attempt], chain: &[usize], violations: &mut Vec<Violation>) {
    for (position, &later) in chain.iter().enumerate() {
        for &earlier in &chain[position + 1..] {
            if history[earlier].write_responded < history[later].write_invoked {
                violations.push(Violation::RealTimeInversion {
                    earlier: history[earlier].id,
                    later: history[later].id,
                });
            }
        }
    }
}

/// Checks that every read returned an etag that was current at some instant of the read,
/// and that every rejected write was rejected because its etag had been replaced.
fn check_reads_and_rejections(
    initial: &Version,
    history: &[Attempt],
    violations: &mut Vec<Violation>,
) {
    let producers = producers_by_etag(history);
    let consumers = consumers_by_etag(history);
    for attempt in history {
        let etag = attempt.etag_read.as_str();
        if etag != initial.etag {
            match producers.get(etag) {
                None => violations.push(Violation::ReadUnknownEtag {
                    read: attempt.id,
                    etag: etag.to_owned(),
                }),
                Some(&producer) if history[producer].write_invoked > attempt.read_responded => {
                    violations.push(Violation::ReadFromFuture {
                        read: attempt.id,
                        producer: history[producer].id,
                    });
                }
                Some(_) => {}
            }
        }
        let replacing = consumers.get(etag).map(Vec::as_slice).unwrap_or_default();
        for &consumer in replacing {
            if history[consumer].write_responded < attempt.read_invoked {
                violations.push(Violation::StaleRead {
                    read: attempt.id,
                    consumer: history[consumer].id,
                });
            }
        }

        let Outcome::Rejected(code) = &attempt.outcome else {
            continue;
        };
        if code != ETAG_MISMATCH {
            violations.push(Violation::UnexpectedCode {
                write: attempt.id,
                code: code.clone(),
            });
            continue;
        }
        // The write read `etag` while it was current, so a rejection is right only once some
        // successful write has replaced it, and that write must have begun before the
        // rejection was returned.
        let justified = replacing
            .iter()
            .any(|&consumer| history[consumer].write_invoked < attempt.write_responded);
        if !justified {
            violations.push(Violation::UnjustifiedRejection {
                write: attempt.id,
                etag: etag.to_owned(),
            });
        }
    }
}

/// Checks that the document contains the last chained write, that its version counts exactly
/// the successful writes, and that each kept version matches the chain at its position.
fn check_final_state(
    initial: &Version,
    history: &[Attempt],
    chain: &[usize],
    final_state: &FinalState,
    violations: &mut Vec<Violation>,
) {
    // Version 1 is the creation. The write at chain position i made version i + 2.
    let version_at = |number: u64| -> Option<Version> {
        if number == 1 {
            return Some(initial.clone());
        }
        let position = usize::try_from(number.checked_sub(2)?).ok()?;
        let attempt = &history[*chain.get(position)?];
        Some(Version {
            etag: attempt.stored_etag()?.to_owned(),
            content: attempt.content.clone(),
        })
    };

    let last = chain.len() as u64 + 1;
    let expected_current = version_at(last).unwrap_or_else(|| initial.clone());
    if final_state.current != expected_current {
        violations.push(Violation::FinalStateDiffers {
            expected: expected_current,
            actual: final_state.current.clone(),
        });
    }

    let successes = history.iter().filter(|a| a.stored_etag().is_some()).count() as u64;
    let expected_version = 1 + successes;
    if final_state.current_version != expected_version {
        violations.push(Violation::VersionCount {
            expected: expected_version,
            actual: final_state.current_version,
        });
    }

    let oldest_kept = expected_version.saturating_sub(final_state.keep_limit) + 1;
    let expected_numbers: Vec<u64> = (oldest_kept..=expected_version).collect();
    let actual_numbers: Vec<u64> = final_state.kept.iter().map(|kept| kept.number).collect();
    if actual_numbers != expected_numbers {
        violations.push(Violation::KeptNumbers {
            expected: expected_numbers,
            actual: actual_numbers,
        });
    }
    for kept in &final_state.kept {
        let Some(expected) = version_at(kept.number) else {
            continue;
        };
        if kept.state != expected {
            violations.push(Violation::KeptVersionDiffers {
                number: kept.number,
                expected,
                actual: kept.state.clone(),
            });
        }
    }
}

fn writer_name(client: usize) -> String {
    format!("writer-{client}")
}

fn read_args(agent: &str) -> Value {
    json!({ "project_id": PROJECT, "resource_id": DOCUMENT, "agent_name": agent })
}

/// Makes `ATTEMPTS_PER_CLIENT` read-then-write attempts as client `client` and records each.
/// A call that fails outside the tool (transport, timeout) or a failed read ends the run.
async fn run_client(
    session: Session,
    client: usize,
    origin: Instant,
    start: Arc<Barrier>,
) -> Result<Vec<Attempt>> {
    let agent = writer_name(client);
    let mut attempts = Vec::with_capacity(ATTEMPTS_PER_CLIENT);
    start.wait().await;
    for attempt in 0..ATTEMPTS_PER_CLIENT {
        let id = AttemptId { client, attempt };

        let read_invoked = origin.elapsed();
        let read = session
            .ok("get_resource", read_args(&agent))
            .await
            .with_context(|| format!("the read of {id} failed"))?;
        let read_responded = origin.elapsed();
        let etag_read = etag_of(&read)?;

        let content = format!(r#"{{"writer":{client},"attempt":{attempt}}}"#);
        let write = json!({
            "project_id": PROJECT,
            "resource_id": DOCUMENT,
            "name": "Register",
            "agent_name": agent,
            "content": content,
            "etag": etag_read,
        });
        let write_invoked = origin.elapsed();
        let response = session
            .call("store_resource", write)
            .await
            .with_context(|| format!("the write of {id} got no tool result"))?;
        let write_responded = origin.elapsed();
        let outcome = match response {
            ToolOutcome::Success(stored) => Outcome::Stored(etag_of(&stored)?),
            ToolOutcome::Failure(body) => Outcome::Rejected(
                body.get("code")
                    .and_then(Value::as_str)
                    .map_or_else(|| format!("no code in {body}"), str::to_owned),
            ),
        };
        attempts.push(Attempt {
            id,
            read_invoked,
            read_responded,
            etag_read,
            write_invoked,
            write_responded,
            content,
            outcome,
        });
    }
    Ok(attempts)
}

/// Reads the document's current state, its version list, and the content of each kept
/// version.
async fn read_final_state(session: &Session, agent: &str) -> Result<FinalState> {
    let current = session.ok("get_resource", read_args(agent)).await?;
    let current = Version {
        etag: etag_of(&current)?,
        content: content_of(&current)?,
    };
    let history = session
        .ok("resource_history", acting_as(agent, read_args(agent)))
        .await?;
    let number_field = |value: &Value, field: &str| {
        value
            .get(field)
            .and_then(Value::as_u64)
            .with_context(|| format!("field {field:?} is missing or not a number in {value}"))
    };
    let current_version = number_field(&history, "current_version")?;
    let keep_limit = number_field(&history, "kept")?;
    let listed = history
        .get("versions")
        .and_then(Value::as_array)
        .with_context(|| format!("no versions array in {history}"))?;

    let mut kept = Vec::with_capacity(listed.len());
    for entry in listed {
        let number = number_field(entry, "version")?;
        let mut args = read_args(agent);
        args["version"] = json!(number);
        let old = session.ok("get_resource", args).await?;
        let listed_etag = etag_of(entry)?;
        let read_etag = etag_of(&old)?;
        assert_eq!(
            read_etag, listed_etag,
            "get_resource {{version: {number}}} returned another etag than resource_history lists"
        );
        kept.push(KeptVersion {
            number,
            state: Version {
                etag: listed_etag,
                content: content_of(&old)?,
            },
        });
    }
    Ok(FinalState {
        current,
        current_version,
        kept,
        keep_limit,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_etag_writes_are_linearizable() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let names: Vec<String> = (0..CLIENTS).map(writer_name).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let sessions = project_team(&server, PROJECT, &name_refs).await?;
    let created = sessions[0]
        .ok(
            "store_resource",
            json!({
                "project_id": PROJECT,
                "resource_id": DOCUMENT,
                "name": "Register",
                "agent_name": names[0],
                "content": INITIAL_CONTENT,
                "permissions": { "read": ["*"], "write": ["*"] },
            }),
        )
        .await?;
    let initial = Version {
        etag: etag_of(&created)?,
        content: INITIAL_CONTENT.to_owned(),
    };

    let origin = Instant::now();
    let start = Arc::new(Barrier::new(CLIENTS));
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(client, session)| {
            tokio::spawn(run_client(session, client, origin, Arc::clone(&start)))
        })
        .collect();
    let collect_attempts = async {
        let mut history = Vec::with_capacity(CLIENTS * ATTEMPTS_PER_CLIENT);
        for task in tasks {
            history.extend(task.await.context("a writing client panicked")??);
        }
        Ok::<_, anyhow::Error>(history)
    };
    let history = timeout(RUN_LIMIT, collect_attempts)
        .await
        .with_context(|| format!("the writers did not finish within {RUN_LIMIT:?}"))??;
    let run_time = origin.elapsed();

    let reader = server.agent(&directory_of(&names[1])).await?;
    let final_state = read_final_state(&reader, &names[1]).await?;
    let verdict = check_history(&initial, &history, &final_state);

    let successes = history
        .iter()
        .filter(|attempt| attempt.stored_etag().is_some())
        .count();
    let rejections = history.len() - successes;
    println!(
        "{} attempts by {CLIENTS} clients in {run_time:?}: \
         {successes} stored, {rejections} rejected",
        history.len()
    );
    let report: Vec<String> = verdict.violations.iter().map(ToString::to_string).collect();
    assert!(
        report.is_empty(),
        "the history of {} attempts is not linearizable ({} violations):\n{}",
        history.len(),
        report.len(),
        report.join("\n")
    );
    assert_eq!(history.len(), CLIENTS * ATTEMPTS_PER_CLIENT);
    assert!(
        rejections >= 1,
        "all {} writes succeeded, so the clients never contended and the check proved nothing; \
         raise CLIENTS or ATTEMPTS_PER_CLIENT",
        history.len()
    );
    assert!(
        successes >= CLIENTS,
        "only {successes} of {} writes succeeded (fewer than one per client), so the chain is \
         too short to test ordering; {rejections} were rejected",
        history.len()
    );
    Ok(())
}

/// One attempt of a hand-built history: client, etag read, the etag stored or the code
/// rejected with, read interval in ms, and write interval in ms.
type Step<'a> = (
    usize,
    &'a str,
    Result<&'a str, &'a str>,
    (u64, u64),
    (u64, u64),
);

/// Builds a history for the checker tests, in which each write stores "c{client}".
fn hand_built(steps: &[Step]) -> Vec<Attempt> {
    steps
        .iter()
        .enumerate()
        .map(
            |(attempt, &(client, etag_read, outcome, read, write))| Attempt {
                id: AttemptId { client, attempt },
                read_invoked: Duration::from_millis(read.0),
                read_responded: Duration::from_millis(read.1),
                etag_read: etag_read.to_owned(),
                write_invoked: Duration::from_millis(write.0),
                write_responded: Duration::from_millis(write.1),
                content: format!("c{client}"),
                outcome: match outcome {
                    Ok(etag) => Outcome::Stored(etag.to_owned()),
                    Err(code) => Outcome::Rejected(code.to_owned()),
                },
            },
        )
        .collect()
}

fn version(etag: &str, content: &str) -> Version {
    Version {
        etag: etag.to_owned(),
        content: content.to_owned(),
    }
}

/// The final state a correct server reports after `states` (oldest first, starting with the
/// creation), keeping every version.
fn final_after(states: &[Version]) -> FinalState {
    FinalState {
        current: states.last().cloned().unwrap_or_else(|| version("", "")),
        current_version: states.len() as u64,
        kept: states
            .iter()
            .enumerate()
            .map(|(index, state)| KeptVersion {
                number: index as u64 + 1,
                state: state.clone(),
            })
            .collect(),
        keep_limit: 20,
    }
}

fn id(client: usize, attempt: usize) -> AttemptId {
    AttemptId { client, attempt }
}

#[test]
fn checker_accepts_sequential_history() {
    let initial = version("e0", "init");
    // Client 0 stores e1, client 1 is rejected on the stale e0, then stores e2 after a re-read.
    let history = hand_built(&[
        (0, "e0", Ok("e1"), (0, 1), (2, 3)),
        (1, "e0", Err(ETAG_MISMATCH), (0, 1), (2, 4)),
        (1, "e1", Ok("e2"), (5, 6), (7, 8)),
    ]);
    let final_state = final_after(&[initial.clone(), version("e1", "c0"), version("e2", "c1")]);

    let verdict = check_history(&initial, &history, &final_state);

    assert_eq!(verdict.violations, Vec::<Violation>::new());
    assert_eq!(verdict.chain, vec![0, 2]);
}

#[test]
fn checker_reports_forked_chain() {
    let initial = version("e0", "init");
    // Both clients presented e0 and both writes succeeded, so one update was lost.
    let history = hand_built(&[
        (0, "e0", Ok("e1"), (0, 1), (2, 3)),
        (1, "e0", Ok("e2"), (0, 1), (2, 4)),
    ]);
    let final_state = final_after(&[initial.clone(), version("e1", "c0"), version("e2", "c1")]);

    let verdict = check_history(&initial, &history, &final_state);

    assert_eq!(
        verdict.violations,
        vec![
            Violation::Fork {
                etag: "e0".to_owned(),
                writes: vec![id(0, 0), id(1, 1)],
            },
            Violation::OffChain {
                writes: vec![id(1, 1)],
            },
            Violation::FinalStateDiffers {
                expected: version("e1", "c0"),
                actual: version("e2", "c1"),
            },
        ]
    );
}

#[test]
fn checker_reports_lost_update() {
    let initial = version("e0", "init");
    // Both writes form a proper chain, but the server kept only the first one.
    let history = hand_built(&[
        (0, "e0", Ok("e1"), (0, 1), (2, 3)),
        (1, "e1", Ok("e2"), (4, 5), (6, 7)),
    ]);
    let final_state = final_after(&[initial.clone(), version("e1", "c0")]);

    let verdict = check_history(&initial, &history, &final_state);

    assert_eq!(
        verdict.violations,
        vec![
            Violation::FinalStateDiffers {
                expected: version("e2", "c1"),
                actual: version("e1", "c0"),
            },
            Violation::VersionCount {
                expected: 3,
                actual: 2,
            },
            Violation::KeptNumbers {
                expected: vec![1, 2, 3],
                actual: vec![1, 2],
            },
        ]
    );
}

#[test]
fn checker_reports_real_time_inversion() {
    let initial = version("e0", "init");
    // Client 0 finished at 3 ms, yet its write consumed the etag of client 1's write, which
    // began only at 5 ms: the etags describe an order that real time rules out.
    let history = hand_built(&[
        (0, "e1", Ok("e2"), (0, 1), (2, 3)),
        (1, "e0", Ok("e1"), (4, 5), (5, 6)),
    ]);
    let final_state = final_after(&[initial.clone(), version("e1", "c1"), version("e2", "c0")]);

    let verdict = check_history(&initial, &history, &final_state);

    assert_eq!(
        verdict.violations,
        vec![
            Violation::RealTimeInversion {
                earlier: id(0, 0),
                later: id(1, 1),
            },
            Violation::ReadFromFuture {
                read: id(0, 0),
                producer: id(1, 1),
            },
        ]
    );
    assert_eq!(verdict.chain, vec![1, 0]);
}

#[test]
fn checker_reports_unjustified_rejection() {
    let initial = version("e0", "init");
    // Client 0 was rejected at 3 ms, but the only write that replaced e0 began at 4 ms.
    let history = hand_built(&[
        (0, "e0", Err(ETAG_MISMATCH), (0, 1), (2, 3)),
        (1, "e0", Ok("e1"), (0, 1), (4, 5)),
        (2, "e1", Err("INTERNAL_ERROR"), (6, 7), (8, 9)),
    ]);
    let final_state = final_after(&[initial.clone(), version("e1", "c1")]);

    let verdict = check_history(&initial, &history, &final_state);

    assert_eq!(
        verdict.violations,
        vec![
            Violation::UnjustifiedRejection {
                write: id(0, 0),
                etag: "e0".to_owned(),
            },
            Violation::UnexpectedCode {
                write: id(2, 2),
                code: "INTERNAL_ERROR".to_owned(),
            },
        ]
    );
}

#[test]
fn checker_reports_stale_read() {
    let initial = version("e0", "init");
    // Client 0's write of e1 responded at 3 ms. Client 1's read began at 5 ms and still
    // returned e0.
    let history = hand_built(&[
        (0, "e0", Ok("e1"), (0, 1), (2, 3)),
        (1, "e0", Err(ETAG_MISMATCH), (5, 6), (7, 8)),
    ]);
    let final_state = final_after(&[initial.clone(), version("e1", "c0")]);

    let verdict = check_history(&initial, &history, &final_state);

    assert_eq!(
        verdict.violations,
        vec![Violation::StaleRead {
            read: id(1, 1),
            consumer: id(0, 0),
        }]
    );
}
