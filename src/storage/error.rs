//! Storage errors. None of them is a rule violation: the service reports them as internal.

use std::path::PathBuf;

/// A failure of the database or of a stored record.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot create data folder {path}: {source}")]
    CreateFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}{}", open_advice(.source))]
    Open {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error(
        "database schema version {found} is newer than this binary supports ({supported}); \
         upgrade brainstorm to open it"
    )]
    SchemaTooNew { found: u32, supported: u32 },
    #[error("record in table {table} has unknown format version {version}")]
    UnknownFormat { table: &'static str, version: u8 },
    #[error("record in table {table} is empty")]
    EmptyRecord { table: &'static str },
    #[error("cannot decode record in table {table}: {source}")]
    Decode {
        table: &'static str,
        source: bincode::error::DecodeError,
    },
    #[error("cannot encode record: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// A backup, restore or compaction failed; the text names the operation and the cause.
    #[error("{0}")]
    Maintenance(String),
    #[error("write batch failed: {0}")]
    Batch(String),
    #[error("database error: {0}")]
    Database(#[from] redb::Error),
}

/// Returns what to do about a failed open, for the causes that have a remedy.
fn open_advice(source: &redb::DatabaseError) -> &'static str {
    match source {
        redb::DatabaseError::DatabaseAlreadyOpen => {
            "; another brainstorm process uses this data folder, so stop it or pass a different \
             --data-dir"
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => {
            "; the file is damaged or is not a brainstorm database"
        }
        _ => "",
    }
}

macro_rules! from_redb {
    ($($kind:ty),*) => {$(
        impl From<$kind> for StorageError {
            fn from(err: $kind) -> Self {
                StorageError::Database(err.into())
            }
        }
    )*};
}

from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);
