//! Messages: direct and broadcast delivery, and inbox reads that archive what they return.

use serde_json::{Value, json};
use tracing::{debug, info};

use super::arguments::{CheckArguments, Target};
use super::longpoll::WaitOutcome;
use super::requests::*;
use super::{
    Service, WaitControl, WaitKey, page, project_and_member, require_member, require_project,
    same_agent, views,
};
use crate::error::{ErrorCode, ServiceError, ServiceResult};
use crate::storage::WriteTxn;
use crate::storage::records::{MessageRecord, ProjectRecord};
use crate::time::now_ms;

/// The kinds of handoff message, read from a payload's `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handoff {
    Request,
    Accepted,
    Rejected,
}

impl Handoff {
    fn of(payload: &Value) -> Option<Handoff> {
        match payload.get("type").and_then(Value::as_str)? {
            "handoff" => Some(Handoff::Request),
            "handoff_accepted" => Some(Handoff::Accepted),
            "handoff_rejected" => Some(Handoff::Rejected),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Handoff::Request => "handoff",
            Handoff::Accepted => "handoff_accepted",
            Handoff::Rejected => "handoff_rejected",
        }
    }
}

/// Checks the sender's authority for a handoff message and its `reply_expected` flag.
///
/// Only a contributor sends `handoff`, and only the coordinator replies with
/// `handoff_accepted` or `handoff_rejected`. `handoff` and `handoff_rejected` need `reply_expected: true`.
fn check_handoff(
    project: &ProjectRecord,
    sender: &str,
    payload: &Value,
    reply_expected: bool,
) -> ServiceResult<()> {
    let Some(kind) = Handoff::of(payload) else {
        return Ok(());
    };
    let is_coordinator = project
        .coordinator
        .as_deref()
        .is_some_and(|c| same_agent(c, sender));
    let allowed = match kind {
        Handoff::Request => !is_coordinator,
        Handoff::Accepted | Handoff::Rejected => is_coordinator,
    };
    if !allowed {
        let who = if kind == Handoff::Request {
            "a contributor"
        } else {
            "the coordinator"
        };
        return Err(ServiceError::new(
            ErrorCode::HandoffAuthorityError,
            format!(
                "only {who} may send a {} message; agent {sender:?} may not",
                kind.name()
            ),
        )
        .with("type", kind.name())
        .with("coordinator", project.coordinator.clone()));
    }
    if matches!(kind, Handoff::Request | Handoff::Rejected) && !reply_expected {
        return Err(ServiceError::new(
            ErrorCode::HandoffReplyExpectedRequired,
            format!("a {} message needs reply_expected: true", kind.name()),
        )
        .with("type", kind.name()));
    }
    Ok(())
}

/// Fails with `INBOX_FULL` when the recipient's inbox contains `max_inbox` unread messages that
/// have not expired. Expired ones are deleted first to make room.
fn check_inbox_room(
    tx: &WriteTxn,
    project_id: &str,
    recipient: &str,
    max_inbox: usize,
) -> ServiceResult<()> {
    if tx.inbox_len(project_id, recipient, max_inbox)? < max_inbox {
        return Ok(());
    }
    tx.purge_expired(project_id, recipient, now_ms())?;
    if tx.inbox_len(project_id, recipient, max_inbox)? < max_inbox {
        return Ok(());
    }
    Err(ServiceError::new(
        ErrorCode::InboxFull,
        format!(
            "the inbox of {recipient:?} holds {max_inbox} unread messages, the maximum; nothing \
             was sent, so retry after {recipient:?} reads its messages with receive_messages"
        ),
    )
    .with("project_id", project_id)
    .with("agent_name", recipient)
    .with("max_unread", max_inbox))
}

impl Service {
    /// Sends a direct message or a broadcast. A broadcast reaches every member but the
    /// sender in one transaction: all or none.
    pub fn send_message(&self, request: &SendMessageRequest) -> ServiceResult<Value> {
        request.check_arguments()?;
        let reply_expected = request.reply_flag()?;
        let target = request.target()?;
        let payload_json = request.payload.to_string();
        if payload_json.len() > self.config.max_payload_size {
            return Err(ServiceError::new(
                ErrorCode::ResourceTooLarge,
                format!(
                    "payload is {} bytes; the maximum is {} bytes. Send a short message that names a resource holding the data",
                    payload_json.len(),
                    self.config.max_payload_size
                ),
            )
            .with("size_bytes", payload_json.len())
            .with("max_bytes", self.config.max_payload_size));
        }
        let project_id = request.project_id.as_str();
        let metadata = request.metadata.clone();
        let message = MessageRecord {
            message_id: uuid::Uuid::new_v4().to_string(),
            project_id: project_id.to_owned(),
            from_agent: request.from_agent.clone(),
            to_agent: None,
            broadcast: matches!(target, Target::Broadcast),
            reply_expected,
            payload_json,
            created_at_ms: now_ms(),
            ttl_secs: self.config.message_ttl.as_secs(),
            priority: metadata
                .as_ref()
                .and_then(|m| m.priority)
                .map(|p| p.as_str().to_owned()),
            trace_id: metadata.and_then(|m| m.trace_id),
        };

        let max_inbox = self.config.max_inbox;
        let (recipients, message) = self.write({
            let request = request.clone();
            let message = message.clone();
            move |tx| {
                let mut message = message.clone();
                let project_id = request.project_id.as_str();
                let target = request.target()?;
                let project = require_project(tx.project(project_id)?, project_id)?;
                let sender = require_member(
                    tx.member(project_id, &request.from_agent)?,
                    ErrorCode::SenderNotFound,
                    project_id,
                    &request.from_agent,
                )?;
                check_handoff(
                    &project,
                    &sender.agent_name,
                    &request.payload,
                    reply_expected,
                )?;
                message.from_agent = sender.agent_name.clone();
                let recipients: Vec<String> = match target {
                    Target::Direct(to) => {
                        let recipient = require_member(
                            tx.member(project_id, to)?,
                            ErrorCode::RecipientNotFound,
                            project_id,
                            to,
                        )?;
                        message.to_agent = Some(recipient.agent_name.clone());
                        vec![recipient.agent_name]
                    }
                    Target::Broadcast => tx
                        .members(project_id)?
                        .into_iter()
                        .map(|member| member.agent_name)
                        .filter(|name| !same_agent(name, &sender.agent_name))
                        .collect(),
                };
                for recipient in &recipients {
                    check_inbox_room(tx, project_id, recipient, max_inbox)?;
                }
                for recipient in &recipients {
                    tx.push_message(recipient, &message)?;
                }
                Ok((recipients, message))
            }
        })?;

        debug!(project_id, message_id = %message.message_id, from = %message.from_agent, recipients = recipients.len(), "message sent");
        for recipient in &recipients {
            self.waiters.notify(&WaitKey::inbox(project_id, recipient));
        }
        Ok(json!({
            "message_id": message.message_id,
            "project_id": project_id,
            "broadcast": message.broadcast,
            "recipients": recipients,
        }))
    }

    /// Returns unread messages oldest first and archives them, in one write transaction.
    /// Expired messages are purged, not returned. Returns `None` when there is nothing to read.
    fn take_messages(&self, request: &ReceiveMessagesRequest) -> ServiceResult<Option<Value>> {
        let (offset, limit) = page(request.offset, request.limit);
        let include_read = request.include_read == Some(true);
        let now = now_ms();
        let (taken, read_before) = self.write({
            let request = request.clone();
            move |tx| {
                let (_, member) = project_and_member(tx, &request.project_id, &request.agent_name)?;
                let agent = member.agent_name.as_str();
                let purged = tx.purge_expired(&request.project_id, agent, now)?;
                if purged > 0 {
                    info!(project_id = %request.project_id, agent, purged, "expired messages purged");
                }
                // Read messages are collected before this call archives more, so that none is
                // returned twice.
                let read_before = match include_read {
                    true => Some(newest(
                        tx.read_messages(&request.project_id, agent, now)?,
                        limit,
                    )),
                    false => None,
                };
                let unread = tx.inbox(&request.project_id, agent, now)?;
                let taken: Vec<(u64, MessageRecord)> =
                    unread.into_iter().skip(offset).take(limit).collect();
                let seqs: Vec<u64> = taken.iter().map(|(seq, _)| *seq).collect();
                tx.archive_messages(&request.project_id, agent, &seqs)?;
                Ok((taken, read_before))
            }
        })?;
        if taken.is_empty() && request.wait == Some(true) {
            return Ok(None);
        }
        let mut result = render_inbox(taken.into_iter().map(|(_, message)| message).collect());
        if let Some(read_before) = read_before {
            let rendered: Vec<Value> = read_before.iter().map(views::message).collect();
            result["read_messages"] = json!(rendered);
        }
        Ok(Some(result))
    }

    /// Returns the agent's unexpired read messages, oldest first.
    fn recent_reads(&self, request: &ReceiveMessagesRequest) -> ServiceResult<Vec<Value>> {
        self.read(|tx| {
            let (_, member) = project_and_member(tx, &request.project_id, &request.agent_name)?;
            let read = tx.read_messages(&request.project_id, &member.agent_name, now_ms())?;
            let (_, limit) = page(None, request.limit);
            Ok(newest(read, limit).iter().map(views::message).collect())
        })
    }

    /// Returns whether the agent has unread messages past `offset`, without consuming any.
    fn has_messages(&self, request: &ReceiveMessagesRequest) -> ServiceResult<bool> {
        let (offset, _) = page(request.offset, request.limit);
        self.read(|tx| {
            let (_, member) = project_and_member(tx, &request.project_id, &request.agent_name)?;
            Ok(tx
                .inbox(&request.project_id, &member.agent_name, now_ms())?
                .len()
                > offset)
        })
    }

    /// Receives messages; with `wait`, blocks until one arrives or the timeout passes.
    ///
    /// A cancelled wait consumes nothing: messages are taken only after the wait ends and
    /// only when the call is still live.
    pub async fn receive_messages(
        &self,
        request: ReceiveMessagesRequest,
        control: &WaitControl,
    ) -> ServiceResult<Value> {
        request.check_arguments()?;
        let request = std::sync::Arc::new(request);
        if request.wait != Some(true) {
            let request = request.clone();
            let taken = self
                .blocking(move |service| service.take_messages(&request))
                .await?;
            return Ok(taken.unwrap_or_else(|| render_inbox(Vec::new())));
        }
        let timeout = self.wait_timeout(request.timeout_seconds);
        let key = WaitKey::inbox(&request.project_id, &request.agent_name);
        let outcome = self
            .wait_until(key, timeout, control, || {
                let request = request.clone();
                let cancel = control.cancel.clone();
                self.blocking(move |service| {
                    // NOTE: a cancellation that arrives after this check but before the reply
                    // reaches the client still archives the messages taken here.
                    if cancel.is_cancelled() || !service.has_messages(&request)? {
                        return Ok(None);
                    }
                    service.take_messages(&request)
                })
            })
            .await?;
        let waited = match outcome {
            WaitOutcome::Ready(result) => return Ok(result),
            WaitOutcome::TimedOut { waited } => waited,
            // The client is gone, so this result is never read; it keeps the usual shape.
            WaitOutcome::Cancelled => std::time::Duration::ZERO,
        };
        let mut result = render_inbox(Vec::new());
        if let (Some(inbox), Value::Object(timeout)) =
            (result.as_object_mut(), views::timed_out(waited.as_millis()))
        {
            inbox.extend(timeout);
        }
        if request.include_read == Some(true) {
            let request = request.clone();
            let read = self
                .blocking(move |service| service.recent_reads(&request))
                .await?;
            result["read_messages"] = json!(read);
        }
        Ok(result)
    }
}

/// Keeps the newest `limit` messages of a list ordered oldest first.
fn newest(mut messages: Vec<MessageRecord>, limit: usize) -> Vec<MessageRecord> {
    let excess = messages.len().saturating_sub(limit);
    messages.drain(..excess);
    messages
}

/// Renders received messages with reply warnings and handoff guidance.
fn render_inbox(messages: Vec<MessageRecord>) -> Value {
    let mut reply_warnings = Vec::new();
    let mut handoff_alerts = Vec::new();
    for message in &messages {
        if !message.reply_expected {
            reply_warnings.push(json!({
                "message_id": message.message_id,
                "warning": format!(
                    "{} does not expect a reply to this message; answer only if you must",
                    message.from_agent
                ),
            }));
        }
        let payload: Value = serde_json::from_str(&message.payload_json).unwrap_or(Value::Null);
        if let Some(kind) = Handoff::of(&payload) {
            handoff_alerts.push(json!({
                "message_id": message.message_id,
                "type": kind.name(),
                "guidance": handoff_guidance(kind, &message.from_agent),
            }));
        }
    }
    let mut result = json!({
        "messages": messages.iter().map(views::message).collect::<Vec<_>>(),
        "count": messages.len(),
    });
    if !reply_warnings.is_empty() {
        result["reply_warnings"] = json!(reply_warnings);
    }
    if !handoff_alerts.is_empty() {
        result["handoff_alerts"] = json!(handoff_alerts);
    }
    result
}

fn handoff_guidance(kind: Handoff, from: &str) -> String {
    match kind {
        Handoff::Request => format!(
            "{from} hands work to you as coordinator: review it, then send_message to {from} with \
             payload type handoff_accepted, or handoff_rejected with reply_expected: true and your reasons"
        ),
        Handoff::Accepted => {
            format!("the coordinator {from} accepted your handoff; the work is done")
        }
        Handoff::Rejected => format!(
            "the coordinator {from} rejected your handoff: read the reasons, fix the work, and send a new handoff"
        ),
    }
}
