//! Online backup (a copy of every table as of one committed state, in a new redb file) and
//! table statistics.
//!
//! The copy reads one snapshot, so writers keep committing while it runs and the backup
//! contains exactly the state of the commit the snapshot started from. It is written under a
//! temporary name, synced, and renamed into place, so a crash never leaves a partial file
//! under the destination name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableHandle};
use serde_json::Value;

use super::tables::*;
use super::{StorageError, Store};

/// Summary of a written backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    /// Rows copied per table.
    pub rows: BTreeMap<&'static str, u64>,
    pub millis: u128,
}

fn io_error(path: &Path, action: &str, err: std::io::Error) -> StorageError {
    StorageError::Maintenance(format!("cannot {action} {}: {err}", path.display()))
}

macro_rules! copy_table {
    ($snapshot:expr, $target:expr, $rows:expr, $definition:expr) => {{
        let source = $snapshot.open_table($definition)?;
        let mut destination = $target.open_table($definition)?;
        let mut count = 0u64;
        for entry in source.iter()? {
            let (key, value) = entry?;
            destination.insert(key.value(), value.value())?;
            count += 1;
        }
        $rows.insert($definition.name(), count);
    }};
}

impl Store {
    /// Writes a consistent copy of the database to `destination`, which must not exist.
    pub fn backup(&self, destination: &Path) -> Result<BackupReport, StorageError> {
        let started = Instant::now();
        if destination.exists() {
            return Err(StorageError::Maintenance(format!(
                "{} already exists; choose a new file name or remove it first",
                destination.display()
            )));
        }
        let folder = destination
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !folder.is_dir() {
            return Err(StorageError::Maintenance(format!(
                "cannot write {}: the folder {} does not exist; create it first",
                destination.display(),
                folder.display()
            )));
        }
        let name = destination
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let draft = folder.join(format!(".{name}.{}.partial", std::process::id()));
        let _ = std::fs::remove_file(&draft);

        let rows = match self.copy_into(&draft) {
            Ok(rows) => rows,
            Err(err) => {
                let _ = std::fs::remove_file(&draft);
                return Err(err);
            }
        };
        std::fs::rename(&draft, destination)
            .map_err(|err| io_error(destination, "rename the backup to", err))?;
        // The rename is durable only once the folder itself is synced.
        if let Ok(dir) = std::fs::File::open(folder) {
            let _ = dir.sync_all();
        }
        let bytes = std::fs::metadata(destination).map(|m| m.len()).unwrap_or(0);
        Ok(BackupReport {
            path: destination.to_path_buf(),
            bytes,
            rows,
            millis: started.elapsed().as_millis(),
        })
    }

    fn copy_into(&self, draft: &Path) -> Result<BTreeMap<&'static str, u64>, StorageError> {
        let snapshot = self.db.begin_read()?;
        let target = Database::create(draft).map_err(|source| StorageError::Open {
            path: draft.into(),
            source,
        })?;
        // The backup contains every message and resource, like the database itself.
        super::restrict_to_owner(draft);
        let mut tx = target.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        let mut rows = BTreeMap::new();
        copy_table!(snapshot, tx, rows, META);
        copy_table!(snapshot, tx, rows, PROJECTS);
        copy_table!(snapshot, tx, rows, MEMBERS);
        copy_table!(snapshot, tx, rows, INBOX);
        copy_table!(snapshot, tx, rows, ARCHIVE);
        copy_table!(snapshot, tx, rows, MANIFESTS);
        copy_table!(snapshot, tx, rows, CONTENTS);
        copy_table!(snapshot, tx, rows, CLIENTS);
        copy_table!(snapshot, tx, rows, MEMBERSHIPS);
        copy_table!(snapshot, tx, rows, HISTORY);
        copy_table!(snapshot, tx, rows, LOG_ENTRIES);
        copy_table!(snapshot, tx, rows, AUDIT);
        tx.commit()?;
        Ok(rows)
    }
}

/// Runs redb's integrity check on a copy of a backup file; returns whether it was intact.
///
/// The check runs on a copy beside the backup, because opening a redb file can write to it,
/// and a backup must stay exactly as it was written.
pub fn verify(path: &Path) -> Result<bool, StorageError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = path.parent().unwrap_or(Path::new("."));
    let copy = folder.join(format!(".{name}.{}.verify", std::process::id()));
    std::fs::copy(path, &copy).map_err(|err| io_error(path, "copy", err))?;
    super::restrict_to_owner(&copy);
    let intact = Database::open(&copy)
        .map_err(|source| StorageError::Open {
            path: path.into(),
            source,
        })
        .and_then(|mut db| {
            db.check_integrity()
                .map_err(|err| StorageError::Database(err.into()))
        });
    let _ = std::fs::remove_file(&copy);
    intact
}

macro_rules! count_rows {
    ($snapshot:expr, $rows:expr, $definition:expr) => {{
        let table = $snapshot.open_table($definition)?;
        $rows.insert(
            $definition.name(),
            redb::ReadableTableMetadata::len(&table)?,
        );
    }};
}

impl Store {
    /// Returns the schema version, the file size and the rows per table, from one snapshot.
    pub fn stats(&self) -> Result<Value, StorageError> {
        let snapshot = self.db.begin_read()?;
        let mut rows: BTreeMap<&'static str, u64> = BTreeMap::new();
        count_rows!(snapshot, rows, META);
        count_rows!(snapshot, rows, PROJECTS);
        count_rows!(snapshot, rows, MEMBERS);
        count_rows!(snapshot, rows, INBOX);
        count_rows!(snapshot, rows, ARCHIVE);
        count_rows!(snapshot, rows, MANIFESTS);
        count_rows!(snapshot, rows, CONTENTS);
        count_rows!(snapshot, rows, CLIENTS);
        count_rows!(snapshot, rows, MEMBERSHIPS);
        count_rows!(snapshot, rows, HISTORY);
        count_rows!(snapshot, rows, LOG_ENTRIES);
        count_rows!(snapshot, rows, AUDIT);
        let mut resources_per_project: BTreeMap<String, u64> = BTreeMap::new();
        for entry in snapshot.open_table(MANIFESTS)?.iter()? {
            let (key, _) = entry?;
            *resources_per_project
                .entry(key.value().0.to_owned())
                .or_default() += 1;
        }
        let mut largest: Vec<(String, u64)> = resources_per_project.into_iter().collect();
        largest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        largest.truncate(5);
        let version = snapshot
            .open_table(META)?
            .get(SCHEMA_VERSION_KEY)?
            .and_then(|bytes| <[u8; 4]>::try_from(bytes.value()).ok())
            .map(u32::from_le_bytes);
        let bytes = std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0);
        Ok(serde_json::json!({
            "path": self.path,
            "schema_version": version,
            "file_bytes": bytes,
            "rows": rows,
            "largest_projects": largest
                .iter()
                .map(|(project, count)| serde_json::json!({"project_id": project, "resources": count}))
                .collect::<Vec<_>>(),
        }))
    }
}
