//! Tool arguments as a client may send them: the first byte picks a tool's request type, the
//! rest is its JSON arguments. Parsing and the checks that need no storage must end in a value
//! or in an error that names what is wrong, never in a panic.
//!
//! The checks are the ones every operation runs first, through
//! [`CheckArguments::check_arguments`], so a rule added to a tool is fuzzed with it.

#![no_main]

use brainstorm::error::{ErrorCode, ServiceError, ServiceResult};
use brainstorm::mcp::args::{parse, take_string};
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

/// Parses the arguments of tool number `selector` and runs its storage-free checks.
fn run(selector: u8, mut arguments: Map<String, Value>) -> ServiceResult<()> {
    const TOOLS: u8 = 21;
    let tool = selector % TOOLS;
    // Every tool but status and version may name the client with a working directory.
    if tool > 1
        && let Some(path) = take_string(&mut arguments, "working_directory")?
    {
        Identity::resolve(&path, None)?;
    }
    match tool {
        0 => {
            let request: StatusRequest = parse(arguments)?;
            Identity::resolve(&request.working_directory, None).map(drop)
        }
        1 => parse::<NoArguments>(arguments).map(drop),
        2 => check::<CreateProjectRequest>(arguments),
        3 => check::<JoinProjectRequest>(arguments),
        4 => check::<ProjectInfoRequest>(arguments),
        5 => check::<ListProjectsRequest>(arguments),
        6 => check::<SendMessageRequest>(arguments),
        7 => check::<ReceiveMessagesRequest>(arguments),
        8 => check::<StoreResourceRequest>(arguments),
        9 => check::<GetResourceRequest>(arguments),
        10 => check::<ListResourcesRequest>(arguments),
        11 => check::<DeleteResourceRequest>(arguments),
        12 => check::<HeartbeatRequest>(arguments),
        13 => check::<HandoverRequest>(arguments),
        14 => check::<ProjectAgentRequest>(arguments),
        15 => check::<ArchiveProjectRequest>(arguments),
        16 => check::<ResourceHistoryRequest>(arguments),
        17 => check::<UpdateResourceRequest>(arguments),
        18 => check::<AppendLogRequest>(arguments),
        19 => check::<ReadLogRequest>(arguments),
        _ => check::<AuditLogRequest>(arguments),
    }
}

/// Checks that an error reports what failed: a message, and for a bad argument the
/// name of an argument the client sent or one it left out.
fn check_error(err: &ServiceError, sent: &Map<String, Value>) {
    assert!(!err.message.is_empty(), "{err:?} has no message");
    assert_ne!(err.code, ErrorCode::InternalError, "{err:?}");
    if err.code != ErrorCode::InvalidParameter {
        return;
    }
    let argument = err.details["argument"]
        .as_str()
        .unwrap_or_else(|| panic!("{err:?} does not name its argument"));
    if err.message.starts_with("unknown argument") {
        let named_a_sent_one = sent.keys().any(|key| {
            argument == key
                || argument
                    .strip_prefix(key.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        });
        assert!(
            named_a_sent_one,
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
