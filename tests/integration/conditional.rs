//! Conditional reads and watches: `get_resource` with `if_none_match`, alone and with `wait`.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, content_of, etag_of, project_team,
};

/// How long a pending watch is polled to show that it has not returned yet.
const STILL_WAITING: Duration = Duration::from_millis(500);

/// Time limit for a watch to return once the change it waits for is committed.
const WAKE_LIMIT: Duration = Duration::from_secs(10);

/// Client-side limit for one watch call, above any `timeout_seconds` these tests give.
const WATCH_CALL_LIMIT: Duration = Duration::from_secs(40);

/// Arguments of a `store_resource` call by `alice` in project `watch`.
fn store(resource_id: &str, content: &str, etag: Option<&str>) -> Value {
    let mut args = json!({
        "project_id": "watch",
        "resource_id": resource_id,
        "name": format!("Resource {resource_id}"),
        "agent_name": "alice",
        "content": content,
    });
    if let Some(etag) = etag {
        args["etag"] = json!(etag);
    }
    args
}

/// Arguments of a `get_resource` call by `bob` with `if_none_match`.
fn conditional_read(resource_id: &str, etag: &str) -> Value {
    json!({
        "project_id": "watch",
        "resource_id": resource_id,
        "agent_name": "bob",
        "if_none_match": etag,
    })
}

/// Arguments of a `get_resource` call by `bob` that waits until the resource no longer has
/// `etag`.
fn watch(resource_id: &str, etag: &str, timeout_seconds: u64) -> Value {
    let mut args = conditional_read(resource_id, etag);
    args["wait"] = json!(true);
    args["timeout_seconds"] = json!(timeout_seconds);
    args
}

/// Starts a server with project `watch`: `alice` (the creator) writes, `bob` reads.
async fn start_team() -> Result<(Sandbox, HttpServer, Vec<Session>)> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let team = project_team(&server, "watch", &["alice", "bob"]).await?;
    Ok((sandbox, server, team))
}

#[tokio::test]
async fn unchanged_etag_returns_not_modified() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let stored = alice.ok("store_resource", store("doc", "v1", None)).await?;
    let etag = etag_of(&stored)?;

    let result = bob
        .ok("get_resource", conditional_read("doc", &etag))
        .await?;
    assert_eq!(result["not_modified"], json!(true), "{result}");
    assert_eq!(result["etag"], json!(etag), "{result}");
    assert!(
        result.get("content").is_none(),
        "content returned: {result}"
    );
    assert!(
        result.get("manifest").is_none(),
        "manifest returned: {result}"
    );
    Ok(())
}

#[tokio::test]
async fn changed_etag_returns_content() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let first = alice.ok("store_resource", store("doc", "v1", None)).await?;
    let first_etag = etag_of(&first)?;
    let second = alice
        .ok("store_resource", store("doc", "v2", Some(&first_etag)))
        .await?;

    let result = bob
        .ok("get_resource", conditional_read("doc", &first_etag))
        .await?;
    assert!(
        result
            .get("not_modified")
            .is_none_or(|flag| flag == &json!(false)),
        "not_modified for a changed resource: {result}"
    );
    assert_eq!(content_of(&result)?, "v2");
    assert_eq!(etag_of(&result)?, etag_of(&second)?);
    assert_eq!(result["manifest"]["etag"], json!(etag_of(&second)?));
    Ok(())
}

#[tokio::test]
async fn watch_with_stale_etag_returns_at_once() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let first = alice.ok("store_resource", store("doc", "v1", None)).await?;
    let first_etag = etag_of(&first)?;
    let second = alice
        .ok("store_resource", store("doc", "v2", Some(&first_etag)))
        .await?;

    let result = timeout(
        WAKE_LIMIT,
        bob.call_within(
            "get_resource",
            watch("doc", &first_etag, 30),
            WATCH_CALL_LIMIT,
        ),
    )
    .await
    .context("a watch with an outdated etag blocked instead of returning the current state")??
    .success()?;
    assert_eq!(content_of(&result)?, "v2");
    assert_eq!(etag_of(&result)?, etag_of(&second)?);
    Ok(())
}

#[tokio::test]
async fn watcher_wakes_on_new_version() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let first = alice.ok("store_resource", store("doc", "v1", None)).await?;
    let first_etag = etag_of(&first)?;

    let watcher = bob.call_within(
        "get_resource",
        watch("doc", &first_etag, 30),
        WATCH_CALL_LIMIT,
    );
    tokio::pin!(watcher);
    let early_outcome = timeout(STILL_WAITING, &mut watcher).await;
    assert!(
        early_outcome.is_err(),
        "the watch returned while the etag was unchanged: {early_outcome:?}"
    );

    let second = alice
        .ok("store_resource", store("doc", "v2", Some(&first_etag)))
        .await?;
    let wake_result = timeout(WAKE_LIMIT, watcher)
        .await
        .context("the watch did not return within 10 s of the new version")??
        .success()?;
    assert!(
        wake_result.get("timeout").is_none(),
        "the watch timed out: {wake_result}"
    );
    assert_eq!(content_of(&wake_result)?, "v2");
    assert_eq!(etag_of(&wake_result)?, etag_of(&second)?);
    assert_eq!(wake_result["manifest"]["version"], json!(2));
    Ok(())
}

#[tokio::test]
async fn watcher_ignores_other_resources() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let watched = alice.ok("store_resource", store("doc", "v1", None)).await?;
    let watched_etag = etag_of(&watched)?;

    let watcher = bob.call_within(
        "get_resource",
        watch("doc", &watched_etag, 3),
        WATCH_CALL_LIMIT,
    );
    tokio::pin!(watcher);
    let early_outcome = timeout(STILL_WAITING, &mut watcher).await;
    assert!(
        early_outcome.is_err(),
        "the watch returned while the etag was unchanged: {early_outcome:?}"
    );

    alice
        .ok("store_resource", store("other", "unrelated", None))
        .await?;
    let result = timeout(Duration::from_secs(3) + WAKE_LIMIT, watcher)
        .await
        .context("the 3 s watch did not return within 13 s")??
        .success()?;
    assert_eq!(result["timeout"], json!(true), "{result}");
    assert_eq!(result["retry"], json!(true), "{result}");
    assert!(
        result.get("content").is_none(),
        "content returned: {result}"
    );
    let waited_ms = result["waited_ms"]
        .as_u64()
        .with_context(|| format!("no waited_ms in {result}"))?;
    assert!(
        waited_ms >= 2900,
        "waited only {waited_ms} ms of a 3 s watch"
    );
    Ok(())
}

#[tokio::test]
async fn watcher_wakes_on_deletion() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let stored = alice.ok("store_resource", store("doc", "v1", None)).await?;
    let etag = etag_of(&stored)?;

    let watcher = bob.call_within("get_resource", watch("doc", &etag, 30), WATCH_CALL_LIMIT);
    tokio::pin!(watcher);
    let early_outcome = timeout(STILL_WAITING, &mut watcher).await;
    assert!(
        early_outcome.is_err(),
        "the watch returned while the etag was unchanged: {early_outcome:?}"
    );

    alice
        .ok(
            "delete_resource",
            json!({ "project_id": "watch", "resource_id": "doc", "agent_name": "alice" }),
        )
        .await?;
    let wake_result = timeout(WAKE_LIMIT, watcher)
        .await
        .context("the watch did not return within 10 s of the deletion")??
        .success()?;
    assert_eq!(wake_result["deleted"], json!(true), "{wake_result}");
    assert_eq!(wake_result["project_id"], json!("watch"), "{wake_result}");
    assert_eq!(wake_result["resource_id"], json!("doc"), "{wake_result}");
    assert!(
        wake_result.get("content").is_none(),
        "content returned: {wake_result}"
    );
    Ok(())
}
