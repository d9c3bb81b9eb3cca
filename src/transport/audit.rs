//! Reading the audit trail from the command line: directly from the database, or through
//! the process that owns the data folder, as an operator holding the folder's token.

use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{ClientLifecycleMode, ClientServiceExt};
use serde_json::Value;

use super::owner::is_held_elsewhere;
use crate::config::Config;
use crate::service::Service;
use crate::service::requests::AuditLogRequest;

/// Returns audit records matching `request` (the arguments of the `audit_log` tool).
pub async fn read(config: &Config, request: Value) -> anyhow::Result<Value> {
    match Service::open(config.clone()) {
        Ok(service) => {
            let request: AuditLogRequest = serde_json::from_value(request)?;
            let records = service.blocking(move |service| service.audit_log(&request, true));
            Ok(records
                .await
                .map_err(|err| anyhow::anyhow!("{}: {}", err.code, err.message))?)
        }
        Err(err) if is_held_elsewhere(&err) => through_owner(config, request).await,
        Err(err) => Err(err.into()),
    }
}

async fn through_owner(config: &Config, request: Value) -> anyhow::Result<Value> {
    let (owner, token) = super::admin::owner_of(config)?;
    let transport_config =
        StreamableHttpClientTransportConfig::with_uri(owner.url.clone()).auth_header(token);
    let transport = StreamableHttpClientTransport::from_config(transport_config);
    let client = ().serve_with_lifecycle(transport, ClientLifecycleMode::Initialize).await?;
    let mut params = CallToolRequestParams::new("audit_log");
    params.arguments = request.as_object().cloned();
    let result = client.peer().call_tool(params).await?;
    let _ = client.cancel().await;
    let body = result.structured_content.unwrap_or(Value::Null);
    if result.is_error == Some(true) {
        anyhow::bail!("the owner at {} rejected the request: {body}", owner.url);
    }
    Ok(body)
}
