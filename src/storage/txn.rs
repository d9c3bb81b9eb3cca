//! Typed transactions over the tables of [`super::tables`].

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::records::*;
use super::tables::*;
use super::{FORMAT_VERSION, StorageError, decode, encode};

type Result<T> = std::result::Result<T, StorageError>;

/// Returns the key form of an agent name: names that differ only in letter case share it.
pub fn agent_key(agent_name: &str) -> String {
    agent_name.to_ascii_lowercase()
}

/// A read snapshot of one committed state.
pub struct ReadTxn(ReadTransaction);

/// One write transaction. Dropping it without [`WriteTxn::commit`] aborts every write.
///
/// It records whether anything was written since [`WriteTxn::clear_written`], so that group
/// commit can tell whether a failed call left changes behind.
pub struct WriteTxn(WriteTransaction, std::cell::Cell<bool>);

impl ReadTxn {
    pub(super) fn new(tx: ReadTransaction) -> Self {
        ReadTxn(tx)
    }
}

// Generates the read accessors for both transaction kinds: redb gives them different table
// types that share the `ReadableTable` trait.
macro_rules! read_accessors {
    ($txn:ty) => {
        impl $txn {
            /// Returns the project `project_id`.
            pub fn project(&self, project_id: &str) -> Result<Option<ProjectRecord>> {
                let table = self.0.open_table(PROJECTS)?;
                let value = table.get(project_id)?;
                value.map(|v| decode("projects", v.value())).transpose()
            }

            /// Returns a page of projects in id order, and the total number of projects.
            pub fn projects(
                &self,
                offset: usize,
                limit: usize,
            ) -> Result<(Vec<ProjectRecord>, u64)> {
                let table = self.0.open_table(PROJECTS)?;
                let total = table.len()?;
                let mut page = Vec::new();
                for entry in table.iter()?.skip(offset).take(limit) {
                    let (_, value) = entry?;
                    page.push(decode("projects", value.value())?);
                }
                Ok((page, total))
            }

            /// Returns the member `agent_name` of a project, matching the name in any case.
            pub fn member(
                &self,
                project_id: &str,
                agent_name: &str,
            ) -> Result<Option<MemberRecord>> {
                let table = self.0.open_table(MEMBERS)?;
                let value = table.get((project_id, agent_key(agent_name).as_str()))?;
                value.map(|v| decode("members", v.value())).transpose()
            }

            /// Returns every member of a project, ordered by agent key.
            pub fn members(&self, project_id: &str) -> Result<Vec<MemberRecord>> {
                let table = self.0.open_table(MEMBERS)?;
                let mut members = Vec::new();
                for entry in table.range((project_id, "")..)? {
                    let (key, value) = entry?;
                    if key.value().0 != project_id {
                        break;
                    }
                    members.push(decode("members", value.value())?);
                }
                Ok(members)
            }

            /// Returns the unexpired unread messages of an agent, oldest first.
            pub fn inbox(
                &self,
                project_id: &str,
                agent_name: &str,
                now_ms: i64,
            ) -> Result<Vec<(u64, MessageRecord)>> {
                let table = self.0.open_table(INBOX)?;
                let agent = agent_key(agent_name);
                let range =
                    (project_id, agent.as_str(), 0u64)..=(project_id, agent.as_str(), u64::MAX);
                let mut messages = Vec::new();
                for entry in table.range(range)? {
                    let (key, value) = entry?;
                    let message: MessageRecord = decode("inbox", value.value())?;
                    if !message.is_expired(now_ms) {
                        messages.push((key.value().2, message));
                    }
                }
                Ok(messages)
            }

            /// Counts the unread messages of an agent, expired ones included, stopping at
            /// `cap`, so that the cost stays bounded.
            pub fn inbox_len(
                &self,
                project_id: &str,
                agent_name: &str,
                cap: usize,
            ) -> Result<usize> {
                let table = self.0.open_table(INBOX)?;
                let agent = agent_key(agent_name);
                let range =
                    (project_id, agent.as_str(), 0u64)..=(project_id, agent.as_str(), u64::MAX);
                Ok(table.range(range)?.take(cap).count())
            }

            /// Returns the unexpired read messages of an agent, oldest first.
            pub fn read_messages(
                &self,
                project_id: &str,
                agent_name: &str,
                now_ms: i64,
            ) -> Result<Vec<MessageRecord>> {
                let table = self.0.open_table(ARCHIVE)?;
                let agent = agent_key(agent_name);
                let range =
                    (project_id, agent.as_str(), 0u64)..=(project_id, agent.as_str(), u64::MAX);
                let mut messages = Vec::new();
                for entry in table.range(range)? {
                    let (_, value) = entry?;
                    let message: MessageRecord = decode("archive", value.value())?;
                    if !message.is_expired(now_ms) {
                        messages.push(message);
                    }
                }
                Ok(messages)
            }

            /// Returns the manifest of a resource.
            pub fn manifest(
                &self,
                project_id: &str,
                resource_id: &str,
            ) -> Result<Option<ManifestRecord>> {
                let table = self.0.open_table(MANIFESTS)?;
                let value = table.get((project_id, resource_id))?;
                value.map(|v| decode("manifests", v.value())).transpose()
            }

            /// Returns every manifest of a project, ordered by resource id.
            pub fn manifests(&self, project_id: &str) -> Result<Vec<ManifestRecord>> {
                let table = self.0.open_table(MANIFESTS)?;
                let mut manifests = Vec::new();
                for entry in table.range((project_id, "")..)? {
                    let (key, value) = entry?;
                    if key.value().0 != project_id {
                        break;
                    }
                    manifests.push(decode("manifests", value.value())?);
                }
                Ok(manifests)
            }

            /// Returns the content bytes of a resource.
            pub fn content(&self, project_id: &str, resource_id: &str) -> Result<Option<Vec<u8>>> {
                let table = self.0.open_table(CONTENTS)?;
                let value = table.get((project_id, resource_id))?;
                value.map(|v| decode_content(v.value())).transpose()
            }

            /// Returns the kept versions of a document, oldest first.
            pub fn history(
                &self,
                project_id: &str,
                resource_id: &str,
            ) -> Result<Vec<HistoryRecord>> {
                let table = self.0.open_table(HISTORY)?;
                let range = (project_id, resource_id, 0u64)..=(project_id, resource_id, u64::MAX);
                let mut versions = Vec::new();
                for entry in table.range(range)? {
                    let (_, value) = entry?;
                    versions.push(decode("history", value.value())?);
                }
                Ok(versions)
            }

            /// Returns one kept version of a document.
            pub fn history_version(
                &self,
                project_id: &str,
                resource_id: &str,
                version: u64,
            ) -> Result<Option<HistoryRecord>> {
                let table = self.0.open_table(HISTORY)?;
                let value = table.get((project_id, resource_id, version))?;
                value.map(|v| decode("history", v.value())).transpose()
            }

            /// Returns up to `limit` entries of a log with sequence numbers after `after`.
            pub fn log_entries(
                &self,
                project_id: &str,
                log_id: &str,
                after: u64,
                limit: usize,
            ) -> Result<Vec<LogEntryRecord>> {
                let table = self.0.open_table(LOG_ENTRIES)?;
                let start = after.saturating_add(1);
                let range = (project_id, log_id, start)..=(project_id, log_id, u64::MAX);
                let mut entries = Vec::new();
                for entry in table.range(range)?.take(limit) {
                    let (_, value) = entry?;
                    entries.push(decode("log_entries", value.value())?);
                }
                Ok(entries)
            }

            /// Returns audit records in order, from sequence `from` on, that pass `keep`, at
            /// most `limit` of them.
            pub fn audit(
                &self,
                from: u64,
                limit: usize,
                keep: impl Fn(&AuditRecord) -> bool,
            ) -> Result<Vec<AuditRecord>> {
                let table = self.0.open_table(AUDIT)?;
                let mut records = Vec::new();
                for entry in table.range(from..)? {
                    let (_, value) = entry?;
                    let record: AuditRecord = decode("audit", value.value())?;
                    if keep(&record) {
                        records.push(record);
                        if records.len() == limit {
                            break;
                        }
                    }
                }
                Ok(records)
            }

            /// Returns a client.
            pub fn client(&self, client_id: &str) -> Result<Option<ClientRecord>> {
                let table = self.0.open_table(CLIENTS)?;
                let value = table.get(client_id)?;
                value.map(|v| decode("clients", v.value())).transpose()
            }

            /// Returns the membership of a client in a project.
            pub fn membership(
                &self,
                client_id: &str,
                project_id: &str,
            ) -> Result<Option<MembershipRecord>> {
                let table = self.0.open_table(MEMBERSHIPS)?;
                let value = table.get((client_id, project_id))?;
                value.map(|v| decode("memberships", v.value())).transpose()
            }

            /// Returns every membership of a client, ordered by project id.
            pub fn memberships(&self, client_id: &str) -> Result<Vec<MembershipRecord>> {
                let table = self.0.open_table(MEMBERSHIPS)?;
                let mut memberships = Vec::new();
                for entry in table.range((client_id, "")..)? {
                    let (key, value) = entry?;
                    if key.value().0 != client_id {
                        break;
                    }
                    memberships.push(decode("memberships", value.value())?);
                }
                Ok(memberships)
            }
        }
    };
}

read_accessors!(ReadTxn);
read_accessors!(WriteTxn);

fn encode_content(content: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(content.len() + 1);
    bytes.push(FORMAT_VERSION);
    bytes.extend_from_slice(content);
    bytes
}

fn decode_content(bytes: &[u8]) -> Result<Vec<u8>> {
    match bytes.split_first() {
        Some((&FORMAT_VERSION, body)) => Ok(body.to_vec()),
        Some((&version, _)) => Err(StorageError::UnknownFormat {
            table: "contents",
            version,
        }),
        None => Err(StorageError::EmptyRecord { table: "contents" }),
    }
}

impl WriteTxn {
    pub(super) fn new(tx: WriteTransaction) -> Self {
        WriteTxn(tx, std::cell::Cell::new(false))
    }

    pub(super) fn clear_written(&self) {
        self.1.set(false);
    }

    pub(super) fn written(&self) -> bool {
        self.1.get()
    }

    fn mark_written(&self) {
        self.1.set(true);
    }

    pub(super) fn commit(self) -> Result<()> {
        self.0.commit()?;
        Ok(())
    }

    /// Inserts or replaces a project.
    pub fn put_project(&self, project: &ProjectRecord) -> Result<()> {
        self.mark_written();
        let mut table = self.0.open_table(PROJECTS)?;
        table.insert(project.project_id.as_str(), encode(project)?.as_slice())?;
        Ok(())
    }

    /// Inserts or replaces a member under the key of its name.
    pub fn put_member(&self, member: &MemberRecord) -> Result<()> {
        self.mark_written();
        let mut table = self.0.open_table(MEMBERS)?;
        let key = agent_key(&member.agent_name);
        table.insert(
            (member.project_id.as_str(), key.as_str()),
            encode(member)?.as_slice(),
        )?;
        Ok(())
    }

    /// Removes a member.
    pub fn delete_member(&self, project_id: &str, agent_name: &str) -> Result<()> {
        self.mark_written();
        let mut table = self.0.open_table(MEMBERS)?;
        table.remove((project_id, agent_key(agent_name).as_str()))?;
        Ok(())
    }

    /// Appends a message to an agent's inbox and returns its sequence number.
    pub fn push_message(&self, recipient: &str, message: &MessageRecord) -> Result<u64> {
        self.mark_written();
        let seq = self.next_seq()?;
        let mut table = self.0.open_table(INBOX)?;
        let agent = agent_key(recipient);
        table.insert(
            (message.project_id.as_str(), agent.as_str(), seq),
            encode(message)?.as_slice(),
        )?;
        Ok(seq)
    }

    fn next_seq(&self) -> Result<u64> {
        let mut meta = self.0.open_table(META)?;
        let current = match meta.get(NEXT_SEQ_KEY)? {
            Some(bytes) => u64::from_le_bytes(bytes.value().try_into().unwrap_or([0; 8])),
            None => 1,
        };
        meta.insert(NEXT_SEQ_KEY, (current + 1).to_le_bytes().as_slice())?;
        Ok(current)
    }

    /// Moves messages with the given sequence numbers from an agent's inbox to the archive.
    pub fn archive_messages(&self, project_id: &str, agent_name: &str, seqs: &[u64]) -> Result<()> {
        self.mark_written();
        let agent = agent_key(agent_name);
        let mut inbox = self.0.open_table(INBOX)?;
        let mut archive = self.0.open_table(ARCHIVE)?;
        for &seq in seqs {
            let key = (project_id, agent.as_str(), seq);
            let bytes = inbox.remove(key)?.map(|v| v.value().to_vec());
            if let Some(bytes) = bytes {
                archive.insert(key, bytes.as_slice())?;
            }
        }
        Ok(())
    }

    /// Deletes the expired messages of an agent from its inbox and archive; returns the count.
    pub fn purge_expired(&self, project_id: &str, agent_name: &str, now_ms: i64) -> Result<usize> {
        self.mark_written();
        let agent = agent_key(agent_name);
        let mut purged = 0;
        for definition in [INBOX, ARCHIVE] {
            let mut table = self.0.open_table(definition)?;
            let range = (project_id, agent.as_str(), 0u64)..=(project_id, agent.as_str(), u64::MAX);
            let mut expired = Vec::new();
            for entry in table.range(range)? {
                let (key, value) = entry?;
                let message: MessageRecord = decode("inbox", value.value())?;
                if message.is_expired(now_ms) {
                    expired.push(key.value().2);
                }
            }
            for seq in &expired {
                table.remove((project_id, agent.as_str(), *seq))?;
            }
            purged += expired.len();
        }
        Ok(purged)
    }

    /// Inserts or replaces a manifest and the content it describes.
    pub fn put_resource(&self, manifest: &ManifestRecord, content: &[u8]) -> Result<()> {
        self.mark_written();
        let key = (manifest.project_id.as_str(), manifest.resource_id.as_str());
        self.0
            .open_table(MANIFESTS)?
            .insert(key, encode(manifest)?.as_slice())?;
        self.0
            .open_table(CONTENTS)?
            .insert(key, encode_content(content).as_slice())?;
        Ok(())
    }

    /// Inserts or replaces a manifest without content: a file reference whose file could not
    /// be read when it was imported.
    pub fn put_manifest(&self, manifest: &ManifestRecord) -> Result<()> {
        self.mark_written();
        let key = (manifest.project_id.as_str(), manifest.resource_id.as_str());
        self.0
            .open_table(MANIFESTS)?
            .insert(key, encode(manifest)?.as_slice())?;
        Ok(())
    }

    /// Removes a resource's manifest and content.
    pub fn delete_resource(&self, project_id: &str, resource_id: &str) -> Result<()> {
        self.mark_written();
        self.0
            .open_table(MANIFESTS)?
            .remove((project_id, resource_id))?;
        self.0
            .open_table(CONTENTS)?
            .remove((project_id, resource_id))?;
        remove_sequence(&mut self.0.open_table(HISTORY)?, project_id, resource_id)?;
        remove_sequence(
            &mut self.0.open_table(LOG_ENTRIES)?,
            project_id,
            resource_id,
        )?;
        Ok(())
    }

    /// Keeps a version of a document and drops versions older than the newest `keep`.
    pub fn put_history(
        &self,
        project_id: &str,
        resource_id: &str,
        record: &HistoryRecord,
        keep: u64,
    ) -> Result<()> {
        self.mark_written();
        let mut table = self.0.open_table(HISTORY)?;
        table.insert(
            (project_id, resource_id, record.version),
            encode(record)?.as_slice(),
        )?;
        let oldest_kept = record.version.saturating_sub(keep.max(1)) + 1;
        let mut expired = Vec::new();
        let stale = (project_id, resource_id, 0u64)..(project_id, resource_id, oldest_kept);
        for entry in table.range(stale)? {
            let (key, _) = entry?;
            expired.push(key.value().2);
        }
        for version in expired {
            table.remove((project_id, resource_id, version))?;
        }
        Ok(())
    }

    /// Appends an entry to a log.
    pub fn put_log_entry(
        &self,
        project_id: &str,
        log_id: &str,
        record: &LogEntryRecord,
    ) -> Result<()> {
        self.mark_written();
        let mut table = self.0.open_table(LOG_ENTRIES)?;
        table.insert((project_id, log_id, record.seq), encode(record)?.as_slice())?;
        Ok(())
    }

    /// Appends a record to the audit trail, assigning its sequence number.
    pub fn push_audit(&self, record: &mut AuditRecord) -> Result<()> {
        self.mark_written();
        let mut meta = self.0.open_table(META)?;
        let seq = match meta.get(NEXT_AUDIT_KEY)? {
            Some(bytes) => u64::from_le_bytes(bytes.value().try_into().unwrap_or([0; 8])),
            None => 1,
        };
        meta.insert(NEXT_AUDIT_KEY, (seq + 1).to_le_bytes().as_slice())?;
        record.seq = seq;
        self.0
            .open_table(AUDIT)?
            .insert(seq, encode(record)?.as_slice())?;
        Ok(())
    }

    /// Inserts or replaces a client.
    pub fn put_client(&self, client: &ClientRecord) -> Result<()> {
        self.mark_written();
        let mut table = self.0.open_table(CLIENTS)?;
        table.insert(client.client_id.as_str(), encode(client)?.as_slice())?;
        Ok(())
    }

    /// Inserts or replaces the membership of a client in a project.
    pub fn put_membership(&self, client_id: &str, membership: &MembershipRecord) -> Result<()> {
        self.mark_written();
        let mut table = self.0.open_table(MEMBERSHIPS)?;
        let key = (client_id, membership.project_id.as_str());
        table.insert(key, encode(membership)?.as_slice())?;
        Ok(())
    }

    /// Removes the membership of a client in a project.
    pub fn delete_membership(&self, client_id: &str, project_id: &str) -> Result<()> {
        self.mark_written();
        self.0
            .open_table(MEMBERSHIPS)?
            .remove((client_id, project_id))?;
        Ok(())
    }

    /// Removes a project with its members, messages, resources and client memberships.
    pub fn delete_project(&self, project_id: &str) -> Result<()> {
        self.mark_written();
        for member in self.members(project_id)? {
            if let Some(client_id) = &member.client_id {
                self.delete_membership(client_id, project_id)?;
            }
        }
        remove_pairs(&mut self.0.open_table(MEMBERS)?, project_id)?;
        remove_pairs(&mut self.0.open_table(MANIFESTS)?, project_id)?;
        remove_pairs(&mut self.0.open_table(CONTENTS)?, project_id)?;
        remove_triples(&mut self.0.open_table(INBOX)?, project_id)?;
        remove_triples(&mut self.0.open_table(ARCHIVE)?, project_id)?;
        remove_triples(&mut self.0.open_table(HISTORY)?, project_id)?;
        remove_triples(&mut self.0.open_table(LOG_ENTRIES)?, project_id)?;
        self.0.open_table(PROJECTS)?.remove(project_id)?;
        Ok(())
    }
}

fn remove_pairs(table: &mut redb::Table<(&str, &str), &[u8]>, first: &str) -> Result<()> {
    let mut seconds = Vec::new();
    for entry in table.range((first, "")..)? {
        let (key, _) = entry?;
        let (head, second) = key.value();
        if head != first {
            break;
        }
        seconds.push(second.to_owned());
    }
    for second in &seconds {
        table.remove((first, second.as_str()))?;
    }
    Ok(())
}

fn remove_triples(table: &mut redb::Table<(&str, &str, u64), &[u8]>, first: &str) -> Result<()> {
    let mut keys = Vec::new();
    for entry in table.range((first, "", 0u64)..)? {
        let (key, _) = entry?;
        let (head, second, seq) = key.value();
        if head != first {
            break;
        }
        keys.push((second.to_owned(), seq));
    }
    for (second, seq) in &keys {
        table.remove((first, second.as_str(), *seq))?;
    }
    Ok(())
}

fn remove_sequence(
    table: &mut redb::Table<(&str, &str, u64), &[u8]>,
    first: &str,
    second: &str,
) -> Result<()> {
    let mut keys = Vec::new();
    for entry in table.range((first, second, 0u64)..=(first, second, u64::MAX))? {
        let (key, _) = entry?;
        keys.push(key.value().2);
    }
    for seq in keys {
        table.remove((first, second, seq))?;
    }
    Ok(())
}
