//! The rmcp server handler: sessions, tool dispatch and prompts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::*;
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use tracing::{debug, info};

use super::args::{parse, take_string};
use super::prompts;

/// Marks a request that carried the data folder's token, set by the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated;

/// Client id that a forwarding `brainstorm stdio` process passed for its client, set by the
/// HTTP layer on requests that carry the token.
#[derive(Debug, Clone)]
pub struct ForwardedClientId(pub String);
use super::result::tool_result;
use super::tools::{self, Acts};
use crate::error::{ErrorCode, ServiceError, ServiceResult};
use crate::service::{AuditContext, Identity, Service, WaitControl};

const INSTRUCTIONS: &str = "brainstorm lets several agents work on shared projects. Call status \
    with your working directory first, then create_project or join_project. Exchange messages \
    with send_message and receive_messages (wait: true blocks until one arrives). Share state \
    with store_resource and get_resource, passing the etag you read when you update; on \
    ETAG_MISMATCH read again and retry.";

/// One MCP connection's handler. The session identity lives here, so each stdio process or
/// HTTP session has its own; the service behind it is shared.
#[derive(Clone)]
pub struct BrainstormServer {
    service: Service,
    session: Arc<Mutex<Option<Identity>>>,
    subscriptions: super::resources::Subscriptions,
}

impl BrainstormServer {
    /// Returns the server description sent in the MCP handshake.
    pub fn info() -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_prompts()
                .enable_resources()
                .enable_resources_subscribe()
                .build(),
        )
        .with_server_info(Implementation::new(
            env!("CARGO_PKG_NAME"),
            env!("CARGO_PKG_VERSION"),
        ))
        .with_instructions(INSTRUCTIONS)
    }

    /// Creates a handler with no session yet.
    pub fn new(service: Service) -> Self {
        BrainstormServer {
            service,
            session: Arc::new(Mutex::new(None)),
            subscriptions: Default::default(),
        }
    }

    /// Returns the client id that replaces the working-directory identity: the one a
    /// forwarding process passed for its client, else this process's `BRAINSTORM_CLIENT_ID`.
    fn client_id_override(&self, context: &RequestContext<RoleServer>) -> Option<String> {
        let forwarded = context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<ForwardedClientId>())
            .map(|forwarded| forwarded.0.clone());
        forwarded.or_else(|| self.service.config().client_id_override.clone())
    }

    fn current_session(&self) -> Option<Identity> {
        self.session
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    /// Starts the session of `identity` without a call, as after a status call. A forwarding
    /// process uses it to carry its session over to a new database owner.
    pub fn set_session(&self, identity: Identity) {
        *self
            .session
            .lock()
            .unwrap_or_else(|poison| poison.into_inner()) = Some(identity);
    }

    /// Resolves who a call acts for: its own `working_directory` argument, else the session.
    fn identity(
        &self,
        arguments: &mut Map<String, Value>,
        context: &RequestContext<RoleServer>,
    ) -> ServiceResult<Identity> {
        if let Some(path) = take_string(arguments, "working_directory")? {
            return Identity::resolve(&path, self.client_id_override(context).as_deref());
        }
        let session = self
            .session
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        session.clone().ok_or_else(|| {
            ServiceError::new(
                ErrorCode::SessionNotInitialized,
                "no session: call status with your working_directory first, or pass working_directory \
                 with this call (clients of MCP 2026-07-28 over HTTP keep no session, so they pass it \
                 with every call)",
            )
        })
    }

    async fn status(
        &self,
        arguments: Map<String, Value>,
        context: &RequestContext<RoleServer>,
    ) -> ServiceResult<Value> {
        let request: crate::service::requests::StatusRequest = parse(arguments)?;
        let override_id = self.client_id_override(context);
        let identity = Identity::resolve(&request.working_directory, override_id.as_deref())?;
        let result = self.service.blocking({
            let identity = identity.clone();
            move |service| service.status(&identity)
        });
        let result = result.await?;
        let mut session = self
            .session
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if session.as_ref() != Some(&identity) {
            info!(client_id = %identity.client_id, working_directory = %identity.working_directory, "session started");
        }
        *session = Some(identity);
        Ok(result)
    }

    async fn dispatch(
        &self,
        name: &str,
        mut arguments: Map<String, Value>,
        context: &RequestContext<RoleServer>,
    ) -> ServiceResult<Value> {
        let identity = match tools::acts(name) {
            Some(Acts::AsAgent) => Some(self.identity(&mut arguments, context)?),
            _ => None,
        };
        let audited;
        let service = match tools::mutates(name) {
            true => {
                audited = self
                    .service
                    .audited(audit_context(name, &arguments, identity.as_ref()));
                &audited
            }
            false => &self.service,
        };
        let outcome = self
            .run_tool(service, name, arguments, identity, context)
            .await;
        if let Err(err) = &outcome {
            if tools::mutates(name) {
                let code = err.code;
                let audited = service.clone();
                let _ = service
                    .blocking(move |_| {
                        audited.record_failure(code);
                        Ok(())
                    })
                    .await;
            }
        }
        outcome
    }

    async fn run_tool(
        &self,
        service: &Service,
        name: &str,
        arguments: Map<String, Value>,
        identity: Option<Identity>,
        context: &RequestContext<RoleServer>,
    ) -> ServiceResult<Value> {
        macro_rules! blocking {
            (|$service:ident, $request:ident| $call:expr) => {{
                let $request = parse(arguments)?;
                service.blocking(move |$service| $call).await
            }};
        }
        match name {
            "status" => self.status(arguments, context).await,
            "version" => {
                parse::<crate::service::requests::NoArguments>(arguments)?;
                Ok(json!({
                    "name": env!("CARGO_PKG_NAME"),
                    "version": env!("CARGO_PKG_VERSION"),
                    "description": env!("CARGO_PKG_DESCRIPTION"),
                }))
            }
            "create_project" => {
                let identity = identity.expect("create_project acts as an agent");
                blocking!(|s, request| s.create_project(&identity, request))
            }
            "join_project" => {
                let identity = identity.expect("join_project acts as an agent");
                blocking!(|s, request| s.join_project(&identity, &request))
            }
            "get_project_info" => {
                service
                    .project_info_wait(parse(arguments)?, &wait_control(context))
                    .await
            }
            "list_projects" => blocking!(|s, request| s.list_projects(&request)),
            "send_message" => blocking!(|s, request| s.send_message(&request)),
            "receive_messages" => {
                service
                    .receive_messages(parse(arguments)?, &wait_control(context))
                    .await
            }
            "store_resource" => blocking!(|s, request| s.store_resource(&request)),
            "get_resource" => {
                service
                    .get_resource(parse(arguments)?, &wait_control(context))
                    .await
            }
            "list_resources" => blocking!(|s, request| s.list_resources(&request)),
            "delete_resource" => blocking!(|s, request| s.delete_resource(&request)),
            "heartbeat" => blocking!(|s, request| s.heartbeat(&request)),
            "handover_coordinator" => blocking!(|s, request| s.handover_coordinator(&request)),
            "delete_project" => blocking!(|s, request| s.delete_project(&request)),
            "leave_project" => blocking!(|s, request| s.leave_project(&request)),
            "archive_project" => blocking!(|s, request| s.archive_project(&request)),
            "resource_history" => blocking!(|s, request| s.resource_history(&request)),
            "update_resource" => blocking!(|s, request| s.update_resource(&request)),
            "append_log" => blocking!(|s, request| s.append_log(&request)),
            "read_log" => {
                service
                    .read_log(parse(arguments)?, &wait_control(context))
                    .await
            }
            "audit_log" => {
                let operator = is_operator(context);
                blocking!(|s, request| s.audit_log(&request, operator))
            }
            _ => Err(ServiceError::internal(format!(
                "tool {name} is listed but has no handler"
            ))),
        }
    }
}

/// Returns whether the request carries the data folder's token, which makes its sender an
/// operator.
fn is_operator(context: &RequestContext<RoleServer>) -> bool {
    context
        .extensions
        .get::<http::request::Parts>()
        .is_some_and(|parts| parts.extensions.get::<Authenticated>().is_some())
}

/// Describes a call for its audit record, from its raw arguments.
fn audit_context(
    name: &str,
    arguments: &Map<String, Value>,
    identity: Option<&Identity>,
) -> AuditContext {
    let text = |key: &str| {
        arguments
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    AuditContext {
        client_id: identity.map(|identity| identity.client_id.clone()),
        project_id: text("project_id"),
        actor: text("agent_name")
            .or_else(|| text("from_agent"))
            .or_else(|| text("created_by")),
        action: name.to_owned(),
        target: text("resource_id")
            .or_else(|| text("log_id"))
            .or_else(|| text("to_agent")),
    }
}

/// Builds the long-poll control of a request: its cancellation token, and progress
/// notifications when the client sent a progress token.
fn wait_control(context: &RequestContext<RoleServer>) -> WaitControl {
    let progress = context.meta.get_progress_token().map(|token| {
        let peer = context.peer.clone();
        let report: crate::service::Progress = Box::new(move |waited: Duration| {
            let peer = peer.clone();
            let mut params = ProgressNotificationParam::new(token.clone(), waited.as_secs_f64());
            params.message = Some(format!("still waiting after {} s", waited.as_secs()));
            tokio::spawn(async move {
                if let Err(err) = peer.notify_progress(params).await {
                    debug!(error = %err, "progress notification not delivered");
                }
            });
        });
        report
    });
    WaitControl {
        cancel: context.ct.clone(),
        progress,
    }
}

impl ServerHandler for BrainstormServer {
    fn get_info(&self) -> ServerConfig {
        Self::info()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(tools::list()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let name = request.name.to_string();
        if tools::acts(&name).is_none() {
            return Err(McpError::invalid_params(
                format!("tool {name:?} not found; tools/list shows the tools"),
                None,
            ));
        }
        debug!(tool = %name, "tool called");
        let _call = self.service.track_call();
        let arguments = request.arguments.unwrap_or_default();
        let outcome = self.dispatch(&name, arguments, &context).await;
        Ok(tool_result(&name, outcome).into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, McpError> {
        Ok(ListPromptsResult::with_all_items(prompts::list()))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, McpError> {
        super::resources::list(&self.service, self.current_session()).await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, McpError> {
        Ok(super::resources::templates())
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, McpError> {
        let result = super::resources::read(&self.service, self.current_session(), &request.uri);
        Ok(result.await?.into())
    }

    #[allow(deprecated)]
    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        let session = self.current_session();
        self.subscriptions
            .subscribe(&self.service, session, &request.uri, context.peer)
            .await
    }

    #[allow(deprecated)]
    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        self.subscriptions.unsubscribe(&request.uri);
        Ok(())
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, McpError> {
        let arguments = request.arguments.unwrap_or_default();
        let given = arguments.get("working_directory").and_then(Value::as_str);
        let session = match given {
            Some(path) => {
                let override_id = self.client_id_override(&context);
                let identity = Identity::resolve(path, override_id.as_deref())
                    .map_err(|err| McpError::invalid_params(err.message, None))?;
                Some(identity)
            }
            None => self
                .session
                .lock()
                .unwrap_or_else(|poison| poison.into_inner())
                .clone(),
        };
        let service = self.service.clone();
        let name = request.name.clone();
        let rendered = service
            .blocking(move |service| prompts::render(service, session.as_ref(), &name, &arguments))
            .await;
        match rendered {
            Ok(result) => Ok(result.into()),
            Err(err) if err.code == ErrorCode::InternalError => {
                tracing::error!(prompt = %request.name, cause = err.internal.as_deref().unwrap_or("unknown"), "prompt failed");
                Err(McpError::internal_error(
                    "internal error; the server log has the cause",
                    None,
                ))
            }
            Err(err) => Err(McpError::invalid_params(
                err.message,
                Some(json!({"code": err.code.as_str(), "details": err.details})),
            )),
        }
    }
}
