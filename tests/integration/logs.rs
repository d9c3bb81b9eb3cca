//! Append-only logs: `append_log` and `read_log`, paging, waiting readers, the separation from
//! documents, and concurrent appends that keep every entry.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::time::timeout;

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, ToolOutcome, acting_as, directory_of, etag_of,
    project_team,
};

/// Agents that append to one log at the same time.
const RACE_AGENTS: usize = 16;

/// Entries each racing agent appends.
const APPENDS_PER_AGENT: u64 = 100;

/// Time limit for the whole append race.
const RACE_LIMIT: Duration = Duration::from_secs(240);

/// How long a pending read is polled to show that it has not returned yet.
const STILL_WAITING: Duration = Duration::from_millis(500);

/// Time limit for a waiting read to return once an entry is appended.
const WAKE_LIMIT: Duration = Duration::from_secs(10);

/// Arguments of an `append_log` call by `agent` to `log_id` in project `logs`.
fn append(agent: &str, log_id: &str, entry: Value) -> Value {
    acting_as(
        agent,
        json!({ "project_id": "logs", "log_id": log_id, "agent_name": agent, "entry": entry }),
    )
}

/// Arguments of a `read_log` call by `agent` of `log_id` in project `logs`, with the fields of
/// `extra` added.
fn read_log(agent: &str, log_id: &str, extra: Value) -> Value {
    let mut args = json!({ "project_id": "logs", "log_id": log_id, "agent_name": agent });
    if let (Value::Object(args), Value::Object(extra)) = (&mut args, extra) {
        args.extend(extra);
    }
    acting_as(agent, args)
}

/// Starts a server with project `logs` and members `alice` (the creator) and `bob`.
async fn start_team() -> Result<(Sandbox, HttpServer, Vec<Session>)> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let team = project_team(&server, "logs", &["alice", "bob"]).await?;
    Ok((sandbox, server, team))
}

/// Returns the `entries` array of a `read_log` result.
fn entries_of(result: &Value) -> Result<&Vec<Value>> {
    result["entries"]
        .as_array()
        .with_context(|| format!("no entries array in {result}"))
}

/// Returns the `seq` numbers of a `read_log` result, in order.
fn seqs_of(result: &Value) -> Result<Vec<u64>> {
    entries_of(result)?
        .iter()
        .map(|entry| {
            entry["seq"]
                .as_u64()
                .with_context(|| format!("entry without a numeric seq: {entry}"))
        })
        .collect()
}

#[tokio::test]
async fn first_append_creates_log() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);

    let first = alice
        .ok(
            "append_log",
            append("alice", "events", json!({ "step": 1 })),
        )
        .await?;
    assert_eq!(first["log_id"], json!("events"));
    assert_eq!(first["seq"], json!(1));
    let manifest = &first["manifest"];
    assert_eq!(manifest["kind"], json!("log"), "{manifest}");
    assert_eq!(manifest["resource_id"], json!("events"), "{manifest}");
    assert_eq!(manifest["permissions"]["read"], json!(["*"]), "{manifest}");
    assert_eq!(manifest["permissions"]["write"], json!(["*"]), "{manifest}");

    // Every member may append to a log created without permissions.
    let second = bob
        .ok("append_log", append("bob", "events", json!({ "step": 2 })))
        .await?;
    assert_eq!(second["seq"], json!(2));

    let listed = bob
        .ok(
            "list_resources",
            json!({ "project_id": "logs", "agent_name": "bob" }),
        )
        .await?;
    let kinds: Vec<&Value> = listed["resources"]
        .as_array()
        .with_context(|| format!("no resources array in {listed}"))?
        .iter()
        .filter(|entry| entry["resource_id"] == json!("events"))
        .map(|entry| &entry["kind"])
        .collect();
    assert_eq!(kinds, [&json!("log")], "{listed}");
    Ok(())
}

#[tokio::test]
async fn read_returns_entries_in_order() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let appended = [
        ("alice", json!({ "n": 1 })),
        ("bob", json!("plain text")),
        ("alice", json!([3, null, true])),
    ];
    for (agent, entry) in &appended {
        let session = if *agent == "alice" { alice } else { bob };
        session
            .ok("append_log", append(agent, "events", entry.clone()))
            .await?;
    }

    let result = bob
        .ok("read_log", read_log("bob", "events", json!({})))
        .await?;
    assert_eq!(result["log_id"], json!("events"));
    assert_eq!(result["count"], json!(3));
    assert_eq!(result["last_seq"], json!(3));
    assert_eq!(result["next_after"], json!(3));
    assert_eq!(seqs_of(&result)?, [1, 2, 3]);
    for (index, entry) in entries_of(&result)?.iter().enumerate() {
        let (agent, value) = &appended[index];
        assert_eq!(entry["author"], json!(agent), "{entry}");
        assert_eq!(&entry["entry"], value, "{entry}");
        assert!(entry["at"].is_string(), "no time in {entry}");
    }
    Ok(())
}

#[tokio::test]
async fn read_pages_with_after() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    for n in 1..=5 {
        alice
            .ok("append_log", append("alice", "events", json!(n)))
            .await?;
    }

    let first = alice
        .ok(
            "read_log",
            read_log("alice", "events", json!({ "limit": 2 })),
        )
        .await?;
    assert_eq!(seqs_of(&first)?, [1, 2]);
    assert_eq!(first["next_after"], json!(2));
    assert_eq!(first["last_seq"], json!(5));

    let second = alice
        .ok(
            "read_log",
            read_log("alice", "events", json!({ "after": 2, "limit": 2 })),
        )
        .await?;
    assert_eq!(seqs_of(&second)?, [3, 4]);
    assert_eq!(second["next_after"], json!(4));

    let third = alice
        .ok(
            "read_log",
            read_log("alice", "events", json!({ "after": 4 })),
        )
        .await?;
    assert_eq!(seqs_of(&third)?, [5]);
    assert_eq!(third["next_after"], json!(5));

    let past_end = alice
        .ok(
            "read_log",
            read_log("alice", "events", json!({ "after": 5 })),
        )
        .await?;
    assert_eq!(seqs_of(&past_end)?, Vec::<u64>::new());
    assert_eq!(past_end["count"], json!(0));
    assert_eq!(past_end["next_after"], json!(5));
    Ok(())
}

#[tokio::test]
async fn waiting_reader_wakes_on_append() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    alice
        .ok("append_log", append("alice", "events", json!("before")))
        .await?;

    let wait = read_log(
        "bob",
        "events",
        json!({ "after": 1, "wait": true, "timeout_seconds": 30 }),
    );
    let reader = bob.call_within("read_log", wait, Duration::from_secs(40));
    tokio::pin!(reader);
    let early_outcome = timeout(STILL_WAITING, &mut reader).await;
    assert!(
        early_outcome.is_err(),
        "the waiting read returned before any new entry: {early_outcome:?}"
    );

    alice
        .ok("append_log", append("alice", "events", json!("after")))
        .await?;
    let wake_result = timeout(WAKE_LIMIT, reader)
        .await
        .context("the waiting read did not return within 10 s of the append")??
        .success()?;
    assert!(
        wake_result.get("timeout").is_none(),
        "the read timed out: {wake_result}"
    );
    assert_eq!(seqs_of(&wake_result)?, [2]);
    assert_eq!(wake_result["entries"][0]["entry"], json!("after"));
    Ok(())
}

#[tokio::test]
async fn waiting_read_times_out() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    alice
        .ok("append_log", append("alice", "events", json!("only")))
        .await?;

    let wait = read_log(
        "alice",
        "events",
        json!({ "after": 1, "wait": true, "timeout_seconds": 1 }),
    );
    let result = alice.ok("read_log", wait).await?;
    assert_eq!(result["timeout"], json!(true), "{result}");
    assert_eq!(result["retry"], json!(true), "{result}");
    let waited_ms = result["waited_ms"]
        .as_u64()
        .with_context(|| format!("no waited_ms in {result}"))?;
    assert!(waited_ms >= 900, "waited only {waited_ms} ms of a 1 s wait");
    Ok(())
}

#[tokio::test]
async fn missing_log_not_found() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];

    alice
        .fails(
            "read_log",
            read_log("alice", "nothing", json!({})),
            "RESOURCE_NOT_FOUND",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn document_tools_reject_logs() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    let created = alice
        .ok("append_log", append("alice", "events", json!("first")))
        .await?;
    let log_etag = created["manifest"]["etag"]
        .as_str()
        .unwrap_or("*")
        .to_owned();

    let store = json!({
        "project_id": "logs",
        "resource_id": "events",
        "name": "Events",
        "agent_name": "alice",
        "content": "overwritten",
        "etag": log_etag,
    });
    alice
        .fails("store_resource", store, "WRONG_RESOURCE_KIND")
        .await?;
    let read_args = json!({ "project_id": "logs", "resource_id": "events", "agent_name": "alice" });
    alice
        .fails("get_resource", read_args.clone(), "WRONG_RESOURCE_KIND")
        .await?;
    let mut increment_args = acting_as("alice", read_args.clone());
    increment_args["operation"] = json!("increment");
    alice
        .fails("update_resource", increment_args, "WRONG_RESOURCE_KIND")
        .await?;
    alice
        .fails(
            "resource_history",
            acting_as("alice", read_args),
            "WRONG_RESOURCE_KIND",
        )
        .await?;

    let result = alice
        .ok("read_log", read_log("alice", "events", json!({})))
        .await?;
    assert_eq!(seqs_of(&result)?, [1], "a rejected call changed the log");
    assert_eq!(result["entries"][0]["entry"], json!("first"));
    Ok(())
}

#[tokio::test]
async fn log_tools_reject_documents() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    let stored = alice
        .ok(
            "store_resource",
            json!({
                "project_id": "logs",
                "resource_id": "doc",
                "name": "Document",
                "agent_name": "alice",
                "content": "[]",
            }),
        )
        .await?;

    alice
        .fails(
            "append_log",
            append("alice", "doc", json!("entry")),
            "WRONG_RESOURCE_KIND",
        )
        .await?;
    alice
        .fails(
            "read_log",
            read_log("alice", "doc", json!({})),
            "WRONG_RESOURCE_KIND",
        )
        .await?;
    let read = alice
        .ok(
            "get_resource",
            json!({ "project_id": "logs", "resource_id": "doc", "agent_name": "alice" }),
        )
        .await?;
    assert_eq!(etag_of(&read)?, etag_of(&stored)?);
    Ok(())
}

#[tokio::test]
async fn log_permissions_limit_appends() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let mut private_log = append("alice", "decisions", json!("alice only"));
    private_log["permissions"] = json!({ "read": ["*"], "write": ["alice"] });
    alice.ok("append_log", private_log).await?;

    bob.fails(
        "append_log",
        append("bob", "decisions", json!("bob too")),
        "WRITE_PERMISSION_DENIED",
    )
    .await?;
    let result = bob
        .ok("read_log", read_log("bob", "decisions", json!({})))
        .await?;
    assert_eq!(seqs_of(&result)?, [1]);
    Ok(())
}

/// Appends `APPENDS_PER_AGENT` entries `{"agent", "n"}` with n counting from 0 as `agent`, and
/// returns the seq each append got. Any failed call ends the agent with an error.
async fn append_many(session: Session, agent: String, start: Arc<Barrier>) -> Result<Vec<u64>> {
    start.wait().await;
    let mut seqs = Vec::new();
    for n in 0..APPENDS_PER_AGENT {
        let args = acting_as(
            &agent,
            json!({
                "project_id": "race",
                "log_id": "journal",
                "agent_name": agent,
                "entry": { "agent": agent, "n": n },
            }),
        );
        match session.call("append_log", args).await? {
            ToolOutcome::Success(result) => {
                let seq = result["seq"]
                    .as_u64()
                    .with_context(|| format!("{agent}: no seq in {result}"))?;
                seqs.push(seq);
            }
            failure => bail!("{agent}: append_log failed: {failure:?}"),
        }
    }
    Ok(seqs)
}

/// Reads every entry of `journal` in project `race`, page by page.
async fn read_whole_journal(session: &Session, agent: &str) -> Result<Vec<Value>> {
    let mut entries = Vec::new();
    let mut after = 0;
    loop {
        let args = acting_as(
            agent,
            json!({
                "project_id": "race",
                "log_id": "journal",
                "agent_name": agent,
                "after": after,
                "limit": 1000,
            }),
        );
        let page = session.ok("read_log", args).await?;
        let page_entries = entries_of(&page)?;
        if page_entries.is_empty() {
            return Ok(entries);
        }
        entries.extend(page_entries.iter().cloned());
        after = page["next_after"]
            .as_u64()
            .with_context(|| format!("no next_after in {page}"))?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_keep_every_entry() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let names: Vec<String> = (0..RACE_AGENTS).map(|i| format!("agent-{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let sessions = project_team(&server, "race", &name_refs).await?;

    let start = Arc::new(Barrier::new(RACE_AGENTS));
    let tasks: Vec<_> = sessions
        .into_iter()
        .zip(names.iter().cloned())
        .map(|(session, name)| tokio::spawn(append_many(session, name, start.clone())))
        .collect();
    let collect_seqs = async {
        let mut returned = Vec::new();
        for task in tasks {
            returned.push(task.await.context("an appending agent panicked")??);
        }
        Ok::<_, anyhow::Error>(returned)
    };
    let returned = timeout(RACE_LIMIT, collect_seqs)
        .await
        .with_context(|| format!("the appends did not finish within {RACE_LIMIT:?}"))??;

    let total = RACE_AGENTS as u64 * APPENDS_PER_AGENT;
    let mut returned_seqs: Vec<u64> = returned.iter().flatten().copied().collect();
    returned_seqs.sort_unstable();
    let expected: Vec<u64> = (1..=total).collect();
    assert_eq!(
        returned_seqs, expected,
        "the seqs returned by append_log are not 1 to {total} once each"
    );

    let reader = server.agent(&directory_of(&names[0])).await?;
    let entries = read_whole_journal(&reader, &names[0]).await?;
    let stored_seqs: Vec<u64> = entries
        .iter()
        .map(|entry| entry["seq"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(
        stored_seqs, expected,
        "the log does not hold seq 1 to {total} in order"
    );

    let mut counters_by_agent: HashMap<String, Vec<u64>> = HashMap::new();
    for entry in &entries {
        let agent = entry["entry"]["agent"].as_str().unwrap_or_default();
        assert_eq!(entry["author"], json!(agent), "author differs from {entry}");
        let n = entry["entry"]["n"]
            .as_u64()
            .with_context(|| format!("entry without a counter: {entry}"))?;
        counters_by_agent
            .entry(agent.to_owned())
            .or_default()
            .push(n);
    }
    let in_append_order: Vec<u64> = (0..APPENDS_PER_AGENT).collect();
    assert_eq!(counters_by_agent.len(), RACE_AGENTS);
    for name in &names {
        assert_eq!(
            counters_by_agent.get(name),
            Some(&in_append_order),
            "{name}'s entries are missing or out of order"
        );
    }
    for (name, seqs) in names.iter().zip(&returned) {
        assert!(
            seqs.windows(2).all(|pair| pair[0] < pair[1]),
            "{name} got seqs that do not increase: {seqs:?}"
        );
    }
    Ok(())
}
