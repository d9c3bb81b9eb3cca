//! Project documents as MCP resources: `brainstorm://{project_id}/{resource_id}`.
//!
//! Listing, reading and subscribing act as the session client's agent in each project, so
//! they need a session (`status` first). Clients of MCP 2026-07-28 over HTTP have none, so
//! they use the tools instead. A subscriber gets one `notifications/resources/updated` per commit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rmcp::model::{
    ListResourceTemplatesResult, ListResourcesResult, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, ResourceUpdatedNotificationParam,
};
use rmcp::{ErrorData as McpError, Peer, RoleServer};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::error::{ErrorCode, ServiceError};
use crate::service::{Identity, Service};
use crate::storage::records::ManifestRecord;

/// URI scheme of project documents.
pub const SCHEME: &str = "brainstorm://";

/// Returns the URI of a document.
pub fn uri(manifest: &ManifestRecord) -> String {
    format!("{SCHEME}{}/{}", manifest.project_id, manifest.resource_id)
}

/// Splits a document URI into project id and resource id.
pub fn parse_uri(uri: &str) -> Result<(String, String), McpError> {
    let parts = uri
        .strip_prefix(SCHEME)
        .and_then(|rest| rest.split_once('/'));
    match parts {
        Some((project, resource)) if !project.is_empty() && !resource.is_empty() => {
            Ok((project.to_owned(), resource.to_owned()))
        }
        _ => Err(McpError::invalid_params(
            format!(
                "resource URI {uri:?} is not of the form {SCHEME}{{project_id}}/{{resource_id}}"
            ),
            None,
        )),
    }
}

/// Turns a service failure into an MCP error for resource requests.
pub fn mcp_error(err: ServiceError) -> McpError {
    let data = serde_json::json!({"code": err.code.as_str(), "details": err.details});
    match err.code {
        ErrorCode::InternalError => {
            tracing::error!(
                cause = err.internal.as_deref().unwrap_or("unknown"),
                "resource request failed"
            );
            McpError::internal_error("internal error; the server log has the cause", None)
        }
        ErrorCode::ResourceNotFound => McpError::resource_not_found(err.message, Some(data)),
        _ => McpError::invalid_params(err.message, Some(data)),
    }
}

fn no_session() -> McpError {
    McpError::invalid_params(
        "no session: call the status tool with your working_directory first",
        Some(serde_json::json!({"code": ErrorCode::SessionNotInitialized.as_str()})),
    )
}

/// Lists the documents the session's client may read.
pub async fn list(
    service: &Service,
    session: Option<Identity>,
) -> Result<ListResourcesResult, McpError> {
    let identity = session.ok_or_else(no_session)?;
    let documents = service
        .blocking(move |service| service.client_documents(&identity))
        .await
        .map_err(mcp_error)?;
    let resources = documents
        .iter()
        .map(|manifest| {
            let mut resource =
                Resource::new(uri(manifest), manifest.name.clone()).with_size(manifest.size_bytes);
            if let Some(description) = &manifest.description {
                resource = resource.with_description(description.clone());
            }
            if let Some(mime_type) = &manifest.mime_type {
                resource = resource.with_mime_type(mime_type.clone());
            }
            resource
        })
        .collect();
    Ok(ListResourcesResult::with_all_items(resources))
}

/// Returns the URI template of project documents.
pub fn templates() -> ListResourceTemplatesResult {
    let template = ResourceTemplate::new(
        format!("{SCHEME}{{project_id}}/{{resource_id}}"),
        "document",
    )
    .with_description("A shared document of a project, read as your agent in that project");
    ListResourceTemplatesResult::with_all_items(vec![template])
}

/// Reads a document as the session's client.
pub async fn read(
    service: &Service,
    session: Option<Identity>,
    uri: &str,
) -> Result<ReadResourceResult, McpError> {
    let identity = session.ok_or_else(no_session)?;
    let (project_id, resource_id) = parse_uri(uri)?;
    let (manifest, content) = service
        .blocking(move |service| service.client_document(&identity, &project_id, &resource_id))
        .await
        .map_err(mcp_error)?;
    let mut contents = ResourceContents::text(content, uri);
    if let (ResourceContents::TextResourceContents { mime_type, .. }, Some(given)) =
        (&mut contents, &manifest.mime_type)
    {
        *mime_type = Some(given.clone());
    }
    Ok(ReadResourceResult::new(vec![contents]))
}

/// The subscriptions of one session, each ended by its token.
///
/// NOTE: clients of MCP 2026-07-28 subscribe with `subscriptions/listen`, which is not
/// implemented; they watch a document with `get_resource {wait, if_none_match}` instead.
#[derive(Clone, Default)]
pub struct Subscriptions {
    active: Arc<Mutex<HashMap<String, CancellationToken>>>,
}

impl Subscriptions {
    /// Subscribes the session to a document it may read: every commit to it sends one
    /// `notifications/resources/updated`, until unsubscribe or the end of the session.
    pub async fn subscribe(
        &self,
        service: &Service,
        session: Option<Identity>,
        uri: &str,
        peer: Peer<RoleServer>,
    ) -> Result<(), McpError> {
        let identity = session.ok_or_else(no_session)?;
        let (project_id, resource_id) = parse_uri(uri)?;
        let (project, resource) = (project_id.clone(), resource_id.clone());
        service
            .blocking(move |service| {
                service
                    .client_document(&identity, &project, &resource)
                    .map(|_| ())
            })
            .await
            .map_err(mcp_error)?;
        let mut ticket = service
            .watch_resource(&project_id, &resource_id)
            .map_err(mcp_error)?;
        let stop = CancellationToken::new();
        if let Some(previous) = self.lock().insert(uri.to_owned(), stop.clone()) {
            previous.cancel();
        }
        let uri = uri.to_owned();
        info!(%uri, "resource subscription started");
        tokio::spawn(async move {
            loop {
                let commits = tokio::select! {
                    commits = ticket.changed_count() => commits,
                    _ = stop.cancelled() => break,
                };
                for _ in 0..commits {
                    let params = ResourceUpdatedNotificationParam::new(uri.clone());
                    if let Err(err) = peer.notify_resource_updated(params).await {
                        debug!(%uri, error = %err, "subscriber gone; subscription ended");
                        return;
                    }
                }
            }
            debug!(%uri, "resource subscription ended");
        });
        Ok(())
    }

    /// Ends a subscription; unknown URIs are ignored.
    pub fn unsubscribe(&self, uri: &str) {
        if let Some(stop) = self.lock().remove(uri) {
            stop.cancel();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CancellationToken>> {
        self.active
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl Drop for Subscriptions {
    fn drop(&mut self) {
        // The last handle of a session ends its subscriptions.
        if Arc::strong_count(&self.active) == 1 {
            for stop in self.lock().values() {
                stop.cancel();
            }
        }
    }
}
