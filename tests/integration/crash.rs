//! Crash safety: a write load runs through the real server, which is killed with SIGKILL at a
//! random moment and restarted on the same data folder, cycle after cycle. After every kill
//! the file passes `brainstorm check`, every acknowledged write is there, every write in
//! flight at the kill is there whole or not at all, no broadcast reached only some of its
//! recipients, and the counter never goes back.
//!
//! `BRAINSTORM_CRASH_CYCLES` sets the number of cycles (default 5) and `BRAINSTORM_CRASH_SEED`
//! replays the kill moments of an earlier run. `scripts/crash-test` runs the long version.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use brainstorm::storage::decode;
use brainstorm::storage::records::{MessageRecord, content_hash};
use brainstorm::storage::tables::{ARCHIVE, INBOX};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redb::{ReadOnlyDatabase, ReadableDatabase, ReadableTable};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, ToolOutcome, acting_as, content_of,
    create_counter, directory_of, etag_of, owner_pid, project_team, read_counter, server_command,
    store_counter_args, wait_for_owner_pid,
};

/// Environment variable with the number of kill cycles.
const CYCLES_VAR: &str = "BRAINSTORM_CRASH_CYCLES";

/// Cycles when [`CYCLES_VAR`] is unset: few enough for the CI run on 2 cores.
const DEFAULT_CYCLES: usize = 5;

/// Environment variable with the seed of the kill moments, to replay a failed run.
const SEED_VAR: &str = "BRAINSTORM_CRASH_SEED";

/// Milliseconds between the start of the load and the kill, drawn anew for every cycle.
const KILL_AFTER_MS: RangeInclusive<u64> = 20..=400;

/// Project of the counter and the log.
const WORK: &str = "work";

/// Project of the broadcasts.
const NEWS: &str = "news";

/// The log the loggers append to.
const LOG_ID: &str = "journal";

/// Agents that increment the counter with etag compare-and-swap.
const COUNTER_WRITERS: [&str; 4] = ["counter-0", "counter-1", "counter-2", "counter-3"];

/// Agents that append to the log.
const LOGGERS: [&str; 3] = ["logger-0", "logger-1", "logger-2"];

/// Agent that broadcasts in [`NEWS`].
const HERALD: &str = "herald";

/// Members of [`NEWS`] besides the herald, so every broadcast goes to all of them. They are
/// lowercase because the message tables key recipients by the lowercased name.
const LISTENERS: [&str; 4] = ["listener-0", "listener-1", "listener-2", "listener-3"];

/// Time limit for one call of the load. A call cut off by the kill fails at once, so this
/// only bounds a hung call.
const LOAD_CALL_LIMIT: Duration = Duration::from_secs(20);

/// Time limit for every load task to end after the kill.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// Time limit for the restarted server to replace the stale `owner.json`.
const OWNER_LIMIT: Duration = Duration::from_secs(10);

/// Entries per `read_log` page, the most the tool allows.
const LOG_PAGE: u64 = 1000;

/// What one counter writer did in one cycle.
#[derive(Debug, Default)]
struct CounterRun {
    /// Value written by every acknowledged store, with the etag the store returned.
    acked: Vec<(u64, String)>,
    /// `store_resource` calls sent, acknowledged or not.
    attempts: u64,
    /// Value of the store that was in flight at the kill.
    in_flight: Option<u64>,
}

/// What one logger did in one cycle.
#[derive(Debug, Default)]
struct LogRun {
    /// `seq` and entry of every acknowledged append.
    acked: Vec<(u64, Value)>,
    /// Entry of the append that was in flight at the kill.
    in_flight: Option<Value>,
}

/// What the herald did in one cycle.
#[derive(Debug, Default)]
struct BroadcastRun {
    /// `message_id` and payload of every acknowledged broadcast.
    acked: Vec<(String, Value)>,
    /// Payload of the broadcast that was in flight at the kill.
    in_flight: Option<Value>,
}

/// Everything the clients recorded in one cycle, up to the kill.
#[derive(Debug)]
struct Load {
    counter: Vec<CounterRun>,
    logs: Vec<LogRun>,
    broadcasts: BroadcastRun,
    /// Pid of the killed server, which `owner.json` still names.
    killed_pid: u32,
}

/// Writes in flight at a kill, and how many of them turned out committed.
#[derive(Debug, Default, Clone, Copy)]
struct InFlight {
    sent: usize,
    landed: usize,
}

impl InFlight {
    fn add(&mut self, other: InFlight) {
        self.sent += other.sent;
        self.landed += other.landed;
    }
}

/// Numbers of one cycle, and summed over all cycles.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    acked_increments: usize,
    acked_appends: usize,
    acked_broadcasts: usize,
    counter: InFlight,
    log: InFlight,
    broadcast: InFlight,
}

impl Tally {
    fn add(&mut self, other: &Tally) {
        self.acked_increments += other.acked_increments;
        self.acked_appends += other.acked_appends;
        self.acked_broadcasts += other.acked_broadcasts;
        self.counter.add(other.counter);
        self.log.add(other.log);
        self.broadcast.add(other.broadcast);
    }

    fn in_flight(&self) -> InFlight {
        let mut all = self.counter;
        all.add(self.log);
        all.add(self.broadcast);
        all
    }
}

/// One copy of a broadcast found in the database file.
#[derive(Debug)]
struct StoredCopy {
    recipient: String,
    payload: Value,
}

/// The state the test has verified so far: after every cycle, what is stored must extend it.
#[derive(Debug)]
struct Ledger {
    /// Counter value read after the last restart.
    counter: u64,
    /// Every `store_resource` call on the counter so far.
    attempts: u64,
    /// Every counter value an acknowledged store wrote.
    acked_values: HashSet<u64>,
    /// Author and entry of every log entry, at index `seq - 1`.
    log: Vec<(String, Value)>,
    /// Payload of every broadcast found stored, by `message_id`.
    broadcasts: HashMap<String, Value>,
}

/// Sessions of every agent on the running server.
struct Agents {
    counter_writers: Vec<Session>,
    loggers: Vec<Session>,
    herald: Session,
    reader: Session,
}

impl Agents {
    /// Opens one stateless HTTP session per agent. Its `status` call shows that the server is up.
    async fn connect(server: &HttpServer) -> Result<Agents> {
        let mut counter_writers = Vec::new();
        for name in COUNTER_WRITERS {
            counter_writers.push(server.agent(&directory_of(name)).await?);
        }
        let mut loggers = Vec::new();
        for name in LOGGERS {
            loggers.push(server.agent(&directory_of(name)).await?);
        }
        Ok(Agents {
            counter_writers,
            loggers,
            herald: server.agent(&directory_of(HERALD)).await?,
            reader: server.agent(&directory_of(LISTENERS[0])).await?,
        })
    }
}

/// Reads the cycle count from [`CYCLES_VAR`].
fn cycles_from_env() -> Result<usize> {
    match std::env::var(CYCLES_VAR) {
        Ok(text) => text
            .trim()
            .parse()
            .ok()
            .filter(|cycles| *cycles > 0)
            .with_context(|| {
                format!("{CYCLES_VAR}={text:?} is invalid: set it to a positive whole number")
            }),
        Err(_) => Ok(DEFAULT_CYCLES),
    }
}

/// Reads the seed from [`SEED_VAR`], or draws one.
fn seed_from_env() -> Result<u64> {
    match std::env::var(SEED_VAR) {
        Ok(text) => text.trim().parse().with_context(|| {
            format!("{SEED_VAR}={text:?} is invalid: set it to a seed a run printed")
        }),
        Err(_) => Ok(rand::rng().random()),
    }
}

/// Returns the run of a load task whose call failed after the kill, or the error when the
/// call failed while the server was still running.
fn ended_by_kill<T>(error: anyhow::Error, killed: &AtomicBool, run: T) -> Result<T> {
    if killed.load(Ordering::SeqCst) {
        Ok(run)
    } else {
        Err(error.context("a load call failed while the server was still running"))
    }
}

/// Increments the counter with read, add one, store with the etag read, until the kill.
async fn increment_until_killed(
    session: Session,
    agent: &'static str,
    start: Arc<Barrier>,
    killed: Arc<AtomicBool>,
) -> Result<CounterRun> {
    start.wait().await;
    let mut run = CounterRun::default();
    loop {
        let (value, etag) = match read_counter(&session, WORK, agent).await {
            Ok(read) => read,
            Err(error) => return ended_by_kill(error, &killed, run),
        };
        let next = value + 1;
        run.attempts += 1;
        let store = store_counter_args(WORK, agent, next, &etag);
        match session
            .call_within("store_resource", store, LOAD_CALL_LIMIT)
            .await
        {
            Ok(ToolOutcome::Success(stored)) => run.acked.push((next, etag_of(&stored)?)),
            Ok(rejected) if rejected.code() == Some("ETAG_MISMATCH") => {}
            Ok(failed) => {
                bail!("{agent}: store_resource of counter value {next} failed: {failed:?}")
            }
            Err(error) => {
                run.in_flight = Some(next);
                return ended_by_kill(error, &killed, run);
            }
        }
    }
}

/// Appends numbered entries to the log until the kill.
async fn append_until_killed(
    session: Session,
    agent: &'static str,
    cycle: usize,
    start: Arc<Barrier>,
    killed: Arc<AtomicBool>,
) -> Result<LogRun> {
    start.wait().await;
    let mut run = LogRun::default();
    let mut number = 0u64;
    loop {
        let entry = json!({ "writer": agent, "cycle": cycle, "n": number });
        let args =
            json!({ "project_id": WORK, "log_id": LOG_ID, "agent_name": agent, "entry": entry });
        match session
            .call_within("append_log", acting_as(agent, args), LOAD_CALL_LIMIT)
            .await
        {
            Ok(ToolOutcome::Success(appended)) => {
                let seq = appended["seq"]
                    .as_u64()
                    .with_context(|| format!("append_log returned no numeric seq: {appended}"))?;
                run.acked.push((seq, entry));
            }
            Ok(failed) => bail!("{agent}: append_log of {entry} failed: {failed:?}"),
            Err(error) => {
                run.in_flight = Some(entry);
                return ended_by_kill(error, &killed, run);
            }
        }
        number += 1;
    }
}

/// Broadcasts numbered messages from the herald until the kill.
async fn broadcast_until_killed(
    session: Session,
    cycle: usize,
    start: Arc<Barrier>,
    killed: Arc<AtomicBool>,
) -> Result<BroadcastRun> {
    start.wait().await;
    let mut run = BroadcastRun::default();
    let mut number = 0u64;
    loop {
        let payload = json!({ "cycle": cycle, "n": number });
        let args = json!({
            "project_id": NEWS,
            "from_agent": HERALD,
            "broadcast": true,
            "reply_expected": false,
            "payload": payload,
        });
        match session
            .call_within("send_message", args, LOAD_CALL_LIMIT)
            .await
        {
            Ok(ToolOutcome::Success(sent)) => {
                let mut recipients: Vec<&str> = sent["recipients"]
                    .as_array()
                    .with_context(|| format!("send_message returned no recipients: {sent}"))?
                    .iter()
                    .filter_map(Value::as_str)
                    .collect();
                recipients.sort_unstable();
                ensure!(
                    recipients == LISTENERS,
                    "broadcast {payload} went to {recipients:?}, expected {LISTENERS:?}"
                );
                let message_id = sent["message_id"]
                    .as_str()
                    .with_context(|| format!("send_message returned no message_id: {sent}"))?;
                run.acked.push((message_id.to_owned(), payload));
            }
            Ok(failed) => bail!("herald: broadcast of {payload} failed: {failed:?}"),
            Err(error) => {
                run.in_flight = Some(payload);
                return ended_by_kill(error, &killed, run);
            }
        }
        number += 1;
    }
}

/// Takes the first listener's messages as they arrive until the kill, which moves its copies
/// of the broadcasts from the inbox to the archive.
async fn receive_until_killed(
    session: Session,
    start: Arc<Barrier>,
    killed: Arc<AtomicBool>,
) -> Result<()> {
    start.wait().await;
    let args = json!({
        "project_id": NEWS,
        "agent_name": LISTENERS[0],
        "wait": true,
        "timeout_seconds": 5,
    });
    loop {
        match session
            .call_within("receive_messages", args.clone(), LOAD_CALL_LIMIT)
            .await
        {
            Ok(ToolOutcome::Success(_)) => {}
            Ok(failed) => bail!("{}: receive_messages failed: {failed:?}", LISTENERS[0]),
            Err(error) => return ended_by_kill(error, &killed, ()),
        }
    }
}

/// Waits for a load task to end after the kill.
async fn finish<T>(task: JoinHandle<Result<T>>) -> Result<T> {
    timeout(DRAIN_LIMIT, task)
        .await
        .with_context(|| format!("a load task did not end within {DRAIN_LIMIT:?} of the kill"))?
        .context("a load task panicked")?
}

/// Runs the load on every agent, kills the server with SIGKILL `kill_after` into it, and
/// returns what the clients recorded.
async fn load_and_kill(
    server: HttpServer,
    agents: Agents,
    cycle: usize,
    kill_after: Duration,
) -> Result<Load> {
    let killed = Arc::new(AtomicBool::new(false));
    // Every load task and this one start together, so the kill delay counts from the load.
    let start = Arc::new(Barrier::new(COUNTER_WRITERS.len() + LOGGERS.len() + 3));
    let Agents {
        counter_writers,
        loggers,
        herald,
        reader,
    } = agents;
    let counter_tasks: Vec<_> = counter_writers
        .into_iter()
        .zip(COUNTER_WRITERS)
        .map(|(session, agent)| {
            tokio::spawn(increment_until_killed(
                session,
                agent,
                Arc::clone(&start),
                Arc::clone(&killed),
            ))
        })
        .collect();
    let log_tasks: Vec<_> = loggers
        .into_iter()
        .zip(LOGGERS)
        .map(|(session, agent)| {
            tokio::spawn(append_until_killed(
                session,
                agent,
                cycle,
                Arc::clone(&start),
                Arc::clone(&killed),
            ))
        })
        .collect();
    let herald_task = tokio::spawn(broadcast_until_killed(
        herald,
        cycle,
        Arc::clone(&start),
        Arc::clone(&killed),
    ));
    let reader_task = tokio::spawn(receive_until_killed(
        reader,
        Arc::clone(&start),
        Arc::clone(&killed),
    ));

    start.wait().await;
    // The fault schedule: the kill lands at a random moment of the load.
    tokio::time::sleep(kill_after).await;
    killed.store(true, Ordering::SeqCst);
    let killed_pid = server.pid()?;
    // `stop` sends SIGKILL through the child handle and waits for the process to end.
    server.stop().await?;

    let mut counter = Vec::new();
    for task in counter_tasks {
        counter.push(finish(task).await?);
    }
    let mut logs = Vec::new();
    for task in log_tasks {
        logs.push(finish(task).await?);
    }
    let broadcasts = finish(herald_task).await?;
    finish(reader_task).await?;
    Ok(Load {
        counter,
        logs,
        broadcasts,
        killed_pid,
    })
}

/// Runs `brainstorm check` on the data folder while no server runs, and requires it to pass.
async fn check_offline(sandbox: &Sandbox) -> Result<()> {
    let output = server_command(
        sandbox,
        &ServerOptions::default(),
        &["check", "--log", "warn"],
    )
    .output()
    .await
    .context("failed to run brainstorm check")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "brainstorm check failed after the kill ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    ensure!(
        stdout == "check passed: integrity and invariants hold\n",
        "brainstorm check printed {stdout:?}, expected only its pass line; stderr:\n{stderr}"
    );
    Ok(())
}

/// Reads every stored copy of the herald's broadcasts, unread and read, from the database
/// file, and groups them by `message_id`. Runs after `brainstorm check`, which leaves the file
/// cleanly closed, so a read-only open needs no repair.
fn broadcasts_on_disk(database: &Path) -> Result<BTreeMap<String, Vec<StoredCopy>>> {
    let db = ReadOnlyDatabase::open(database)
        .with_context(|| format!("failed to open {} read-only", database.display()))?;
    let tx = db.begin_read()?;
    let mut copies: BTreeMap<String, Vec<StoredCopy>> = BTreeMap::new();
    for (table, name) in [(INBOX, "inbox"), (ARCHIVE, "archive")] {
        for row in tx.open_table(table)?.iter()? {
            let (key, value) = row?;
            let (project_id, recipient, seq) = key.value();
            if project_id != NEWS {
                continue;
            }
            let message: MessageRecord = decode(name, value.value())?;
            ensure!(
                message.broadcast,
                "{name} ({project_id}, {recipient}, {seq}) contains a direct message: {message:?}"
            );
            ensure!(
                message.from_agent == HERALD,
                "{name} ({project_id}, {recipient}, {seq}) contains a message from {:?}, expected \
                 only {HERALD:?}",
                message.from_agent
            );
            let payload = serde_json::from_str(&message.payload_json).with_context(|| {
                format!(
                    "message {} has a payload that is not JSON",
                    message.message_id
                )
            })?;
            copies
                .entry(message.message_id)
                .or_default()
                .push(StoredCopy {
                    recipient: recipient.to_owned(),
                    payload,
                });
        }
    }
    Ok(copies)
}

/// Reads the whole log, page by page.
async fn read_whole_log(session: &Session, agent: &str) -> Result<Vec<Value>> {
    let mut entries = Vec::new();
    loop {
        let args = json!({
            "project_id": WORK,
            "log_id": LOG_ID,
            "agent_name": agent,
            "after": entries.len(),
            "limit": LOG_PAGE,
        });
        let page = session.ok("read_log", acting_as(agent, args)).await?;
        let batch = page["entries"]
            .as_array()
            .with_context(|| format!("read_log returned no entries array: {page}"))?;
        if batch.is_empty() {
            let last_seq = page["last_seq"].as_u64();
            ensure!(
                last_seq == Some(entries.len() as u64),
                "read_log returned {} entries but last_seq {last_seq:?}",
                entries.len()
            );
            return Ok(entries);
        }
        entries.extend(batch.iter().cloned());
    }
}

impl Ledger {
    /// Starts from the state the setup wrote: counter 0 and one log entry.
    fn new(first_entry: (String, Value)) -> Ledger {
        Ledger {
            counter: 0,
            attempts: 0,
            acked_values: HashSet::new(),
            log: vec![first_entry],
            broadcasts: HashMap::new(),
        }
    }

    /// Checks the counter read after the restart against the acknowledged increments and the
    /// stores in flight at the kill, and its manifest against its content.
    fn verify_counter(&mut self, load: &Load, counter: &Value) -> Result<InFlight> {
        let content = content_of(counter)?;
        let value: u64 = content
            .parse()
            .with_context(|| format!("counter content {content:?} is not a number"))?;
        let etag = etag_of(counter)?;
        let manifest = &counter["manifest"];
        // Creation is version 1 with content 0 and every store adds one to both, so a manifest
        // from another write than the content shows up here.
        ensure!(
            manifest["version"] == json!(value + 1),
            "the counter manifest has version {}, expected {} for content {value}: {counter}",
            manifest["version"],
            value + 1
        );
        ensure!(
            manifest["etag"] == json!(etag),
            "the counter manifest has another etag than the read returned: {counter}"
        );
        ensure!(
            manifest["content_hash"] == json!(content_hash(content.as_bytes())),
            "the counter manifest has a content_hash of other content: {counter}"
        );

        let acked: HashMap<u64, &str> = load
            .counter
            .iter()
            .flat_map(|run| &run.acked)
            .map(|(acked_value, acked_etag)| (*acked_value, acked_etag.as_str()))
            .collect();
        let acked_count: usize = load.counter.iter().map(|run| run.acked.len()).sum();
        ensure!(
            acked.len() == acked_count,
            "two stores of one counter value were acknowledged in this cycle: an update was lost"
        );
        if let Some(acked_etag) = acked.get(&value) {
            ensure!(
                etag == *acked_etag,
                "the counter is {value} with etag {etag}, but the acknowledged store of {value} \
                 returned {acked_etag}"
            );
        }
        for &acked_value in acked.keys() {
            ensure!(
                acked_value > self.counter,
                "a store of counter value {acked_value} was acknowledged, but the counter already \
                 held {} before this cycle",
                self.counter
            );
            ensure!(
                self.acked_values.insert(acked_value),
                "two stores of counter value {acked_value} were acknowledged: an update was lost"
            );
        }
        self.attempts += load.counter.iter().map(|run| run.attempts).sum::<u64>();
        let floor = acked.keys().copied().max().unwrap_or(0).max(self.counter);
        ensure!(
            value >= floor,
            "the counter went back: it is {value} after the restart, but {floor} was \
             acknowledged or read before"
        );
        ensure!(
            value <= self.attempts,
            "the counter is {value}, more than the {} increments ever attempted",
            self.attempts
        );
        let in_flight: Vec<u64> = load
            .counter
            .iter()
            .filter_map(|run| run.in_flight)
            .collect();
        for landed in floor + 1..=value {
            ensure!(
                in_flight.contains(&landed),
                "the counter is {value}, but no store of {landed} was acknowledged or in flight \
                 at the kill (in flight: {in_flight:?})"
            );
        }
        self.counter = value;
        Ok(InFlight {
            sent: in_flight.len(),
            landed: usize::try_from(value - floor)?,
        })
    }

    /// Checks the whole log read after the restart: the entries seen before are unchanged,
    /// every acknowledged append is stored at its `seq`, and every other new entry is one that
    /// was in flight at the kill, stored once.
    fn verify_log(&mut self, load: &Load, entries: &[Value]) -> Result<InFlight> {
        let mut stored = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            ensure!(
                entry["seq"].as_u64() == Some(index as u64 + 1),
                "log entry at position {index} has seq {}, expected {}",
                entry["seq"],
                index + 1
            );
            let author = entry["author"]
                .as_str()
                .with_context(|| format!("log entry without an author: {entry}"))?;
            stored.push((author.to_owned(), entry["entry"].clone()));
        }
        ensure!(
            stored.len() >= self.log.len(),
            "the log shrank from {} to {} entries",
            self.log.len(),
            stored.len()
        );
        for (index, (seen, now)) in self.log.iter().zip(&stored).enumerate() {
            ensure!(
                seen == now,
                "log entry {} changed from {seen:?} to {now:?}",
                index + 1
            );
        }

        let mut acked: HashMap<u64, (&str, &Value)> = HashMap::new();
        let mut in_flight: Vec<(&str, &Value)> = Vec::new();
        for (run, agent) in load.logs.iter().zip(LOGGERS) {
            for (seq, entry) in &run.acked {
                acked.insert(*seq, (agent, entry));
            }
            in_flight.extend(run.in_flight.as_ref().map(|entry| (agent, entry)));
        }
        for (&seq, (agent, entry)) in &acked {
            let index = usize::try_from(seq)? - 1;
            ensure!(
                index >= self.log.len(),
                "append of {entry} was acknowledged with seq {seq}, which an earlier entry held"
            );
            let found = stored.get(index);
            ensure!(
                found == Some(&(agent.to_string(), (*entry).clone())),
                "acknowledged append of {entry} by {agent} with seq {seq} is not stored there \
                 (found {found:?})"
            );
        }
        let mut landed = HashSet::new();
        for (index, (author, entry)) in stored.iter().enumerate().skip(self.log.len()) {
            let seq = index as u64 + 1;
            if acked.contains_key(&seq) {
                continue;
            }
            ensure!(
                in_flight.contains(&(author.as_str(), entry)),
                "log entry {seq} {entry} by {author} was neither acknowledged nor in flight at the \
                 kill"
            );
            ensure!(
                landed.insert(entry.to_string()),
                "in-flight append of {entry} is stored twice"
            );
        }
        self.log = stored;
        Ok(InFlight {
            sent: in_flight.len(),
            landed: landed.len(),
        })
    }

    /// Checks the broadcasts stored after the kill: each reached every listener exactly once,
    /// every broadcast stored before and every acknowledged one is there, and any other is the
    /// one in flight at the kill.
    fn verify_broadcasts(
        &mut self,
        load: &Load,
        on_disk: &BTreeMap<String, Vec<StoredCopy>>,
    ) -> Result<InFlight> {
        let mut payloads = HashMap::new();
        for (message_id, copies) in on_disk {
            let mut recipients: Vec<&str> =
                copies.iter().map(|copy| copy.recipient.as_str()).collect();
            recipients.sort_unstable();
            ensure!(
                recipients == LISTENERS,
                "broadcast {message_id} is stored for {recipients:?}, expected exactly once for \
                 each of {LISTENERS:?}: it was delivered partially"
            );
            let payload = &copies[0].payload;
            ensure!(
                copies.iter().all(|copy| copy.payload == *payload),
                "the copies of broadcast {message_id} differ in payload"
            );
            payloads.insert(message_id.as_str(), payload);
        }

        for (message_id, payload) in &self.broadcasts {
            ensure!(
                payloads.get(message_id.as_str()) == Some(&payload),
                "broadcast {message_id} {payload}, stored before this cycle, is gone"
            );
        }
        let run = &load.broadcasts;
        for (message_id, payload) in &run.acked {
            ensure!(
                payloads.get(message_id.as_str()) == Some(&payload),
                "acknowledged broadcast {message_id} {payload} is not stored"
            );
        }
        let mut landed = 0;
        for (message_id, payload) in &payloads {
            let known = self.broadcasts.contains_key(*message_id)
                || run.acked.iter().any(|(acked_id, _)| acked_id == message_id);
            if known {
                continue;
            }
            ensure!(
                run.in_flight.as_ref() == Some(*payload),
                "broadcast {message_id} {payload} was neither acknowledged nor in flight at the \
                 kill (in flight: {:?})",
                run.in_flight
            );
            landed += 1;
        }
        ensure!(
            landed <= 1,
            "the in-flight broadcast {:?} is stored {landed} times",
            run.in_flight
        );
        self.broadcasts = payloads
            .into_iter()
            .map(|(message_id, payload)| (message_id.to_owned(), payload.clone()))
            .collect();
        Ok(InFlight {
            sent: usize::from(run.in_flight.is_some()),
            landed,
        })
    }
}

/// Creates the two projects, the counter (content 0, writable by all) and the log's first
/// entry, and returns that entry's author and content.
async fn set_up(server: &HttpServer) -> Result<(String, Value)> {
    let work_team: Vec<&str> = COUNTER_WRITERS.iter().chain(&LOGGERS).copied().collect();
    let work = project_team(server, WORK, &work_team).await?;
    create_counter(&work[0], WORK, COUNTER_WRITERS[0]).await?;
    let first_entry = json!({ "writer": LOGGERS[0], "setup": true });
    let args = json!({
        "project_id": WORK,
        "log_id": LOG_ID,
        "agent_name": LOGGERS[0],
        "entry": first_entry,
    });
    work[COUNTER_WRITERS.len()]
        .ok("append_log", acting_as(LOGGERS[0], args))
        .await?;
    let news_team: Vec<&str> = std::iter::once(HERALD).chain(LISTENERS).collect();
    project_team(server, NEWS, &news_team).await?;
    Ok((LOGGERS[0].to_owned(), first_entry))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_write() -> Result<()> {
    let cycles = cycles_from_env()?;
    let seed = seed_from_env()?;
    println!(
        "crash test: {cycles} cycles, seed {seed}; {SEED_VAR}={seed} replays these kill moments"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let began = Instant::now();
    let sandbox = Sandbox::new()?;
    let mut server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let first_pid = server.pid()?;
    wait_for_owner_pid(&sandbox, OWNER_LIMIT, |pid| pid == first_pid).await?;
    let mut ledger = Ledger::new(set_up(&server).await?);
    let mut agents = Agents::connect(&server).await?;
    let mut total = Tally::default();
    let mut restarts = Vec::with_capacity(cycles);

    for cycle in 1..=cycles {
        let cycle_began = Instant::now();
        let kill_after = Duration::from_millis(rng.random_range(KILL_AFTER_MS));
        let load = load_and_kill(server, agents, cycle, kill_after)
            .await
            .with_context(|| format!("cycle {cycle} of seed {seed}: the load failed"))?;

        let verified = async {
            ensure!(
                owner_pid(&sandbox)? == Some(load.killed_pid),
                "owner.json should still name the killed server {}",
                load.killed_pid
            );
            check_offline(&sandbox).await?;
            let on_disk = broadcasts_on_disk(&sandbox.database_file())?;

            let restart_began = Instant::now();
            let restarted = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
            let new_pid = restarted.pid()?;
            wait_for_owner_pid(&sandbox, OWNER_LIMIT, |pid| pid == new_pid)
                .await
                .context("the restarted server did not replace the stale owner.json")?;
            let restarted_agents = Agents::connect(&restarted).await?;
            restarts.push(restart_began.elapsed());

            let read = json!({
                "project_id": WORK,
                "resource_id": "counter",
                "agent_name": COUNTER_WRITERS[0],
            });
            let counter = restarted_agents.counter_writers[0]
                .ok("get_resource", read)
                .await?;
            let entries = read_whole_log(&restarted_agents.loggers[0], LOGGERS[0]).await?;
            let tally = Tally {
                acked_increments: load.counter.iter().map(|run| run.acked.len()).sum(),
                acked_appends: load.logs.iter().map(|run| run.acked.len()).sum(),
                acked_broadcasts: load.broadcasts.acked.len(),
                counter: ledger.verify_counter(&load, &counter)?,
                log: ledger.verify_log(&load, &entries)?,
                broadcast: ledger.verify_broadcasts(&load, &on_disk)?,
            };
            Ok::<_, anyhow::Error>((restarted, restarted_agents, tally))
        };
        let (restarted, restarted_agents, tally) = verified.await.with_context(|| {
            format!("cycle {cycle} of seed {seed}, killed after {kill_after:?}")
        })?;
        server = restarted;
        agents = restarted_agents;
        total.add(&tally);

        let in_flight = tally.in_flight();
        println!(
            "cycle {cycle}/{cycles}: killed {} ms into the load; acked {} increments, {} appends, \
             {} broadcasts; in flight at the kill {} (landed {}, not {}); counter {}; {:.2} s",
            kill_after.as_millis(),
            tally.acked_increments,
            tally.acked_appends,
            tally.acked_broadcasts,
            in_flight.sent,
            in_flight.landed,
            in_flight.sent - in_flight.landed,
            ledger.counter,
            cycle_began.elapsed().as_secs_f64()
        );
    }
    server.stop().await?;

    let in_flight = total.in_flight();
    let slowest_restart = restarts.iter().max().copied().unwrap_or_default();
    let mean_restart = restarts.iter().sum::<Duration>() / u32::try_from(cycles.max(1))?;
    println!("crash test summary");
    println!("  seed: {seed}");
    println!("  cycles (SIGKILL, check, restart, verify): {cycles}");
    println!(
        "  acknowledged: {} counter increments, {} log appends, {} broadcasts to {} listeners",
        total.acked_increments,
        total.acked_appends,
        total.acked_broadcasts,
        LISTENERS.len()
    );
    println!(
        "  in flight at the kill: {} writes, {} landed (committed before the reply reached the \
         client), {} did not",
        in_flight.sent,
        in_flight.landed,
        in_flight.sent - in_flight.landed
    );
    for (kind, counts) in [
        ("counter stores", total.counter),
        ("log appends", total.log),
        ("broadcasts", total.broadcast),
    ] {
        println!(
            "    {kind}: {} in flight, {} landed",
            counts.sent, counts.landed
        );
    }
    println!(
        "  final counter: {} of {} attempted increments",
        ledger.counter, ledger.attempts
    );
    println!(
        "  restart to ready: mean {:.2} s, slowest {:.2} s",
        mean_restart.as_secs_f64(),
        slowest_restart.as_secs_f64()
    );
    println!("  total time: {:.1} s", began.elapsed().as_secs_f64());
    println!();
    Ok(())
}
