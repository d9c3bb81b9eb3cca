//! Test harness: runs the real `brainstorm` binary in a private sandbox and talks to it with
//! rmcp's MCP client, over stdio or streamable HTTP.
//!
//! Every server process is spawned with `kill_on_drop`, so a test that fails or panics still
//! ends the process it started, through its own child handle.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use rmcp::model::{CallToolRequestParams, CallToolResult, ProtocolVersion};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Time limit for one ordinary tool call, generous for a debug build on a loaded machine.
pub const CALL_LIMIT: Duration = Duration::from_secs(30);

/// Time limit for a server to start and for a client to finish its MCP handshake.
const STARTUP_LIMIT: Duration = Duration::from_secs(30);

/// Time limit for a server process to exit once its client has closed stdin.
const EXIT_LIMIT: Duration = Duration::from_secs(10);

/// Tools that act as an agent. Over stateless HTTP they get `working_directory` on every call.
const AGENT_TOOLS: &[&str] = &[
    "create_project",
    "join_project",
    "send_message",
    "receive_messages",
    "store_resource",
    "get_resource",
    "list_resources",
    "delete_resource",
    "heartbeat",
    "handover_coordinator",
    "delete_project",
    "leave_project",
    "archive_project",
];

/// An MCP client connection to a server under test.
pub type Client = RunningService<RoleClient, ()>;

/// Environment variables of the server that the tests set explicitly or not at all.
const SERVER_ENV: &[&str] = &[
    "BRAINSTORM_STORAGE",
    "BRAINSTORM_MAX_PAYLOAD_SIZE",
    "BRAINSTORM_CLIENT_ID",
    "BRAINSTORM_LOG",
    "RUST_LOG",
];

/// A private temporary folder with a home directory and a data folder for one server.
pub struct Sandbox {
    root: TempDir,
}

impl Sandbox {
    /// Creates the sandbox with empty `home/` and `data/` folders.
    pub fn new() -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("brainstorm-test-")
            .tempdir()
            .context("failed to create the sandbox folder")?;
        let sandbox = Sandbox { root };
        std::fs::create_dir(sandbox.home()).context("failed to create the home folder")?;
        std::fs::create_dir(sandbox.data_dir()).context("failed to create the data folder")?;
        Ok(sandbox)
    }

    /// Returns the sandbox folder, resolved through symlinks so that it matches the paths the
    /// server compares after canonicalizing them.
    pub fn root(&self) -> PathBuf {
        self.root
            .path()
            .canonicalize()
            .unwrap_or_else(|_| self.root.path().to_path_buf())
    }

    /// Returns the folder the server gets as `HOME`.
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }

    /// Returns the folder the server keeps its database in.
    pub fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }

    /// Returns the path of the database file inside the data folder.
    pub fn database_file(&self) -> PathBuf {
        self.data_dir().join("brainstorm.redb")
    }
}

/// Server settings a test may change. Everything else stays at the server's defaults.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Value of `--message-ttl` in seconds.
    pub message_ttl_secs: Option<u64>,
    /// Value of `--max-payload-size` in bytes.
    pub max_payload_size: Option<u64>,
    /// Value of `--max-waiters`: concurrent long-polls allowed per waited-on object.
    pub max_waiters: Option<u64>,
    /// Passes the data folder as `BRAINSTORM_STORAGE` instead of `--data-dir`.
    pub data_dir_from_env: bool,
    /// Extra environment variables for the server process.
    pub env: Vec<(String, String)>,
    /// Extra command-line arguments, after the mode and the data folder.
    pub args: Vec<String>,
}

impl ServerOptions {
    /// Adds one environment variable for the server process.
    pub fn with_env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds command-line arguments for the server process.
    pub fn with_args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|arg| (*arg).to_owned()));
        self
    }
}

/// Builds the server command: `brainstorm <mode_args> ...` with `HOME` in the sandbox and
/// every brainstorm setting unset unless the options give it.
pub fn server_command(sandbox: &Sandbox, options: &ServerOptions, mode_args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_brainstorm"));
    command.args(mode_args);
    for name in SERVER_ENV {
        command.env_remove(name);
    }
    command.env("HOME", sandbox.home());
    if options.data_dir_from_env {
        command.env("BRAINSTORM_STORAGE", sandbox.data_dir());
    } else {
        command.arg("--data-dir").arg(sandbox.data_dir());
    }
    if let Some(ttl) = options.message_ttl_secs {
        command.arg("--message-ttl").arg(ttl.to_string());
    }
    if let Some(size) = options.max_payload_size {
        command.arg("--max-payload-size").arg(size.to_string());
    }
    if let Some(count) = options.max_waiters {
        command.arg("--max-waiters").arg(count.to_string());
    }
    for (name, value) in &options.env {
        command.env(name, value);
    }
    command.args(&options.args);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// Text a server process wrote to one of its output streams, collected line by line.
#[derive(Debug, Clone, Default)]
pub struct ServerLog(Arc<Mutex<String>>);

impl ServerLog {
    fn push_line(&self, line: &str) {
        let mut text = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        text.push_str(line);
        text.push('\n');
    }

    /// Returns everything collected so far.
    pub fn text(&self) -> String {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Copies every line of `stream` into `log` until the stream ends.
pub fn collect_lines<R>(stream: BufReader<R>, log: ServerLog) -> JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = stream.lines();
        while let Ok(Some(line)) = lines.next_line().await {
            log.push_line(&line);
        }
    })
}

/// The outcome of one tool call that reached the tool: its JSON object, or its error object.
#[derive(Debug, Clone)]
pub enum ToolOutcome {
    /// `isError` was absent or false.
    Success(Value),
    /// `isError` was true. The value is `{"error", "code", "details"}` when the server follows
    /// the error shape, or `{"error": <text>}` when the text was not JSON.
    Failure(Value),
}

impl ToolOutcome {
    /// Returns the error code of a failure.
    pub fn code(&self) -> Option<&str> {
        match self {
            ToolOutcome::Success(_) => None,
            ToolOutcome::Failure(body) => body.get("code").and_then(Value::as_str),
        }
    }

    /// Returns the JSON of a success, or an error that shows the failure body.
    pub fn success(self) -> Result<Value> {
        match self {
            ToolOutcome::Success(value) => Ok(value),
            ToolOutcome::Failure(body) => Err(anyhow!("tool call failed: {body}")),
        }
    }
}

/// Asserts that the call failed with `code` and returns the error object.
#[track_caller]
pub fn expect_code(outcome: ToolOutcome, code: &str) -> Value {
    match outcome {
        ToolOutcome::Success(value) => {
            panic!("expected error {code}, but the call succeeded with {value}")
        }
        ToolOutcome::Failure(body) => {
            assert_eq!(
                body.get("code").and_then(Value::as_str),
                Some(code),
                "unexpected error object: {body}"
            );
            body
        }
    }
}

/// Turns a `tools/call` result into a [`ToolOutcome`], reading the JSON from its text item.
pub fn decode_tool_result(tool: &str, result: &CallToolResult) -> Result<ToolOutcome> {
    let text = result
        .content
        .iter()
        .find_map(|block| block.as_text())
        .map(|block| block.text.clone())
        .with_context(|| format!("{tool} returned no text content: {result:?}"))?;
    let parsed = serde_json::from_str::<Value>(&text);
    if result.is_error == Some(true) {
        return Ok(ToolOutcome::Failure(
            parsed.unwrap_or_else(|_| json!({ "error": text })),
        ));
    }
    let value = parsed.with_context(|| format!("{tool} returned text that is not JSON: {text}"))?;
    Ok(ToolOutcome::Success(value))
}

/// Calls one tool and returns its outcome. A protocol error, a transport error or no result
/// within `limit` is an `Err`.
pub async fn call_within(
    client: &Client,
    tool: &str,
    args: Value,
    limit: Duration,
) -> Result<ToolOutcome> {
    let Value::Object(arguments) = args else {
        bail!("arguments for {tool} must be a JSON object, got {args}");
    };
    let request = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
    let result = timeout(limit, client.call_tool(request))
        .await
        .with_context(|| format!("{tool} returned no result within {limit:?}"))?
        .with_context(|| format!("{tool} failed at the protocol level"))?;
    decode_tool_result(tool, &result)
}

/// Calls one tool with the default time limit.
pub async fn call(client: &Client, tool: &str, args: Value) -> Result<ToolOutcome> {
    call_within(client, tool, args, CALL_LIMIT).await
}

/// One MCP connection, optionally bound to a working directory that is added to every agent
/// tool call (needed over stateless HTTP, where no session carries the identity).
pub struct Session {
    client: Client,
    working_directory: Option<String>,
}

impl Session {
    /// Wraps a connection that adds no identity to its calls.
    pub fn new(client: Client) -> Self {
        Session {
            client,
            working_directory: None,
        }
    }

    /// Wraps a connection that adds `working_directory` to every agent tool call which does
    /// not already carry one.
    pub fn with_identity(client: Client, working_directory: &str) -> Self {
        Session {
            client,
            working_directory: Some(working_directory.to_owned()),
        }
    }

    /// Returns the underlying MCP client, for prompts and raw calls.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Calls a tool within `limit`, adding the bound working directory where it applies.
    pub async fn call_within(
        &self,
        tool: &str,
        mut args: Value,
        limit: Duration,
    ) -> Result<ToolOutcome> {
        if let (Some(directory), Value::Object(map)) = (&self.working_directory, &mut args)
            && AGENT_TOOLS.contains(&tool)
            && !map.contains_key("working_directory")
        {
            map.insert("working_directory".to_owned(), json!(directory));
        }
        call_within(&self.client, tool, args, limit).await
    }

    /// Calls a tool with the default time limit.
    pub async fn call(&self, tool: &str, args: Value) -> Result<ToolOutcome> {
        self.call_within(tool, args, CALL_LIMIT).await
    }

    /// Calls a tool that must succeed and returns its JSON.
    pub async fn ok(&self, tool: &str, args: Value) -> Result<Value> {
        let request = args.to_string();
        self.call(tool, args)
            .await?
            .success()
            .with_context(|| format!("{tool} {request}"))
    }

    /// Calls a tool that must fail with `code` and returns the error object.
    pub async fn fails(&self, tool: &str, args: Value, code: &str) -> Result<Value> {
        let request = args.to_string();
        let outcome = self.call(tool, args).await?;
        match outcome {
            ToolOutcome::Success(value) => {
                panic!("{tool} {request}: expected error {code}, but it succeeded with {value}")
            }
            ToolOutcome::Failure(body) => {
                assert_eq!(
                    body.get("code").and_then(Value::as_str),
                    Some(code),
                    "{tool} {request}: unexpected error object {body}"
                );
                Ok(body)
            }
        }
    }

    /// Calls `status` for `working_directory` and returns its JSON.
    pub async fn status(&self, working_directory: &str) -> Result<Value> {
        self.ok("status", json!({ "working_directory": working_directory }))
            .await
    }

    /// Ends the connection: closes stdin of a stdio server, or the HTTP session.
    pub async fn close(self) -> Result<()> {
        timeout(STARTUP_LIMIT, self.client.cancel())
            .await
            .context("timed out closing the client")?
            .context("the client task failed")?;
        Ok(())
    }
}

/// A `brainstorm stdio` process with the one client session it serves.
pub struct StdioServer {
    session: Session,
    child: Child,
    log: ServerLog,
}

impl StdioServer {
    /// Starts `brainstorm stdio` and completes the MCP handshake. No `status` call is made.
    pub async fn start(sandbox: &Sandbox, options: &ServerOptions) -> Result<Self> {
        let mut child = server_command(sandbox, options, &["stdio"])
            .spawn()
            .context("failed to start brainstorm stdio")?;
        let stdin = child.stdin.take().context("server stdin is not piped")?;
        let stdout = child.stdout.take().context("server stdout is not piped")?;
        let stderr = child.stderr.take().context("server stderr is not piped")?;
        let log = ServerLog::default();
        collect_lines(BufReader::new(stderr), log.clone());

        let client = match timeout(STARTUP_LIMIT, ().serve((stdout, stdin))).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => {
                bail!(
                    "MCP handshake over stdio failed: {error}\nserver log:\n{}",
                    log.text()
                )
            }
            Err(_) => bail!(
                "MCP handshake over stdio timed out\nserver log:\n{}",
                log.text()
            ),
        };
        Ok(StdioServer {
            session: Session::new(client),
            child,
            log,
        })
    }

    /// Starts the server and calls `status` for `working_directory`.
    pub async fn start_as(
        sandbox: &Sandbox,
        options: &ServerOptions,
        working_directory: &str,
    ) -> Result<Self> {
        let server = StdioServer::start(sandbox, options).await?;
        server.session.status(working_directory).await?;
        Ok(server)
    }

    /// Returns the session this process serves.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Closes the client side (which closes the server's stdin) and waits for the server to
    /// exit on its own. If it is still running after `EXIT_LIMIT`, kills it and returns an
    /// error.
    pub async fn shutdown(self) -> Result<ExitStatus> {
        let StdioServer {
            session,
            mut child,
            log,
        } = self;
        session.close().await?;
        match timeout(EXIT_LIMIT, child.wait()).await {
            Ok(status) => status.context("failed to wait for the stdio server"),
            Err(_) => {
                child
                    .kill()
                    .await
                    .context("failed to kill the stdio server")?;
                bail!(
                    "the stdio server did not exit within {EXIT_LIMIT:?} after stdin closed\n\
                     server log:\n{}",
                    log.text()
                )
            }
        }
    }
}

/// The MCP protocol generation an HTTP client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpEra {
    /// Protocol 2026-07-28 with `server/discover`: no sessions, so every request is independent.
    Stateless,
    /// Protocol 2025-11-25 with `initialize`: an `Mcp-Session-Id` session per connection.
    Legacy,
}

/// A `brainstorm serve` process listening on a loopback port.
pub struct HttpServer {
    child: Child,
    port: u16,
    log: ServerLog,
    stdout_log: ServerLog,
    stdout_task: JoinHandle<()>,
}

/// Returns the port of a "listening on 127.0.0.1:PORT" or "addr=127.0.0.1:PORT" log line.
fn parse_listen_port(line: &str) -> Option<u16> {
    if !line.contains("listening on") && !line.contains("addr=") {
        return None;
    }
    let (_, tail) = line.rsplit_once("127.0.0.1:")?;
    let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<u16>().ok().filter(|port| *port != 0)
}

impl HttpServer {
    /// Starts `brainstorm serve --listen 127.0.0.1:0` and reads the bound port from its log.
    pub async fn start(sandbox: &Sandbox, options: &ServerOptions) -> Result<Self> {
        let mut child = server_command(sandbox, options, &["serve", "--listen", "127.0.0.1:0"])
            .spawn()
            .context("failed to start brainstorm serve")?;
        let stdout = child.stdout.take().context("server stdout is not piped")?;
        let stderr = child.stderr.take().context("server stderr is not piped")?;
        let stdout_log = ServerLog::default();
        let stdout_task = collect_lines(BufReader::new(stdout), stdout_log.clone());

        let log = ServerLog::default();
        let mut lines = BufReader::new(stderr).lines();
        let find_port = async {
            while let Some(line) = lines.next_line().await? {
                log.push_line(&line);
                if let Some(port) = parse_listen_port(&line) {
                    return Ok(Some(port));
                }
            }
            Ok::<_, std::io::Error>(None)
        };
        let port = match timeout(STARTUP_LIMIT, find_port).await {
            Ok(Ok(Some(port))) => port,
            Ok(Ok(None)) => bail!(
                "brainstorm serve closed stderr without a listening line\nserver log:\n{}",
                log.text()
            ),
            Ok(Err(error)) => bail!("failed to read the server log: {error}"),
            Err(_) => bail!(
                "brainstorm serve logged no listening line within {STARTUP_LIMIT:?}\n\
                 server log:\n{}",
                log.text()
            ),
        };
        collect_lines(lines.into_inner(), log.clone());
        Ok(HttpServer {
            child,
            port,
            log,
            stdout_log,
            stdout_task,
        })
    }

    /// Returns the MCP endpoint URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// Returns what the server has written to stderr so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Opens a new MCP connection of the given protocol generation.
    pub async fn connect(&self, era: HttpEra) -> Result<Client> {
        let transport = StreamableHttpClientTransport::from_config(
            StreamableHttpClientTransportConfig::with_uri(self.url()),
        );
        let (lifecycle, expected_version) = match era {
            HttpEra::Stateless => (
                ClientLifecycleMode::Discover {
                    preferred_versions: vec![ProtocolVersion::V_2026_07_28],
                },
                ProtocolVersion::V_2026_07_28,
            ),
            HttpEra::Legacy => (
                ClientLifecycleMode::Initialize,
                ProtocolVersion::V_2025_11_25,
            ),
        };
        let client =
            match timeout(STARTUP_LIMIT, ().serve_with_lifecycle(transport, lifecycle)).await {
                Ok(Ok(client)) => client,
                Ok(Err(error)) => bail!(
                    "MCP handshake over HTTP ({era:?}) failed: {error}\nserver log:\n{}",
                    self.log()
                ),
                Err(_) => bail!("MCP handshake over HTTP ({era:?}) timed out"),
            };
        let version = client
            .peer_info()
            .map(|info| info.protocol_version.clone())
            .context("the HTTP client has no server info after its handshake")?;
        if version != expected_version {
            bail!(
                "HTTP client ({era:?}) negotiated protocol {version}, expected {expected_version}"
            );
        }
        Ok(client)
    }

    /// Opens a stateless connection for the client at `working_directory`, calls `status`, and
    /// returns a session that adds the working directory to every agent tool call.
    pub async fn agent(&self, working_directory: &str) -> Result<Session> {
        let client = self.connect(HttpEra::Stateless).await?;
        let session = Session::with_identity(client, working_directory);
        session.status(working_directory).await?;
        Ok(session)
    }

    /// Kills the server through its handle, waits for it, and returns what it wrote to stdout.
    pub async fn stop(self) -> Result<String> {
        let HttpServer {
            mut child,
            stdout_log,
            stdout_task,
            ..
        } = self;
        timeout(EXIT_LIMIT, child.kill())
            .await
            .context("timed out killing the HTTP server")?
            .context("failed to kill the HTTP server")?;
        timeout(EXIT_LIMIT, stdout_task)
            .await
            .context("server stdout did not close after the server died")?
            .context("the stdout reader task failed")?;
        Ok(stdout_log.text())
    }
}

/// Returns the working directory used for the agent called `name`.
pub fn directory_of(name: &str) -> String {
    format!("/tmp/brainstorm-agents/{name}")
}

/// Creates `project_id` with `names[0]` as creator (and coordinator), connects one stateless
/// HTTP client per name (working directory from [`directory_of`]) and joins the others.
/// Returns the sessions in the order of `names`.
pub async fn project_team(
    server: &HttpServer,
    project_id: &str,
    names: &[&str],
) -> Result<Vec<Session>> {
    let (creator, others) = names
        .split_first()
        .context("a team needs at least one agent")?;
    let mut sessions = Vec::with_capacity(names.len());

    let coordinator = server.agent(&directory_of(creator)).await?;
    coordinator
        .ok(
            "create_project",
            json!({ "project_id": project_id, "name": format!("Project {project_id}"), "created_by": creator }),
        )
        .await?;
    sessions.push(coordinator);

    for name in others {
        let session = server.agent(&directory_of(name)).await?;
        session
            .ok(
                "join_project",
                json!({ "project_id": project_id, "agent_name": name }),
            )
            .await?;
        sessions.push(session);
    }
    Ok(sessions)
}

/// Returns a string field of a JSON object, or an error naming the field and the object.
pub fn text_field<'a>(value: &'a Value, field: &str) -> Result<&'a str> {
    value
        .get(field)
        .and_then(Value::as_str)
        .with_context(|| format!("field {field:?} is missing or not a string in {value}"))
}

/// Returns the `etag` of a `store_resource` or `get_resource` result.
pub fn etag_of(result: &Value) -> Result<String> {
    text_field(result, "etag").map(str::to_owned)
}

/// Returns the `content` string of a `get_resource` result.
pub fn content_of(result: &Value) -> Result<String> {
    text_field(result, "content").map(str::to_owned)
}

/// Returns the payloads of a `receive_messages` result, in order.
pub fn payloads_of(result: &Value) -> Result<Vec<Value>> {
    let messages = result
        .get("messages")
        .and_then(Value::as_array)
        .with_context(|| format!("no messages array in {result}"))?;
    Ok(messages
        .iter()
        .map(|message| message.get("payload").cloned().unwrap_or(Value::Null))
        .collect())
}

/// Returns whether `etag` is 16 lowercase hex digits.
pub fn is_etag_format(etag: &str) -> bool {
    etag.len() == 16
        && etag
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// Writes `bytes` to `path`, creating parent folders.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("failed to create {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("failed to write {}", path.display()))
}

/// Starts `brainstorm stdio` as the client at [`directory_of`]`(agent)` and creates
/// `project_id` with `agent` as creator.
pub async fn solo_project(
    sandbox: &Sandbox,
    options: &ServerOptions,
    project_id: &str,
    agent: &str,
) -> Result<StdioServer> {
    let server = StdioServer::start_as(sandbox, options, &directory_of(agent)).await?;
    server
        .session()
        .ok(
            "create_project",
            json!({ "project_id": project_id, "name": format!("Project {project_id}"), "created_by": agent }),
        )
        .await?;
    Ok(server)
}

/// Returns the entry for `project_id` in the `projects` list of a `status` result.
pub fn status_entry<'a>(status: &'a Value, project_id: &str) -> Result<&'a Value> {
    status
        .get("projects")
        .and_then(Value::as_array)
        .with_context(|| format!("no projects array in status {status}"))?
        .iter()
        .find(|entry| entry.get("project_id").and_then(Value::as_str) == Some(project_id))
        .with_context(|| format!("status lists no project {project_id}: {status}"))
}

/// Returns the unread count for `project_id` from a `status` result.
pub fn unread_count(status: &Value, project_id: &str) -> Result<u64> {
    let entry = status_entry(status, project_id)?;
    entry
        .get("unread_count")
        .and_then(Value::as_u64)
        .with_context(|| format!("no unread_count in status entry {entry}"))
}

/// Returns the member called `agent_name` from a `get_project_info` result.
pub fn member<'a>(info: &'a Value, agent_name: &str) -> Result<&'a Value> {
    info.get("members")
        .and_then(Value::as_array)
        .with_context(|| format!("no members array in {info}"))?
        .iter()
        .find(|entry| entry.get("agent_name").and_then(Value::as_str) == Some(agent_name))
        .with_context(|| format!("no member {agent_name} in {info}"))
}

/// Returns the sorted agent names of a `get_project_info` result.
pub fn member_names(info: &Value) -> Result<Vec<String>> {
    let members = info
        .get("members")
        .and_then(Value::as_array)
        .with_context(|| format!("no members array in {info}"))?;
    let mut names = members
        .iter()
        .map(|entry| text_field(entry, "agent_name").map(str::to_owned))
        .collect::<Result<Vec<_>>>()?;
    names.sort();
    Ok(names)
}
