//! Schema versions and the upgrades between them. `migrations/` describes each version.
//!
//! Opening a database applies every pending upgrade in one write transaction, so a crash
//! during an upgrade leaves the file at its old version.

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use tracing::info;

use serde::{Deserialize, Serialize};

use super::records::{
    HistoryRecord, ManifestRecord, MemberRecord, MembershipRecord, ResourceKind, content_hash,
};
use super::tables::*;
use super::{StorageError, agent_key, decode, encode};

/// Schema version this binary writes.
pub const CURRENT_VERSION: u32 = 3;

/// Versions found and left by [`migrate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    /// Version found on open; 0 for a new file.
    pub from: u32,
    /// Version after the upgrades.
    pub to: u32,
}

/// Brings the database to [`CURRENT_VERSION`], creating the tables of a new file.
///
/// Fails with [`StorageError::SchemaTooNew`] when the file has a newer version, without
/// changing it.
pub fn migrate(db: &Database) -> Result<Migration, StorageError> {
    let tx = db.begin_write()?;
    let from = read_version(&tx)?;
    if from > CURRENT_VERSION {
        return Err(StorageError::SchemaTooNew {
            found: from,
            supported: CURRENT_VERSION,
        });
    }
    create_tables(&tx)?;
    if from == 1 {
        upgrade_1_to_2(&tx)?;
    }
    if (1..=2).contains(&from) {
        upgrade_2_to_3(&tx)?;
    }
    write_version(&tx, CURRENT_VERSION)?;
    tx.commit()?;
    Ok(Migration {
        from,
        to: CURRENT_VERSION,
    })
}

/// Returns the stored schema version, or 0 when none is stored.
pub fn read_version(tx: &WriteTransaction) -> Result<u32, StorageError> {
    let meta = tx.open_table(META)?;
    let version = meta.get(SCHEMA_VERSION_KEY)?.map(|bytes| {
        let raw: [u8; 4] = bytes.value().try_into().unwrap_or([0xff; 4]);
        u32::from_le_bytes(raw)
    });
    Ok(version.unwrap_or(0))
}

/// Stores the schema version.
pub fn write_version(tx: &WriteTransaction, version: u32) -> Result<(), StorageError> {
    let mut meta = tx.open_table(META)?;
    meta.insert(SCHEMA_VERSION_KEY, version.to_le_bytes().as_slice())?;
    Ok(())
}

fn create_tables(tx: &WriteTransaction) -> Result<(), StorageError> {
    tx.open_table(META)?;
    tx.open_table(PROJECTS)?;
    tx.open_table(MEMBERS)?;
    tx.open_table(INBOX)?;
    tx.open_table(ARCHIVE)?;
    tx.open_table(MANIFESTS)?;
    tx.open_table(CONTENTS)?;
    tx.open_table(CLIENTS)?;
    tx.open_table(MEMBERSHIPS)?;
    tx.open_table(HISTORY)?;
    tx.open_table(LOG_ENTRIES)?;
    tx.open_table(AUDIT)?;
    Ok(())
}

/// Version 2 keys members and messages by the ASCII-lowercased agent name, so that agent
/// names differing only in case name one agent.
///
/// Where version 1 had several members whose names differ only in case, the one that joined
/// first keeps the name. The others are removed with their client memberships, and their
/// messages move into the kept member's inbox and archive.
fn upgrade_1_to_2(tx: &WriteTransaction) -> Result<(), StorageError> {
    let mut members: Vec<MemberRecord> = Vec::new();
    {
        let table = tx.open_table(MEMBERS)?;
        for entry in table.iter()? {
            let (_, value) = entry?;
            members.push(decode("members", value.value())?);
        }
    }
    members.sort_by_key(|member| member.joined_at_ms);
    tx.delete_table(MEMBERS)?;
    let mut dropped = 0;
    {
        let mut table = tx.open_table(MEMBERS)?;
        let mut memberships = tx.open_table(MEMBERSHIPS)?;
        for member in &members {
            let key = agent_key(&member.agent_name);
            let slot = (member.project_id.as_str(), key.as_str());
            if table.get(slot)?.is_none() {
                table.insert(slot, encode(member)?.as_slice())?;
                continue;
            }
            dropped += 1;
            if let Some(client_id) = &member.client_id {
                let link = (client_id.as_str(), member.project_id.as_str());
                let held: Option<MembershipRecord> = memberships
                    .get(link)?
                    .map(|v| decode("memberships", v.value()))
                    .transpose()?;
                if held.is_some_and(|held| held.agent_name == member.agent_name) {
                    memberships.remove(link)?;
                }
            }
        }
    }
    let moved = rekey_messages(tx, INBOX)? + rekey_messages(tx, ARCHIVE)?;
    info!(
        members = members.len(),
        dropped, moved, "upgraded schema 1 to 2"
    );
    Ok(())
}

/// A manifest as version 2 stored it: without content hash, version and kind.
#[derive(Serialize, Deserialize)]
struct ManifestRecordV2 {
    resource_id: String,
    project_id: String,
    name: String,
    description: Option<String>,
    created_at_ms: i64,
    updated_at_ms: i64,
    etag: String,
    mime_type: Option<String>,
    size_bytes: u64,
    source_path: Option<String>,
    read: Vec<String>,
    write: Vec<String>,
    metadata_json: Option<String>,
    creator: String,
}

/// Version 3 gives each manifest a content hash, a version number and a kind, and keeps the
/// versions of each document in `history`. Each existing resource becomes a document at
/// version 1, whose current content is its first kept version.
fn upgrade_2_to_3(tx: &WriteTransaction) -> Result<(), StorageError> {
    let mut rows = Vec::new();
    {
        let manifests = tx.open_table(MANIFESTS)?;
        let contents = tx.open_table(CONTENTS)?;
        for entry in manifests.iter()? {
            let (key, value) = entry?;
            let (project_id, resource_id) = key.value();
            let old: ManifestRecordV2 = decode("manifests", value.value())?;
            let content = match contents.get((project_id, resource_id))? {
                Some(bytes) => bytes.value().get(1..).unwrap_or_default().to_vec(),
                None => Vec::new(),
            };
            rows.push((old, content));
        }
    }
    let mut manifests = tx.open_table(MANIFESTS)?;
    let mut history = tx.open_table(HISTORY)?;
    for (old, content) in &rows {
        let manifest = ManifestRecord {
            resource_id: old.resource_id.clone(),
            project_id: old.project_id.clone(),
            name: old.name.clone(),
            description: old.description.clone(),
            created_at_ms: old.created_at_ms,
            updated_at_ms: old.updated_at_ms,
            etag: old.etag.clone(),
            mime_type: old.mime_type.clone(),
            size_bytes: old.size_bytes,
            source_path: old.source_path.clone(),
            read: old.read.clone(),
            write: old.write.clone(),
            metadata_json: old.metadata_json.clone(),
            creator: old.creator.clone(),
            content_hash: content_hash(content),
            version: 1,
            kind: ResourceKind::Document,
        };
        let key = (manifest.project_id.as_str(), manifest.resource_id.as_str());
        manifests.insert(key, encode(&manifest)?.as_slice())?;
        let kept = HistoryRecord {
            version: 1,
            etag: manifest.etag.clone(),
            author: manifest.creator.clone(),
            at_ms: manifest.updated_at_ms,
            size_bytes: content.len() as u64,
            content_hash: manifest.content_hash.clone(),
            content: content.clone(),
        };
        history.insert((key.0, key.1, 1u64), encode(&kept)?.as_slice())?;
    }
    info!(resources = rows.len(), "upgraded schema 2 to 3");
    Ok(())
}

fn rekey_messages(
    tx: &WriteTransaction,
    definition: TableDefinition<(&str, &str, u64), &[u8]>,
) -> Result<usize, StorageError> {
    let mut rows = Vec::new();
    {
        let table = tx.open_table(definition)?;
        for entry in table.iter()? {
            let (key, value) = entry?;
            let (project_id, agent, seq) = key.value();
            rows.push((
                project_id.to_owned(),
                agent_key(agent),
                seq,
                value.value().to_vec(),
            ));
        }
    }
    tx.delete_table(definition)?;
    let mut table = tx.open_table(definition)?;
    for (project_id, agent, seq, bytes) in &rows {
        table.insert(
            (project_id.as_str(), agent.as_str(), *seq),
            bytes.as_slice(),
        )?;
    }
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use redb::{Database, ReadableDatabase, ReadableTable};

    use super::*;
    use crate::storage::records::{MessageRecord, ProjectRecord};
    use crate::storage::{Store, agent_key};

    fn member(name: &str, client: &str, joined_at_ms: i64) -> MemberRecord {
        MemberRecord {
            project_id: "p".into(),
            agent_name: name.into(),
            agent_id: format!("id-{name}"),
            client_id: Some(client.into()),
            capabilities: vec![],
            labels: BTreeMap::new(),
            joined_at_ms,
            last_seen_ms: joined_at_ms,
            online: true,
        }
    }

    fn message(to: &str, created_at_ms: i64) -> MessageRecord {
        MessageRecord {
            message_id: format!("m-{to}-{created_at_ms}"),
            project_id: "p".into(),
            from_agent: "Lead".into(),
            to_agent: Some(to.into()),
            broadcast: false,
            reply_expected: false,
            payload_json: "{}".into(),
            created_at_ms,
            ttl_secs: 1_000_000_000,
            priority: None,
            trace_id: None,
        }
    }

    fn membership(name: &str) -> MembershipRecord {
        MembershipRecord {
            project_id: "p".into(),
            agent_name: name.into(),
            project_name: "P".into(),
            joined_at_ms: 1,
        }
    }

    /// Writes a version 1 database: members and inboxes keyed by the agent name as given,
    /// with two members whose names differ only in case.
    fn write_version_1(path: &std::path::Path) {
        let db = Database::create(path).expect("create database");
        let tx = db.begin_write().expect("begin write");
        write_version(&tx, 1).expect("write version");
        {
            let project = ProjectRecord {
                project_id: "p".into(),
                name: "P".into(),
                description: None,
                context_json: None,
                created_at_ms: 1,
                created_by: Some("Lead".into()),
                coordinator: Some("Lead".into()),
                archived: false,
                archived_at_ms: None,
                archived_by: None,
                archive_reason: None,
            };
            let mut projects = tx.open_table(PROJECTS).expect("projects");
            projects
                .insert("p", encode(&project).expect("encode").as_slice())
                .expect("insert");
            let mut members = tx.open_table(MEMBERS).expect("members");
            for (name, client, joined) in [("Lead", "c1", 1), ("Bob", "c2", 2), ("bob", "c3", 3)] {
                let record = encode(&member(name, client, joined)).expect("encode");
                members
                    .insert(("p", name), record.as_slice())
                    .expect("insert");
            }
            let mut inbox = tx.open_table(INBOX).expect("inbox");
            inbox
                .insert(
                    ("p", "Bob", 1),
                    encode(&message("Bob", 10)).expect("encode").as_slice(),
                )
                .expect("insert");
            inbox
                .insert(
                    ("p", "bob", 2),
                    encode(&message("bob", 20)).expect("encode").as_slice(),
                )
                .expect("insert");
            let mut memberships = tx.open_table(MEMBERSHIPS).expect("memberships");
            for (client, name) in [("c1", "Lead"), ("c2", "Bob"), ("c3", "bob")] {
                let record = encode(&membership(name)).expect("encode");
                memberships
                    .insert((client, "p"), record.as_slice())
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
    }

    #[test]
    fn version_1_database_is_upgraded_on_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("brainstorm.redb");
        write_version_1(&path);

        let store = Store::open(&path).expect("open upgrades the database");

        let (members, bob_inbox, c3_membership) = store
            .read(|tx| {
                Ok::<_, StorageError>((
                    tx.members("p")?,
                    tx.inbox("p", "BOB", 0)?,
                    tx.membership("c3", "p")?,
                ))
            })
            .expect("read upgraded state");
        let names: Vec<&str> = members.iter().map(|m| m.agent_name.as_str()).collect();
        assert_eq!(
            names,
            ["Bob", "Lead"],
            "the member that joined first keeps the name"
        );
        assert_eq!(bob_inbox.len(), 2, "both inboxes now belong to one agent");
        assert!(
            c3_membership.is_none(),
            "the dropped member's client membership is removed"
        );
        assert_eq!(agent_key("Bob"), "bob");
    }

    #[test]
    fn upgrade_records_the_current_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("brainstorm.redb");
        write_version_1(&path);
        drop(Store::open(&path).expect("open"));

        let db = Database::create(&path).expect("reopen");
        let tx = db.begin_write().expect("begin write");
        assert_eq!(read_version(&tx).expect("version"), CURRENT_VERSION);
    }

    #[test]
    fn newer_database_is_refused_unchanged() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("brainstorm.redb");
        {
            let db = Database::create(&path).expect("create");
            let tx = db.begin_write().expect("begin write");
            write_version(&tx, CURRENT_VERSION + 1).expect("write version");
            tx.commit().expect("commit");
        }

        let err = Store::open(&path)
            .err()
            .expect("a newer schema must be refused");
        assert!(
            matches!(err, StorageError::SchemaTooNew { found, .. } if found == CURRENT_VERSION + 1)
        );
        assert!(err.to_string().contains("upgrade brainstorm"), "{err}");

        let db = Database::create(&path).expect("reopen");
        let read = db.begin_read().expect("begin read");
        assert!(
            read.open_table(PROJECTS).is_err(),
            "no table was created by the refused open"
        );
    }

    #[test]
    fn new_database_starts_at_current_version() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("brainstorm.redb");
        let db = Database::create(&path).expect("create");
        let outcome = migrate(&db).expect("migrate");
        assert_eq!(
            outcome,
            Migration {
                from: 0,
                to: CURRENT_VERSION
            }
        );
        let read = db.begin_read().expect("begin read");
        let meta = read.open_table(META).expect("meta table");
        assert!(meta.get(SCHEMA_VERSION_KEY).expect("get").is_some());
    }

    #[test]
    fn version_2_manifests_gain_hash_and_history() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("brainstorm.redb");
        {
            let db = Database::create(&path).expect("create database");
            let tx = db.begin_write().expect("begin write");
            write_version(&tx, 2).expect("write version");
            {
                let old = ManifestRecordV2 {
                    resource_id: "notes".into(),
                    project_id: "p".into(),
                    name: "Notes".into(),
                    description: None,
                    created_at_ms: 1,
                    updated_at_ms: 2,
                    etag: "00112233445566aa".into(),
                    mime_type: None,
                    size_bytes: 5,
                    source_path: None,
                    read: vec!["*".into()],
                    write: vec!["Lead".into()],
                    metadata_json: None,
                    creator: "Lead".into(),
                };
                let mut manifests = tx.open_table(MANIFESTS).expect("manifests");
                let record = encode(&old).expect("encode");
                manifests
                    .insert(("p", "notes"), record.as_slice())
                    .expect("insert");
                let mut contents = tx.open_table(CONTENTS).expect("contents");
                contents
                    .insert(
                        ("p", "notes"),
                        [1u8, b'h', b'e', b'l', b'l', b'o'].as_slice(),
                    )
                    .expect("insert");
            }
            tx.commit().expect("commit");
        }

        let store = Store::open(&path).expect("open upgrades the database");

        let (manifest, history) = store
            .read(|tx| {
                Ok::<_, StorageError>((tx.manifest("p", "notes")?, tx.history("p", "notes")?))
            })
            .expect("read upgraded state");
        let manifest = manifest.expect("the manifest survives the upgrade");
        assert_eq!(manifest.content_hash, content_hash(b"hello"));
        assert_eq!(manifest.version, 1);
        assert_eq!(manifest.kind, ResourceKind::Document);
        assert_eq!(manifest.etag, "00112233445566aa", "the etag is kept");
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].content, b"hello");
    }
}
