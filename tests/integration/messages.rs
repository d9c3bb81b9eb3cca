//! Messages: direct and broadcast delivery, order, long-poll receive and expiry.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::common::{
    HttpServer, Sandbox, ServerOptions, StdioServer, directory_of, expect_code, payloads_of,
    project_team, unread_count,
};

/// Arguments of a direct `send_message` in project `talk`.
fn direct(from: &str, to: &str, payload: Value) -> Value {
    json!({
        "project_id": "talk",
        "from_agent": from,
        "to_agent": to,
        "reply_expected": true,
        "payload": payload,
    })
}

/// Arguments of a broadcast `send_message` in project `talk`.
fn broadcast(from: &str, payload: Value) -> Value {
    json!({
        "project_id": "talk",
        "from_agent": from,
        "broadcast": true,
        "reply_expected": true,
        "payload": payload,
    })
}

/// Arguments of a `receive_messages` call in project `talk`.
fn inbox(agent: &str) -> Value {
    json!({ "project_id": "talk", "agent_name": agent })
}

/// Returns the `messages` array of a `receive_messages` result.
fn messages_of(result: &Value) -> Result<&Vec<Value>> {
    result
        .get("messages")
        .and_then(Value::as_array)
        .with_context(|| format!("no messages array in {result}"))
}

async fn start_team() -> Result<(Sandbox, HttpServer, Vec<crate::common::Session>)> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let sessions = project_team(&server, "talk", &["alice", "bob", "carol"]).await?;
    Ok((sandbox, server, sessions))
}

#[tokio::test]
async fn direct_message_reaches_only_recipient() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob, carol) = (&team[0], &team[1], &team[2]);

    let sent = alice
        .ok(
            "send_message",
            direct("alice", "bob", json!({ "text": "hello bob" })),
        )
        .await?;
    assert_eq!(sent["recipients"], json!(["bob"]));
    let message_id = sent["message_id"].as_str().context("no message_id")?;

    let received = bob.ok("receive_messages", inbox("bob")).await?;
    let messages = messages_of(&received)?;
    assert_eq!(messages.len(), 1, "bob's inbox: {received}");
    assert_eq!(received["count"], json!(1));
    let message = &messages[0];
    assert_eq!(message["message_id"], json!(message_id));
    assert_eq!(message["from_agent"], json!("alice"));
    assert_eq!(message["to_agent"], json!("bob"));
    assert_eq!(message["reply_expected"], json!(true));
    assert_eq!(message["payload"], json!({ "text": "hello bob" }));
    assert!(
        message["created_at"].is_string(),
        "created_at missing: {message}"
    );

    let carol_inbox = carol.ok("receive_messages", inbox("carol")).await?;
    assert_eq!(
        messages_of(&carol_inbox)?.len(),
        0,
        "carol got bob's message: {carol_inbox}"
    );
    let alice_inbox = alice.ok("receive_messages", inbox("alice")).await?;
    assert_eq!(
        messages_of(&alice_inbox)?.len(),
        0,
        "the sender got its own message: {alice_inbox}"
    );
    Ok(())
}

#[tokio::test]
async fn broadcast_reaches_everyone_but_sender() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob, carol) = (&team[0], &team[1], &team[2]);

    let sent = alice
        .ok("send_message", broadcast("alice", json!("standup in five")))
        .await?;
    let mut recipients: Vec<String> = serde_json::from_value(sent["recipients"].clone())
        .with_context(|| format!("recipients is not a list of names: {sent}"))?;
    recipients.sort();
    assert_eq!(recipients, ["bob", "carol"]);

    for (session, name) in [(bob, "bob"), (carol, "carol")] {
        let received = session.ok("receive_messages", inbox(name)).await?;
        let messages = messages_of(&received)?;
        assert_eq!(messages.len(), 1, "{name}'s inbox: {received}");
        assert_eq!(messages[0]["from_agent"], json!("alice"), "{name}");
        assert_eq!(messages[0]["broadcast"], json!(true), "{name}");
        assert_eq!(messages[0]["payload"], json!("standup in five"), "{name}");
    }
    let alice_inbox = alice.ok("receive_messages", inbox("alice")).await?;
    assert_eq!(
        messages_of(&alice_inbox)?.len(),
        0,
        "the sender got its own broadcast"
    );
    Ok(())
}

#[tokio::test]
async fn inbox_keeps_send_order() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob, carol) = (&team[0], &team[1], &team[2]);

    for seq in 0..12 {
        let payload = json!({ "seq": seq });
        match seq % 3 {
            0 => {
                alice
                    .ok("send_message", direct("alice", "bob", payload))
                    .await?
            }
            1 => {
                carol
                    .ok("send_message", direct("carol", "bob", payload))
                    .await?
            }
            _ => {
                alice
                    .ok("send_message", broadcast("alice", payload))
                    .await?
            }
        };
    }

    let received = bob.ok("receive_messages", inbox("bob")).await?;
    let expected: Vec<Value> = (0..12).map(|seq| json!({ "seq": seq })).collect();
    assert_eq!(payloads_of(&received)?, expected);
    Ok(())
}

#[tokio::test]
async fn receive_limit_takes_oldest_first() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    for seq in 0..5 {
        alice
            .ok("send_message", direct("alice", "bob", json!(seq)))
            .await?;
    }

    let mut limited = inbox("bob");
    limited["limit"] = json!(2);
    let first = bob.ok("receive_messages", limited).await?;
    assert_eq!(payloads_of(&first)?, [json!(0), json!(1)]);
    let rest = bob.ok("receive_messages", inbox("bob")).await?;
    assert_eq!(payloads_of(&rest)?, [json!(2), json!(3), json!(4)]);
    let empty = bob.ok("receive_messages", inbox("bob")).await?;
    assert_eq!(payloads_of(&empty)?, Vec::<Value>::new());
    assert_eq!(empty["count"], json!(0));
    Ok(())
}

#[tokio::test]
async fn status_counts_unread_without_consuming() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    alice
        .ok("send_message", direct("alice", "bob", json!("one")))
        .await?;
    alice
        .ok("send_message", broadcast("alice", json!("two")))
        .await?;

    let bob_directory = directory_of("bob");
    let first = bob.status(&bob_directory).await?;
    assert_eq!(unread_count(&first, "talk")?, 2);
    let second = bob.status(&bob_directory).await?;
    assert_eq!(unread_count(&second, "talk")?, 2);

    let received = bob.ok("receive_messages", inbox("bob")).await?;
    assert_eq!(payloads_of(&received)?, [json!("one"), json!("two")]);
    let after = bob.status(&bob_directory).await?;
    assert_eq!(unread_count(&after, "talk")?, 0);
    Ok(())
}

#[tokio::test]
async fn waiting_receiver_gets_later_message() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    let mut wait = inbox("bob");
    wait["wait"] = json!(true);
    wait["timeout_seconds"] = json!(30);

    // join! polls the waiter first, so its request goes out before the message is sent.
    let (received, sent) = tokio::join!(
        timeout(
            Duration::from_secs(10),
            bob.call_within("receive_messages", wait, Duration::from_secs(40))
        ),
        alice.ok("send_message", direct("alice", "bob", json!("wake up"))),
    );
    sent?;
    let received = received
        .context("the waiting receiver did not return within 10 s of the send")??
        .success()?;
    assert_ne!(
        received.get("timeout"),
        Some(&json!(true)),
        "the wait timed out: {received}"
    );
    assert_eq!(payloads_of(&received)?, [json!("wake up")]);
    Ok(())
}

#[tokio::test]
async fn receive_wait_times_out() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let bob = &team[1];
    let mut wait = inbox("bob");
    wait["wait"] = json!(true);
    wait["timeout_seconds"] = json!(1);

    let result = bob.ok("receive_messages", wait).await?;
    assert_eq!(result["timeout"], json!(true));
    assert_eq!(result["retry"], json!(true));
    assert_eq!(result["count"], json!(0));
    assert_eq!(payloads_of(&result)?, Vec::<Value>::new());
    let waited_ms = result["waited_ms"].as_u64().context("no waited_ms")?;
    assert!(waited_ms >= 900, "waited only {waited_ms} ms of a 1 s wait");
    Ok(())
}

#[tokio::test]
async fn expired_messages_are_not_returned() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions {
        message_ttl_secs: Some(1),
        ..ServerOptions::default()
    };
    let server = HttpServer::start(&sandbox, &options).await?;
    let team = project_team(&server, "talk", &["alice", "bob"]).await?;
    let (alice, bob) = (&team[0], &team[1]);
    alice
        .ok("send_message", direct("alice", "bob", json!("stale")))
        .await?;

    // The message must outlive its 1 s TTL, so real time has to pass here.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    alice
        .ok("send_message", direct("alice", "bob", json!("fresh")))
        .await?;

    let status = bob.status(&directory_of("bob")).await?;
    assert_eq!(
        unread_count(&status, "talk")?,
        1,
        "status counts the expired message"
    );
    let received = bob.ok("receive_messages", inbox("bob")).await?;
    assert_eq!(payloads_of(&received)?, [json!("fresh")]);
    Ok(())
}

#[tokio::test]
async fn unanswerable_message_carries_reply_warning() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob, carol) = (&team[0], &team[1], &team[2]);
    let mut no_reply = direct("alice", "bob", json!("fyi"));
    no_reply["reply_expected"] = json!(false);
    alice.ok("send_message", no_reply).await?;
    alice
        .ok(
            "send_message",
            direct("alice", "carol", json!("please answer")),
        )
        .await?;

    let bob_inbox = bob.ok("receive_messages", inbox("bob")).await?;
    assert_eq!(bob_inbox["messages"][0]["reply_expected"], json!(false));
    let warnings = bob_inbox["reply_warnings"].as_array();
    assert!(
        warnings.is_some_and(|list| !list.is_empty()),
        "no reply_warnings for a reply_expected=false message: {bob_inbox}"
    );

    let carol_inbox = carol.ok("receive_messages", inbox("carol")).await?;
    let carol_warnings = carol_inbox["reply_warnings"].as_array();
    assert!(
        carol_warnings.is_none_or(|list| list.is_empty()),
        "reply_warnings for a message that expects a reply: {carol_inbox}"
    );
    Ok(())
}

#[tokio::test]
async fn handoff_message_carries_alert() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    bob.ok(
        "send_message",
        direct(
            "bob",
            "alice",
            json!({ "type": "handoff", "task": "review the parser" }),
        ),
    )
    .await?;

    let received = alice.ok("receive_messages", inbox("alice")).await?;
    assert_eq!(received["messages"][0]["payload"]["type"], json!("handoff"));
    let alerts = received["handoff_alerts"].as_array();
    assert!(
        alerts.is_some_and(|list| !list.is_empty()),
        "no handoff_alerts for a handoff payload: {received}"
    );
    Ok(())
}

#[tokio::test]
async fn sender_and_recipient_must_be_members() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);

    alice
        .fails(
            "send_message",
            direct("ghost", "bob", json!("boo")),
            "SENDER_NOT_FOUND",
        )
        .await?;
    alice
        .fails(
            "send_message",
            direct("alice", "ghost", json!("anyone?")),
            "RECIPIENT_NOT_FOUND",
        )
        .await?;

    let received = bob.ok("receive_messages", inbox("bob")).await?;
    assert_eq!(payloads_of(&received)?, Vec::<Value>::new());
    Ok(())
}

#[tokio::test]
async fn waiter_over_limit_rejected() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions {
        max_waiters: Some(1),
        ..ServerOptions::default()
    };
    let server = HttpServer::start(&sandbox, &options).await?;
    let team = project_team(&server, "talk", &["alice", "bob"]).await?;
    let (alice, bob) = (&team[0], &team[1]);
    let mut wait = inbox("bob");
    wait["wait"] = json!(true);
    wait["timeout_seconds"] = json!(30);

    // With room for one waiter, whichever of two concurrent waits arrives second is rejected
    // at once, while the other keeps waiting until a message arrives.
    let first = bob.call_within("receive_messages", wait.clone(), Duration::from_secs(40));
    let second = bob.call_within("receive_messages", wait, Duration::from_secs(40));
    tokio::pin!(first, second);
    let (rejected, still_waiting) = timeout(Duration::from_secs(10), async {
        tokio::select! {
            outcome = &mut first => (outcome, second),
            outcome = &mut second => (outcome, first),
        }
    })
    .await
    .context("neither of two waits over the limit returned within 10 s")?;
    expect_code(rejected?, "TOO_MANY_WAITERS");

    alice
        .ok(
            "send_message",
            direct("alice", "bob", json!("for the waiter")),
        )
        .await?;
    let delivered = timeout(Duration::from_secs(10), still_waiting)
        .await
        .context("the remaining waiter did not return within 10 s of the send")??
        .success()?;
    assert_eq!(payloads_of(&delivered)?, [json!("for the waiter")]);
    Ok(())
}

#[tokio::test]
async fn cancelled_wait_consumes_nothing() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server =
        StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory_of("alice")).await?;
    let session = server.session();
    session
        .ok(
            "create_project",
            json!({ "project_id": "talk", "name": "Talk", "created_by": "alice" }),
        )
        .await?;
    // One stdio session acts for bob too, through the per-call working_directory argument.
    let as_bob = |mut args: Value| {
        args["working_directory"] = json!(directory_of("bob"));
        args
    };
    session
        .ok(
            "join_project",
            as_bob(json!({ "project_id": "talk", "agent_name": "bob" })),
        )
        .await?;

    // Dropping the call on the client's timeout makes rmcp send notifications/cancelled. Over
    // stdio that notification reaches the server before the send_message request below.
    let mut wait = inbox("alice");
    wait["wait"] = json!(true);
    wait["timeout_seconds"] = json!(30);
    let abandoned = timeout(
        Duration::from_millis(500),
        session.call_within("receive_messages", wait, Duration::from_secs(40)),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the wait returned before any message: {abandoned:?}"
    );

    session
        .ok(
            "send_message",
            as_bob(direct("bob", "alice", json!("after the cancel"))),
        )
        .await?;
    let received = session.ok("receive_messages", inbox("alice")).await?;
    assert_eq!(payloads_of(&received)?, [json!("after the cancel")]);
    Ok(())
}
