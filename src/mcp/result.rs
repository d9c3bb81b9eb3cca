//! Translation of service results into MCP tool results.

use rmcp::model::CallToolResult;
use serde_json::{Value, json};
use tracing::{debug, error};

use crate::error::{ErrorCode, ServiceError};

/// Turns a service outcome into a tool result: the JSON object as text and as structured
/// content, with `isError` set for failures.
pub fn tool_result(tool: &str, outcome: Result<Value, ServiceError>) -> CallToolResult {
    match outcome {
        Ok(value) => CallToolResult::structured(value),
        Err(err) => CallToolResult::structured_error(error_body(tool, err)),
    }
}

/// Builds the `{error, code, details}` body of a failed call and logs the failure.
///
/// Internal errors are logged with their cause and sent without it, so no file path or
/// internal detail reaches the client.
pub fn error_body(tool: &str, err: ServiceError) -> Value {
    if err.code == ErrorCode::InternalError {
        error!(
            tool,
            cause = err.internal.as_deref().unwrap_or("unknown"),
            "tool failed"
        );
    } else {
        debug!(tool, code = %err.code, error = %err.message, "tool call rejected");
    }
    json!({"error": err.message, "code": err.code.as_str(), "details": err.details})
}
