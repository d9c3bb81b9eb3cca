//! Operator commands that act on a data folder: directly when no process has the database
//! open, otherwise through the owning process, authenticated with the folder's token.

use std::path::Path;

use serde_json::{Value, json};

use super::owner::{OwnerRecord, is_held_elsewhere, load_or_create_token, read_owner};
use crate::config::Config;
use crate::storage::Store;

/// Writes a backup of the data folder's database to `destination` and returns the report as
/// JSON: path, bytes, rows per table and milliseconds taken.
pub async fn backup(config: &Config, destination: &Path) -> anyhow::Result<Value> {
    let destination = absolute(destination)?;
    match Store::open_with(&config.database_path(), config.commit) {
        Ok(store) => {
            let report = tokio::task::spawn_blocking(move || store.backup(&destination)).await??;
            Ok(json!({
                "path": report.path,
                "bytes": report.bytes,
                "rows": report.rows,
                "millis": report.millis,
            }))
        }
        Err(err) if is_held_elsewhere(&err) => through_owner(config, &destination).await,
        Err(err) => Err(err.into()),
    }
}

/// Resolves a destination against the current folder, because the owner may run elsewhere.
fn absolute(path: &Path) -> anyhow::Result<std::path::PathBuf> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    Ok(std::env::current_dir()?.join(path))
}

async fn through_owner(config: &Config, destination: &Path) -> anyhow::Result<Value> {
    let (url, token, pid) = owner_endpoint(config, "/admin/backup")?;
    let body = json!({ "path": destination }).to_string();
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let status = response.status();
    let text = response.text().await?;
    if !status.is_success() {
        anyhow::bail!("the owning process (pid {pid}) could not write the backup: {status} {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

/// Returns the database's statistics: schema version, file size, rows per table and the
/// projects with the most resources.
pub async fn stats(config: &Config) -> anyhow::Result<Value> {
    match Store::open_with(&config.database_path(), config.commit) {
        Ok(store) => Ok(tokio::task::spawn_blocking(move || store.stats()).await??),
        Err(err) if is_held_elsewhere(&err) => {
            let (url, token, pid) = owner_endpoint(config, "/admin/stats")?;
            let response = reqwest::Client::new()
                .get(&url)
                .bearer_auth(token)
                .send()
                .await?;
            let status = response.status();
            let text = response.text().await?;
            if !status.is_success() {
                anyhow::bail!(
                    "the owning process (pid {pid}) could not report statistics: {status} {text}"
                );
            }
            Ok(serde_json::from_str(&text)?)
        }
        Err(err) => Err(err.into()),
    }
}

/// Returns the URL of an admin route on the owning process, the token, and the owner's pid.
fn owner_endpoint(config: &Config, route: &str) -> anyhow::Result<(String, String, u32)> {
    let (owner, token) = owner_of(config)?;
    let base = owner
        .url
        .strip_suffix("/mcp")
        .ok_or_else(|| anyhow::anyhow!("owner.json names an unexpected endpoint {}", owner.url))?;
    Ok((format!("{base}{route}"), token, owner.pid))
}

/// Returns the record of the process that owns the data folder, and the folder's token.
pub(super) fn owner_of(config: &Config) -> anyhow::Result<(OwnerRecord, String)> {
    let owner = read_owner(&config.data_dir).ok_or_else(|| {
        anyhow::anyhow!(
            "the database in {} is open in another process that names no endpoint in owner.json",
            config.data_dir.display()
        )
    })?;
    Ok((owner, load_or_create_token(&config.data_dir)?))
}
