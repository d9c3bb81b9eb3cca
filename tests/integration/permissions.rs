//! The permission matrix: every tool that `tools/list` offers, called by each role of a
//! project, with the outcome each role must get (success, or the exact error code).
//!
//! The fixture project `matrix` has:
//! - `creator`: created the project (`created_by`) and every resource in it, and handed the
//!   coordinator role over, so it is a plain contributor now.
//! - `coordinator`: a member who has had the coordinator role since that handover.
//! - `member`: a member named in the restricted resources' permission lists.
//! - `other-member`: a member named in no permission list.
//! - `outsider`: an agent of another project who never joined this one.
//! - `stranger`: a client that called `status` and never joined this project.
//!
//! Its resources: `secret` (read: creator and member, write: member, so the creator is added
//! to write), `sealed` (read and write: member only), `public` (default permissions: every
//! member reads, only the creator writes), the log `journal` (read: creator and member,
//! write: member) and the log `board` (default: every member reads and appends).

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::common::{
    HttpServer, Sandbox, ServerOptions, Session, ToolOutcome, acting_as, directory_of, text_field,
};

/// Project that every row uses unless it needs a fresh project per cell.
const SHARED_PROJECT: &str = "matrix";

/// The roles, in the column order of [`matrix`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Creator,
    Coordinator,
    Member,
    OtherMember,
    Outsider,
    Stranger,
}

const ROLES: [Role; 6] = [
    Role::Creator,
    Role::Coordinator,
    Role::Member,
    Role::OtherMember,
    Role::Outsider,
    Role::Stranger,
];

impl Role {
    /// Returns the agent name that plays the role. Each role has its own client (working
    /// directory) too.
    fn agent(self) -> &'static str {
        match self {
            Role::Creator => "creator",
            Role::Coordinator => "coordinator",
            Role::Member => "member",
            Role::OtherMember => "other-member",
            Role::Outsider => "outsider",
            Role::Stranger => "stranger",
        }
    }

    fn index(self) -> usize {
        ROLES
            .iter()
            .position(|role| *role == self)
            .unwrap_or_default()
    }
}

// Short names for the outcomes, so that the matrix fits on one screen. A failed cell prints
// the full code.
const OK: &str = "ok";
const NO_MEMBER: &str = "MEMBER_NOT_FOUND";
const NO_SENDER: &str = "SENDER_NOT_FOUND";
const NO_FROM: &str = "FROM_AGENT_NOT_FOUND";
const NO_READ: &str = "READ_PERMISSION_DENIED";
const NO_WRITE: &str = "WRITE_PERMISSION_DENIED";
const NO_DELETE: &str = "DELETE_PERMISSION_DENIED";
const NO_ARCHIVE: &str = "ARCHIVE_PERMISSION_DENIED";
const NOT_COORD: &str = "NOT_COORDINATOR";
const HANDOFF: &str = "HANDOFF_AUTHORITY_ERROR";
const TAKEN: &str = "AGENT_NAME_TAKEN";
const ALREADY_IN: &str = "CLIENT_ALREADY_MEMBER";

/// One call of one tool, made by each role in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Status,
    Version,
    CreateProject,
    JoinOwnName,
    JoinAsMember,
    ProjectInfo,
    ListProjects,
    Broadcast,
    SendHandoff,
    AcceptHandoff,
    Receive,
    StoreNew,
    StoreSecret,
    StorePublic,
    GetSecret,
    GetSealed,
    GetPublic,
    ListResources,
    DeleteSecret,
    Heartbeat,
    Handover,
    DeleteProject,
    LeaveProject,
    ArchiveProject,
    HistorySecret,
    HistoryPublic,
    UpdateSecret,
    UpdatePublic,
    AppendJournal,
    AppendBoard,
    ReadJournal,
    ReadBoard,
    AuditLog,
}

/// Who may do what: one row per call, one column per role, in the order of [`ROLES`].
#[rustfmt::skip]
fn matrix() -> Vec<(Call, [&'static str; 6])> {
    use Call::*;
    vec![
        //                creator     coordinator member      other       outsider    stranger
        (Status,          [OK,         OK,         OK,         OK,         OK,         OK]),
        (Version,         [OK,         OK,         OK,         OK,         OK,         OK]),
        (CreateProject,   [OK,         OK,         OK,         OK,         OK,         OK]),
        (JoinOwnName,     [OK,         OK,         OK,         OK,         OK,         OK]),
        (JoinAsMember,    [ALREADY_IN, ALREADY_IN, OK,         ALREADY_IN, TAKEN,      TAKEN]),
        (ProjectInfo,     [OK,         OK,         OK,         OK,         OK,         OK]),
        (ListProjects,    [OK,         OK,         OK,         OK,         OK,         OK]),
        (Broadcast,       [OK,         OK,         OK,         OK,         NO_SENDER,  NO_SENDER]),
        (SendHandoff,     [OK,         HANDOFF,    OK,         OK,         NO_SENDER,  NO_SENDER]),
        (AcceptHandoff,   [HANDOFF,    OK,         HANDOFF,    HANDOFF,    NO_SENDER,  NO_SENDER]),
        (Receive,         [OK,         OK,         OK,         OK,         NO_MEMBER,  NO_MEMBER]),
        (StoreNew,        [OK,         OK,         OK,         OK,         NO_MEMBER,  NO_MEMBER]),
        (StoreSecret,     [OK,         NO_WRITE,   OK,         NO_WRITE,   NO_MEMBER,  NO_MEMBER]),
        (StorePublic,     [OK,         NO_WRITE,   NO_WRITE,   NO_WRITE,   NO_MEMBER,  NO_MEMBER]),
        (GetSecret,       [OK,         NO_READ,    OK,         NO_READ,    NO_MEMBER,  NO_MEMBER]),
        (GetSealed,       [OK,         NO_READ,    OK,         NO_READ,    NO_MEMBER,  NO_MEMBER]),
        (GetPublic,       [OK,         OK,         OK,         OK,         NO_MEMBER,  NO_MEMBER]),
        (ListResources,   [OK,         OK,         OK,         OK,         NO_MEMBER,  NO_MEMBER]),
        (DeleteSecret,    [OK,         NO_DELETE,  NO_DELETE,  NO_DELETE,  NO_MEMBER,  NO_MEMBER]),
        (Heartbeat,       [OK,         OK,         OK,         OK,         NO_MEMBER,  NO_MEMBER]),
        (Handover,        [NOT_COORD,  OK,         NOT_COORD,  NOT_COORD,  NO_FROM,    NO_FROM]),
        (DeleteProject,   [OK,         NO_DELETE,  NO_DELETE,  NO_DELETE,  NO_MEMBER,  NO_MEMBER]),
        (LeaveProject,    [OK,         OK,         OK,         OK,         NO_MEMBER,  NO_MEMBER]),
        (ArchiveProject,  [OK,         NO_ARCHIVE, NO_ARCHIVE, NO_ARCHIVE, NO_MEMBER,  NO_MEMBER]),
        (HistorySecret,   [OK,         NO_READ,    OK,         NO_READ,    NO_MEMBER,  NO_MEMBER]),
        (HistoryPublic,   [OK,         OK,         OK,         OK,         NO_MEMBER,  NO_MEMBER]),
        (UpdateSecret,    [OK,         NO_WRITE,   OK,         NO_WRITE,   NO_MEMBER,  NO_MEMBER]),
        (UpdatePublic,    [OK,         NO_WRITE,   NO_WRITE,   NO_WRITE,   NO_MEMBER,  NO_MEMBER]),
        (AppendJournal,   [OK,         NO_WRITE,   OK,         NO_WRITE,   NO_MEMBER,  NO_MEMBER]),
        (AppendBoard,     [OK,         OK,         OK,         OK,         NO_MEMBER,  NO_MEMBER]),
        (ReadJournal,     [OK,         NO_READ,    OK,         NO_READ,    NO_MEMBER,  NO_MEMBER]),
        (ReadBoard,       [OK,         OK,         OK,         OK,         NO_MEMBER,  NO_MEMBER]),
        (AuditLog,        [OK,         OK,         OK,         OK,         NO_MEMBER,  NO_MEMBER]),
    ]
}

/// Where one cell of the matrix runs: the project and the acting role.
struct Cell<'a> {
    project_id: &'a str,
    role: Role,
}

impl Call {
    /// Returns the tool and a short description of the call.
    fn describe(self) -> (&'static str, &'static str) {
        match self {
            Call::Status => ("status", "own working directory"),
            Call::Version => ("version", "no arguments"),
            Call::CreateProject => ("create_project", "a new project, created_by self"),
            Call::JoinOwnName => ("join_project", "under the caller's own name"),
            Call::JoinAsMember => ("join_project", "under the name of member"),
            Call::ProjectInfo => ("get_project_info", "the project"),
            Call::ListProjects => ("list_projects", "first page"),
            Call::Broadcast => ("send_message", "broadcast from self"),
            Call::SendHandoff => ("send_message", "type handoff to the coordinator"),
            Call::AcceptHandoff => ("send_message", "type handoff_accepted to member"),
            Call::Receive => ("receive_messages", "own inbox"),
            Call::StoreNew => ("store_resource", "create a new document"),
            Call::StoreSecret => ("store_resource", "overwrite secret with etag *"),
            Call::StorePublic => ("store_resource", "overwrite public with etag *"),
            Call::GetSecret => ("get_resource", "secret"),
            Call::GetSealed => (
                "get_resource",
                "sealed, whose read list leaves out its creator",
            ),
            Call::GetPublic => ("get_resource", "public"),
            Call::ListResources => ("list_resources", "the project"),
            Call::DeleteSecret => ("delete_resource", "secret"),
            Call::Heartbeat => ("heartbeat", "self"),
            Call::Handover => ("handover_coordinator", "from self to member"),
            Call::DeleteProject => ("delete_project", "the project"),
            Call::LeaveProject => ("leave_project", "self"),
            Call::ArchiveProject => ("archive_project", "the project"),
            Call::HistorySecret => ("resource_history", "secret"),
            Call::HistoryPublic => ("resource_history", "public"),
            Call::UpdateSecret => ("update_resource", "json_merge_patch on secret"),
            Call::UpdatePublic => ("update_resource", "json_merge_patch on public"),
            Call::AppendJournal => ("append_log", "journal"),
            Call::AppendBoard => ("append_log", "board"),
            Call::ReadJournal => ("read_log", "journal"),
            Call::ReadBoard => ("read_log", "board"),
            Call::AuditLog => ("audit_log", "the project, as self"),
        }
    }

    /// Returns whether each cell of this row needs a project of its own, because a success
    /// changes membership, roles or resources that other cells rely on.
    fn needs_fresh_project(self) -> bool {
        matches!(
            self,
            Call::JoinOwnName
                | Call::DeleteSecret
                | Call::Handover
                | Call::DeleteProject
                | Call::LeaveProject
                | Call::ArchiveProject
        )
    }

    /// Returns the arguments of the call in `cell`. Tools that act as an agent carry the
    /// role's working directory, which sets the caller's identity over stateless HTTP.
    fn arguments(self, cell: &Cell) -> Value {
        let project_id = cell.project_id;
        let agent = cell.role.agent();
        let on_project = json!({ "project_id": project_id, "agent_name": agent });
        let on_resource = |resource_id: &str| {
            json!({
                "project_id": project_id,
                "resource_id": resource_id,
                "agent_name": agent,
            })
        };
        let overwrite = |resource_id: &str| {
            json!({
                "project_id": project_id,
                "resource_id": resource_id,
                "name": resource_id,
                "agent_name": agent,
                "content": json!({ "by": agent }).to_string(),
                "etag": "*",
            })
        };
        let merge = |resource_id: &str| {
            json!({
                "project_id": project_id,
                "resource_id": resource_id,
                "agent_name": agent,
                "operation": "json_merge_patch",
                "patch": { "by": agent },
            })
        };
        let append = |log_id: &str| {
            json!({
                "project_id": project_id,
                "log_id": log_id,
                "agent_name": agent,
                "entry": { "by": agent },
            })
        };
        let read_log = |log_id: &str| {
            json!({
                "project_id": project_id,
                "log_id": log_id,
                "agent_name": agent,
            })
        };
        let message = |target: Value, payload: Value, reply_expected: bool| {
            let mut args = json!({
                "project_id": project_id,
                "from_agent": agent,
                "reply_expected": reply_expected,
                "payload": payload,
            });
            if let (Value::Object(args), Value::Object(target)) = (&mut args, target) {
                args.extend(target);
            }
            args
        };

        let args = match self {
            Call::Status => return json!({ "working_directory": directory_of(agent) }),
            Call::Version => return json!({}),
            Call::ProjectInfo => return json!({ "project_id": project_id }),
            Call::ListProjects => return json!({}),
            // audit_log needs no session and rejects working_directory as unknown.
            Call::AuditLog => return on_project,
            Call::CreateProject => json!({
                "project_id": format!("made-by-{agent}"),
                "name": format!("Made by {agent}"),
                "created_by": agent,
            }),
            Call::JoinOwnName => on_project,
            Call::JoinAsMember => {
                json!({ "project_id": project_id, "agent_name": Role::Member.agent() })
            }
            Call::Broadcast => message(json!({ "broadcast": true }), json!("hello"), false),
            Call::SendHandoff => message(
                json!({ "to_agent": Role::Coordinator.agent() }),
                json!({ "type": "handoff", "work": "done" }),
                true,
            ),
            Call::AcceptHandoff => message(
                json!({ "to_agent": Role::Member.agent() }),
                json!({ "type": "handoff_accepted" }),
                false,
            ),
            Call::Receive | Call::Heartbeat | Call::ListResources => on_project,
            Call::DeleteProject | Call::LeaveProject | Call::ArchiveProject => on_project,
            Call::StoreNew => json!({
                "project_id": project_id,
                "resource_id": format!("note-{agent}"),
                "name": "Note",
                "agent_name": agent,
                "content": "draft",
            }),
            Call::StoreSecret => overwrite("secret"),
            Call::StorePublic => overwrite("public"),
            Call::GetSecret | Call::DeleteSecret | Call::HistorySecret => on_resource("secret"),
            Call::GetSealed => on_resource("sealed"),
            Call::GetPublic | Call::HistoryPublic => on_resource("public"),
            Call::Handover => json!({
                "project_id": project_id,
                "from_agent": agent,
                "to_agent": Role::Member.agent(),
            }),
            Call::UpdateSecret => merge("secret"),
            Call::UpdatePublic => merge("public"),
            Call::AppendJournal => append("journal"),
            Call::AppendBoard => append("board"),
            Call::ReadJournal => read_log("journal"),
            Call::ReadBoard => read_log("board"),
        };
        acting_as(agent, args)
    }
}

/// Returns the arguments of a `store_resource` call by `creator` that creates `resource_id`
/// with `permissions`, or with the defaults when it is `None`.
fn create_document(project_id: &str, resource_id: &str, permissions: Option<Value>) -> Value {
    let mut args = json!({
        "project_id": project_id,
        "resource_id": resource_id,
        "name": resource_id,
        "agent_name": Role::Creator.agent(),
        "content": json!({ "by": Role::Creator.agent() }).to_string(),
    });
    if let Some(permissions) = permissions {
        args["permissions"] = permissions;
    }
    args
}

/// Builds the fixture project described at the top of this file, with `sessions` in the
/// order of [`ROLES`].
async fn build_project(sessions: &[Session], project_id: &str) -> Result<()> {
    let creator = &sessions[Role::Creator.index()];
    let creator_name = Role::Creator.agent();
    let member_name = Role::Member.agent();
    creator
        .ok(
            "create_project",
            json!({
                "project_id": project_id,
                "name": format!("Matrix {project_id}"),
                "created_by": creator_name,
            }),
        )
        .await?;
    for role in [Role::Coordinator, Role::Member, Role::OtherMember] {
        sessions[role.index()]
            .ok(
                "join_project",
                json!({ "project_id": project_id, "agent_name": role.agent() }),
            )
            .await?;
    }
    creator
        .ok(
            "handover_coordinator",
            json!({
                "project_id": project_id,
                "from_agent": creator_name,
                "to_agent": Role::Coordinator.agent(),
            }),
        )
        .await?;

    let secret = json!({ "read": [creator_name, member_name], "write": [member_name] });
    let sealed = json!({ "read": [member_name], "write": [member_name] });
    creator
        .ok(
            "store_resource",
            create_document(project_id, "secret", Some(secret.clone())),
        )
        .await?;
    creator
        .ok(
            "store_resource",
            create_document(project_id, "sealed", Some(sealed)),
        )
        .await?;
    creator
        .ok(
            "store_resource",
            create_document(project_id, "public", None),
        )
        .await?;
    for (log_id, permissions) in [("journal", Some(secret)), ("board", None)] {
        let mut args = json!({
            "project_id": project_id,
            "log_id": log_id,
            "agent_name": creator_name,
            "entry": { "opened": true },
        });
        if let Some(permissions) = permissions {
            args["permissions"] = permissions;
        }
        creator
            .ok("append_log", acting_as(creator_name, args))
            .await?;
    }
    Ok(())
}

/// Checks the premise of the matrix: the creator and the coordinator are different agents.
async fn check_roles(session: &Session) -> Result<()> {
    let info = session
        .ok("get_project_info", json!({ "project_id": SHARED_PROJECT }))
        .await?;
    let project = info
        .get("project")
        .with_context(|| format!("no project in {info}"))?;
    assert_eq!(
        text_field(project, "created_by")?,
        Role::Creator.agent(),
        "the fixture project has the wrong creator: {info}"
    );
    assert_eq!(
        text_field(&info, "coordinator")?,
        Role::Coordinator.agent(),
        "the handover did not make coordinator the coordinator: {info}"
    );
    Ok(())
}

/// Returns "ok" for a success, or the error code of a failure.
fn outcome_code(outcome: &ToolOutcome) -> String {
    match outcome {
        ToolOutcome::Success(_) => OK.to_owned(),
        ToolOutcome::Failure(body) => body
            .get("code")
            .and_then(Value::as_str)
            .map_or_else(|| format!("no code in {body}"), str::to_owned),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_follows_role_matrix() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = HttpServer::start(&sandbox, &ServerOptions::default()).await?;
    let mut sessions = Vec::with_capacity(ROLES.len());
    for role in ROLES {
        sessions.push(server.agent(&directory_of(role.agent())).await?);
    }
    build_project(&sessions, SHARED_PROJECT).await?;
    check_roles(&sessions[0]).await?;
    let outsider = Role::Outsider.agent();
    sessions[Role::Outsider.index()]
        .ok(
            "create_project",
            json!({ "project_id": "elsewhere", "name": "Elsewhere", "created_by": outsider }),
        )
        .await?;

    let listed: BTreeSet<String> = sessions[0]
        .client()
        .list_all_tools()
        .await
        .context("tools/list failed")?
        .into_iter()
        .map(|tool| tool.name.to_string())
        .collect();
    let covered: BTreeSet<String> = matrix()
        .iter()
        .map(|(call, _)| call.describe().0.to_owned())
        .collect();
    assert_eq!(
        covered, listed,
        "the matrix must have a row for every tool in tools/list, and only for those"
    );

    let mut failures = Vec::new();
    let mut cells = 0;
    let matrix = matrix();
    for (row, (call, expected_row)) in matrix.iter().enumerate() {
        let (tool, case) = call.describe();
        for (role, expected) in ROLES.into_iter().zip(expected_row) {
            let project_id = match call.needs_fresh_project() {
                true => {
                    let project_id = format!("row{row}-{}", role.agent());
                    build_project(&sessions, &project_id).await?;
                    project_id
                }
                false => SHARED_PROJECT.to_owned(),
            };
            let cell = Cell {
                project_id: &project_id,
                role,
            };
            let args = call.arguments(&cell);
            let outcome = sessions[role.index()]
                .call(tool, args.clone())
                .await
                .with_context(|| format!("{tool} ({case}) as {role:?} got no tool result"))?;
            let actual = outcome_code(&outcome);
            cells += 1;
            if actual != *expected {
                failures.push(format!(
                    "{tool} ({case}) as {role:?}: expected {expected}, got {actual}\n  \
                     arguments {args}\n  result {outcome:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ from the permission matrix:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}
