//! The audit trail: `audit_log` records every mutating call with its outcome, and no read.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, acting_as, derived_client_id, directory_of,
    etag_of, operator_session, project_team,
};

/// Starts a server with project `work` and members `alice` (the creator), `bob` and `carol`.
async fn start_team() -> Result<(Sandbox, HttpServer, Vec<Session>)> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let team = project_team(&server, "work", &["alice", "bob", "carol"]).await?;
    Ok((sandbox, server, team))
}

/// Returns the audit records of project `work` as read by `agent`, with the fields of `extra`
/// added to the request.
async fn audit_of_work(session: &Session, agent: &str, extra: Value) -> Result<Value> {
    let mut args = json!({ "project_id": "work", "agent_name": agent, "limit": 1000 });
    if let (Value::Object(args), Value::Object(extra)) = (&mut args, extra) {
        args.extend(extra);
    }
    session.ok("audit_log", args).await
}

/// Returns the `records` array of an `audit_log` result.
fn records_of(result: &Value) -> Result<&Vec<Value>> {
    result["records"]
        .as_array()
        .with_context(|| format!("no records array in {result}"))
}

/// Returns `(action, actor, outcome)` of each record of an `audit_log` result, in order.
fn summaries(result: &Value) -> Result<Vec<(String, String, String)>> {
    records_of(result)?
        .iter()
        .map(|record| {
            let field = |name: &str| record[name].as_str().unwrap_or_default().to_owned();
            Ok((field("action"), field("actor"), field("outcome")))
        })
        .collect()
}

/// Builds the expected `(action, actor, "ok")` summaries.
fn succeeded(calls: &[(&str, &str)]) -> Vec<(String, String, String)> {
    calls
        .iter()
        .map(|(action, actor)| ((*action).to_owned(), (*actor).to_owned(), "ok".to_owned()))
        .collect()
}

/// Arguments of a `store_resource` call by `alice` for `doc` in project `work`.
fn store_doc(content: &str, etag: Option<&str>) -> Value {
    let mut args = json!({
        "project_id": "work",
        "resource_id": "doc",
        "name": "Document",
        "agent_name": "alice",
        "content": content,
    });
    if let Some(etag) = etag {
        args["etag"] = json!(etag);
    }
    args
}

#[tokio::test]
async fn mutating_calls_are_recorded() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob, carol) = (&team[0], &team[1], &team[2]);
    let member_args = |name: &str, more: Value| {
        let mut args = json!({ "project_id": "work", "agent_name": name });
        if let (Value::Object(args), Value::Object(more)) = (&mut args, more) {
            args.extend(more);
        }
        args
    };

    alice
        .ok(
            "send_message",
            json!({
                "project_id": "work",
                "from_agent": "alice",
                "to_agent": "bob",
                "reply_expected": false,
                "payload": "hello",
            }),
        )
        .await?;
    bob.ok("receive_messages", member_args("bob", json!({})))
        .await?;
    alice.ok("store_resource", store_doc("1", None)).await?;
    alice
        .ok(
            "update_resource",
            acting_as(
                "alice",
                member_args(
                    "alice",
                    json!({ "resource_id": "doc", "operation": "increment" }),
                ),
            ),
        )
        .await?;
    bob.ok(
        "append_log",
        acting_as(
            "bob",
            member_args("bob", json!({ "log_id": "events", "entry": "started" })),
        ),
    )
    .await?;
    alice
        .ok(
            "delete_resource",
            member_args("alice", json!({ "resource_id": "doc" })),
        )
        .await?;
    bob.ok("heartbeat", member_args("bob", json!({}))).await?;
    alice
        .ok(
            "handover_coordinator",
            json!({ "project_id": "work", "from_agent": "alice", "to_agent": "bob" }),
        )
        .await?;
    alice
        .ok(
            "archive_project",
            member_args("alice", json!({ "reason": "done" })),
        )
        .await?;
    carol
        .ok("leave_project", member_args("carol", json!({})))
        .await?;

    let audit = audit_of_work(alice, "alice", json!({})).await?;
    let expected = succeeded(&[
        ("create_project", "alice"),
        ("join_project", "bob"),
        ("join_project", "carol"),
        ("send_message", "alice"),
        ("receive_messages", "bob"),
        ("store_resource", "alice"),
        ("update_resource", "alice"),
        ("append_log", "bob"),
        ("delete_resource", "alice"),
        ("heartbeat", "bob"),
        ("handover_coordinator", "alice"),
        ("archive_project", "alice"),
        ("leave_project", "carol"),
    ]);
    assert_eq!(summaries(&audit)?, expected);
    assert_eq!(audit["count"], json!(expected.len()));
    Ok(())
}

#[tokio::test]
async fn record_describes_the_call() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    alice.ok("store_resource", store_doc("text", None)).await?;

    let audit = audit_of_work(alice, "alice", json!({ "actor": "alice" })).await?;
    let records = records_of(&audit)?;
    let record = records
        .iter()
        .find(|record| record["action"] == json!("store_resource"))
        .with_context(|| format!("no store_resource record in {audit}"))?;
    assert!(record["seq"].is_u64(), "no seq in {record}");
    assert!(record["at"].is_string(), "no time in {record}");
    assert_eq!(
        record["client_id"],
        json!(derived_client_id(&directory_of("alice"))),
        "{record}"
    );
    assert_eq!(record["project_id"], json!("work"), "{record}");
    assert_eq!(record["actor"], json!("alice"), "{record}");
    assert_eq!(record["target"], json!("doc"), "{record}");
    assert_eq!(record["outcome"], json!("ok"), "{record}");
    Ok(())
}

#[tokio::test]
async fn failed_call_records_error_code() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];
    let first = alice.ok("store_resource", store_doc("1", None)).await?;
    let stale_etag = etag_of(&first)?;
    alice
        .ok("store_resource", store_doc("2", Some(&stale_etag)))
        .await?;
    alice
        .fails(
            "store_resource",
            store_doc("3", Some(&stale_etag)),
            "ETAG_MISMATCH",
        )
        .await?;

    let audit = audit_of_work(alice, "alice", json!({ "actor": "alice" })).await?;
    let stores: Vec<&Value> = records_of(&audit)?
        .iter()
        .filter(|record| record["action"] == json!("store_resource"))
        .collect();
    let outcomes: Vec<&Value> = stores.iter().map(|record| &record["outcome"]).collect();
    assert_eq!(
        outcomes,
        [&json!("ok"), &json!("ok"), &json!("ETAG_MISMATCH")],
        "{audit}"
    );
    let failed = stores[2];
    assert_eq!(failed["target"], json!("doc"), "{failed}");
    assert_eq!(failed["actor"], json!("alice"), "{failed}");
    assert_eq!(failed["project_id"], json!("work"), "{failed}");
    Ok(())
}

#[tokio::test]
async fn read_only_calls_leave_no_record() -> Result<()> {
    let (sandbox, server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    alice.ok("store_resource", store_doc("1", None)).await?;
    bob.ok(
        "append_log",
        acting_as(
            "bob",
            json!({ "project_id": "work", "log_id": "events", "agent_name": "bob", "entry": 1 }),
        ),
    )
    .await?;

    // The operator sees records of every project and of calls without one, like list_projects.
    let operator = operator_session(&sandbox, &server).await?;
    let before = operator.ok("audit_log", json!({ "limit": 1000 })).await?;
    let last_seq = before["next_after"]
        .as_u64()
        .with_context(|| format!("no next_after in {before}"))?;
    assert!(last_seq > 0, "the setup calls left no record: {before}");

    let doc = json!({ "project_id": "work", "resource_id": "doc", "agent_name": "bob" });
    let member = json!({ "project_id": "work", "agent_name": "bob" });
    bob.ok("get_resource", doc.clone()).await?;
    bob.ok("list_resources", member.clone()).await?;
    bob.ok("list_projects", json!({})).await?;
    bob.ok("get_project_info", json!({ "project_id": "work" }))
        .await?;
    bob.ok("resource_history", acting_as("bob", doc)).await?;
    bob.ok(
        "read_log",
        acting_as(
            "bob",
            json!({ "project_id": "work", "log_id": "events", "agent_name": "bob" }),
        ),
    )
    .await?;
    bob.ok("version", json!({})).await?;
    bob.ok("audit_log", member).await?;
    bob.fails(
        "get_resource",
        json!({ "project_id": "work", "resource_id": "missing", "agent_name": "bob" }),
        "RESOURCE_NOT_FOUND",
    )
    .await?;

    let after = operator
        .ok("audit_log", json!({ "after": last_seq, "limit": 1000 }))
        .await?;
    assert_eq!(
        records_of(&after)?.len(),
        0,
        "read-only calls were recorded: {after}"
    );
    Ok(())
}

#[tokio::test]
async fn audit_filters_by_actor() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let (alice, bob) = (&team[0], &team[1]);
    bob.ok(
        "send_message",
        json!({
            "project_id": "work",
            "from_agent": "bob",
            "to_agent": "alice",
            "reply_expected": true,
            "payload": "question",
        }),
    )
    .await?;
    alice.ok("store_resource", store_doc("1", None)).await?;

    let audit = audit_of_work(alice, "alice", json!({ "actor": "bob" })).await?;
    let expected = succeeded(&[("join_project", "bob"), ("send_message", "bob")]);
    assert_eq!(summaries(&audit)?, expected);
    Ok(())
}

#[tokio::test]
async fn audit_pages_with_after() -> Result<()> {
    let (_sandbox, _server, team) = start_team().await?;
    let alice = &team[0];

    let first = audit_of_work(alice, "alice", json!({ "limit": 2 })).await?;
    let first_page = summaries(&first)?;
    assert_eq!(
        first_page,
        succeeded(&[("create_project", "alice"), ("join_project", "bob")])
    );
    let last_seq = records_of(&first)?[1]["seq"].clone();
    assert_eq!(first["next_after"], last_seq);

    let after = last_seq
        .as_u64()
        .with_context(|| format!("seq is not a number in {first}"))?;
    let second = audit_of_work(alice, "alice", json!({ "after": after, "limit": 2 })).await?;
    assert_eq!(summaries(&second)?, succeeded(&[("join_project", "carol")]));
    let second_seq = records_of(&second)?[0]["seq"]
        .as_u64()
        .with_context(|| format!("seq is not a number in {second}"))?;
    assert!(second_seq > after, "seq {second_seq} is not after {after}");
    Ok(())
}

#[tokio::test]
async fn non_member_cannot_read_audit() -> Result<()> {
    let (_sandbox, server, team) = start_team().await?;
    let alice = &team[0];
    let outsider = server.agent(&directory_of("dave")).await?;
    outsider
        .ok(
            "create_project",
            json!({ "project_id": "elsewhere", "name": "Elsewhere", "created_by": "dave" }),
        )
        .await?;

    outsider
        .fails(
            "audit_log",
            json!({ "project_id": "work", "agent_name": "dave" }),
            "MEMBER_NOT_FOUND",
        )
        .await?;
    alice
        .fails(
            "audit_log",
            json!({ "project_id": "elsewhere", "agent_name": "alice" }),
            "MEMBER_NOT_FOUND",
        )
        .await?;
    Ok(())
}

#[tokio::test]
async fn deleted_project_stays_in_audit() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let alice = server.agent(&directory_of("alice")).await?;
    alice
        .ok(
            "create_project",
            json!({ "project_id": "scratch", "name": "Scratch", "created_by": "alice" }),
        )
        .await?;
    alice
        .ok(
            "delete_project",
            json!({ "project_id": "scratch", "agent_name": "alice" }),
        )
        .await?;

    // A deleted project has no members, so only the operator can read its records.
    let operator = operator_session(&sandbox, &server).await?;
    let audit = operator
        .ok("audit_log", json!({ "project_id": "scratch" }))
        .await?;
    let expected = succeeded(&[("create_project", "alice"), ("delete_project", "alice")]);
    assert_eq!(summaries(&audit)?, expected);
    Ok(())
}

#[tokio::test]
async fn reused_project_id_hides_old_records() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let alice = server.agent(&directory_of("alice")).await?;
    let bob = server.agent(&directory_of("bob")).await?;
    let create =
        |creator: &str| json!({ "project_id": "reused", "name": "Reused", "created_by": creator });
    alice.ok("create_project", create("alice")).await?;
    alice
        .ok(
            "delete_project",
            json!({ "project_id": "reused", "agent_name": "alice" }),
        )
        .await?;
    bob.ok("create_project", create("bob")).await?;

    let audit = bob
        .ok(
            "audit_log",
            json!({ "project_id": "reused", "agent_name": "bob" }),
        )
        .await?;

    // The records of the deleted project with the same id belong to other agents.
    assert_eq!(summaries(&audit)?, succeeded(&[("create_project", "bob")]));
    Ok(())
}

#[tokio::test]
async fn audit_command_prints_the_trail() -> Result<()> {
    let sandbox = Sandbox::new()?;
    {
        let server = crate::common::StdioServer::start_as(
            &sandbox,
            &ServerOptions::default(),
            &directory_of("alice"),
        )
        .await?;
        server
            .session()
            .ok(
                "create_project",
                json!({ "project_id": "cli", "name": "Cli", "created_by": "alice" }),
            )
            .await?;
        server.shutdown().await?;
    }

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_brainstorm"))
        .args(["audit", "--log", "warn", "--project", "cli", "--data-dir"])
        .arg(sandbox.data_dir())
        .env("HOME", sandbox.home())
        .output()
        .await?;
    let stdout = String::from_utf8_lossy(&output.stdout);

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    for field in ["cli", "alice", "create_project", "ok"] {
        assert!(
            lines[0].split_whitespace().any(|word| word == field),
            "{field} missing: {stdout}"
        );
    }
    Ok(())
}
