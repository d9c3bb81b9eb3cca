//! Projects and membership: join rules, coordinator handover, handoff authority, leaving,
//! deleting, archiving and listing.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{Value, json};
use tokio::time::timeout;

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, directory_of, member, member_names, payloads_of,
    project_team, status_entry, text_field,
};

fn project_info() -> Value {
    json!({ "project_id": "crew" })
}

fn join(agent_name: &str) -> Value {
    json!({ "project_id": "crew", "agent_name": agent_name })
}

fn handover(from: &str, to: &str) -> Value {
    json!({ "project_id": "crew", "from_agent": from, "to_agent": to })
}

async fn start_team(names: &[&str]) -> Result<(Sandbox, HttpServer, Vec<Session>)> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let sessions = project_team(&server, "crew", names).await?;
    Ok((sandbox, server, sessions))
}

#[tokio::test]
async fn creator_becomes_coordinator() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let alice = server.agent(&directory_of("alice")).await?;
    let created = alice
        .ok(
            "create_project",
            json!({
                "project_id": "crew",
                "name": "The Crew",
                "description": "builds things",
                "context": { "repo": "example" },
                "created_by": "alice",
            }),
        )
        .await?;
    assert_eq!(created["project"]["project_id"], json!("crew"));
    assert_eq!(created["project"]["name"], json!("The Crew"));
    assert_eq!(created["project"]["created_by"], json!("alice"));
    assert_eq!(created["role"], json!("coordinator"));
    assert!(
        created["agent_id"].is_string(),
        "no agent_id for created_by: {created}"
    );

    let bob = server.agent(&directory_of("bob")).await?;
    let joined = bob.ok("join_project", join("bob")).await?;
    assert_eq!(joined["role"], json!("contributor"));
    assert_eq!(joined["project_id"], json!("crew"));
    assert_eq!(joined["agent_name"], json!("bob"));
    let description = text_field(&joined, "role_description")?;
    assert!(!description.is_empty(), "empty role_description");

    let info = bob.ok("get_project_info", project_info()).await?;
    assert_eq!(info["coordinator"], json!("alice"));
    assert_eq!(info["project"]["description"], json!("builds things"));
    assert_eq!(info["project"]["context"], json!({ "repo": "example" }));
    assert_eq!(member_names(&info)?, ["alice", "bob"]);
    assert_eq!(member(&info, "alice")?["agent_id"], created["agent_id"]);

    let status = alice.status(&directory_of("alice")).await?;
    let entry = status_entry(&status, "crew")?;
    assert_eq!(entry["role"], json!("coordinator"));
    assert_eq!(entry["agent_name"], json!("alice"));
    assert_eq!(entry["project_name"], json!("The Crew"));
    Ok(())
}

#[tokio::test]
async fn rejoin_keeps_agent_id_and_joined_at() -> Result<()> {
    let (_sandbox, server, team) = start_team(&["alice", "bob"]).await?;
    let bob = &team[1];
    let before = bob.ok("get_project_info", project_info()).await?;
    let agent_id = member(&before, "bob")?["agent_id"].clone();
    let joined_at = member(&before, "bob")?["joined_at"].clone();
    assert!(agent_id.is_string(), "bob has no agent_id: {before}");
    assert!(joined_at.is_string(), "bob has no joined_at: {before}");

    let rejoined = bob.ok("join_project", join("bob")).await?;
    assert_eq!(rejoined["agent_id"], agent_id);
    assert_eq!(rejoined["role"], json!("contributor"));

    // A new connection of the same client (same working directory) reclaims the name too.
    let reconnected = server.agent(&directory_of("bob")).await?;
    let again = reconnected.ok("join_project", join("bob")).await?;
    assert_eq!(again["agent_id"], agent_id);

    let after = bob.ok("get_project_info", project_info()).await?;
    assert_eq!(member(&after, "bob")?["agent_id"], agent_id);
    assert_eq!(member(&after, "bob")?["joined_at"], joined_at);
    assert_eq!(member_names(&after)?, ["alice", "bob"]);
    Ok(())
}

#[tokio::test]
async fn name_of_other_client_is_taken() -> Result<()> {
    let (_sandbox, server, team) = start_team(&["alice", "bob"]).await?;
    let carol = server.agent(&directory_of("carol")).await?;

    for name in ["bob", "Bob", "BOB", "alice", "ALICE"] {
        carol
            .fails("join_project", join(name), "AGENT_NAME_TAKEN")
            .await?;
    }

    let info = team[0].ok("get_project_info", project_info()).await?;
    assert_eq!(member_names(&info)?, ["alice", "bob"]);
    Ok(())
}

#[tokio::test]
async fn client_joins_under_one_name_only() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&["alice", "bob"]).await?;
    let bob = &team[1];
    bob.fails("join_project", join("robert"), "CLIENT_ALREADY_MEMBER")
        .await?;
    team[0]
        .fails("join_project", join("alice-two"), "CLIENT_ALREADY_MEMBER")
        .await?;

    let info = bob.ok("get_project_info", project_info()).await?;
    assert_eq!(member_names(&info)?, ["alice", "bob"]);
    Ok(())
}

#[tokio::test]
async fn join_of_missing_project_fails() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let bob = server.agent(&directory_of("bob")).await?;
    bob.fails("join_project", join("bob"), "PROJECT_NOT_FOUND")
        .await?;
    bob.fails("get_project_info", project_info(), "PROJECT_NOT_FOUND")
        .await?;
    Ok(())
}

#[tokio::test]
async fn handover_moves_coordinator_role() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&["alice", "bob", "carol"]).await?;
    let (alice, bob) = (&team[0], &team[1]);

    bob.fails(
        "handover_coordinator",
        handover("bob", "carol"),
        "NOT_COORDINATOR",
    )
    .await?;
    alice
        .fails(
            "handover_coordinator",
            handover("alice", "ghost"),
            "TO_AGENT_NOT_FOUND",
        )
        .await?;
    alice
        .fails(
            "handover_coordinator",
            handover("alice", "alice"),
            "ALREADY_COORDINATOR",
        )
        .await?;
    alice
        .fails(
            "handover_coordinator",
            handover("ghost", "bob"),
            "FROM_AGENT_NOT_FOUND",
        )
        .await?;
    let unchanged = alice.ok("get_project_info", project_info()).await?;
    assert_eq!(unchanged["coordinator"], json!("alice"));

    let handed = alice
        .ok("handover_coordinator", handover("alice", "bob"))
        .await?;
    assert_eq!(handed["coordinator"], json!("bob"));
    assert_eq!(handed["previous_coordinator"], json!("alice"));

    let info = alice.ok("get_project_info", project_info()).await?;
    assert_eq!(info["coordinator"], json!("bob"));
    alice
        .fails(
            "handover_coordinator",
            handover("alice", "carol"),
            "NOT_COORDINATOR",
        )
        .await?;

    let bob_status = bob.status(&directory_of("bob")).await?;
    assert_eq!(
        status_entry(&bob_status, "crew")?["role"],
        json!("coordinator")
    );
    let alice_status = alice.status(&directory_of("alice")).await?;
    assert_eq!(
        status_entry(&alice_status, "crew")?["role"],
        json!("contributor")
    );
    let bob_join = bob.ok("join_project", join("bob")).await?;
    assert_eq!(bob_join["role"], json!("coordinator"));
    Ok(())
}

#[tokio::test]
async fn handoff_messages_follow_roles() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&["alice", "bob"]).await?;
    let (alice, bob) = (&team[0], &team[1]);
    let message = |from: &str, to: &str, kind: &str, reply_expected: bool| {
        json!({
            "project_id": "crew",
            "from_agent": from,
            "to_agent": to,
            "reply_expected": reply_expected,
            "payload": { "type": kind, "summary": "parser work" },
        })
    };

    alice
        .fails(
            "send_message",
            message("alice", "bob", "handoff", true),
            "HANDOFF_AUTHORITY_ERROR",
        )
        .await?;
    bob.fails(
        "send_message",
        message("bob", "alice", "handoff_accepted", true),
        "HANDOFF_AUTHORITY_ERROR",
    )
    .await?;
    bob.fails(
        "send_message",
        message("bob", "alice", "handoff_rejected", true),
        "HANDOFF_AUTHORITY_ERROR",
    )
    .await?;
    bob.fails(
        "send_message",
        message("bob", "alice", "handoff", false),
        "HANDOFF_REPLY_EXPECTED_REQUIRED",
    )
    .await?;
    alice
        .fails(
            "send_message",
            message("alice", "bob", "handoff_rejected", false),
            "HANDOFF_REPLY_EXPECTED_REQUIRED",
        )
        .await?;

    bob.ok("send_message", message("bob", "alice", "handoff", true))
        .await?;
    alice
        .ok(
            "send_message",
            message("alice", "bob", "handoff_accepted", false),
        )
        .await?;
    alice
        .ok(
            "send_message",
            message("alice", "bob", "handoff_rejected", true),
        )
        .await?;

    let alice_inbox = alice
        .ok(
            "receive_messages",
            json!({ "project_id": "crew", "agent_name": "alice" }),
        )
        .await?;
    let alice_kinds: Vec<Value> = payloads_of(&alice_inbox)?
        .iter()
        .map(|payload| payload["type"].clone())
        .collect();
    assert_eq!(alice_kinds, [json!("handoff")]);
    let bob_inbox = bob
        .ok(
            "receive_messages",
            json!({ "project_id": "crew", "agent_name": "bob" }),
        )
        .await?;
    let bob_kinds: Vec<Value> = payloads_of(&bob_inbox)?
        .iter()
        .map(|payload| payload["type"].clone())
        .collect();
    assert_eq!(
        bob_kinds,
        [json!("handoff_accepted"), json!("handoff_rejected")]
    );
    Ok(())
}

#[tokio::test]
async fn project_without_creator_cannot_be_removed() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let alice = server.agent(&directory_of("alice")).await?;
    let created = alice
        .ok(
            "create_project",
            json!({ "project_id": "crew", "name": "No creator" }),
        )
        .await?;
    assert!(
        created.get("agent_id").is_none_or(Value::is_null),
        "agent_id without created_by: {created}"
    );
    alice.ok("join_project", join("alice")).await?;

    alice
        .fails("delete_project", join("alice"), "NO_CREATOR_DEFINED")
        .await?;
    alice
        .fails("archive_project", join("alice"), "NO_CREATOR_DEFINED")
        .await?;

    let info = alice.ok("get_project_info", project_info()).await?;
    assert_ne!(info["project"]["archived"], json!(true));
    assert_eq!(member_names(&info)?, ["alice"]);
    Ok(())
}

#[tokio::test]
async fn only_creator_deletes_project() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&["alice", "bob"]).await?;
    let (alice, bob) = (&team[0], &team[1]);
    alice
        .ok(
            "store_resource",
            json!({
                "project_id": "crew",
                "resource_id": "notes",
                "name": "Notes",
                "agent_name": "alice",
                "content": "draft",
            }),
        )
        .await?;
    alice
        .ok(
            "send_message",
            json!({
                "project_id": "crew",
                "from_agent": "alice",
                "to_agent": "bob",
                "reply_expected": false,
                "payload": "before the delete",
            }),
        )
        .await?;

    bob.fails("delete_project", join("bob"), "DELETE_PERMISSION_DENIED")
        .await?;
    bob.ok("get_project_info", project_info()).await?;

    let deleted = alice.ok("delete_project", join("alice")).await?;
    assert_eq!(deleted["deleted"], json!(true));
    assert_eq!(deleted["project_id"], json!("crew"));
    bob.fails("get_project_info", project_info(), "PROJECT_NOT_FOUND")
        .await?;
    let listed = bob.ok("list_projects", json!({})).await?;
    assert_eq!(listed["projects"], json!([]));
    let bob_status = bob.status(&directory_of("bob")).await?;
    assert_eq!(bob_status["projects"], json!([]));

    // A project created again under the same id starts empty.
    alice
        .ok(
            "create_project",
            json!({ "project_id": "crew", "name": "Again", "created_by": "alice" }),
        )
        .await?;
    bob.ok("join_project", join("bob")).await?;
    let resources = alice
        .ok(
            "list_resources",
            json!({ "project_id": "crew", "agent_name": "alice" }),
        )
        .await?;
    assert_eq!(resources["resources"], json!([]));
    let inbox = bob
        .ok(
            "receive_messages",
            json!({ "project_id": "crew", "agent_name": "bob" }),
        )
        .await?;
    assert_eq!(payloads_of(&inbox)?, Vec::<Value>::new());
    Ok(())
}

#[tokio::test]
async fn only_creator_archives_project() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&["alice", "bob"]).await?;
    let (alice, bob) = (&team[0], &team[1]);

    bob.fails("archive_project", join("bob"), "ARCHIVE_PERMISSION_DENIED")
        .await?;
    let unarchived = bob.ok("get_project_info", project_info()).await?;
    assert_ne!(unarchived["project"]["archived"], json!(true));

    let mut args = join("alice");
    args["reason"] = json!("release shipped");
    let archived = alice.ok("archive_project", args).await?;
    assert_eq!(archived["project"]["archived"], json!(true));

    let info = bob.ok("get_project_info", project_info()).await?;
    assert_eq!(info["project"]["archived"], json!(true));
    assert_eq!(info["project"]["archived_by"], json!("alice"));
    assert_eq!(info["project"]["archive_reason"], json!("release shipped"));
    assert!(
        info["project"]["archived_at"].is_string(),
        "no archived_at: {info}"
    );
    Ok(())
}

#[tokio::test]
async fn leaving_archives_unread_and_frees_name() -> Result<()> {
    let (_sandbox, server, team) = start_team(&["alice", "bob"]).await?;
    let (alice, bob) = (&team[0], &team[1]);
    let before = alice.ok("get_project_info", project_info()).await?;
    let old_agent_id = member(&before, "bob")?["agent_id"].clone();
    for text in ["first", "second"] {
        alice
            .ok(
                "send_message",
                json!({
                    "project_id": "crew",
                    "from_agent": "alice",
                    "to_agent": "bob",
                    "reply_expected": false,
                    "payload": text,
                }),
            )
            .await?;
    }

    let left = bob.ok("leave_project", join("bob")).await?;
    assert_eq!(left["left"], json!(true));
    assert_eq!(left["archived_messages"], json!(2));

    let info = alice.ok("get_project_info", project_info()).await?;
    assert_eq!(member_names(&info)?, ["alice"]);
    let bob_status = bob.status(&directory_of("bob")).await?;
    assert_eq!(bob_status["projects"], json!([]));

    let newcomer = server.agent(&directory_of("newcomer")).await?;
    let joined = newcomer.ok("join_project", join("bob")).await?;
    assert_ne!(joined["agent_id"], old_agent_id);
    let inbox = newcomer
        .ok(
            "receive_messages",
            json!({ "project_id": "crew", "agent_name": "bob" }),
        )
        .await?;
    assert_eq!(payloads_of(&inbox)?, Vec::<Value>::new());
    Ok(())
}

#[tokio::test]
async fn list_projects_paginates() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let alice = server.agent(&directory_of("alice")).await?;
    let mut expected = Vec::new();
    for index in 0..5 {
        let project_id = format!("project-{index}");
        alice
            .ok(
                "create_project",
                json!({ "project_id": project_id, "name": project_id }),
            )
            .await?;
        expected.push(project_id);
    }

    let mut seen = Vec::new();
    for (offset, returned) in [(0, 2), (2, 2), (4, 1), (6, 0)] {
        let page = alice
            .ok("list_projects", json!({ "offset": offset, "limit": 2 }))
            .await?;
        let projects = page["projects"]
            .as_array()
            .with_context(|| format!("no projects array in {page}"))?;
        assert_eq!(projects.len(), returned, "page at offset {offset}: {page}");
        assert_eq!(page["pagination"]["offset"], json!(offset), "{page}");
        assert_eq!(page["pagination"]["limit"], json!(2), "{page}");
        assert_eq!(page["pagination"]["returned"], json!(returned), "{page}");
        for project in projects {
            seen.push(text_field(project, "project_id")?.to_owned());
        }
    }
    seen.sort();
    assert_eq!(seen, expected);

    let all = alice.ok("list_projects", json!({})).await?;
    assert_eq!(all["projects"].as_array().map(Vec::len), Some(5));
    Ok(())
}

#[tokio::test]
async fn project_info_wait_sees_new_project() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let alice = server.agent(&directory_of("alice")).await?;
    let bob = server.agent(&directory_of("bob")).await?;

    // join! polls the waiter first, so its request goes out before the project is created.
    let (seen, created) = tokio::join!(
        timeout(
            Duration::from_secs(10),
            bob.call_within(
                "get_project_info",
                json!({ "project_id": "later", "wait": true, "timeout_seconds": 30 }),
                Duration::from_secs(40),
            )
        ),
        alice.ok(
            "create_project",
            json!({ "project_id": "later", "name": "Created later", "created_by": "alice" })
        ),
    );
    created?;
    let seen = seen
        .context("the waiting get_project_info did not return within 10 s of the create")??
        .success()?;
    assert_ne!(
        seen.get("timeout"),
        Some(&json!(true)),
        "the wait timed out: {seen}"
    );
    assert_eq!(seen["project"]["project_id"], json!("later"));
    assert_eq!(seen["coordinator"], json!("alice"));
    Ok(())
}

#[tokio::test]
async fn project_info_wait_times_out() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let bob = server.agent(&directory_of("bob")).await?;
    let result = bob
        .ok(
            "get_project_info",
            json!({ "project_id": "never", "wait": true, "timeout_seconds": 1 }),
        )
        .await?;
    assert_eq!(result["timeout"], json!(true));
    assert_eq!(result["retry"], json!(true));
    let waited_ms = result["waited_ms"].as_u64().context("no waited_ms")?;
    assert!(waited_ms >= 900, "waited only {waited_ms} ms of a 1 s wait");
    Ok(())
}

#[tokio::test]
async fn heartbeat_sets_online_state() -> Result<()> {
    let (_sandbox, _server, team) = start_team(&["alice", "bob"]).await?;
    let (alice, bob) = (&team[0], &team[1]);

    let offline = bob
        .ok(
            "heartbeat",
            json!({ "project_id": "crew", "agent_name": "bob", "online": false }),
        )
        .await?;
    assert_eq!(offline["agent_name"], json!("bob"));
    assert_eq!(offline["online"], json!(false));
    assert!(offline["last_seen"].is_string(), "no last_seen: {offline}");
    let info = alice.ok("get_project_info", project_info()).await?;
    assert_eq!(member(&info, "bob")?["online"], json!(false));

    let online = bob
        .ok(
            "heartbeat",
            json!({ "project_id": "crew", "agent_name": "bob" }),
        )
        .await?;
    assert_eq!(online["online"], json!(true));
    let info = alice.ok("get_project_info", project_info()).await?;
    assert_eq!(member(&info, "bob")?["online"], json!(true));

    bob.fails(
        "heartbeat",
        json!({ "project_id": "crew", "agent_name": "ghost" }),
        "MEMBER_NOT_FOUND",
    )
    .await?;
    Ok(())
}
