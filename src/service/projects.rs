//! Projects: create, describe, list, hand over coordination, archive, delete.

use std::time::Duration;

use serde_json::{Value, json};
use tracing::info;

use super::arguments::CheckArguments;
use super::longpoll::WaitOutcome;
use super::requests::*;
use super::validate::check_id;
use super::{
    Identity, Service, WaitControl, WaitKey, members, page, project_and_member, require_member,
    require_project, same_agent, views,
};
use crate::error::{ErrorCode, ServiceError, ServiceResult};
use crate::storage::records::ProjectRecord;
use crate::time::now_ms;

impl Service {
    /// Creates a project; with `created_by`, joins that agent as coordinator in the same
    /// transaction. Fails with `PROJECT_EXISTS` when the id is taken.
    pub fn create_project(
        &self,
        identity: &Identity,
        request: CreateProjectRequest,
    ) -> ServiceResult<Value> {
        request.check_arguments()?;
        let context_json = request.context.as_ref().map(|context| {
            serde_json::to_string(context).expect("a JSON object always serializes")
        });
        let now = now_ms();
        let project = ProjectRecord {
            project_id: request.project_id.clone(),
            name: request.name.clone(),
            description: request.description.clone(),
            context_json,
            created_at_ms: now,
            created_by: request.created_by.clone(),
            coordinator: request.created_by.clone(),
            archived: false,
            archived_at_ms: None,
            archived_by: None,
            archive_reason: None,
        };

        let joined = self.write({
            let project = project.clone();
            let identity = identity.clone();
            move |tx| {
                if tx.project(&project.project_id)?.is_some() {
                    return Err(ServiceError::new(
                        ErrorCode::ProjectExists,
                        format!(
                            "project {:?} already exists; join it with join_project or pick another id",
                            project.project_id
                        ),
                    )
                    .with("project_id", project.project_id.as_str()));
                }
                tx.put_project(&project)?;
                match &project.created_by {
                    Some(creator) => {
                        members::claim(tx, &identity, &project, creator, None, None, now).map(Some)
                    }
                    None => Ok(None),
                }
            }
        })?;

        info!(project_id = %project.project_id, created_by = ?project.created_by, "project created");
        self.waiters.notify(&WaitKey::project(&project.project_id));
        let mut result = json!({"project": views::project(&project)});
        if let Some(member) = joined {
            result["agent_id"] = json!(member.agent_id);
            result["role"] = json!("coordinator");
        }
        Ok(result)
    }

    /// Returns a project with its members and coordinator.
    pub fn project_info(&self, project_id: &str) -> ServiceResult<Value> {
        check_id("project_id", project_id)?;
        self.read(|tx| {
            let project = require_project(tx.project(project_id)?, project_id)?;
            let members = tx.members(project_id)?;
            Ok(json!({
                "project": views::project(&project),
                "members": members.iter().map(views::member).collect::<Vec<_>>(),
                "coordinator": project.coordinator,
            }))
        })
    }

    /// Returns a project's info, waiting up to `timeout` for it to be created when asked to.
    pub async fn project_info_wait(
        &self,
        request: ProjectInfoRequest,
        control: &WaitControl,
    ) -> ServiceResult<Value> {
        request.check_arguments()?;
        if request.wait != Some(true) {
            let project_id = request.project_id;
            return self
                .blocking(move |service| service.project_info(&project_id))
                .await;
        }
        let timeout = self.wait_timeout(request.timeout_seconds);
        let key = WaitKey::project(&request.project_id);
        let outcome = self
            .wait_until(key, timeout, control, || {
                let project_id = request.project_id.clone();
                self.blocking(move |service| match service.project_info(&project_id) {
                    Ok(info) => Ok(Some(info)),
                    Err(err) if err.code == ErrorCode::ProjectNotFound => Ok(None),
                    Err(err) => Err(err),
                })
            })
            .await?;
        Ok(finish_wait(outcome))
    }

    /// Returns a page of projects, the total count and the page bounds.
    pub fn list_projects(&self, request: &ListProjectsRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        let (offset, limit) = page(request.offset, request.limit);
        let (projects, total) = self.read(|tx| Ok(tx.projects(offset, limit)?))?;
        Ok(json!({
            "projects": projects.iter().map(views::project).collect::<Vec<_>>(),
            "count": total,
            "pagination": {"offset": offset, "limit": limit, "returned": projects.len()},
        }))
    }

    /// Makes `to_agent` the coordinator. Only the current coordinator may do so.
    pub fn handover_coordinator(&self, request: &HandoverRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        let project_id = request.project_id.as_str();
        let (from, to) = self.write({
            let request = request.clone();
            move |tx| {
                let project_id = request.project_id.as_str();
                let mut project = require_project(tx.project(project_id)?, project_id)?;
                let from = require_member(
                    tx.member(project_id, &request.from_agent)?,
                    ErrorCode::FromAgentNotFound,
                    project_id,
                    &request.from_agent,
                )?;
                let to = require_member(
                    tx.member(project_id, &request.to_agent)?,
                    ErrorCode::ToAgentNotFound,
                    project_id,
                    &request.to_agent,
                )?;
                let is_coordinator = project.coordinator.as_deref().is_some_and(|c| same_agent(c, &from.agent_name));
                if !is_coordinator {
                    return Err(ServiceError::new(
                        ErrorCode::NotCoordinator,
                        format!(
                            "agent {:?} is not the coordinator of project {project_id:?} (the coordinator is {}); only the coordinator can hand over",
                            from.agent_name,
                            project.coordinator.as_deref().map_or("nobody".to_owned(), |c| format!("{c:?}"))
                        ),
                    )
                    .with("project_id", project_id)
                    .with("coordinator", project.coordinator.clone()));
                }
                if same_agent(&from.agent_name, &to.agent_name) {
                    return Err(ServiceError::new(
                        ErrorCode::AlreadyCoordinator,
                        format!("agent {:?} is already the coordinator of project {project_id:?}", to.agent_name),
                    )
                    .with("project_id", project_id));
                }
                project.coordinator = Some(to.agent_name.clone());
                tx.put_project(&project)?;
                Ok((from.agent_name, to.agent_name))
            }
        })?;
        info!(project_id, from = %from, to = %to, "coordinator handed over");
        self.waiters.notify(&WaitKey::project(project_id));
        Ok(json!({"project_id": project_id, "coordinator": to, "previous_coordinator": from}))
    }

    /// Marks a project archived. Only its creator may; the project stays readable.
    pub fn archive_project(&self, request: &ArchiveProjectRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        let project = self.write({
            let request = request.clone();
            move |tx| {
                let (mut project, member) =
                    project_and_member(tx, &request.project_id, &request.agent_name)?;
                check_creator(
                    &project,
                    &member.agent_name,
                    ErrorCode::ArchivePermissionDenied,
                    "archive",
                )?;
                project.archived = true;
                project.archived_at_ms = Some(now_ms());
                project.archived_by = Some(member.agent_name.clone());
                project.archive_reason = request.reason.clone();
                tx.put_project(&project)?;
                Ok(project)
            }
        })?;
        info!(project_id = %project.project_id, agent = %request.agent_name, "project archived");
        self.waiters.notify(&WaitKey::project(&project.project_id));
        Ok(json!({"project": views::project(&project)}))
    }

    /// Deletes a project with its members, messages, resources and client memberships.
    /// Only its creator may.
    pub fn delete_project(&self, request: &ProjectAgentRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        self.write({
            let request = request.clone();
            move |tx| {
                let (project, member) =
                    project_and_member(tx, &request.project_id, &request.agent_name)?;
                check_creator(
                    &project,
                    &member.agent_name,
                    ErrorCode::DeletePermissionDenied,
                    "delete",
                )?;
                tx.delete_project(&project.project_id)?;
                Ok(())
            }
        })?;
        info!(project_id = %request.project_id, agent = %request.agent_name, "project deleted");
        self.waiters.notify(&WaitKey::project(&request.project_id));
        Ok(json!({"deleted": true, "project_id": request.project_id}))
    }
}

/// Checks that `agent_name` created the project; `verb` names the refused action.
fn check_creator(
    project: &ProjectRecord,
    agent_name: &str,
    denied: ErrorCode,
    verb: &str,
) -> ServiceResult<()> {
    let Some(creator) = &project.created_by else {
        return Err(ServiceError::new(
            ErrorCode::NoCreatorDefined,
            format!(
                "project {:?} was created without created_by, so no agent may {verb} it",
                project.project_id
            ),
        )
        .with("project_id", project.project_id.as_str()));
    };
    if !same_agent(creator, agent_name) {
        return Err(ServiceError::new(
            denied,
            format!(
                "only the creator {creator:?} may {verb} project {:?}",
                project.project_id
            ),
        )
        .with("project_id", project.project_id.as_str())
        .with("agent_name", agent_name));
    }
    Ok(())
}

/// Turns the end of a long-poll into its result: the value, or a normal timed-out result.
pub(super) fn finish_wait(outcome: WaitOutcome<Value>) -> Value {
    match outcome {
        WaitOutcome::Ready(value) => value,
        WaitOutcome::TimedOut { waited } => views::timed_out(waited.as_millis()),
        WaitOutcome::Cancelled => views::timed_out(Duration::ZERO.as_millis()),
    }
}
