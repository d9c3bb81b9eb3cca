//! `brainstorm stdio` on a shared data folder: serve the client in this process when it owns
//! the folder, else forward its calls to the owner, and take over when the owner goes away.
//!
//! When the owner exits or is killed, the next call elects a new owner among the remaining
//! processes (redb's file lock picks exactly one) and replays the client's session there. A
//! call in flight at that moment fails with `CALL_INTERRUPTED`, because it may or may not
//! have been applied.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rmcp::model::*;
use rmcp::service::{NotificationContext, PeerRequestOptions, RequestContext, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::common::client_side_sse::SseRetryPolicy;
use rmcp::transport::streamable_http_client::{
    StreamableHttpClientTransportConfig, StreamableHttpError,
};
use rmcp::transport::worker::WorkerQuitReason;
use rmcp::{
    ClientHandler, ClientLifecycleMode, ClientServiceExt, ErrorData as McpError, Peer, RoleClient,
    RoleServer, ServerHandler, ServiceError, ServiceExt,
};
use serde_json::json;
use tracing::{debug, info, warn};

use super::http::CLIENT_ID_HEADER;
use super::owner::{Ownership, load_or_create_token, read_owner};
use crate::config::Config;
use crate::error::ErrorCode;
use crate::mcp::BrainstormServer;
use crate::service::Identity;

/// Maximum time spent finding or becoming an owner before a call fails.
const ELECTION_LIMIT: Duration = Duration::from_secs(20);
/// Time left to the stdio session to write its last results after a shutdown signal.
const STDOUT_FLUSH_GRACE: Duration = Duration::from_millis(250);
/// Longest MCP handshake with an owner.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);

/// Routes progress notifications of forwarded calls back to the stdio client, mapping the
/// token the forwarding client chose to the one the stdio client sent.
#[derive(Clone, Default)]
struct Relay {
    routes: Arc<Mutex<HashMap<ProgressToken, (Peer<RoleServer>, ProgressToken)>>>,
    /// The stdio client, once it subscribed to a resource, for relaying updates.
    subscriber: Arc<Mutex<Option<Peer<RoleServer>>>>,
}

impl Relay {
    fn routes(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<ProgressToken, (Peer<RoleServer>, ProgressToken)>> {
        self.routes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl ClientHandler for Relay {
    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let subscriber = self
            .subscriber
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(peer) = subscriber {
            if let Err(err) = peer.notify_resource_updated(params).await {
                debug!(error = %err, "resource update not relayed");
            }
        }
    }

    async fn on_progress(
        &self,
        mut params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let route = self.routes().get(&params.progress_token).cloned();
        if let Some((peer, token)) = route {
            params.progress_token = token;
            if let Err(err) = peer.notify_progress(params).await {
                debug!(error = %err, "progress notification not relayed");
            }
        }
    }
}

/// SSE retry policy that never resumes a broken stream.
#[derive(Debug)]
struct NoResume;

impl SseRetryPolicy for NoResume {
    fn retry(&self, _attempt: usize) -> Option<Duration> {
        None
    }
}

/// Removes a progress route when the forwarded call ends.
struct RouteGuard {
    relay: Relay,
    token: ProgressToken,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        self.relay.routes().remove(&self.token);
    }
}

/// Destination of this process's calls.
enum Link {
    /// This process owns the database and serves the client itself.
    Owner {
        server: BrainstormServer,
        ownership: Ownership,
    },
    /// Another process owns it; calls go there over loopback HTTP.
    Remote {
        client: RunningService<RoleClient, Relay>,
        url: String,
    },
}

/// Failure of a forwarded call.
enum Forwarded {
    /// The owner returned a protocol error.
    Protocol(McpError),
    /// The connection to the owner broke.
    Lost(ServiceError),
    /// The stdio client cancelled the call.
    Cancelled,
}

struct Inner {
    config: Config,
    token: String,
    relay: Relay,
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
    /// Working directory of the client's last successful `status`, replayed on a new link.
    working_directory: Mutex<Option<String>>,
}

/// The MCP handler of a `brainstorm stdio` process.
#[derive(Clone)]
pub struct StdioProxy {
    inner: Arc<Inner>,
}

impl StdioProxy {
    /// Reads or creates the data folder's token; the link is made on the first call.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let token = load_or_create_token(&config.data_dir).map_err(|err| {
            anyhow::anyhow!(
                "cannot read or create the token in {}: {err}",
                config.data_dir.display()
            )
        })?;
        Ok(StdioProxy {
            inner: Arc::new(Inner {
                config,
                token,
                relay: Relay::default(),
                link: tokio::sync::Mutex::new(None),
                working_directory: Mutex::new(None),
            }),
        })
    }

    /// Links to the data folder now, so that this process becomes the owner at start when no
    /// other process is.
    pub async fn connect(&self) -> anyhow::Result<()> {
        self.link().await.map(|_| ())
    }

    /// Ends the link: releases ownership (stopping the forwarding endpoint gracefully) or
    /// closes the connection to the owner.
    pub async fn close(&self) {
        let link = self.inner.link.lock().await.take();
        match link.and_then(|link| Arc::into_inner(link)) {
            Some(Link::Owner { ownership, .. }) => {
                ownership.service.begin_shutdown();
                ownership.release().await;
            }
            Some(Link::Remote { client, .. }) => {
                let _ = client.cancel().await;
            }
            None => {}
        }
    }

    /// Returns the service when this process owns the data folder.
    pub async fn owned_service(&self) -> Option<crate::service::Service> {
        match self.inner.link.lock().await.as_deref() {
            Some(Link::Owner { ownership, .. }) => Some(ownership.service.clone()),
            _ => None,
        }
    }

    async fn link(&self) -> anyhow::Result<Arc<Link>> {
        let mut current = self.inner.link.lock().await;
        if let Some(link) = current.as_ref() {
            return Ok(Arc::clone(link));
        }
        let link = Arc::new(self.elect().await?);
        self.resume_session(&link).await;
        *current = Some(Arc::clone(&link));
        Ok(link)
    }

    /// Drops `broken` as the current link, so that the next call elects again.
    async fn forget(&self, broken: &Arc<Link>) {
        let mut current = self.inner.link.lock().await;
        if current
            .as_ref()
            .is_some_and(|link| Arc::ptr_eq(link, broken))
        {
            *current = None;
        }
    }

    /// Becomes the owner, or connects to the current one, retrying with backoff while the
    /// owner is starting or dying.
    async fn elect(&self) -> anyhow::Result<Link> {
        let config = &self.inner.config;
        let started = Instant::now();
        let mut delay = Duration::from_millis(10);
        loop {
            if let Some(ownership) = Ownership::acquire(config, &self.inner.token).await? {
                let server = BrainstormServer::new(ownership.service.clone());
                return Ok(Link::Owner { server, ownership });
            }
            let record = read_owner(&config.data_dir);
            if let Some(record) = &record {
                match self.connect_remote(&record.url).await {
                    Ok(client) => {
                        info!(url = %record.url, owner_pid = record.pid, "forwarding to the process that owns the data folder");
                        return Ok(Link::Remote {
                            client,
                            url: record.url.clone(),
                        });
                    }
                    Err(err) => debug!(url = %record.url, error = %err, "owner not reachable yet"),
                }
            }
            if started.elapsed() > ELECTION_LIMIT {
                anyhow::bail!(
                    "the database in {} is open in another process that does not answer at {}; \
                     stop that process or use another --data-dir",
                    config.data_dir.display(),
                    record.map_or("an unknown address".to_owned(), |r| r.url)
                );
            }
            let jitter = Duration::from_millis(u64::from(rand::random::<u8>() % 20));
            tokio::time::sleep(delay + jitter).await;
            delay = (delay * 2).min(Duration::from_millis(500));
        }
    }

    async fn connect_remote(&self, url: &str) -> anyhow::Result<RunningService<RoleClient, Relay>> {
        let mut headers = HashMap::new();
        if let Some(client_id) = &self.inner.config.client_id_override {
            headers.insert(
                http::HeaderName::from_static(CLIENT_ID_HEADER),
                http::HeaderValue::from_str(client_id)?,
            );
        }
        let mut transport_config = StreamableHttpClientTransportConfig::with_uri(url)
            .auth_header(self.inner.token.clone())
            .custom_headers(headers);
        // A broken stream means the owner is gone: resuming it would wait for a process that
        // no longer exists, so the call fails at once and the next one elects a new owner.
        transport_config.retry_config = Arc::new(NoResume);
        let transport = StreamableHttpClientTransport::from_config(transport_config);
        // A session (protocol 2025-11-25) keeps the client's identity on the owner between calls.
        let handshake = self
            .inner
            .relay
            .clone()
            .serve_with_lifecycle(transport, ClientLifecycleMode::Initialize);
        Ok(tokio::time::timeout(CONNECT_LIMIT, handshake).await??)
    }

    /// Carries the client's session over to a new link.
    async fn resume_session(&self, link: &Link) {
        let working_directory = self
            .inner
            .working_directory
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(working_directory) = working_directory else {
            return;
        };
        match link {
            Link::Owner { server, .. } => {
                let override_id = self.inner.config.client_id_override.as_deref();
                if let Ok(identity) = Identity::resolve(&working_directory, override_id) {
                    server.set_session(identity);
                }
            }
            Link::Remote { client, .. } => {
                let mut params = CallToolRequestParams::new("status");
                params.arguments = json!({"working_directory": working_directory})
                    .as_object()
                    .cloned();
                if let Err(err) = client.peer().call_tool(params).await {
                    warn!(error = %err, "cannot resume the session on the new owner");
                }
            }
        }
        info!(working_directory, "session resumed after a change of owner");
    }

    fn remember_status(&self, request: &CallToolRequestParams, result: &CallToolResult) {
        if request.name != "status" || result.is_error == Some(true) {
            return;
        }
        let path = request
            .arguments
            .as_ref()
            .and_then(|args| args.get("working_directory"))
            .and_then(|v| v.as_str());
        if let Some(path) = path {
            *self
                .inner
                .working_directory
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(path.to_owned());
        }
    }

    async fn forward_call(
        &self,
        client: &RunningService<RoleClient, Relay>,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, Forwarded> {
        let peer = client.peer().clone();
        let call = ClientRequest::CallToolRequest(CallToolRequest::new(request));
        let handle = peer
            .send_request_with_option(call, PeerRequestOptions::no_options())
            .await
            .map_err(Forwarded::Lost)?;
        let _route = context.meta.get_progress_token().map(|token| {
            self.inner
                .relay
                .routes()
                .insert(handle.progress_token.clone(), (context.peer.clone(), token));
            RouteGuard {
                relay: self.inner.relay.clone(),
                token: handle.progress_token.clone(),
            }
        });
        let id = handle.id.clone();
        tokio::select! {
            response = handle.await_response() => match response {
                Ok(ServerResult::CallToolResult(result)) => Ok(result),
                Ok(_) => Err(Forwarded::Lost(ServiceError::UnexpectedResponse)),
                Err(ServiceError::McpError(err)) => Err(Forwarded::Protocol(err)),
                Err(err) => Err(Forwarded::Lost(err)),
            },
            _ = context.ct.cancelled() => {
                let cancel = CancelledNotificationParam::new(Some(id), Some("cancelled by the client".into()));
                if let Err(err) = peer.notify_cancelled(cancel).await {
                    debug!(error = %err, "cancellation not forwarded");
                }
                Err(Forwarded::Cancelled)
            }
        }
    }
}

/// Returns whether a forwarding failure happened before the call reached the owner: the
/// connection to the owner could not be made at all.
fn never_delivered(err: &ServiceError) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if current
            .downcast_ref::<reqwest::Error>()
            .is_some_and(reqwest::Error::is_connect)
        {
            return true;
        }
        // rmcp's HTTP error wraps the reqwest error without exposing it as a source.
        type HttpError = StreamableHttpError<reqwest::Error>;
        let http = current.downcast_ref::<HttpError>().or_else(|| {
            match current.downcast_ref::<WorkerQuitReason<HttpError>>() {
                Some(WorkerQuitReason::Fatal { error, .. }) => Some(error),
                _ => None,
            }
        });
        if let Some(StreamableHttpError::Client(client)) = http {
            return client.is_connect();
        }
        source = current.source();
    }
    false
}

/// Passes an owner's protocol error through, and reports a lost owner as internal.
fn remote_error(err: ServiceError) -> McpError {
    match err {
        ServiceError::McpError(err) => err,
        other => McpError::internal_error(
            format!("lost the process that owns the database: {other}"),
            None,
        ),
    }
}

fn failure(code: ErrorCode, message: String) -> CallToolResult {
    CallToolResult::structured_error(
        json!({"error": message, "code": code.as_str(), "details": {}}),
    )
}

fn unavailable(err: &anyhow::Error) -> CallToolResult {
    warn!(error = %err, "no owner for the data folder");
    failure(
        ErrorCode::OwnerUnavailable,
        format!("cannot reach the database: {err}"),
    )
}

impl ServerHandler for StdioProxy {
    fn get_info(&self) -> ServerConfig {
        BrainstormServer::info()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let link = match self.link().await {
            Ok(link) => link,
            Err(err) => return Ok(unavailable(&err).into()),
        };
        let remembered = request.clone();
        let mut link = link;
        let mut retried = false;
        let result = loop {
            let outcome = match link.as_ref() {
                Link::Owner { server, .. } => return server.call_tool(request, context).await,
                Link::Remote { client, .. } => {
                    self.forward_call(client, request.clone(), &context).await
                }
            };
            match outcome {
                Ok(result) => break result,
                Err(Forwarded::Protocol(err)) => return Err(err),
                Err(Forwarded::Cancelled) => {
                    return Err(McpError::internal_error("cancelled", None));
                }
                Err(Forwarded::Lost(err)) if never_delivered(&err) && !retried => {
                    // The owner was gone before the call reached it, so the call is sent again
                    // to whichever process owns the folder now.
                    info!(tool = %remembered.name, error = %err, "owner gone before the call was delivered; electing a new one");
                    self.forget(&link).await;
                    retried = true;
                    link = match self.link().await {
                        Ok(link) => link,
                        Err(err) => return Ok(unavailable(&err).into()),
                    };
                }
                Err(Forwarded::Lost(err)) => {
                    let url = match link.as_ref() {
                        Link::Remote { url, .. } => url.as_str(),
                        Link::Owner { .. } => "",
                    };
                    warn!(url, tool = %remembered.name, error = %err, "lost the owner during a call");
                    self.forget(&link).await;
                    break failure(
                        ErrorCode::CallInterrupted,
                        format!(
                            "the process that owns the database stopped during this {} call, so it may or may \
                             not have been applied; read the current state and retry",
                            remembered.name
                        ),
                    );
                }
            }
        };
        self.remember_status(&remembered, &result);
        Ok(result.into())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        // Tools and prompts are the same in every process of one version, so they are listed
        // locally.
        Ok(ListToolsResult::with_all_items(crate::mcp::tool_list()))
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(crate::mcp::prompt_list()))
    }

    async fn list_resources(
        &self,
        request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        match self
            .link()
            .await
            .map_err(|err| McpError::internal_error(err.to_string(), None))?
            .as_ref()
        {
            Link::Owner { server, .. } => server.list_resources(request, context).await,
            Link::Remote { client, .. } => client
                .peer()
                .list_resources(request)
                .await
                .map_err(remote_error),
        }
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(crate::mcp::resources::templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        match self
            .link()
            .await
            .map_err(|err| McpError::internal_error(err.to_string(), None))?
            .as_ref()
        {
            Link::Owner { server, .. } => server.read_resource(request, context).await,
            Link::Remote { client, .. } => {
                let result = client
                    .peer()
                    .read_resource(request)
                    .await
                    .map_err(remote_error)?;
                Ok(result.into())
            }
        }
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        // NOTE: a subscription made through an owner does not move to a new owner; the client
        // subscribes again after an owner change.
        *self
            .inner
            .relay
            .subscriber
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(context.peer.clone());
        match self
            .link()
            .await
            .map_err(|err| McpError::internal_error(err.to_string(), None))?
            .as_ref()
        {
            Link::Owner { server, .. } => server.subscribe(request, context).await,
            Link::Remote { client, .. } => {
                client.peer().subscribe(request).await.map_err(remote_error)
            }
        }
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        match self
            .link()
            .await
            .map_err(|err| McpError::internal_error(err.to_string(), None))?
            .as_ref()
        {
            Link::Owner { server, .. } => server.unsubscribe(request, context).await,
            Link::Remote { client, .. } => client
                .peer()
                .unsubscribe(request)
                .await
                .map_err(remote_error),
        }
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let link = self
            .link()
            .await
            .map_err(|err| McpError::internal_error(err.to_string(), None))?;
        match link.as_ref() {
            Link::Owner { server, .. } => server.get_prompt(request, context).await,
            Link::Remote { client, .. } => match client.peer().get_prompt(request).await {
                Ok(result) => Ok(result.into()),
                Err(ServiceError::McpError(err)) => Err(err),
                Err(err) => {
                    self.forget(&link).await;
                    Err(McpError::internal_error(
                        format!("lost the process that owns the database: {err}"),
                        None,
                    ))
                }
            },
        }
    }
}

/// Serves one client on stdio over a shared data folder until it closes stdin or a signal
/// arrives, then releases the folder.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let proxy = StdioProxy::new(config)?;
    proxy.connect().await?;
    let running = proxy.clone().serve(super::lines::stdio()).await?;
    let cancel = running.cancellation_token();
    tokio::select! {
        reason = running.waiting() => info!(reason = ?reason?, "stdio session ended"),
        _ = super::shutdown_signal() => {
            if let Some(service) = proxy.owned_service().await {
                // Long-polls return their timed-out result, and calls in progress finish,
                // before the session closes.
                service.begin_shutdown();
                let _ = tokio::time::timeout(Duration::from_secs(30), service.drained()).await;
            }
            // NOTE: rmcp writes a result to stdout after the handler returns and offers no
            // way to wait for that write, so the session gets a short grace period to flush
            // the last results before it is cancelled.
            tokio::time::sleep(STDOUT_FLUSH_GRACE).await;
            cancel.cancel();
        }
    }
    proxy.close().await;
    Ok(())
}
