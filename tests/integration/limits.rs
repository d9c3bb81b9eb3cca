//! Bounds on inputs that would otherwise grow without limit: each gets a structured error and
//! leaves the database as it was.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::common::{HttpServer, Sandbox, ServerOptions, Session, project_team};

fn direct(from: &str, to: &str, n: usize) -> Value {
    json!({"project_id": "limits", "from_agent": from, "to_agent": to, "reply_expected": false,
           "payload": {"type": "note", "n": n}})
}

/// Returns how many messages a `receive_messages` call hands out.
async fn drain(session: &Session, agent: &str) -> Result<usize> {
    let inbox = session
        .ok(
            "receive_messages",
            json!({"project_id": "limits", "agent_name": agent, "limit": 100}),
        )
        .await?;
    Ok(inbox["messages"].as_array().context("messages")?.len())
}

#[tokio::test]
async fn full_inbox_rejects_sends_until_read() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let options = ServerOptions::default().with_args(&["--max-inbox", "3"]);
    let server = HttpServer::start(&sandbox, &options).await?;
    let team = project_team(&server, "limits", &["alice", "bob", "carol"]).await?;
    let (alice, bob, carol) = (&team[0], &team[1], &team[2]);
    for n in 0..3 {
        alice.ok("send_message", direct("alice", "bob", n)).await?;
    }

    let rejected = alice
        .fails("send_message", direct("alice", "bob", 3), "INBOX_FULL")
        .await?;
    assert_eq!(rejected["details"]["agent_name"], "bob", "{rejected}");
    assert_eq!(rejected["details"]["max_unread"], 3, "{rejected}");

    // A broadcast reaches every recipient or none: alice's inbox has room, bob's does not.
    let broadcast = json!({"project_id": "limits", "from_agent": "carol", "broadcast": true,
                           "reply_expected": false, "payload": {"type": "announcement"}});
    carol
        .fails("send_message", broadcast.clone(), "INBOX_FULL")
        .await?;
    assert_eq!(
        drain(alice, "alice").await?,
        0,
        "the rejected broadcast reached alice"
    );

    assert_eq!(drain(bob, "bob").await?, 3);
    carol.ok("send_message", broadcast).await?;
    assert_eq!(drain(alice, "alice").await?, 1);
    assert_eq!(drain(bob, "bob").await?, 1);
    Ok(())
}

#[tokio::test]
async fn tag_and_permission_counts_are_bounded() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let team = project_team(&server, "limits", &["alice"]).await?;
    let alice = &team[0];
    let bob = server.agent("/work/bob").await?;
    let many: Vec<String> = (0..65).map(|i| format!("tag-{i}")).collect();
    let labels: serde_json::Map<String, Value> =
        many.iter().map(|tag| (tag.clone(), json!("x"))).collect();

    let join = |extra: Value| {
        let mut args = json!({"project_id": "limits", "agent_name": "bob"});
        args.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        args
    };
    let rejected = bob
        .fails(
            "join_project",
            join(json!({"capabilities": many})),
            "INVALID_PARAMETER",
        )
        .await?;
    assert_eq!(rejected["details"]["argument"], "capabilities");
    let rejected = bob
        .fails(
            "join_project",
            join(json!({"labels": labels})),
            "INVALID_PARAMETER",
        )
        .await?;
    assert_eq!(rejected["details"]["argument"], "labels");
    // Each over-long text is reported under the argument that carries it.
    let long = "x".repeat(257);
    let long_texts = [
        (json!({"capabilities": [long]}), "capabilities"),
        (json!({"labels": {"role": long}}), "labels"),
        (json!({"labels": {long.clone(): "role"}}), "labels"),
    ];
    for (extra, argument) in long_texts {
        let rejected = bob
            .fails("join_project", join(extra), "INVALID_PARAMETER")
            .await?;
        assert_eq!(rejected["details"]["argument"], argument);
        assert_eq!(rejected["details"]["max_length"], 256);
    }
    let info = alice
        .ok("get_project_info", json!({"project_id": "limits"}))
        .await?;
    assert_eq!(
        info["members"].as_array().map(Vec::len),
        Some(1),
        "a rejected join added a member"
    );

    let readers: Vec<String> = (0..257).map(|i| format!("agent-{i}")).collect();
    let store = json!({"project_id": "limits", "resource_id": "notes", "name": "Notes",
                       "agent_name": "alice", "content": "x", "permissions": {"read": readers}});
    let rejected = alice
        .fails("store_resource", store, "INVALID_PARAMETER")
        .await?;
    assert_eq!(rejected["details"]["argument"], "permissions.read");
    alice
        .fails(
            "get_resource",
            json!({"project_id": "limits", "resource_id": "notes", "agent_name": "alice"}),
            "RESOURCE_NOT_FOUND",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn receive_with_zero_limit_takes_nothing() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let team = project_team(&server, "limits", &["alice", "bob"]).await?;
    team[0]
        .ok("send_message", direct("alice", "bob", 0))
        .await?;

    let zero = json!({"project_id": "limits", "agent_name": "bob", "limit": 0});
    let rejected = team[1]
        .fails("receive_messages", zero, "INVALID_PARAMETER")
        .await?;

    assert_eq!(rejected["details"]["argument"], "limit");
    assert_eq!(
        drain(&team[1], "bob").await?,
        1,
        "the rejected call took the message"
    );
    Ok(())
}
