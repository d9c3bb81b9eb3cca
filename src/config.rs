//! Service settings. Command-line flags override the environment, which overrides the defaults.

use std::path::PathBuf;
use std::time::Duration;

/// Name of the database file inside the data folder.
pub const DATABASE_FILE: &str = "brainstorm.redb";

/// Settings the service runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Folder that contains the database file.
    pub data_dir: PathBuf,
    /// Largest resource content accepted, in bytes.
    pub max_payload_size: usize,
    /// How long an unread message is kept before it expires.
    pub message_ttl: Duration,
    /// Long-poll duration when a call gives `wait` without `timeout_seconds`.
    pub default_wait: Duration,
    /// Maximum long-poll duration a call may request.
    pub max_wait: Duration,
    /// Interval between progress notifications during a long-poll.
    pub progress_interval: Duration,
    /// Concurrent long-polls allowed per waited-on object.
    pub max_waiters: usize,
    /// Maximum unread messages in one agent's inbox in a project.
    pub max_inbox: usize,
    /// Concurrent long-polls allowed in the whole process.
    pub max_long_polls: usize,
    /// Largest HTTP request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most concurrent MCP sessions over HTTP.
    pub max_sessions: usize,
    /// Versions of each document kept in its history.
    pub history_limit: u64,
    /// Group commit: most calls per write transaction, and the commit durability.
    pub commit: crate::storage::CommitOptions,
    /// Client id that replaces the one derived from the working directory (stdio only).
    pub client_id_override: Option<String>,
}

impl Config {
    /// Default resource size limit in bytes.
    pub const DEFAULT_MAX_PAYLOAD_SIZE: usize = 512_000;
    /// Default message time-to-live in seconds.
    pub const DEFAULT_MESSAGE_TTL_SECS: u64 = 86_400;

    /// Creates the default settings for a data folder.
    pub fn new(data_dir: PathBuf) -> Self {
        Config {
            data_dir,
            max_payload_size: Self::DEFAULT_MAX_PAYLOAD_SIZE,
            message_ttl: Duration::from_secs(Self::DEFAULT_MESSAGE_TTL_SECS),
            default_wait: Duration::from_secs(50),
            max_wait: Duration::from_secs(3600),
            progress_interval: Duration::from_secs(10),
            max_waiters: 100,
            max_inbox: 10_000,
            max_long_polls: 1000,
            max_body_bytes: 4 * 1024 * 1024,
            max_sessions: 1000,
            history_limit: 20,
            commit: crate::storage::CommitOptions::default(),
            client_id_override: None,
        }
    }

    /// Returns the path of the database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join(DATABASE_FILE)
    }

    /// Returns the default data folder: `~/.brainstorm`.
    pub fn default_data_dir() -> PathBuf {
        home_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".brainstorm")
    }
}

/// Returns the user's home directory from `HOME`.
pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
}
