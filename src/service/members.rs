//! Sessions and membership: status, join (with name reclaiming), leave, heartbeat.

use serde_json::{Value, json};
use tracing::info;

use super::arguments::CheckArguments;
use super::requests::*;
use super::{Identity, Service, WaitKey, project_and_member, require_project, same_agent};
use crate::error::{ErrorCode, ServiceError, ServiceResult};
use crate::storage::records::{ClientRecord, MemberRecord, MembershipRecord, ProjectRecord};
use crate::storage::{WriteTxn, agent_key};
use crate::time::{format_ms, now_ms};

/// Most capabilities one member may list.
pub const MAX_CAPABILITIES: usize = 64;
/// Most labels one member may carry.
pub const MAX_LABELS: usize = 64;
/// Maximum length of a capability, label key or label value, in characters.
pub const MAX_TAG_LENGTH: usize = 256;

const COORDINATOR_ROLE: &str = "You coordinate this project: you accept or reject handoffs \
    (messages with type handoff_accepted / handoff_rejected), and may hand the role to another \
    member with handover_coordinator.";
const CONTRIBUTOR_ROLE: &str = "You contribute to this project: send work to the coordinator \
    with a message of type handoff (reply_expected: true) and wait for its answer.";

const NO_COORDINATOR_ROLE: &str = "You contribute to this project. It has no coordinator, so \
    handoffs cannot be accepted; work with the other members through messages and resources.";

fn role_of(project: &ProjectRecord, agent_name: &str) -> &'static str {
    match &project.coordinator {
        Some(coordinator) if same_agent(coordinator, agent_name) => "coordinator",
        _ => "contributor",
    }
}

impl Service {
    /// Starts a session: records the client and returns its memberships with role, unread
    /// count and online state. Counting unread messages consumes none of them.
    pub fn status(&self, identity: &Identity) -> ServiceResult<Value> {
        let now = now_ms();
        let projects = self.write({
            let identity = identity.clone();
            move |tx| {
                let client = match tx.client(&identity.client_id)? {
                    Some(client) => ClientRecord {
                        last_seen_ms: now,
                        ..client
                    },
                    None => ClientRecord {
                        client_id: identity.client_id.clone(),
                        created_at_ms: now,
                        last_seen_ms: now,
                    },
                };
                tx.put_client(&client)?;
                let mut projects = Vec::new();
                for membership in tx.memberships(&identity.client_id)? {
                    let Some(project) = tx.project(&membership.project_id)? else {
                        continue;
                    };
                    let member = tx.member(&membership.project_id, &membership.agent_name)?;
                    let unread = tx
                        .inbox(&membership.project_id, &membership.agent_name, now)?
                        .len();
                    projects.push(json!({
                        "project_id": project.project_id,
                        "project_name": project.name,
                        "agent_name": membership.agent_name,
                        "role": role_of(&project, &membership.agent_name),
                        "unread_count": unread,
                        "online": member.is_some_and(|m| m.online),
                        "archived": project.archived,
                        "joined_at": format_ms(membership.joined_at_ms),
                    }));
                }
                Ok(projects)
            }
        })?;
        let unread: u64 = projects
            .iter()
            .filter_map(|p| p["unread_count"].as_u64())
            .sum();
        let summary = format!(
            "client {} is a member of {} project(s) with {} unread message(s)",
            identity.client_id,
            projects.len(),
            unread
        );
        Ok(json!({
            "client_id": identity.client_id,
            "working_directory": identity.working_directory,
            "projects": projects,
            "summary": summary,
        }))
    }

    /// Joins a project, or reclaims the name when the same client joined under it before.
    pub fn join_project(
        &self,
        identity: &Identity,
        request: &JoinProjectRequest,
    ) -> ServiceResult<Value> {
        request.check_arguments()?;
        let now = now_ms();
        let (project, member) = self.write({
            let request = request.clone();
            let identity = identity.clone();
            move |tx| {
                let project =
                    require_project(tx.project(&request.project_id)?, &request.project_id)?;
                let member = claim(
                    tx,
                    &identity,
                    &project,
                    &request.agent_name,
                    request.capabilities.clone(),
                    request.labels.clone(),
                    now,
                )?;
                Ok((project, member))
            }
        })?;
        info!(project_id = %project.project_id, agent = %member.agent_name, client_id = %identity.client_id, "agent joined");
        self.waiters.notify(&WaitKey::project(&project.project_id));
        let role = role_of(&project, &member.agent_name);
        Ok(json!({
            "project_id": project.project_id,
            "project_name": project.name,
            "agent_name": member.agent_name,
            "agent_id": member.agent_id,
            "role": role,
            "role_description": match (role, &project.coordinator) {
                ("coordinator", _) => COORDINATOR_ROLE,
                (_, Some(_)) => CONTRIBUTOR_ROLE,
                (_, None) => NO_COORDINATOR_ROLE,
            },
            "joined_at": format_ms(member.joined_at_ms),
        }))
    }

    /// Archives the agent's unread messages and removes its membership. The name is free
    /// again afterwards.
    pub fn leave_project(&self, request: &ProjectAgentRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        let (archived, coordinator) = self.write({
            let request = request.clone();
            move |tx| {
                let (mut project, member) =
                    project_and_member(tx, &request.project_id, &request.agent_name)?;
                let unread: Vec<u64> = tx
                    .inbox(&project.project_id, &member.agent_name, i64::MIN)?
                    .into_iter()
                    .map(|(seq, _)| seq)
                    .collect();
                tx.archive_messages(&project.project_id, &member.agent_name, &unread)?;
                tx.delete_member(&project.project_id, &member.agent_name)?;
                if let Some(client_id) = &member.client_id {
                    tx.delete_membership(client_id, &project.project_id)?;
                }
                // A departing coordinator hands the role to the longest-standing member, so that
                // handoffs keep working. With no member left, the project has no coordinator.
                let leaves_role = role_of(&project, &member.agent_name) == "coordinator";
                if leaves_role {
                    let successor = tx
                        .members(&project.project_id)?
                        .into_iter()
                        .min_by_key(|m| m.joined_at_ms);
                    project.coordinator = successor.map(|m| m.agent_name);
                    tx.put_project(&project)?;
                }
                Ok((unread.len(), project.coordinator))
            }
        })?;
        info!(project_id = %request.project_id, agent = %request.agent_name, archived, "agent left");
        self.waiters.notify(&WaitKey::project(&request.project_id));
        Ok(json!({
            "left": true,
            "project_id": request.project_id,
            "agent_name": request.agent_name,
            "archived_messages": archived,
            "coordinator": coordinator,
        }))
    }

    /// Updates a member's `last_seen` and `online`.
    pub fn heartbeat(&self, request: &HeartbeatRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        let now = now_ms();
        let online = request.online.unwrap_or(true);
        let member = self.write({
            let request = request.clone();
            move |tx| {
                let (_, mut member) =
                    project_and_member(tx, &request.project_id, &request.agent_name)?;
                member.last_seen_ms = now;
                member.online = online;
                tx.put_member(&member)?;
                Ok(member)
            }
        })?;
        Ok(json!({
            "project_id": member.project_id,
            "agent_name": member.agent_name,
            "online": member.online,
            "last_seen": format_ms(member.last_seen_ms),
        }))
    }
}

/// Checks the counts and lengths of a member's capabilities and labels.
pub(crate) fn check_tags(
    capabilities: &[String],
    labels: Option<&std::collections::BTreeMap<String, String>>,
) -> ServiceResult<()> {
    if capabilities.len() > MAX_CAPABILITIES {
        return Err(ServiceError::invalid_parameter(
            "capabilities",
            format!(
                "capabilities lists {} entries; the maximum is {MAX_CAPABILITIES}",
                capabilities.len()
            ),
        ));
    }
    if labels.is_some_and(|labels| labels.len() > MAX_LABELS) {
        return Err(ServiceError::invalid_parameter(
            "labels",
            format!("labels has more than {MAX_LABELS} entries"),
        ));
    }
    let long = |text: &String| text.chars().count() > MAX_TAG_LENGTH;
    if capabilities.iter().any(long) {
        return Err(ServiceError::invalid_parameter(
            "capabilities",
            format!("a capability is longer than {MAX_TAG_LENGTH} characters"),
        )
        .with("max_length", MAX_TAG_LENGTH));
    }
    let label_texts = labels.into_iter().flatten().flat_map(|(k, v)| [k, v]);
    if label_texts.into_iter().any(long) {
        return Err(ServiceError::invalid_parameter(
            "labels",
            format!("a label key or value is longer than {MAX_TAG_LENGTH} characters"),
        )
        .with("max_length", MAX_TAG_LENGTH));
    }
    Ok(())
}

/// Claims `agent_name` in `project` for the client of `identity`, inside the caller's
/// write transaction, so that the check and the claim are one step.
///
/// A client may hold one name per project (`CLIENT_ALREADY_MEMBER`), and a name belongs to
/// one client (`AGENT_NAME_TAKEN`, compared without letter case). The same client rejoining
/// keeps its `agent_id` and `joined_at`.
pub(super) fn claim(
    tx: &WriteTxn,
    identity: &Identity,
    project: &ProjectRecord,
    agent_name: &str,
    capabilities: Option<Vec<String>>,
    labels: Option<std::collections::BTreeMap<String, String>>,
    now: i64,
) -> ServiceResult<MemberRecord> {
    let project_id = project.project_id.as_str();
    if let Some(held) = tx.membership(&identity.client_id, project_id)? {
        if agent_key(&held.agent_name) != agent_key(agent_name) {
            return Err(ServiceError::new(
                ErrorCode::ClientAlreadyMember,
                format!(
                    "this client is already in project {project_id:?} as {:?}; rejoin under that name or leave_project first",
                    held.agent_name
                ),
            )
            .with("project_id", project_id)
            .with("agent_name", held.agent_name));
        }
    }
    let member = match tx.member(project_id, agent_name)? {
        Some(existing) if existing.client_id.as_deref() != Some(identity.client_id.as_str()) => {
            return Err(ServiceError::new(
                ErrorCode::AgentNameTaken,
                format!(
                    "agent name {agent_name:?} in project {project_id:?} belongs to another client \
                     (names are compared without letter case); pick another name"
                ),
            )
            .with("project_id", project_id)
            .with("agent_name", existing.agent_name));
        }
        Some(existing) => MemberRecord {
            capabilities: capabilities.unwrap_or(existing.capabilities.clone()),
            labels: labels.unwrap_or(existing.labels.clone()),
            last_seen_ms: now,
            online: true,
            ..existing
        },
        None => MemberRecord {
            project_id: project_id.to_owned(),
            agent_name: agent_name.to_owned(),
            agent_id: uuid::Uuid::new_v4().to_string(),
            client_id: Some(identity.client_id.clone()),
            capabilities: capabilities.unwrap_or_default(),
            labels: labels.unwrap_or_default(),
            joined_at_ms: now,
            last_seen_ms: now,
            online: true,
        },
    };
    tx.put_member(&member)?;
    if tx.client(&identity.client_id)?.is_none() {
        tx.put_client(&ClientRecord {
            client_id: identity.client_id.clone(),
            created_at_ms: now,
            last_seen_ms: now,
        })?;
    }
    tx.put_membership(
        &identity.client_id,
        &MembershipRecord {
            project_id: project_id.to_owned(),
            agent_name: member.agent_name.clone(),
            project_name: project.name.clone(),
            joined_at_ms: member.joined_at_ms,
        },
    )?;
    Ok(member)
}
