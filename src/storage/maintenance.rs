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
                .map_err(|err| StorageError::Maintenance(format!("compaction failed: {err}")))?;
            if !shrank {
                break;
            }
        }
    }
    Ok((before, size()))
}

/// Replaces the database at `database` with the backup at `source`, after checking the
/// backup. The replaced file is kept beside it under a timestamped name, which is returned.
///
/// The check runs on a copy, because opening a redb file can write to it and the backup
/// itself must stay as it was. Fails without changing anything when the copy fails its check
/// or another process has the database open.
pub fn restore(source: &Path, database: &Path) -> Result<Option<std::path::PathBuf>, StorageError> {
    if !source.is_file() {
        return Err(StorageError::Maintenance(format!(
            "backup {} does not exist or is not a file",
            source.display()
        )));
    }
    let folder = database.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(|source| StorageError::CreateFolder {
        path: folder.into(),
        source,
    })?;
    let draft = folder.join(format!(".restore.{}.partial", std::process::id()));
    let discard = |err: StorageError| {
        let _ = std::fs::remove_file(&draft);
        err
    };
    std::fs::copy(source, &draft).map_err(|err| {
        StorageError::Maintenance(format!("cannot copy {}: {err}", source.display()))
    })?;
    super::restrict_to_owner(&draft);
    let violations = check(&draft).map_err(|err| match err {
        StorageError::Open { source: cause, .. } => StorageError::Maintenance(format!(
            "{} cannot be opened as a database ({cause}); nothing was restored",
            source.display()
        )),
        other => other,
    });
    let violations = violations.map_err(discard)?;
    if !violations.is_empty() {
        return Err(discard(StorageError::Maintenance(format!(
            "{} fails its check ({}); nothing was restored",
            source.display(),
            violations.join("; ")
        ))));
    }
    std::fs::File::open(&draft)
        .and_then(|file| file.sync_all())
        .map_err(|err| {
            discard(StorageError::Maintenance(format!(
                "cannot sync the restored copy: {err}"
            )))
        })?;

    // Opening the current database takes its lock, so no process can own it meanwhile.
    let current = if database.exists() {
        Some(open(database).map_err(discard)?)
    } else {
        None
    };
    let kept = match current {
        Some(db) => {
            drop(db);
            let stamp = crate::time::format_ms(crate::time::now_ms()).replace(':', "-");
            let kept = folder.join(format!("brainstorm.redb.replaced-{stamp}"));
            std::fs::rename(database, &kept).map_err(|err| {
                discard(StorageError::Maintenance(format!(
                    "cannot keep the replaced file: {err}"
                )))
            })?;
            Some(kept)
        }
        None => None,
    };
    std::fs::rename(&draft, database).map_err(|err| {
        StorageError::Maintenance(format!("cannot put the restored file in place: {err}"))
    })?;
    if let Ok(dir) = std::fs::File::open(folder) {
        let _ = dir.sync_all();
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Store, encode};
    use redb::TableDefinition;

    use crate::storage::records::{MessageRecord, ProjectRecord};

    fn project() -> ProjectRecord {
        ProjectRecord {
            project_id: "p".into(),
            name: "P".into(),
            description: None,
            context_json: None,
            created_at_ms: 0,
            created_by: Some("ann".into()),
            coordinator: Some("ann".into()),
            archived: false,
            archived_at_ms: None,
            archived_by: None,
            archive_reason: None,
        }
    }

    fn member(project_id: &str, agent_name: &str) -> MemberRecord {
        MemberRecord {
            project_id: project_id.into(),
            agent_name: agent_name.into(),
            agent_id: "id".into(),
            client_id: None,
            capabilities: vec![],
            labels: Default::default(),
            joined_at_ms: 0,
            last_seen_ms: 0,
            online: true,
        }
    }

    fn message() -> Vec<u8> {
        encode(&MessageRecord {
            message_id: "m".into(),
            project_id: "p".into(),
            from_agent: "ann".into(),
            to_agent: None,
            broadcast: true,
            reply_expected: false,
            payload_json: "{}".into(),
            created_at_ms: 0,
            ttl_secs: 60,
            priority: None,
            trace_id: None,
        })
        .expect("encode")
    }

    fn manifest(etag: &str, source_path: Option<&str>) -> Vec<u8> {
        encode(&ManifestRecord {
            resource_id: "r".into(),
            project_id: "p".into(),
            name: "R".into(),
            description: None,
            created_at_ms: 0,
            updated_at_ms: 0,
            etag: etag.into(),
            mime_type: None,
            size_bytes: 0,
            source_path: source_path.map(str::to_owned),
            read: vec!["*".into()],
            write: vec![],
            metadata_json: None,
            creator: "ann".into(),
            content_hash: String::new(),
            version: 1,
            kind: ResourceKind::Document,
        })
        .expect("encode")
    }

    /// Creates a sound database holding project `p` with member `ann`, lets `plant` write
    /// into it directly, and returns what the check reports.
    fn check_after(plant: impl FnOnce(&redb::WriteTransaction)) -> Vec<String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("db.redb");
        drop(Store::open(&path).expect("create"));
        let db = Database::open(&path).expect("open");
        let tx = db.begin_write().expect("write");
        {
            let mut projects = tx.open_table(PROJECTS).expect("projects");
            let record = encode(&project()).expect("encode");
            projects.insert("p", record.as_slice()).expect("insert");
            let mut members = tx.open_table(MEMBERS).expect("members");
            let record = encode(&member("p", "ann")).expect("encode");
            members
                .insert(("p", "ann"), record.as_slice())
                .expect("insert");
        }
        plant(&tx);
        tx.commit().expect("commit");
        drop(db);
        check(&path).expect("check")
    }

    #[test]
    fn a_sound_database_passes_the_check() {
        assert_eq!(check_after(|_| {}), Vec::<String>::new());
    }

    type Plant = Box<dyn FnOnce(&redb::WriteTransaction)>;
    type PairTable = TableDefinition<'static, (&'static str, &'static str), &'static [u8]>;
    type MessageTable = TableDefinition<'static, (&'static str, &'static str, u64), &'static [u8]>;

    fn insert_pair(table: PairTable, key: (&'static str, &'static str), value: Vec<u8>) -> Plant {
        Box::new(move |tx| {
            let mut table = tx.open_table(table).expect("table");
            table.insert(key, value.as_slice()).expect("insert");
        })
    }

    fn insert_message(table: MessageTable, project_id: &'static str, agent: &'static str) -> Plant {
        Box::new(move |tx| {
            let mut table = tx.open_table(table).expect("table");
            let record = message();
            table
                .insert((project_id, agent, 7u64), record.as_slice())
                .expect("insert");
        })
    }

    #[test]
    fn check_reports_each_planted_violation() {
        let with_content: Plant = Box::new(|tx| {
            let mut contents = tx.open_table(CONTENTS).expect("contents");
            contents
                .insert(("p", "r"), [1u8].as_slice())
                .expect("insert");
            let mut manifests = tx.open_table(MANIFESTS).expect("manifests");
            manifests
                .insert(("p", "r"), manifest("0C71E7410FD3B300", None).as_slice())
                .expect("insert");
        });
        let cases: Vec<(&str, Plant, &str)> = vec![
            (
                "unknown schema version",
                Box::new(|tx| {
                    let mut meta = tx.open_table(META).expect("meta");
                    meta.insert(SCHEMA_VERSION_KEY, 99u32.to_le_bytes().as_slice())
                        .expect("insert");
                }),
                "schema version Some(99) is not one this binary knows",
            ),
            (
                "member of a missing project",
                insert_pair(
                    MEMBERS,
                    ("ghost", "bob"),
                    encode(&member("ghost", "Bob")).expect("encode"),
                ),
                "member (ghost, bob) belongs to no project",
            ),
            (
                "member under another name's key",
                insert_pair(
                    MEMBERS,
                    ("p", "bob"),
                    encode(&member("p", "carol")).expect("encode"),
                ),
                "member (p, bob) is stored under the wrong key for \"carol\"",
            ),
            (
                "member that cannot be decoded",
                insert_pair(MEMBERS, ("p", "bob"), vec![1, 255, 255]),
                "member (p, bob) cannot be decoded",
            ),
            (
                "unread message of a non-member",
                insert_message(INBOX, "p", "nobody"),
                "inbox message (p, nobody, 7) belongs to no member",
            ),
            (
                "read message of a missing project",
                insert_message(ARCHIVE, "ghost", "ann"),
                "archive message (ghost, ann, 7) belongs to no project",
            ),
            (
                "resource of a missing project",
                insert_pair(
                    MANIFESTS,
                    ("ghost", "r"),
                    manifest("0c71e7410fd3b300", Some("/home/a/n")),
                ),
                "resource (ghost, r) belongs to no project",
            ),
            (
                "manifest that cannot be decoded",
                insert_pair(MANIFESTS, ("p", "r"), vec![1, 255]),
                "resource (p, r) cannot be decoded",
            ),
            (
                "malformed etag",
                with_content,
                "resource (p, r) has a malformed etag \"0C71E7410FD3B300\"",
            ),
            (
                "document without content or reference",
                insert_pair(MANIFESTS, ("p", "r"), manifest("0c71e7410fd3b300", None)),
                "document (p, r) has neither content nor a source path",
            ),
        ];
        for (case, plant, expected) in cases {
            let violations = check_after(plant);
            assert_eq!(violations.len(), 1, "{case}: {violations:?}");
            assert!(
                violations[0].starts_with(expected),
                "{case}: {violations:?}"
            );
        }
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
