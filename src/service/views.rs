//! JSON shapes of stored records as clients see them.

use serde_json::{Map, Value, json};

use crate::storage::records::*;
use crate::storage::schema::CURRENT_VERSION;
use crate::time::format_ms;

fn parse_json(text: &Option<String>) -> Value {
    text.as_deref()
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or(Value::Null)
}

fn insert_some(object: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(value) = value {
        object.insert(key.to_owned(), value);
    }
}

/// Renders a project.
pub fn project(record: &ProjectRecord) -> Value {
    let mut object = Map::new();
    object.insert("project_id".into(), json!(record.project_id));
    object.insert("name".into(), json!(record.name));
    insert_some(
        &mut object,
        "description",
        record.description.clone().map(Value::from),
    );
    insert_some(
        &mut object,
        "context",
        record
            .context_json
            .as_ref()
            .map(|_| parse_json(&record.context_json)),
    );
    object.insert("created_at".into(), json!(format_ms(record.created_at_ms)));
    insert_some(
        &mut object,
        "created_by",
        record.created_by.clone().map(Value::from),
    );
    insert_some(
        &mut object,
        "coordinator_agent",
        record.coordinator.clone().map(Value::from),
    );
    object.insert("archived".into(), json!(record.archived));
    insert_some(
        &mut object,
        "archived_at",
        record.archived_at_ms.map(|ms| json!(format_ms(ms))),
    );
    insert_some(
        &mut object,
        "archived_by",
        record.archived_by.clone().map(Value::from),
    );
    insert_some(
        &mut object,
        "archive_reason",
        record.archive_reason.clone().map(Value::from),
    );
    object.insert("schema_version".into(), json!(CURRENT_VERSION));
    Value::Object(object)
}

/// Renders a member.
pub fn member(record: &MemberRecord) -> Value {
    json!({
        "project_id": record.project_id,
        "agent_name": record.agent_name,
        "agent_id": record.agent_id,
        "client_id": record.client_id,
        "capabilities": record.capabilities,
        "labels": record.labels,
        "joined_at": format_ms(record.joined_at_ms),
        "last_seen": format_ms(record.last_seen_ms),
        "online": record.online,
    })
}

/// Renders a message.
pub fn message(record: &MessageRecord) -> Value {
    let mut object = Map::new();
    object.insert("message_id".into(), json!(record.message_id));
    object.insert("project_id".into(), json!(record.project_id));
    object.insert("from_agent".into(), json!(record.from_agent));
    insert_some(
        &mut object,
        "to_agent",
        record.to_agent.clone().map(Value::from),
    );
    object.insert("broadcast".into(), json!(record.broadcast));
    object.insert("reply_expected".into(), json!(record.reply_expected));
    object.insert(
        "payload".into(),
        parse_json(&Some(record.payload_json.clone())),
    );
    object.insert("created_at".into(), json!(format_ms(record.created_at_ms)));
    object.insert("ttl".into(), json!(record.ttl_secs));
    if record.priority.is_some() || record.trace_id.is_some() {
        let mut metadata = Map::new();
        insert_some(
            &mut metadata,
            "priority",
            record.priority.clone().map(Value::from),
        );
        insert_some(
            &mut metadata,
            "trace_id",
            record.trace_id.clone().map(Value::from),
        );
        object.insert("metadata".into(), Value::Object(metadata));
    }
    Value::Object(object)
}

/// Renders a resource manifest. The creator is internal and never shown.
pub fn manifest(record: &ManifestRecord) -> Value {
    let mut object = Map::new();
    object.insert("resource_id".into(), json!(record.resource_id));
    object.insert("project_id".into(), json!(record.project_id));
    object.insert("name".into(), json!(record.name));
    insert_some(
        &mut object,
        "description",
        record.description.clone().map(Value::from),
    );
    object.insert("created_at".into(), json!(format_ms(record.created_at_ms)));
    object.insert("updated_at".into(), json!(format_ms(record.updated_at_ms)));
    object.insert("etag".into(), json!(record.etag));
    object.insert("content_hash".into(), json!(record.content_hash));
    object.insert("version".into(), json!(record.version));
    object.insert("kind".into(), json!(record.kind.as_str()));
    insert_some(
        &mut object,
        "mime_type",
        record.mime_type.clone().map(Value::from),
    );
    object.insert("size_bytes".into(), json!(record.size_bytes));
    insert_some(
        &mut object,
        "source_path",
        record.source_path.clone().map(Value::from),
    );
    object.insert(
        "permissions".into(),
        json!({"read": record.read, "write": record.write}),
    );
    insert_some(
        &mut object,
        "metadata",
        record
            .metadata_json
            .as_ref()
            .map(|_| parse_json(&record.metadata_json)),
    );
    Value::Object(object)
}

/// Renders a kept version of a document, without its content.
pub fn history(record: &HistoryRecord) -> Value {
    json!({
        "version": record.version,
        "etag": record.etag,
        "author": record.author,
        "at": format_ms(record.at_ms),
        "size_bytes": record.size_bytes,
        "content_hash": record.content_hash,
    })
}

/// Renders the result of a long-poll that ended without the awaited change.
pub fn timed_out(waited_ms: u128) -> Value {
    json!({"timeout": true, "retry": true, "waited_ms": waited_ms})
}
