//! Import of the original TypeScript server's data folder (`brainstorm import FOLDER`).
//!
//! The folder's layout is described in `docs/operations.md`. Every project is written in one
//! transaction: all of it or none. A project whose id exists in the database already is left
//! as it is, which makes a second import of the same folder change nothing.
//!
//! Choices where the folder leaves room:
//! - Memberships are rebuilt from the member files, which the original treats as the
//!   authority; `memberships.json` is only checked.
//! - A file reference gets the referenced file's content when it can be read (at its
//!   recorded path, or under this HOME with `--original-home`). Otherwise it is imported
//!   without content, with a note in the report.
//! - A resource whose inline payload is missing or has the wrong size is skipped: its content
//!   cannot be known, and the import never invents it.
//! - An unread message of an agent that is no longer a member goes to the archive, as the
//!   original's `leave_project` would have done.
//! - Messages keep their `created_at`, so messages older than their time-to-live are expired
//!   here, as they were for the original.

pub mod convert;
mod folder;
mod report;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::info;

pub use report::{Counts, Finding, ImportReport, ProjectOutcome};

use crate::service::etag::new_etag;
use crate::service::read_source;
use crate::service::validate::{check_id, check_json_text};
use crate::storage::records::{
    AuditRecord, ClientRecord, ManifestRecord, ResourceKind, content_hash,
};
use crate::storage::{StorageError, Store, agent_key};
use folder::{Entry, is_leftover, list, read_limited, unexpected};
use write::{ProjectPlan, write_project};

/// Settings of one import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Largest resource content or message payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// Time-to-live of messages when neither the message nor `system/config.json` sets one.
    pub default_ttl_secs: u64,
    /// The home folder of the machine the folder comes from: file references under it are
    /// also looked for under this machine's HOME.
    pub original_home: Option<PathBuf>,
    /// Read and check everything, write nothing.
    pub dry_run: bool,
}

/// A failure that stops the whole import.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(
        "{path} is not a data folder of the original server ({reason}); pass the folder that \
         holds projects/, clients/ and system/"
    )]
    NotADataFolder { path: PathBuf, reason: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// Returns the maximum size of a JSON file, in bytes: a message file contains a payload of
/// up to `max_payload_bytes`, pretty-printed.
fn max_json_bytes(options: &ImportOptions) -> u64 {
    (options.max_payload_bytes as u64)
        .saturating_mul(4)
        .max(16 * 1024 * 1024)
}

/// Maximum length of a line of `system/audit.log`, in bytes.
const MAX_AUDIT_LINE: usize = 1024 * 1024;
/// An import in progress.
struct Importer<'a> {
    root: &'a Path,
    options: &'a ImportOptions,
    report: ImportReport,
    ttl_secs: u64,
    clients: BTreeMap<String, ClientRecord>,
    audit: BTreeMap<String, Vec<AuditRecord>>,
}

/// Checks that `root` looks like the original server's data folder.
pub fn check_data_folder(root: &Path) -> Result<(), ImportError> {
    let not_a_folder = |reason: &str| ImportError::NotADataFolder {
        path: root.into(),
        reason: reason.to_owned(),
    };
    if !root.exists() {
        return Err(not_a_folder("it does not exist"));
    }
    if !root.is_dir() {
        return Err(not_a_folder("it is a file"));
    }
    if !["projects", "clients", "system"]
        .iter()
        .any(|name| root.join(name).is_dir())
    {
        return Err(not_a_folder("it has none of these folders"));
    }
    Ok(())
}

/// Imports the original server's data folder at `root` into `store`.
///
/// Without a store nothing is written, and the report describes what an import into an empty
/// database would do, as a dry run does.
pub fn import(
    store: Option<&Store>,
    root: &Path,
    options: &ImportOptions,
) -> Result<ImportReport, ImportError> {
    check_data_folder(root)?;
    let dry_run = options.dry_run || store.is_none();
    info!(folder = %root.display(), dry_run, "import started");
    let mut importer = Importer {
        root,
        options,
        report: ImportReport {
            dry_run,
            ..ImportReport::default()
        },
        ttl_secs: options.default_ttl_secs,
        clients: BTreeMap::new(),
        audit: BTreeMap::new(),
    };
    let mut top = list(&mut importer.report, root, "");
    top.retain(|entry| match (entry.name.as_str(), entry.is_dir) {
        ("projects" | "clients" | "system", true) => true,
        ("locks", true) => {
            importer
                .report
                .ignore(&entry.relative, "transient lock files");
            false
        }
        _ => {
            unexpected(&mut importer.report, entry);
            false
        }
    });
    importer.read_system();
    importer.read_clients();
    let present_clients: BTreeSet<String> = match store {
        Some(store) => store.read(|tx| {
            let mut present = BTreeSet::new();
            for client_id in importer.clients.keys() {
                if tx.client(client_id)?.is_some() {
                    present.insert(client_id.clone());
                }
            }
            Ok::<_, StorageError>(present)
        })?,
        None => BTreeSet::new(),
    };

    let projects_dir = root.join("projects");
    if projects_dir.is_dir() {
        for entry in list(&mut importer.report, &projects_dir, "projects") {
            if !entry.is_dir {
                unexpected(&mut importer.report, &entry);
                continue;
            }
            let outcome = match importer.plan_project(&entry) {
                Some(plan) => write_project(store, plan, dry_run, root)?,
                None => ProjectOutcome::Refused,
            };
            if let ProjectOutcome::Imported(counts) = &outcome {
                info!(project_id = %entry.name, ?counts, dry_run, "project imported");
            }
            importer.report.projects.push((entry.name.clone(), outcome));
        }
    }
    let left_out: usize = importer.audit.values().map(Vec::len).sum();
    if left_out > 0 {
        importer.report.note(
            "system/audit.log",
            format!("{left_out} lines belong to projects that were not imported and were left out"),
        );
    }

    let clients = Arc::new(importer.clients.clone());
    importer.report.clients_present = present_clients.len();
    importer.report.clients_imported = clients.len() - present_clients.len();
    if let Some(store) = store.filter(|_| !dry_run && importer.report.clients_imported > 0) {
        store.write(move |tx| {
            for client in clients.values() {
                if tx.client(&client.client_id)?.is_none() {
                    tx.put_client(client)?;
                }
            }
            Ok::<_, StorageError>(())
        })?;
    }
    info!(
        folder = %root.display(),
        projects = importer.report.imported(),
        skipped = importer.report.skipped.len(),
        "import finished"
    );
    Ok(importer.report)
}

impl Importer<'_> {
    /// Reads the message time-to-live from `system/config.json` and the audit log.
    fn read_system(&mut self) {
        let system = self.root.join("system");
        if !system.is_dir() {
            return;
        }
        for entry in list(&mut self.report, &system, "system") {
            match (entry.name.as_str(), entry.is_dir) {
                ("config.json", false) => {
                    let ttl = read_limited(&entry.path, 1024 * 1024)
                        .and_then(|bytes| convert::config_ttl(&bytes));
                    match ttl {
                        Ok(Some(ttl)) => self.ttl_secs = ttl,
                        Ok(None) => {}
                        Err(reason) => self.report.skip(&entry.relative, reason),
                    }
                }
                ("audit.log", false) => self.read_audit(&entry),
                _ => unexpected(&mut self.report, &entry),
            }
        }
    }

    /// Reads the audit log line by line, grouping the lines by project.
    fn read_audit(&mut self, entry: &Entry) {
        let file = match std::fs::File::open(&entry.path) {
            Ok(file) => file,
            Err(err) => {
                return self
                    .report
                    .skip(&entry.relative, format!("cannot be read: {err}"));
            }
        };
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        for number in 1.. {
            line.clear();
            let read = (&mut reader)
                .take(MAX_AUDIT_LINE as u64 + 1)
                .read_until(b'\n', &mut line);
            let relative = format!("{}:{number}", entry.relative);
            match read {
                Ok(0) => break,
                Ok(_) if line.len() > MAX_AUDIT_LINE => {
                    self.report.skip(
                        &relative,
                        format!("line is longer than {MAX_AUDIT_LINE} bytes"),
                    );
                    // Skip the rest of the long line.
                    let mut rest = Vec::new();
                    if reader.read_until(b'\n', &mut rest).is_err() {
                        break;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(err) => {
                    self.report
                        .skip(&relative, format!("cannot be read: {err}"));
                    break;
                }
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match convert::audit_line(&line) {
                Ok((record, project_id)) => self.audit.entry(project_id).or_default().push(record),
                Err(reason) => self.report.skip(&relative, reason),
            }
        }
    }

    /// Reads the client identities and checks the membership indexes.
    fn read_clients(&mut self) {
        let clients = self.root.join("clients");
        if !clients.is_dir() {
            return;
        }
        for folder in list(&mut self.report, &clients, "clients") {
            if !folder.is_dir {
                unexpected(&mut self.report, &folder);
                continue;
            }
            if let Err(err) = check_id("client_id", &folder.name) {
                self.report.skip(&folder.relative, err.message);
                continue;
            }
            for entry in list(&mut self.report, &folder.path, &folder.relative) {
                let bytes = || read_limited(&entry.path, 1024 * 1024);
                match (entry.name.as_str(), entry.is_dir) {
                    ("identity.json", false) => {
                        match bytes().and_then(|b| convert::client(&b, &folder.name)) {
                            Ok(client) => {
                                self.clients.insert(client.client_id.clone(), client);
                            }
                            Err(reason) => self.report.skip(&entry.relative, reason),
                        }
                    }
                    ("memberships.json", false) => {
                        if let Err(reason) = bytes().and_then(|b| convert::memberships(&b)) {
                            self.report.skip(&entry.relative, reason);
                        }
                    }
                    _ => unexpected(&mut self.report, &entry),
                }
            }
        }
    }

    /// Reads and checks one project folder. Returns `None` when the project cannot be
    /// imported, and the report gives the reason.
    fn plan_project(&mut self, folder: &Entry) -> Option<ProjectPlan> {
        if let Err(err) = check_id("project_id", &folder.name) {
            self.report.skip(
                &folder.relative,
                format!("{}; the whole project was not imported", err.message),
            );
            return None;
        }
        let entries = list(&mut self.report, &folder.path, &folder.relative);
        let Some(metadata) = entries
            .iter()
            .find(|e| e.name == "metadata.json" && !e.is_dir)
        else {
            self.report.skip(
                &folder.relative,
                "has no metadata.json; the whole project was not imported",
            );
            return None;
        };
        let project = match read_limited(&metadata.path, max_json_bytes(self.options))
            .and_then(|bytes| convert::project(&bytes, &folder.name))
        {
            Ok(project) => project,
            Err(reason) => {
                self.report.skip(&metadata.relative, reason);
                return None;
            }
        };
        let mut plan = ProjectPlan {
            members: Vec::new(),
            messages: Vec::new(),
            resources: Vec::new(),
            audit: self.audit.remove(&project.project_id).unwrap_or_default(),
            synthesized_clients: Vec::new(),
            project,
        };
        let find = |name: &str| entries.iter().find(|e| e.name == name && e.is_dir);
        if let Some(members) = find("members") {
            self.read_members(&mut plan, members);
        }
        if let Some(messages) = find("messages") {
            self.read_messages(&mut plan, messages);
        }
        if let Some(resources) = find("resources") {
            self.read_resources(&mut plan, resources);
        }
        for entry in &entries {
            let known = match entry.name.as_str() {
                "metadata.json" => !entry.is_dir,
                "members" | "messages" | "resources" => entry.is_dir,
                _ => false,
            };
            if !known {
                unexpected(&mut self.report, entry);
            }
        }
        Some(plan)
    }

    fn read_members(&mut self, plan: &mut ProjectPlan, folder: &Entry) {
        let mut keys = BTreeSet::new();
        for entry in list(&mut self.report, &folder.path, &folder.relative) {
            let stem = entry.name.strip_suffix(".json").filter(|_| !entry.is_dir);
            let Some(stem) = stem else {
                unexpected(&mut self.report, &entry);
                continue;
            };
            if let Err(err) = check_id("agent_name", stem) {
                self.report.skip(&entry.relative, err.message);
                continue;
            }
            let member = read_limited(&entry.path, max_json_bytes(self.options))
                .and_then(|bytes| convert::member(&bytes, &plan.project.project_id, stem));
            let member = match member {
                Ok(member) => member,
                Err(reason) => {
                    self.report.skip(&entry.relative, reason);
                    continue;
                }
            };
            if !keys.insert(agent_key(&member.agent_name)) {
                self.report.skip(
                    &entry.relative,
                    "another member file has the same name in other letter case; names compare \
                     without case here",
                );
                continue;
            }
            if let Some(client_id) = &member.client_id {
                let known = self.clients.contains_key(client_id)
                    || plan
                        .synthesized_clients
                        .iter()
                        .any(|c| &c.client_id == client_id);
                if !known {
                    self.report.note(
                        &entry.relative,
                        format!(
                            "client {client_id} has no identity.json; its client record was made from this member file"
                        ),
                    );
                    plan.synthesized_clients.push(ClientRecord {
                        client_id: client_id.clone(),
                        created_at_ms: member.joined_at_ms,
                        last_seen_ms: member.last_seen_ms,
                    });
                }
            }
            plan.members.push(member);
        }
    }

    fn read_messages(&mut self, plan: &mut ProjectPlan, folder: &Entry) {
        for inbox in list(&mut self.report, &folder.path, &folder.relative) {
            if !inbox.is_dir {
                if !is_leftover(&mut self.report, &inbox) {
                    self.report.skip(
                        &inbox.relative,
                        "message file outside any inbox folder, so its recipient is unknown",
                    );
                }
                continue;
            }
            if let Err(err) = check_id("agent_name", &inbox.name) {
                self.report.skip(&inbox.relative, err.message);
                continue;
            }
            // (file name, read, entry): sorting by file name sorts by delivery time.
            let mut files = Vec::new();
            for entry in list(&mut self.report, &inbox.path, &inbox.relative) {
                if entry.is_dir && entry.name == "archive" {
                    for archived in list(&mut self.report, &entry.path, &entry.relative) {
                        if archived.is_dir {
                            self.report.skip(
                                &archived.relative,
                                "nested folder inside archive/, which the original never writes",
                            );
                        } else {
                            files.push((archived.name.clone(), true, archived));
                        }
                    }
                } else if entry.is_dir {
                    unexpected(&mut self.report, &entry);
                } else {
                    files.push((entry.name.clone(), false, entry));
                }
            }
            files.sort_by(|a, b| a.0.cmp(&b.0));
            self.convert_inbox(plan, &inbox.name, files);
        }
    }

    fn convert_inbox(
        &mut self,
        plan: &mut ProjectPlan,
        recipient: &str,
        files: Vec<(String, bool, Entry)>,
    ) {
        let is_member = plan
            .members
            .iter()
            .any(|m| agent_key(&m.agent_name) == agent_key(recipient));
        let mut seen = BTreeSet::new();
        for (name, archived, entry) in files {
            if is_leftover(&mut self.report, &entry) {
                continue;
            }
            let Some(file_message_id) = message_id_of(&name) else {
                self.report.skip(
                    &entry.relative,
                    "file name is not <24-character stamp>-<message_id>.json",
                );
                continue;
            };
            let place = convert::MessagePlace {
                project_id: &plan.project.project_id,
                recipient,
                file_message_id,
                default_ttl_secs: self.ttl_secs,
                max_payload_bytes: self.options.max_payload_bytes,
            };
            let converted = read_limited(&entry.path, max_json_bytes(self.options))
                .and_then(|bytes| convert::message(&bytes, &place));
            let message = match converted {
                Ok(message) => message,
                Err(reason) => {
                    self.report.skip(&entry.relative, reason);
                    continue;
                }
            };
            if !seen.insert(message.record.message_id.clone()) {
                self.report.skip(
                    &entry.relative,
                    "another file of this inbox holds the same message id",
                );
                continue;
            }
            for note in message.notes {
                self.report.note(&entry.relative, note);
            }
            let read = archived || !is_member;
            if !archived && !is_member {
                self.report.note(
                    &entry.relative,
                    "unread message of an agent that is no longer a member: archived",
                );
            }
            plan.messages
                .push((recipient.to_owned(), read, message.record));
        }
    }

    fn read_resources(&mut self, plan: &mut ProjectPlan, folder: &Entry) {
        for entry in list(&mut self.report, &folder.path, &folder.relative) {
            if !entry.is_dir {
                unexpected(&mut self.report, &entry);
                continue;
            }
            if let Err(err) = check_id("resource_id", &entry.name) {
                self.report.skip(&entry.relative, err.message);
                continue;
            }
            if let Some(resource) = self.read_resource(&plan.project.project_id, &entry) {
                plan.resources.push(resource);
            }
        }
    }

    fn read_resource(
        &mut self,
        project_id: &str,
        folder: &Entry,
    ) -> Option<(ManifestRecord, Option<String>)> {
        let entries = list(&mut self.report, &folder.path, &folder.relative);
        let manifest_entry = entries
            .iter()
            .find(|e| e.name == "manifest.json" && !e.is_dir);
        let payload_dir = entries.iter().find(|e| e.name == "payload" && e.is_dir);
        for entry in &entries {
            if !matches!(
                (entry.name.as_str(), entry.is_dir),
                ("manifest.json", false) | ("payload", true)
            ) {
                unexpected(&mut self.report, entry);
            }
        }
        let payload = payload_dir.map(|dir| dir.path.join("data"));
        let payload = payload.filter(|path| {
            std::fs::symlink_metadata(path).is_ok_and(|meta| meta.file_type().is_file())
        });
        let Some(manifest_entry) = manifest_entry else {
            let reason = if payload.is_some() {
                "payload/data without manifest.json: its etag, name and permissions are unknown"
            } else {
                "has no manifest.json"
            };
            self.report.skip(&folder.relative, reason);
            return None;
        };
        let parsed = read_limited(&manifest_entry.path, max_json_bytes(self.options))
            .and_then(|bytes| convert::manifest(&bytes, project_id, &folder.name));
        let manifest = match parsed {
            Ok(manifest) => manifest,
            Err(reason) => {
                self.report.skip(&manifest_entry.relative, reason);
                return None;
            }
        };
        for note in &manifest.notes {
            self.report.note(&manifest_entry.relative, note.clone());
        }
        let payload_relative = format!("{}/payload/data", folder.relative);
        let (content, source_path) = match (&manifest.source_path, payload) {
            (Some(path), payload) => {
                if payload.is_some() {
                    self.report.note(
                        &payload_relative,
                        "left over from before the resource became a file reference; \
                         source_path is its content",
                    );
                }
                self.reference_content(&manifest_entry.relative, path, manifest.size_bytes)
            }
            (None, Some(payload)) => {
                let limit = self.options.max_payload_bytes as u64;
                let content = read_limited(&payload, limit).and_then(|bytes| {
                    convert::inline_content(&manifest, bytes, self.options.max_payload_bytes)
                });
                match content {
                    Ok(content) => (Some(content), None),
                    Err(reason) => {
                        self.report.skip(&payload_relative, reason);
                        return None;
                    }
                }
            }
            (None, None) => {
                self.report.skip(
                    &folder.relative,
                    "manifest.json has no source_path and payload/data is missing, so the \
                     content is unknown",
                );
                return None;
            }
        };
        let etag = manifest.etag.clone().unwrap_or_else(new_etag);
        let record = ManifestRecord {
            resource_id: manifest.resource_id,
            project_id: manifest.project_id,
            name: manifest.name,
            description: manifest.description,
            created_at_ms: manifest.created_at_ms,
            updated_at_ms: manifest.updated_at_ms,
            etag,
            mime_type: manifest.mime_type,
            size_bytes: content
                .as_ref()
                .map_or(manifest.size_bytes.unwrap_or(0), |c| c.len() as u64),
            source_path: source_path.or(manifest.source_path),
            read: manifest.read,
            write: manifest.write,
            metadata_json: manifest.metadata_json,
            creator: manifest.creator,
            content_hash: content
                .as_ref()
                .map_or(String::new(), |c| content_hash(c.as_bytes())),
            version: 1,
            kind: ResourceKind::Document,
        };
        Some((record, content))
    }

    /// Reads the file a file reference names. Returns its text and, when it was found under
    /// this HOME instead of its recorded path, the path it was found at.
    fn reference_content(
        &mut self,
        relative: &str,
        source_path: &str,
        recorded_size: Option<u64>,
    ) -> (Option<String>, Option<String>) {
        let max = self.options.max_payload_bytes;
        let read = |path: &str| {
            let text = read_source(path, max).map_err(|err| err.message)?;
            check_json_text("content", &text).map_err(|err| err.message)?;
            Ok::<_, String>(text)
        };
        let first = match read(source_path) {
            Ok(text) => return (self.check_size(relative, text, recorded_size), None),
            Err(reason) => reason,
        };
        let rebased = self
            .options
            .original_home
            .as_ref()
            .zip(crate::config::home_dir())
            .and_then(|(old, home)| {
                let rest = Path::new(source_path).strip_prefix(old).ok()?;
                home.join(rest).to_str().map(str::to_owned)
            });
        let mut reasons = vec![first];
        if let Some(rebased) = rebased {
            match read(&rebased) {
                Ok(text) => {
                    self.report.note(
                        relative,
                        format!(
                            "file reference {source_path} read from {rebased}, the same place \
                             under this HOME; source_path now names it"
                        ),
                    );
                    return (
                        self.check_size(relative, text, recorded_size),
                        Some(rebased),
                    );
                }
                Err(reason) => reasons.push(reason),
            }
        } else if self.options.original_home.is_none() {
            reasons.push("pass --original-home to also look for it under this HOME".to_owned());
        }
        self.report.note(
            relative,
            format!(
                "{}; imported without content, so store it again to attach content",
                reasons.join("; ")
            ),
        );
        (None, None)
    }

    fn check_size(
        &mut self,
        relative: &str,
        text: String,
        recorded: Option<u64>,
    ) -> Option<String> {
        if let Some(recorded) = recorded.filter(|size| *size != text.len() as u64) {
            self.report.note(
                relative,
                format!(
                    "the referenced file is {} bytes now; it was {recorded} when it was stored",
                    text.len()
                ),
            );
        }
        Some(text)
    }
}
/// Returns the message id in a message file name `<stamp>-<message_id>.json`, whose stamp is
/// 24 characters such as `2026-12-04T15-27-25-236Z`.
fn message_id_of(file_name: &str) -> Option<&str> {
    let stem = file_name.strip_suffix(".json")?;
    let (stamp, rest) = (stem.get(..24)?, stem.get(24..)?);
    let id = rest.strip_prefix('-')?;
    (stamp.ends_with('Z') && !id.is_empty()).then_some(id)
}
#[cfg(test)]
mod tests {
    #[test]
    fn message_file_names_carry_the_message_id() {
        assert_eq!(
            super::message_id_of(
                "2026-12-04T15-27-25-236Z-1f58934a-d720-40fb-8fe7-1bc54650a72f.json"
            ),
            Some("1f58934a-d720-40fb-8fe7-1bc54650a72f")
        );
        assert_eq!(super::message_id_of("notes.json"), None);
        assert_eq!(super::message_id_of("2026-12-04T15-27-25-236Z.json"), None);
    }
}
