//! Tool arguments as a client may send them: the first byte picks a tool's request type, the
//! rest is its JSON arguments. Parsing and the checks that need no storage must end in a value
//! or in an error that names what is wrong, never in a panic.
//!
//! The checks are the ones every operation runs first, through
//! [`CheckArguments::check_arguments`], so a rule added to a tool is fuzzed with it.

#![no_main]

use brainstorm::error::{ErrorCode, ServiceError, ServiceResult};
use brainstorm::mcp::args::{parse, take_string};
use brainstorm::mcp::{Acts, acts};
use brainstorm::service::Identity;
use brainstorm::service::arguments::CheckArguments;
use brainstorm::service::requests::{
    AppendLogRequest, ArchiveProjectRequest, AuditLogRequest, CreateProjectRequest,
    DeleteResourceRequest, GetResourceRequest, HandoverRequest, HeartbeatRequest,
    JoinProjectRequest, ListProjectsRequest, ListResourcesRequest, NoArguments,
    ProjectAgentRequest, ProjectInfoRequest, ReadLogRequest, ReceiveMessagesRequest,
    ResourceHistoryRequest, SendMessageRequest, StatusRequest, StoreResourceRequest,
    UpdateResourceRequest,
};
use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Parses JSON arguments as the server does, then runs the request's own checks.
fn check<R: CheckArguments + DeserializeOwned>(arguments: Map<String, Value>) -> ServiceResult<()> {
    parse::<R>(arguments)?.check_arguments()
}

/// The tools in the order of the selector byte.
const TOOLS: [&str; 21] = [
    "status",
    "version",
    "create_project",
    "join_project",
    "get_project_info",
    "list_projects",
    "send_message",
    "receive_messages",
    "store_resource",
    "get_resource",
    "list_resources",
    "delete_resource",
    "heartbeat",
    "handover_coordinator",
    "leave_project",
    "archive_project",
    "resource_history",
    "update_resource",
    "append_log",
    "read_log",
    "audit_log",
];

/// Parses the arguments of tool number `selector` and runs its storage-free checks.
fn run(selector: u8, mut arguments: Map<String, Value>) -> ServiceResult<()> {
    let tool = usize::from(selector) % TOOLS.len();
    // As in the server, only a tool that acts as an agent takes a working directory.
    if acts(TOOLS[tool]) == Some(Acts::AsAgent)
        && let Some(path) = take_string(&mut arguments, "working_directory")?
    {
        Identity::resolve(&path, None)?;
    }
    match TOOLS[tool] {
        "status" => {
            let request: StatusRequest = parse(arguments)?;
            Identity::resolve(&request.working_directory, None).map(drop)
        }
        "version" => parse::<NoArguments>(arguments).map(drop),
        "create_project" => check::<CreateProjectRequest>(arguments),
        "join_project" => check::<JoinProjectRequest>(arguments),
        "get_project_info" => check::<ProjectInfoRequest>(arguments),
        "list_projects" => check::<ListProjectsRequest>(arguments),
        "send_message" => check::<SendMessageRequest>(arguments),
        "receive_messages" => check::<ReceiveMessagesRequest>(arguments),
        "store_resource" => check::<StoreResourceRequest>(arguments),
        "get_resource" => check::<GetResourceRequest>(arguments),
        "list_resources" => check::<ListResourcesRequest>(arguments),
        "delete_resource" => check::<DeleteResourceRequest>(arguments),
        "heartbeat" => check::<HeartbeatRequest>(arguments),
        "handover_coordinator" => check::<HandoverRequest>(arguments),
        // leave_project and delete_project take the same arguments.
        "leave_project" => check::<ProjectAgentRequest>(arguments),
        "archive_project" => check::<ArchiveProjectRequest>(arguments),
        "resource_history" => check::<ResourceHistoryRequest>(arguments),
        "update_resource" => check::<UpdateResourceRequest>(arguments),
        "append_log" => check::<AppendLogRequest>(arguments),
        "read_log" => check::<ReadLogRequest>(arguments),
        _ => check::<AuditLogRequest>(arguments),
    }
}

/// Returns whether `argument` is `key` or a part of it, such as `permissions.read`.
fn is_within(argument: &str, key: &str) -> bool {
    argument == key
        || argument
            .strip_prefix(key)
            .is_some_and(|rest| rest.starts_with(['.', '[']))
}

/// Checks that an error reports what failed: a message, and for a bad argument the name of
/// an argument the client sent, or of the required one it left out.
fn check_error(err: &ServiceError, sent: &Map<String, Value>) {
    assert!(!err.message.is_empty(), "{err:?} has no message");
    assert_ne!(err.code, ErrorCode::InternalError, "{err:?}");
    let about_a_value = matches!(
        err.code,
        ErrorCode::InvalidParameter
            | ErrorCode::InvalidIdFormat
            | ErrorCode::InvalidIdLength
            | ErrorCode::JsonTooDeep
    );
    if !about_a_value {
        return;
    }
    let argument = err.details["argument"]
        .as_str()
        .unwrap_or_else(|| panic!("{err:?} does not name its argument"));
    let was_sent = sent.keys().any(|key| is_within(argument, key));
    if err.message.starts_with("missing required argument") {
        assert!(!was_sent, "{err:?} calls {argument:?} missing: {sent:?}");
    } else {
        assert!(
            was_sent,
            "{err:?} names {argument:?}, which was not sent: {sent:?}"
        );
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Some((&selector, json)) = bytes.split_first() else {
        return;
    };
    let Ok(arguments) = serde_json::from_slice::<Map<String, Value>>(json) else {
        return;
    };
    let sent = arguments.clone();
    if let Err(err) = run(selector, arguments) {
        check_error(&err, &sent);
    }
});
