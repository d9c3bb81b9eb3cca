//! Argument validation: identifiers, argument types, message targets, JSON content and size.

use anyhow::{Context, Result};
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::common::{
    CALL_LIMIT, HttpServer, Sandbox, ServerOptions, Session, content_of, project_team, text_field,
};

async fn start_team(options: &ServerOptions) -> Result<(Sandbox, HttpServer, Vec<Session>)> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, options).await?;
    let sessions = project_team(&server, "checks", &["alice", "bob"]).await?;
    Ok((sandbox, server, sessions))
}

fn store(resource_id: &str, content: &str) -> Value {
    json!({
        "project_id": "checks",
        "resource_id": resource_id,
        "name": "Checked",
        "agent_name": "alice",
        "content": content,
    })
}

fn message(extra: Value) -> Value {
    let mut args = json!({
        "project_id": "checks",
        "from_agent": "alice",
        "reply_expected": true,
        "payload": "hello",
    });
    if let (Some(args), Value::Object(extra)) = (args.as_object_mut(), extra) {
        args.extend(extra);
    }
    args
}

/// Returns `depth` arrays nested in each other: `[[...]]`.
fn nested_arrays(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// Returns `depth` objects nested in each other: `{"a":{"a":...{}}}`.
fn nested_objects(depth: usize) -> String {
    format!(
        "{}{{}}{}",
        "{\"a\":".repeat(depth - 1),
        "}".repeat(depth - 1)
    )
}

/// Calls that put `id` into each identifier argument in turn.
fn identifier_calls(id: &str) -> Vec<(&'static str, Value)> {
    vec![
        (
            "create_project",
            json!({ "project_id": id, "name": "Bad id" }),
        ),
        (
            "join_project",
            json!({ "project_id": "checks", "agent_name": id }),
        ),
        ("store_resource", store(id, "x")),
        ("send_message", message(json!({ "to_agent": id }))),
        ("send_message", {
            let mut args = message(json!({ "to_agent": "bob" }));
            args["from_agent"] = json!(id);
            args
        }),
    ]
}

#[tokio::test]
async fn identifiers_with_bad_characters_rejected() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let alice = &team[0];
    for id in ["a.b", "../x", "a/b", "ünï", "a b", "a\\b", "a:b", "~x"] {
        for (tool, args) in identifier_calls(id) {
            alice.fails(tool, args, "INVALID_ID_FORMAT").await?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn identifiers_limited_to_256_characters() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let alice = &team[0];
    let too_long = "a".repeat(257);
    for id in ["", too_long.as_str()] {
        for (tool, args) in identifier_calls(id) {
            alice.fails(tool, args, "INVALID_ID_LENGTH").await?;
        }
    }

    let longest = "b".repeat(256);
    alice
        .ok(
            "create_project",
            json!({ "project_id": longest, "name": "Longest id" }),
        )
        .await?;
    alice.ok("store_resource", store(&longest, "x")).await?;
    Ok(())
}

#[tokio::test]
async fn creator_agent_argument_rejected() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let alice = &team[0];
    let mut args = store("doc", "x");
    args["creator_agent"] = json!("alice");
    alice
        .fails("store_resource", args, "INVALID_PARAMETER")
        .await?;
    alice
        .fails(
            "get_resource",
            json!({ "project_id": "checks", "resource_id": "doc", "agent_name": "alice" }),
            "RESOURCE_NOT_FOUND",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn wrong_argument_type_is_tool_error() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let alice = &team[0];
    let cases = [
        (
            "create_project",
            json!({ "project_id": "typed", "name": 5 }),
            "name",
        ),
        (
            "create_project",
            json!({ "project_id": 7, "name": "Typed" }),
            "project_id",
        ),
        ("list_projects", json!({ "limit": "ten" }), "limit"),
        (
            "receive_messages",
            json!({ "project_id": "checks", "agent_name": "alice", "wait": "yes" }),
            "wait",
        ),
        (
            "join_project",
            json!({ "project_id": "checks", "agent_name": "carol", "capabilities": "review" }),
            "capabilities",
        ),
    ];
    for (tool, args, argument) in cases {
        let error = alice.fails(tool, args, "INVALID_PARAMETER").await?;
        let message = error["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(argument),
            "{tool}: the error message does not name {argument}: {error}"
        );
    }
    let listed = alice.ok("list_projects", json!({})).await?;
    assert_eq!(
        listed["projects"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    Ok(())
}

#[tokio::test]
async fn missing_required_argument_is_tool_error() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let alice = &team[0];
    let cases = [
        ("create_project", json!({ "project_id": "partial" }), "name"),
        (
            "join_project",
            json!({ "project_id": "checks" }),
            "agent_name",
        ),
        (
            "store_resource",
            json!({ "project_id": "checks", "resource_id": "doc", "agent_name": "alice" }),
            "name",
        ),
        ("get_project_info", json!({}), "project_id"),
        (
            "send_message",
            json!({ "project_id": "checks", "from_agent": "alice", "to_agent": "bob", "reply_expected": true }),
            "payload",
        ),
    ];
    for (tool, args, argument) in cases {
        let error = alice.fails(tool, args, "INVALID_PARAMETER").await?;
        let message = error["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(argument),
            "{tool}: the error message does not name {argument}: {error}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn reply_expected_must_be_boolean() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let (alice, bob) = (&team[0], &team[1]);
    let mut missing = message(json!({ "to_agent": "bob" }));
    missing
        .as_object_mut()
        .context("arguments are not an object")?
        .remove("reply_expected");
    alice
        .fails("send_message", missing, "REPLY_EXPECTED_REQUIRED")
        .await?;
    for value in [json!("yes"), json!(1), json!(null), json!("true")] {
        let mut args = message(json!({ "to_agent": "bob" }));
        args["reply_expected"] = value;
        alice
            .fails("send_message", args, "REPLY_EXPECTED_REQUIRED")
            .await?;
    }
    let inbox = bob
        .ok(
            "receive_messages",
            json!({ "project_id": "checks", "agent_name": "bob" }),
        )
        .await?;
    assert_eq!(inbox["messages"], json!([]));
    Ok(())
}

#[tokio::test]
async fn message_needs_exactly_one_target() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let (alice, bob) = (&team[0], &team[1]);
    for target in [
        json!({ "to_agent": "bob", "broadcast": true }),
        json!({}),
        json!({ "broadcast": false }),
    ] {
        alice
            .fails("send_message", message(target), "INVALID_MESSAGE_TARGET")
            .await?;
    }
    let inbox = bob
        .ok(
            "receive_messages",
            json!({ "project_id": "checks", "agent_name": "bob" }),
        )
        .await?;
    assert_eq!(inbox["messages"], json!([]));
    Ok(())
}

#[tokio::test]
async fn json_content_depth_limited_to_100() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let alice = &team[0];

    let deepest_arrays = nested_arrays(100);
    alice
        .ok("store_resource", store("arrays", &deepest_arrays))
        .await?;
    let deepest_objects = nested_objects(100);
    alice
        .ok("store_resource", store("objects", &deepest_objects))
        .await?;
    let read = alice
        .ok(
            "get_resource",
            json!({ "project_id": "checks", "resource_id": "arrays", "agent_name": "alice" }),
        )
        .await?;
    assert_eq!(content_of(&read)?, deepest_arrays);

    alice
        .fails(
            "store_resource",
            store("too-deep", &nested_arrays(101)),
            "JSON_TOO_DEEP",
        )
        .await?;
    alice
        .fails(
            "store_resource",
            store("too-deep", &nested_objects(101)),
            "JSON_TOO_DEEP",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn invalid_json_content_rejected() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let alice = &team[0];
    for content in ["{bad", "[1, 2", "{\"a\": }", "[1] trailing"] {
        alice
            .fails("store_resource", store("broken", content), "INVALID_JSON")
            .await?;
    }
    // Only content that starts with `{` or `[` is taken as JSON.
    alice
        .ok(
            "store_resource",
            store("prose", "plain text with a { brace"),
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn content_over_size_limit_rejected() -> Result<()> {
    let options = ServerOptions {
        max_payload_size: Some(64),
        ..ServerOptions::default()
    };
    let (_sandbox, _server, team) = start_team(&options).await?;
    let alice = &team[0];

    alice
        .ok("store_resource", store("at-limit", &"x".repeat(64)))
        .await?;
    alice
        .fails(
            "store_resource",
            store("over-limit", &"x".repeat(65)),
            "RESOURCE_TOO_LARGE",
        )
        .await?;
    // 33 two-byte characters are 66 bytes: the limit counts bytes, not characters.
    alice
        .fails(
            "store_resource",
            store("multibyte", &"é".repeat(33)),
            "RESOURCE_TOO_LARGE",
        )
        .await?;
    // Size comes first: oversized text is rejected for its size whatever JSON it resembles.
    let broken_json = format!("{{{}", "x".repeat(64));
    let deep_json = format!("{}{}", "[".repeat(101), "]".repeat(101));
    for (resource_id, content) in [("broken-json", broken_json), ("deep-json", deep_json)] {
        alice
            .fails(
                "store_resource",
                store(resource_id, &content),
                "RESOURCE_TOO_LARGE",
            )
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn size_limit_from_environment() -> Result<()> {
    let options = ServerOptions::default().with_env("BRAINSTORM_MAX_PAYLOAD_SIZE", "32");
    let (_sandbox, _server, team) = start_team(&options).await?;
    let alice = &team[0];
    alice
        .ok("store_resource", store("at-limit", &"x".repeat(32)))
        .await?;
    alice
        .fails(
            "store_resource",
            store("over-limit", &"x".repeat(33)),
            "RESOURCE_TOO_LARGE",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn size_flag_overrides_environment() -> Result<()> {
    let options = ServerOptions {
        max_payload_size: Some(64),
        ..ServerOptions::default().with_env("BRAINSTORM_MAX_PAYLOAD_SIZE", "32")
    };
    let (_sandbox, _server, team) = start_team(&options).await?;
    let alice = &team[0];
    alice
        .ok("store_resource", store("between", &"x".repeat(50)))
        .await?;
    Ok(())
}

#[tokio::test]
async fn results_repeat_json_as_structured_content() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let client = team[0].client();
    let calls = [
        ("version", json!({})),
        ("get_project_info", json!({ "project_id": "checks" })),
        ("get_project_info", json!({ "project_id": "missing" })),
    ];
    for (tool, args) in calls {
        let Value::Object(arguments) = args else {
            unreachable!("arguments are written as objects")
        };
        let request = CallToolRequestParams::new(tool).with_arguments(arguments);
        let result = timeout(CALL_LIMIT, client.call_tool(request))
            .await
            .context("tools/call timed out")?
            .context("tools/call failed")?;
        assert_eq!(result.content.len(), 1, "{tool}: {result:?}");
        let text = &result.content[0]
            .as_text()
            .with_context(|| format!("{tool}: the content item is not text"))?
            .text;
        let from_text: Value = serde_json::from_str(text)
            .with_context(|| format!("{tool}: the text is not JSON: {text}"))?;
        assert!(
            from_text.is_object(),
            "{tool}: the text is not a JSON object: {text}"
        );
        assert_eq!(
            result.structured_content.as_ref(),
            Some(&from_text),
            "{tool}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn version_names_its_unknown_argument() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let rejected = team[0]
        .fails("version", json!({ "junk": 1 }), "INVALID_PARAMETER")
        .await?;
    assert_eq!(rejected["details"]["argument"], "junk");
    assert!(
        text_field(&rejected, "error")?.ends_with("this tool takes no arguments"),
        "{rejected}"
    );
    Ok(())
}
