//! Tool arguments as a client may send them: the first byte picks a tool's request type, the
//! rest is its JSON arguments. Parsing and the checks that need no storage must end in a value
//! or in an error that names what is wrong, never in a panic.
//!
//! NOTE: each tool's checks are private to its service module, so this target repeats them
//! with the public `validate` functions. A check added to a tool is fuzzed only once it is
//! added here too.

#![no_main]

use brainstorm::error::{ErrorCode, ServiceError, ServiceResult};
use brainstorm::mcp::args::{parse, take_string};
use brainstorm::service::Identity;
use brainstorm::service::requests::{
    AppendLogRequest, ArchiveProjectRequest, AuditLogRequest, CreateProjectRequest,
    DeleteResourceRequest, GetResourceRequest, HandoverRequest, HeartbeatRequest,
    JoinProjectRequest, ListProjectsRequest, ListResourcesRequest, NoArguments, Permissions,
    ProjectAgentRequest, ProjectInfoRequest, ReadLogRequest, ReceiveMessagesRequest,
    ResourceHistoryRequest, SendMessageRequest, StatusRequest, StoreResourceRequest,
    UpdateResourceRequest,
};
use brainstorm::service::validate::{
    MAX_NAME_LENGTH, MAX_TEXT_LENGTH, check_id, check_json_depth, check_json_text,
    check_optional_text, check_text, object_json,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// Checks each id argument present, as every operation does first.
fn ids<'a>(pairs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> ServiceResult<()> {
    for (argument, value) in pairs {
        if let Some(value) = value {
            check_id(argument, value)?;
        }
    }
    Ok(())
}

fn permissions(permissions: Option<&Permissions>) -> ServiceResult<()> {
    let Some(permissions) = permissions else {
        return Ok(());
    };
    let lists = [
        ("permissions.read", &permissions.read),
        ("permissions.write", &permissions.write),
    ];
    for (argument, list) in lists {
        for entry in list.iter().flatten().filter(|entry| *entry != "*") {
            check_id(argument, entry)?;
        }
    }
    Ok(())
}

fn create_project(request: CreateProjectRequest) -> ServiceResult<()> {
    ids([
        ("project_id", Some(request.project_id.as_str())),
        ("created_by", request.created_by.as_deref()),
    ])?;
    check_text("name", &request.name, MAX_NAME_LENGTH, true)?;
    check_optional_text(
        "description",
        request.description.as_deref(),
        MAX_TEXT_LENGTH,
    )?;
    if let Some(context) = &request.context {
        object_json("context", context)?;
    }
    Ok(())
}

fn send_message(request: SendMessageRequest) -> ServiceResult<()> {
    ids([
        ("project_id", Some(request.project_id.as_str())),
        ("from_agent", Some(request.from_agent.as_str())),
        ("to_agent", request.to_agent.as_deref()),
    ])?;
    let trace_id = request
        .metadata
        .as_ref()
        .and_then(|m| m.trace_id.as_deref());
    check_optional_text("metadata.trace_id", trace_id, MAX_NAME_LENGTH)?;
    check_json_depth("payload", &request.payload)?;
    Ok(())
}

fn store_resource(request: StoreResourceRequest) -> ServiceResult<()> {
    ids([
        ("project_id", Some(request.project_id.as_str())),
        ("resource_id", Some(request.resource_id.as_str())),
        ("agent_name", Some(request.agent_name.as_str())),
    ])?;
    permissions(request.permissions.as_ref())?;
    check_text("name", &request.name, MAX_NAME_LENGTH, true)?;
    check_optional_text(
        "description",
        request.description.as_deref(),
        MAX_TEXT_LENGTH,
    )?;
    check_optional_text("mime_type", request.mime_type.as_deref(), MAX_NAME_LENGTH)?;
    check_optional_text(
        "source_path",
        request.source_path.as_deref(),
        MAX_TEXT_LENGTH,
    )?;
    if let Some(metadata) = &request.metadata {
        object_json("metadata", metadata)?;
    }
    // Content as the service stores it: text as given, any other JSON value as its text.
    let text = match &request.content {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::String(text)) => text.clone(),
        Some(value) => {
            check_json_depth("content", value)?;
            value.to_string()
        }
    };
    check_json_text("content", &text)
}

fn append_log(request: AppendLogRequest) -> ServiceResult<()> {
    ids([
        ("project_id", Some(request.project_id.as_str())),
        ("log_id", Some(request.log_id.as_str())),
        ("agent_name", Some(request.agent_name.as_str())),
    ])?;
    check_optional_text("name", request.name.as_deref(), MAX_NAME_LENGTH)?;
    permissions(request.permissions.as_ref())?;
    check_json_depth("entry", &request.entry)
}

fn update_resource(request: UpdateResourceRequest) -> ServiceResult<()> {
    ids([
        ("project_id", Some(request.project_id.as_str())),
        ("resource_id", Some(request.resource_id.as_str())),
        ("agent_name", Some(request.agent_name.as_str())),
    ])?;
    for value in [&request.value, &request.patch].into_iter().flatten() {
        check_json_depth("patch", value)?;
    }
    Ok(())
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
    let pair = |project: &str, agent: &str| -> ServiceResult<()> {
        ids([("project_id", Some(project)), ("agent_name", Some(agent))])
    };
    match tool {
        0 => {
            let request: StatusRequest = parse(arguments)?;
            Identity::resolve(&request.working_directory, None).map(drop)
        }
        1 => parse::<NoArguments>(arguments).map(drop),
        2 => create_project(parse(arguments)?),
        3 => {
            let request: JoinProjectRequest = parse(arguments)?;
            pair(&request.project_id, &request.agent_name)
        }
        4 => check_id(
            "project_id",
            &parse::<ProjectInfoRequest>(arguments)?.project_id,
        ),
        5 => parse::<ListProjectsRequest>(arguments).map(drop),
        6 => send_message(parse(arguments)?),
        7 => {
            let request: ReceiveMessagesRequest = parse(arguments)?;
            pair(&request.project_id, &request.agent_name)
        }
        8 => store_resource(parse(arguments)?),
        9 => {
            let request: GetResourceRequest = parse(arguments)?;
            pair(&request.project_id, &request.agent_name)?;
            check_id("resource_id", &request.resource_id)
        }
        10 => {
            let request: ListResourcesRequest = parse(arguments)?;
            pair(&request.project_id, &request.agent_name)
        }
        11 => {
            let request: DeleteResourceRequest = parse(arguments)?;
            pair(&request.project_id, &request.agent_name)?;
            check_id("resource_id", &request.resource_id)
        }
        12 => {
            let request: HeartbeatRequest = parse(arguments)?;
            pair(&request.project_id, &request.agent_name)
        }
        13 => {
            let request: HandoverRequest = parse(arguments)?;
            ids([
                ("project_id", Some(request.project_id.as_str())),
                ("from_agent", Some(request.from_agent.as_str())),
                ("to_agent", Some(request.to_agent.as_str())),
            ])
        }
        14 => {
            let request: ProjectAgentRequest = parse(arguments)?;
            pair(&request.project_id, &request.agent_name)
        }
        15 => {
            let request: ArchiveProjectRequest = parse(arguments)?;
            pair(&request.project_id, &request.agent_name)?;
            check_optional_text("reason", request.reason.as_deref(), MAX_TEXT_LENGTH)
        }
        16 => {
            let request: ResourceHistoryRequest = parse(arguments)?;
            pair(&request.project_id, &request.agent_name)?;
            check_id("resource_id", &request.resource_id)
        }
        17 => update_resource(parse(arguments)?),
        18 => append_log(parse(arguments)?),
        19 => {
            let request: ReadLogRequest = parse(arguments)?;
            pair(&request.project_id, &request.agent_name)?;
            check_id("log_id", &request.log_id)
        }
        _ => {
            let request: AuditLogRequest = parse(arguments)?;
            ids([
                ("project_id", request.project_id.as_deref()),
                ("agent_name", request.agent_name.as_deref()),
                ("actor", request.actor.as_deref()),
            ])
        }
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
