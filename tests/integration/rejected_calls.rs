//! Every rejected call leaves the stored state exactly as it was.

use anyhow::{Context, Result};
use serde_json::{Map, Value, json};

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, directory_of, etag_of, project_team, text_field,
};

const MEMBERS: [&str; 3] = ["alice", "bob", "carol"];

/// Removes every `last_seen` field. Successful agent calls made to take a snapshot may
/// refresh presence, so presence timestamps are not part of the compared state.
fn strip_last_seen(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("last_seen");
            map.values_mut().for_each(strip_last_seen);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_last_seen),
        _ => {}
    }
}

/// Collects the state that clients can observe without consuming anything. That is the project
/// info, the project list, each member's status with unread counts, each member's resource
/// list, the content, etag and version history of every document the member may read, and
/// the entries of every log. `outsider` is a client in no project, so only its status is taken.
async fn snapshot(members: &[Session], outsider: &Session) -> Result<Value> {
    let mut state = Map::new();
    state.insert(
        "info".to_owned(),
        members[0]
            .ok("get_project_info", json!({ "project_id": "vault" }))
            .await?,
    );
    state.insert(
        "projects".to_owned(),
        members[0].ok("list_projects", json!({})).await?,
    );
    state.insert(
        "outsider_status".to_owned(),
        outsider.status(&directory_of("outsider")).await?,
    );
    for (session, name) in members.iter().zip(MEMBERS) {
        state.insert(
            format!("{name}_status"),
            session.status(&directory_of(name)).await?,
        );
        let listed = session
            .ok(
                "list_resources",
                json!({ "project_id": "vault", "agent_name": name }),
            )
            .await?;
        let manifests = listed["resources"]
            .as_array()
            .with_context(|| format!("no resources array in {listed}"))?
            .clone();
        for manifest in manifests {
            let resource_id = text_field(&manifest, "resource_id")?;
            let target =
                json!({ "project_id": "vault", "resource_id": resource_id, "agent_name": name });
            let read = if manifest["kind"] == "log" {
                let target =
                    json!({ "project_id": "vault", "log_id": resource_id, "agent_name": name });
                let read = session.ok("read_log", target).await?;
                json!({ "entries": read["entries"] })
            } else {
                let read = session.ok("get_resource", target.clone()).await?;
                let history = session.ok("resource_history", target).await?;
                json!({ "content": read["content"], "etag": read["etag"], "history": history })
            };
            state.insert(format!("{name}_reads_{resource_id}"), read);
        }
        state.insert(format!("{name}_resources"), listed);
    }
    let mut state = Value::Object(state);
    strip_last_seen(&mut state);
    Ok(state)
}

/// Returns the top-level snapshot keys whose values differ between two snapshots.
fn changed_parts(before: &Value, after: &Value) -> Vec<String> {
    let (Some(before), Some(after)) = (before.as_object(), after.as_object()) else {
        return vec!["<whole snapshot>".to_owned()];
    };
    let mut keys: Vec<String> = before.keys().chain(after.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.retain(|key| before.get(key) != after.get(key));
    keys
}

fn store(agent: &str, resource_id: &str, content: &str) -> Value {
    json!({
        "project_id": "vault",
        "resource_id": resource_id,
        "name": "Vault item",
        "agent_name": agent,
        "content": content,
    })
}

/// Returns `args` with the fields of `extra` added.
fn with(mut args: Value, extra: Value) -> Value {
    if let (Some(args), Value::Object(extra)) = (args.as_object_mut(), extra) {
        args.extend(extra);
    }
    args
}

fn message(from: &str, extra: Value) -> Value {
    with(
        json!({ "project_id": "vault", "from_agent": from, "reply_expected": true, "payload": "x" }),
        extra,
    )
}

fn as_agent(agent: &str) -> Value {
    json!({ "project_id": "vault", "agent_name": agent })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_calls_leave_state_unchanged() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let home_file = sandbox.home().join("notes.txt");
    crate::common::write_file(&home_file, b"notes")?;
    let home_file = home_file.to_string_lossy().into_owned();
    let options = ServerOptions {
        max_payload_size: Some(1024),
        ..ServerOptions::default()
    };
    let server = HttpServer::start(&sandbox, &options).await?;
    let team = project_team(&server, "vault", &MEMBERS).await?;
    let outsider = server.agent(&directory_of("outsider")).await?;
    let (alice, bob) = (&team[0], &team[1]);

    // Some state for the rejected calls to disturb: two resources and unread messages.
    let first = alice
        .ok(
            "store_resource",
            with(
                store("alice", "doc", "{\"version\":1}"),
                json!({ "permissions": { "read": ["*"], "write": ["alice", "bob"] } }),
            ),
        )
        .await?;
    let stale_etag = etag_of(&first)?;
    let current = alice
        .ok(
            "store_resource",
            with(
                store("alice", "doc", "{\"version\":2}"),
                json!({ "etag": stale_etag }),
            ),
        )
        .await?;
    let current_etag = etag_of(&current)?;
    alice
        .ok(
            "store_resource",
            with(
                store("alice", "private", "alice only"),
                json!({ "permissions": { "read": ["alice"], "write": ["alice"] } }),
            ),
        )
        .await?;
    alice
        .ok(
            "send_message",
            message("alice", json!({ "to_agent": "bob" })),
        )
        .await?;
    bob.ok(
        "send_message",
        message("bob", json!({ "to_agent": "alice" })),
    )
    .await?;
    alice
        .ok(
            "send_message",
            message("alice", json!({ "broadcast": true })),
        )
        .await?;

    alice
        .ok("store_resource", store("alice", "counter", "7"))
        .await?;
    alice
        .ok(
            "append_log",
            json!({
                "project_id": "vault", "log_id": "journal", "agent_name": "alice",
                "entry": { "step": 1 }, "permissions": { "write": ["alice"] },
            }),
        )
        .await?;

    // (caller: 0-2 = member index, 3 = outsider, tool, arguments, expected code)
    let cases: Vec<(usize, &str, Value, &str)> = vec![
        (
            1,
            "store_resource",
            with(store("bob", "doc", "{}"), json!({ "etag": stale_etag })),
            "ETAG_MISMATCH",
        ),
        (
            1,
            "store_resource",
            store("bob", "doc", "{}"),
            "ETAG_REQUIRED",
        ),
        (
            0,
            "store_resource",
            with(store("alice", "doc", "{}"), json!({ "if_none_match": "*" })),
            "RESOURCE_EXISTS",
        ),
        (
            2,
            "store_resource",
            with(store("carol", "doc", "{}"), json!({ "etag": current_etag })),
            "WRITE_PERMISSION_DENIED",
        ),
        (
            1,
            "delete_resource",
            with(as_agent("bob"), json!({ "resource_id": "doc" })),
            "DELETE_PERMISSION_DENIED",
        ),
        (
            1,
            "get_resource",
            with(as_agent("bob"), json!({ "resource_id": "private" })),
            "READ_PERMISSION_DENIED",
        ),
        (
            0,
            "delete_resource",
            with(as_agent("alice"), json!({ "resource_id": "nothing" })),
            "RESOURCE_NOT_FOUND",
        ),
        (
            0,
            "store_resource",
            store(
                "alice",
                "deep",
                &format!("{}{}", "[".repeat(101), "]".repeat(101)),
            ),
            "JSON_TOO_DEEP",
        ),
        (
            0,
            "store_resource",
            store("alice", "doc", "{bad"),
            "INVALID_JSON",
        ),
        (
            0,
            "store_resource",
            store("alice", "big", &"x".repeat(2000)),
            "RESOURCE_TOO_LARGE",
        ),
        (
            0,
            "store_resource",
            with(
                store("alice", "both", "inline"),
                json!({ "source_path": home_file }),
            ),
            "CONFLICTING_PARAMETERS",
        ),
        (
            0,
            "store_resource",
            with(
                store("alice", "owned", "x"),
                json!({ "creator_agent": "alice" }),
            ),
            "INVALID_PARAMETER",
        ),
        (
            0,
            "store_resource",
            with(
                as_agent("alice"),
                json!({ "resource_id": "file", "name": "File", "source_path": "notes.txt" }),
            ),
            "UNSAFE_PATH",
        ),
        (
            0,
            "store_resource",
            store("alice", "a.b", "x"),
            "INVALID_ID_FORMAT",
        ),
        (3, "join_project", as_agent("bob"), "AGENT_NAME_TAKEN"),
        (3, "join_project", as_agent("Bob"), "AGENT_NAME_TAKEN"),
        (
            1,
            "join_project",
            as_agent("robert"),
            "CLIENT_ALREADY_MEMBER",
        ),
        (
            3,
            "join_project",
            json!({ "project_id": "elsewhere", "agent_name": "outsider" }),
            "PROJECT_NOT_FOUND",
        ),
        (
            3,
            "create_project",
            json!({ "project_id": "vault", "name": "Hijacked", "created_by": "outsider" }),
            "PROJECT_EXISTS",
        ),
        (
            0,
            "create_project",
            json!({ "project_id": "typed", "name": 5 }),
            "INVALID_PARAMETER",
        ),
        (
            1,
            "handover_coordinator",
            json!({ "project_id": "vault", "from_agent": "bob", "to_agent": "carol" }),
            "NOT_COORDINATOR",
        ),
        (
            0,
            "handover_coordinator",
            json!({ "project_id": "vault", "from_agent": "alice", "to_agent": "ghost" }),
            "TO_AGENT_NOT_FOUND",
        ),
        (
            0,
            "send_message",
            message(
                "alice",
                json!({ "to_agent": "bob", "payload": { "type": "handoff" } }),
            ),
            "HANDOFF_AUTHORITY_ERROR",
        ),
        (
            0,
            "send_message",
            message("alice", json!({ "to_agent": "ghost" })),
            "RECIPIENT_NOT_FOUND",
        ),
        (
            0,
            "send_message",
            message("alice", json!({ "to_agent": "bob", "broadcast": true })),
            "INVALID_MESSAGE_TARGET",
        ),
        (
            0,
            "send_message",
            message(
                "alice",
                json!({ "to_agent": "bob", "reply_expected": "yes" }),
            ),
            "REPLY_EXPECTED_REQUIRED",
        ),
        (
            3,
            "send_message",
            message("outsider", json!({ "broadcast": true })),
            "SENDER_NOT_FOUND",
        ),
        (
            1,
            "delete_project",
            as_agent("bob"),
            "DELETE_PERMISSION_DENIED",
        ),
        (
            1,
            "archive_project",
            as_agent("bob"),
            "ARCHIVE_PERMISSION_DENIED",
        ),
        (
            1,
            "update_resource",
            with(
                as_agent("bob"),
                json!({ "resource_id": "doc", "operation": "json_merge_patch", "patch": { "b": 1 }, "etag": stale_etag }),
            ),
            "ETAG_MISMATCH",
        ),
        (
            1,
            "update_resource",
            with(
                as_agent("bob"),
                json!({ "resource_id": "counter", "operation": "increment" }),
            ),
            "WRITE_PERMISSION_DENIED",
        ),
        (
            0,
            "update_resource",
            with(
                as_agent("alice"),
                json!({ "resource_id": "doc", "operation": "increment" }),
            ),
            "NOT_A_NUMBER",
        ),
        (
            0,
            "update_resource",
            with(
                as_agent("alice"),
                json!({ "resource_id": "counter", "operation": "increment", "value": 9_223_372_036_854_775_807_i64 }),
            ),
            "NOT_A_NUMBER",
        ),
        (
            0,
            "update_resource",
            with(
                as_agent("alice"),
                json!({
                    "resource_id": "doc", "operation": "json_patch",
                    "patch": [{ "op": "replace", "path": "/version", "value": 3 }, { "op": "test", "path": "/version", "value": 2 }],
                }),
            ),
            "PATCH_TEST_FAILED",
        ),
        (
            0,
            "update_resource",
            with(
                as_agent("alice"),
                json!({ "resource_id": "doc", "operation": "json_patch" }),
            ),
            "INVALID_OPERATION",
        ),
        (
            0,
            "update_resource",
            with(
                as_agent("alice"),
                json!({ "resource_id": "doc", "operation": "append", "value": "x".repeat(2000) }),
            ),
            "RESOURCE_TOO_LARGE",
        ),
        (
            0,
            "update_resource",
            with(
                as_agent("alice"),
                json!({ "resource_id": "journal", "operation": "increment" }),
            ),
            "WRONG_RESOURCE_KIND",
        ),
        (
            1,
            "append_log",
            with(
                as_agent("bob"),
                json!({ "log_id": "journal", "entry": { "step": 2 } }),
            ),
            "WRITE_PERMISSION_DENIED",
        ),
        (
            0,
            "append_log",
            with(
                as_agent("alice"),
                json!({ "log_id": "journal", "entry": "x".repeat(2000) }),
            ),
            "RESOURCE_TOO_LARGE",
        ),
        (
            0,
            "append_log",
            with(
                as_agent("alice"),
                json!({ "log_id": "doc", "entry": { "step": 2 } }),
            ),
            "WRONG_RESOURCE_KIND",
        ),
        (
            1,
            "receive_messages",
            with(as_agent("bob"), json!({ "limit": 0 })),
            "INVALID_PARAMETER",
        ),
        (
            0,
            "get_resource",
            with(
                as_agent("alice"),
                json!({ "resource_id": "doc", "version": 1, "wait": true }),
            ),
            "CONFLICTING_PARAMETERS",
        ),
        (3, "heartbeat", as_agent("outsider"), "MEMBER_NOT_FOUND"),
        (3, "leave_project", as_agent("outsider"), "MEMBER_NOT_FOUND"),
    ];

    let before = snapshot(&team, &outsider).await?;
    for (caller, tool, args, code) in cases {
        let session = team.get(caller).unwrap_or(&outsider);
        session.fails(tool, args.clone(), code).await?;
        let after = snapshot(&team, &outsider).await?;
        assert_eq!(
            after,
            before,
            "{tool} {args} failed with {code} but changed {:?}",
            changed_parts(&before, &after)
        );
    }
    Ok(())
}
