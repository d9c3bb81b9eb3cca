//! Read-only views for prompts: what a client or agent would see, consuming nothing.

use serde_json::{Value, json};

use super::resources::{can_read, check_kind};
use super::validate::check_id;
use super::waiters::Ticket;
use super::{Identity, Service, WaitKey, project_and_member, views};
use crate::error::ServiceResult;
use crate::error::{ErrorCode, ServiceError};
use crate::storage::records::{ManifestRecord, ResourceKind};
use crate::time::now_ms;

impl Service {
    /// Returns up to `limit` unread messages of an agent without marking them read.
    pub fn peek_messages(
        &self,
        project_id: &str,
        agent_name: &str,
        limit: usize,
    ) -> ServiceResult<Value> {
        check_id("project_id", project_id)?;
        check_id("agent_name", agent_name)?;
        self.read(|tx| {
            let (_, member) = project_and_member(tx, project_id, agent_name)?;
            let inbox = tx.inbox(project_id, &member.agent_name, now_ms())?;
            let shown: Vec<Value> = inbox
                .iter()
                .take(limit)
                .map(|(_, message)| views::message(message))
                .collect();
            Ok(json!({"unread_count": inbox.len(), "messages": shown}))
        })
    }

    /// Returns the projects a client belongs to, with its agent name in each.
    pub fn client_projects(&self, identity: &Identity) -> ServiceResult<Value> {
        self.read(|tx| {
            let mut projects = Vec::new();
            for membership in tx.memberships(&identity.client_id)? {
                let unread = tx
                    .inbox(&membership.project_id, &membership.agent_name, now_ms())?
                    .len();
                projects.push(json!({
                    "project_id": membership.project_id,
                    "project_name": membership.project_name,
                    "agent_name": membership.agent_name,
                    "unread_count": unread,
                }));
            }
            Ok(json!({"client_id": identity.client_id, "projects": projects}))
        })
    }

    /// Returns the documents a client may read, in every project it is a member of.
    pub fn client_documents(&self, identity: &Identity) -> ServiceResult<Vec<ManifestRecord>> {
        self.read(|tx| {
            let mut documents = Vec::new();
            for membership in tx.memberships(&identity.client_id)? {
                let readable =
                    tx.manifests(&membership.project_id)?
                        .into_iter()
                        .filter(|manifest| {
                            manifest.kind == ResourceKind::Document
                                && can_read(manifest, &membership.agent_name)
                        });
                documents.extend(readable);
            }
            Ok(documents)
        })
    }

    /// Reads a document as the client's agent in its project, checking read permission.
    pub fn client_document(
        &self,
        identity: &Identity,
        project_id: &str,
        resource_id: &str,
    ) -> ServiceResult<(ManifestRecord, String)> {
        check_id("project_id", project_id)?;
        check_id("resource_id", resource_id)?;
        self.read(|tx| {
            let membership = tx
                .membership(&identity.client_id, project_id)?
                .ok_or_else(|| {
                    ServiceError::new(
                        ErrorCode::MemberNotFound,
                        format!(
                            "this client is not a member of project {project_id:?}; join it first"
                        ),
                    )
                })?;
            let manifest = tx.manifest(project_id, resource_id)?.ok_or_else(|| {
                ServiceError::new(
                    ErrorCode::ResourceNotFound,
                    format!("resource {resource_id:?} does not exist in project {project_id:?}"),
                )
            })?;
            check_kind(&manifest, ResourceKind::Document, "resources/read")?;
            if !can_read(&manifest, &membership.agent_name) {
                return Err(ServiceError::new(
                    ErrorCode::ReadPermissionDenied,
                    format!(
                        "agent {:?} may not read resource {resource_id:?}",
                        membership.agent_name
                    ),
                ));
            }
            let bytes = tx.content(project_id, resource_id)?.unwrap_or_default();
            Ok((manifest, String::from_utf8_lossy(&bytes).into_owned()))
        })
    }

    /// Registers a watch on a resource's commits, for a subscription.
    pub fn watch_resource(&self, project_id: &str, resource_id: &str) -> ServiceResult<Ticket> {
        self.waiters
            .register(WaitKey::resource(project_id, resource_id))
    }
}
