//! Input limits and identity rules: size limits on text and objects, trailing slashes in
//! working directories, coordinator succession, and the database file's permissions.

use anyhow::Result;
use serde_json::json;

use crate::common::{Sandbox, ServerOptions, StdioServer, directory_of};

#[tokio::test]
async fn oversized_text_and_objects_are_rejected() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("alice")).await?;
    let session = server.session();
    let long_name = "n".repeat(257);
    let long_text = "d".repeat(4097);
    let big_object = json!({ "blob": "x".repeat(70_000) });

    let cases = [
        (
            "create_project",
            json!({"project_id": "p", "name": long_name}),
            "name",
        ),
        (
            "create_project",
            json!({"project_id": "p", "name": " "}),
            "name",
        ),
        (
            "create_project",
            json!({"project_id": "p", "name": "P", "description": long_text}),
            "description",
        ),
        (
            "create_project",
            json!({"project_id": "p", "name": "P", "context": big_object}),
            "context",
        ),
    ];
    for (tool, args, argument) in cases {
        let error = session.fails(tool, args, "INVALID_PARAMETER").await?;
        assert_eq!(error["details"]["argument"], argument, "{error}");
    }
    let listed = session.ok("list_projects", json!({})).await?;
    assert_eq!(listed["count"], 0, "no rejected call created a project");

    session
        .ok(
            "create_project",
            json!({"project_id": "p", "name": "P", "created_by": "alice"}),
        )
        .await?;
    let store = |extra: serde_json::Value| {
        let mut args =
            json!({"project_id": "p", "resource_id": "r", "name": "R", "agent_name": "alice"});
        args.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        args
    };
    let error = session
        .fails(
            "store_resource",
            store(json!({"metadata": big_object})),
            "INVALID_PARAMETER",
        )
        .await?;
    assert_eq!(error["details"]["argument"], "metadata");
    let error = session
        .fails(
            "store_resource",
            store(json!({"name": ""})),
            "INVALID_PARAMETER",
        )
        .await?;
    assert_eq!(error["details"]["argument"], "name");
    let trace = json!({"project_id": "p", "from_agent": "alice", "to_agent": "alice", "reply_expected": false,
                       "payload": "hi", "metadata": {"trace_id": "t".repeat(257)}});
    let error = session
        .fails("send_message", trace, "INVALID_PARAMETER")
        .await?;
    assert_eq!(error["details"]["argument"], "metadata.trace_id");
    Ok(())
}

#[tokio::test]
async fn trailing_slash_names_the_same_client() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = StdioServer::start(&sandbox, &ServerOptions::default()).await?;
    let session = server.session();
    let plain = directory_of("alice");

    let without = session
        .ok("status", json!({"working_directory": plain}))
        .await?;
    let with = session
        .ok("status", json!({"working_directory": format!("{plain}/")}))
        .await?;

    assert_eq!(without["client_id"], with["client_id"]);
    assert_eq!(with["working_directory"], plain.as_str());
    Ok(())
}

#[tokio::test]
async fn departing_coordinator_hands_over_role() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("lead")).await?;
    let session = server.session();
    session
        .ok(
            "create_project",
            json!({"project_id": "p", "name": "P", "created_by": "lead"}),
        )
        .await?;
    for name in ["first", "second"] {
        let args =
            json!({"project_id": "p", "agent_name": name, "working_directory": directory_of(name)});
        session.ok("join_project", args).await?;
    }

    let left = session
        .ok(
            "leave_project",
            json!({"project_id": "p", "agent_name": "lead"}),
        )
        .await?;
    let info = session
        .ok("get_project_info", json!({"project_id": "p"}))
        .await?;

    assert_eq!(left["coordinator"], "first", "{left}");
    assert_eq!(info["coordinator"], "first", "{info}");
    let handover = json!({"project_id": "p", "from_agent": "first", "to_agent": "second",
                          "working_directory": directory_of("first")});
    session.ok("handover_coordinator", handover).await?;
    Ok(())
}

#[cfg(unix)]
#[tokio::test]
async fn database_file_is_private() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let sandbox = Sandbox::new()?;
    let server =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("a")).await?;
    server.session().ok("list_projects", json!({})).await?;

    let mode = std::fs::metadata(sandbox.database_file())?
        .permissions()
        .mode();

    assert_eq!(
        mode & 0o077,
        0,
        "database file mode {mode:o} lets other users read it"
    );
    Ok(())
}
