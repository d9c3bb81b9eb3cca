//! Project documents as MCP resources: list, read, templates, and one update notification
//! per commit to a subscribed document.

use std::sync::Arc;

use anyhow::{Context, Result};
use rmcp::model::{
    CallToolRequestParams, ReadResourceRequestParams, ResourceContents,
    ResourceUpdatedNotificationParam, SubscribeRequestParams,
};
use rmcp::service::NotificationContext;
use rmcp::{ClientHandler, RoleClient};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::timeout;

use crate::common::{CALL_LIMIT, Sandbox, ServerOptions, StdioServer, decode_tool_result};

/// A client that counts update notifications per URI.
#[derive(Clone)]
struct UpdateCounter {
    updates: Arc<watch::Sender<Vec<String>>>,
}

impl ClientHandler for UpdateCounter {
    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.updates.send_modify(|uris| uris.push(params.uri));
    }
}

fn tool(name: &str, arguments: Value) -> CallToolRequestParams {
    let mut params = CallToolRequestParams::new(name.to_owned());
    params.arguments = arguments.as_object().cloned();
    params
}

fn store(resource_id: &str, content: &str) -> Value {
    json!({"project_id": "p", "resource_id": resource_id, "name": "Doc", "agent_name": "alice",
           "content": content, "etag": "*"})
}

#[tokio::test]
async fn subscriber_gets_one_update_per_commit() -> Result<()> {
    let sandbox = Sandbox::new()?;
    let (sender, mut updates) = watch::channel(Vec::new());
    let handler = UpdateCounter {
        updates: Arc::new(sender),
    };
    let (client, _process) = StdioServer::spawn(&sandbox, &ServerOptions::default())?
        .connect_handler(handler)
        .await?;
    let call = |name: &str, args: Value| {
        let params = tool(name, args);
        let client = &client;
        let name = name.to_owned();
        async move {
            let result = timeout(CALL_LIMIT, client.call_tool(params)).await??;
            decode_tool_result(&name, &result)?.success()
        }
    };
    call(
        "status",
        json!({"working_directory": "/tmp/brainstorm-agents/alice"}),
    )
    .await?;
    call(
        "create_project",
        json!({"project_id": "p", "name": "P", "created_by": "alice"}),
    )
    .await?;
    call("store_resource", store("notes", "v1")).await?;
    call("store_resource", store("other", "x")).await?;

    let listed = client.peer().list_resources(None).await?;
    let uris: Vec<&str> = listed.resources.iter().map(|r| r.uri.as_str()).collect();
    assert!(uris.contains(&"brainstorm://p/notes"), "{uris:?}");
    let templates = client.peer().list_resource_templates(None).await?;
    assert_eq!(
        templates.resource_templates[0].uri_template,
        "brainstorm://{project_id}/{resource_id}"
    );
    let read = client
        .peer()
        .read_resource(ReadResourceRequestParams::new("brainstorm://p/notes"))
        .await?;
    let ResourceContents::TextResourceContents { text, .. } = &read.contents[0] else {
        anyhow::bail!("expected text contents, got {:?}", read.contents);
    };
    assert_eq!(text, "v1");

    #[allow(deprecated)]
    client
        .peer()
        .subscribe(SubscribeRequestParams::new("brainstorm://p/notes"))
        .await?;
    for version in ["v2", "v3", "v4"] {
        call("store_resource", store("notes", version)).await?;
    }
    // A commit to another document must not notify this subscription. It lands before the
    // last commit to the subscribed one, so the count below would include it.
    call("store_resource", store("other", "y")).await?;
    call("store_resource", store("notes", "v5")).await?;
    let received = timeout(CALL_LIMIT, updates.wait_for(|uris| uris.len() >= 4))
        .await
        .context("update notifications did not arrive")??
        .clone();

    assert_eq!(received.len(), 4, "{received:?}");
    assert!(
        received.iter().all(|uri| uri == "brainstorm://p/notes"),
        "{received:?}"
    );
    Ok(())
}
