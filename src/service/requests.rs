//! Arguments of each operation, as clients send them. Field names are the tool interface.
//!
//! Every struct rejects unknown fields, so a misspelled argument fails loudly instead of being
//! ignored. The doc comments become the argument descriptions in the tool schemas.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Arguments of `status`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// Absolute, normalized path of the agent's working folder. It identifies the client.
    pub working_directory: String,
}

/// Arguments of `create_project`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProjectRequest {
    /// New project id: 1 to 256 characters of A-Z a-z 0-9 _ -.
    pub project_id: String,
    /// Human-readable project name.
    pub name: String,
    /// Description of the project.
    #[serde(default)]
    pub description: Option<String>,
    /// Shared context for every member, as a JSON object.
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
    /// Agent name of the creator. It joins at once, becomes the coordinator, and is the only
    /// agent allowed to archive or delete the project.
    #[serde(default)]
    pub created_by: Option<String>,
}

/// Arguments of `join_project`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JoinProjectRequest {
    /// Project to join.
    pub project_id: String,
    /// Name to join under. Rejoining from the same client reclaims the name.
    pub agent_name: String,
    /// Capabilities of this agent, for example ["frontend", "review"].
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// Free-form string labels.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

/// Arguments of `get_project_info`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectInfoRequest {
    /// Project to describe.
    pub project_id: String,
    /// Block until the project exists, up to timeout_seconds.
    #[serde(default)]
    pub wait: Option<bool>,
    /// Maximum wait in seconds (default 50, capped at 3600).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// Arguments of `list_projects`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListProjectsRequest {
    /// Number of projects to skip (default 0).
    #[serde(default)]
    pub offset: Option<u64>,
    /// Maximum projects to return (default 100, maximum 1000).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Message metadata.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageMetadata {
    /// "low", "normal" or "high".
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Correlation id to follow a conversation across agents.
    #[serde(default)]
    pub trace_id: Option<String>,
}

/// Message priority.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
}

impl Priority {
    /// Returns the priority as clients write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
        }
    }
}

/// Arguments of `send_message`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageRequest {
    /// Project of sender and recipients.
    pub project_id: String,
    /// Sending agent; must be a member.
    pub from_agent: String,
    /// Whether the recipient should reply. Required, true or false.
    #[schemars(with = "bool", required)]
    #[serde(default)]
    pub reply_expected: Option<Value>,
    /// Message body: any JSON. A "type" field of "handoff", "handoff_accepted" or
    /// "handoff_rejected" marks a coordinator handoff.
    pub payload: Value,
    /// Recipient of a direct message. Give exactly one of to_agent and broadcast.
    #[serde(default)]
    pub to_agent: Option<String>,
    /// true sends to every member but the sender, in one transaction.
    #[serde(default)]
    pub broadcast: Option<bool>,
    /// Optional priority and trace id.
    #[serde(default)]
    pub metadata: Option<MessageMetadata>,
}

/// Arguments of `receive_messages`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReceiveMessagesRequest {
    /// Project of the inbox.
    pub project_id: String,
    /// Agent whose inbox to read.
    pub agent_name: String,
    /// Also return recently read messages that have not expired, in `read_messages`, so that
    /// messages from a response that never arrived can be recovered.
    #[serde(default)]
    pub include_read: Option<bool>,
    /// Number of unread messages to skip; skipped ones stay unread (default 0).
    #[serde(default)]
    pub offset: Option<u64>,
    /// Maximum messages to return (default 100, maximum 1000).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Block until a message arrives, up to timeout_seconds.
    #[serde(default)]
    pub wait: Option<bool>,
    /// Maximum wait in seconds (default 50, capped at 3600).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// Read and write access lists of a resource.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    /// Agents allowed to read, or "*" for every member (default ["*"]).
    #[serde(default)]
    pub read: Option<Vec<String>>,
    /// Agents allowed to write, or "*" for every member. The creator can always write.
    #[serde(default)]
    pub write: Option<Vec<String>>,
}

/// Arguments of `store_resource`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoreResourceRequest {
    /// Project of the resource.
    pub project_id: String,
    /// Resource id: 1 to 256 characters of A-Z a-z 0-9 _ -.
    pub resource_id: String,
    /// Human-readable resource name.
    pub name: String,
    /// Writing agent; must be a member.
    pub agent_name: String,
    /// Description of the resource.
    #[serde(default)]
    pub description: Option<String>,
    /// Content as text. Text starting with '{' or '[' must be valid JSON. Other JSON values
    /// are stored as their JSON text.
    #[serde(default)]
    pub content: Option<Value>,
    /// Absolute path of a UTF-8 file in the user's home folder to copy in, instead of content.
    #[serde(default)]
    pub source_path: Option<String>,
    /// Media type of the content, for example "application/json".
    #[serde(default)]
    pub mime_type: Option<String>,
    /// Etag from your last read. Required to update an existing resource; "*" overwrites
    /// whatever is there. On ETAG_MISMATCH, read again, reapply your change, retry.
    #[serde(default)]
    pub etag: Option<String>,
    /// "*" creates only: the call fails with RESOURCE_EXISTS when the resource exists.
    #[serde(default)]
    pub if_none_match: Option<String>,
    /// Read and write access lists. Only the creator may change them.
    #[serde(default)]
    pub permissions: Option<Permissions>,
    /// Free-form JSON object stored with the manifest.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// Arguments of `get_resource`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetResourceRequest {
    /// Project of the resource.
    pub project_id: String,
    /// Resource to read.
    pub resource_id: String,
    /// Reading agent; must be a member with read permission.
    pub agent_name: String,
    /// Etag you already hold: when the resource still has it, the result is
    /// {not_modified: true, etag} without content. With wait, blocks until the etag changes.
    #[serde(default)]
    pub if_none_match: Option<String>,
    /// Version number of an older version to read, while the history keeps it.
    #[serde(default)]
    pub version: Option<u64>,
    /// Block until the resource exists (or, with if_none_match, until it changes), up to
    /// timeout_seconds.
    #[serde(default)]
    pub wait: Option<bool>,
    /// Maximum wait in seconds (default 50, capped at 3600).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// Arguments of `list_resources`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListResourcesRequest {
    /// Project to list.
    pub project_id: String,
    /// Listing agent; only resources it may read are listed.
    pub agent_name: String,
    /// Number of readable resources to skip (default 0).
    #[serde(default)]
    pub offset: Option<u64>,
    /// Maximum resources to return (default 100, maximum 1000).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Arguments of `delete_resource`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteResourceRequest {
    /// Project of the resource.
    pub project_id: String,
    /// Resource to delete.
    pub resource_id: String,
    /// Deleting agent; must be the resource's creator.
    pub agent_name: String,
}

/// Arguments of `heartbeat`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// Project of the member.
    pub project_id: String,
    /// Member to mark.
    pub agent_name: String,
    /// Whether the agent is online (default true).
    #[serde(default)]
    pub online: Option<bool>,
}

/// Arguments of `handover_coordinator`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HandoverRequest {
    /// Project whose coordinator changes.
    pub project_id: String,
    /// Current coordinator.
    pub from_agent: String,
    /// Member that becomes coordinator.
    pub to_agent: String,
}

/// Arguments of `delete_project`, `leave_project` and `archive_project`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectAgentRequest {
    /// Project to act on.
    pub project_id: String,
    /// Acting agent.
    pub agent_name: String,
}

/// Arguments of `archive_project`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ArchiveProjectRequest {
    /// Project to archive. It stays readable.
    pub project_id: String,
    /// Acting agent; must be the project's creator.
    pub agent_name: String,
    /// Reason for archiving.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Arguments of `resource_history`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceHistoryRequest {
    /// Project of the resource.
    pub project_id: String,
    /// Document whose versions to list.
    pub resource_id: String,
    /// Reading agent; must be a member with read permission.
    pub agent_name: String,
}

/// Atomic operations of `update_resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Adds `value` (default 1) to the number that is the content, or that `path` points at.
    Increment,
    /// Applies `patch` as an RFC 7396 JSON merge patch.
    JsonMergePatch,
    /// Applies `patch`, an array of RFC 6902 operations; a failed `test` changes nothing.
    JsonPatch,
    /// Appends `value`: an element to a JSON array content, or text to other content.
    Append,
}

/// Arguments of `update_resource`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateResourceRequest {
    /// Project of the resource.
    pub project_id: String,
    /// Document to update; it must exist.
    pub resource_id: String,
    /// Writing agent; must be a member with write permission.
    pub agent_name: String,
    /// "increment", "json_merge_patch", "json_patch" or "append".
    pub operation: Operation,
    /// increment: the number to add (default 1). append: the element or text to append.
    #[serde(default)]
    pub value: Option<Value>,
    /// increment: JSON pointer to the number inside a JSON document, for example "/count".
    #[serde(default)]
    pub path: Option<String>,
    /// json_merge_patch: the patch object. json_patch: the array of operations.
    #[serde(default)]
    pub patch: Option<Value>,
    /// Optional etag: the update applies only while the resource still has it.
    #[serde(default)]
    pub etag: Option<String>,
    /// Also return the new content (default false).
    #[serde(default)]
    pub return_content: Option<bool>,
}

/// Arguments of `append_log`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AppendLogRequest {
    /// Project of the log.
    pub project_id: String,
    /// Log id: 1 to 256 characters of A-Z a-z 0-9 _ -. The first append creates the log.
    pub log_id: String,
    /// Appending agent; must be a member with write permission.
    pub agent_name: String,
    /// The entry: any JSON value.
    pub entry: Value,
    /// Human-readable name, used when the append creates the log (default: the log id).
    #[serde(default)]
    pub name: Option<String>,
    /// Access lists, used when the append creates the log (default: every member reads and
    /// appends).
    #[serde(default)]
    pub permissions: Option<Permissions>,
}

/// Arguments of `read_log`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadLogRequest {
    /// Project of the log.
    pub project_id: String,
    /// Log to read.
    pub log_id: String,
    /// Reading agent; must be a member with read permission.
    pub agent_name: String,
    /// Return entries with a sequence number after this one (default 0: from the start).
    #[serde(default)]
    pub after: Option<u64>,
    /// Maximum entries to return (default 100, maximum 1000).
    #[serde(default)]
    pub limit: Option<u64>,
    /// Block until an entry after `after` exists, up to timeout_seconds.
    #[serde(default)]
    pub wait: Option<bool>,
    /// Maximum wait in seconds (default 50, capped at 3600).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// Arguments of `audit_log`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditLogRequest {
    /// Project whose audit records to return. Required unless the caller sends the token.
    #[serde(default)]
    pub project_id: Option<String>,
    /// Reading agent; must be a member of the project. Required unless the caller sends the
    /// token.
    #[serde(default)]
    pub agent_name: Option<String>,
    /// Only records of calls that acted as this agent.
    #[serde(default)]
    pub actor: Option<String>,
    /// Return records with a sequence number after this one (default 0).
    #[serde(default)]
    pub after: Option<u64>,
    /// Maximum records to return (default 100, maximum 1000).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// Arguments of a tool that takes none, such as `version`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArguments {}
