//! Schema versions and the upgrades between them. `migrations/` describes each version.
//!
//! Opening a database applies every pending upgrade in one write transaction, so a crash
//! during an upgrade leaves the file at its old version.

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use tracing::info;

use super::records::{MemberRecord, MembershipRecord};
use super::tables::*;
use super::{StorageError, agent_key, decode, encode};

/// Schema version this binary writes.
pub const CURRENT_VERSION: u32 = 2;

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
    Ok(())
}

/// Version 2 keys members and messages by the ASCII-lowercased agent name, so that agent
/// names differing only in case name one agent.
///
/// Where version 1 held several members whose names differ only in case, the one that joined
/// first keeps the name; the others are removed with their client memberships, and their
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
