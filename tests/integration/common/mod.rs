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
use rmcp::{ClientHandler, ClientLifecycleMode, ClientServiceExt, RoleClient, ServiceExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
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
    "resource_history",
    "update_resource",
    "append_log",
    "read_log",
];

/// An MCP client connection to a server under test.
pub type Client = RunningService<RoleClient, ()>;

/// Environment variables of the server that the tests set explicitly or not at all.
const SERVER_ENV: &[&str] = &[
    "BRAINSTORM_STORAGE",
    "BRAINSTORM_MAX_PAYLOAD_SIZE",
    "BRAINSTORM_CLIENT_ID",
    "BRAINSTORM_LOG",
    "BRAINSTORM_TOKEN",
    "BRAINSTORM_LISTEN",
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

/// A server process started by a test, with what it has written to stderr.
pub struct ServerProcess {
    child: Child,
    log: ServerLog,
}

impl ServerProcess {
    /// Returns the process id. It stays valid until the process has been waited for.
    pub fn pid(&self) -> Result<u32> {
        self.child
            .id()
            .context("the server process has already been waited for")
    }

    /// Returns what the process has written to stderr so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Kills the process with SIGKILL through its handle and waits for it to end.
    pub async fn kill(&mut self) -> Result<()> {
        timeout(EXIT_LIMIT, self.child.kill())
            .await
            .context("timed out killing the server")?
            .context("failed to kill the server")
    }

    /// Sends SIGTERM with kill(1), because the test crate has no signal library.
    pub fn terminate(&self) -> Result<()> {
        send_sigterm(self.pid()?)
    }

    /// Waits up to `limit` for the process to exit and returns its status. If it is still
    /// running then, kills it and returns an error with its log.
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        wait_or_kill(&mut self.child, limit, &self.log).await
    }
}

/// Sends SIGTERM to `pid`, which must be a child this test started and has not waited for.
fn send_sigterm(pid: u32) -> Result<()> {
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .context("failed to run kill -TERM")?;
    if !status.success() {
        bail!("kill -TERM {pid} failed with {status}");
    }
    Ok(())
}

/// Waits up to `limit` for `child` to exit. If it is still running then, kills it and
/// returns an error with its log.
async fn wait_or_kill(child: &mut Child, limit: Duration, log: &ServerLog) -> Result<ExitStatus> {
    match timeout(limit, child.wait()).await {
        Ok(status) => status.context("failed to wait for the server"),
        Err(_) => {
            child.kill().await.context("failed to kill the server")?;
            bail!(
                "the server did not exit within {limit:?}\nserver log:\n{}",
                log.text()
            )
        }
    }
}

/// A `brainstorm stdio` process with the one client session it serves.
pub struct StdioServer {
    session: Session,
    process: ServerProcess,
}

/// A `brainstorm stdio` process that has been started but has no MCP client yet.
///
/// The process links to the data folder (becoming its owner or a forwarder) as soon as it
/// starts, before its client's handshake, so several of these started together race for
/// ownership.
pub struct SpawnedStdio {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    log: ServerLog,
}

impl SpawnedStdio {
    /// Returns the process id.
    pub fn pid(&self) -> Result<u32> {
        self.child
            .id()
            .context("the stdio server has already exited")
    }

    /// Completes the MCP handshake over the process's stdin and stdout. No `status` call is
    /// made.
    pub async fn connect(self) -> Result<StdioServer> {
        let (client, process) = self.connect_handler(()).await?;
        Ok(StdioServer {
            session: Session::new(client),
            process,
        })
    }

    /// Completes the MCP handshake with a client that handles server notifications with
    /// `handler`, and returns that client with the process handle.
    pub async fn connect_handler<H: ClientHandler>(
        self,
        handler: H,
    ) -> Result<(RunningService<RoleClient, H>, ServerProcess)> {
        let SpawnedStdio {
            child,
            stdin,
            stdout,
            log,
        } = self;
        let client = match timeout(STARTUP_LIMIT, handler.serve((stdout, stdin))).await {
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
        Ok((client, ServerProcess { child, log }))
    }
}

impl StdioServer {
    /// Starts `brainstorm stdio` without connecting to it.
    pub fn spawn(sandbox: &Sandbox, options: &ServerOptions) -> Result<SpawnedStdio> {
        let mut child = server_command(sandbox, options, &["stdio"])
            .spawn()
            .context("failed to start brainstorm stdio")?;
        let stdin = child.stdin.take().context("server stdin is not piped")?;
        let stdout = child.stdout.take().context("server stdout is not piped")?;
        let stderr = child.stderr.take().context("server stderr is not piped")?;
        let log = ServerLog::default();
        collect_lines(BufReader::new(stderr), log.clone());
        Ok(SpawnedStdio {
            child,
            stdin,
            stdout,
            log,
        })
    }

    /// Starts `brainstorm stdio` and completes the MCP handshake. No `status` call is made.
    pub async fn start(sandbox: &Sandbox, options: &ServerOptions) -> Result<Self> {
        StdioServer::spawn(sandbox, options)?.connect().await
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

    /// Returns the process id.
    pub fn pid(&self) -> Result<u32> {
        self.process.pid()
    }

    /// Returns what the process has written to stderr so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Separates the client session from the process, so that a task can own the session
    /// while the test keeps the process handle to signal or kill it.
    pub fn into_parts(self) -> (Session, ServerProcess) {
        (self.session, self.process)
    }

    /// Closes the client side (which closes the server's stdin) and waits for the server to
    /// exit on its own. If it is still running after `EXIT_LIMIT`, kills it and returns an
    /// error.
    pub async fn shutdown(self) -> Result<ExitStatus> {
        let StdioServer {
            session,
            mut process,
        } = self;
        session.close().await?;
        process
            .wait_exit(EXIT_LIMIT)
            .await
            .context("the stdio server did not exit after stdin closed")
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

    /// Returns the loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the process id. It stays valid until the process has been waited for.
    pub fn pid(&self) -> Result<u32> {
        self.child
            .id()
            .context("the HTTP server has already been waited for")
    }

    /// Returns what the server has written to stderr so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Sends SIGTERM to the server with kill(1).
    pub fn terminate(&self) -> Result<()> {
        send_sigterm(self.pid()?)
    }

    /// Waits up to `limit` for the server to exit and returns its status. If it is still
    /// running then, kills it and returns an error with its log.
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus> {
        wait_or_kill(&mut self.child, limit, &self.log).await
    }

    /// Opens a new MCP connection of the given protocol generation.
    pub async fn connect(&self, era: HttpEra) -> Result<Client> {
        self.connect_with_token(era, None).await
    }

    /// Opens a new MCP connection that sends `token` as its bearer token, when one is given.
    pub async fn connect_with_token(&self, era: HttpEra, token: Option<&str>) -> Result<Client> {
        self.connect_handler(era, token, ()).await
    }

    /// Opens a new MCP connection that sends `token` as its bearer token, when one is given,
    /// and handles server notifications with `handler`.
    pub async fn connect_handler<H: ClientHandler>(
        &self,
        era: HttpEra,
        token: Option<&str>,
        handler: H,
    ) -> Result<RunningService<RoleClient, H>> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url());
        if let Some(token) = token {
            config = config.auth_header(token.to_owned());
        }
        let transport = StreamableHttpClientTransport::from_config(config);
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
        let handshake = handler.serve_with_lifecycle(transport, lifecycle);
        let client = match timeout(STARTUP_LIMIT, handshake).await {
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

/// Returns the `owner.json` record of the sandbox's data folder, or `None` when there is none.
pub fn owner_record(sandbox: &Sandbox) -> Result<Option<Value>> {
    let path = sandbox.data_dir().join("owner.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("failed to read {}", path.display()));
        }
    };
    let record = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON: {text}", path.display()))?;
    Ok(Some(record))
}

/// Returns the `pid` of the `owner.json` record, or `None` when there is no record.
pub fn owner_pid(sandbox: &Sandbox) -> Result<Option<u32>> {
    let Some(record) = owner_record(sandbox)? else {
        return Ok(None);
    };
    let pid = record
        .get("pid")
        .and_then(Value::as_u64)
        .with_context(|| format!("owner.json has no numeric pid: {record}"))?;
    Ok(Some(u32::try_from(pid).with_context(|| {
        format!("owner.json pid {pid} is out of range")
    })?))
}

/// Polls `owner.json` until it names a pid for which `accept` returns true, for up to
/// `limit`, and returns that pid. The owner writes the file after it opens the database, so a test that
/// has just started a process polls for it.
pub async fn wait_for_owner_pid(
    sandbox: &Sandbox,
    limit: Duration,
    accept: impl Fn(u32) -> bool,
) -> Result<u32> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let pid = owner_pid(sandbox)?;
        if let Some(pid) = pid
            && accept(pid)
        {
            return Ok(pid);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "timed out after {limit:?} waiting for owner.json to name the expected pid \
                 (last pid read: {pid:?})"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Computes the client id the server derives from a working directory: the first 32 hex
/// digits of the SHA-256 of the path, grouped 8-4-4-4-12 like a UUID.
pub fn derived_client_id(working_directory: &str) -> String {
    let hex: String = Sha256::digest(working_directory.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// An HTTP response read off a raw TCP connection.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// Status code from the status line.
    pub status: u16,
    /// Header names (lowercased) and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// Body, with chunked transfer encoding removed.
    pub body: String,
}

impl RawResponse {
    /// Returns the first value of header `name` (any letter case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(header, _)| *header == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends one HTTP/1.1 request to `127.0.0.1:port` over a new TCP connection and reads the
/// response until the server closes the connection. It sends `Host: 127.0.0.1:PORT` unless
/// `headers` has a Host header, and always `Connection: close` and `Content-Length`.
///
/// Tests use it for requests that an MCP client never sends: a foreign Host or Origin, a
/// wrong token, an oversized body.
pub async fn send_http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<RawResponse> {
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!(
        "Connection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);

    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .with_context(|| format!("failed to connect to 127.0.0.1:{port}"))?;
        stream
            .write_all(&bytes)
            .await
            .context("failed to send the request")?;
        let mut received = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) => break,
                Ok(count) => received.extend_from_slice(&buffer[..count]),
                // A server that sends its response before reading the whole body may then
                // reset the connection. The response bytes that arrived before the reset count.
                Err(_) if find_subsequence(&received, b"\r\n\r\n").is_some() => break,
                Err(error) => return Err(error).context("failed to read the response"),
            }
        }
        Ok::<_, anyhow::Error>(received)
    };
    let received = timeout(CALL_LIMIT, exchange).await.with_context(|| {
        format!("{method} {path} got no complete response within {CALL_LIMIT:?}")
    })??;
    parse_http_response(&received)
}

fn find_subsequence(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn parse_http_response(received: &[u8]) -> Result<RawResponse> {
    let head_end = find_subsequence(received, b"\r\n\r\n").with_context(|| {
        format!(
            "the response has no complete head: {:?}",
            String::from_utf8_lossy(received)
        )
    })?;
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .with_context(|| format!("malformed status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let raw_body = &received[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.contains("chunked"));
    let body = if chunked {
        decode_chunked(raw_body)
    } else {
        raw_body.to_vec()
    };
    Ok(RawResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Removes chunked transfer encoding. A truncated last chunk keeps the bytes that arrived.
fn decode_chunked(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = find_subsequence(raw, b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..line_end]);
        let size_digits = size_text.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_digits, 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        let end = (start + size).min(raw.len());
        body.extend_from_slice(&raw[start..end]);
        raw = raw.get(end + 2..).unwrap_or_default();
    }
    body
}

/// Writes and ETAG_MISMATCH retries of one agent in a counter race.
#[derive(Debug, Clone, Default)]
pub struct RaceTally {
    /// Etags returned by the agent's successful writes.
    pub etags: Vec<String>,
    /// Writes rejected with ETAG_MISMATCH and retried.
    pub mismatches: usize,
}

/// Creates the counter resource `counter` in `project_id` with content `0`, writable by every
/// member, and returns its etag.
pub async fn create_counter(session: &Session, project_id: &str, creator: &str) -> Result<String> {
    let created = session
        .ok(
            "store_resource",
            json!({
                "project_id": project_id,
                "resource_id": "counter",
                "name": "Counter",
                "agent_name": creator,
                "content": "0",
                "permissions": { "read": ["*"], "write": ["*"] },
            }),
        )
        .await?;
    etag_of(&created)
}

/// Reads the counter resource of `project_id` and returns its value and etag.
pub async fn read_counter(
    session: &Session,
    project_id: &str,
    agent: &str,
) -> Result<(u64, String)> {
    let read = session
        .ok(
            "get_resource",
            json!({ "project_id": project_id, "resource_id": "counter", "agent_name": agent }),
        )
        .await?;
    let content = content_of(&read)?;
    let value = content
        .trim()
        .parse()
        .with_context(|| format!("counter content {content:?} is not a number"))?;
    Ok((value, etag_of(&read)?))
}

/// Returns the arguments of a `store_resource` call that writes `value` to the counter of
/// `project_id` if its etag is still `etag`.
pub fn store_counter_args(project_id: &str, agent: &str, value: u64, etag: &str) -> Value {
    json!({
        "project_id": project_id,
        "resource_id": "counter",
        "name": "Counter",
        "agent_name": agent,
        "content": value.to_string(),
        "etag": etag,
    })
}

/// Increments the counter of `project_id` `increments` times as `agent`: read, add one, store
/// with the etag read, and on ETAG_MISMATCH read again and retry. Any other failure ends the
/// run with an error.
pub async fn increment_counter(
    session: &Session,
    project_id: &str,
    agent: &str,
    increments: usize,
) -> Result<RaceTally> {
    let mut tally = RaceTally::default();
    for _ in 0..increments {
        loop {
            let (value, etag) = read_counter(session, project_id, agent).await?;
            let outcome = session
                .call(
                    "store_resource",
                    store_counter_args(project_id, agent, value + 1, &etag),
                )
                .await?;
            match outcome {
                ToolOutcome::Success(stored) => {
                    tally.etags.push(etag_of(&stored)?);
                    break;
                }
                failure if failure.code() == Some("ETAG_MISMATCH") => tally.mismatches += 1,
                failure => bail!("{agent}: store_resource failed: {failure:?}"),
            }
        }
    }
    Ok(tally)
}

/// Runs [`increment_counter`] for every `(session, agent)` pair at once, all starting
/// together, and returns their tallies and sessions in order. Fails when any agent fails or
/// when the race takes longer than `limit`.
///
/// The sessions come back open because closing a stdio client ends its process: when that
/// process owns the data folder, the remaining racers would change owner mid-race.
pub async fn run_counter_race(
    racers: Vec<(Session, String)>,
    project_id: &str,
    increments: usize,
    limit: Duration,
) -> Result<(Vec<RaceTally>, Vec<Session>)> {
    let start = Arc::new(tokio::sync::Barrier::new(racers.len()));
    let tasks: Vec<_> = racers
        .into_iter()
        .map(|(session, agent)| {
            let start = Arc::clone(&start);
            let project_id = project_id.to_owned();
            tokio::spawn(async move {
                start.wait().await;
                let tally = increment_counter(&session, &project_id, &agent, increments).await?;
                Ok::<_, anyhow::Error>((tally, session))
            })
        })
        .collect();
    let collect_tallies = async {
        let mut tallies = Vec::new();
        let mut sessions = Vec::new();
        for task in tasks {
            let (tally, session) = task.await.context("a racing agent panicked")??;
            tallies.push(tally);
            sessions.push(session);
        }
        Ok::<_, anyhow::Error>((tallies, sessions))
    };
    timeout(limit, collect_tallies)
        .await
        .with_context(|| format!("the counter race did not finish within {limit:?}"))?
}

/// Returns `args` with `working_directory` set to [`directory_of`]`(agent)`.
///
/// [`Session`] adds the identity only to the tools in `AGENT_TOOLS`, so a stateless HTTP call
/// of `update_resource`, `append_log`, `read_log` or `resource_history` carries it this way.
pub fn acting_as(agent: &str, mut args: Value) -> Value {
    args["working_directory"] = json!(directory_of(agent));
    args
}

/// Opens a stateless HTTP session that sends the data folder's token, which makes its calls
/// those of an operator (for example `audit_log` across projects without being a member).
pub async fn operator_session(sandbox: &Sandbox, server: &HttpServer) -> Result<Session> {
    let path = sandbox.data_dir().join("token");
    let token = std::fs::read_to_string(&path)
        .with_context(|| format!("failed to read the token file {}", path.display()))?;
    let client = server
        .connect_with_token(HttpEra::Stateless, Some(token.trim()))
        .await?;
    Ok(Session::new(client))
}
