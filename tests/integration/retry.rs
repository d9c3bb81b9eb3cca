//! The client retry helper against a real server: contended etag increments with backoff.

use anyhow::{Context, Result, anyhow};
use brainstorm::client::{Backoff, retry_on_conflict};
use serde_json::json;

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, ToolOutcome, content_of, etag_of, project_team,
};

const AGENTS: usize = 6;
const INCREMENTS: usize = 15;

/// Runs one etag-guarded increment: read, add one, store with the etag read.
async fn increment(session: &Session, agent: &str) -> Result<Result<(), String>> {
    let read_args = json!({"project_id": "race", "resource_id": "counter", "agent_name": agent});
    let read = session.ok("get_resource", read_args).await?;
    let value: u64 = content_of(&read)?
        .parse()
        .context("counter content is not a number")?;
    let store = json!({
        "project_id": "race", "resource_id": "counter", "name": "Counter", "agent_name": agent,
        "content": (value + 1).to_string(), "etag": etag_of(&read)?,
    });
    Ok(match session.call("store_resource", store).await? {
        ToolOutcome::Success(_) => Ok(()),
        failure => Err(failure.code().unwrap_or("unknown").to_owned()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_helper_completes_contended_increments() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let names: Vec<String> = (0..AGENTS).map(|i| format!("retrier-{i}")).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let sessions = project_team(&server, "race", &name_refs).await?;
    let create = json!({"project_id": "race", "resource_id": "counter", "name": "Counter",
                        "agent_name": names[0], "content": "0", "permissions": {"write": ["*"]}});
    sessions[0].ok("store_resource", create).await?;

    let tasks: Vec<_> = sessions
        .into_iter()
        .zip(names.clone())
        .map(|(session, agent)| {
            tokio::spawn(async move {
                let backoff = Backoff::default();
                let mut conflicts = 0;
                for _ in 0..INCREMENTS {
                    let is_conflict = |err: &anyhow::Error| err.to_string() == "ETAG_MISMATCH";
                    let done = retry_on_conflict(&backoff, is_conflict, || async {
                        increment(&session, &agent)
                            .await?
                            .map_err(|code| anyhow!(code))
                    })
                    .await?;
                    conflicts += done.conflicts;
                }
                anyhow::Ok((session, conflicts))
            })
        })
        .collect();
    let mut conflicts = 0;
    let mut survivors = Vec::new();
    for task in tasks {
        let (session, seen) = tokio::time::timeout(std::time::Duration::from_secs(120), task)
            .await
            .context("the retrying agents did not finish")???;
        conflicts += seen;
        survivors.push(session);
    }
    let read = json!({"project_id": "race", "resource_id": "counter", "agent_name": names[0]});
    let final_value = content_of(&survivors[0].ok("get_resource", read).await?)?;

    assert_eq!(final_value, (AGENTS * INCREMENTS).to_string());
    assert!(
        conflicts > 0,
        "no conflict happened, so the helper's retry path was not exercised"
    );
    Ok(())
}
