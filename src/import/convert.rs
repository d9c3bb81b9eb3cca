//! Conversion of the original server's JSON files into this server's records.
//!
//! Every function takes the bytes of one file and the ids its location implies, and returns
//! the record or the reason the file cannot be imported. None of them touches the disk or
//! the database, so each can be tested and fuzzed on its own.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::service::validate::{
    MAX_NAME_LENGTH, MAX_TEXT_LENGTH, check_id, check_json_depth, check_json_text,
    check_optional_text, check_text, object_json,
};
use crate::storage::records::{
    AuditRecord, ClientRecord, MemberRecord, MessageRecord, ProjectRecord,
};

/// Reason a file was not imported, in words for the report.
pub type Reason = String;

/// The only project format the original server ever wrote.
pub const SCHEMA_VERSION: &str = "1.0";

/// Parses JSON text into `T`, naming the file's kind in the error.
fn parse<T: DeserializeOwned>(kind: &str, bytes: &[u8]) -> Result<T, Reason> {
    serde_json::from_slice(bytes).map_err(|err| format!("{kind} is not valid: {err}"))
}

/// Converts an ISO 8601 UTC timestamp such as `2026-12-04T15:27:24.270Z` to Unix
/// milliseconds.
pub fn timestamp(field: &str, text: &str) -> Result<i64, Reason> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|err| format!("{field} {text:?} is not an ISO 8601 timestamp: {err}"))?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("{field} {text:?} is out of range"))
}

/// Checks an id found in a body or a file name, with the rules of the tools.
fn id(field: &str, value: &str) -> Result<(), Reason> {
    check_id(field, value).map_err(|err| err.message)
}

/// Checks that an id in a body equals the one its location implies.
fn same(field: &str, in_body: &str, in_location: &str) -> Result<(), Reason> {
    if in_body == in_location {
        return Ok(());
    }
    Err(format!(
        "{field} {in_body:?} in the body disagrees with {in_location:?} in the path; neither can be trusted"
    ))
}

/// `system/config.json`: only the message time-to-live matters to an import.
#[derive(Deserialize)]
struct ConfigFile {
    message_ttl_seconds: Option<u64>,
}

/// Returns the message time-to-live declared in `system/config.json`, if any.
pub fn config_ttl(bytes: &[u8]) -> Result<Option<u64>, Reason> {
    let config: ConfigFile = parse("config.json", bytes)?;
    Ok(config.message_ttl_seconds.filter(|ttl| *ttl > 0))
}

#[derive(Deserialize)]
struct ProjectFile {
    project_id: String,
    name: String,
    description: Option<String>,
    context: Option<Map<String, Value>>,
    created_by: Option<String>,
    created_at: String,
    schema_version: Option<Value>,
    coordinator_agent: Option<String>,
    #[serde(default)]
    archived: bool,
    archived_at: Option<String>,
    archived_by: Option<String>,
    archive_reason: Option<String>,
}

/// Converts `projects/<folder>/metadata.json`.
///
/// A project whose `schema_version` is not "1.0" is refused: its other fields may mean
/// something this import does not know.
pub fn project(bytes: &[u8], folder: &str) -> Result<ProjectRecord, Reason> {
    let file: ProjectFile = parse("metadata.json", bytes)?;
    match &file.schema_version {
        Some(Value::String(version)) if version == SCHEMA_VERSION => {}
        other => {
            let found = other.as_ref().map_or("none".to_owned(), Value::to_string);
            return Err(format!(
                "schema_version is {found}, and only \"{SCHEMA_VERSION}\" is known; the project was not imported"
            ));
        }
    }
    id("project_id", &file.project_id)?;
    same("project_id", &file.project_id, folder)?;
    check_text("name", &file.name, MAX_NAME_LENGTH, true).map_err(|err| err.message)?;
    check_optional_text("description", file.description.as_deref(), MAX_TEXT_LENGTH)
        .map_err(|err| err.message)?;
    check_optional_text(
        "archive_reason",
        file.archive_reason.as_deref(),
        MAX_TEXT_LENGTH,
    )
    .map_err(|err| err.message)?;
    for (field, agent) in [
        ("created_by", &file.created_by),
        ("coordinator_agent", &file.coordinator_agent),
        ("archived_by", &file.archived_by),
    ] {
        if let Some(agent) = agent {
            id(field, agent)?;
        }
    }
    let context_json = match &file.context {
        Some(context) => Some(object_json("context", context).map_err(|err| err.message)?),
        None => None,
    };
    let archived_at_ms = match &file.archived_at {
        Some(at) => Some(timestamp("archived_at", at)?),
        None => None,
    };
    Ok(ProjectRecord {
        project_id: file.project_id,
        name: file.name,
        description: file.description,
        context_json,
        created_at_ms: timestamp("created_at", &file.created_at)?,
        // The original fills in the coordinator lazily from the creator, so a project that no
        // call touched after its creation has none on disk.
        coordinator: file.coordinator_agent.or(file.created_by.clone()),
        created_by: file.created_by,
        archived: file.archived,
        archived_at_ms,
        archived_by: file.archived_by,
        archive_reason: file.archive_reason,
    })
}

#[derive(Deserialize)]
struct MemberFile {
    project_id: String,
    agent_name: String,
    agent_id: String,
    client_id: Option<String>,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    joined_at: String,
    last_seen: String,
    online: bool,
}

/// Converts `projects/<project_id>/members/<stem>.json`.
pub fn member(bytes: &[u8], project_id: &str, stem: &str) -> Result<MemberRecord, Reason> {
    let file: MemberFile = parse("member file", bytes)?;
    same("project_id", &file.project_id, project_id)?;
    id("agent_name", &file.agent_name)?;
    same("agent_name", &file.agent_name, stem)?;
    id("agent_id", &file.agent_id)?;
    if let Some(client_id) = &file.client_id {
        id("client_id", client_id)?;
    }
    crate::service::check_tags(&file.capabilities, Some(&file.labels))
        .map_err(|err| err.message)?;
    Ok(MemberRecord {
        project_id: file.project_id,
        agent_name: file.agent_name,
        agent_id: file.agent_id,
        client_id: file.client_id,
        capabilities: file.capabilities,
        labels: file.labels,
        joined_at_ms: timestamp("joined_at", &file.joined_at)?,
        last_seen_ms: timestamp("last_seen", &file.last_seen)?,
        online: file.online,
    })
}

#[derive(Deserialize)]
struct MessageFile {
    message_id: String,
    project_id: String,
    from_agent: String,
    to_agent: Option<String>,
    broadcast: Option<bool>,
    reply_expected: bool,
    payload: Value,
    created_at: String,
    ttl: Option<u64>,
    metadata: Option<Map<String, Value>>,
}

/// Location of a message file, and the limits that apply to it.
#[derive(Debug, Clone)]
pub struct MessagePlace<'a> {
    pub project_id: &'a str,
    /// The inbox folder's name: the recipient.
    pub recipient: &'a str,
    /// The message id in the file name.
    pub file_message_id: &'a str,
    /// Time-to-live for a message that declares none.
    pub default_ttl_secs: u64,
    pub max_payload_bytes: usize,
}

/// A converted message and what the conversion had to leave out.
#[derive(Debug)]
pub struct Message {
    pub record: MessageRecord,
    pub notes: Vec<String>,
}

/// Converts one message file from `messages/<recipient>/` or its `archive/`.
pub fn message(bytes: &[u8], place: &MessagePlace) -> Result<Message, Reason> {
    let file: MessageFile = parse("message file", bytes)?;
    id("message_id", &file.message_id)?;
    same("message_id", &file.message_id, place.file_message_id)?;
    same("project_id", &file.project_id, place.project_id)?;
    id("from_agent", &file.from_agent)?;
    // Messages written before broadcasts were marked have no recipient when they are broadcasts.
    let broadcast = file.broadcast.unwrap_or(file.to_agent.is_none());
    match (&file.to_agent, broadcast) {
        (Some(to), false) => {
            id("to_agent", to)?;
            same("to_agent", to, place.recipient)?;
        }
        (None, false) => {
            return Err("a direct message (broadcast false) names no to_agent".to_owned());
        }
        (Some(_), true) => {
            return Err(
                "a broadcast copy names a to_agent; the original never writes both".to_owned(),
            );
        }
        (None, true) => {}
    }
    check_json_depth("payload", &file.payload).map_err(|err| err.message)?;
    let payload_json = file.payload.to_string();
    if payload_json.len() > place.max_payload_bytes {
        return Err(format!(
            "payload is {} bytes; the maximum is {} bytes (raise it with --max-payload-size)",
            payload_json.len(),
            place.max_payload_bytes
        ));
    }
    let mut notes = Vec::new();
    let mut metadata = file.metadata.unwrap_or_default();
    let priority = match metadata.remove("priority") {
        Some(Value::String(p)) if ["low", "normal", "high"].contains(&p.as_str()) => Some(p),
        Some(other) => {
            notes.push(format!(
                "metadata.priority {other} is not low, normal or high and was left out"
            ));
            None
        }
        None => None,
    };
    let trace_id = match metadata.remove("trace_id") {
        Some(Value::String(t)) if t.chars().count() <= MAX_NAME_LENGTH => Some(t),
        Some(other) => {
            notes.push(format!(
                "metadata.trace_id {other} is not a string of at most {MAX_NAME_LENGTH} characters and was left out"
            ));
            None
        }
        None => None,
    };
    if !metadata.is_empty() {
        let keys: Vec<&str> = metadata.keys().map(String::as_str).collect();
        notes.push(format!(
            "metadata keys {keys:?} have no place in this server's messages and were left out"
        ));
    }
    let record = MessageRecord {
        message_id: file.message_id,
        project_id: file.project_id,
        from_agent: file.from_agent,
        to_agent: if broadcast { None } else { file.to_agent },
        broadcast,
        reply_expected: file.reply_expected,
        payload_json,
        created_at_ms: timestamp("created_at", &file.created_at)?,
        ttl_secs: file.ttl.unwrap_or(place.default_ttl_secs),
        priority,
        trace_id,
    };
    Ok(Message { record, notes })
}

#[derive(Deserialize)]
struct PermissionsFile {
    #[serde(default)]
    read: Vec<String>,
    #[serde(default)]
    write: Vec<String>,
}

#[derive(Deserialize)]
struct ManifestFile {
    resource_id: String,
    project_id: String,
    name: String,
    description: Option<String>,
    created_at: String,
    updated_at: String,
    etag: Option<String>,
    version: Option<Value>,
    mime_type: Option<String>,
    permissions: Option<PermissionsFile>,
    creator_agent: Option<String>,
    source_path: Option<String>,
    size_bytes: Option<u64>,
    metadata: Option<Map<String, Value>>,
}

/// A resource manifest, checked but not yet joined with its content.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub resource_id: String,
    pub project_id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    /// The stored etag; `None` only for a legacy manifest that had a `version` instead.
    pub etag: Option<String>,
    pub mime_type: Option<String>,
    pub read: Vec<String>,
    pub write: Vec<String>,
    pub creator: String,
    pub source_path: Option<String>,
    pub size_bytes: Option<u64>,
    pub metadata_json: Option<String>,
    pub notes: Vec<String>,
}

/// Returns whether `etag` has the original's form: 16 lowercase hex digits.
pub fn is_etag(etag: &str) -> bool {
    etag.len() == 16
        && etag
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

fn access_list(field: &str, list: &[String]) -> Result<(), Reason> {
    const MAX_ENTRIES: usize = 256;
    if list.len() > MAX_ENTRIES {
        return Err(format!(
            "{field} lists {} agents; the maximum is {MAX_ENTRIES}",
            list.len()
        ));
    }
    list.iter()
        .filter(|entry| entry.as_str() != "*")
        .try_for_each(|entry| id(field, entry))
}

/// Converts `resources/<folder>/manifest.json` of project `project_id`.
pub fn manifest(bytes: &[u8], project_id: &str, folder: &str) -> Result<Manifest, Reason> {
    let file: ManifestFile = parse("manifest.json", bytes)?;
    id("resource_id", &file.resource_id)?;
    same("resource_id", &file.resource_id, folder)?;
    same("project_id", &file.project_id, project_id)?;
    check_text("name", &file.name, MAX_NAME_LENGTH, true).map_err(|err| err.message)?;
    check_optional_text("description", file.description.as_deref(), MAX_TEXT_LENGTH)
        .map_err(|err| err.message)?;
    check_optional_text("mime_type", file.mime_type.as_deref(), MAX_NAME_LENGTH)
        .map_err(|err| err.message)?;
    check_optional_text("source_path", file.source_path.as_deref(), MAX_TEXT_LENGTH)
        .map_err(|err| err.message)?;
    let mut notes = Vec::new();
    let etag = match (file.etag, &file.version) {
        (Some(etag), _) if is_etag(&etag) => Some(etag),
        (Some(etag), _) => {
            return Err(format!(
                "etag {etag:?} is not 16 lowercase hex digits, so it cannot be kept"
            ));
        }
        (None, Some(_)) => {
            notes.push(
                "legacy manifest with a version and no etag: given a fresh etag, as the original \
                 did when it first read such a manifest"
                    .to_owned(),
            );
            None
        }
        (None, None) => return Err("manifest has neither an etag nor a version".to_owned()),
    };
    let (read, mut write) = match file.permissions {
        Some(permissions) => (permissions.read, permissions.write),
        None => {
            notes.push(
                "no permissions: the original refused every read, so only the creator may read \
                 or write it"
                    .to_owned(),
            );
            (Vec::new(), Vec::new())
        }
    };
    access_list("permissions.read", &read)?;
    access_list("permissions.write", &write)?;
    let creator = match file.creator_agent {
        Some(creator) => {
            id("creator_agent", &creator)?;
            creator
        }
        None => {
            // A legacy manifest names no creator; the first named writer is the closest.
            let named = write.iter().find(|entry| entry.as_str() != "*").cloned();
            notes.push(match &named {
                Some(agent) => {
                    format!(
                        "no creator_agent: {agent:?}, its first named writer, became its creator"
                    )
                }
                None => "no creator_agent and no named writer: nobody may delete it".to_owned(),
            });
            named.unwrap_or_default()
        }
    };
    if !creator.is_empty() && !write.iter().any(|entry| entry == &creator || entry == "*") {
        write.push(creator.clone());
    }
    let metadata_json = match &file.metadata {
        Some(metadata) => Some(object_json("metadata", metadata).map_err(|err| err.message)?),
        None => None,
    };
    Ok(Manifest {
        resource_id: file.resource_id,
        project_id: file.project_id,
        name: file.name,
        description: file.description,
        created_at_ms: timestamp("created_at", &file.created_at)?,
        updated_at_ms: timestamp("updated_at", &file.updated_at)?,
        etag,
        mime_type: file.mime_type,
        read,
        write,
        creator,
        source_path: file.source_path,
        size_bytes: file.size_bytes,
        metadata_json,
        notes,
    })
}

/// Checks inline content read from `payload/data` against its manifest and the limits.
pub fn inline_content(
    manifest: &Manifest,
    bytes: Vec<u8>,
    max_bytes: usize,
) -> Result<String, Reason> {
    if let Some(expected) = manifest.size_bytes
        && expected != bytes.len() as u64
    {
        return Err(format!(
            "payload/data has {} bytes but the manifest says {expected}; it may have been cut \
             short by a crash",
            bytes.len()
        ));
    }
    if bytes.len() > max_bytes {
        return Err(format!(
            "content is {} bytes; the maximum is {max_bytes} bytes (raise it with --max-payload-size)",
            bytes.len()
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| "payload/data is not UTF-8 text, which this server cannot store".to_owned())?;
    check_json_text("content", &text).map_err(|err| err.message)?;
    Ok(text)
}

#[derive(Deserialize)]
struct IdentityFile {
    client_id: String,
    created_at: String,
    last_seen: String,
}

/// Converts `clients/<folder>/identity.json`.
pub fn client(bytes: &[u8], folder: &str) -> Result<ClientRecord, Reason> {
    let file: IdentityFile = parse("identity.json", bytes)?;
    id("client_id", &file.client_id)?;
    same("client_id", &file.client_id, folder)?;
    Ok(ClientRecord {
        client_id: file.client_id,
        created_at_ms: timestamp("created_at", &file.created_at)?,
        last_seen_ms: timestamp("last_seen", &file.last_seen)?,
    })
}

#[derive(Deserialize)]
#[allow(dead_code)] // Parsed to check the file's shape; memberships come from member files.
struct MembershipEntry {
    project_id: String,
    agent_name: String,
    project_name: String,
    joined_at: String,
}

/// Checks `clients/<id>/memberships.json` and returns the (project, agent) pairs it lists.
pub fn memberships(bytes: &[u8]) -> Result<Vec<(String, String)>, Reason> {
    let entries: Vec<MembershipEntry> = parse("memberships.json", bytes)?;
    Ok(entries
        .into_iter()
        .map(|entry| (entry.project_id, entry.agent_name))
        .collect())
}

#[derive(Deserialize)]
struct AuditLine {
    timestamp: String,
    actor: String,
    action: String,
    target: Option<String>,
    #[serde(default)]
    details: Map<String, Value>,
}

/// Actions whose target is the project itself.
const PROJECT_ACTIONS: [&str; 6] = [
    "create_project",
    "join_project",
    "handover_coordinator",
    "leave_project",
    "archive_project",
    "delete_project",
];

/// Converts one line of `system/audit.log`; returns the record and the project it belongs to.
///
/// The record's sequence number is assigned when it is stored.
pub fn audit_line(line: &[u8]) -> Result<(AuditRecord, String), Reason> {
    let line: AuditLine = parse("audit line", line)?;
    let project_id = match line.details.get("project_id") {
        Some(Value::String(project_id)) => project_id.clone(),
        _ if PROJECT_ACTIONS.contains(&line.action.as_str()) => {
            line.target.clone().unwrap_or_default()
        }
        _ => return Err(format!("action {:?} names no project", line.action)),
    };
    id("project_id", &project_id)?;
    check_text("action", &line.action, MAX_NAME_LENGTH, true).map_err(|err| err.message)?;
    check_optional_text("target", line.target.as_deref(), MAX_NAME_LENGTH)
        .map_err(|err| err.message)?;
    // "system" stands for a project created without a creator: no agent acted.
    let actor = Some(line.actor).filter(|actor| actor != "system");
    if let Some(actor) = &actor {
        id("actor", actor)?;
    }
    let client_id = match line.details.get("client_id") {
        Some(Value::String(client_id)) => {
            id("details.client_id", client_id)?;
            Some(client_id.clone())
        }
        _ => None,
    };
    let record = AuditRecord {
        seq: 0,
        at_ms: timestamp("timestamp", &line.timestamp)?,
        client_id,
        project_id: Some(project_id.clone()),
        actor,
        action: line.action,
        target: line.target,
        outcome: "ok".to_owned(),
    };
    Ok((record, project_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place<'a>(recipient: &'a str, file_message_id: &'a str) -> MessagePlace<'a> {
        MessagePlace {
            project_id: "web-app",
            recipient,
            file_message_id,
            default_ttl_secs: 60,
            max_payload_bytes: 1000,
        }
    }

    #[test]
    fn timestamps_convert_to_unix_milliseconds() {
        assert_eq!(
            timestamp("at", "2026-12-04T16:00:00.650Z"),
            Ok(1_796_400_000_650)
        );
        assert!(timestamp("at", "yesterday").is_err());
    }

    #[test]
    fn a_project_of_an_unknown_schema_version_is_refused() {
        let body = br#"{"project_id":"p","name":"P","created_at":"2026-12-04T16:00:00.000Z","schema_version":"2.0"}"#;
        let reason = project(body, "p").unwrap_err();
        assert!(reason.contains("schema_version is \"2.0\""), "{reason}");
        let numeric = br#"{"project_id":"p","name":"P","created_at":"2026-12-04T16:00:00.000Z","schema_version":1}"#;
        assert!(project(numeric, "p").is_err());
    }

    #[test]
    fn a_project_without_coordinator_gets_its_creator() {
        let body = br#"{"project_id":"p","name":"P","created_by":"ann","created_at":"2026-12-04T16:00:00.000Z","schema_version":"1.0"}"#;
        let record = project(body, "p").expect("valid project");
        assert_eq!(record.coordinator.as_deref(), Some("ann"));
    }

    #[test]
    fn a_member_file_must_match_its_name() {
        let body = br#"{"project_id":"web-app","agent_name":"frontend","agent_id":"a-1","joined_at":"2026-12-04T16:00:00.000Z","last_seen":"2026-12-04T16:00:00.000Z","online":true}"#;
        let reason = member(body, "web-app", "backend").unwrap_err();
        assert!(reason.contains("agent_name \"frontend\""), "{reason}");
        let legacy = member(body, "web-app", "frontend").expect("legacy member");
        assert!(legacy.capabilities.is_empty());
        assert!(legacy.client_id.is_none());
    }

    #[test]
    fn a_direct_message_in_another_inbox_is_refused() {
        let body = br#"{"message_id":"m-1","project_id":"web-app","from_agent":"a","to_agent":"backend","broadcast":false,"reply_expected":false,"payload":{},"created_at":"2026-12-04T16:00:00.000Z"}"#;
        assert!(message(body, &place("frontend", "m-1")).is_err());
        assert!(message(body, &place("backend", "m-2")).is_err());
        let ok = message(body, &place("backend", "m-1")).expect("in its own inbox");
        assert_eq!(ok.record.to_agent.as_deref(), Some("backend"));
        assert_eq!(ok.record.ttl_secs, 60);
    }

    #[test]
    fn a_legacy_message_without_recipient_is_a_broadcast() {
        let body = br#"{"message_id":"m-1","project_id":"web-app","from_agent":"a","reply_expected":false,"payload":{},"created_at":"2026-12-04T16:00:00.000Z","metadata":{"priority":"urgent","x":1}}"#;
        let converted = message(body, &place("backend", "m-1")).expect("broadcast copy");
        assert!(converted.record.broadcast);
        assert_eq!(converted.record.priority, None);
        assert_eq!(converted.notes.len(), 2, "{:?}", converted.notes);
    }

    #[test]
    fn a_manifest_keeps_its_etag_and_adds_its_creator_as_writer() {
        let body = br#"{"resource_id":"r","project_id":"web-app","name":"R","created_at":"2026-12-04T16:00:00.000Z","updated_at":"2026-12-04T16:00:00.000Z","etag":"0c71e7410fd3b300","permissions":{"read":["*"],"write":["ann"]},"creator_agent":"bob"}"#;
        let converted = manifest(body, "web-app", "r").expect("valid manifest");
        assert_eq!(converted.etag.as_deref(), Some("0c71e7410fd3b300"));
        assert_eq!(converted.write, ["ann", "bob"]);
        let bad_etag = String::from_utf8_lossy(body).replace("0c71e7410fd3b300", "0C71");
        assert!(manifest(bad_etag.as_bytes(), "web-app", "r").is_err());
    }

    #[test]
    fn inline_content_must_have_the_recorded_size() {
        let body = br#"{"resource_id":"r","project_id":"p","name":"R","created_at":"2026-12-04T16:00:00.000Z","updated_at":"2026-12-04T16:00:00.000Z","etag":"0c71e7410fd3b300","size_bytes":5}"#;
        let converted = manifest(body, "p", "r").expect("valid manifest");
        assert_eq!(
            inline_content(&converted, b"hello".to_vec(), 100).as_deref(),
            Ok("hello")
        );
        assert!(inline_content(&converted, b"hell".to_vec(), 100).is_err());
    }

    #[test]
    fn audit_lines_name_their_project() {
        let line = br#"{"timestamp":"2026-12-04T15:27:24.271Z","actor":"system","action":"create_project","target":"web-app"}"#;
        let (record, project_id) = audit_line(line).expect("valid line");
        assert_eq!(project_id, "web-app");
        assert_eq!(record.actor, None);
        let store = br#"{"timestamp":"2026-12-04T15:27:24.271Z","actor":"ann","action":"store_resource","target":"readme","details":{"project_id":"docs","storage_type":"inline"}}"#;
        assert_eq!(audit_line(store).expect("valid line").1, "docs");
        assert!(audit_line(br#"{"timestamp":"2026-12-04T15:27:24.271Z","actor":"ann","action":"store_resource","target":"x"}"#).is_err());
    }
}
