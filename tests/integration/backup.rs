//! Online backup: `brainstorm backup` while agents keep writing.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde_json::json;
use tokio::sync::Mutex;

use crate::common::{
    HttpServer, Sandbox, ServerOptions, StdioServer, ToolOutcome, content_of, directory_of,
    etag_of, project_team,
};

const AGENTS: usize = 4;
const INCREMENTS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_during_writes_holds_a_committed_state() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let names: Vec<String> = (0..AGENTS).map(|i| format!("writer-{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let sessions = project_team(&server, "race", &name_refs).await?;
    let create = json!({"project_id": "race", "resource_id": "counter", "name": "Counter",
                        "agent_name": names[0], "content": "0", "permissions": {"write": ["*"]}});
    let created = sessions[0].ok("store_resource", create).await?;
    // Every committed value of the counter, with the etag its write returned.
    let committed = Arc::new(Mutex::new(HashMap::from([(0u64, etag_of(&created)?)])));

    let writers: Vec<_> = sessions
        .into_iter()
        .zip(names.clone())
        .map(|(session, agent)| {
            let committed = Arc::clone(&committed);
            tokio::spawn(async move {
                let mut done = 0;
                while done < INCREMENTS {
                    let read_args = json!({"project_id": "race", "resource_id": "counter", "agent_name": agent});
                    let read = session.ok("get_resource", read_args).await?;
                    let value: u64 = content_of(&read)?.parse()?;
                    let store = json!({"project_id": "race", "resource_id": "counter", "name": "Counter",
                                       "agent_name": agent, "content": (value + 1).to_string(),
                                       "etag": etag_of(&read)?});
                    if let ToolOutcome::Success(stored) = session.call("store_resource", store).await? {
                        committed.lock().await.insert(value + 1, etag_of(&stored)?);
                        done += 1;
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();

    let destination = sandbox.root().join("backup.redb");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_brainstorm"))
        .args(["backup", "--verify", "--log", "warn", "--data-dir"])
        .arg(sandbox.data_dir())
        .arg(&destination)
        .env("HOME", sandbox.home())
        .output()
        .await?;
    for writer in writers {
        writer.await.context("a writer panicked")??;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("verified: integrity check passed"),
        "{stdout}"
    );
    let size = std::fs::metadata(&destination)?.len();
    assert!(
        stdout.contains(&format!("bytes: {size}\n")),
        "the verified file must have the size reported: {size} bytes, output {stdout}"
    );

    // Open the backup as the database of a fresh data folder and read the counter there.
    let restored = Sandbox::new()?;
    std::fs::copy(&destination, restored.database_file())?;
    let reader = StdioServer::start_as(
        &restored,
        &ServerOptions::default(),
        &directory_of(&names[0]),
    )
    .await?;
    let read = json!({"project_id": "race", "resource_id": "counter", "agent_name": names[0]});
    let snapshot = reader.session().ok("get_resource", read).await?;
    let value: u64 = content_of(&snapshot)?.parse()?;
    let committed = committed.lock().await;

    assert!(
        value <= (AGENTS * INCREMENTS) as u64,
        "impossible counter value {value}"
    );
    assert_eq!(
        committed.get(&value),
        Some(&etag_of(&snapshot)?),
        "the backup's counter {value} must carry the etag of the commit that wrote it"
    );
    Ok(())
}

/// Runs `brainstorm stats` on the sandbox's data folder and returns its JSON.
async fn stats_of(sandbox: &Sandbox) -> Result<serde_json::Value> {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_brainstorm"))
        .args(["stats", "--log", "warn", "--data-dir"])
        .arg(sandbox.data_dir())
        .env("HOME", sandbox.home())
        .output()
        .await?;
    assert!(
        output.status.success(),
        "stats failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(serde_json::from_slice(&output.stdout)?)
}

#[tokio::test]
async fn stats_count_rows_through_owner_and_directly() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("alice")).await?;
    let session = server.session();
    session
        .ok(
            "create_project",
            json!({"project_id": "p", "name": "P", "created_by": "alice"}),
        )
        .await?;
    for id in ["a", "b"] {
        let store = json!({"project_id": "p", "resource_id": id, "name": "R", "agent_name": "alice", "content": "x"});
        session.ok("store_resource", store).await?;
    }

    let owned = stats_of(&sandbox).await?;
    server.shutdown().await?;
    let direct = stats_of(&sandbox).await?;

    for stats in [&owned, &direct] {
        assert_eq!(stats["schema_version"], 3, "{stats}");
        assert_eq!(stats["rows"]["projects"], 1, "{stats}");
        assert_eq!(stats["rows"]["manifests"], 2, "{stats}");
        assert_eq!(stats["largest_projects"][0]["project_id"], "p", "{stats}");
    }
    Ok(())
}

/// Runs an offline maintenance command on the sandbox's data folder.
async fn maintenance(sandbox: &Sandbox, command: &str) -> Result<std::process::Output> {
    Ok(
        tokio::process::Command::new(env!("CARGO_BIN_EXE_brainstorm"))
            .args([command, "--log", "warn", "--data-dir"])
            .arg(sandbox.data_dir())
            .env("HOME", sandbox.home())
            .output()
            .await?,
    )
}

#[tokio::test]
async fn check_and_compact_need_the_file_to_themselves() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("alice")).await?;
    server
        .session()
        .ok(
            "create_project",
            json!({"project_id": "p", "name": "P", "created_by": "alice"}),
        )
        .await?;

    let refused = maintenance(&sandbox, "check").await?;
    server.shutdown().await?;
    let checked = maintenance(&sandbox, "check").await?;
    let compacted = maintenance(&sandbox, "compact").await?;

    assert!(
        !refused.status.success(),
        "check must not run while a process owns the file"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("has the database open"));
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stdout)
    );
    assert!(String::from_utf8_lossy(&checked.stdout).contains("check passed"));
    assert!(
        compacted.status.success(),
        "{}",
        String::from_utf8_lossy(&compacted.stderr)
    );
    Ok(())
}

#[tokio::test]
async fn restore_round_trip_and_refusal_while_owned() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let backup_file = sandbox.root().join("saved.redb");
    let server =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("alice")).await?;
    let session = server.session();
    session
        .ok(
            "create_project",
            json!({"project_id": "kept", "name": "Kept", "created_by": "alice"}),
        )
        .await?;
    let backed_up = tokio::process::Command::new(env!("CARGO_BIN_EXE_brainstorm"))
        .args(["backup", "--log", "warn", "--data-dir"])
        .arg(sandbox.data_dir())
        .arg(&backup_file)
        .env("HOME", sandbox.home())
        .output()
        .await?;
    assert!(
        backed_up.status.success(),
        "{}",
        String::from_utf8_lossy(&backed_up.stderr)
    );
    session
        .ok(
            "create_project",
            json!({"project_id": "later", "name": "Later", "created_by": "alice"}),
        )
        .await?;

    let restore = |sandbox: &Sandbox| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_brainstorm"))
            .args(["restore", "--log", "warn", "--data-dir"])
            .arg(sandbox.data_dir())
            .arg(&backup_file)
            .env("HOME", sandbox.home())
            .output()
    };
    let written = std::fs::read(&backup_file)?;
    let refused = restore(&sandbox).await?;
    server.shutdown().await?;
    let restored = restore(&sandbox).await?;

    assert!(
        !refused.status.success(),
        "restore must not run while a process owns the file"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("has the database open"));
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    let kept_files = std::fs::read_dir(sandbox.data_dir())?
        .filter_map(|entry| entry.ok())
        .filter(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("brainstorm.redb.replaced-")
        })
        .count();
    assert_eq!(
        kept_files, 1,
        "the replaced file is kept beside the database"
    );
    assert!(
        std::fs::read(&backup_file)? == written,
        "restoring from the backup changed the backup file"
    );
    let reader =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("alice")).await?;
    let listed = reader.session().ok("list_projects", json!({})).await?;
    assert_eq!(listed["count"], 1, "{listed}");
    assert_eq!(listed["projects"][0]["project_id"], "kept");
    Ok(())
}
