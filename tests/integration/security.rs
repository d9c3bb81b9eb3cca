//! The HTTP endpoint under load and under attack: counter races over both protocol
//! generations, the Host, Origin, token and body-size checks, `/healthz`, the session cap,
//! and graceful shutdown on SIGTERM during a long-poll.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rmcp::model::{CallToolRequestParams, NumberOrString, ProgressToken, RequestMetaObject};
use rmcp::service::NotificationContext;
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::timeout;

use crate::common::{
    CALL_LIMIT, HttpEra, HttpServer, RawResponse, Sandbox, ServerOptions, Session, StdioServer,
    content_of, create_counter, decode_tool_result, directory_of, etag_of, owner_record,
    project_team, read_counter, run_counter_race, send_http,
};

/// Time limit for one HTTP counter race.
const RACE_LIMIT: Duration = Duration::from_secs(180);

/// Concurrent clients in the HTTP counter races.
const RACE_CLIENTS: usize = 16;

/// Increments per client in the HTTP counter races. Ten keeps a race of sixteen contending
/// clients to a few seconds in a debug build, and the contention is what the race tests.
const RACE_INCREMENTS: usize = 10;

/// Maximum time a long-poll may take to return after SIGTERM. The wait requests 60 s,
/// so a result within this limit was ended by the shutdown, not by its own timeout.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(20);

/// Body size limit of the guarded server, in bytes.
const MAX_BODY_SIZE: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stateless_http_race_loses_no_increment() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let names: Vec<String> = (0..RACE_CLIENTS)
        .map(|i| format!("stateless-{i}"))
        .collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let sessions = project_team(&server, "race", &name_refs).await?;
    create_counter(&sessions[0], "race", &names[0]).await?;

    let racers = sessions.into_iter().zip(names.iter().cloned()).collect();
    let (tallies, sessions) = run_counter_race(racers, "race", RACE_INCREMENTS, RACE_LIMIT).await?;

    let stored: usize = tallies.iter().map(|tally| tally.etags.len()).sum();
    let mismatches: usize = tallies.iter().map(|tally| tally.mismatches).sum();
    assert_eq!(stored, RACE_CLIENTS * RACE_INCREMENTS);
    assert!(
        mismatches >= 1,
        "no write hit ETAG_MISMATCH, so the clients never raced"
    );
    let (value, _) = read_counter(&sessions[1], "race", &names[1]).await?;
    assert_eq!(value, (RACE_CLIENTS * RACE_INCREMENTS) as u64);
    Ok(())
}

/// Connects one 2025-11-25 session per name, each with its own `status`, creates
/// `project_id` with `names[0]` as creator and joins the others.
async fn legacy_team(
    server: &HttpServer,
    project_id: &str,
    names: &[String],
) -> Result<Vec<Session>> {
    let mut sessions = Vec::with_capacity(names.len());
    for name in names {
        let session = Session::new(server.connect(HttpEra::Legacy).await?);
        session.status(&directory_of(name)).await?;
        sessions.push(session);
    }
    sessions[0]
        .ok(
            "create_project",
            json!({ "project_id": project_id, "name": "Race", "created_by": names[0] }),
        )
        .await?;
    for (session, name) in sessions.iter().zip(names).skip(1) {
        session
            .ok(
                "join_project",
                json!({ "project_id": project_id, "agent_name": name }),
            )
            .await?;
    }
    Ok(sessions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_http_race_loses_no_increment() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let names: Vec<String> = (0..RACE_CLIENTS).map(|i| format!("session-{i}")).collect();
    let sessions = legacy_team(&server, "race", &names).await?;
    create_counter(&sessions[0], "race", &names[0]).await?;

    let racers = sessions.into_iter().zip(names.iter().cloned()).collect();
    let (tallies, sessions) = run_counter_race(racers, "race", RACE_INCREMENTS, RACE_LIMIT).await?;

    let stored: usize = tallies.iter().map(|tally| tally.etags.len()).sum();
    let mismatches: usize = tallies.iter().map(|tally| tally.mismatches).sum();
    assert_eq!(stored, RACE_CLIENTS * RACE_INCREMENTS);
    assert!(
        mismatches >= 1,
        "no write hit ETAG_MISMATCH, so the clients never raced"
    );
    let (value, _) = read_counter(&sessions[1], "race", &names[1]).await?;
    assert_eq!(value, (RACE_CLIENTS * RACE_INCREMENTS) as u64);
    Ok(())
}

/// Headers and body of one raw MCP request.
struct RawCall {
    headers: Vec<(&'static str, String)>,
    body: String,
}

/// Builds a protocol 2026-07-28 `tools/call` request. That protocol has no sessions, so one
/// HTTP request carries the whole call: the protocol version and client capabilities go in
/// `_meta`, and the method and tool name are repeated in headers.
fn stateless_call(tool: &str, arguments: Value) -> RawCall {
    let body = json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": arguments,
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    });
    let headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("Accept", "application/json, text/event-stream".to_owned()),
        ("MCP-Protocol-Version", "2026-07-28".to_owned()),
        ("Mcp-Method", "tools/call".to_owned()),
        ("Mcp-Name", tool.to_owned()),
    ];
    RawCall {
        headers,
        body: body.to_string(),
    }
}

/// Sends `call` to the server's `/mcp` with `extra` headers added.
async fn send_call(
    server: &HttpServer,
    call: &RawCall,
    extra: &[(&str, &str)],
) -> Result<RawResponse> {
    let mut headers: Vec<(&str, &str)> = call
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect();
    headers.extend_from_slice(extra);
    send_http(
        server.port(),
        "POST",
        "/mcp",
        &headers,
        call.body.as_bytes(),
    )
    .await
}

/// What the guarded tests compare before and after rejected requests.
#[derive(Debug)]
struct Snapshot {
    projects: Value,
    content: String,
    etag: String,
}

async fn snapshot(session: &Session) -> Result<Snapshot> {
    let projects = session.ok("list_projects", json!({})).await?;
    let doc = session
        .ok(
            "get_resource",
            json!({ "project_id": "guarded", "resource_id": "doc", "agent_name": "alice" }),
        )
        .await?;
    Ok(Snapshot {
        projects,
        content: content_of(&doc)?,
        etag: etag_of(&doc)?,
    })
}

/// Reads the token `serve` created in the data folder and checks its format and mode.
fn read_folder_token(sandbox: &Sandbox) -> Result<String> {
    let path = sandbox.data_dir().join("token");
    let token = std::fs::read_to_string(&path)
        .with_context(|| format!("failed to read {}", path.display()))?
        .trim()
        .to_owned();
    assert_eq!(token.len(), 64, "token {token:?} is not 64 characters");
    assert!(
        token.chars().all(|c| c.is_ascii_hexdigit()),
        "token {token:?} is not hex"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "token file mode is {mode:o}");
    }
    Ok(token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_requests_change_nothing() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let max_body_size = MAX_BODY_SIZE.to_string();
    let options =
        ServerOptions::default().with_args(&["--require-token", "--max-body-size", &max_body_size]);
    let server = HttpServer::start(&sandbox, &options).await?;
    let token = read_folder_token(&sandbox)?;
    let bearer = format!("Bearer {token}");
    let alice_directory = directory_of("alice");
    let alice = Session::with_identity(
        server
            .connect_with_token(HttpEra::Stateless, Some(&token))
            .await?,
        &alice_directory,
    );
    alice.status(&alice_directory).await?;
    alice
        .ok(
            "create_project",
            json!({ "project_id": "guarded", "name": "Guarded", "created_by": "alice" }),
        )
        .await?;
    alice
        .ok(
            "store_resource",
            json!({
                "project_id": "guarded",
                "resource_id": "doc",
                "name": "Doc",
                "agent_name": "alice",
                "content": "original",
            }),
        )
        .await?;
    let before = snapshot(&alice).await?;

    // Each rejected request is a write that would succeed if it got through, as the last
    // request of this test shows.
    let tamper = |content: &str| {
        stateless_call(
            "store_resource",
            json!({
                "project_id": "guarded",
                "resource_id": "doc",
                "name": "Doc",
                "agent_name": "alice",
                "content": content,
                "etag": "*",
                "working_directory": alice_directory,
            }),
        )
    };
    let small = tamper("tampered");

    let foreign_origin = send_call(
        &server,
        &small,
        &[
            ("Authorization", &bearer),
            ("Origin", "http://evil.example"),
        ],
    )
    .await?;
    assert_eq!(foreign_origin.status, 403, "{foreign_origin:?}");

    let foreign_host = format!("evil.example:{}", server.port());
    let foreign_host = send_call(
        &server,
        &small,
        &[("Authorization", &bearer), ("Host", &foreign_host)],
    )
    .await?;
    assert_eq!(foreign_host.status, 403, "{foreign_host:?}");

    let no_token = send_call(&server, &small, &[]).await?;
    assert_eq!(no_token.status, 401, "{no_token:?}");
    assert_eq!(no_token.header("WWW-Authenticate"), Some("Bearer"));

    let wrong_bearer = format!("Bearer {}", "0".repeat(64));
    let wrong_token = send_call(&server, &small, &[("Authorization", &wrong_bearer)]).await?;
    assert_eq!(wrong_token.status, 401, "{wrong_token:?}");
    assert_eq!(wrong_token.header("WWW-Authenticate"), Some("Bearer"));

    let large = tamper(&"x".repeat(10 * 1024));
    assert!(large.body.len() > MAX_BODY_SIZE);
    let too_large = send_call(&server, &large, &[("Authorization", &bearer)]).await?;
    assert_eq!(too_large.status, 413, "{too_large:?}");

    let after_rejections = snapshot(&alice).await?;
    assert_eq!(after_rejections.projects, before.projects);
    assert_eq!(after_rejections.content, before.content);
    assert_eq!(after_rejections.etag, before.etag);

    let accepted = send_call(&server, &small, &[("Authorization", &bearer)]).await?;
    assert_eq!(accepted.status, 200, "{accepted:?}");
    let after_accepted = snapshot(&alice).await?;
    assert_eq!(after_accepted.content, "tampered");
    assert_ne!(after_accepted.etag, before.etag);
    Ok(())
}

#[tokio::test]
async fn unreadable_bodies_get_json_rpc_errors() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let call = stateless_call("version", json!({}));
    let cut_short = &call.body[..call.body.len() / 2];
    // (body, JSON-RPC error code, id in the error)
    let cases = [
        ("not json", -32700, Value::Null),
        (cut_short, -32700, Value::Null),
        (r#"{"hello": 1}"#, -32600, Value::Null),
        (
            r#"{"jsonrpc": "2.0", "id": 7, "method": 5}"#,
            -32600,
            json!(7),
        ),
        (
            r#"[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]"#,
            -32600,
            Value::Null,
        ),
    ];
    for (body, code, id) in cases {
        let call = RawCall {
            headers: call.headers.clone(),
            body: body.to_owned(),
        };
        let response = send_call(&server, &call, &[]).await?;
        assert_eq!(response.status, 400, "{body:?}: {response:?}");
        let error: Value = serde_json::from_str(&response.body)
            .with_context(|| format!("the response to {body:?} is not JSON"))?;
        assert_eq!(error["jsonrpc"], "2.0", "{body:?}");
        let id = if body.contains(r#""id": 7"#) {
            json!(7)
        } else {
            Value::Null
        };
        assert_eq!(error["id"], id, "{body:?}");
        assert_eq!(error["error"]["code"], code, "{body:?}");
    }

    // A body declared as another media type is left to rmcp, which rejects it with 415.
    let mut headers = call.headers.clone();
    for (name, value) in &mut headers {
        if *name == "Content-Type" {
            *value = "text/plain".to_owned();
        }
    }
    let plain_text = RawCall {
        headers,
        body: call.body.clone(),
    };
    let plain_text = send_call(&server, &plain_text, &[]).await?;
    assert_eq!(plain_text.status, 415, "{plain_text:?}");

    let version = send_call(&server, &call, &[]).await?;
    assert_eq!(version.status, 200, "{version:?}");
    Ok(())
}

/// Sends `GET /healthz` with `headers`.
async fn get_healthz(server: &HttpServer, headers: &[(&str, &str)]) -> Result<RawResponse> {
    send_http(server.port(), "GET", "/healthz", headers, b"").await
}

#[tokio::test]
async fn healthz_reports_name_and_version() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let response = get_healthz(&server, &[]).await?;
    assert_eq!(response.status, 200, "{response:?}");
    let body: Value = serde_json::from_str(&response.body)
        .with_context(|| format!("/healthz returned no JSON: {response:?}"))?;
    assert_eq!(body["status"], json!("ok"));
    assert_eq!(body["name"], json!("brainstorm"));
    assert_eq!(body["version"], json!(env!("CARGO_PKG_VERSION")));
    Ok(())
}

#[tokio::test]
async fn healthz_needs_no_token() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions::default().with_args(&["--require-token"]);
    let server = HttpServer::start(&sandbox, &options).await?;

    let health = get_healthz(&server, &[]).await?;
    assert_eq!(health.status, 200, "{health:?}");
    let body: Value = serde_json::from_str(&health.body)
        .with_context(|| format!("/healthz returned no JSON: {health:?}"))?;
    assert_eq!(body["status"], json!("ok"));

    // The same server does require the token on /mcp.
    let call = stateless_call("version", json!({}));
    let mcp = send_call(&server, &call, &[]).await?;
    assert_eq!(mcp.status, 401, "{mcp:?}");
    Ok(())
}

#[tokio::test]
async fn healthz_rejects_foreign_host() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions::default().with_args(&["--require-token"]);
    let server = HttpServer::start(&sandbox, &options).await?;
    let response = get_healthz(&server, &[("Host", "evil.example")]).await?;
    assert_eq!(response.status, 403, "{response:?}");
    Ok(())
}

/// A client that counts the progress notifications it receives.
#[derive(Clone)]
struct ProgressCounter {
    received: std::sync::Arc<watch::Sender<usize>>,
}

impl ProgressCounter {
    fn new() -> (Self, watch::Receiver<usize>) {
        let (sender, receiver) = watch::channel(0);
        let counter = ProgressCounter {
            received: std::sync::Arc::new(sender),
        };
        (counter, receiver)
    }
}

impl ClientHandler for ProgressCounter {
    async fn on_progress(
        &self,
        _params: rmcp::model::ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.received.send_modify(|count| *count += 1);
    }
}

/// Returns a `receive_messages` call for `alice` in project `quiet` that waits 60 s and
/// requests progress notifications.
fn long_wait() -> CallToolRequestParams {
    let mut params = CallToolRequestParams::new("receive_messages");
    params.arguments = json!({
        "project_id": "quiet",
        "agent_name": "alice",
        "wait": true,
        "timeout_seconds": 60,
        "working_directory": directory_of("alice"),
    })
    .as_object()
    .cloned();
    params.meta = Some(RequestMetaObject::with_progress_token(ProgressToken(
        NumberOrString::String("shutdown-wait".into()),
    )));
    params
}

/// Checks that `result` is the normal timed-out result of `receive_messages`.
fn assert_timed_out(result: &Value) {
    assert_eq!(result["timeout"], json!(true), "{result}");
    assert_eq!(result["retry"], json!(true), "{result}");
    assert!(result["waited_ms"].is_u64(), "no waited_ms in {result}");
    assert_eq!(result["messages"], json!([]), "{result}");
    assert_eq!(result["count"], json!(0), "{result}");
}

/// Starts `serve`, lets a client of protocol generation `era` wait in `receive_messages` for
/// 60 s, sends SIGTERM, and checks that the wait returns its normal timed-out result at once
/// and that the server exits with status 0 and removes `owner.json`.
async fn check_http_long_poll_through_sigterm(era: HttpEra) -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions::default().with_args(&["--progress-interval", "1"]);
    let mut server = HttpServer::start(&sandbox, &options).await?;
    let alice = server.agent(&directory_of("alice")).await?;
    alice
        .ok(
            "create_project",
            json!({ "project_id": "quiet", "name": "Quiet", "created_by": "alice" }),
        )
        .await?;
    let (counter, mut progress) = ProgressCounter::new();
    let waiter = server.connect_handler(era, None, counter).await?;

    let wait = timeout(CALL_LIMIT + SHUTDOWN_LIMIT, waiter.call_tool(long_wait()));
    let stop = async {
        // A progress notification shows that the server is inside the wait.
        timeout(CALL_LIMIT, progress.wait_for(|count| *count >= 1))
            .await
            .context("no progress notification arrived during the wait")??;
        server.terminate()?;
        Ok::<_, anyhow::Error>(Instant::now())
    };
    let (waited, stopped_at) = tokio::join!(wait, stop);
    let stopped_at = stopped_at?;
    let result = waited
        .with_context(|| {
            format!(
                "the long-poll did not return after SIGTERM\nserver log:\n{}",
                server.log()
            )
        })?
        .with_context(|| {
            format!(
                "the long-poll failed at the protocol level\nserver log:\n{}",
                server.log()
            )
        })?;
    let returned_after = stopped_at.elapsed();
    let result = decode_tool_result("receive_messages", &result)?.success()?;
    assert_timed_out(&result);
    assert!(
        returned_after < SHUTDOWN_LIMIT,
        "the long-poll returned {returned_after:?} after SIGTERM"
    );

    let exit = server.wait_exit(SHUTDOWN_LIMIT).await?;
    assert_eq!(exit.code(), Some(0), "serve exited with {exit}");
    assert!(
        owner_record(&sandbox)?.is_none(),
        "serve left owner.json behind after a graceful exit"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_stateless_long_poll_normally() -> Result<()> {
    check_http_long_poll_through_sigterm(HttpEra::Stateless).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_session_long_poll_normally() -> Result<()> {
    check_http_long_poll_through_sigterm(HttpEra::Legacy).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_stdio_long_poll_normally() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions::default().with_args(&["--progress-interval", "1"]);
    let (counter, mut progress) = ProgressCounter::new();
    let (client, mut process) = StdioServer::spawn(&sandbox, &options)?
        .connect_handler(counter)
        .await?;
    let mut create = CallToolRequestParams::new("create_project");
    create.arguments = json!({
        "project_id": "quiet",
        "name": "Quiet",
        "created_by": "alice",
        "working_directory": directory_of("alice"),
    })
    .as_object()
    .cloned();
    let created = timeout(CALL_LIMIT, client.call_tool(create)).await??;
    decode_tool_result("create_project", &created)?.success()?;

    let wait = timeout(CALL_LIMIT + SHUTDOWN_LIMIT, client.call_tool(long_wait()));
    let stop = async {
        // A progress notification shows that the server is inside the wait.
        timeout(CALL_LIMIT, progress.wait_for(|count| *count >= 1))
            .await
            .context("no progress notification arrived during the wait")??;
        process.terminate()?;
        Ok::<_, anyhow::Error>(Instant::now())
    };
    let (waited, stopped_at) = tokio::join!(wait, stop);
    let stopped_at = stopped_at?;
    let result = waited
        .with_context(|| {
            format!(
                "the long-poll did not return after SIGTERM\nserver log:\n{}",
                process.log()
            )
        })?
        .with_context(|| {
            format!(
                "the long-poll failed at the protocol level\nserver log:\n{}",
                process.log()
            )
        })?;
    let returned_after = stopped_at.elapsed();
    let result = decode_tool_result("receive_messages", &result)?.success()?;
    assert_timed_out(&result);
    assert!(
        returned_after < SHUTDOWN_LIMIT,
        "the long-poll returned {returned_after:?} after SIGTERM"
    );

    let exit = process.wait_exit(SHUTDOWN_LIMIT).await?;
    assert_eq!(exit.code(), Some(0), "brainstorm stdio exited with {exit}");
    assert!(
        owner_record(&sandbox)?.is_none(),
        "the stdio owner left owner.json behind after a graceful exit"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_cap_spares_stateless_clients() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions::default().with_args(&["--max-sessions", "2"]);
    let server = HttpServer::start(&sandbox, &options).await?;
    let first = Session::new(server.connect(HttpEra::Legacy).await?);
    let _second = Session::new(server.connect(HttpEra::Legacy).await?);

    let third = server.connect(HttpEra::Legacy).await;
    let refusal = match third {
        Ok(_) => panic!("a third session was accepted with --max-sessions 2"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        refusal.contains("503"),
        "the third session failed for another reason than HTTP 503: {refusal}"
    );
    // rmcp serves every path under /mcp, so the cap covers them too.
    let initialize = json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": { "name": "raw", "version": "1" },
        },
    })
    .to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    for path in ["/mcp/", "/mcp/other"] {
        let response =
            send_http(server.port(), "POST", path, &headers, initialize.as_bytes()).await?;
        assert_eq!(response.status, 503, "{path}: {response:?}");
    }

    let stateless = server.agent(&directory_of("alice")).await?;
    stateless
        .ok(
            "create_project",
            json!({ "project_id": "open", "name": "Open", "created_by": "alice" }),
        )
        .await?;
    first.status(&directory_of("bob")).await?;
    let listed = first.ok("list_projects", json!({})).await?;
    assert_eq!(listed["count"], json!(1), "{listed}");
    Ok(())
}

#[tokio::test]
async fn admin_routes_need_the_token() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let destination = sandbox.root().join("stolen.redb");
    let body = json!({ "path": destination }).to_string();
    let json_type = [("Content-Type", "application/json")];

    let backup = send_http(
        server.port(),
        "POST",
        "/admin/backup",
        &json_type,
        body.as_bytes(),
    )
    .await?;
    let stats = send_http(server.port(), "GET", "/admin/stats", &[], b"").await?;

    // A loopback server needs no token for MCP, but its admin routes always do.
    assert_eq!(backup.status, 401, "{}", backup.body);
    assert_eq!(stats.status, 401, "{}", stats.body);
    assert!(!destination.exists(), "a rejected backup wrote a file");
    Ok(())
}
