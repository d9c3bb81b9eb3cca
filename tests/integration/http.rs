//! Streamable HTTP: identity with and without sessions, and the server's output streams.

use anyhow::Result;
use serde_json::json;

use crate::common::{
    HttpEra, HttpServer, Sandbox, ServerOptions, Session, call, directory_of, expect_code,
    member_names,
};

#[tokio::test]
async fn stateless_calls_carry_their_identity() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let client = server.connect(HttpEra::Stateless).await?;
    let directory = directory_of("alice");
    call(&client, "status", json!({ "working_directory": directory }))
        .await?
        .success()?;

    // Protocol 2026-07-28 has no sessions, so the status call above sets no identity for later calls.
    let anonymous = call(
        &client,
        "create_project",
        json!({ "project_id": "web", "name": "Web", "created_by": "alice" }),
    )
    .await?;
    expect_code(anonymous, "SESSION_NOT_INITIALIZED");

    let identified = call(
        &client,
        "create_project",
        json!({
            "project_id": "web",
            "name": "Web",
            "created_by": "alice",
            "working_directory": directory,
        }),
    )
    .await?
    .success()?;
    assert_eq!(identified["role"], json!("coordinator"));

    // The identity comes from the argument alone: no status call for this client was made.
    let bob = Session::with_identity(
        server.connect(HttpEra::Stateless).await?,
        &directory_of("bob"),
    );
    bob.ok(
        "join_project",
        json!({ "project_id": "web", "agent_name": "bob" }),
    )
    .await?;
    let info = bob
        .ok("get_project_info", json!({ "project_id": "web" }))
        .await?;
    assert_eq!(member_names(&info)?, ["alice", "bob"]);
    Ok(())
}

#[tokio::test]
async fn per_call_working_directory_is_validated() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let client = server.connect(HttpEra::Stateless).await?;

    for directory in ["relative/x", "/a/../b"] {
        let outcome = call(
            &client,
            "create_project",
            json!({ "project_id": "web", "name": "Web", "working_directory": directory }),
        )
        .await?;
        expect_code(outcome, "INVALID_WORKING_DIRECTORY");
    }
    let listed = call(&client, "list_projects", json!({})).await?.success()?;
    assert_eq!(listed["projects"], json!([]));
    Ok(())
}

#[tokio::test]
async fn legacy_session_keeps_identity() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let alice = Session::new(server.connect(HttpEra::Legacy).await?);
    let bob = Session::new(server.connect(HttpEra::Legacy).await?);
    alice.status(&directory_of("alice")).await?;
    bob.status(&directory_of("bob")).await?;

    alice
        .ok(
            "create_project",
            json!({ "project_id": "web", "name": "Web", "created_by": "alice" }),
        )
        .await?;
    bob.fails(
        "join_project",
        json!({ "project_id": "web", "agent_name": "alice" }),
        "AGENT_NAME_TAKEN",
    )
    .await?;
    bob.ok(
        "join_project",
        json!({ "project_id": "web", "agent_name": "bob" }),
    )
    .await?;

    // A stateless client of the same server reads what the sessions wrote.
    let carol = server.agent(&directory_of("carol")).await?;
    let info = carol
        .ok("get_project_info", json!({ "project_id": "web" }))
        .await?;
    assert_eq!(member_names(&info)?, ["alice", "bob"]);
    assert_eq!(info["coordinator"], json!("alice"));
    Ok(())
}

#[tokio::test]
async fn legacy_session_needs_status_first() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let session = Session::new(server.connect(HttpEra::Legacy).await?);
    session
        .fails(
            "create_project",
            json!({ "project_id": "web", "name": "Web" }),
            "SESSION_NOT_INITIALIZED",
        )
        .await?;
    session.status(&directory_of("alice")).await?;
    session
        .ok(
            "create_project",
            json!({ "project_id": "web", "name": "Web" }),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn serve_writes_nothing_to_stdout() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let alice = server.agent(&directory_of("alice")).await?;
    alice
        .ok(
            "create_project",
            json!({ "project_id": "quiet", "name": "Quiet", "created_by": "alice" }),
        )
        .await?;
    alice.close().await?;

    let stdout = server.stop().await?;
    assert_eq!(stdout, "", "brainstorm serve wrote to stdout");
    Ok(())
}
