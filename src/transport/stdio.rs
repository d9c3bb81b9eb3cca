//! One MCP session over standard input and output. Standard output carries only MCP frames.

use rmcp::ServiceExt;
use tracing::info;

use crate::mcp::BrainstormServer;
use crate::service::Service;

/// Serves one client on stdio until it closes standard input or a signal arrives.
pub async fn serve(service: Service) -> anyhow::Result<()> {
    info!(database = %service.store().path().display(), "serving MCP on stdio");
    let running = BrainstormServer::new(service)
        .serve(rmcp::transport::stdio())
        .await?;
    tokio::select! {
        reason = running.waiting() => info!(reason = ?reason?, "stdio session ended"),
        _ = super::shutdown_signal() => {}
    }
    Ok(())
}
