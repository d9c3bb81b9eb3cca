//! Helpers for programs that drive brainstorm as MCP clients: the tests, and benchmarks.

use std::future::Future;
use std::time::Duration;

/// Exponential backoff with full jitter for retrying after an etag conflict.
///
/// Attempt `n` (from 0) waits a random time between zero and
/// `min(max_delay, initial_delay * 2^n)`, so that writers that collided spread out instead of
/// colliding again.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// Attempts before giving up, the first one included.
    pub max_attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial_delay: Duration::from_millis(2),
            max_delay: Duration::from_millis(250),
            max_attempts: 100,
        }
    }
}

impl Backoff {
    /// Returns the upper bound of the wait before retry number `retry` (0 for the first).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }

    /// Returns a random wait before retry number `retry`, up to [`Backoff::ceiling`].
    pub fn delay(&self, retry: u32) -> Duration {
        self.ceiling(retry).mul_f64(rand::random::<f64>())
    }
}

/// Outcome of [`retry_on_conflict`]: the value and how many conflicts preceded it.
#[derive(Debug, Clone, PartialEq)]
pub struct Retried<T> {
    pub value: T,
    pub conflicts: u32,
}

/// Runs `attempt` until it succeeds, waiting with `backoff` after each failure that
/// `is_conflict` accepts (an `ETAG_MISMATCH`, typically), and returns the value with the
/// number of conflicts.
///
/// Each attempt must read the current state itself, so that it retries with a fresh etag.
/// Other failures, and the last conflict once `max_attempts` is reached, are returned as
/// they are.
pub async fn retry_on_conflict<T, E, F, Fut>(
    backoff: &Backoff,
    is_conflict: impl Fn(&E) -> bool,
    mut attempt: F,
) -> Result<Retried<T>, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut conflicts = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(Retried { value, conflicts }),
            Err(err) if is_conflict(&err) && conflicts + 1 < backoff.max_attempts => {
                tokio::time::sleep(backoff.delay(conflicts)).await;
                conflicts += 1;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_maximum() {
        let backoff = Backoff::default();
        assert_eq!(backoff.ceiling(0), Duration::from_millis(2));
        assert_eq!(backoff.ceiling(3), Duration::from_millis(16));
        assert_eq!(backoff.ceiling(30), Duration::from_millis(250));
        assert!(backoff.delay(3) <= backoff.ceiling(3));
    }

    #[tokio::test]
    async fn retries_conflicts_and_stops_on_other_errors() {
        let backoff = Backoff {
            initial_delay: Duration::ZERO,
            ..Backoff::default()
        };
        let mut calls = 0;
        let outcome = retry_on_conflict(
            &backoff,
            |err: &&str| *err == "conflict",
            || {
                calls += 1;
                let result = if calls < 3 {
                    Err("conflict")
                } else {
                    Ok(calls)
                };
                async move { result }
            },
        )
        .await;
        assert_eq!(
            outcome,
            Ok(Retried {
                value: 3,
                conflicts: 2
            })
        );

        let failed: Result<Retried<()>, &str> = retry_on_conflict(
            &backoff,
            |err: &&str| *err == "conflict",
            || async { Err("broken") },
        )
        .await;
        assert_eq!(failed, Err("broken"));
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts() {
        let backoff = Backoff {
            initial_delay: Duration::ZERO,
            max_attempts: 4,
            ..Backoff::default()
        };
        let mut calls = 0;
        let outcome: Result<Retried<()>, &str> = retry_on_conflict(
            &backoff,
            |_| true,
            || {
                calls += 1;
                async { Err("conflict") }
            },
        )
        .await;
        assert_eq!(outcome, Err("conflict"));
        assert_eq!(calls, 4);
    }
}
