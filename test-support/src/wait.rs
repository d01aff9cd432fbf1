//! Bounded waits: a condition is polled until it holds or its deadline passes, and a timeout
//! names what was awaited. Tests wait on what they can observe (a log line, a sample, a
//! listed device), never for a fixed time.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is polled.
pub const POLL: Duration = Duration::from_millis(20);

/// A condition that did not hold within its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// What was awaited.
    pub what: String,
    /// How long it was awaited.
    pub after: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "timed out after {:?} waiting for {}",
            self.after, self.what
        )
    }
}

impl std::error::Error for TimedOut {}

/// Polls `check` every [`POLL`] until it returns `Some`, for at most `timeout`.
pub fn try_wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T, TimedOut> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(TimedOut {
                what: what.to_string(),
                after: timeout,
            });
        }
        std::thread::sleep(POLL);
    }
}

/// Like [`try_wait_for`], panicking with what was awaited when time runs out.
pub fn wait_for<T>(timeout: Duration, what: &str, check: impl FnMut() -> Option<T>) -> T {
    try_wait_for(timeout, what, check).unwrap_or_else(|e| panic!("{e}"))
}

/// [`wait_for`] for async tests: `check` is awaited every [`POLL`] without blocking the
/// runtime, so tasks of the test (a plug answering, say) run meanwhile.
pub async fn wait_for_async<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            TimedOut {
                what: what.to_string(),
                after: timeout
            }
        );
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_what_the_condition_found() {
        let mut calls = 0;
        let found = wait_for(Duration::from_secs(5), "the third call", || {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(found, 3);
    }

    #[test]
    fn a_timeout_names_what_was_awaited() {
        let err = try_wait_for(Duration::from_millis(50), "the moon", || None::<()>).unwrap_err();
        assert_eq!(err.what, "the moon");
        assert!(err.to_string().contains("waiting for the moon"), "{err}");
    }

    #[test]
    #[should_panic(expected = "waiting for nothing at all")]
    fn wait_for_panics_with_it() {
        wait_for(Duration::from_millis(10), "nothing at all", || None::<()>);
    }

    #[tokio::test]
    async fn the_async_wait_lets_other_tasks_run() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            let _ = tx.send(true);
        });
        wait_for_async(Duration::from_secs(5), "the task's signal", || {
            let seen = *rx.borrow();
            async move { seen.then_some(()) }
        })
        .await;
    }
}
