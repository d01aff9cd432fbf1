//! Caps on what a listener takes in: [`ConnectionLimit`] holds the number of open connections
//! of one listener under a maximum, and [`Throttle`] keeps a warning about a bound that is hit
//! again and again to one log line a period.
//!
//! A connection over the cap is refused right after `accept()`, before any TLS, upgrade or
//! request work is spent on it: the socket is dropped and the refusal counted. The count is
//! what the daemon's own metrics show; the log gets one WARN a minute at most, with how many
//! were refused since the last one, so a flood cannot flood the log as well.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How often a bound that keeps being hit is logged.
pub const WARN_PERIOD: Duration = Duration::from_secs(60);

/// Allows something to happen at most once a period, and counts what it held back.
#[derive(Debug)]
pub struct Throttle {
    period: Duration,
    /// When it last let one through, and how many it held back since.
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    /// A throttle that lets one event through per `period`.
    pub fn new(period: Duration) -> Throttle {
        Throttle {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// Records an event. `Some(held_back)` when this one may be logged (`held_back` events
    /// were swallowed since the last one), `None` when it is to be swallowed.
    pub fn hit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, held) = &mut *state;
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < self.period) {
            *held += 1;
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(held))
    }
}

/// The most connections one listener keeps open at once, shared by its accept loop and
/// whatever reports on it. Cloning gives another handle on the same count.
#[derive(Debug, Clone)]
pub struct ConnectionLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    listener: &'static str,
    max: usize,
    slots: Arc<Semaphore>,
    refused: AtomicU64,
    warn: Throttle,
}

/// One admitted connection's place under its [`ConnectionLimit`]; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

impl ConnectionLimit {
    /// A limit of `max` open connections (at least 1) for the listener named `listener` (the
    /// name goes into the log line and the metric label).
    pub fn new(listener: &'static str, max: usize) -> ConnectionLimit {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        ConnectionLimit {
            inner: Arc::new(Inner {
                listener,
                max,
                slots: Arc::new(Semaphore::new(max)),
                refused: AtomicU64::new(0),
                warn: Throttle::new(WARN_PERIOD),
            }),
        }
    }

    /// A place for a connection just accepted from `peer`, or `None` when the listener is
    /// full: then the refusal is counted (and logged, at most once per [`WARN_PERIOD`]) and
    /// the caller drops the socket.
    pub fn admit(&self, peer: std::net::SocketAddr) -> Option<Slot> {
        match self.inner.slots.clone().try_acquire_owned() {
            Ok(permit) => Some(Slot { _permit: permit }),
            Err(_) => {
                self.inner.refused.fetch_add(1, Ordering::Relaxed);
                if let Some(held_back) = self.inner.warn.hit() {
                    tracing::warn!(
                        listener = self.inner.listener,
                        max = self.inner.max,
                        %peer,
                        refused_since_last_warning = held_back,
                        refused_total = self.refused(),
                        "Connection limit reached: closed a new connection at once. Further \
                         refusals within a minute are only counted."
                    );
                }
                None
            }
        }
    }

    /// The listener's name.
    pub fn listener(&self) -> &'static str {
        self.inner.listener
    }

    /// The cap.
    pub fn max(&self) -> usize {
        self.inner.max
    }

    /// Connections holding a place now.
    pub fn open(&self) -> usize {
        self.inner.max - self.inner.slots.available_permits()
    }

    /// Connections refused since start.
    pub fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> std::net::SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    #[test]
    fn admits_up_to_the_cap_counts_refusals_and_frees_on_drop() {
        let limit = ConnectionLimit::new("test", 2);
        let a = limit.admit(peer()).expect("first");
        let _b = limit.admit(peer()).expect("second");
        assert_eq!(limit.open(), 2);
        assert!(limit.admit(peer()).is_none());
        assert!(limit.admit(peer()).is_none());
        assert_eq!(limit.refused(), 2);
        drop(a);
        assert_eq!(limit.open(), 1);
        assert!(limit.admit(peer()).is_some());
        assert_eq!((limit.listener(), limit.max()), ("test", 2));
    }

    #[test]
    fn a_cap_of_zero_is_one() {
        let limit = ConnectionLimit::new("test", 0);
        assert_eq!(limit.max(), 1);
        assert!(limit.admit(peer()).is_some());
    }

    #[test]
    fn the_throttle_lets_one_through_per_period_and_counts_the_rest() {
        let t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.hit(), Some(0));
        assert_eq!(t.hit(), None);
        assert_eq!(t.hit(), None);
        let t = Throttle::new(Duration::ZERO);
        assert_eq!(t.hit(), Some(0));
        assert_eq!(t.hit(), Some(0));
    }
}
