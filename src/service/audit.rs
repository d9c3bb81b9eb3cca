//! The audit trail: one record per mutating call, with who acted, on what, and the outcome.
//!
//! A successful call's record is written in the call's own write transaction, so a call is
//! in the trail exactly when its effect is in the database. A failed call's record is written
//! in a transaction of its own.

use std::sync::Arc;

use serde_json::{Value, json};
use tracing::warn;

use super::arguments::CheckArguments;
use super::requests::AuditLogRequest;
use super::{Service, page, project_and_member, same_agent};
use crate::error::{ErrorCode, ServiceError, ServiceResult};
use crate::storage::records::AuditRecord;
use crate::time::{format_ms, now_ms};

/// Maximum text kept in one audit field, in characters.
const MAX_FIELD_CHARS: usize = 256;

/// Caller, tool and target of one call, for its audit record.
#[derive(Debug, Clone, Default)]
pub struct AuditContext {
    pub client_id: Option<String>,
    pub project_id: Option<String>,
    pub actor: Option<String>,
    pub action: String,
    pub target: Option<String>,
}

fn clip(text: &Option<String>) -> Option<String> {
    text.as_ref()
        .map(|text| text.chars().take(MAX_FIELD_CHARS).collect())
}

impl AuditContext {
    /// Builds the record of this call with its outcome; the sequence number is set on write.
    pub fn record(&self, outcome: &str) -> AuditRecord {
        AuditRecord {
            seq: 0,
            at_ms: now_ms(),
            client_id: clip(&self.client_id),
            project_id: clip(&self.project_id),
            actor: clip(&self.actor),
            action: self.action.clone(),
            target: clip(&self.target),
            outcome: outcome.to_owned(),
        }
    }
}

fn view(record: &AuditRecord) -> Value {
    json!({
        "seq": record.seq,
        "at": format_ms(record.at_ms),
        "client_id": record.client_id,
        "project_id": record.project_id,
        "actor": record.actor,
        "action": record.action,
        "target": record.target,
        "outcome": record.outcome,
    })
}

impl Service {
    /// Returns a handle whose writes also record `context` in the audit trail.
    pub fn audited(&self, context: AuditContext) -> Service {
        Service {
            audit: Some(Arc::new(context)),
            ..self.clone()
        }
    }

    /// Records a failed call of an audited handle in a transaction of its own.
    pub fn record_failure(&self, code: ErrorCode) {
        let Some(context) = &self.audit else { return };
        let record = context.record(code.as_str());
        let written = self.store.write(move |tx| {
            tx.push_audit(&mut record.clone())
                .map_err(ServiceError::from)
        });
        if let Err(err) = written {
            warn!(action = %context.action, cause = err.internal.as_deref().unwrap_or_default(), "cannot record a failed call in the audit trail");
        }
    }

    /// Returns audit records in order, filtered by project and acting agent.
    ///
    /// An agent may read the records of a project it is a member of. An operator, who has the
    /// data folder's token, may read every project's records.
    pub fn audit_log(&self, request: &AuditLogRequest, operator: bool) -> ServiceResult<Value> {
        request.check_arguments()?;
        let (_, limit) = page(None, request.limit);
        let from = request.after.unwrap_or(0).saturating_add(1);
        self.read(|tx| {
            // A project id can be reused after a delete, so an agent reads only the records
            // written since its project was created.
            let mut since_ms = i64::MIN;
            if !operator {
                let (Some(project_id), Some(agent_name)) = (&request.project_id, &request.agent_name)
                else {
                    let missing = if request.project_id.is_none() { "project_id" } else { "agent_name" };
                    return Err(ServiceError::invalid_parameter(
                        missing,
                        format!("missing required argument {missing:?}: audit_log needs project_id and agent_name (a member of that project)"),
                    ));
                };
                let (project, _) = project_and_member(tx, project_id, agent_name)?;
                since_ms = project.created_at_ms;
            }
            let records = tx.audit(from, limit, |record| {
                let project_matches = request
                    .project_id
                    .as_ref()
                    .is_none_or(|p| record.project_id.as_ref() == Some(p));
                let actor_matches = request.actor.as_ref().is_none_or(|actor| {
                    record
                        .actor
                        .as_deref()
                        .is_some_and(|a| same_agent(a, actor))
                });
                project_matches && actor_matches && record.at_ms >= since_ms
            })?;
            Ok(json!({
                "records": records.iter().map(view).collect::<Vec<_>>(),
                "count": records.len(),
                "next_after": records.last().map_or(from - 1, |record| record.seq),
            }))
        })
    }
}
