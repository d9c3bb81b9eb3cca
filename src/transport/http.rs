//! Streamable HTTP at `/mcp` for many agents at once, and `/healthz` for monitors.
//!
//! Every request passes [`guard`] first: Host and Origin must be loopback ones when the server
//! listens on loopback (against DNS rebinding), and a bearer token is checked when one is
//! required. A POST to `/mcp` must then be one JSON-RPC message within the body size limit
//! (400 and 413 otherwise) before rmcp reads it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, JsonRpcMessage};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::mcp::{Authenticated, BrainstormServer, ForwardedClientId};
use crate::service::Service;

/// Address `serve` binds when no `--listen` is given: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8765";
/// Header a forwarding `brainstorm stdio` process uses to pass its client's
/// `BRAINSTORM_CLIENT_ID`. It is honoured only on requests that carry the token.
pub const CLIENT_ID_HEADER: &str = "x-brainstorm-client-id";

/// Settings of the HTTP endpoint.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Bearer token; requests without it are rejected when `require_token` is set.
    pub token: Option<String>,
    /// Whether every request except `/healthz` needs the token.
    pub require_token: bool,
    /// Largest request body accepted, in bytes; larger ones get 413.
    pub max_body_bytes: usize,
    /// Most concurrent MCP sessions (protocol versions with sessions); more get 503.
    pub max_sessions: usize,
}

struct GuardState {
    posts: Arc<InFlight>,
    loopback: bool,
    token: Option<String>,
    require_token: bool,
    max_sessions: usize,
    max_body_bytes: usize,
    sessions: Arc<LocalSessionManager>,
}

/// A bound HTTP endpoint, ready to serve.
pub struct HttpEndpoint {
    listener: tokio::net::TcpListener,
    app: axum::Router,
    sessions_stop: CancellationToken,
    service: Service,
    posts: Arc<InFlight>,
}

/// Count of POST requests whose responses are not yet fully sent.
#[derive(Default)]
struct InFlight {
    count: AtomicUsize,
    idle: tokio::sync::Notify,
}

impl InFlight {
    fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(Arc::clone(self))
    }

    async fn idle(&self) {
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

struct InFlightGuard(Arc<InFlight>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl HttpEndpoint {
    /// Binds the listener and builds the routes.
    pub async fn bind(service: Service, options: HttpOptions) -> anyhow::Result<Self> {
        let loopback = options.listen.ip().is_loopback();
        if !loopback && options.token.is_none() {
            anyhow::bail!(
                "listening on {} (not loopback) needs a token: set BRAINSTORM_TOKEN or --token-file",
                options.listen
            );
        }
        let sessions_stop = CancellationToken::new();
        let mut config = StreamableHttpServerConfig::default()
            .with_cancellation_token(sessions_stop.child_token())
            .with_max_request_body_bytes(options.max_body_bytes)
            .with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]);
        if !loopback {
            // A remote client names the server by whatever address reaches it; the token
            // guards the endpoint instead.
            config = config.disable_allowed_hosts();
        }
        let sessions = Arc::new(LocalSessionManager::default());
        let mcp = StreamableHttpService::new(
            {
                let service = service.clone();
                move || Ok(BrainstormServer::new(service.clone()))
            },
            Arc::clone(&sessions),
            config,
        );
        let posts = Arc::new(InFlight::default());
        let state = Arc::new(GuardState {
            posts: Arc::clone(&posts),
            loopback,
            token: options.token.clone(),
            require_token: options.require_token || !loopback,
            max_sessions: options.max_sessions,
            max_body_bytes: options.max_body_bytes,
            sessions,
        });
        let admin = axum::Router::new()
            .route("/admin/backup", axum::routing::post(admin_backup))
            .route("/admin/stats", axum::routing::get(admin_stats))
            .with_state(service.clone());
        let app = axum::Router::new()
            .nest_service("/mcp", mcp)
            .route("/healthz", axum::routing::get(healthz))
            .merge(admin)
            .layer(middleware::from_fn_with_state(state, guard));
        let listener = tokio::net::TcpListener::bind(options.listen)
            .await
            .map_err(|err| {
                anyhow::anyhow!(
                    "cannot listen on {}: {err}; pick another address with --listen",
                    options.listen
                )
            })?;
        Ok(HttpEndpoint {
            listener,
            app,
            sessions_stop,
            service,
            posts,
        })
    }

    /// Returns the bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully: long-polls return their
    /// timed-out result, calls in progress finish, sessions close, and the listener stops.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let HttpEndpoint {
            listener,
            app,
            sessions_stop,
            service,
            posts,
        } = self;
        let addr = listener.local_addr()?;
        let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
        let drain = {
            let service = service.clone();
            async move {
                shutdown.await;
                info!(%addr, "HTTP server stopping: ending long-polls and finishing calls in progress");
                service.begin_shutdown();
                let answered = async {
                    service.drained().await;
                    // A call's result is sent after its handler returns, so the server also
                    // waits until every POST response has been written.
                    posts.idle().await;
                };
                if tokio::time::timeout(DRAIN_LIMIT, answered).await.is_err() {
                    warn!(%addr, "calls still in progress after {DRAIN_LIMIT:?}; closing anyway");
                }
                // Session streams never end by themselves, so they are closed once every
                // call has returned its result.
                sessions_stop.cancel();
                let _ = stopped_tx.send(());
            }
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                drain.await;
                let _ = stopped_rx.await;
            })
            .await?;
        info!(%addr, "HTTP server stopped");
        Ok(())
    }
}

/// Maximum wait for calls in progress during shutdown.
const DRAIN_LIMIT: Duration = Duration::from_secs(30);

/// Writes a backup of the database to the path in the JSON body `{"path": ...}`. Only a
/// request that carries the data folder's token may, even on loopback.
async fn admin_backup(State(service): State<Service>, request: Request) -> Response {
    if request.extensions().get::<Authenticated>().is_none() {
        return reject(
            StatusCode::UNAUTHORIZED,
            "backups need the data folder's token",
        );
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), 64 * 1024).await else {
        return reject(StatusCode::BAD_REQUEST, "cannot read the request body");
    };
    let path = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|value| {
            value
                .get("path")
                .and_then(|p| p.as_str())
                .map(std::path::PathBuf::from)
        });
    let Some(path) = path.filter(|path| path.is_absolute()) else {
        return reject(
            StatusCode::BAD_REQUEST,
            "send {\"path\": \"/absolute/path/of/the/backup\"}",
        );
    };
    let outcome = tokio::task::spawn_blocking(move || service.store().backup(&path)).await;
    match outcome {
        Ok(Ok(report)) => {
            info!(path = %report.path.display(), bytes = report.bytes, "backup written");
            axum::Json(json!({
                "path": report.path,
                "bytes": report.bytes,
                "rows": report.rows,
                "millis": report.millis,
            }))
            .into_response()
        }
        Ok(Err(err)) => {
            warn!(error = %err, "backup failed");
            reject(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string())
        }
        Err(err) => reject(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("backup task failed: {err}"),
        ),
    }
}

/// Returns the database's statistics. Only a request that carries the data folder's token may.
async fn admin_stats(State(service): State<Service>, request: Request) -> Response {
    if request.extensions().get::<Authenticated>().is_none() {
        return reject(
            StatusCode::UNAUTHORIZED,
            "statistics need the data folder's token",
        );
    }
    match tokio::task::spawn_blocking(move || service.store().stats()).await {
        Ok(Ok(stats)) => axum::Json(stats).into_response(),
        Ok(Err(err)) => {
            warn!(error = %err, "statistics failed");
            reject(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string())
        }
        Err(err) => reject(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("statistics task failed: {err}"),
        ),
    }
}

async fn healthz() -> impl IntoResponse {
    axum::Json(
        json!({"status": "ok", "name": env!("CARGO_PKG_NAME"), "version": env!("CARGO_PKG_VERSION")}),
    )
}

fn reject(status: StatusCode, message: &str) -> Response {
    let mut response = (status, axum::Json(json!({"error": message}))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn is_loopback_origin(origin: &str) -> bool {
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|rest| is_loopback_host(rest.split('/').next().unwrap_or_default()))
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Checks Host, Origin, token and the session cap before a request reaches a route, and
/// counts POST requests until their responses are sent.
async fn guard(State(state): State<Arc<GuardState>>, mut request: Request, next: Next) -> Response {
    let headers = request.headers();
    if state.loopback {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !is_loopback_host(host) {
            warn!(host, "request rejected: Host is not a loopback name");
            return reject(
                StatusCode::FORBIDDEN,
                "Host header must name a loopback address",
            );
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        if !is_loopback_origin(origin) {
            warn!(origin, "request rejected: Origin is not a loopback one");
            return reject(
                StatusCode::FORBIDDEN,
                "Origin is not allowed; only loopback origins may call this server",
            );
        }
    }
    let authenticated = match (&state.token, bearer(headers)) {
        (Some(expected), Some(given)) => same_secret(given, expected),
        _ => false,
    };
    let open_route = request.uri().path() == "/healthz";
    if state.require_token && !authenticated && !open_route {
        let reason = if bearer(headers).is_some() {
            "wrong token"
        } else {
            "missing token"
        };
        warn!(reason, "request rejected: authentication failed");
        return reject(
            StatusCode::UNAUTHORIZED,
            "a bearer token is required: send Authorization: Bearer <token> (the token file is \
             in the data folder)",
        );
    }
    let forwarded = match authenticated {
        true => headers
            .get(CLIENT_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        false => None,
    };
    let is_post = request.method() == axum::http::Method::POST;
    let has_session = headers.contains_key("mcp-session-id");
    let path = request.uri().path();
    let to_mcp = path == "/mcp" || path.starts_with("/mcp/");
    let reads_body = is_post && to_mcp && is_json(headers);
    if let Some(client_id) = forwarded {
        request
            .extensions_mut()
            .insert(ForwardedClientId(client_id));
    }
    if authenticated {
        request.extensions_mut().insert(Authenticated);
    }
    if !is_post {
        return next.run(request).await;
    }

    // Counted from here, so that shutdown also waits for a body that is still arriving.
    let in_flight = state.posts.enter();
    if reads_body {
        // rmcp rejects a body it cannot read as a JSON-RPC message with 415, the status for
        // a wrong Content-Type. The body is read here first so that it gets 400 instead.
        let (parts, body) = request.into_parts();
        let bytes = match axum::body::to_bytes(body, state.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(err) => return body_read_failure(&err, state.max_body_bytes),
        };
        let message = match serde_json::from_slice::<ClientJsonRpcMessage>(&bytes) {
            Ok(message) => message,
            Err(err) => {
                warn!(error = %err, "request rejected: body is not a JSON-RPC message");
                return json_rpc_error(&bytes, &err);
            }
        };
        // Only an initialize request opens a session, so other requests pass the cap.
        let at_cap = state.sessions.sessions.read().await.len() >= state.max_sessions;
        if !has_session && at_cap && is_initialize(&message) {
            warn!(
                max_sessions = state.max_sessions,
                "request rejected: session limit reached"
            );
            return reject(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many MCP sessions are open; close one or retry later",
            );
        }
        request = Request::from_parts(parts, axum::body::Body::from(bytes));
    }

    let (parts, body) = next.run(request).await.into_parts();
    let stream = futures_util::StreamExt::map(body.into_data_stream(), move |chunk| {
        let _counted_until_sent = &in_flight;
        chunk
    });
    Response::from_parts(parts, axum::body::Body::from_stream(stream))
}

/// Returns whether a request declares a JSON body, as MCP requires. rmcp rejects any other
/// Content-Type with 415.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// Builds the response to a request body that could not be read: 413 when it is longer than
/// the limit, else 400 (the client closed the connection or sent a broken chunked body).
fn body_read_failure(err: &axum::Error, max_body_bytes: usize) -> Response {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            warn!(max_body_bytes, "request rejected: body too large");
            return reject(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        cause = current.source();
    }
    warn!(error = %err, "request rejected: body could not be read");
    reject(
        StatusCode::BAD_REQUEST,
        "the request body could not be read",
    )
}

/// Builds the 400 response to a body that is not one JSON-RPC message. Text that is not JSON
/// gets a parse error (-32700), and other JSON an invalid request error (-32600) with the
/// message's id when it has one.
fn json_rpc_error(body: &[u8], err: &serde_json::Error) -> Response {
    let (code, problem, id) = match serde_json::from_slice::<serde_json::Value>(body) {
        Err(_) => (
            -32700,
            "the request body is not valid JSON",
            serde_json::Value::Null,
        ),
        Ok(value) => {
            let id = value
                .get("id")
                .filter(|id| id.is_string() || id.is_number())
                .cloned()
                .unwrap_or_default();
            (
                -32600,
                "the request body is JSON but not one JSON-RPC 2.0 message",
                id,
            )
        }
    };
    let message = format!("{problem}: {err}; send one JSON-RPC message per POST");
    let error = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    (StatusCode::BAD_REQUEST, axum::Json(error)).into_response()
}

/// Returns whether a client message is an `initialize` request.
fn is_initialize(message: &ClientJsonRpcMessage) -> bool {
    matches!(
        message,
        JsonRpcMessage::Request(request)
            if matches!(request.request, ClientRequest::InitializeRequest(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognized() {
        for host in [
            "localhost",
            "localhost:8765",
            "127.0.0.1:1",
            "[::1]:8765",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8765",
            "10.0.0.1:80",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }

    #[test]
    fn loopback_origins_are_recognized() {
        assert!(is_loopback_origin("http://localhost:5173"));
        assert!(is_loopback_origin("http://127.0.0.1"));
        assert!(!is_loopback_origin("http://evil.example"));
        assert!(!is_loopback_origin("null"));
    }

    #[test]
    fn secrets_compare_exactly() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abd", "abc"));
        assert!(!same_secret("ab", "abc"));
    }
}
