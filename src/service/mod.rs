//! The rules of the product, independent of MCP.
//!
//! Each operation validates its arguments before touching storage, then runs in one
//! transaction: reads in a read snapshot, each mutation in exactly one write transaction.
//! Operations are blocking (a durable commit waits for the disk); async callers run them on a
//! blocking thread. Long-polls are the exception: they are async and hold no transaction while
//! they wait.

pub mod arguments;
mod audit;
pub mod etag;
pub mod identity;
mod logs;
mod longpoll;
mod members;
mod messages;
mod overview;
mod projects;
pub mod requests;
mod resources;
mod source_path;
mod updates;
pub mod validate;
pub mod views;
pub mod waiters;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::error::{ErrorCode, ServiceError, ServiceResult};
use crate::storage::records::{MemberRecord, ProjectRecord};
use crate::storage::{ReadTxn, StorageError, Store, WriteTxn};

pub use audit::AuditContext;
pub use identity::Identity;
pub use longpoll::{Progress, WaitControl};
pub(crate) use members::check_tags;
pub(crate) use source_path::read_source;
pub use waiters::{WaitKey, Waiters};

/// The coordination service: one database, its settings, and the long-poll registry.
#[derive(Clone)]
pub struct Service {
    store: Arc<Store>,
    config: Arc<Config>,
    waiters: Arc<Waiters>,
    lifecycle: Arc<Lifecycle>,
    /// The call this handle acts for, when its writes are audited.
    audit: Option<Arc<AuditContext>>,
}

/// Shutdown state shared by every clone of a service.
#[derive(Default)]
struct Lifecycle {
    /// Fires when the service begins to shut down; long-polls then return at once.
    stopping: CancellationToken,
    /// Number of calls in progress.
    calls: AtomicUsize,
    /// Notified when `calls` drops to zero.
    idle: Notify,
}

/// A call in progress; dropping it marks the call finished.
pub struct CallGuard {
    lifecycle: Arc<Lifecycle>,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if self.lifecycle.calls.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.lifecycle.idle.notify_waiters();
        }
    }
}

impl Service {
    /// Opens the database of `config` and creates the service on it.
    pub fn open(config: Config) -> Result<Service, StorageError> {
        let store = Store::open_with(&config.database_path(), config.commit)?;
        Ok(Service::with_store(Arc::new(store), config))
    }

    /// Creates the service on an open database.
    pub fn with_store(store: Arc<Store>, config: Config) -> Service {
        let waiters = Waiters::new(config.max_waiters, config.max_long_polls);
        Service {
            store,
            config: Arc::new(config),
            waiters,
            lifecycle: Arc::default(),
            audit: None,
        }
    }

    /// Returns the settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Returns the database.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Runs a blocking operation on a blocking thread, so that async callers are not stalled
    /// by commits.
    pub async fn blocking<T, F>(&self, operation: F) -> ServiceResult<T>
    where
        F: FnOnce(&Service) -> ServiceResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let service = self.clone();
        tokio::task::spawn_blocking(move || operation(&service))
            .await
            .map_err(ServiceError::internal)?
    }

    /// Counts a call as in progress until the returned guard is dropped.
    pub fn track_call(&self) -> CallGuard {
        self.lifecycle.calls.fetch_add(1, Ordering::AcqRel);
        CallGuard {
            lifecycle: Arc::clone(&self.lifecycle),
        }
    }

    /// Begins shutdown: every long-poll returns its normal timed-out result at once, and new
    /// ones return immediately.
    pub fn begin_shutdown(&self) {
        self.lifecycle.stopping.cancel();
    }

    /// Returns whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.lifecycle.stopping.is_cancelled()
    }

    /// Waits until no call is in progress.
    pub async fn drained(&self) {
        loop {
            let idle = self.lifecycle.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.lifecycle.calls.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Returns the long-poll duration for a call's `timeout_seconds`, capped at the maximum.
    pub fn wait_timeout(&self, timeout_seconds: Option<u64>) -> Duration {
        match timeout_seconds {
            Some(seconds) => Duration::from_secs(seconds).min(self.config.max_wait),
            None => self.config.default_wait,
        }
    }

    fn read<T>(&self, work: impl FnOnce(&ReadTxn) -> ServiceResult<T>) -> ServiceResult<T> {
        self.store.read(work)
    }

    /// Runs `work` in the next group-committed write transaction, with the audit record of
    /// an audited handle. `work` may run more than once, so it only acts through `tx`.
    fn write<T, F>(&self, work: F) -> ServiceResult<T>
    where
        T: Send + 'static,
        F: Fn(&WriteTxn) -> ServiceResult<T> + Send + 'static,
    {
        let audit = self.audit.clone();
        self.store.write(move |tx| {
            let value = work(tx)?;
            if let Some(context) = &audit {
                tx.push_audit(&mut context.record("ok"))?;
            }
            Ok(value)
        })
    }
}

/// Returns the project or fails with `PROJECT_NOT_FOUND`.
fn require_project(
    project: Option<ProjectRecord>,
    project_id: &str,
) -> ServiceResult<ProjectRecord> {
    project.ok_or_else(|| {
        ServiceError::new(
            ErrorCode::ProjectNotFound,
            format!("project {project_id:?} does not exist; list_projects shows the existing ones"),
        )
        .with("project_id", project_id)
    })
}

/// Returns the member or fails with `code` (`MEMBER_NOT_FOUND`, `SENDER_NOT_FOUND`, ...).
fn require_member(
    member: Option<MemberRecord>,
    code: ErrorCode,
    project_id: &str,
    agent_name: &str,
) -> ServiceResult<MemberRecord> {
    member.ok_or_else(|| {
        let advice = match code {
            ErrorCode::RecipientNotFound | ErrorCode::ToAgentNotFound => {
                "check the name with get_project_info"
            }
            _ => "join_project first, or check the name with get_project_info",
        };
        ServiceError::new(
            code,
            format!("agent {agent_name:?} is not a member of project {project_id:?}; {advice}"),
        )
        .with("project_id", project_id)
        .with("agent_name", agent_name)
    })
}

/// Reads the project and the acting member in one snapshot; fails when either is missing.
fn project_and_member(
    tx: &impl MemberLookup,
    project_id: &str,
    agent_name: &str,
) -> ServiceResult<(ProjectRecord, MemberRecord)> {
    let project = require_project(tx.lookup_project(project_id)?, project_id)?;
    let member = require_member(
        tx.lookup_member(project_id, agent_name)?,
        ErrorCode::MemberNotFound,
        project_id,
        agent_name,
    )?;
    Ok((project, member))
}

/// Lookups shared by read and write transactions.
trait MemberLookup {
    fn lookup_project(&self, project_id: &str) -> Result<Option<ProjectRecord>, StorageError>;
    fn lookup_member(
        &self,
        project_id: &str,
        agent: &str,
    ) -> Result<Option<MemberRecord>, StorageError>;
}

impl MemberLookup for ReadTxn {
    fn lookup_project(&self, project_id: &str) -> Result<Option<ProjectRecord>, StorageError> {
        self.project(project_id)
    }
    fn lookup_member(
        &self,
        project_id: &str,
        agent: &str,
    ) -> Result<Option<MemberRecord>, StorageError> {
        self.member(project_id, agent)
    }
}

impl MemberLookup for WriteTxn {
    fn lookup_project(&self, project_id: &str) -> Result<Option<ProjectRecord>, StorageError> {
        self.project(project_id)
    }
    fn lookup_member(
        &self,
        project_id: &str,
        agent: &str,
    ) -> Result<Option<MemberRecord>, StorageError> {
        self.member(project_id, agent)
    }
}

/// Returns whether two agent names name the same agent.
fn same_agent(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// Clamps a page request to the allowed range.
fn page(offset: Option<u64>, limit: Option<u64>) -> (usize, usize) {
    const DEFAULT_LIMIT: u64 = 100;
    const MAX_LIMIT: u64 = 1000;
    let offset = usize::try_from(offset.unwrap_or(0)).unwrap_or(usize::MAX);
    let limit = limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT) as usize;
    (offset, limit)
}
