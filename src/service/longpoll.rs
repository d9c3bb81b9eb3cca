//! The long-poll loop shared by every tool that takes `wait`.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{Service, WaitKey};
use crate::error::ServiceResult;

/// Callback that reports how long a long-poll has waited so far.
pub type Progress = Box<dyn Fn(Duration) + Send + Sync>;

/// Cancellation and progress reporting of one long-poll.
pub struct WaitControl {
    /// Fires when the client cancels the call.
    pub cancel: CancellationToken,
    /// Called about every `progress_interval` while waiting, when the client asked for progress.
    pub progress: Option<Progress>,
}

/// End state of a long-poll.
pub enum WaitOutcome<T> {
    /// The check returned a value.
    Ready(T),
    /// The timeout passed first.
    TimedOut { waited: Duration },
    /// The client cancelled the call.
    Cancelled,
}

impl Service {
    /// Runs `check` until it returns a value, waking when `key` is notified after a commit.
    ///
    /// The wait is registered before the first check, so a commit that lands between a check
    /// and the wait still wakes it. No transaction or lock is held while waiting.
    pub(super) async fn wait_until<T, F, Fut>(
        &self,
        key: WaitKey,
        timeout: Duration,
        control: &WaitControl,
        mut check: F,
    ) -> ServiceResult<WaitOutcome<T>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ServiceResult<Option<T>>>,
    {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + timeout;
        let mut ticket = self.waiters.register(key)?;
        let mut progress = tokio::time::interval_at(
            tokio::time::Instant::now() + self.config.progress_interval,
            self.config.progress_interval,
        );
        loop {
            if control.cancel.is_cancelled() {
                return Ok(WaitOutcome::Cancelled);
            }
            if let Some(value) = check().await? {
                return Ok(WaitOutcome::Ready(value));
            }
            loop {
                tokio::select! {
                    _ = ticket.changed() => break,
                    _ = tokio::time::sleep_until(deadline) => {
                        return Ok(WaitOutcome::TimedOut { waited: started.elapsed() });
                    }
                    _ = control.cancel.cancelled() => return Ok(WaitOutcome::Cancelled),
                    _ = self.lifecycle.stopping.cancelled() => {
                        return Ok(WaitOutcome::TimedOut { waited: started.elapsed() });
                    }
                    _ = progress.tick() => {
                        if let Some(report) = &control.progress {
                            report(started.elapsed());
                        }
                    }
                }
            }
        }
    }
}
