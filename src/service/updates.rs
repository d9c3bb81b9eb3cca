//! Atomic updates: operations applied to a document inside one write transaction, so that
//! concurrent callers never conflict and never need an etag loop.

use serde_json::{Number, Value, json};
use tracing::debug;

use super::arguments::{Change, CheckArguments};
use super::etag::new_etag;
use super::requests::UpdateResourceRequest;
use super::resources::{can_read, can_write, check_kind, denied, not_found, save_document};
use super::validate::check_json_text;
use super::{Service, WaitKey, project_and_member, views};
use crate::error::{ErrorCode, ServiceError, ServiceResult};
use crate::storage::records::ResourceKind;
use crate::time::now_ms;

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::InvalidOperation, message)
}

/// Parses content as JSON for an operation that needs a JSON document.
fn parse_document(content: &str, operation: &str) -> ServiceResult<Value> {
    if content.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(content).map_err(|err| {
        invalid(format!(
            "{operation} needs JSON content, but the content is not JSON: {err}"
        ))
    })
}

/// Adds two JSON numbers: exactly for integers (failing on overflow), else as floats.
fn add(current: &Number, by: &Number) -> ServiceResult<Number> {
    if let (Some(a), Some(b)) = (current.as_i64(), by.as_i64()) {
        return a.checked_add(b).map(Number::from).ok_or_else(|| {
            ServiceError::new(
                ErrorCode::NotANumber,
                format!("adding {b} overflows a 64-bit integer"),
            )
            .with("value", b)
        });
    }
    let sum = current.as_f64().unwrap_or(0.0) + by.as_f64().unwrap_or(0.0);
    Number::from_f64(sum).ok_or_else(|| {
        ServiceError::new(
            ErrorCode::NotANumber,
            format!("adding {by} gives a number that is not finite"),
        )
        .with("value", Value::Number(by.clone()))
    })
}

fn increment(content: &str, by: &Number, path: Option<&str>) -> ServiceResult<String> {
    let Some(path) = path else {
        let text = content.trim();
        let current: Number = match text {
            "" => Number::from(0),
            _ => serde_json::from_str(text).map_err(|_| {
                ServiceError::new(
                    ErrorCode::NotANumber,
                    "the content is not a number; give path to a number inside a JSON document",
                )
            })?,
        };
        return Ok(add(&current, by)?.to_string());
    };
    let mut document = parse_document(content, "increment with path")?;
    let target = document.pointer_mut(path).ok_or_else(|| {
        ServiceError::new(
            ErrorCode::PatchFailed,
            format!("path {path:?} does not exist in the document"),
        )
        .with("path", path)
    })?;
    let Value::Number(current) = target else {
        return Err(ServiceError::new(
            ErrorCode::NotANumber,
            format!(
                "the value at {path:?} is {}, not a number",
                json_type(target)
            ),
        )
        .with("path", path));
    };
    *target = Value::Number(add(current, by)?);
    Ok(document.to_string())
}

fn merge_patch(content: &str, patch: &Value) -> ServiceResult<String> {
    let mut document = parse_document(content, "json_merge_patch")?;
    json_patch::merge(&mut document, patch);
    Ok(document.to_string())
}

fn patch(content: &str, operations: &json_patch::Patch) -> ServiceResult<String> {
    let mut document = parse_document(content, "json_patch")?;
    json_patch::patch(&mut document, operations).map_err(|err| {
        let code = match err.kind {
            json_patch::PatchErrorKind::TestFailed => ErrorCode::PatchTestFailed,
            _ => ErrorCode::PatchFailed,
        };
        ServiceError::new(
            code,
            format!(
                "patch operation {} at {:?} failed: {}; nothing was changed",
                err.operation,
                err.path.to_string(),
                err.kind
            ),
        )
        .with("operation", err.operation)
        .with("path", err.path.to_string())
    })?;
    Ok(document.to_string())
}

fn append(content: &str, value: &Value) -> ServiceResult<String> {
    if content.trim_start().starts_with('[') {
        let mut document = parse_document(content, "append")?;
        if let Value::Array(items) = &mut document {
            items.push(value.clone());
            return Ok(document.to_string());
        }
    }
    match value {
        Value::String(text) => Ok(format!("{content}{text}")),
        other => Err(invalid(format!(
            "append to text content needs a string value, got {other}; JSON elements can be appended to array content"
        ))
        .with("operation", "append")
        .with("argument", "value")),
    }
}

/// Names the JSON type of a value, for errors that must not show the value itself.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Applies a checked change to the current content and returns the new content.
fn apply(content: &str, change: &Change) -> ServiceResult<String> {
    match change {
        Change::Increment { by, path } => increment(content, by, path.as_deref()),
        Change::MergePatch(patch) => merge_patch(content, patch),
        Change::Patch(operations) => patch(content, operations),
        Change::Append(value) => append(content, value),
    }
}

impl Service {
    /// Applies an operation to a document's current content in one write transaction.
    /// Concurrent updates queue on the write lock, so none is lost and none conflicts; an
    /// optional etag makes the update conditional.
    pub fn update_resource(&self, request: &UpdateResourceRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        let change = request.change()?;
        let max_bytes = self.config.max_payload_size;
        let keep = self.config.history_limit;
        let (manifest, content) = self.write({
            let request = request.clone();
            move |tx| {
                let (_, member) = project_and_member(tx, &request.project_id, &request.agent_name)?;
                let existing = tx
                    .manifest(&request.project_id, &request.resource_id)?
                    .ok_or_else(|| not_found(&request.project_id, &request.resource_id))?;
                check_kind(&existing, ResourceKind::Document, "update_resource")?;
                let agent = &member.agent_name;
                if !can_write(&existing, agent) {
                    return Err(denied(ErrorCode::WritePermissionDenied, "write", agent, &existing));
                }
                // A writer outside the read list may change the content but not learn it.
                let reveals_content = request.return_content == Some(true) || change.tests_content();
                if reveals_content && !can_read(&existing, agent) {
                    return Err(denied(ErrorCode::ReadPermissionDenied, "read", agent, &existing));
                }
                match request.etag.as_deref() {
                    None | Some("") | Some("*") => {}
                    Some(etag) if etag == existing.etag => {}
                    Some(_) => {
                        return Err(ServiceError::new(
                            ErrorCode::EtagMismatch,
                            format!("resource {:?} no longer has that etag; read it again, or update without an etag", existing.resource_id),
                        )
                        .with("resource_id", existing.resource_id.as_str())
                        .with("project_id", existing.project_id.as_str()));
                    }
                }
                let bytes = tx.content(&existing.project_id, &existing.resource_id)?.unwrap_or_default();
                let current = String::from_utf8_lossy(&bytes).into_owned();
                let updated = apply(&current, &change)?;
                if updated.len() > max_bytes {
                    return Err(ServiceError::new(
                        ErrorCode::ResourceTooLarge,
                        format!("the updated content would be {} bytes; the maximum is {max_bytes} bytes", updated.len()),
                    )
                    .with("size_bytes", updated.len())
                    .with("max_bytes", max_bytes));
                }
                check_json_text("content", &updated)?;
                let manifest = crate::storage::records::ManifestRecord {
                    updated_at_ms: now_ms(),
                    etag: new_etag(),
                    version: existing.version + 1,
                    ..existing
                };
                let manifest = save_document(tx, manifest, updated.as_bytes(), &member.agent_name, keep)?;
                Ok((manifest, updated))
            }
        })?;

        debug!(project_id = %manifest.project_id, resource_id = %manifest.resource_id, version = manifest.version, "resource updated");
        self.waiters.notify(&WaitKey::resource(
            &manifest.project_id,
            &manifest.resource_id,
        ));
        let mut result = json!({"manifest": views::manifest(&manifest), "etag": manifest.etag, "version": manifest.version});
        if request.return_content == Some(true) {
            result["content"] = json!(content);
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::requests::Operation;

    /// Reads the change from the request's arguments and applies it, as the service does.
    fn apply_to(content: &str, request: &UpdateResourceRequest) -> ServiceResult<String> {
        apply(content, &request.change()?)
    }

    fn request(
        operation: Operation,
        value: Option<Value>,
        path: Option<&str>,
        patch: Option<Value>,
    ) -> UpdateResourceRequest {
        UpdateResourceRequest {
            project_id: "p".into(),
            resource_id: "r".into(),
            agent_name: "a".into(),
            operation,
            value,
            path: path.map(str::to_owned),
            patch,
            etag: None,
            return_content: None,
        }
    }

    #[test]
    fn increment_adds_to_plain_and_nested_numbers() {
        assert_eq!(
            apply_to("41", &request(Operation::Increment, None, None, None)).unwrap(),
            "42"
        );
        assert_eq!(
            apply_to(
                "",
                &request(Operation::Increment, Some(json!(5)), None, None)
            )
            .unwrap(),
            "5"
        );
        let nested = apply_to(
            r#"{"n":{"count":2}}"#,
            &request(Operation::Increment, Some(json!(3)), Some("/n/count"), None),
        )
        .unwrap();
        assert_eq!(nested, r#"{"n":{"count":5}}"#);
        let err = apply_to("abc", &request(Operation::Increment, None, None, None)).unwrap_err();
        assert_eq!(err.code, ErrorCode::NotANumber);
    }

    #[test]
    fn failed_patch_test_is_reported() {
        let patch = json!([{"op": "test", "path": "/a", "value": 2}, {"op": "replace", "path": "/a", "value": 3}]);
        let err = apply_to(
            r#"{"a":1}"#,
            &request(Operation::JsonPatch, None, None, Some(patch)),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::PatchTestFailed);
    }

    #[test]
    fn merge_patch_and_append_apply() {
        let merged = apply_to(
            r#"{"a":1,"b":2}"#,
            &request(
                Operation::JsonMergePatch,
                None,
                None,
                Some(json!({"b": null, "c": 3})),
            ),
        )
        .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&merged).unwrap(),
            json!({"a": 1, "c": 3})
        );
        assert_eq!(
            apply_to(
                "[1]",
                &request(Operation::Append, Some(json!({"x": 2})), None, None)
            )
            .unwrap(),
            r#"[1,{"x":2}]"#
        );
        assert_eq!(
            apply_to(
                "ab",
                &request(Operation::Append, Some(json!("cd")), None, None)
            )
            .unwrap(),
            "abcd"
        );
    }
}
