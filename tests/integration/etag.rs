//! Optimistic locking: etag checks on `store_resource` and one winner among concurrent creates.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::time::timeout;

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, ToolOutcome, content_of, directory_of, etag_of,
    expect_code, is_etag_format, project_team, solo_project,
};

/// Time limit for the whole counter race: 400 increments plus their retries.
const RACE_LIMIT: Duration = Duration::from_secs(240);

/// Time limit for the writer and reader of the content-etag pairing test together.
const PAIRING_LIMIT: Duration = Duration::from_secs(120);

const RACE_AGENTS: usize = 8;
const INCREMENTS_PER_AGENT: usize = 50;

/// Arguments of a `store_resource` call for resource `doc` in project `etags`, owned by `alice`.
fn store_doc(content: &str) -> Value {
    json!({
        "project_id": "etags",
        "resource_id": "doc",
        "name": "Document",
        "agent_name": "alice",
        "content": content,
    })
}

/// Returns `args` with one more field.
fn with(mut args: Value, field: &str, value: Value) -> Value {
    args[field] = value;
    args
}

fn get_doc() -> Value {
    json!({ "project_id": "etags", "resource_id": "doc", "agent_name": "alice" })
}

/// Etags of one racing agent's successful writes, and how many of its writes hit ETAG_MISMATCH.
struct RaceTally {
    etags: Vec<String>,
    mismatches: usize,
}

/// Increments the shared counter `INCREMENTS_PER_AGENT` times by read, add one, store with the
/// etag read, retrying each increment on ETAG_MISMATCH.
async fn increment_counter(
    session: Session,
    agent: String,
    start: Arc<Barrier>,
) -> Result<RaceTally> {
    let mut tally = RaceTally {
        etags: Vec::new(),
        mismatches: 0,
    };
    start.wait().await;
    for _ in 0..INCREMENTS_PER_AGENT {
        loop {
            let read = session
                .ok(
                    "get_resource",
                    json!({ "project_id": "race", "resource_id": "counter", "agent_name": agent }),
                )
                .await?;
            let content = content_of(&read)?;
            let value: u64 = content
                .trim()
                .parse()
                .with_context(|| format!("counter content {content:?} is not a number"))?;
            let outcome = session
                .call(
                    "store_resource",
                    json!({
                        "project_id": "race",
                        "resource_id": "counter",
                        "name": "Counter",
                        "agent_name": agent,
                        "content": (value + 1).to_string(),
                        "etag": etag_of(&read)?,
                    }),
                )
                .await?;
            match outcome {
                ToolOutcome::Success(stored) => {
                    tally.etags.push(etag_of(&stored)?);
                    break;
                }
                failure if failure.code() == Some("ETAG_MISMATCH") => tally.mismatches += 1,
                failure => bail!("{agent}: store_resource failed: {failure:?}"),
            }
        }
    }
    Ok(tally)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_race_loses_no_increment() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let names: Vec<String> = (0..RACE_AGENTS).map(|i| format!("counter-{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let sessions = project_team(&server, "race", &name_refs).await?;
    let created = sessions[0]
        .ok(
            "store_resource",
            json!({
                "project_id": "race",
                "resource_id": "counter",
                "name": "Counter",
                "agent_name": names[0],
                "content": "0",
                "permissions": { "read": ["*"], "write": ["*"] },
            }),
        )
        .await?;
    let mut etags = vec![etag_of(&created)?];
    let mut mismatches = 0;

    let start = Arc::new(Barrier::new(RACE_AGENTS));
    let tasks: Vec<_> = sessions
        .into_iter()
        .zip(names.iter().cloned())
        .map(|(session, name)| tokio::spawn(increment_counter(session, name, start.clone())))
        .collect();
    let collect_tallies = async {
        let mut tallies = Vec::new();
        for task in tasks {
            tallies.push(task.await.context("a racing agent panicked")??);
        }
        Ok::<_, anyhow::Error>(tallies)
    };
    let tallies = timeout(RACE_LIMIT, collect_tallies)
        .await
        .with_context(|| format!("the counter race timed out after {RACE_LIMIT:?}"))??;
    for tally in tallies {
        etags.extend(tally.etags);
        mismatches += tally.mismatches;
    }

    let reader = server.agent(&directory_of(&names[1])).await?;
    let last = reader
        .ok(
            "get_resource",
            json!({ "project_id": "race", "resource_id": "counter", "agent_name": names[1] }),
        )
        .await?;
    let expected_total = (RACE_AGENTS * INCREMENTS_PER_AGENT).to_string();
    assert_eq!(content_of(&last)?, expected_total);
    assert_eq!(etags.len(), RACE_AGENTS * INCREMENTS_PER_AGENT + 1);
    assert!(
        mismatches >= 1,
        "no write hit ETAG_MISMATCH, so the agents never raced"
    );
    let distinct: HashSet<&String> = etags.iter().collect();
    assert_eq!(
        distinct.len(),
        etags.len(),
        "successful writes returned a repeated etag"
    );
    for etag in &etags {
        assert!(
            is_etag_format(etag),
            "etag {etag:?} is not 16 lowercase hex digits"
        );
    }
    assert!(
        etags.contains(&etag_of(&last)?),
        "the final etag was never returned by a write"
    );
    Ok(())
}

#[tokio::test]
async fn stale_etag_rejected_and_nothing_changes() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = solo_project(&sandbox, &ServerOptions::default(), "etags", "alice").await?;
    let session = server.session();
    let first = session.ok("store_resource", store_doc("5")).await?;
    let first_etag = etag_of(&first)?;
    let second = session
        .ok(
            "store_resource",
            with(store_doc("6"), "etag", json!(first_etag)),
        )
        .await?;
    let current_etag = etag_of(&second)?;

    let error = session
        .fails(
            "store_resource",
            with(store_doc("7"), "etag", json!(first_etag)),
            "ETAG_MISMATCH",
        )
        .await?;
    assert!(
        !error.to_string().contains(&current_etag),
        "ETAG_MISMATCH leaks the current etag: {error}"
    );

    let after = session.ok("get_resource", get_doc()).await?;
    assert_eq!(content_of(&after)?, "6");
    assert_eq!(etag_of(&after)?, current_etag);
    Ok(())
}

#[tokio::test]
async fn update_without_etag_requires_etag() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = solo_project(&sandbox, &ServerOptions::default(), "etags", "alice").await?;
    let session = server.session();
    let created = session.ok("store_resource", store_doc("original")).await?;
    assert_eq!(created["created"], json!(true));

    session
        .fails("store_resource", store_doc("no etag"), "ETAG_REQUIRED")
        .await?;
    session
        .fails(
            "store_resource",
            with(store_doc("empty etag"), "etag", json!("")),
            "ETAG_REQUIRED",
        )
        .await?;

    let after = session.ok("get_resource", get_doc()).await?;
    assert_eq!(content_of(&after)?, "original");
    assert_eq!(etag_of(&after)?, etag_of(&created)?);
    Ok(())
}

#[tokio::test]
async fn star_etag_overwrites() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = solo_project(&sandbox, &ServerOptions::default(), "etags", "alice").await?;
    let session = server.session();
    let created = session.ok("store_resource", store_doc("old")).await?;

    let overwritten = session
        .ok("store_resource", with(store_doc("new"), "etag", json!("*")))
        .await?;
    assert_eq!(overwritten["created"], json!(false));
    assert_ne!(etag_of(&overwritten)?, etag_of(&created)?);

    let after = session.ok("get_resource", get_doc()).await?;
    assert_eq!(content_of(&after)?, "new");
    assert_eq!(etag_of(&after)?, etag_of(&overwritten)?);
    Ok(())
}

#[tokio::test]
async fn if_none_match_creates_only() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = solo_project(&sandbox, &ServerOptions::default(), "etags", "alice").await?;
    let session = server.session();

    let created = session
        .ok(
            "store_resource",
            with(store_doc("first"), "if_none_match", json!("*")),
        )
        .await?;
    assert_eq!(created["created"], json!(true));

    session
        .fails(
            "store_resource",
            with(store_doc("second"), "if_none_match", json!("*")),
            "RESOURCE_EXISTS",
        )
        .await?;

    let after = session.ok("get_resource", get_doc()).await?;
    assert_eq!(content_of(&after)?, "first");
    assert_eq!(etag_of(&after)?, etag_of(&created)?);
    Ok(())
}

#[tokio::test]
async fn etag_for_missing_resource_mismatches() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = solo_project(&sandbox, &ServerOptions::default(), "etags", "alice").await?;
    let session = server.session();

    session
        .fails(
            "store_resource",
            with(
                store_doc("never existed"),
                "etag",
                json!("0123456789abcdef"),
            ),
            "ETAG_MISMATCH",
        )
        .await?;
    session
        .fails("get_resource", get_doc(), "RESOURCE_NOT_FOUND")
        .await?;

    let created = session
        .ok("store_resource", store_doc("short-lived"))
        .await?;
    let deleted = session.ok("delete_resource", get_doc()).await?;
    assert_eq!(deleted["deleted"], json!(true));
    session
        .fails(
            "store_resource",
            with(store_doc("after delete"), "etag", json!(etag_of(&created)?)),
            "ETAG_MISMATCH",
        )
        .await?;
    session
        .fails("get_resource", get_doc(), "RESOURCE_NOT_FOUND")
        .await?;
    Ok(())
}

#[tokio::test]
async fn chained_writes_return_fresh_etags() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = solo_project(&sandbox, &ServerOptions::default(), "etags", "alice").await?;
    let session = server.session();
    let created = session.ok("store_resource", store_doc("0")).await?;
    let mut etags = vec![etag_of(&created)?];

    for version in 1..=20 {
        let previous = etags.last().cloned().context("no etag yet")?;
        let stored = session
            .ok(
                "store_resource",
                with(store_doc(&version.to_string()), "etag", json!(previous)),
            )
            .await?;
        etags.push(etag_of(&stored)?);
    }

    for etag in &etags {
        assert!(
            is_etag_format(etag),
            "etag {etag:?} is not 16 lowercase hex digits"
        );
    }
    let distinct: HashSet<&String> = etags.iter().collect();
    assert_eq!(
        distinct.len(),
        etags.len(),
        "a write returned a repeated etag"
    );
    let after = session.ok("get_resource", get_doc()).await?;
    assert_eq!(content_of(&after)?, "20");
    assert_eq!(Some(&etag_of(&after)?), etags.last());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_project_creates_have_one_winner() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let first = server.agent(&directory_of("first")).await?;
    let second = server.agent(&directory_of("second")).await?;

    for round in 0..10 {
        let project_id = format!("contested-{round}");
        let (a, b) = tokio::join!(
            first.call(
                "create_project",
                json!({ "project_id": project_id, "name": "From first" })
            ),
            second.call(
                "create_project",
                json!({ "project_id": project_id, "name": "From second" })
            ),
        );
        let outcomes = [a?, b?];
        let winners = outcomes
            .iter()
            .filter(|outcome| matches!(outcome, ToolOutcome::Success(_)))
            .count();
        assert_eq!(winners, 1, "round {round}: {outcomes:?}");
        let loser = outcomes
            .into_iter()
            .find(|outcome| matches!(outcome, ToolOutcome::Failure(_)))
            .context("no failed create")?;
        expect_code(loser, "PROJECT_EXISTS");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_resource_creates_have_one_winner() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let sessions = project_team(&server, "etags", &["alice"]).await?;
    // A second connection of the same client, so both writes act as the resource's creator.
    let twin = server.agent(&directory_of("alice")).await?;

    for round in 0..10 {
        let resource_id = format!("contested-{round}");
        let args = |content: &str| {
            json!({
                "project_id": "etags",
                "resource_id": resource_id,
                "name": "Contested",
                "agent_name": "alice",
                "content": content,
            })
        };
        let (a, b) = tokio::join!(
            sessions[0].call("store_resource", args("from first")),
            twin.call("store_resource", args("from second")),
        );
        let outcomes = [a?, b?];
        let winners: Vec<&Value> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                ToolOutcome::Success(value) => Some(value),
                ToolOutcome::Failure(_) => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        assert_eq!(winners[0]["created"], json!(true), "round {round}");
        let loser = outcomes
            .iter()
            .find(|outcome| matches!(outcome, ToolOutcome::Failure(_)))
            .cloned()
            .context("no failed create")?;
        expect_code(loser, "ETAG_REQUIRED");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_pair_content_with_its_etag() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let sessions = project_team(&server, "etags", &["alice", "bob"]).await?;
    let (writer, reader) = (&sessions[0], &sessions[1]);
    let created = writer.ok("store_resource", store_doc("v0")).await?;
    let mut written: HashMap<String, String> = HashMap::new();
    written.insert(etag_of(&created)?, "v0".to_owned());
    let writing_done = AtomicBool::new(false);

    let write_all = async {
        let result = async {
            let mut etag = etag_of(&created)?;
            for version in 1..=100 {
                let content = format!("v{version}");
                let stored = writer
                    .ok(
                        "store_resource",
                        with(store_doc(&content), "etag", json!(etag)),
                    )
                    .await?;
                etag = etag_of(&stored)?;
                written.insert(etag.clone(), content);
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        writing_done.store(true, Ordering::SeqCst);
        result
    };
    let read_all = async {
        let mut pairs = Vec::new();
        while !writing_done.load(Ordering::SeqCst) {
            let read = reader
                .ok(
                    "get_resource",
                    json!({ "project_id": "etags", "resource_id": "doc", "agent_name": "bob" }),
                )
                .await?;
            pairs.push((etag_of(&read)?, content_of(&read)?));
        }
        Ok::<_, anyhow::Error>(pairs)
    };
    let (write_result, read_result) =
        timeout(PAIRING_LIMIT, async { tokio::join!(write_all, read_all) })
            .await
            .with_context(|| format!("the writer and reader timed out after {PAIRING_LIMIT:?}"))?;
    write_result?;
    let pairs = read_result?;

    assert!(
        !pairs.is_empty(),
        "the reader made no read while the writer ran"
    );
    for (etag, content) in &pairs {
        assert_eq!(
            written.get(etag),
            Some(content),
            "read etag {etag} with content {content:?}, which that write did not store"
        );
    }
    Ok(())
}
