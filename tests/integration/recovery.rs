//! Recovering received messages: `receive_messages {include_read: true}` returns earlier-read
//! messages that have not expired, for a client whose earlier response was lost.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, payloads_of, project_team, text_field,
};

/// Arguments of a direct `send_message` from `alice` to `bob` in project `talk`.
fn to_bob(payload: Value) -> Value {
    json!({
        "project_id": "talk",
        "from_agent": "alice",
        "to_agent": "bob",
        "reply_expected": true,
        "payload": payload,
    })
}

/// Arguments of a `receive_messages` call for `bob`, optionally with `include_read`.
fn bob_inbox(include_read: bool) -> Value {
    let mut args = json!({ "project_id": "talk", "agent_name": "bob" });
    if include_read {
        args["include_read"] = json!(true);
    }
    args
}

/// Returns the payloads of the `read_messages` of a `receive_messages` result, in order.
fn read_payloads(result: &Value) -> Result<Vec<Value>> {
    let messages = result["read_messages"]
        .as_array()
        .with_context(|| format!("no read_messages array in {result}"))?;
    Ok(messages
        .iter()
        .map(|message| message["payload"].clone())
        .collect())
}

async fn start_team(options: &ServerOptions) -> Result<(Sandbox, HttpServer, Vec<Session>)> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, options).await?;
    let team = project_team(&server, "talk", &["alice", "bob"]).await?;
    Ok((sandbox, server, team))
}

#[tokio::test]
async fn read_message_is_recoverable() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let (alice, bob) = (&team[0], &team[1]);
    let sent = alice.ok("send_message", to_bob(json!("hello"))).await?;
    let message_id = text_field(&sent, "message_id")?;

    let first = bob.ok("receive_messages", bob_inbox(false)).await?;
    assert_eq!(payloads_of(&first)?, [json!("hello")]);

    let again = bob.ok("receive_messages", bob_inbox(true)).await?;
    assert_eq!(payloads_of(&again)?, Vec::<Value>::new());
    assert_eq!(read_payloads(&again)?, [json!("hello")]);
    assert_eq!(
        again["read_messages"][0]["message_id"],
        json!(message_id),
        "{again}"
    );
    assert_eq!(
        again["read_messages"][0]["from_agent"],
        json!("alice"),
        "{again}"
    );
    Ok(())
}

#[tokio::test]
async fn new_and_read_messages_stay_apart() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let (alice, bob) = (&team[0], &team[1]);
    alice.ok("send_message", to_bob(json!("first"))).await?;
    bob.ok("receive_messages", bob_inbox(false)).await?;
    alice.ok("send_message", to_bob(json!("second"))).await?;

    let result = bob.ok("receive_messages", bob_inbox(true)).await?;
    assert_eq!(payloads_of(&result)?, [json!("second")]);
    assert_eq!(read_payloads(&result)?, [json!("first")]);

    // The message taken by that call is read now, so the next recovery returns both.
    let later = bob.ok("receive_messages", bob_inbox(true)).await?;
    assert_eq!(payloads_of(&later)?, Vec::<Value>::new());
    assert_eq!(read_payloads(&later)?, [json!("first"), json!("second")]);
    Ok(())
}

#[tokio::test]
async fn plain_receive_omits_read_messages() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&ServerOptions::default()).await?;
    let (alice, bob) = (&team[0], &team[1]);
    alice.ok("send_message", to_bob(json!("once"))).await?;
    bob.ok("receive_messages", bob_inbox(false)).await?;

    let result = bob.ok("receive_messages", bob_inbox(false)).await?;
    assert_eq!(payloads_of(&result)?, Vec::<Value>::new());
    assert!(
        result.get("read_messages").is_none(),
        "read_messages without include_read: {result}"
    );
    Ok(())
}

#[tokio::test]
async fn expired_read_messages_not_recovered() -> Result<()> {
    let options = ServerOptions {
        message_ttl_secs: Some(2),
        ..ServerOptions::default()
    };
    let (_sandbox, _server, team) = start_team(&options).await?;
    let (alice, bob) = (&team[0], &team[1]);
    alice
        .ok("send_message", to_bob(json!("short-lived")))
        .await?;
    let first = bob.ok("receive_messages", bob_inbox(false)).await?;
    assert_eq!(payloads_of(&first)?, [json!("short-lived")]);

    // The message must outlive its 2 s TTL, so real time has to pass here.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let result = bob.ok("receive_messages", bob_inbox(true)).await?;
    assert_eq!(read_payloads(&result)?, Vec::<Value>::new());
    Ok(())
}
