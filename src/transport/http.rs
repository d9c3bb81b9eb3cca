//! Streamable HTTP at `/mcp`, for many agents at once.

use std::net::SocketAddr;
use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::mcp::BrainstormServer;
use crate::service::Service;

/// Address `serve` binds when no `--listen` is given: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8765";

/// Serves MCP over streamable HTTP on `listen` until SIGINT or SIGTERM.
pub async fn serve(service: Service, listen: SocketAddr) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    let config = StreamableHttpServerConfig::default()
        .with_cancellation_token(shutdown.child_token())
        .with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"]);
    let mcp = StreamableHttpService::new(
        {
            let service = service.clone();
            move || Ok(BrainstormServer::new(service.clone()))
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = axum::Router::new().nest_service("/mcp", mcp);
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|err| {
        anyhow::anyhow!("cannot listen on {listen}: {err}; pick another address with --listen")
    })?;
    let bound = listener.local_addr()?;
    info!(addr = %bound, database = %service.store().path().display(), "listening on {bound}, MCP endpoint http://{bound}/mcp");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            super::shutdown_signal().await;
            shutdown.cancel();
        })
        .await?;
    info!("HTTP server stopped");
    Ok(())
}
