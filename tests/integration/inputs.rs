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

#[tokio::test]
async fn stdio_answers_unparsable_lines() -> Result<()> {
    use anyhow::Context;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    let sandbox = Sandbox::new()?;
    let mut child =
        crate::common::server_command(&sandbox, &ServerOptions::default(), &["stdio"]).spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}})
        .to_string(),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string(),
        format!(
            r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"status","arguments":{{"working_directory":{deep}}}}}}}"#
        ),
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list""#.to_owned(),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {
            "name": "version", "arguments": {}}})
        .to_string(),
    ];
    let mut replies = Vec::new();
    for request in &requests {
        stdin.write_all(format!("{request}\n").as_bytes()).await?;
        if request.contains("\"id\"") {
            let line = tokio::time::timeout(crate::common::CALL_LIMIT, lines.next_line())
                .await??
                .context("stdout closed early")?;
            replies.push(serde_json::from_str::<serde_json::Value>(&line)?);
        }
    }
    drop(stdin);

    assert_eq!(replies[1]["id"], 2);
    assert_eq!(replies[1]["result"]["isError"], true, "{}", replies[1]);
    assert_eq!(
        replies[1]["result"]["structuredContent"]["code"],
        "JSON_TOO_DEEP"
    );
    assert_eq!(replies[2]["id"], 3);
    assert_eq!(replies[2]["error"]["code"], -32700, "{}", replies[2]);
    assert_eq!(replies[3]["id"], 4);
    assert_eq!(
        replies[3]["result"]["structuredContent"]["name"],
        "brainstorm"
    );
    Ok(())
}
