//! Sessions and identity over stdio: `status`, client ids, and what works before `status`.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::common::{
    Sandbox, ServerOptions, StdioServer, derived_client_id, directory_of, status_entry, text_field,
};

/// Returns one call of every tool that acts as an agent, with well-formed arguments, so that
/// the only fault of each call made before `status` is the missing session.
fn agent_tool_calls() -> Vec<(&'static str, Value)> {
    vec![
        (
            "create_project",
            json!({ "project_id": "early", "name": "Early" }),
        ),
        (
            "join_project",
            json!({ "project_id": "early", "agent_name": "alice" }),
        ),
        (
            "send_message",
            json!({
                "project_id": "early",
                "from_agent": "alice",
                "to_agent": "bob",
                "reply_expected": true,
                "payload": "hi",
            }),
        ),
        (
            "receive_messages",
            json!({ "project_id": "early", "agent_name": "alice" }),
        ),
        (
            "store_resource",
            json!({
                "project_id": "early",
                "resource_id": "doc",
                "name": "Doc",
                "agent_name": "alice",
                "content": "x",
            }),
        ),
        (
            "get_resource",
            json!({ "project_id": "early", "resource_id": "doc", "agent_name": "alice" }),
        ),
        (
            "list_resources",
            json!({ "project_id": "early", "agent_name": "alice" }),
        ),
        (
            "delete_resource",
            json!({ "project_id": "early", "resource_id": "doc", "agent_name": "alice" }),
        ),
        (
            "heartbeat",
            json!({ "project_id": "early", "agent_name": "alice" }),
        ),
        (
            "handover_coordinator",
            json!({ "project_id": "early", "from_agent": "alice", "to_agent": "bob" }),
        ),
        (
            "delete_project",
            json!({ "project_id": "early", "agent_name": "alice" }),
        ),
        (
            "leave_project",
            json!({ "project_id": "early", "agent_name": "alice" }),
        ),
    ]
}

#[tokio::test]
async fn agent_tools_need_status_first() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = StdioServer::start(&sandbox, &ServerOptions::default()).await?;
    let session = server.session();

    for (tool, args) in agent_tool_calls() {
        session.fails(tool, args, "SESSION_NOT_INITIALIZED").await?;
    }
    let version = session.ok("version", json!({})).await?;
    assert_eq!(version["name"], json!("brainstorm"));
    let listed = session.ok("list_projects", json!({})).await?;
    assert_eq!(
        listed["projects"],
        json!([]),
        "a rejected create_project left a project"
    );

    session.status(&directory_of("alice")).await?;
    session
        .ok(
            "create_project",
            json!({ "project_id": "early", "name": "Early", "created_by": "alice" }),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn unnormalized_working_directory_rejected() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = StdioServer::start(&sandbox, &ServerOptions::default()).await?;
    let session = server.session();

    for directory in ["relative/x", "/a/../b", "/a/./b", "./a", "..", ""] {
        session
            .fails(
                "status",
                json!({ "working_directory": directory }),
                "INVALID_WORKING_DIRECTORY",
            )
            .await?;
    }
    // A rejected status starts no session.
    session
        .fails(
            "create_project",
            json!({ "project_id": "p", "name": "P" }),
            "SESSION_NOT_INITIALIZED",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn client_id_derives_from_working_directory() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = StdioServer::start(&sandbox, &ServerOptions::default()).await?;
    let directory = directory_of("alice");

    let status = server.session().status(&directory).await?;
    assert_eq!(
        text_field(&status, "client_id")?,
        derived_client_id(&directory)
    );
    assert_eq!(status["projects"], json!([]));
    assert!(status["summary"].is_string(), "no summary: {status}");
    Ok(())
}

#[tokio::test]
async fn client_id_override_from_environment() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions::default().with_env("BRAINSTORM_CLIENT_ID", "  shared-client  ");
    let server = StdioServer::start(&sandbox, &options).await?;

    let status = server.session().status(&directory_of("alice")).await?;
    assert_eq!(text_field(&status, "client_id")?, "shared-client");
    Ok(())
}

#[tokio::test]
async fn status_reports_memberships() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("alice")).await?;
    let session = server.session();
    session
        .ok(
            "create_project",
            json!({ "project_id": "alpha", "name": "Alpha", "created_by": "alice" }),
        )
        .await?;

    let status = session.status(&directory_of("alice")).await?;
    let entry = status_entry(&status, "alpha")?;
    assert_eq!(entry["project_name"], json!("Alpha"));
    assert_eq!(entry["agent_name"], json!("alice"));
    assert_eq!(entry["role"], json!("coordinator"));
    assert_eq!(entry["unread_count"], json!(0));
    assert!(
        entry["online"].is_boolean(),
        "online is not a boolean: {entry}"
    );
    let summary = text_field(&status, "summary")?;
    assert!(!summary.is_empty(), "empty summary");
    Ok(())
}

#[tokio::test]
async fn version_names_the_package() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = StdioServer::start(&sandbox, &ServerOptions::default()).await?;
    let version = server.session().ok("version", json!({})).await?;
    assert_eq!(version["name"], json!("brainstorm"));
    assert_eq!(version["version"], json!(env!("CARGO_PKG_VERSION")));
    let description = version["description"]
        .as_str()
        .context("description is not a string")?;
    assert!(!description.is_empty(), "empty description");
    Ok(())
}
