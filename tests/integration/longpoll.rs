//! Long-polls: progress notifications while waiting, other calls proceeding meanwhile, and a
//! clean stdout on stdio at every log level.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use rmcp::model::{
    CallToolRequestParams, NumberOrString, ProgressNotificationParam, ProgressToken,
    RequestMetaObject,
};
use rmcp::service::NotificationContext;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::timeout;

use crate::common::{
    CALL_LIMIT, Sandbox, ServerLog, ServerOptions, StdioServer, collect_lines, decode_tool_result,
    directory_of, server_command,
};

/// A client that records the progress notifications it receives.
#[derive(Clone, Default)]
struct ProgressRecorder {
    received: Arc<Mutex<Vec<ProgressNotificationParam>>>,
}

impl ClientHandler for ProgressRecorder {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.received.lock().expect("progress list").push(params);
    }
}

fn tool_call(name: &str, arguments: Value) -> CallToolRequestParams {
    let mut params = CallToolRequestParams::new(name.to_owned());
    params.arguments = arguments.as_object().cloned();
    params
}

#[tokio::test]
async fn wait_sends_progress_notifications() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions::default().with_args(&["--progress-interval", "1"]);
    let mut child = server_command(&sandbox, &options, &["stdio"]).spawn()?;
    let stdin = child.stdin.take().context("stdin")?;
    let stdout = child.stdout.take().context("stdout")?;
    collect_lines(
        BufReader::new(child.stderr.take().context("stderr")?),
        ServerLog::default(),
    );
    let recorder = ProgressRecorder::default();
    let client = timeout(CALL_LIMIT, recorder.clone().serve((stdout, stdin))).await??;

    let as_alice = json!({"working_directory": directory_of("alice")});
    let mut create = tool_call(
        "create_project",
        json!({"project_id": "p", "name": "P", "created_by": "alice"}),
    );
    create
        .arguments
        .as_mut()
        .context("arguments")?
        .extend(as_alice.as_object().cloned().context("object")?);
    client.call_tool(create).await?;

    let token = ProgressToken(NumberOrString::String("wait-1".into()));

    let mut wait = tool_call(
        "receive_messages",
        json!({
            "project_id": "p", "agent_name": "alice", "wait": true, "timeout_seconds": 5,
            "working_directory": directory_of("alice"),
        }),
    );
    wait.meta = Some(RequestMetaObject::with_progress_token(token.clone()));
    let result = timeout(CALL_LIMIT, client.call_tool(wait)).await??;
    let outcome = decode_tool_result("receive_messages", &result)?.success()?;

    assert_eq!(outcome["timeout"], json!(true), "{outcome}");
    let received = recorder.received.lock().expect("progress list").clone();
    // rmcp's client replaces the request's progress token with one of its own, so the check
    // is that every notification carries the same token, whichever it is.
    assert!(
        received.len() >= 2,
        "expected a progress notification each second, got {received:?}"
    );
    assert!(
        received
            .iter()
            .all(|p| p.progress_token == received[0].progress_token),
        "{received:?}"
    );
    assert!(
        received
            .windows(2)
            .all(|pair| pair[0].progress < pair[1].progress),
        "{received:?}"
    );
    client.cancel().await?;
    Ok(())
}

#[tokio::test]
async fn other_calls_proceed_during_wait() -> Result<()> {
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
    let bob = directory_of("bob");
    session
        .ok(
            "join_project",
            json!({"project_id": "p", "agent_name": "bob", "working_directory": bob}),
        )
        .await?;

    let waiting = session.call_within(
        "receive_messages",
        json!({"project_id": "p", "agent_name": "alice", "wait": true, "timeout_seconds": 60}),
        Duration::from_secs(90),
    );
    let others = async {
        // Every call below commits or reads while the wait above is pending in the same session.
        let stored = session
            .ok(
                "store_resource",
                json!({"project_id": "p", "resource_id": "notes", "name": "Notes", "agent_name": "alice", "content": "v1"}),
            )
            .await?;
        let read = session
            .ok(
                "get_resource",
                json!({"project_id": "p", "resource_id": "notes", "agent_name": "alice"}),
            )
            .await?;
        session
            .ok(
                "heartbeat",
                json!({"project_id": "p", "agent_name": "alice"}),
            )
            .await?;
        session
            .ok(
                "send_message",
                json!({"project_id": "p", "from_agent": "bob", "to_agent": "alice", "reply_expected": false,
                       "payload": "done", "working_directory": bob}),
            )
            .await?;
        anyhow::Ok((stored, read))
    };
    let (waited, others) = tokio::join!(waiting, others);
    let (stored, read) = others?;
    let waited = waited?.success()?;

    assert_eq!(stored["etag"], read["etag"]);
    assert_eq!(waited["messages"][0]["payload"], json!("done"), "{waited}");
    assert!(waited.get("timeout").is_none(), "{waited}");
    Ok(())
}

#[tokio::test]
async fn stdio_stdout_carries_only_frames() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions::default().with_args(&["--log", "trace"]);
    let mut child = server_command(&sandbox, &options, &["stdio"]).spawn()?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let stdout = child.stdout.take().context("stdout")?;
    let log = ServerLog::default();
    collect_lines(
        BufReader::new(child.stderr.take().context("stderr")?),
        log.clone(),
    );

    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "status", "arguments": {"working_directory": "/tmp/raw"}}}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
            "name": "get_project_info", "arguments": {"project_id": "missing"}}}),
    ];
    let mut lines = BufReader::new(stdout).lines();
    let mut responses = Vec::new();
    for request in &requests {
        stdin.write_all(format!("{request}\n").as_bytes()).await?;
        if request.get("id").is_some() {
            let line = timeout(CALL_LIMIT, lines.next_line())
                .await??
                .context("stdout closed early")?;
            responses.push(line);
        }
    }
    drop(stdin);
    let status = timeout(CALL_LIMIT, child.wait()).await??;
    while let Some(line) = lines.next_line().await? {
        responses.push(line);
    }

    assert!(status.success(), "exit status {status}");
    assert_eq!(responses.len(), 3, "{responses:?}");
    for line in &responses {
        let frame: Value =
            serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        assert_eq!(frame["jsonrpc"], "2.0", "{line}");
    }
    assert!(
        log.text().contains("TRACE") || log.text().contains("DEBUG"),
        "logs go to stderr"
    );
    Ok(())
}
