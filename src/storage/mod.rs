//! Storage on one redb file: tables, record encoding, schema migrations and typed transactions.
//!
//! Every service call runs in one transaction: reads in a [`ReadTxn`], each mutation in exactly
//! one [`WriteTxn`] that commits durably before the call returns.

mod codec;
mod error;
pub mod records;
pub mod schema;
pub mod tables;
mod txn;

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase};
use tracing::info;

pub use codec::{FORMAT_VERSION, decode, encode};
pub use error::StorageError;
pub use txn::{ReadTxn, WriteTxn, agent_key};

/// The database: one redb file holding every project, member, message and resource.
pub struct Store {
    db: Database,
    path: PathBuf,
}

impl Store {
    /// Opens or creates the database at `path` and applies pending schema upgrades.
    ///
    /// Fails with [`StorageError::SchemaTooNew`] when the file was written by a newer binary,
    /// and with [`StorageError::Open`] when another process has the file open.
    pub fn open(path: &Path) -> Result<Store, StorageError> {
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
        Ok(Store {
            db,
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

    /// Runs `work` in one write transaction and commits it durably when `work` succeeds.
    ///
    /// When `work` fails, the transaction is aborted and nothing it wrote is kept.
    pub fn write<T, E>(&self, work: impl FnOnce(&WriteTxn) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StorageError>,
    {
        let mut tx = self.db.begin_write().map_err(StorageError::from)?;
        tx.set_durability(Durability::Immediate)
            .map_err(StorageError::from)?;
        let txn = WriteTxn::new(tx);
        let value = work(&txn)?;
        txn.commit()?;
        Ok(value)
    }
}

/// Makes the database file readable and writable by its owner only: it holds every message
/// and resource.
fn restrict_to_owner(path: &Path) {
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
