//! The argument rules of each request that need neither storage nor settings.
//!
//! Every operation runs its request's [`CheckArguments::check_arguments`] before it opens a
//! transaction, and the argument fuzz target runs the same function, so a rule added here is
//! both enforced and fuzzed. Rules that depend on settings (payload sizes) or on stored state
//! stay in the operations.

use serde_json::{Number, Value};

use super::requests::*;
use super::validate::{
    MAX_NAME_LENGTH, MAX_TEXT_LENGTH, check_id, check_json_depth, check_optional_text, check_text,
    object_json,
};
use crate::error::{ErrorCode, ServiceError, ServiceResult};

/// The wildcard that grants access to every member, and the etag that matches any state.
pub(super) const ANY: &str = "*";

/// Maximum number of entries in one permission list.
const MAX_ACCESS_ENTRIES: usize = 256;

/// Checks a request's arguments on their own, before any storage access.
pub trait CheckArguments {
    /// Fails with the first argument that breaks a rule, naming it in the error.
    fn check_arguments(&self) -> ServiceResult<()>;
}

/// Checks each id that is present, in order.
fn check_ids<'a>(ids: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> ServiceResult<()> {
    for (argument, value) in ids {
        if let Some(value) = value {
            check_id(argument, value)?;
        }
    }
    Ok(())
}

/// Checks the two ids that most requests carry.
fn check_project_and_agent(project_id: &str, agent_name: &str) -> ServiceResult<()> {
    check_id("project_id", project_id)?;
    check_id("agent_name", agent_name)
}

/// Checks the three ids of a request about one resource.
fn check_resource_ids(project_id: &str, resource_id: &str, agent_name: &str) -> ServiceResult<()> {
    check_id("project_id", project_id)?;
    check_id("resource_id", resource_id)?;
    check_id("agent_name", agent_name)
}

/// Checks a permission list: each entry is "*" or an agent name.
fn check_access_list(argument: &str, list: &[String]) -> ServiceResult<()> {
    if list.len() > MAX_ACCESS_ENTRIES {
        return Err(ServiceError::invalid_parameter(
            argument,
            format!(
                "{argument} lists {} agents; the maximum is {MAX_ACCESS_ENTRIES}",
                list.len()
            ),
        )
        .with("max_entries", MAX_ACCESS_ENTRIES));
    }
    for entry in list.iter().filter(|entry| entry.as_str() != ANY) {
        check_id(argument, entry)?;
    }
    Ok(())
}

/// Checks both access lists of a `permissions` argument.
fn check_permissions(permissions: Option<&Permissions>) -> ServiceResult<()> {
    let Some(permissions) = permissions else {
        return Ok(());
    };
    check_access_list(
        "permissions.read",
        permissions.read.as_deref().unwrap_or_default(),
    )?;
    check_access_list(
        "permissions.write",
        permissions.write.as_deref().unwrap_or_default(),
    )
}

impl CheckArguments for CreateProjectRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_ids([
            ("project_id", Some(self.project_id.as_str())),
            ("created_by", self.created_by.as_deref()),
        ])?;
        check_text("name", &self.name, MAX_NAME_LENGTH, true)?;
        check_optional_text("description", self.description.as_deref(), MAX_TEXT_LENGTH)?;
        if let Some(context) = &self.context {
            object_json("context", context)?;
        }
        Ok(())
    }
}

impl CheckArguments for JoinProjectRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_project_and_agent(&self.project_id, &self.agent_name)?;
        super::check_tags(
            self.capabilities.as_deref().unwrap_or_default(),
            self.labels.as_ref(),
        )
    }
}

impl CheckArguments for ProjectInfoRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_id("project_id", &self.project_id)
    }
}

impl CheckArguments for ListProjectsRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        Ok(())
    }
}

/// The recipients a message goes to.
pub(super) enum Target<'a> {
    Direct(&'a str),
    Broadcast,
}

impl SendMessageRequest {
    /// Returns `reply_expected` as a boolean, or fails with `REPLY_EXPECTED_REQUIRED`.
    pub(super) fn reply_flag(&self) -> ServiceResult<bool> {
        match &self.reply_expected {
            Some(Value::Bool(flag)) => Ok(*flag),
            other => Err(ServiceError::new(
                ErrorCode::ReplyExpectedRequired,
                format!(
                    "reply_expected must be true or false, got {}; say whether the recipient \
                     should answer",
                    other
                        .as_ref()
                        .map_or("nothing".to_owned(), Value::to_string)
                ),
            )
            .with("argument", "reply_expected")),
        }
    }

    /// Returns where the message goes: exactly one of `to_agent` and `broadcast: true`.
    pub(super) fn target(&self) -> ServiceResult<Target<'_>> {
        match (self.to_agent.as_deref(), self.broadcast.unwrap_or(false)) {
            (Some(to), false) => Ok(Target::Direct(to)),
            (None, true) => Ok(Target::Broadcast),
            (to, broadcast) => Err(ServiceError::new(
                ErrorCode::InvalidMessageTarget,
                "give exactly one of to_agent (a direct message) and broadcast: true (to every \
                 other member)",
            )
            .with("to_agent", to)
            .with("broadcast", broadcast)),
        }
    }
}

impl CheckArguments for SendMessageRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_id("project_id", &self.project_id)?;
        check_id("from_agent", &self.from_agent)?;
        self.reply_flag()?;
        if let Target::Direct(to) = self.target()? {
            check_id("to_agent", to)?;
        }
        let trace_id = self.metadata.as_ref().and_then(|m| m.trace_id.as_deref());
        check_optional_text("metadata.trace_id", trace_id, MAX_NAME_LENGTH)?;
        check_json_depth("payload", &self.payload)
    }
}

impl CheckArguments for ReceiveMessagesRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_project_and_agent(&self.project_id, &self.agent_name)?;
        if self.limit == Some(0) {
            return Err(ServiceError::invalid_parameter(
                "limit",
                "limit must be at least 1, because receive_messages marks what it returns as \
                 read; to look at messages already read, pass include_read: true",
            ));
        }
        Ok(())
    }
}

impl StoreResourceRequest {
    /// Returns inline content as the text to store: text as given, any other JSON value as
    /// its JSON text. `None` when the content comes from `source_path` or there is none.
    pub(super) fn inline_content(&self) -> Option<String> {
        match self.content.as_ref()? {
            Value::Null => None,
            Value::String(text) => Some(text.clone()),
            value => Some(value.to_string()),
        }
    }
}

impl CheckArguments for StoreResourceRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_resource_ids(&self.project_id, &self.resource_id, &self.agent_name)?;
        check_permissions(self.permissions.as_ref())?;
        if let Some(condition) = self.if_none_match.as_deref().filter(|c| *c != ANY) {
            return Err(ServiceError::invalid_parameter(
                "if_none_match",
                format!("if_none_match must be \"*\" (create only), got {condition:?}"),
            ));
        }
        check_text("name", &self.name, MAX_NAME_LENGTH, true)?;
        check_optional_text("description", self.description.as_deref(), MAX_TEXT_LENGTH)?;
        check_optional_text("mime_type", self.mime_type.as_deref(), MAX_NAME_LENGTH)?;
        check_optional_text("source_path", self.source_path.as_deref(), MAX_TEXT_LENGTH)?;
        if let Some(metadata) = &self.metadata {
            object_json("metadata", metadata)?;
        }

        if self.content.is_some() && self.source_path.is_some() {
            return Err(ServiceError::new(
                ErrorCode::ConflictingParameters,
                "give either content or source_path, not both",
            )
            .with("arguments", ["content", "source_path"]));
        }
        // Content that looks like JSON is parsed by the operation, after its size check, so
        // that oversized text is rejected without being parsed.
        match &self.content {
            Some(value) => check_json_depth("content", value),
            None => Ok(()),
        }
    }
}

impl CheckArguments for GetResourceRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_resource_ids(&self.project_id, &self.resource_id, &self.agent_name)?;
        if self.version.is_some() && self.wait == Some(true) {
            return Err(ServiceError::new(
                ErrorCode::ConflictingParameters,
                "give either version (read an older version) or wait, not both",
            )
            .with("arguments", ["version", "wait"]));
        }
        Ok(())
    }
}

impl CheckArguments for ListResourcesRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_project_and_agent(&self.project_id, &self.agent_name)
    }
}

impl CheckArguments for DeleteResourceRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_resource_ids(&self.project_id, &self.resource_id, &self.agent_name)
    }
}

impl CheckArguments for HeartbeatRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_project_and_agent(&self.project_id, &self.agent_name)
    }
}

impl CheckArguments for HandoverRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_id("project_id", &self.project_id)?;
        check_id("from_agent", &self.from_agent)?;
        check_id("to_agent", &self.to_agent)
    }
}

impl CheckArguments for ProjectAgentRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_project_and_agent(&self.project_id, &self.agent_name)
    }
}

impl CheckArguments for ArchiveProjectRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_project_and_agent(&self.project_id, &self.agent_name)?;
        check_optional_text("reason", self.reason.as_deref(), MAX_TEXT_LENGTH)
    }
}

impl CheckArguments for ResourceHistoryRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_resource_ids(&self.project_id, &self.resource_id, &self.agent_name)
    }
}

/// The change an `update_resource` call requests, read from its arguments.
pub(super) enum Change {
    /// Add `by` to the content, or to the number at the JSON pointer `path`.
    Increment {
        by: Number,
        path: Option<String>,
    },
    MergePatch(Value),
    Patch(json_patch::Patch),
    Append(Value),
}

impl Change {
    /// Returns whether the result depends on the current content in a way the caller can read:
    /// a JSON patch `test` operation fails unless the content matches.
    pub(super) fn tests_content(&self) -> bool {
        match self {
            Change::Patch(operations) => operations
                .iter()
                .any(|operation| matches!(operation, json_patch::PatchOperation::Test(_))),
            _ => false,
        }
    }
}

/// Builds an `INVALID_OPERATION` error about one argument of an operation.
fn invalid_operation(operation: &str, argument: &str, message: impl Into<String>) -> ServiceError {
    ServiceError::new(ErrorCode::InvalidOperation, message)
        .with("operation", operation)
        .with("argument", argument)
}

impl UpdateResourceRequest {
    /// Reads the operation and the arguments it needs.
    pub(super) fn change(&self) -> ServiceResult<Change> {
        match self.operation {
            Operation::Increment => {
                let by = match &self.value {
                    None => Number::from(1),
                    Some(Value::Number(by)) => by.clone(),
                    Some(other) => {
                        return Err(invalid_operation(
                            "increment",
                            "value",
                            format!("increment needs a number in value, got {other}"),
                        ));
                    }
                };
                let path = self.path.clone().filter(|path| !path.is_empty());
                Ok(Change::Increment { by, path })
            }
            Operation::JsonMergePatch | Operation::JsonPatch => {
                let merge = self.operation == Operation::JsonMergePatch;
                let name = if merge {
                    "json_merge_patch"
                } else {
                    "json_patch"
                };
                let Some(patch) = &self.patch else {
                    return Err(invalid_operation(
                        name,
                        "patch",
                        format!("{name} needs the patch argument"),
                    ));
                };
                check_json_depth("patch", patch)?;
                if merge {
                    return Ok(Change::MergePatch(patch.clone()));
                }
                let operations = serde_json::from_value(patch.clone()).map_err(|err| {
                    invalid_operation(
                        name,
                        "patch",
                        format!("patch is not an RFC 6902 operation array: {err}"),
                    )
                })?;
                Ok(Change::Patch(operations))
            }
            Operation::Append => {
                let Some(value) = &self.value else {
                    return Err(invalid_operation(
                        "append",
                        "value",
                        "append needs the value to append",
                    ));
                };
                check_json_depth("value", value)?;
                Ok(Change::Append(value.clone()))
            }
        }
    }
}

impl CheckArguments for UpdateResourceRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_resource_ids(&self.project_id, &self.resource_id, &self.agent_name)?;
        self.change().map(drop)
    }
}

impl CheckArguments for AppendLogRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_id("project_id", &self.project_id)?;
        check_id("log_id", &self.log_id)?;
        check_id("agent_name", &self.agent_name)?;
        check_optional_text("name", self.name.as_deref(), MAX_NAME_LENGTH)?;
        check_permissions(self.permissions.as_ref())?;
        check_json_depth("entry", &self.entry)
    }
}

impl CheckArguments for ReadLogRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_id("project_id", &self.project_id)?;
        check_id("log_id", &self.log_id)?;
        check_id("agent_name", &self.agent_name)
    }
}

impl CheckArguments for AuditLogRequest {
    fn check_arguments(&self) -> ServiceResult<()> {
        check_ids([
            ("project_id", self.project_id.as_deref()),
            ("agent_name", self.agent_name.as_deref()),
            ("actor", self.actor.as_deref()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(arguments: Value) -> T {
        serde_json::from_value(arguments).expect("the test arguments match the request type")
    }

    fn failure<T: CheckArguments + serde::de::DeserializeOwned>(arguments: Value) -> ServiceError {
        parse::<T>(arguments)
            .check_arguments()
            .expect_err("the arguments break a rule")
    }

    #[test]
    fn update_names_missing_argument() {
        let cases = [
            ("json_patch", "patch"),
            ("json_merge_patch", "patch"),
            ("append", "value"),
        ];
        for (operation, argument) in cases {
            let err = failure::<UpdateResourceRequest>(json!({
                "project_id": "p", "resource_id": "r", "agent_name": "a", "operation": operation,
            }));
            assert_eq!(err.code, ErrorCode::InvalidOperation, "{operation}");
            assert_eq!(err.details["argument"], argument, "{operation}");
            assert_eq!(err.details["operation"], operation, "{operation}");
        }
    }

    #[test]
    fn update_rejects_non_rfc_6902_patch() {
        let err = failure::<UpdateResourceRequest>(json!({
            "project_id": "p", "resource_id": "r", "agent_name": "a",
            "operation": "json_patch", "patch": {"op": "add"},
        }));
        assert_eq!(err.code, ErrorCode::InvalidOperation);
        assert_eq!(err.details["argument"], "patch");
    }

    #[test]
    fn increment_needs_a_number() {
        let err = failure::<UpdateResourceRequest>(json!({
            "project_id": "p", "resource_id": "r", "agent_name": "a",
            "operation": "increment", "value": "1",
        }));
        assert_eq!(err.code, ErrorCode::InvalidOperation);
        assert_eq!(err.details["argument"], "value");
    }

    #[test]
    fn conflicting_arguments_are_named() {
        let store = failure::<StoreResourceRequest>(json!({
            "project_id": "p", "resource_id": "r", "agent_name": "a", "name": "n",
            "content": "text", "source_path": "/tmp/file",
        }));
        assert_eq!(store.code, ErrorCode::ConflictingParameters);
        assert_eq!(
            store.details["arguments"],
            json!(["content", "source_path"])
        );
        let get = failure::<GetResourceRequest>(json!({
            "project_id": "p", "resource_id": "r", "agent_name": "a", "version": 1, "wait": true,
        }));
        assert_eq!(get.code, ErrorCode::ConflictingParameters);
        assert_eq!(get.details["arguments"], json!(["version", "wait"]));
    }

    #[test]
    fn message_target_is_one_or_all() {
        let base =
            json!({"project_id": "p", "from_agent": "a", "reply_expected": false, "payload": 1});
        let with = |extra: Value| {
            let mut arguments = base.clone();
            arguments
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            arguments
        };
        let neither = failure::<SendMessageRequest>(base.clone());
        assert_eq!(neither.code, ErrorCode::InvalidMessageTarget);
        let both = failure::<SendMessageRequest>(with(json!({"to_agent": "b", "broadcast": true})));
        assert_eq!(both.code, ErrorCode::InvalidMessageTarget);
        let direct: SendMessageRequest = parse(with(json!({"to_agent": "b"})));
        assert!(direct.check_arguments().is_ok());
        let broadcast: SendMessageRequest = parse(with(json!({"broadcast": true})));
        assert!(broadcast.check_arguments().is_ok());
    }

    #[test]
    fn reply_expected_must_be_a_boolean() {
        let err = failure::<SendMessageRequest>(json!({
            "project_id": "p", "from_agent": "a", "to_agent": "b", "payload": 1,
            "reply_expected": "yes",
        }));
        assert_eq!(err.code, ErrorCode::ReplyExpectedRequired);
        assert_eq!(err.details["argument"], "reply_expected");
    }

    #[test]
    fn store_leaves_file_content_to_operation() {
        let from_file: StoreResourceRequest = parse(json!({
            "project_id": "p", "resource_id": "r", "agent_name": "a", "name": "n",
            "source_path": "/does/not/exist",
        }));
        assert!(from_file.check_arguments().is_ok());
        assert_eq!(from_file.inline_content(), None);
    }

    #[test]
    fn audit_query_checks_every_id() {
        let err = failure::<AuditLogRequest>(json!({"agent_name": "bad name"}));
        assert_eq!(err.code, ErrorCode::InvalidIdFormat);
        assert_eq!(err.details["argument"], "agent_name");
    }
}
