//! Table definitions of the current schema. `migrations/` documents every version.
//!
//! Values are records encoded by [`super::encode`]. Agent names in keys are ASCII-lowercased
//! (see [`super::agent_key`]), so that names differing only in case share one key.

use redb::TableDefinition;

/// Schema metadata: `schema_version` (u32 LE), `next_message_seq` and `next_audit_seq`
/// (u64 LE).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// `project_id` to project.
pub const PROJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("projects");
/// (`project_id`, agent key) to member.
pub const MEMBERS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("members");
/// (`project_id`, recipient agent key, sequence) to unread message.
pub const INBOX: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("inbox");
/// (`project_id`, recipient agent key, sequence) to read message.
pub const ARCHIVE: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("archive");
/// (`project_id`, `resource_id`) to manifest.
pub const MANIFESTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("manifests");
/// (`project_id`, `resource_id`) to content bytes behind a format-version byte.
pub const CONTENTS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("contents");
/// `client_id` to client.
pub const CLIENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("clients");
/// (`client_id`, `project_id`) to membership.
pub const MEMBERSHIPS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("memberships");

/// (`project_id`, `resource_id`, version) to a kept version of a document.
pub const HISTORY: TableDefinition<(&str, &str, u64), &[u8]> = TableDefinition::new("history");
/// (`project_id`, `resource_id`, sequence) to a log entry.
pub const LOG_ENTRIES: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("log_entries");
/// Audit sequence number to the record of one mutating call.
pub const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// Key in [`META`] holding the schema version.
pub const SCHEMA_VERSION_KEY: &str = "schema_version";
/// Key in [`META`] holding the next message sequence number.
pub const NEXT_SEQ_KEY: &str = "next_message_seq";
/// Key in [`META`] holding the next audit sequence number.
pub const NEXT_AUDIT_KEY: &str = "next_audit_seq";
