//! Append-only logs: entries that concurrent writers append without conflict, each with the
//! next number of one per-log sequence.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tracing::debug;

use super::arguments::CheckArguments;
use super::etag::new_etag;
use super::longpoll::WaitOutcome;
use super::projects::finish_wait;
use super::requests::{AppendLogRequest, ReadLogRequest};
use super::resources::{can_read, can_write, check_kind, denied, initial_permissions, not_found};
use super::{Service, WaitControl, WaitKey, page, project_and_member, views};
use crate::error::{ErrorCode, ServiceError, ServiceResult};
use crate::storage::ReadTxn;
use crate::storage::records::{LogEntryRecord, ManifestRecord, ResourceKind};
use crate::time::{format_ms, now_ms};

/// Chains a log's content hash: the hash of the previous hash and the new entry, so that
/// equal logs have equal hashes and a changed past entry changes every later hash.
fn chain_hash(previous: &str, entry_json: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(previous.as_bytes());
    hasher.update(entry_json.as_bytes());
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("sha256:{hex}")
}

fn entry_view(record: &LogEntryRecord) -> Value {
    json!({
        "seq": record.seq,
        "author": record.author,
        "at": format_ms(record.at_ms),
        "entry": serde_json::from_str::<Value>(&record.entry_json).unwrap_or(Value::Null),
    })
}

impl Service {
    /// Appends an entry to a log, creating the log on the first append. Appends never
    /// conflict: each gets the next sequence number inside its write transaction.
    pub fn append_log(&self, request: &AppendLogRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        let entry_json = request.entry.to_string();
        let max_bytes = self.config.max_payload_size;
        if entry_json.len() > max_bytes {
            return Err(ServiceError::new(
                ErrorCode::ResourceTooLarge,
                format!(
                    "the entry is {} bytes; the maximum is {max_bytes}",
                    entry_json.len()
                ),
            ));
        }

        let (manifest, seq) = self.write({
            let request = request.clone();
            let entry_json = entry_json.clone();
            move |tx| {
                let (_, member) = project_and_member(tx, &request.project_id, &request.agent_name)?;
                let agent = member.agent_name.as_str();
                let now = now_ms();
                let manifest = match tx.manifest(&request.project_id, &request.log_id)? {
                    Some(existing) => {
                        if !can_write(&existing, agent) {
                            return Err(denied(
                                ErrorCode::WritePermissionDenied,
                                "append to",
                                agent,
                                &existing,
                            ));
                        }
                        check_kind(&existing, ResourceKind::Log, "append_log")?;
                        existing
                    }
                    None => new_log(&request, agent, now),
                };
                let seq = manifest.version + 1;
                let record = LogEntryRecord {
                    seq,
                    author: agent.to_owned(),
                    at_ms: now,
                    entry_json: entry_json.clone(),
                };
                tx.put_log_entry(&request.project_id, &request.log_id, &record)?;
                let manifest = ManifestRecord {
                    updated_at_ms: now,
                    etag: new_etag(),
                    size_bytes: manifest.size_bytes + entry_json.len() as u64,
                    content_hash: chain_hash(&manifest.content_hash, &entry_json),
                    version: seq,
                    ..manifest
                };
                tx.put_resource(&manifest, &[])?;
                Ok((manifest, seq))
            }
        })?;

        debug!(project_id = %manifest.project_id, log_id = %manifest.resource_id, seq, "log entry appended");
        self.waiters.notify(&WaitKey::resource(
            &manifest.project_id,
            &manifest.resource_id,
        ));
        Ok(
            json!({"log_id": manifest.resource_id, "seq": seq, "manifest": views::manifest(&manifest)}),
        )
    }

    fn read_log_entries(
        &self,
        tx: &ReadTxn,
        request: &ReadLogRequest,
    ) -> ServiceResult<Option<Value>> {
        let (_, member) = project_and_member(tx, &request.project_id, &request.agent_name)?;
        let Some(manifest) = tx.manifest(&request.project_id, &request.log_id)? else {
            return Ok(None);
        };
        if !can_read(&manifest, &member.agent_name) {
            return Err(denied(
                ErrorCode::ReadPermissionDenied,
                "read",
                &member.agent_name,
                &manifest,
            ));
        }
        check_kind(&manifest, ResourceKind::Log, "read_log")?;
        let (_, limit) = page(None, request.limit);
        let after = request.after.unwrap_or(0);
        let entries = tx.log_entries(&request.project_id, &request.log_id, after, limit)?;
        if entries.is_empty() && request.wait == Some(true) {
            return Ok(None);
        }
        let next_after = entries.last().map_or(after, |entry| entry.seq);
        Ok(Some(json!({
            "log_id": manifest.resource_id,
            "entries": entries.iter().map(entry_view).collect::<Vec<_>>(),
            "count": entries.len(),
            "last_seq": manifest.version,
            "next_after": next_after,
        })))
    }

    /// Returns log entries after a sequence number, oldest first. With `wait`, blocks until
    /// there is one.
    pub async fn read_log(
        &self,
        request: ReadLogRequest,
        control: &WaitControl,
    ) -> ServiceResult<Value> {
        request.check_arguments()?;
        let request = std::sync::Arc::new(request);
        let read = |request: std::sync::Arc<ReadLogRequest>| {
            self.blocking(move |service| service.read(|tx| service.read_log_entries(tx, &request)))
        };
        if request.wait != Some(true) {
            return read(request.clone())
                .await?
                .ok_or_else(|| not_found(&request.project_id, &request.log_id));
        }
        let timeout = self.wait_timeout(request.timeout_seconds);
        let key = WaitKey::resource(&request.project_id, &request.log_id);
        let outcome: WaitOutcome<Value> = self
            .wait_until(key, timeout, control, || read(request.clone()))
            .await?;
        Ok(finish_wait(outcome))
    }
}

/// Builds the manifest of a log created by its first append: readable and appendable by
/// every member unless the request gives permissions.
fn new_log(request: &AppendLogRequest, creator: &str, now: i64) -> ManifestRecord {
    let (read, mut write) = initial_permissions(request.permissions.as_ref(), creator);
    if request
        .permissions
        .as_ref()
        .and_then(|p| p.write.as_ref())
        .is_none()
    {
        write = vec!["*".to_owned()];
    }
    ManifestRecord {
        resource_id: request.log_id.clone(),
        project_id: request.project_id.clone(),
        name: request
            .name
            .clone()
            .unwrap_or_else(|| request.log_id.clone()),
        description: None,
        created_at_ms: now,
        updated_at_ms: now,
        etag: String::new(),
        mime_type: Some("application/json".to_owned()),
        size_bytes: 0,
        source_path: None,
        read,
        write,
        metadata_json: None,
        creator: creator.to_owned(),
        content_hash: String::new(),
        version: 0,
        kind: ResourceKind::Log,
    }
}
