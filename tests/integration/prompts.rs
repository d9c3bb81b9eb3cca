//! MCP prompts: the ten workflow prompts, filled with the live state of the database.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use rmcp::model::GetPromptRequestParams;
use serde_json::{Map, json};
use tokio::time::timeout;

use crate::common::{CALL_LIMIT, Sandbox, ServerOptions, StdioServer, directory_of};

const WORKFLOW_PROMPTS: [&str; 10] = [
    "archive",
    "broadcast",
    "create",
    "discuss",
    "join",
    "leave",
    "list",
    "review",
    "share",
    "status",
];

#[tokio::test]
async fn prompt_list_has_ten_workflows() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let server = StdioServer::start(&sandbox, &ServerOptions::default()).await?;
    let prompts = timeout(CALL_LIMIT, server.session().client().list_all_prompts())
        .await
        .context("prompts/list timed out")?
        .context("prompts/list failed")?;

    let names: BTreeSet<&str> = prompts.iter().map(|prompt| prompt.name.as_str()).collect();
    let expected: BTreeSet<&str> = WORKFLOW_PROMPTS.into_iter().collect();
    assert_eq!(names, expected);
    assert_eq!(
        prompts.len(),
        WORKFLOW_PROMPTS.len(),
        "a prompt name is listed twice"
    );
    for prompt in &prompts {
        let description = prompt.description.as_deref().unwrap_or_default();
        assert!(
            !description.is_empty(),
            "prompt {} has no description",
            prompt.name
        );
    }
    Ok(())
}

#[tokio::test]
async fn status_prompt_shows_existing_project() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let directory = directory_of("alice");
    let server = StdioServer::start_as(&sandbox, &ServerOptions::default(), &directory).await?;
    let session = server.session();
    session
        .ok(
            "create_project",
            json!({ "project_id": "prompt-demo", "name": "Prompt Demo", "created_by": "alice" }),
        )
        .await?;

    // Fill whatever arguments the server declares as required for this prompt.
    let prompts = timeout(CALL_LIMIT, session.client().list_all_prompts())
        .await
        .context("prompts/list timed out")?
        .context("prompts/list failed")?;
    let status_prompt = prompts
        .iter()
        .find(|prompt| prompt.name == "status")
        .context("no status prompt")?;
    let mut arguments = Map::new();
    for argument in status_prompt.arguments.iter().flatten() {
        if argument.required != Some(true) {
            continue;
        }
        let value = match argument.name.as_str() {
            "working_directory" => directory.clone(),
            "project_id" => "prompt-demo".to_owned(),
            "agent_name" => "alice".to_owned(),
            other => panic!("status prompt requires an unexpected argument {other:?}"),
        };
        arguments.insert(argument.name.clone(), json!(value));
    }
    let mut request = GetPromptRequestParams::new("status");
    if !arguments.is_empty() {
        request.arguments = Some(arguments);
    }

    let prompt = timeout(CALL_LIMIT, session.client().get_prompt(request))
        .await
        .context("prompts/get timed out")?
        .context("prompts/get status failed")?;
    assert!(
        !prompt.messages.is_empty(),
        "the status prompt has no messages"
    );
    let text = serde_json::to_string(&prompt.messages)?;
    assert!(
        text.contains("prompt-demo"),
        "the status prompt does not mention the project: {text}"
    );
    Ok(())
}
