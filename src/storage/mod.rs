//! Storage on one redb file: tables, record encoding, schema migrations and typed transactions.
//!
//! Every service call runs in one transaction: reads in a [`ReadTxn`], each mutation in exactly
//! one [`WriteTxn`], which group commit may share with concurrent calls, and which commits
//! durably before the call returns.

pub mod backup;
mod codec;
mod commit;
mod error;
pub mod maintenance;
pub mod records;
pub mod schema;
pub mod tables;
mod txn;

use std::path::{Path, PathBuf};

use std::sync::Arc;

use redb::{Database, ReadableDatabase};

use commit::Committer;
use tracing::info;

pub use codec::{FORMAT_VERSION, decode, encode};
pub use commit::CommitOptions;
pub use error::StorageError;
pub use txn::{ReadTxn, WriteTxn, agent_key};

/// The database: one redb file holding every project, member, message and resource.
pub struct Store {
    db: Arc<Database>,
    committer: Committer,
    path: PathBuf,
}

impl Store {
    /// Opens or creates the database at `path` and applies pending schema upgrades.
    ///
    /// Fails with [`StorageError::SchemaTooNew`] when the file was written by a newer binary,
    /// and with [`StorageError::Open`] when another process has the file open.
    pub fn open(path: &Path) -> Result<Store, StorageError> {
        Store::open_with(path, CommitOptions::default())
    }

    /// Opens the database like [`Store::open`], with group commit set by `options`.
    pub fn open_with(path: &Path, options: CommitOptions) -> Result<Store, StorageError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| StorageError::CreateFolder {
                path: parent.into(),
                source,
            })?;
        }
        let db = Database::create(path).map_err(|source| StorageError::Open {
            path: path.into(),
            source,
        })?;
        restrict_to_owner(path);
        let outcome = schema::migrate(&db)?;
        info!(path = %path.display(), from = outcome.from, to = outcome.to, "database opened");
        let db = Arc::new(db);
        let committer = Committer::start(Arc::clone(&db), options);
        Ok(Store {
            db,
            committer,
            path: path.into(),
        })
    }

    /// Returns the path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on a read snapshot. Everything it reads comes from one committed state.
    pub fn read<T, E>(&self, work: impl FnOnce(&ReadTxn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        let tx = self.db.begin_read().map_err(StorageError::from)?;
        work(&ReadTxn::new(tx))
    }

    /// Runs `work` in a write transaction shared with concurrent calls (group commit) and
    /// returns its result once that transaction is durably committed.
    ///
    /// When `work` fails, nothing it wrote is kept. `work` may run more than once (when
    /// another call of its batch fails after writing), so it must not act outside `tx`.
    pub fn write<T, E, F>(&self, work: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StorageError> + Send + 'static,
        F: Fn(&WriteTxn) -> Result<T, E> + Send + 'static,
    {
        self.committer.submit(work)
    }
}

/// Makes the database file readable and writable by its owner only, because it contains
/// every message and resource.
pub(crate) fn restrict_to_owner(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o600);
        if let Err(err) = std::fs::set_permissions(path, private) {
            let path = path.display();
            tracing::warn!(%path, error = %err, "cannot restrict the database file to its owner");
        }
    }
}
