//! Manifest content hashes and version numbers, `resource_history`, and reading older versions
//! with `get_resource {version}`.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, acting_as, content_of, etag_of, project_team,
};

/// Versions the server keeps per document when no setting changes it.
const DEFAULT_KEPT: u64 = 20;

/// Returns the `content_hash` a manifest must carry for `content`: "sha256:" and 64 lowercase
/// hex digits.
fn expected_hash(content: &str) -> String {
    let hex: String = Sha256::digest(content.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// Arguments of a `store_resource` call in project `history`. Every member may write.
fn store(agent: &str, resource_id: &str, content: &str, etag: Option<&str>) -> Value {
    let mut args = json!({
        "project_id": "history",
        "resource_id": resource_id,
        "name": format!("Resource {resource_id}"),
        "agent_name": agent,
        "content": content,
        "permissions": { "read": ["*"], "write": ["*"] },
    });
    if let Some(etag) = etag {
        args["etag"] = json!(etag);
    }
    args
}

/// Arguments of a `get_resource` call in project `history`.
fn read(agent: &str, resource_id: &str) -> Value {
    json!({ "project_id": "history", "resource_id": resource_id, "agent_name": agent })
}

/// Arguments of a `get_resource` call for one version of `doc`, read by `alice`.
fn read_version(version: u64) -> Value {
    let mut args = read("alice", "doc");
    args["version"] = json!(version);
    args
}

/// Arguments of a `resource_history` call for `doc`.
fn history_of_doc(agent: &str) -> Value {
    acting_as(
        agent,
        json!({ "project_id": "history", "resource_id": "doc", "agent_name": agent }),
    )
}

/// Starts a server with project `history` and members `alice` (the creator) and `bob`.
async fn start_team() -> Result<(Sandbox, HttpServer, Vec<Session>)> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let team = project_team(&server, "history", &["alice", "bob"]).await?;
    Ok((sandbox, server, team))
}

/// Writes `doc` `count` times as `alice`, with the version number as content ("1", "2", ...),
/// and returns the etag of each write in order.
async fn write_versions(session: &Session, count: u64) -> Result<Vec<String>> {
    let mut etags: Vec<String> = Vec::new();
    for version in 1..=count {
        let content = version.to_string();
        let previous = etags.last().map(String::as_str);
        let stored = session
            .ok("store_resource", store("alice", "doc", &content, previous))
            .await?;
        etags.push(etag_of(&stored)?);
    }
    Ok(etags)
}

/// Returns the `version` numbers listed by a `resource_history` result.
fn listed_versions(history: &Value) -> Result<Vec<u64>> {
    history["versions"]
        .as_array()
        .with_context(|| format!("no versions array in {history}"))?
        .iter()
        .map(|entry| {
            entry["version"]
                .as_u64()
                .with_context(|| format!("version entry without a number: {entry}"))
        })
        .collect()
}

#[tokio::test]
async fn manifest_hash_is_sha256_of_content() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    let content = "hello, world\n";
    let expected = expected_hash(content);

    let stored = alice
        .ok("store_resource", store("alice", "doc", content, None))
        .await?;
    let hash = stored["manifest"]["content_hash"]
        .as_str()
        .with_context(|| format!("no content_hash in {stored}"))?;
    assert_eq!(hash, expected);
    let hex = hash.strip_prefix("sha256:").unwrap_or_default();
    assert_eq!(hex.len(), 64, "hash {hash:?} has no 64-digit hex part");
    assert!(
        hex.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "hash {hash:?} is not lowercase hex"
    );

    let read_back = alice.ok("get_resource", read("alice", "doc")).await?;
    assert_eq!(read_back["manifest"]["content_hash"], json!(expected));

    let etag = etag_of(&stored)?;
    let changed = alice
        .ok(
            "store_resource",
            store("alice", "doc", "changed", Some(&etag)),
        )
        .await?;
    assert_eq!(
        changed["manifest"]["content_hash"],
        json!(expected_hash("changed"))
    );
    Ok(())
}

#[tokio::test]
async fn equal_content_has_equal_hash() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let first = alice
        .ok("store_resource", store("alice", "first", "same text", None))
        .await?;
    let second = bob
        .ok("store_resource", store("bob", "second", "same text", None))
        .await?;
    let different = alice
        .ok(
            "store_resource",
            store("alice", "third", "other text", None),
        )
        .await?;

    let first_hash = &first["manifest"]["content_hash"];
    assert_eq!(first_hash, &json!(expected_hash("same text")));
    assert_eq!(&second["manifest"]["content_hash"], first_hash);
    assert_ne!(&different["manifest"]["content_hash"], first_hash);
    Ok(())
}

#[tokio::test]
async fn version_counts_every_write() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    let created = alice
        .ok("store_resource", store("alice", "doc", "1", None))
        .await?;
    assert_eq!(created["manifest"]["version"], json!(1));
    assert_eq!(created["manifest"]["kind"], json!("document"));

    let etag = etag_of(&created)?;
    let stored = alice
        .ok("store_resource", store("alice", "doc", "2", Some(&etag)))
        .await?;
    assert_eq!(stored["manifest"]["version"], json!(2));

    let updated = alice
        .ok(
            "update_resource",
            acting_as(
                "alice",
                json!({
                    "project_id": "history",
                    "resource_id": "doc",
                    "agent_name": "alice",
                    "operation": "increment",
                }),
            ),
        )
        .await?;
    assert_eq!(updated["version"], json!(3));
    assert_eq!(updated["manifest"]["version"], json!(3));

    let read_back = alice.ok("get_resource", read("alice", "doc")).await?;
    assert_eq!(read_back["manifest"]["version"], json!(3));
    assert_eq!(read_back["manifest"]["kind"], json!("document"));
    assert_eq!(content_of(&read_back)?, "3");
    Ok(())
}

#[tokio::test]
async fn history_lists_versions_oldest_first() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let contents = ["first", "second version", "third"];
    let first = alice
        .ok("store_resource", store("alice", "doc", contents[0], None))
        .await?;
    let second = bob
        .ok(
            "store_resource",
            store("bob", "doc", contents[1], Some(&etag_of(&first)?)),
        )
        .await?;
    let third = alice
        .ok(
            "store_resource",
            store("alice", "doc", contents[2], Some(&etag_of(&second)?)),
        )
        .await?;
    let etags = [etag_of(&first)?, etag_of(&second)?, etag_of(&third)?];
    let authors = ["alice", "bob", "alice"];

    let history = bob.ok("resource_history", history_of_doc("bob")).await?;
    assert_eq!(history["resource_id"], json!("doc"));
    assert_eq!(history["current_version"], json!(3));
    assert_eq!(history["kept"], json!(DEFAULT_KEPT));
    assert_eq!(listed_versions(&history)?, [1, 2, 3]);
    let versions = history["versions"]
        .as_array()
        .with_context(|| format!("no versions array in {history}"))?;
    for (index, entry) in versions.iter().enumerate() {
        assert_eq!(entry["etag"], json!(etags[index]), "{entry}");
        assert_eq!(entry["author"], json!(authors[index]), "{entry}");
        assert_eq!(entry["size_bytes"], json!(contents[index].len()), "{entry}");
        assert_eq!(
            entry["content_hash"],
            json!(expected_hash(contents[index])),
            "{entry}"
        );
        assert!(entry["at"].is_string(), "no time in {entry}");
        assert!(entry.get("content").is_none(), "content listed in {entry}");
    }
    Ok(())
}

#[tokio::test]
async fn history_keeps_newest_twenty() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    let etags = write_versions(alice, 25).await?;

    let history = alice
        .ok("resource_history", history_of_doc("alice"))
        .await?;
    assert_eq!(history["current_version"], json!(25));
    assert_eq!(history["kept"], json!(DEFAULT_KEPT));
    let expected: Vec<u64> = (6..=25).collect();
    assert_eq!(listed_versions(&history)?, expected);
    assert_eq!(history["versions"][0]["etag"], json!(etags[5]));
    assert_eq!(history["versions"][19]["etag"], json!(etags[24]));
    Ok(())
}

#[tokio::test]
async fn older_version_is_readable() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    let etags = write_versions(alice, 3).await?;

    let version_two = alice.ok("get_resource", read_version(2)).await?;
    assert_eq!(content_of(&version_two)?, "2");
    assert_eq!(etag_of(&version_two)?, etags[1]);
    assert_eq!(version_two["version"]["version"], json!(2), "{version_two}");
    assert_eq!(
        version_two["version"]["etag"],
        json!(etags[1]),
        "{version_two}"
    );
    assert_eq!(
        version_two["version"]["author"],
        json!("alice"),
        "{version_two}"
    );
    assert_eq!(
        version_two["version"]["content_hash"],
        json!(expected_hash("2"))
    );
    assert_eq!(
        version_two["manifest"]["version"],
        json!(3),
        "the manifest is not the current one: {version_two}"
    );

    let oldest = alice.ok("get_resource", read_version(1)).await?;
    assert_eq!(content_of(&oldest)?, "1");
    assert_eq!(etag_of(&oldest)?, etags[0]);

    let current = alice.ok("get_resource", read_version(3)).await?;
    assert_eq!(content_of(&current)?, "3");
    assert_eq!(etag_of(&current)?, etags[2]);
    Ok(())
}

#[tokio::test]
async fn dropped_version_not_found() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    write_versions(alice, 25).await?;

    alice
        .fails("get_resource", read_version(5), "VERSION_NOT_FOUND")
        .await?;
    alice
        .fails("get_resource", read_version(26), "VERSION_NOT_FOUND")
        .await?;
    let oldest_kept = alice.ok("get_resource", read_version(6)).await?;
    assert_eq!(content_of(&oldest_kept)?, "6");
    Ok(())
}

#[tokio::test]
async fn version_and_wait_conflict() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    write_versions(alice, 2).await?;

    let mut args = read_version(1);
    args["wait"] = json!(true);
    args["timeout_seconds"] = json!(1);
    alice
        .fails("get_resource", args, "CONFLICTING_PARAMETERS")
        .await?;
    Ok(())
}
