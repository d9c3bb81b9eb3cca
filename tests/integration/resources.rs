//! Resources: permissions, deletion, long-poll reads, listing and `source_path` imports.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, ToolOutcome, content_of, etag_of, project_team,
    text_field, write_file,
};

async fn start_team(options: &ServerOptions) -> Result<(Sandbox, HttpServer, Vec<Session>)> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, options).await?;
    let sessions = project_team(&server, "docs", &["alice", "bob", "carol"]).await?;
    Ok((sandbox, server, sessions))
}

fn store(agent: &str, resource_id: &str, content: &str) -> Value {
    json!({
        "project_id": "docs",
        "resource_id": resource_id,
        "name": format!("Resource {resource_id}"),
        "agent_name": agent,
        "content": content,
    })
}

fn store_from_file(resource_id: &str, path: &str) -> Value {
    json!({
        "project_id": "docs",
        "resource_id": resource_id,
        "name": "Imported",
        "agent_name": "alice",
        "source_path": path,
    })
}

fn resource(agent: &str, resource_id: &str) -> Value {
    json!({ "project_id": "docs", "resource_id": resource_id, "agent_name": agent })
}

/// Returns `args` with one more field.
fn with(mut args: Value, field: &str, value: Value) -> Value {
    args[field] = value;
    args
}

/// Returns the sorted resource ids of a `list_resources` result.
fn listed_ids(listed: &Value) -> Result<Vec<String>> {
    let mut ids = listed["resources"]
        .as_array()
        .with_context(|| format!("no resources array in {listed}"))?
        .iter()
        .map(|manifest| text_field(manifest, "resource_id").map(str::to_owned))
        .collect::<Result<Vec<_>>>()?;
    ids.sort();
    Ok(ids)
}

/// Returns the names in one permission list of a manifest, sorted.
fn permission_list(manifest: &Value, kind: &str) -> Result<Vec<String>> {
    let mut names: Vec<String> = serde_json::from_value(manifest["permissions"][kind].clone())
        .with_context(|| format!("permissions.{kind} is not a list of names in {manifest}"))?;
    names.sort();
    Ok(names)
}

#[tokio::test]
async fn new_resource_default_permissions() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let (alice, carol) = (&team[0], &team[2]);
    let created = alice
        .ok("store_resource", store("alice", "notes", "v1"))
        .await?;
    assert_eq!(created["created"], json!(true));
    assert_eq!(permission_list(&created["manifest"], "read")?, ["*"]);
    assert_eq!(permission_list(&created["manifest"], "write")?, ["alice"]);
    assert_eq!(created["manifest"]["resource_id"], json!("notes"));
    assert_eq!(created["manifest"]["etag"], created["etag"]);
    assert!(
        created["manifest"].get("creator_agent").is_none(),
        "the manifest exposes the creator: {created}"
    );

    let read = carol.ok("get_resource", resource("carol", "notes")).await?;
    assert_eq!(content_of(&read)?, "v1");
    carol
        .fails(
            "store_resource",
            with(
                store("carol", "notes", "v2"),
                "etag",
                json!(etag_of(&read)?),
            ),
            "WRITE_PERMISSION_DENIED",
        )
        .await?;
    let after = carol.ok("get_resource", resource("carol", "notes")).await?;
    assert_eq!(content_of(&after)?, "v1");
    Ok(())
}

#[tokio::test]
async fn permissions_deny_unlisted_agents() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let (alice, bob, carol) = (&team[0], &team[1], &team[2]);
    let secret = alice
        .ok(
            "store_resource",
            with(
                store("alice", "secret", "for bob"),
                "permissions",
                json!({ "read": ["bob"], "write": ["alice"] }),
            ),
        )
        .await?;
    let secret_etag = etag_of(&secret)?;

    let read = bob.ok("get_resource", resource("bob", "secret")).await?;
    assert_eq!(content_of(&read)?, "for bob");
    carol
        .fails(
            "get_resource",
            resource("carol", "secret"),
            "READ_PERMISSION_DENIED",
        )
        .await?;
    carol
        .fails(
            "store_resource",
            with(
                store("carol", "secret", "taken"),
                "etag",
                json!(secret_etag),
            ),
            "WRITE_PERMISSION_DENIED",
        )
        .await?;
    bob.fails(
        "store_resource",
        with(store("bob", "secret", "edited"), "etag", json!(secret_etag)),
        "WRITE_PERMISSION_DENIED",
    )
    .await?;
    bob.fails(
        "delete_resource",
        resource("bob", "secret"),
        "DELETE_PERMISSION_DENIED",
    )
    .await?;

    let bob_list = bob
        .ok(
            "list_resources",
            json!({ "project_id": "docs", "agent_name": "bob" }),
        )
        .await?;
    assert_eq!(listed_ids(&bob_list)?, ["secret"]);
    let carol_list = carol
        .ok(
            "list_resources",
            json!({ "project_id": "docs", "agent_name": "carol" }),
        )
        .await?;
    assert_eq!(listed_ids(&carol_list)?, Vec::<String>::new());

    let after = bob.ok("get_resource", resource("bob", "secret")).await?;
    assert_eq!(content_of(&after)?, "for bob");
    assert_eq!(etag_of(&after)?, secret_etag);
    Ok(())
}

#[tokio::test]
async fn listed_writers_update_creator_deletes() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let (alice, bob, carol) = (&team[0], &team[1], &team[2]);
    let shared = alice
        .ok(
            "store_resource",
            with(
                store("alice", "shared", "v1"),
                "permissions",
                json!({ "read": ["*"], "write": ["bob"] }),
            ),
        )
        .await?;
    let writers = permission_list(&shared["manifest"], "write")?;
    assert!(
        writers.contains(&"alice".to_owned()),
        "the creator lost write access: {writers:?}"
    );
    assert!(
        writers.contains(&"bob".to_owned()),
        "bob is not a writer: {writers:?}"
    );

    let by_bob = bob
        .ok(
            "store_resource",
            with(
                store("bob", "shared", "v2"),
                "etag",
                json!(etag_of(&shared)?),
            ),
        )
        .await?;
    carol
        .fails(
            "store_resource",
            with(
                store("carol", "shared", "v3"),
                "etag",
                json!(etag_of(&by_bob)?),
            ),
            "WRITE_PERMISSION_DENIED",
        )
        .await?;
    let by_alice = alice
        .ok(
            "store_resource",
            with(
                store("alice", "shared", "v3"),
                "etag",
                json!(etag_of(&by_bob)?),
            ),
        )
        .await?;
    assert_eq!(by_alice["created"], json!(false));

    bob.fails(
        "delete_resource",
        resource("bob", "shared"),
        "DELETE_PERMISSION_DENIED",
    )
    .await?;
    let deleted = alice
        .ok("delete_resource", resource("alice", "shared"))
        .await?;
    assert_eq!(deleted["deleted"], json!(true));
    assert_eq!(deleted["resource_id"], json!("shared"));
    bob.fails(
        "get_resource",
        resource("bob", "shared"),
        "RESOURCE_NOT_FOUND",
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn only_creator_changes_permissions() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let (alice, bob, carol) = (&team[0], &team[1], &team[2]);
    let board = alice
        .ok(
            "store_resource",
            with(
                store("alice", "board", "open"),
                "permissions",
                json!({ "read": ["*"], "write": ["*"] }),
            ),
        )
        .await?;
    let permissions_before = board["manifest"]["permissions"].clone();

    // The server may reject this call or ignore its permissions, but must not apply them.
    let attempt = bob
        .call(
            "store_resource",
            with(
                with(
                    store("bob", "board", "bob's now"),
                    "etag",
                    json!(etag_of(&board)?),
                ),
                "permissions",
                json!({ "read": ["bob"], "write": ["bob"] }),
            ),
        )
        .await?;
    let manifest = match &attempt {
        ToolOutcome::Success(stored) => stored["manifest"].clone(),
        ToolOutcome::Failure(_) => {
            bob.ok("get_resource", resource("bob", "board")).await?["manifest"].clone()
        }
    };
    assert_eq!(
        manifest["permissions"], permissions_before,
        "after {attempt:?}"
    );
    let carol_read = carol.ok("get_resource", resource("carol", "board")).await?;
    assert_eq!(carol_read["manifest"]["permissions"], permissions_before);

    let restricted = alice
        .ok(
            "store_resource",
            with(
                with(
                    store("alice", "board", "closed"),
                    "etag",
                    json!(etag_of(&carol_read)?),
                ),
                "permissions",
                json!({ "read": ["alice", "bob"], "write": ["alice"] }),
            ),
        )
        .await?;
    assert_eq!(
        permission_list(&restricted["manifest"], "read")?,
        ["alice", "bob"]
    );
    carol
        .fails(
            "get_resource",
            resource("carol", "board"),
            "READ_PERMISSION_DENIED",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn waiting_reader_gets_new_resource() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let (alice, bob) = (&team[0], &team[1]);
    let wait = with(
        with(resource("bob", "later"), "wait", json!(true)),
        "timeout_seconds",
        json!(30),
    );

    // join! polls the waiter first, so its request goes out before the resource is stored.
    let (read, stored) = tokio::join!(
        timeout(
            Duration::from_secs(10),
            bob.call_within("get_resource", wait, Duration::from_secs(40))
        ),
        alice.ok("store_resource", store("alice", "later", "arrived")),
    );
    let stored = stored?;
    let read = read
        .context("the waiting reader did not return within 10 s of the store")??
        .success()?;
    assert_ne!(
        read.get("timeout"),
        Some(&json!(true)),
        "the wait timed out: {read}"
    );
    assert_eq!(content_of(&read)?, "arrived");
    assert_eq!(etag_of(&read)?, etag_of(&stored)?);
    Ok(())
}

#[tokio::test]
async fn resource_wait_times_out() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let bob = &team[1];
    let wait = with(
        with(resource("bob", "never"), "wait", json!(true)),
        "timeout_seconds",
        json!(1),
    );
    let result = bob.ok("get_resource", wait).await?;
    assert_eq!(result["timeout"], json!(true));
    assert_eq!(result["retry"], json!(true));
    let waited_ms = result["waited_ms"].as_u64().context("no waited_ms")?;
    assert!(waited_ms >= 900, "waited only {waited_ms} ms of a 1 s wait");
    Ok(())
}

#[tokio::test]
async fn list_resources_paginates() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let alice = &team[0];
    let mut expected = Vec::new();
    for index in 0..5 {
        let resource_id = format!("item-{index}");
        alice
            .ok("store_resource", store("alice", &resource_id, "x"))
            .await?;
        expected.push(resource_id);
    }

    let mut seen = Vec::new();
    for (offset, returned) in [(0, 2), (2, 2), (4, 1)] {
        let page = alice
            .ok(
                "list_resources",
                json!({ "project_id": "docs", "agent_name": "alice", "offset": offset, "limit": 2 }),
            )
            .await?;
        assert_eq!(page["pagination"]["offset"], json!(offset), "{page}");
        assert_eq!(page["pagination"]["limit"], json!(2), "{page}");
        assert_eq!(page["pagination"]["returned"], json!(returned), "{page}");
        seen.extend(listed_ids(&page)?);
    }
    seen.sort();
    assert_eq!(seen, expected);
    Ok(())
}

#[tokio::test]
async fn source_path_copies_file_bytes() -> Result<()> {
    let (sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let alice = &team[0];
    let file = sandbox.home().join("project").join("notes.md");
    let bytes = "# Notes\nline two, with ümlauts\n".as_bytes();
    write_file(&file, bytes)?;
    let path = file.to_str().context("sandbox path is not UTF-8")?;

    let stored = alice
        .ok("store_resource", store_from_file("notes", path))
        .await?;
    assert_eq!(stored["manifest"]["source_path"], json!(path));

    // The content is a copy: changing the file afterwards does not change the resource.
    write_file(&file, b"changed on disk")?;
    let read = alice.ok("get_resource", resource("alice", "notes")).await?;
    assert_eq!(content_of(&read)?.as_bytes(), bytes);
    Ok(())
}

#[tokio::test]
async fn unsafe_source_paths_rejected() -> Result<()> {
    let (sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let alice = &team[0];
    let home = sandbox.home();
    write_file(&home.join("notes.txt"), b"inside home")?;
    std::fs::create_dir_all(home.join("folder"))?;
    let outside = sandbox.root().join("outside.txt");
    write_file(&outside, b"outside home")?;
    let sibling = sandbox.root().join("home-other").join("file.txt");
    write_file(&sibling, b"in a folder whose name starts like home")?;
    std::os::unix::fs::symlink(&outside, home.join("escape.txt"))?;

    let path = |path: std::path::PathBuf| path.to_string_lossy().into_owned();
    let cases = [
        ("notes.txt".to_owned(), "UNSAFE_PATH"),
        ("~/notes.txt".to_owned(), "UNSAFE_PATH"),
        (
            format!("{}/folder/../notes.txt", home.display()),
            "UNSAFE_PATH",
        ),
        (path(outside.clone()), "PATH_OUTSIDE_HOME"),
        (path(sibling), "PATH_OUTSIDE_HOME"),
        (path(home.join("escape.txt")), "PATH_OUTSIDE_HOME"),
        (path(home.join("missing.txt")), "FILE_NOT_ACCESSIBLE"),
        (path(home.join("folder")), "NOT_A_FILE"),
    ];
    for (source_path, code) in cases {
        alice
            .fails(
                "store_resource",
                store_from_file("imported", &source_path),
                code,
            )
            .await?;
    }
    alice
        .fails(
            "get_resource",
            resource("alice", "imported"),
            "RESOURCE_NOT_FOUND",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn source_file_over_size_limit_rejected() -> Result<()> {
    let options = ServerOptions {
        max_payload_size: Some(64),
        ..ServerOptions::default()
    };
    let (sandbox, _server, team) = start_team(&options).await?;
    let file = sandbox.home().join("big.txt");
    write_file(&file, &[b'x'; 100])?;
    let path = file.to_str().context("sandbox path is not UTF-8")?;
    team[0]
        .fails(
            "store_resource",
            store_from_file("big", path),
            "FILE_TOO_LARGE",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn content_and_source_path_conflict() -> Result<()> {
    let (sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let file = sandbox.home().join("notes.txt");
    write_file(&file, b"from the file")?;
    let path = file.to_str().context("sandbox path is not UTF-8")?;
    let args = with(store_from_file("both", path), "content", json!("inline"));
    team[0]
        .fails("store_resource", args, "CONFLICTING_PARAMETERS")
        .await?;
    team[0]
        .fails(
            "get_resource",
            resource("alice", "both"),
            "RESOURCE_NOT_FOUND",
        )
        .await?;
    Ok(())
}
