//! One simulated agent: an rmcp streamable HTTP client in stateless mode (MCP 2026-07-28)
//! with its own working directory, which it passes on every tool call.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use rmcp::model::{CallToolRequestParams, CallToolResult, ProtocolVersion};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt, RoleClient};
use serde_json::{Value, json};
use tokio::time::timeout;

/// Time limit for the `server/discover` handshake of one client.
const CONNECT_LIMIT: Duration = Duration::from_secs(30);

/// Time limit for one tool call. Long-polls request a shorter timeout from the server.
pub const CALL_LIMIT: Duration = Duration::from_secs(60);

/// A failed tool call.
#[derive(Debug)]
pub enum CallError {
    /// The tool ran and returned its error object (`isError: true`).
    Tool {
        tool: String,
        code: String,
        body: Value,
    },
    /// The call did not complete: a transport or protocol error, or no result in time.
    Transport { tool: String, message: String },
    /// The call succeeded but its result lacks a field the benchmark needs.
    Malformed { tool: String, message: String },
}

impl CallError {
    /// Returns the tool error code, such as `ETAG_MISMATCH`, of a tool failure.
    pub fn code(&self) -> Option<&str> {
        match self {
            CallError::Tool { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Returns whether the tool rejected a write because the etag was no longer current.
    pub fn is_etag_mismatch(&self) -> bool {
        self.code() == Some("ETAG_MISMATCH")
    }

    /// Builds the error for a result that lacks `field` or has it with the wrong type.
    pub fn missing(tool: &str, field: &str, result: &Value) -> Self {
        CallError::Malformed {
            tool: tool.to_owned(),
            message: format!("field {field:?} is missing or has the wrong type in {result}"),
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Tool { tool, code, body } => write!(f, "{tool} failed with {code}: {body}"),
            CallError::Transport { tool, message } => {
                write!(f, "{tool} did not complete: {message}")
            }
            CallError::Malformed { tool, message } => {
                write!(f, "{tool} returned an unexpected result: {message}")
            }
        }
    }
}

impl std::error::Error for CallError {}

/// An MCP client acting as one agent.
pub struct Agent {
    /// Agent name inside the benchmark project.
    pub name: String,
    working_directory: String,
    client: RunningService<RoleClient, ()>,
}

impl Agent {
    /// Connects a new client to the MCP endpoint `url` with the `server/discover` handshake.
    pub async fn connect(
        url: &str,
        name: String,
        working_directory: String,
    ) -> anyhow::Result<Self> {
        let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned());
        let transport = StreamableHttpClientTransport::from_config(config);
        let lifecycle = ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        };
        let client = timeout(CONNECT_LIMIT, ().serve_with_lifecycle(transport, lifecycle))
            .await
            .with_context(|| {
                format!("{name}: MCP handshake with {url} timed out after {CONNECT_LIMIT:?}")
            })?
            .with_context(|| format!("{name}: MCP handshake with {url} failed"))?;
        let version = client
            .peer_info()
            .map(|info| info.protocol_version.clone())
            .with_context(|| format!("{name}: no server info after the handshake with {url}"))?;
        if version != ProtocolVersion::V_2026_07_28 {
            bail!(
                "{name}: {url} negotiated MCP protocol {version}, but the benchmark needs {}",
                ProtocolVersion::V_2026_07_28
            );
        }
        Ok(Agent {
            name,
            working_directory,
            client,
        })
    }

    /// Calls `tool` with `args` plus this agent's `working_directory`, and returns the
    /// result object of a successful call.
    ///
    /// Every tool the benchmark calls acts as an agent, and over stateless HTTP no session
    /// carries the identity, so each call brings it.
    pub async fn call(&self, tool: &str, mut args: Value) -> Result<Value, CallError> {
        let transport_error = |message: String| CallError::Transport {
            tool: tool.to_owned(),
            message,
        };
        args["working_directory"] = json!(self.working_directory);
        let Value::Object(arguments) = args else {
            return Err(transport_error(format!(
                "arguments are not a JSON object: {args}"
            )));
        };
        let request = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        let result = timeout(CALL_LIMIT, self.client.call_tool(request))
            .await
            .map_err(|_| transport_error(format!("no result within {CALL_LIMIT:?}")))?
            .map_err(|err| transport_error(err.to_string()))?;
        decode_result(tool, result)
    }

    /// Ends the client's worker task.
    pub async fn close(self) {
        // A stateless client has no session to end on the server, so a failure here leaves
        // nothing behind.
        let _ = self.client.cancel().await;
    }
}

/// Returns the JSON object of a tool result: `structuredContent` when present, otherwise the
/// text content parsed as JSON.
fn decode_result(tool: &str, result: CallToolResult) -> Result<Value, CallError> {
    let malformed = |message: String| CallError::Malformed {
        tool: tool.to_owned(),
        message,
    };
    let value = match result.structured_content {
        Some(value) => value,
        None => {
            let text = result
                .content
                .iter()
                .find_map(|block| block.as_text())
                .map(|block| block.text.clone())
                .ok_or_else(|| malformed("the result has no text content".to_owned()))?;
            serde_json::from_str(&text)
                .map_err(|err| malformed(format!("the text content is not JSON ({err}): {text}")))?
        }
    };
    if result.is_error == Some(true) {
        let code = value
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or("UNKNOWN")
            .to_owned();
        return Err(CallError::Tool {
            tool: tool.to_owned(),
            code,
            body: value,
        });
    }
    Ok(value)
}
