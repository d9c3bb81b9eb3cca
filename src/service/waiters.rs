//! In-process wake-ups for long-polls.
//!
//! A waiter registers for a [`WaitKey`] before it checks the database, and every commit that
//! could satisfy it calls [`Waiters::notify`] after the commit lands. Registering first means
//! that a commit between the check and the wait still wakes the waiter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::error::{ErrorCode, ServiceError, ServiceResult};
use crate::storage::agent_key;

/// Object a long-poll waits on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WaitKey {
    /// A message in an agent's inbox.
    Inbox { project_id: String, agent: String },
    /// A change to a resource.
    Resource {
        project_id: String,
        resource_id: String,
    },
    /// A change to a project, including its creation.
    Project { project_id: String },
}

impl WaitKey {
    /// Returns the key of an agent's inbox; agent names match in any case.
    pub fn inbox(project_id: &str, agent_name: &str) -> Self {
        WaitKey::Inbox {
            project_id: project_id.to_owned(),
            agent: agent_key(agent_name),
        }
    }

    /// Returns the key of a resource.
    pub fn resource(project_id: &str, resource_id: &str) -> Self {
        WaitKey::Resource {
            project_id: project_id.to_owned(),
            resource_id: resource_id.to_owned(),
        }
    }

    /// Returns the key of a project.
    pub fn project(project_id: &str) -> Self {
        WaitKey::Project {
            project_id: project_id.to_owned(),
        }
    }
}

struct Slot {
    sender: watch::Sender<u64>,
    waiting: usize,
}

/// Registry of current long-polls, each capped per key.
pub struct Waiters {
    slots: Mutex<Slots>,
    max_per_key: usize,
    max_total: usize,
}

#[derive(Default)]
struct Slots {
    by_key: HashMap<WaitKey, Slot>,
    total: usize,
}

impl Waiters {
    /// Creates a registry that allows `max_per_key` concurrent waits on one key and
    /// `max_total` in all.
    pub fn new(max_per_key: usize, max_total: usize) -> Arc<Self> {
        Arc::new(Waiters {
            slots: Mutex::default(),
            max_per_key,
            max_total,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Registers a wait on `key`. Fails with `TOO_MANY_WAITERS` when the key or the whole
    /// process is at its cap.
    pub fn register(self: &Arc<Self>, key: WaitKey) -> ServiceResult<Ticket> {
        let mut guard = self.lock();
        let slots = &mut *guard;
        if slots.total >= self.max_total {
            return Err(ServiceError::new(
                ErrorCode::TooManyWaiters,
                format!(
                    "the server already runs {} long-polls, its maximum; retry later without wait",
                    slots.total
                ),
            )
            .with("max_long_polls", self.max_total));
        }
        let slot = slots.by_key.entry(key.clone()).or_insert_with(|| Slot {
            sender: watch::Sender::new(0),
            waiting: 0,
        });
        if slot.waiting >= self.max_per_key {
            return Err(ServiceError::new(
                ErrorCode::TooManyWaiters,
                format!(
                    "{} calls already wait on this {}; retry later without wait, or end one of \
                     the waiting calls",
                    slot.waiting,
                    key.noun()
                ),
            )
            .with("max_waiters", self.max_per_key));
        }
        slot.waiting += 1;
        let receiver = slot.sender.subscribe();
        slots.total += 1;
        Ok(Ticket {
            waiters: Arc::clone(self),
            key,
            receiver,
        })
    }

    /// Wakes every waiter registered on `key`.
    pub fn notify(&self, key: &WaitKey) {
        if let Some(slot) = self.lock().by_key.get(key) {
            slot.sender
                .send_modify(|version| *version = version.wrapping_add(1));
        }
    }

    fn release(&self, key: &WaitKey) {
        let mut guard = self.lock();
        let slots = &mut *guard;
        if let Some(slot) = slots.by_key.get_mut(key) {
            slot.waiting -= 1;
            if slot.waiting == 0 {
                slots.by_key.remove(key);
            }
            slots.total -= 1;
        }
    }
}

impl WaitKey {
    fn noun(&self) -> &'static str {
        match self {
            WaitKey::Inbox { .. } => "inbox",
            WaitKey::Resource { .. } => "resource",
            WaitKey::Project { .. } => "project",
        }
    }
}

/// One registered wait. Dropping it frees its place under the cap.
pub struct Ticket {
    waiters: Arc<Waiters>,
    key: WaitKey,
    receiver: watch::Receiver<u64>,
}

impl Ticket {
    /// Waits for the next notification and returns how many commits notified the key since
    /// the last call (or registration), so that a subscriber can report each one.
    pub async fn changed_count(&mut self) -> u64 {
        let seen = *self.receiver.borrow_and_update();
        let _ = self.receiver.changed().await;
        let now = *self.receiver.borrow_and_update();
        now.wrapping_sub(seen).max(1)
    }

    /// Waits until the key is notified after the last call to this method (or registration).
    pub async fn changed(&mut self) {
        // The registry keeps the slot, and so the sender, while any ticket for it exists, so
        // `changed` cannot fail with a closed channel.
        let _ = self.receiver.changed().await;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.waiters.release(&self.key);
    }
}
