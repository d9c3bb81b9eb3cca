//! Offline maintenance: the integrity and invariant check, and compaction.
//!
//! Both need the database file to themselves, so they run only while no brainstorm process
//! has it open.

use std::collections::BTreeSet;
use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable};

use super::records::{ManifestRecord, MemberRecord, ResourceKind};
use super::schema::CURRENT_VERSION;
use super::tables::*;
use super::{StorageError, agent_key, decode};

fn open(path: &Path) -> Result<Database, StorageError> {
    Database::open(path).map_err(|source| StorageError::Open {
        path: path.into(),
        source,
    })
}

/// Runs redb's integrity check, then checks the schema's invariants; returns one line per
/// violation, with the keys involved. An empty list means the database is sound.
pub fn check(path: &Path) -> Result<Vec<String>, StorageError> {
    let mut db = open(path)?;
    let mut violations = Vec::new();
    if !db
        .check_integrity()
        .map_err(|err| StorageError::Database(err.into()))?
    {
        violations
            .push("redb integrity check: the file was damaged and has been repaired".to_owned());
    }
    let tx = db.begin_read()?;

    let version = tx
        .open_table(META)?
        .get(SCHEMA_VERSION_KEY)?
        .and_then(|bytes| <[u8; 4]>::try_from(bytes.value()).ok())
        .map(u32::from_le_bytes);
    match version {
        Some(version) if (1..=CURRENT_VERSION).contains(&version) => {}
        other => violations.push(format!(
            "schema version {other:?} is not one this binary knows (1 to {CURRENT_VERSION})"
        )),
    }

    let mut projects = BTreeSet::new();
    for entry in tx.open_table(PROJECTS)?.iter()? {
        projects.insert(entry?.0.value().to_owned());
    }
    let mut members = BTreeSet::new();
    for entry in tx.open_table(MEMBERS)?.iter()? {
        let (key, value) = entry?;
        let (project_id, agent) = key.value();
        if !projects.contains(project_id) {
            violations.push(format!(
                "member ({project_id}, {agent}) belongs to no project"
            ));
        }
        match decode::<MemberRecord>("members", value.value()) {
            Ok(member) if agent_key(&member.agent_name) != agent => {
                violations.push(format!(
                    "member ({project_id}, {agent}) is stored under the wrong key for {:?}",
                    member.agent_name
                ));
            }
            Ok(_) => {}
            Err(err) => violations.push(format!(
                "member ({project_id}, {agent}) cannot be decoded: {err}"
            )),
        }
        members.insert((project_id.to_owned(), agent.to_owned()));
    }
    for table in [INBOX, ARCHIVE] {
        let name = redb::TableHandle::name(&table).to_owned();
        for entry in tx.open_table(table)?.iter()? {
            let (key, _) = entry?;
            let (project_id, agent, seq) = key.value();
            // Archived messages of an agent that left are kept, so only the project must exist.
            let known = if name == "inbox" {
                members.contains(&(project_id.to_owned(), agent.to_owned()))
            } else {
                projects.contains(project_id)
            };
            if !known {
                violations.push(format!(
                    "{name} message ({project_id}, {agent}, {seq}) belongs to no {}",
                    if name == "inbox" { "member" } else { "project" }
                ));
            }
        }
    }
    let contents = tx.open_table(CONTENTS)?;
    for entry in tx.open_table(MANIFESTS)?.iter()? {
        let (key, value) = entry?;
        let (project_id, resource_id) = key.value();
        if !projects.contains(project_id) {
            violations.push(format!(
                "resource ({project_id}, {resource_id}) belongs to no project"
            ));
        }
        let manifest: ManifestRecord = match decode("manifests", value.value()) {
            Ok(manifest) => manifest,
            Err(err) => {
                violations.push(format!(
                    "resource ({project_id}, {resource_id}) cannot be decoded: {err}"
                ));
                continue;
            }
        };
        let etag_ok = manifest.etag.len() == 16
            && manifest
                .etag
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
        if !etag_ok {
            violations.push(format!(
                "resource ({project_id}, {resource_id}) has a malformed etag {:?}",
                manifest.etag
            ));
        }
        let has_content = contents.get((project_id, resource_id))?.is_some();
        if manifest.kind == ResourceKind::Document && !has_content && manifest.source_path.is_none()
        {
            violations.push(format!(
                "document ({project_id}, {resource_id}) has neither content nor a source path"
            ));
        }
    }
    Ok(violations)
}

/// Compacts the database file; returns its size in bytes before and after.
pub fn compact(path: &Path) -> Result<(u64, u64), StorageError> {
    let size = || std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    {
        let mut db = open(path)?;
        // Each pass may free pages that let the next one shrink the file further.
        for _ in 0..8 {
            let shrank = db
                .compact(redb::CompactionMode::Maximum)
                .map_err(|err| StorageError::Backup(format!("compaction failed: {err}")))?;
            if !shrank {
                break;
            }
        }
    }
    Ok((before, size()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Store, encode};

    #[test]
    fn check_reports_each_planted_violation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.redb");
        drop(Store::open(&path).expect("create"));
        assert_eq!(
            check(&path).expect("check"),
            Vec::<String>::new(),
            "a new database is sound"
        );

        {
            let db = Database::open(&path).expect("open");
            let tx = db.begin_write().expect("write");
            {
                let member = MemberRecord {
                    project_id: "ghost".into(),
                    agent_name: "Bob".into(),
                    agent_id: "id".into(),
                    client_id: None,
                    capabilities: vec![],
                    labels: Default::default(),
                    joined_at_ms: 0,
                    last_seen_ms: 0,
                    online: true,
                };
                let mut members = tx.open_table(MEMBERS).expect("members");
                members
                    .insert(
                        ("ghost", "bob"),
                        encode(&member).expect("encode").as_slice(),
                    )
                    .expect("insert");
                let mut inbox = tx.open_table(INBOX).expect("inbox");
                inbox
                    .insert(("ghost", "nobody", 7u64), [1u8].as_slice())
                    .expect("insert");
            }
            tx.commit().expect("commit");
        }

        let violations = check(&path).expect("check");

        assert!(
            violations
                .iter()
                .any(|v| v.contains("member (ghost, bob) belongs to no project")),
            "{violations:?}"
        );
        assert!(
            violations
                .iter()
                .any(|v| v.contains("inbox message (ghost, nobody, 7)")),
            "{violations:?}"
        );
    }

    #[test]
    fn compact_reports_sizes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.redb");
        drop(Store::open(&path).expect("create"));
        let (before, after) = compact(&path).expect("compact");
        assert!(before > 0);
        assert!(after <= before, "{after} > {before}");
    }
}

/// Replaces the database at `database` with the backup at `source`, after checking the
/// backup. The replaced file is kept beside it under a timestamped name, which is returned.
///
/// Fails without changing anything when the backup fails its check or another process has
/// the database open.
pub fn restore(source: &Path, database: &Path) -> Result<Option<std::path::PathBuf>, StorageError> {
    let violations = check(source)?;
    if !violations.is_empty() {
        return Err(StorageError::Backup(format!(
            "{} fails its check ({}); nothing was restored",
            source.display(),
            violations.join("; ")
        )));
    }

    // Opening the current database takes its lock, so no process can own it meanwhile.
    let current = if database.exists() {
        Some(open(database)?)
    } else {
        None
    };
    let folder = database.parent().unwrap_or(Path::new("."));
    let draft = folder.join(format!(".restore.{}.partial", std::process::id()));
    std::fs::copy(source, &draft)
        .map_err(|err| StorageError::Backup(format!("cannot copy {}: {err}", source.display())))?;
    std::fs::File::open(&draft)
        .and_then(|file| file.sync_all())
        .map_err(|err| StorageError::Backup(format!("cannot sync the restored copy: {err}")))?;
    super::restrict_to_owner(&draft);

    let kept = match current {
        Some(db) => {
            drop(db);
            let stamp = crate::time::format_ms(crate::time::now_ms()).replace(':', "-");
            let kept = folder.join(format!("brainstorm.redb.replaced-{stamp}"));
            std::fs::rename(database, &kept).map_err(|err| {
                StorageError::Backup(format!("cannot keep the replaced file: {err}"))
            })?;
            Some(kept)
        }
        None => None,
    };
    std::fs::rename(&draft, database).map_err(|err| {
        StorageError::Backup(format!("cannot put the restored file in place: {err}"))
    })?;
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(kept)
}
