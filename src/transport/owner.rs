//! Ownership of a data folder shared by several brainstorm processes.
//!
//! A redb file can be open in one process at a time. The process that opens it is the
//! owner: it serves MCP on a loopback HTTP endpoint that needs the data folder's token, and
//! records that endpoint in `owner.json`. Other processes on the same folder forward their
//! traffic there. redb's file lock decides who owns the folder, so two processes that start
//! at the same instant end with exactly one owner, and the lock is released when the owner
//! exits or is killed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::http::{HttpEndpoint, HttpOptions};
use crate::config::Config;
use crate::service::Service;
use crate::storage::StorageError;

/// File in the data folder that names the owner's endpoint.
pub const OWNER_FILE: &str = "owner.json";
/// File in the data folder holding the bearer token, readable only by its user.
pub const TOKEN_FILE: &str = "token";

/// Contents of [`OWNER_FILE`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OwnerRecord {
    /// Process id of the owner.
    pub pid: u32,
    /// MCP endpoint of the owner, on loopback.
    pub url: String,
    /// Version of the owner's binary.
    pub version: String,
}

/// Reads the token of a data folder, creating it (mode 0600) when there is none.
///
/// Two processes creating it at once agree on one token: each writes a private file and
/// links it into place, and the one that finds the name taken reads the winner's token.
pub fn load_or_create_token(data_dir: &Path) -> std::io::Result<String> {
    create_private_dir(data_dir)?;
    let path = data_dir.join(TOKEN_FILE);
    if let Some(token) = read_token(&path)? {
        return Ok(token);
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let draft = data_dir.join(format!("{TOKEN_FILE}.{}.tmp", std::process::id()));
    write_private(&draft, token.as_bytes())?;
    let linked = std::fs::hard_link(&draft, &path);
    std::fs::remove_file(&draft)?;
    match linked {
        Ok(()) => Ok(token),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => read_token(&path)?
            .ok_or_else(|| {
                std::io::Error::other(format!("token file {} is empty", path.display()))
            }),
        Err(err) => Err(err),
    }
}

fn read_token(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Reads [`OWNER_FILE`]; returns `None` when it is missing or unreadable.
pub fn read_owner(data_dir: &Path) -> Option<OwnerRecord> {
    let text = std::fs::read_to_string(data_dir.join(OWNER_FILE)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes [`OWNER_FILE`] atomically (a temporary file renamed into place), replacing any
/// record a killed owner left behind.
pub fn write_owner(data_dir: &Path, record: &OwnerRecord) -> std::io::Result<()> {
    let draft = data_dir.join(format!("{OWNER_FILE}.{}.tmp", record.pid));
    write_private(&draft, serde_json::to_string(record)?.as_bytes())?;
    std::fs::rename(&draft, data_dir.join(OWNER_FILE))
}

/// Removes [`OWNER_FILE`] if it still names this process.
pub fn remove_owner(data_dir: &Path) {
    if read_owner(data_dir).is_some_and(|record| record.pid == std::process::id()) {
        if let Err(err) = std::fs::remove_file(data_dir.join(OWNER_FILE)) {
            warn!(error = %err, "cannot remove the owner file");
        }
    }
}

/// Returns whether opening the database failed because another process has it open.
pub fn is_held_elsewhere(err: &StorageError) -> bool {
    matches!(
        err,
        StorageError::Open {
            source: redb::DatabaseError::DatabaseAlreadyOpen,
            ..
        }
    )
}

/// This process's ownership of a data folder: the open service and its forwarding endpoint.
pub struct Ownership {
    pub service: Service,
    data_dir: PathBuf,
    stop: CancellationToken,
    endpoint: JoinHandle<anyhow::Result<()>>,
}

impl Ownership {
    /// Tries to become the owner of the data folder. Returns `None` when another process
    /// owns it.
    pub async fn acquire(config: &Config, token: &str) -> anyhow::Result<Option<Ownership>> {
        let service = match Service::open(config.clone()) {
            Ok(service) => service,
            Err(err) if is_held_elsewhere(&err) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        let options = HttpOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: Some(token.to_owned()),
            require_token: true,
            max_body_bytes: config.max_body_bytes,
            max_sessions: config.max_sessions,
        };
        let endpoint = HttpEndpoint::bind(service.clone(), options).await?;
        let addr = endpoint.local_addr()?;
        let stop = CancellationToken::new();
        let serving = endpoint.serve({
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
        let endpoint = tokio::spawn(serving);
        let record = OwnerRecord {
            pid: std::process::id(),
            url: format!("http://{addr}/mcp"),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        write_owner(&config.data_dir, &record)?;
        info!(url = %record.url, data_dir = %config.data_dir.display(), "this process owns the data folder and accepts forwarded sessions");
        Ok(Some(Ownership {
            service,
            data_dir: config.data_dir.clone(),
            stop,
            endpoint,
        }))
    }

    /// Stops the forwarding endpoint gracefully and removes the owner record.
    pub async fn release(self) {
        remove_owner(&self.data_dir);
        self.stop.cancel();
        match self.endpoint.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => warn!(error = %err, "forwarding endpoint failed while stopping"),
            Err(err) => warn!(error = %err, "forwarding endpoint task failed"),
        }
        info!(data_dir = %self.data_dir.display(), "released the data folder");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_and_private() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_create_token(dir.path()).expect("create");
        let second = load_or_create_token(dir.path()).expect("read");
        assert_eq!(first, second);
        assert_eq!(first.len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o077,
                0,
                "token file mode {mode:o} lets others read it"
            );
        }
    }

    #[test]
    fn owner_record_round_trips() {
        let dir = tempfile::tempdir().expect("temp dir");
        let record = OwnerRecord {
            pid: std::process::id(),
            url: "http://127.0.0.1:1/mcp".into(),
            version: "0".into(),
        };
        write_owner(dir.path(), &record).expect("write");
        assert_eq!(read_owner(dir.path()).expect("read").url, record.url);
        remove_owner(dir.path());
        assert!(read_owner(dir.path()).is_none());
    }
}
