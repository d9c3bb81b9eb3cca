//! Read-only views for prompts: what a client or agent would see, consuming nothing.

use serde_json::{Value, json};

use super::validate::check_id;
use super::{Identity, Service, project_and_member, views};
use crate::error::ServiceResult;
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
}
