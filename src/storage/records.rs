//! Stored records. Timestamps are Unix milliseconds; JSON values are kept as JSON text,
//! because bincode cannot encode a self-describing value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Returns the content validator of `content`: `sha256:` and 64 lowercase hex digits.
pub fn content_hash(content: &[u8]) -> String {
    let digest = Sha256::digest(content);
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

/// A project (table `projects`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectRecord {
    pub project_id: String,
    pub name: String,
    pub description: Option<String>,
    pub context_json: Option<String>,
    pub created_at_ms: i64,
    pub created_by: Option<String>,
    pub coordinator: Option<String>,
    pub archived: bool,
    pub archived_at_ms: Option<i64>,
    pub archived_by: Option<String>,
    pub archive_reason: Option<String>,
}

/// A member of a project (table `members`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberRecord {
    pub project_id: String,
    /// The name as the agent gave it when it joined; the key stores the case-folded form.
    pub agent_name: String,
    pub agent_id: String,
    pub client_id: Option<String>,
    pub capabilities: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub joined_at_ms: i64,
    pub last_seen_ms: i64,
    pub online: bool,
}

/// A message in an inbox or in the archive of read messages (tables `inbox`, `archive`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRecord {
    pub message_id: String,
    pub project_id: String,
    pub from_agent: String,
    pub to_agent: Option<String>,
    pub broadcast: bool,
    pub reply_expected: bool,
    pub payload_json: String,
    pub created_at_ms: i64,
    pub ttl_secs: u64,
    pub priority: Option<String>,
    pub trace_id: Option<String>,
}

impl MessageRecord {
    /// Returns whether the message has outlived its time-to-live at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        let ttl_ms = i64::try_from(self.ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        now_ms >= self.created_at_ms.saturating_add(ttl_ms)
    }
}

/// The manifest of a shared resource (table `manifests`); its bytes live in `contents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestRecord {
    pub resource_id: String,
    pub project_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub etag: String,
    pub mime_type: Option<String>,
    pub size_bytes: u64,
    pub source_path: Option<String>,
    pub read: Vec<String>,
    pub write: Vec<String>,
    pub metadata_json: Option<String>,
    /// The agent that created the resource. Never returned to clients.
    pub creator: String,
    /// `sha256:` and the hex SHA-256 of the content; equal for equal content.
    pub content_hash: String,
    /// Write count: 1 after creation, one more per write. For a log, its last sequence number.
    pub version: u64,
    pub kind: ResourceKind,
}

/// Kind of content of a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResourceKind {
    /// Content replaced by each write.
    Document,
    /// Append-only entries, each with a sequence number (table `log_entries`).
    Log,
}

impl ResourceKind {
    /// Returns the kind as clients see it.
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Document => "document",
            ResourceKind::Log => "log",
        }
    }
}

/// One kept version of a document (table `history`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryRecord {
    pub version: u64,
    pub etag: String,
    pub author: String,
    pub at_ms: i64,
    pub size_bytes: u64,
    pub content_hash: String,
    pub content: Vec<u8>,
}

/// One entry of an append-only log (table `log_entries`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntryRecord {
    pub seq: u64,
    pub author: String,
    pub at_ms: i64,
    pub entry_json: String,
}

/// One mutating call, as recorded in the audit trail (table `audit`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub seq: u64,
    pub at_ms: i64,
    pub client_id: Option<String>,
    pub project_id: Option<String>,
    /// Agent the call acted as, when it named one.
    pub actor: Option<String>,
    /// Tool name.
    pub action: String,
    /// Resource, recipient or other object the call acted on.
    pub target: Option<String>,
    /// `ok`, or the error code the call failed with.
    pub outcome: String,
}

/// A client: one working directory or one `BRAINSTORM_CLIENT_ID` (table `clients`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub client_id: String,
    pub created_at_ms: i64,
    pub last_seen_ms: i64,
}

/// A client's membership in one project (table `memberships`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MembershipRecord {
    pub project_id: String,
    pub agent_name: String,
    pub project_name: String,
    pub joined_at_ms: i64,
}
