//! Shared resources: etag compare-and-swap writes, permission checks, reads and deletes.

use serde_json::{Value, json};
use tracing::{debug, info};

use super::arguments::{ANY, CheckArguments};
use super::etag::new_etag;
use super::longpoll::WaitOutcome;
use super::projects::finish_wait;
use super::requests::*;
use super::source_path::read_source;
use super::validate::check_json_text;
use super::{Service, WaitControl, WaitKey, page, project_and_member, same_agent, views};
use crate::error::{ErrorCode, ServiceError, ServiceResult};
use crate::storage::records::{
    HistoryRecord, ManifestRecord, MemberRecord, ResourceKind, content_hash,
};
use crate::storage::{ReadTxn, WriteTxn};
use crate::time::now_ms;

/// Returns whether `list` grants access to `agent` (by name or through "*").
fn listed(list: &[String], agent: &str) -> bool {
    list.iter()
        .any(|entry| entry == ANY || same_agent(entry, agent))
}

pub(super) fn can_read(manifest: &ManifestRecord, agent: &str) -> bool {
    same_agent(&manifest.creator, agent) || listed(&manifest.read, agent)
}

pub(super) fn can_write(manifest: &ManifestRecord, agent: &str) -> bool {
    same_agent(&manifest.creator, agent) || listed(&manifest.write, agent)
}

pub(super) fn not_found(project_id: &str, resource_id: &str) -> ServiceError {
    ServiceError::new(
        ErrorCode::ResourceNotFound,
        format!("resource {resource_id:?} does not exist in project {project_id:?}; list_resources shows the existing ones"),
    )
    .with("project_id", project_id)
    .with("resource_id", resource_id)
}

pub(super) fn denied(
    code: ErrorCode,
    verb: &str,
    agent: &str,
    manifest: &ManifestRecord,
) -> ServiceError {
    let advice = match code {
        ErrorCode::DeletePermissionDenied => "only its creator may delete it",
        _ => "ask its creator to add you to its permissions",
    };
    ServiceError::new(
        code,
        format!(
            "agent {agent:?} may not {verb} resource {:?}; {advice}",
            manifest.resource_id
        ),
    )
    .with("project_id", manifest.project_id.as_str())
    .with("resource_id", manifest.resource_id.as_str())
    .with("agent_name", agent)
}

/// Permissions of a new resource: readable by all and writable by its creator unless given.
/// The creator is always added to the write list.
pub(super) fn initial_permissions(
    requested: Option<&Permissions>,
    creator: &str,
) -> (Vec<String>, Vec<String>) {
    let read = requested
        .and_then(|p| p.read.clone())
        .unwrap_or_else(|| vec![ANY.to_owned()]);
    let mut write = requested.and_then(|p| p.write.clone()).unwrap_or_default();
    if !listed(&write, creator) {
        write.push(creator.to_owned());
    }
    (read, write)
}

/// Returns the content to store: the inline text, or the bytes of the file at `source_path`.
/// Content over `max_bytes` is rejected before any JSON-looking text in it is parsed.
fn content_text(request: &StoreResourceRequest, max_bytes: usize) -> ServiceResult<Option<String>> {
    let text = match (request.inline_content(), &request.source_path) {
        (Some(text), _) => text,
        (None, Some(path)) => read_source(path, max_bytes)?,
        (None, None) => return Ok(None),
    };
    if text.len() > max_bytes {
        return Err(ServiceError::new(
            ErrorCode::ResourceTooLarge,
            format!(
                "content is {} bytes; the maximum is {max_bytes} bytes, so split it into several \
                 resources or ask the operator to raise --max-payload-size",
                text.len()
            ),
        )
        .with("size_bytes", text.len())
        .with("max_bytes", max_bytes));
    }
    check_json_text("content", &text)?;
    Ok(Some(text))
}

/// Outcome of reading a resource.
enum Read {
    Missing,
    NotModified(String),
    Found(Value),
}

/// Reads a kept older version of a document.
fn read_version(tx: &ReadTxn, manifest: &ManifestRecord, version: u64) -> ServiceResult<Value> {
    let kept = tx.history_version(&manifest.project_id, &manifest.resource_id, version)?;
    let Some(kept) = kept else {
        return Err(ServiceError::new(
            ErrorCode::VersionNotFound,
            format!(
                "version {version} of resource {:?} is not kept (the current version is {}); \
                 resource_history lists the kept ones",
                manifest.resource_id, manifest.version
            ),
        )
        .with("resource_id", manifest.resource_id.as_str())
        .with("current_version", manifest.version));
    };
    Ok(json!({
        "manifest": views::manifest(manifest),
        "content": String::from_utf8_lossy(&kept.content),
        "etag": kept.etag,
        "version": views::history(&kept),
    }))
}

/// Checks that a resource is of the kind a tool works on.
pub(super) fn check_kind(
    manifest: &ManifestRecord,
    expected: ResourceKind,
    tool: &str,
) -> ServiceResult<()> {
    if manifest.kind == expected {
        return Ok(());
    }
    let hint = match manifest.kind {
        ResourceKind::Log => "use append_log and read_log",
        ResourceKind::Document => "use store_resource, update_resource and get_resource",
    };
    Err(ServiceError::new(
        ErrorCode::WrongResourceKind,
        format!(
            "resource {:?} is a {}, which {tool} does not handle; {hint}",
            manifest.resource_id,
            manifest.kind.as_str()
        ),
    )
    .with("resource_id", manifest.resource_id.as_str())
    .with("kind", manifest.kind.as_str()))
}

/// Applies the etag rules to a write of an existing resource, inside its write transaction.
fn check_etag(existing: &ManifestRecord, etag: Option<&str>) -> ServiceResult<()> {
    match etag {
        None | Some("") => Err(ServiceError::new(
            ErrorCode::EtagRequired,
            format!(
                "resource {:?} exists; read it with get_resource and pass its etag to update it, or etag \"*\" to overwrite",
                existing.resource_id
            ),
        )
        .with("resource_id", existing.resource_id.as_str())
        .with("project_id", existing.project_id.as_str())),
        Some(ANY) => Ok(()),
        Some(etag) if etag == existing.etag => Ok(()),
        // The current etag is deliberately left out, so that the writer must re-read the content.
        Some(_) => Err(ServiceError::new(
            ErrorCode::EtagMismatch,
            format!(
                "the etag does not match the current version of resource {:?} (it changed since it was read, or the etag is wrong); get_resource again, reapply your change, and retry with the new etag",
                existing.resource_id
            ),
        )
        .with("resource_id", existing.resource_id.as_str())
        .with("project_id", existing.project_id.as_str())),
    }
}

impl Service {
    /// Creates or updates a resource. The etag comparison and the write it guards happen in
    /// one write transaction, so concurrent writers cannot lose an update.
    pub fn store_resource(&self, request: &StoreResourceRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        let metadata_json = request.metadata.as_ref().map(|metadata| {
            serde_json::to_string(metadata).expect("a JSON object always serializes")
        });
        let content = content_text(request, self.config.max_payload_size)?;
        let keep = self.config.history_limit;

        let (manifest, created, permissions_ignored) = self.write({
            let request = request.clone();
            let content = content.clone();
            let metadata_json = metadata_json.clone();
            move |tx| {
                let (_, member) = project_and_member(tx, &request.project_id, &request.agent_name)?;
                let existing = tx.manifest(&request.project_id, &request.resource_id)?;
                if let Some(existing) = &existing {
                    check_kind(existing, ResourceKind::Document, "store_resource")?;
                }
                let now = now_ms();
                match existing {
                    Some(existing) => update(
                        tx,
                        &request,
                        &member,
                        existing,
                        content.clone(),
                        metadata_json.clone(),
                        now,
                        keep,
                    )
                    .map(|(manifest, ignored)| (manifest, false, ignored)),
                    None => create(
                        tx,
                        &request,
                        &member,
                        content.clone(),
                        metadata_json.clone(),
                        now,
                        keep,
                    )
                    .map(|m| (m, true, false)),
                }
            }
        })?;

        debug!(project_id = %manifest.project_id, resource_id = %manifest.resource_id, etag = %manifest.etag, created, "resource stored");
        self.waiters.notify(&WaitKey::resource(
            &manifest.project_id,
            &manifest.resource_id,
        ));
        let mut result = json!({"manifest": views::manifest(&manifest), "etag": manifest.etag, "created": created});
        if permissions_ignored {
            result["permissions_ignored"] =
                json!("only the creator may change permissions; the existing ones were kept");
        }
        Ok(result)
    }

    fn read_resource(&self, tx: &ReadTxn, request: &GetResourceRequest) -> ServiceResult<Read> {
        let (_, member) = project_and_member(tx, &request.project_id, &request.agent_name)?;
        let Some(manifest) = tx.manifest(&request.project_id, &request.resource_id)? else {
            return Ok(Read::Missing);
        };
        if !can_read(&manifest, &member.agent_name) {
            let agent = &member.agent_name;
            return Err(denied(
                ErrorCode::ReadPermissionDenied,
                "read",
                agent,
                &manifest,
            ));
        }
        check_kind(&manifest, ResourceKind::Document, "get_resource")?;
        if let Some(version) = request.version {
            return read_version(tx, &manifest, version).map(Read::Found);
        }
        if request.if_none_match.as_deref() == Some(manifest.etag.as_str()) {
            return Ok(Read::NotModified(manifest.etag));
        }
        let bytes = tx
            .content(&request.project_id, &request.resource_id)?
            .unwrap_or_default();
        let content = String::from_utf8_lossy(&bytes).into_owned();
        let manifest_view = views::manifest(&manifest);
        Ok(Read::Found(
            json!({"manifest": manifest_view, "content": content, "etag": manifest.etag}),
        ))
    }

    /// Lists the kept versions of a document, oldest first, without their content.
    pub fn resource_history(&self, request: &ResourceHistoryRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        self.read(|tx| {
            let (_, member) = project_and_member(tx, &request.project_id, &request.agent_name)?;
            let manifest = tx
                .manifest(&request.project_id, &request.resource_id)?
                .ok_or_else(|| not_found(&request.project_id, &request.resource_id))?;
            if !can_read(&manifest, &member.agent_name) {
                let agent = &member.agent_name;
                return Err(denied(
                    ErrorCode::ReadPermissionDenied,
                    "read",
                    agent,
                    &manifest,
                ));
            }
            check_kind(&manifest, ResourceKind::Document, "resource_history")?;
            let versions = tx.history(&request.project_id, &request.resource_id)?;
            Ok(json!({
                "resource_id": manifest.resource_id,
                "current_version": manifest.version,
                "kept": self.config.history_limit,
                "versions": versions.iter().map(views::history).collect::<Vec<_>>(),
            }))
        })
    }

    /// Reads a resource's manifest and content from one snapshot, so the etag belongs to the
    /// content. With `wait`, blocks until the resource exists.
    pub async fn get_resource(
        &self,
        request: GetResourceRequest,
        control: &WaitControl,
    ) -> ServiceResult<Value> {
        request.check_arguments()?;
        let request = std::sync::Arc::new(request);
        let read = |request: std::sync::Arc<GetResourceRequest>| {
            self.blocking(move |service| service.read(|tx| service.read_resource(tx, &request)))
        };
        let watching = request.if_none_match.is_some();
        if request.wait != Some(true) {
            return match read(request.clone()).await? {
                Read::Found(value) => Ok(value),
                Read::NotModified(etag) => Ok(json!({"not_modified": true, "etag": etag})),
                Read::Missing => Err(not_found(&request.project_id, &request.resource_id)),
            };
        }
        // Without if_none_match the wait ends when the resource exists; with it, when the
        // resource no longer has that etag, including when it is deleted.
        let timeout = self.wait_timeout(request.timeout_seconds);
        let key = WaitKey::resource(&request.project_id, &request.resource_id);
        let outcome: WaitOutcome<Value> = self
            .wait_until(key, timeout, control, || {
                let pending = read(request.clone());
                let request = request.clone();
                async move {
                    Ok(match pending.await? {
                        Read::Found(value) => Some(value),
                        Read::NotModified(_) => None,
                        Read::Missing if watching => Some(json!({
                            "deleted": true,
                            "project_id": request.project_id,
                            "resource_id": request.resource_id,
                        })),
                        Read::Missing => None,
                    })
                }
            })
            .await?;
        Ok(finish_wait(outcome))
    }

    /// Lists the manifests the agent may read.
    pub fn list_resources(&self, request: &ListResourcesRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        let (offset, limit) = page(request.offset, request.limit);
        let (readable, total) = self.read(|tx| {
            let (_, member) = project_and_member(tx, &request.project_id, &request.agent_name)?;
            let readable: Vec<ManifestRecord> = tx
                .manifests(&request.project_id)?
                .into_iter()
                .filter(|manifest| can_read(manifest, &member.agent_name))
                .collect();
            let total = readable.len();
            Ok((
                readable
                    .into_iter()
                    .skip(offset)
                    .take(limit)
                    .collect::<Vec<_>>(),
                total,
            ))
        })?;
        Ok(json!({
            "resources": readable.iter().map(views::manifest).collect::<Vec<_>>(),
            "count": total,
            "pagination": {"offset": offset, "limit": limit, "returned": readable.len()},
        }))
    }

    /// Deletes a resource. Only its creator may.
    pub fn delete_resource(&self, request: &DeleteResourceRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        self.write({
            let request = request.clone();
            move |tx| {
                let (_, member) = project_and_member(tx, &request.project_id, &request.agent_name)?;
                let manifest = tx
                    .manifest(&request.project_id, &request.resource_id)?
                    .ok_or_else(|| not_found(&request.project_id, &request.resource_id))?;
                if !same_agent(&manifest.creator, &member.agent_name) {
                    return Err(denied(
                        ErrorCode::DeletePermissionDenied,
                        "delete",
                        &member.agent_name,
                        &manifest,
                    ));
                }
                tx.delete_resource(&request.project_id, &request.resource_id)?;
                Ok(())
            }
        })?;
        info!(project_id = %request.project_id, resource_id = %request.resource_id, agent = %request.agent_name, "resource deleted");
        self.waiters.notify(&WaitKey::resource(
            &request.project_id,
            &request.resource_id,
        ));
        Ok(
            json!({"deleted": true, "project_id": request.project_id, "resource_id": request.resource_id}),
        )
    }
}

fn create(
    tx: &WriteTxn,
    request: &StoreResourceRequest,
    member: &MemberRecord,
    content: Option<String>,
    metadata_json: Option<String>,
    now: i64,
    keep: u64,
) -> ServiceResult<ManifestRecord> {
    if let Some(etag) = request
        .etag
        .as_deref()
        .filter(|etag| !etag.is_empty() && *etag != ANY)
    {
        return Err(ServiceError::new(
            ErrorCode::EtagMismatch,
            format!(
                "resource {:?} does not exist, so no etag can match (it may have been deleted since it was read); create it without an etag",
                request.resource_id
            ),
        )
        .with("resource_id", request.resource_id.as_str())
        .with("etag", etag));
    }
    let (read, write) = initial_permissions(request.permissions.as_ref(), &member.agent_name);
    let content = content.unwrap_or_default();
    let manifest = ManifestRecord {
        resource_id: request.resource_id.clone(),
        project_id: request.project_id.clone(),
        name: request.name.clone(),
        description: request.description.clone(),
        created_at_ms: now,
        updated_at_ms: now,
        etag: new_etag(),
        mime_type: request.mime_type.clone(),
        size_bytes: content.len() as u64,
        source_path: request.source_path.clone(),
        read,
        write,
        metadata_json,
        creator: member.agent_name.clone(),
        content_hash: String::new(),
        version: 1,
        kind: ResourceKind::Document,
    };
    save_document(tx, manifest, content.as_bytes(), &member.agent_name, keep)
}

/// Updates an existing resource; returns the manifest and whether requested permissions were
/// ignored because the writer is not the creator.
fn update(
    tx: &WriteTxn,
    request: &StoreResourceRequest,
    member: &MemberRecord,
    existing: ManifestRecord,
    content: Option<String>,
    metadata_json: Option<String>,
    now: i64,
    keep: u64,
) -> ServiceResult<(ManifestRecord, bool)> {
    if request.if_none_match.is_some() {
        return Err(ServiceError::new(
            ErrorCode::ResourceExists,
            format!(
                "resource {:?} already exists and if_none_match is \"*\" (create only); read it \
                 with get_resource and update it with its etag, or choose another resource_id",
                existing.resource_id
            ),
        )
        .with("resource_id", existing.resource_id.as_str())
        .with("project_id", existing.project_id.as_str()));
    }
    if !can_write(&existing, &member.agent_name) {
        return Err(denied(
            ErrorCode::WritePermissionDenied,
            "write",
            &member.agent_name,
            &existing,
        ));
    }
    check_etag(&existing, request.etag.as_deref())?;

    let is_creator = same_agent(&existing.creator, &member.agent_name);
    let (read, write) = match (&request.permissions, is_creator) {
        (Some(permissions), true) => initial_permissions(Some(permissions), &existing.creator),
        _ => (existing.read.clone(), existing.write.clone()),
    };
    let content = match content {
        Some(content) => content,
        None => String::from_utf8_lossy(
            &tx.content(&existing.project_id, &existing.resource_id)?
                .unwrap_or_default(),
        )
        .into_owned(),
    };
    let manifest = ManifestRecord {
        name: request.name.clone(),
        description: request.description.clone().or(existing.description.clone()),
        updated_at_ms: now,
        etag: fresh_etag(&existing.etag),
        mime_type: request.mime_type.clone().or(existing.mime_type.clone()),
        size_bytes: content.len() as u64,
        source_path: request.source_path.clone().or(existing.source_path.clone()),
        read,
        write,
        metadata_json: metadata_json.or(existing.metadata_json.clone()),
        version: existing.version + 1,
        ..existing
    };
    let manifest = save_document(tx, manifest, content.as_bytes(), &member.agent_name, keep)?;
    Ok((manifest, request.permissions.is_some() && !is_creator))
}

/// Stores a document's new state: its content, the manifest with the content's hash and
/// size, and the version in the history, dropping versions older than the newest `keep`.
pub(super) fn save_document(
    tx: &WriteTxn,
    mut manifest: ManifestRecord,
    content: &[u8],
    author: &str,
    keep: u64,
) -> ServiceResult<ManifestRecord> {
    manifest.content_hash = content_hash(content);
    manifest.size_bytes = content.len() as u64;
    tx.put_resource(&manifest, content)?;
    let kept = HistoryRecord {
        version: manifest.version,
        etag: manifest.etag.clone(),
        author: author.to_owned(),
        at_ms: manifest.updated_at_ms,
        size_bytes: manifest.size_bytes,
        content_hash: manifest.content_hash.clone(),
        content: content.to_vec(),
    };
    tx.put_history(&manifest.project_id, &manifest.resource_id, &kept, keep)?;
    Ok(manifest)
}

/// Returns a new etag that differs from the current one.
fn fresh_etag(current: &str) -> String {
    loop {
        let etag = new_etag();
        if etag != current {
            return etag;
        }
    }
}
