//! The tool catalogue: names, descriptions and input schemas.
//!
//! Tool and argument names are a fixed interface shared with existing clients and prompts.

use std::sync::{Arc, OnceLock};

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde_json::{Value, json};

use crate::service::requests::*;

/// Whether a tool acts as an agent, and so needs a session or a `working_directory` argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acts {
    AsAgent,
    Anonymously,
}

const ETAG_LOOP: &str = "Concurrent writers are kept apart with etags: read with get_resource, \
    change the content, then store_resource with the etag you read. If it fails with \
    ETAG_MISMATCH another agent wrote first: read again, reapply your change to the new \
    content, and retry (wait a little longer after each conflict, with some randomness). \
    Never retry with the same stale etag. For counters, JSON edits and appends, update_resource \
    applies the change on the server with no conflict at all.";

struct Entry {
    name: &'static str,
    description: String,
    acts: Acts,
    read_only: bool,
    schema: fn() -> JsonObject,
}

fn schema<T: JsonSchema>() -> JsonObject {
    let schema = schemars::schema_for!(T);
    match serde_json::to_value(schema) {
        Ok(Value::Object(object)) => object,
        _ => JsonObject::new(),
    }
}

/// Schema of `send_message`. `reply_expected` is parsed leniently so that a missing or
/// non-boolean value gets its own error code, but clients must see it as required.
fn send_message_schema() -> JsonObject {
    let mut schema = schema::<SendMessageRequest>();
    if let Some(Value::Array(required)) = schema.get_mut("required") {
        required.push(json!("reply_expected"));
    }
    let property = schema
        .get_mut("properties")
        .and_then(|p| p.get_mut("reply_expected"));
    if let Some(Value::Object(property)) = property {
        property.remove("default");
    }
    schema
}

fn empty_schema() -> JsonObject {
    json!({"type": "object", "properties": {}, "additionalProperties": false})
        .as_object()
        .cloned()
        .unwrap_or_default()
}

fn entries() -> Vec<Entry> {
    use Acts::*;
    let entry = |name, description: &str, acts, read_only, schema| Entry {
        name,
        description: description.to_owned(),
        acts,
        read_only,
        schema,
    };
    vec![
        entry(
            "status",
            "Start a session: call this first with the absolute path of your working folder. Returns this client's projects with your role, unread message count and online state. Counting unread messages consumes none. Over HTTP with MCP 2026-07-28 there is no session: pass working_directory with every call instead.",
            Anonymously,
            false,
            schema::<StatusRequest>,
        ),
        entry(
            "version",
            "Return the server's name, version and description.",
            Anonymously,
            true,
            empty_schema,
        ),
        entry(
            "create_project",
            "Create a project. With created_by, that agent joins at once and becomes the coordinator and the only agent that may archive or delete the project. Fails with PROJECT_EXISTS when the id is taken.",
            AsAgent,
            false,
            schema::<CreateProjectRequest>,
        ),
        entry(
            "join_project",
            "Join a project under an agent name and get your agent_id and role (coordinator or contributor). Rejoining from the same working folder reclaims the name. Errors: PROJECT_NOT_FOUND, AGENT_NAME_TAKEN (another client holds the name, compared without letter case), CLIENT_ALREADY_MEMBER (you joined under another name).",
            AsAgent,
            false,
            schema::<JoinProjectRequest>,
        ),
        entry(
            "get_project_info",
            "Describe a project: its fields, members and coordinator. With wait: true, block until the project exists or timeout_seconds pass (then timeout: true and retry: true).",
            Anonymously,
            true,
            schema::<ProjectInfoRequest>,
        ),
        entry(
            "list_projects",
            "List projects in id order with count and pagination {offset, limit, returned}.",
            Anonymously,
            true,
            schema::<ListProjectsRequest>,
        ),
        entry(
            "send_message",
            "Send a message to one member (to_agent) or to every other member (broadcast: true); give exactly one. reply_expected (true or false) is required. Payload types handoff (contributors only), handoff_accepted and handoff_rejected (coordinator only) coordinate work; handoff and handoff_rejected need reply_expected: true. Returns message_id.",
            AsAgent,
            false,
            send_message_schema,
        ),
        entry(
            "receive_messages",
            "Return your unread messages oldest first and mark them read. With wait: true, block until a message arrives or timeout_seconds pass (then timeout: true and retry: true: call again). Messages older than their ttl are dropped.",
            AsAgent,
            false,
            schema::<ReceiveMessagesRequest>,
        ),
        entry(
            "store_resource",
            &format!(
                "Create or update a shared resource. Creating needs no etag (if_none_match: \"*\" makes it create-only). Updating needs the etag from your last read; etag \"*\" overwrites blindly. The new etag is returned, so you can chain updates. {ETAG_LOOP} Errors: ETAG_MISMATCH, ETAG_REQUIRED, RESOURCE_EXISTS, WRITE_PERMISSION_DENIED, RESOURCE_TOO_LARGE, INVALID_JSON, JSON_TOO_DEEP."
            ),
            AsAgent,
            false,
            schema::<StoreResourceRequest>,
        ),
        entry(
            "get_resource",
            &format!(
                "Read a resource: {{manifest, content, etag}} from one consistent state. if_none_match: <the etag you hold> returns {{not_modified: true, etag}} without content while it is unchanged; with wait: true it blocks until the resource changes (or is deleted: {{deleted: true}}). Without if_none_match, wait: true blocks until the resource exists. version: N reads a kept older version. {ETAG_LOOP}"
            ),
            AsAgent,
            true,
            schema::<GetResourceRequest>,
        ),
        entry(
            "list_resources",
            "List the manifests of the resources you may read, with count and pagination.",
            AsAgent,
            true,
            schema::<ListResourcesRequest>,
        ),
        entry(
            "delete_resource",
            "Delete a resource. Only its creator may (DELETE_PERMISSION_DENIED).",
            AsAgent,
            false,
            schema::<DeleteResourceRequest>,
        ),
        entry(
            "heartbeat",
            "Mark yourself online (or offline with online: false) and update last_seen.",
            AsAgent,
            false,
            schema::<HeartbeatRequest>,
        ),
        entry(
            "handover_coordinator",
            "Make another member the coordinator. Only the current coordinator may (NOT_COORDINATOR); the target must be a member (TO_AGENT_NOT_FOUND).",
            AsAgent,
            false,
            schema::<HandoverRequest>,
        ),
        entry(
            "delete_project",
            "Delete a project with its members, messages and resources. Only its creator may (NO_CREATOR_DEFINED, DELETE_PERMISSION_DENIED).",
            AsAgent,
            false,
            schema::<ProjectAgentRequest>,
        ),
        entry(
            "leave_project",
            "Leave a project: your unread messages are archived and your name is freed. Returns the archived count.",
            AsAgent,
            false,
            schema::<ProjectAgentRequest>,
        ),
        entry(
            "archive_project",
            "Mark a project archived; it stays readable. Only its creator may (NO_CREATOR_DEFINED, ARCHIVE_PERMISSION_DENIED).",
            AsAgent,
            false,
            schema::<ArchiveProjectRequest>,
        ),
        entry(
            "resource_history",
            "List the kept versions of a document (the newest 20 by default): version, etag, author, time, size and content_hash. Read an older one with get_resource {version}.",
            AsAgent,
            true,
            schema::<ResourceHistoryRequest>,
        ),
        entry(
            "update_resource",
            "Change a document on the server in one step, without the etag loop: increment a number (value, default 1; path for a number inside JSON), json_merge_patch (RFC 7396), json_patch (RFC 6902; a failed test gives PATCH_TEST_FAILED and changes nothing) or append (to a JSON array, or text). Concurrent updates never conflict. An etag makes it conditional. Returns the new etag, and the content with return_content: true.",
            AsAgent,
            false,
            schema::<UpdateResourceRequest>,
        ),
        entry(
            "append_log",
            "Append an entry (any JSON) to an append-only log, creating the log on the first append. Concurrent appends never conflict and are never lost: each gets the next sequence number (seq) of the log.",
            AsAgent,
            false,
            schema::<AppendLogRequest>,
        ),
        entry(
            "read_log",
            "Read log entries with seq after `after`, oldest first; pass the returned next_after to continue. With wait: true, block until a new entry is appended.",
            AsAgent,
            true,
            schema::<ReadLogRequest>,
        ),
        entry(
            "audit_log",
            "Read the audit trail of a project: one record per mutating call with time, client, acting agent, tool, target and outcome (ok or the error code). Filter by actor; page with after.",
            Anonymously,
            true,
            schema::<AuditLogRequest>,
        ),
    ]
}

/// Adds the optional `working_directory` argument that sets the identity for one call.
fn with_working_directory(mut schema: JsonObject) -> JsonObject {
    if let Some(Value::Object(properties)) = schema.get_mut("properties") {
        properties.insert(
            "working_directory".to_owned(),
            json!({
                "type": "string",
                "description": "Absolute, normalized path of your working folder. Sets your identity for this call; needed when the transport keeps no session (stateless HTTP), optional after status."
            }),
        );
    }
    schema
}

struct Catalogue {
    tools: Vec<Tool>,
    acts: Vec<(&'static str, Acts)>,
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let entries = entries();
        let acts = entries
            .iter()
            .map(|entry| (entry.name, entry.acts))
            .collect();
        let tools = entries
            .into_iter()
            .map(|entry| {
                let mut schema = (entry.schema)();
                if entry.acts == Acts::AsAgent {
                    schema = with_working_directory(schema);
                }
                let annotations = ToolAnnotations::new().read_only(entry.read_only);
                Tool::new(entry.name, entry.description, Arc::new(schema))
                    .with_annotations(annotations)
            })
            .collect();
        Catalogue { tools, acts }
    })
}

/// Returns every tool with its schema.
pub fn list() -> Vec<Tool> {
    catalogue().tools.clone()
}

/// Returns how the named tool acts, or `None` when there is no such tool.
pub fn acts(name: &str) -> Option<Acts> {
    catalogue()
        .acts
        .iter()
        .find(|(tool, _)| *tool == name)
        .map(|(_, acts)| *acts)
}

/// Returns whether a tool changes the database, so that its calls are audited.
pub fn mutates(name: &str) -> bool {
    matches!(
        name,
        "create_project"
            | "join_project"
            | "send_message"
            | "receive_messages"
            | "store_resource"
            | "update_resource"
            | "append_log"
            | "delete_resource"
            | "heartbeat"
            | "handover_coordinator"
            | "delete_project"
            | "leave_project"
            | "archive_project"
    )
}
