//! Atomic updates with `update_resource`: increment, JSON merge patch, JSON patch and append,
//! their errors, and concurrent increments that lose nothing.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use tokio::sync::Barrier;
use tokio::time::timeout;

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, ToolOutcome, acting_as, content_of, directory_of,
    etag_of, project_team,
};

/// Agents that increment the shared counter at the same time.
const RACE_AGENTS: usize = 16;

/// Increments each racing agent makes.
const INCREMENTS_PER_AGENT: usize = 25;

/// Time limit for the whole increment race.
const RACE_LIMIT: Duration = Duration::from_secs(240);

/// Arguments of an `update_resource` call by `agent` on `doc` in project `updates`, with the
/// fields of `extra` added.
fn update(agent: &str, operation: &str, extra: Value) -> Value {
    let mut args = json!({
        "project_id": "updates",
        "resource_id": "doc",
        "agent_name": agent,
        "operation": operation,
    });
    if let (Value::Object(args), Value::Object(extra)) = (&mut args, extra) {
        args.extend(extra);
    }
    acting_as(agent, args)
}

/// Arguments of a `get_resource` call for `doc` by `alice`.
fn read_doc() -> Value {
    json!({ "project_id": "updates", "resource_id": "doc", "agent_name": "alice" })
}

/// Starts a server with project `updates` and members `alice` (the creator) and `bob`.
async fn start_team() -> Result<(Sandbox, HttpServer, Vec<Session>)> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let team = project_team(&server, "updates", &["alice", "bob"]).await?;
    Ok((sandbox, server, team))
}

/// Creates `doc` with `content` as `alice`, writable by `alice` only, and returns its etag.
async fn create_doc(alice: &Session, content: &str) -> Result<String> {
    store_doc(alice, content, json!({})).await
}

/// Stores `doc` with `content` as `alice`, with the fields of `extra` added, and returns its
/// etag.
async fn store_doc(alice: &Session, content: &str, extra: Value) -> Result<String> {
    let mut args = json!({
        "project_id": "updates",
        "resource_id": "doc",
        "name": "Document",
        "agent_name": "alice",
        "content": content,
    });
    if let (Value::Object(args), Value::Object(extra)) = (&mut args, extra) {
        args.extend(extra);
    }
    let stored = alice.ok("store_resource", args).await?;
    etag_of(&stored)
}

/// Reads `doc` and returns its content parsed as JSON.
async fn read_json(session: &Session) -> Result<Value> {
    let read = session.ok("get_resource", read_doc()).await?;
    let content = content_of(&read)?;
    serde_json::from_str(&content).with_context(|| format!("content is not JSON: {content}"))
}

#[tokio::test]
async fn increment_adds_one_by_default() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    let old_etag = create_doc(alice, "41").await?;

    let result = alice
        .ok(
            "update_resource",
            update("alice", "increment", json!({ "return_content": true })),
        )
        .await?;
    assert_eq!(content_of(&result)?, "42");
    assert_eq!(result["version"], json!(2));
    assert_eq!(result["manifest"]["version"], json!(2));
    let new_etag = etag_of(&result)?;
    assert_ne!(new_etag, old_etag);
    assert_eq!(result["manifest"]["etag"], json!(new_etag));

    let read = alice.ok("get_resource", read_doc()).await?;
    assert_eq!(content_of(&read)?, "42");
    assert_eq!(etag_of(&read)?, new_etag);
    Ok(())
}

#[tokio::test]
async fn increment_adds_given_value() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    create_doc(alice, "10").await?;

    let plus_five = alice
        .ok(
            "update_resource",
            update(
                "alice",
                "increment",
                json!({ "value": 5, "return_content": true }),
            ),
        )
        .await?;
    assert_eq!(content_of(&plus_five)?, "15");
    let minus_twenty = alice
        .ok(
            "update_resource",
            update(
                "alice",
                "increment",
                json!({ "value": -20, "return_content": true }),
            ),
        )
        .await?;
    assert_eq!(content_of(&minus_twenty)?, "-5");
    Ok(())
}

#[tokio::test]
async fn content_only_with_return_content() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    create_doc(alice, "1").await?;

    let result = alice
        .ok("update_resource", update("alice", "increment", json!({})))
        .await?;
    assert!(
        result.get("content").is_none(),
        "content returned: {result}"
    );
    assert!(result["etag"].is_string(), "no etag in {result}");
    assert_eq!(result["version"], json!(2));
    Ok(())
}

#[tokio::test]
async fn increment_at_path_inside_json() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    create_doc(alice, r#"{"stats": {"count": 2}, "name": "jobs"}"#).await?;

    alice
        .ok(
            "update_resource",
            update(
                "alice",
                "increment",
                json!({ "path": "/stats/count", "value": 3 }),
            ),
        )
        .await?;
    assert_eq!(
        read_json(alice).await?,
        json!({ "stats": { "count": 5 }, "name": "jobs" })
    );
    Ok(())
}

#[tokio::test]
async fn increment_of_text_is_not_a_number() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    let etag = create_doc(alice, "hello").await?;

    alice
        .fails(
            "update_resource",
            update("alice", "increment", json!({})),
            "NOT_A_NUMBER",
        )
        .await?;
    let read = alice.ok("get_resource", read_doc()).await?;
    assert_eq!(content_of(&read)?, "hello");
    assert_eq!(etag_of(&read)?, etag);
    Ok(())
}

#[tokio::test]
async fn increment_at_text_value_is_not_a_number() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    create_doc(alice, r#"{"count": "three"}"#).await?;

    alice
        .fails(
            "update_resource",
            update("alice", "increment", json!({ "path": "/count" })),
            "NOT_A_NUMBER",
        )
        .await?;
    assert_eq!(read_json(alice).await?, json!({ "count": "three" }));
    Ok(())
}

#[tokio::test]
async fn merge_patch_follows_rfc_7396() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    create_doc(alice, r#"{"a": 1, "b": {"c": 2, "d": 3}, "list": [1, 2]}"#).await?;

    let patch = json!({ "b": { "c": null, "e": 4 }, "list": [3], "f": "new" });
    alice
        .ok(
            "update_resource",
            update("alice", "json_merge_patch", json!({ "patch": patch })),
        )
        .await?;
    assert_eq!(
        read_json(alice).await?,
        json!({ "a": 1, "b": { "d": 3, "e": 4 }, "list": [3], "f": "new" })
    );
    Ok(())
}

#[tokio::test]
async fn json_patch_applies_operations() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    create_doc(alice, r#"{"a": 1, "b": 2, "items": ["x"]}"#).await?;

    let patch = json!([
        { "op": "test", "path": "/a", "value": 1 },
        { "op": "replace", "path": "/a", "value": 10 },
        { "op": "remove", "path": "/b" },
        { "op": "add", "path": "/items/-", "value": "y" },
    ]);
    alice
        .ok(
            "update_resource",
            update("alice", "json_patch", json!({ "patch": patch })),
        )
        .await?;
    assert_eq!(
        read_json(alice).await?,
        json!({ "a": 10, "items": ["x", "y"] })
    );
    Ok(())
}

#[tokio::test]
async fn failed_patch_test_changes_nothing() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    let etag = create_doc(alice, r#"{"a": 1}"#).await?;

    // The add before the failing test must be undone too, because a patch applies whole or not
    // at all.
    let patch = json!([
        { "op": "add", "path": "/added", "value": true },
        { "op": "test", "path": "/a", "value": 2 },
        { "op": "replace", "path": "/a", "value": 3 },
    ]);
    alice
        .fails(
            "update_resource",
            update("alice", "json_patch", json!({ "patch": patch })),
            "PATCH_TEST_FAILED",
        )
        .await?;
    assert_eq!(read_json(alice).await?, json!({ "a": 1 }));
    let read = alice.ok("get_resource", read_doc()).await?;
    assert_eq!(etag_of(&read)?, etag);
    assert_eq!(read["manifest"]["version"], json!(1));
    Ok(())
}

#[tokio::test]
async fn patch_at_missing_path_fails() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    create_doc(alice, r#"{"a": 1}"#).await?;

    let patch = json!([{ "op": "remove", "path": "/missing" }]);
    alice
        .fails(
            "update_resource",
            update("alice", "json_patch", json!({ "patch": patch })),
            "PATCH_FAILED",
        )
        .await?;
    assert_eq!(read_json(alice).await?, json!({ "a": 1 }));
    Ok(())
}

#[tokio::test]
async fn append_adds_array_element() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    create_doc(alice, "[1, 2]").await?;

    alice
        .ok(
            "update_resource",
            update("alice", "append", json!({ "value": { "x": 3 } })),
        )
        .await?;
    assert_eq!(read_json(alice).await?, json!([1, 2, { "x": 3 }]));
    Ok(())
}

#[tokio::test]
async fn append_adds_text() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    create_doc(alice, "line one\n").await?;

    let result = alice
        .ok(
            "update_resource",
            update(
                "alice",
                "append",
                json!({ "value": "line two\n", "return_content": true }),
            ),
        )
        .await?;
    assert_eq!(content_of(&result)?, "line one\nline two\n");
    let read = alice.ok("get_resource", read_doc()).await?;
    assert_eq!(content_of(&read)?, "line one\nline two\n");
    Ok(())
}

#[tokio::test]
async fn bad_operation_arguments_rejected() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    let etag = create_doc(alice, r#"[1]"#).await?;

    let cases = [
        ("json_patch", json!({})),
        ("json_patch", json!({ "patch": { "op": "add" } })),
        ("json_merge_patch", json!({})),
        ("append", json!({})),
        ("increment", json!({ "value": "two" })),
    ];
    for (operation, extra) in cases {
        alice
            .fails(
                "update_resource",
                update("alice", operation, extra),
                "INVALID_OPERATION",
            )
            .await?;
    }
    let read = alice.ok("get_resource", read_doc()).await?;
    assert_eq!(etag_of(&read)?, etag, "a rejected update changed {read}");
    Ok(())
}

#[tokio::test]
async fn unknown_operation_rejected() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    create_doc(alice, "1").await?;

    alice
        .fails(
            "update_resource",
            update("alice", "multiply", json!({ "value": 2 })),
            "INVALID_PARAMETER",
        )
        .await?;
    let read = alice.ok("get_resource", read_doc()).await?;
    assert_eq!(content_of(&read)?, "1");
    Ok(())
}

#[tokio::test]
async fn stale_etag_rejected() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    let first_etag = create_doc(alice, "1").await?;
    let second = alice
        .ok(
            "update_resource",
            update("alice", "increment", json!({ "etag": first_etag })),
        )
        .await?;
    let second_etag = etag_of(&second)?;

    alice
        .fails(
            "update_resource",
            update("alice", "increment", json!({ "etag": first_etag })),
            "ETAG_MISMATCH",
        )
        .await?;
    let read = alice.ok("get_resource", read_doc()).await?;
    assert_eq!(content_of(&read)?, "2");
    assert_eq!(etag_of(&read)?, second_etag);

    let third = alice
        .ok(
            "update_resource",
            update(
                "alice",
                "increment",
                json!({ "etag": second_etag, "return_content": true }),
            ),
        )
        .await?;
    assert_eq!(content_of(&third)?, "3");
    Ok(())
}

#[tokio::test]
async fn missing_resource_not_found() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];

    alice
        .fails(
            "update_resource",
            update("alice", "increment", json!({})),
            "RESOURCE_NOT_FOUND",
        )
        .await?;
    alice
        .fails("get_resource", read_doc(), "RESOURCE_NOT_FOUND")
        .await?;
    Ok(())
}

#[tokio::test]
async fn update_needs_write_permission() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let etag = create_doc(alice, "7").await?;

    bob.fails(
        "update_resource",
        update("bob", "increment", json!({})),
        "WRITE_PERMISSION_DENIED",
    )
    .await?;
    let read = alice.ok("get_resource", read_doc()).await?;
    assert_eq!(content_of(&read)?, "7");
    assert_eq!(etag_of(&read)?, etag);
    Ok(())
}

/// Creates `doc` with `content` as `alice`, readable by `alice` only and writable by all.
async fn create_sealed_doc(alice: &Session, content: &str) -> Result<String> {
    let permissions = json!({ "permissions": { "read": ["alice"], "write": ["*"] } });
    store_doc(alice, content, permissions).await
}

#[tokio::test]
async fn blind_writer_cannot_read_through_updates() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let etag = create_sealed_doc(alice, r#"{"pin":4711,"word":"hush"}"#).await?;

    // Calls whose result would show the content are rejected before they change anything.
    let revealing = [
        update(
            "bob",
            "json_merge_patch",
            json!({ "patch": {}, "return_content": true }),
        ),
        update(
            "bob",
            "json_patch",
            json!({ "patch": [{ "op": "test", "path": "/pin", "value": 4711 }] }),
        ),
    ];
    for args in revealing {
        bob.fails("update_resource", args, "READ_PERMISSION_DENIED")
            .await?;
    }
    let read = alice.ok("get_resource", read_doc()).await?;
    assert_eq!(etag_of(&read)?, etag);

    // Failed updates name the problem without the stored values.
    let failures = [
        update(
            "bob",
            "increment",
            json!({ "path": "/pin", "value": i64::MAX }),
        ),
        update("bob", "increment", json!({ "path": "/word" })),
    ];
    for args in failures {
        let error = bob.fails("update_resource", args, "NOT_A_NUMBER").await?;
        let text = error.to_string();
        assert!(!text.contains("4711"), "{text}");
        assert!(!text.contains("hush"), "{text}");
    }

    // A blind write applies and returns no content.
    let updated = bob
        .ok(
            "update_resource",
            update("bob", "json_merge_patch", json!({ "patch": { "note": 1 } })),
        )
        .await?;
    assert_eq!(updated.get("content"), None, "{updated}");
    assert_eq!(
        read_json(alice).await?,
        json!({ "pin": 4711, "word": "hush", "note": 1 })
    );
    Ok(())
}

#[tokio::test]
async fn blind_writer_gets_no_text_content() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    create_sealed_doc(alice, "hush").await?;

    let error = bob
        .fails(
            "update_resource",
            update("bob", "increment", json!({})),
            "NOT_A_NUMBER",
        )
        .await?;
    let text = error.to_string();
    assert!(!text.contains("hush"), "{text}");
    Ok(())
}

/// Makes `INCREMENTS_PER_AGENT` increments of `counter` as `agent` and returns the version
/// number each one produced. Any failed call ends the agent with an error.
async fn increment_many(session: Session, agent: String, start: Arc<Barrier>) -> Result<Vec<u64>> {
    start.wait().await;
    let mut versions = Vec::with_capacity(INCREMENTS_PER_AGENT);
    for _ in 0..INCREMENTS_PER_AGENT {
        let args = acting_as(
            &agent,
            json!({
                "project_id": "race",
                "resource_id": "counter",
                "agent_name": agent,
                "operation": "increment",
            }),
        );
        match session.call("update_resource", args).await? {
            ToolOutcome::Success(result) => {
                let version = result["version"]
                    .as_u64()
                    .with_context(|| format!("{agent}: no version in {result}"))?;
                versions.push(version);
            }
            failure => bail!("{agent}: update_resource failed: {failure:?}"),
        }
    }
    Ok(versions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_lose_nothing() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let names: Vec<String> = (0..RACE_AGENTS).map(|i| format!("agent-{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let sessions = project_team(&server, "race", &name_refs).await?;
    sessions[0]
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

    let start = Arc::new(Barrier::new(RACE_AGENTS));
    let tasks: Vec<_> = sessions
        .into_iter()
        .zip(names.iter().cloned())
        .map(|(session, name)| tokio::spawn(increment_many(session, name, start.clone())))
        .collect();
    let collect_versions = async {
        let mut versions = Vec::new();
        for task in tasks {
            versions.extend(task.await.context("an incrementing agent panicked")??);
        }
        Ok::<_, anyhow::Error>(versions)
    };
    let mut versions = timeout(RACE_LIMIT, collect_versions)
        .await
        .with_context(|| format!("the increments did not finish within {RACE_LIMIT:?}"))??;

    let total = RACE_AGENTS * INCREMENTS_PER_AGENT;
    let reader = server.agent(&directory_of(&names[1])).await?;
    let last = reader
        .ok(
            "get_resource",
            json!({ "project_id": "race", "resource_id": "counter", "agent_name": names[1] }),
        )
        .await?;
    assert_eq!(content_of(&last)?, total.to_string());
    assert_eq!(last["manifest"]["version"], json!(total + 1));

    // Each increment is its own write, so the versions they returned are 2 to total + 1 once.
    versions.sort_unstable();
    let expected: Vec<u64> = (2..=total as u64 + 1).collect();
    assert_eq!(versions, expected);
    Ok(())
}
