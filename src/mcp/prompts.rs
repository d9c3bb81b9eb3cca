//! The ten workflow prompts, each filled with the live state of the database.

use rmcp::model::{GetPromptResult, Prompt, PromptArgument, PromptMessage, Role};
use serde_json::{Map, Value};

use crate::error::{ServiceError, ServiceResult};
use crate::service::requests::{ListProjectsRequest, ListResourcesRequest};
use crate::service::{Identity, Service};

struct Spec {
    name: &'static str,
    description: &'static str,
    arguments: &'static [(&'static str, &'static str, bool)],
}

const PROMPTS: &[Spec] = &[
    Spec {
        name: "create",
        description: "Create a project and become its coordinator",
        arguments: &[
            ("project_id", "Id of the new project", false),
            ("agent_name", "Your agent name", false),
        ],
    },
    Spec {
        name: "join",
        description: "Join an existing project",
        arguments: &[
            ("project_id", "Project to join", false),
            ("agent_name", "Name to join under", false),
        ],
    },
    Spec {
        name: "broadcast",
        description: "Send a message to every other member of a project",
        arguments: &[
            ("project_id", "Project to broadcast in", true),
            ("agent_name", "Your agent name", true),
        ],
    },
    Spec {
        name: "review",
        description: "Review your unread messages and reply to them",
        arguments: &[
            ("project_id", "Project of your inbox", true),
            ("agent_name", "Your agent name", true),
        ],
    },
    Spec {
        name: "share",
        description: "Share a resource with the project, using etags for updates",
        arguments: &[
            ("project_id", "Project to share in", true),
            ("agent_name", "Your agent name", true),
        ],
    },
    Spec {
        name: "discuss",
        description: "Discuss a topic with the other members",
        arguments: &[
            ("project_id", "Project of the discussion", true),
            ("agent_name", "Your agent name", true),
            ("topic", "What to discuss", false),
        ],
    },
    Spec {
        name: "list",
        description: "List the projects on this server",
        arguments: &[],
    },
    Spec {
        name: "status",
        description: "Show your projects, roles and unread messages",
        arguments: &[(
            "working_directory",
            "Your working folder; needed where the transport keeps no session",
            false,
        )],
    },
    Spec {
        name: "leave",
        description: "Leave a project",
        arguments: &[
            ("project_id", "Project to leave", true),
            ("agent_name", "Your agent name", true),
        ],
    },
    Spec {
        name: "archive",
        description: "Archive a project you created",
        arguments: &[
            ("project_id", "Project to archive", true),
            ("agent_name", "Your agent name (the creator)", true),
        ],
    },
];

/// Returns every prompt with its arguments.
pub fn list() -> Vec<Prompt> {
    PROMPTS
        .iter()
        .map(|spec| {
            let arguments = spec
                .arguments
                .iter()
                .map(|(name, description, required)| {
                    PromptArgument::new(*name)
                        .with_description(*description)
                        .with_required(*required)
                })
                .collect();
            Prompt::new(spec.name, Some(spec.description), Some(arguments))
        })
        .collect()
}

fn argument<'a>(
    arguments: &'a Map<String, Value>,
    spec: &Spec,
    name: &str,
) -> ServiceResult<Option<&'a str>> {
    let value = arguments
        .get(name)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty());
    let required = spec
        .arguments
        .iter()
        .any(|(arg, _, required)| *arg == name && *required);
    if value.is_none() && required {
        return Err(ServiceError::invalid_parameter(
            name,
            format!("prompt {:?} needs the argument {name:?}", spec.name),
        ));
    }
    Ok(value)
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Renders a prompt for the current session (if any) from the live database.
pub fn render(
    service: &Service,
    session: Option<&Identity>,
    name: &str,
    arguments: &Map<String, Value>,
) -> ServiceResult<GetPromptResult> {
    let spec = PROMPTS
        .iter()
        .find(|spec| spec.name == name)
        .ok_or_else(|| {
            ServiceError::invalid_parameter(
                "name",
                format!("prompt {name:?} not found; prompts/list shows the prompts"),
            )
        })?;
    let project = argument(arguments, spec, "project_id")?;
    let agent = argument(arguments, spec, "agent_name")?.unwrap_or("<your-agent-name>");
    let projects = || {
        service.list_projects(&ListProjectsRequest {
            offset: None,
            limit: Some(50),
        })
    };
    let text = match name {
        "create" => format!(
            "Create a brainstorm project.\n1. status {{working_directory}} to start your session.\n\
             2. create_project {{project_id: \"{}\", name, description, created_by: \"{agent}\"}}: you join as coordinator.\n\
             3. Tell other agents the project id so they can join_project.\n\nExisting projects (ids must be new):\n{}",
            project.unwrap_or("<new-project-id>"),
            pretty(&projects()?)
        ),
        "join" => {
            let state = match project {
                Some(project) => service.project_info(project)?,
                None => projects()?,
            };
            format!(
                "Join a brainstorm project.\n1. status {{working_directory}}.\n\
                 2. join_project {{project_id, agent_name: \"{agent}\", capabilities}}.\n\
                 3. receive_messages {{wait: true}} to hear from the others.\n\nCurrent state:\n{}",
                pretty(&state)
            )
        }
        "broadcast" => format!(
            "Broadcast to every other member of {p}.\nsend_message {{project_id: \"{p}\", from_agent: \"{agent}\", broadcast: true, reply_expected, payload}}.\nSet reply_expected: true only if you need answers, then receive_messages {{wait: true}}.\n\nMembers:\n{}",
            pretty(&service.project_info(project.unwrap_or_default())?["members"]),
            p = project.unwrap_or_default()
        ),
        "review" => format!(
            "Review your inbox in {p}.\n1. receive_messages {{project_id: \"{p}\", agent_name: \"{agent}\"}} marks them read.\n\
             2. Answer each message whose reply_expected is true with send_message to its from_agent.\n\
             3. Follow handoff_alerts when present.\n\nUnread now (not yet marked read):\n{}",
            pretty(&service.peek_messages(project.unwrap_or_default(), agent, 20)?),
            p = project.unwrap_or_default()
        ),
        "share" => format!(
            "Share a resource in {p}.\n1. store_resource {{project_id: \"{p}\", resource_id, name, agent_name: \"{agent}\", content}} creates it.\n\
             2. To update: get_resource, change the content, store_resource with the etag you read.\n\
             3. On ETAG_MISMATCH: get_resource again, reapply your change, retry with the new etag.\n\nResources you can read:\n{}",
            pretty(&service.list_resources(&ListResourcesRequest {
                project_id: project.unwrap_or_default().to_owned(),
                agent_name: agent.to_owned(),
                offset: None,
                limit: Some(50),
            })?),
            p = project.unwrap_or_default()
        ),
        "discuss" => format!(
            "Discuss {topic} in {p}.\n1. send_message {{broadcast: true, reply_expected: true, payload: {{type: \"discussion\", topic, text}}}} from \"{agent}\".\n\
             2. receive_messages {{wait: true}} and answer each point.\n3. Store conclusions with store_resource so they outlive the messages.\n\nMembers:\n{}",
            pretty(&service.project_info(project.unwrap_or_default())?["members"]),
            topic = argument(arguments, spec, "topic")?.map_or("the topic".to_owned(), |t| format!("{t:?}")),
            p = project.unwrap_or_default()
        ),
        "list" => format!(
            "Projects on this server. get_project_info {{project_id}} shows one in detail; join_project joins it.\n\n{}",
            pretty(&projects()?)
        ),
        "status" => match session {
            Some(identity) => format!(
                "Your projects, roles and unread counts. Call receive_messages in each project with unread messages.\n\n{}",
                pretty(&service.client_projects(identity)?)
            ),
            None => "No session yet: call status {working_directory} with the absolute path of your working folder and ask for this prompt again, or pass working_directory to this prompt.".to_owned(),
        },
        "leave" => format!(
            "Leave {p}.\n1. receive_messages first if you want to read what is waiting: leaving archives unread messages.\n\
             2. leave_project {{project_id: \"{p}\", agent_name: \"{agent}\"}}.\n\nYour inbox now:\n{}",
            pretty(&service.peek_messages(project.unwrap_or_default(), agent, 5)?),
            p = project.unwrap_or_default()
        ),
        "archive" => format!(
            "Archive {p} (creator only; it stays readable).\narchive_project {{project_id: \"{p}\", agent_name: \"{agent}\", reason}}.\n\nProject now:\n{}",
            pretty(&service.project_info(project.unwrap_or_default())?["project"]),
            p = project.unwrap_or_default()
        ),
        _ => unreachable!("every listed prompt is rendered"),
    };
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(spec.description),
    )
}
