//! Line framing for MCP over stdio that replies to every line, even one rmcp cannot parse.
//!
//! rmcp drops a line that is not valid JSON, or that nests deeper than serde_json's
//! recursion limit (128), without replying, so the client would wait forever. This layer sits
//! between the process's stdin and stdout and rmcp: it passes parsable lines through and
//! replies to the others itself, with the request's id when it can be found.

use serde_json::{Value, json};
use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream,
};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::service::validate::MAX_JSON_DEPTH;

/// Maximum stdin line length, in bytes; a longer line gets an error reply.
pub const MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

/// Starts the framing tasks and returns the reader and writer that rmcp serves on.
pub fn stdio() -> (DuplexStream, DuplexStream) {
    frame(tokio::io::stdin(), tokio::io::stdout())
}

/// Connects `input` and `output` to a pair of pipes for rmcp, replying to unparsable lines.
pub fn frame<R, W>(input: R, output: W) -> (DuplexStream, DuplexStream)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (to_rmcp, rmcp_reads) = tokio::io::duplex(64 * 1024);
    let (rmcp_writes, from_rmcp) = tokio::io::duplex(64 * 1024);
    let (replies, pending) = mpsc::unbounded_channel::<String>();
    tokio::spawn(read_lines(input, to_rmcp, replies));
    tokio::spawn(write_lines(from_rmcp, pending, output));
    (rmcp_reads, rmcp_writes)
}

async fn read_lines<R>(input: R, mut to_rmcp: DuplexStream, replies: mpsc::UnboundedSender<String>)
where
    R: AsyncRead + Unpin,
{
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = (&mut input)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut line)
            .await;
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => {
                warn!(error = %err, "cannot read stdin");
                break;
            }
        }
        if line.len() > MAX_LINE_BYTES && !line.ends_with(b"\n") {
            // Skip the rest of the oversized line before replying to it.
            let mut rest = Vec::new();
            let _ = input.read_until(b'\n', &mut rest).await;
            let _ = replies.send(error_reply(
                Value::Null,
                -32600,
                "request line is over 16 MiB",
            ));
            continue;
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        // Parsed into a `Value`, which has the same recursion limit as rmcp's own parse;
        // `IgnoredAny` skips nesting without that limit.
        match serde_json::from_str::<Value>(&text) {
            Ok(_) => {
                if to_rmcp.write_all(&line).await.is_err() {
                    break;
                }
                if !line.ends_with(b"\n") && to_rmcp.write_all(b"\n").await.is_err() {
                    break;
                }
            }
            Err(err) => {
                debug!(error = %err, "stdin line rejected before rmcp");
                if let Some(reply) = reply_to_unparsable(&text, &err) {
                    let _ = replies.send(reply);
                }
            }
        }
    }
    // rmcp reads the closed pipe as the client closing stdin.
    let _ = to_rmcp.shutdown().await;
}

async fn write_lines<W>(
    from_rmcp: DuplexStream,
    mut replies: mpsc::UnboundedReceiver<String>,
    mut output: W,
) where
    W: AsyncWrite + Unpin,
{
    let mut frames = BufReader::new(from_rmcp).lines();
    let mut replies_open = true;
    loop {
        let line = tokio::select! {
            frame = frames.next_line() => match frame {
                Ok(Some(frame)) => frame,
                _ => break,
            },
            reply = replies.recv(), if replies_open => match reply {
                Some(reply) => reply,
                None => {
                    replies_open = false;
                    continue;
                }
            },
        };
        let written = async {
            output.write_all(line.as_bytes()).await?;
            output.write_all(b"\n").await?;
            output.flush().await
        };
        if written.await.is_err() {
            break;
        }
    }
}

/// Builds the reply to a line serde_json cannot parse, or `None` for a notification.
fn reply_to_unparsable(text: &str, err: &serde_json::Error) -> Option<String> {
    let id = top_level_field(text, "id");
    let method = top_level_field(text, "method");
    let too_deep = err.to_string().contains("recursion limit");
    if too_deep && id.is_some() && method.as_ref().and_then(Value::as_str) == Some("tools/call") {
        // A tool call whose arguments nest too deep is a bad argument, which MCP reports as
        // a tool error that the model can read.
        let body = json!({
            "error": format!("the arguments nest deeper than the maximum of {MAX_JSON_DEPTH} levels"),
            "code": "JSON_TOO_DEEP",
            "details": {"max_depth": MAX_JSON_DEPTH},
        });
        let result = json!({
            "content": [{"type": "text", "text": body.to_string()}],
            "structuredContent": body,
            "isError": true,
        });
        return Some(json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string());
    }
    if id.is_none() && method.is_some() {
        return None;
    }
    let message = if too_deep {
        "request nests deeper than serde_json's limit of 128 levels".to_owned()
    } else {
        format!("parse error: {err}")
    };
    Some(error_reply(id.unwrap_or(Value::Null), -32700, &message))
}

fn error_reply(id: Value, code: i64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}).to_string()
}

/// Finds a field of the outermost JSON object without parsing the whole text, so that the
/// id of a request too deep to parse can still be read.
fn top_level_field(text: &str, name: &str) -> Option<Value> {
    let bytes = text.as_bytes();
    let (mut depth, mut index, mut expect_key) = (0usize, 0usize, false);
    while index < bytes.len() {
        match bytes[index] {
            b'{' | b'[' => {
                depth += 1;
                expect_key = depth == 1 && bytes[index] == b'{';
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' if depth == 1 => expect_key = true,
            b'"' => {
                let end = string_end(bytes, index)?;
                if depth == 1 && expect_key {
                    expect_key = false;
                    let key: String = serde_json::from_str(&text[index..=end]).ok()?;
                    let colon = end + 1 + text[end + 1..].find(':')?;
                    if key == name {
                        let mut values = serde_json::Deserializer::from_str(&text[colon + 1..])
                            .into_iter::<Value>();
                        return values.next()?.ok();
                    }
                    index = colon;
                } else {
                    index = end;
                }
            }
            _ => {}
        }
        index += 1;
    }
    None
}

/// Returns the index of the quote that closes the string starting at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut index = start + 1;
    while index < bytes.len() {
        match bytes[index] {
            b'\\' => index += 2,
            b'"' => return Some(index),
            _ => index += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn id_found_in_too_deep_request() {
        let text = format!(
            r#"{{"jsonrpc":"2.0","method":"tools/call","params":{{"name":"x","arguments":{{"a":{}}}}},"id":7}}"#,
            deep(200)
        );
        assert!(serde_json::from_str::<Value>(&text).is_err());
        assert_eq!(top_level_field(&text, "id"), Some(json!(7)));
        assert_eq!(top_level_field(&text, "method"), Some(json!("tools/call")));
    }

    #[test]
    fn ignores_nested_fields_named_like_the_target() {
        let text = r#"{"params":{"id":1,"note":"a \"id\": 2"},"id":"outer"}"#;
        assert_eq!(top_level_field(text, "id"), Some(json!("outer")));
    }

    #[test]
    fn deep_tool_call_gets_a_tool_error() {
        let text = format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{}}}"#,
            deep(200)
        );
        let err = serde_json::from_str::<Value>(&text).unwrap_err();
        let reply: Value =
            serde_json::from_str(&reply_to_unparsable(&text, &err).expect("a reply"))
                .expect("JSON");
        assert_eq!(reply["id"], 3);
        assert_eq!(reply["result"]["isError"], true);
        assert_eq!(
            reply["result"]["structuredContent"]["code"],
            "JSON_TOO_DEEP"
        );
    }

    #[test]
    fn broken_json_gets_a_parse_error() {
        let text = r#"{"jsonrpc":"2.0","id":4,"method":"tools/list""#;
        let err = serde_json::from_str::<Value>(text).unwrap_err();
        let reply: Value =
            serde_json::from_str(&reply_to_unparsable(text, &err).expect("a reply")).expect("JSON");
        assert_eq!(reply["error"]["code"], -32700);
        assert_eq!(reply["id"], 4);
    }
}
