//! Atomic updates: operations applied to a document inside one write transaction, so that
//! concurrent callers never conflict and never need an etag loop.

use serde_json::{Number, Value, json};
use tracing::debug;

use super::etag::new_etag;
use super::requests::{Operation, UpdateResourceRequest};
use super::resources::{can_write, check_kind, denied, not_found, save_document};
use super::validate::{check_id, check_json_depth, check_json_text};
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
                format!("{a} + {b} overflows a 64-bit integer"),
            )
        });
    }
    let sum = current.as_f64().unwrap_or(0.0) + by.as_f64().unwrap_or(0.0);
    Number::from_f64(sum)
        .ok_or_else(|| ServiceError::new(ErrorCode::NotANumber, "the sum is not finite"))
}

fn increment(content: &str, request: &UpdateResourceRequest) -> ServiceResult<String> {
    let by = match &request.value {
        None => Number::from(1),
        Some(Value::Number(by)) => by.clone(),
        Some(other) => {
            return Err(invalid(format!(
                "increment needs a number in value, got {other}"
            )));
        }
    };
    let Some(path) = request.path.as_deref().filter(|path| !path.is_empty()) else {
        let text = content.trim();
        let current: Number = match text {
            "" => Number::from(0),
            _ => serde_json::from_str(text).map_err(|_| {
                ServiceError::new(
                    ErrorCode::NotANumber,
                    format!("the content {:?} is not a number; give path to a number inside a JSON document", shorten(text)),
                )
            })?,
        };
        return Ok(add(&current, &by)?.to_string());
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
            format!("the value at {path:?} is {target}, not a number"),
        )
        .with("path", path));
    };
    *target = Value::Number(add(current, &by)?);
    Ok(document.to_string())
}

fn apply_patch(content: &str, request: &UpdateResourceRequest) -> ServiceResult<String> {
    let Some(patch) = &request.patch else {
        return Err(invalid(
            "json_patch and json_merge_patch need the patch argument",
        ));
    };
    check_json_depth("patch", patch)?;
    if request.operation == Operation::JsonMergePatch {
        let mut document = parse_document(content, "json_merge_patch")?;
        json_patch::merge(&mut document, patch);
        return Ok(document.to_string());
    }
    let operations: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|err| invalid(format!("patch is not an RFC 6902 operation array: {err}")))?;
    let mut document = parse_document(content, "json_patch")?;
    json_patch::patch(&mut document, &operations).map_err(|err| {
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

fn append(content: &str, request: &UpdateResourceRequest) -> ServiceResult<String> {
    let Some(value) = &request.value else {
        return Err(invalid("append needs the value to append"));
    };
    if content.trim_start().starts_with('[') {
        let mut document = parse_document(content, "append")?;
        if let Value::Array(items) = &mut document {
            check_json_depth("value", value)?;
            items.push(value.clone());
            return Ok(document.to_string());
        }
    }
    match value {
        Value::String(text) => Ok(format!("{content}{text}")),
        other => Err(invalid(format!(
            "append to text content needs a string value, got {other}; JSON elements can be appended to array content"
        ))),
    }
}

fn shorten(text: &str) -> String {
    text.chars().take(40).collect()
}

fn apply(content: &str, request: &UpdateResourceRequest) -> ServiceResult<String> {
    match request.operation {
        Operation::Increment => increment(content, request),
        Operation::JsonMergePatch | Operation::JsonPatch => apply_patch(content, request),
        Operation::Append => append(content, request),
    }
}

impl Service {
    /// Applies an operation to a document's current content in one write transaction.
    /// Concurrent updates queue on the write lock, so none is lost and none conflicts; an
    /// optional etag makes the update conditional.
    pub fn update_resource(&self, request: &UpdateResourceRequest) -> ServiceResult<Value> {
        check_id("project_id", &request.project_id)?;
        check_id("resource_id", &request.resource_id)?;
        check_id("agent_name", &request.agent_name)?;
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
                if !can_write(&existing, &member.agent_name) {
                    let agent = &member.agent_name;
                    return Err(denied(ErrorCode::WritePermissionDenied, "write", agent, &existing));
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
                let updated = apply(&current, &request)?;
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
            apply("41", &request(Operation::Increment, None, None, None)).unwrap(),
            "42"
        );
        assert_eq!(
            apply(
                "",
                &request(Operation::Increment, Some(json!(5)), None, None)
            )
            .unwrap(),
            "5"
        );
        let nested = apply(
            r#"{"n":{"count":2}}"#,
            &request(Operation::Increment, Some(json!(3)), Some("/n/count"), None),
        )
        .unwrap();
        assert_eq!(nested, r#"{"n":{"count":5}}"#);
        let err = apply("abc", &request(Operation::Increment, None, None, None)).unwrap_err();
        assert_eq!(err.code, ErrorCode::NotANumber);
    }

    #[test]
    fn failed_patch_test_is_reported() {
        let patch = json!([{"op": "test", "path": "/a", "value": 2}, {"op": "replace", "path": "/a", "value": 3}]);
        let err = apply(
            r#"{"a":1}"#,
            &request(Operation::JsonPatch, None, None, Some(patch)),
        )
        .unwrap_err();
        assert_eq!(err.code, ErrorCode::PatchTestFailed);
    }

    #[test]
    fn merge_patch_and_append_apply() {
        let merged = apply(
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
            apply(
                "[1]",
                &request(Operation::Append, Some(json!({"x": 2})), None, None)
            )
            .unwrap(),
            r#"[1,{"x":2}]"#
        );
        assert_eq!(
            apply(
                "ab",
                &request(Operation::Append, Some(json!("cd")), None, None)
            )
            .unwrap(),
            "abcd"
        );
    }
}
