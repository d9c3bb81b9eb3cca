//! Writing one checked project: everything in one transaction, or nothing.

use std::path::Path;
use std::sync::Arc;

use super::Counts;
use super::ProjectOutcome;
use crate::storage::records::{
    AuditRecord, ClientRecord, HistoryRecord, ManifestRecord, MemberRecord, MembershipRecord,
    MessageRecord, ProjectRecord,
};
use crate::storage::{StorageError, Store, WriteTxn};

/// Everything one project folder holds, checked and converted, ready to be written.
pub(super) struct ProjectPlan {
    pub project: ProjectRecord,
    pub members: Vec<MemberRecord>,
    /// Recipient, whether the message was read, and the message, in delivery order.
    pub messages: Vec<(String, bool, MessageRecord)>,
    /// Manifests with their content; `None` for a file reference whose file was not found.
    pub resources: Vec<(ManifestRecord, Option<String>)>,
    pub audit: Vec<AuditRecord>,
    /// Clients that members name but that have no identity file.
    pub synthesized_clients: Vec<ClientRecord>,
}

impl ProjectPlan {
    fn counts(&self) -> Counts {
        let archived = self.messages.iter().filter(|(_, read, _)| *read).count();
        Counts {
            members: self.members.len(),
            unread: self.messages.len() - archived,
            archived,
            resources: self.resources.len(),
            audit_records: self.audit.len(),
        }
    }
}

/// Writes one project in one transaction, unless a project with its id exists already.
///
/// A dry run only reads whether the project exists, and without a store nothing exists.
pub(super) fn write_project(
    store: Option<&Store>,
    plan: ProjectPlan,
    dry_run: bool,
    root: &Path,
) -> Result<ProjectOutcome, StorageError> {
    let Some(store) = store else {
        return Ok(ProjectOutcome::Imported(plan.counts()));
    };
    let project_id = plan.project.project_id.clone();
    if dry_run {
        let present = store.read(|tx| Ok::<_, StorageError>(tx.project(&project_id)?.is_some()))?;
        return Ok(if present {
            ProjectOutcome::AlreadyPresent
        } else {
            ProjectOutcome::Imported(plan.counts())
        });
    }
    let source = root.display().to_string();
    let plan = Arc::new(plan);
    store.write(move |tx| {
        if tx.project(&plan.project.project_id)?.is_some() {
            return Ok(ProjectOutcome::AlreadyPresent);
        }
        write_plan(tx, &plan, &source)?;
        Ok(ProjectOutcome::Imported(plan.counts()))
    })
}

fn write_plan(tx: &WriteTxn, plan: &ProjectPlan, source: &str) -> Result<(), StorageError> {
    let project = &plan.project;
    tx.put_project(project)?;
    for client in &plan.synthesized_clients {
        if tx.client(&client.client_id)?.is_none() {
            tx.put_client(client)?;
        }
    }
    for member in &plan.members {
        tx.put_member(member)?;
        if let Some(client_id) = &member.client_id {
            let membership = MembershipRecord {
                project_id: project.project_id.clone(),
                agent_name: member.agent_name.clone(),
                project_name: project.name.clone(),
                joined_at_ms: member.joined_at_ms,
            };
            tx.put_membership(client_id, &membership)?;
        }
    }
    for (recipient, read, message) in &plan.messages {
        let seq = tx.push_message(recipient, message)?;
        if *read {
            tx.archive_messages(&project.project_id, recipient, &[seq])?;
        }
    }
    for (manifest, content) in &plan.resources {
        let Some(content) = content else {
            tx.put_manifest(manifest)?;
            continue;
        };
        tx.put_resource(manifest, content.as_bytes())?;
        let version = HistoryRecord {
            version: manifest.version,
            etag: manifest.etag.clone(),
            author: manifest.creator.clone(),
            at_ms: manifest.updated_at_ms,
            size_bytes: manifest.size_bytes,
            content_hash: manifest.content_hash.clone(),
            content: content.as_bytes().to_vec(),
        };
        tx.put_history(&project.project_id, &manifest.resource_id, &version, 1)?;
    }
    for record in &plan.audit {
        tx.push_audit(&mut record.clone())?;
    }
    tx.push_audit(&mut AuditRecord {
        seq: 0,
        at_ms: crate::time::now_ms(),
        client_id: None,
        project_id: Some(project.project_id.clone()),
        actor: None,
        action: "import".to_owned(),
        target: Some(source.to_owned()),
        outcome: "ok".to_owned(),
    })?;
    Ok(())
}
