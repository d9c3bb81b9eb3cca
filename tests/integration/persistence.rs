//! Persistence: what one run of the binary writes, the next run on the same data folder reads.

use anyhow::Result;
use serde_json::{Value, json};

use crate::common::{
    HttpServer, Sandbox, ServerOptions, StdioServer, content_of, directory_of, etag_of,
    member_names, payloads_of, status_entry, unread_count,
};

fn plan() -> Value {
    json!({ "project_id": "keep", "resource_id": "plan", "agent_name": "alice" })
}

#[tokio::test]
async fn state_survives_restarts() -> Result<()> {
    let sandbox = Sandbox::new()?;

    // First run: alice creates the project and a resource, then closes stdin.
    let first =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("alice")).await?;
    first
        .session()
        .ok(
            "create_project",
            json!({ "project_id": "keep", "name": "Keep", "created_by": "alice" }),
        )
        .await?;
    let mut store = plan();
    store["name"] = json!("Plan");
    store["content"] = json!("{\"step\":1}");
    let stored = first.session().ok("store_resource", store).await?;
    let etag = etag_of(&stored)?;
    let exit = first.shutdown().await?;
    assert!(exit.success(), "the first run exited with {exit}");
    assert!(
        sandbox.database_file().is_file(),
        "no database file at {}",
        sandbox.database_file().display()
    );

    // Second run, with the data folder from BRAINSTORM_STORAGE: bob joins and writes to alice.
    let from_env = ServerOptions {
        data_dir_from_env: true,
        ..ServerOptions::default()
    };
    let second = StdioServer::start_as(&sandbox, &from_env, &directory_of("bob")).await?;
    second
        .session()
        .ok(
            "join_project",
            json!({ "project_id": "keep", "agent_name": "bob" }),
        )
        .await?;
    let mut read = plan();
    read["agent_name"] = json!("bob");
    let seen = second.session().ok("get_resource", read).await?;
    assert_eq!(content_of(&seen)?, "{\"step\":1}");
    assert_eq!(etag_of(&seen)?, etag);
    second
        .session()
        .ok(
            "send_message",
            json!({
                "project_id": "keep",
                "from_agent": "bob",
                "to_agent": "alice",
                "reply_expected": true,
                "payload": { "note": "joined after a restart" },
            }),
        )
        .await?;
    let exit = second.shutdown().await?;
    assert!(exit.success(), "the second run exited with {exit}");

    // Third run: alice finds her role, bob's membership, the message and the resource.
    let third = StdioServer::start(&sandbox, &ServerOptions::default()).await?;
    let session = third.session();
    let status = session.status(&directory_of("alice")).await?;
    assert_eq!(status_entry(&status, "keep")?["role"], json!("coordinator"));
    assert_eq!(unread_count(&status, "keep")?, 1);
    let info = session
        .ok("get_project_info", json!({ "project_id": "keep" }))
        .await?;
    assert_eq!(member_names(&info)?, ["alice", "bob"]);
    assert_eq!(info["coordinator"], json!("alice"));
    let inbox = session
        .ok(
            "receive_messages",
            json!({ "project_id": "keep", "agent_name": "alice" }),
        )
        .await?;
    assert_eq!(
        payloads_of(&inbox)?,
        [json!({ "note": "joined after a restart" })]
    );
    let resource = session.ok("get_resource", plan()).await?;
    assert_eq!(etag_of(&resource)?, etag);
    let exit = third.shutdown().await?;
    assert!(exit.success(), "the third run exited with {exit}");
    Ok(())
}

#[tokio::test]
async fn stdio_reads_what_serve_wrote() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let alice = server.agent(&directory_of("alice")).await?;
    alice
        .ok(
            "create_project",
            json!({ "project_id": "keep", "name": "Keep", "created_by": "alice" }),
        )
        .await?;
    let mut store = plan();
    store["name"] = json!("Plan");
    store["content"] = json!("written over HTTP");
    let stored = alice.ok("store_resource", store).await?;
    alice.close().await?;
    // Killing the server is the harshest stop: every committed write must already be durable.
    server.stop().await?;

    let reader =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("alice")).await?;
    let resource = reader.session().ok("get_resource", plan()).await?;
    assert_eq!(content_of(&resource)?, "written over HTTP");
    assert_eq!(etag_of(&resource)?, etag_of(&stored)?);
    let exit = reader.shutdown().await?;
    assert!(exit.success(), "the stdio run exited with {exit}");
    Ok(())
}
