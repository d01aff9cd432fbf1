//! Which plugs are connected: device id → the mailbox of its connection task.
//!
//! The lock is a plain mutex held only for map operations, never across `.await`. Each entry
//! remembers which connection registered it, so a connection that was replaced by a newer one
//! from the same plug cannot unregister its successor on the way out.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::rpc::Readings;

/// A reading request sent to a plug's connection task.
#[derive(Debug)]
pub struct Call {
    /// Where the task sends the outcome; dropping it unanswered means "connection lost".
    pub reply: oneshot::Sender<Result<Reading, CallError>>,
}

/// A reading as the plug answered it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The plug's id (`src`).
    pub device_id: String,
    /// The URL path it dialled, if any.
    pub alias: Option<String>,
    /// The component read, e.g. `switch:0`.
    pub component: String,
    /// Metric name → value.
    pub metrics: Readings,
    /// Time from sending the request to the answer.
    pub rtt: std::time::Duration,
}

/// The plug answered, but not with a reading.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// An RPC error frame.
    #[error("device {device_id} answered {method} with RPC error {code}: {message}")]
    Rpc {
        /// The plug.
        device_id: String,
        /// What was asked.
        method: String,
        /// Error code from the plug.
        code: i64,
        /// Error message from the plug.
        message: String,
    },
    /// A reply without a usable reading.
    #[error("device {device_id} gave an unusable reply to {method}: {detail}")]
    BadReply {
        /// The plug.
        device_id: String,
        /// What was asked.
        method: String,
        /// What was wrong.
        detail: String,
    },
}

/// One registered plug.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Number of the connection that registered it.
    pub conn: u64,
    /// The URL path it dialled (without slashes), if usable as a name.
    pub alias: Option<String>,
    /// The connection task's mailbox.
    pub calls: mpsc::Sender<Call>,
    /// Cancelled when a newer connection from the same plug replaces this one.
    pub replaced: CancellationToken,
    /// Remote address of the connection.
    pub remote: SocketAddr,
    /// Reading requests waiting for this connection now (capped by the HTTP side).
    pub waiting: Arc<AtomicUsize>,
}

/// A registered plug as a reading request finds it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The plug's id.
    pub device_id: String,
    /// Its connection task's mailbox.
    pub calls: mpsc::Sender<Call>,
    /// Requests waiting for it now.
    pub waiting: Arc<AtomicUsize>,
}

/// A plug as listed by `GET /devices`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    /// The plug's id (`src`).
    pub device_id: String,
    /// The URL path it dialled, if any.
    pub alias: Option<String>,
    /// Remote address of its connection.
    pub remote: String,
}

impl Listed {
    /// The name shown in the `devices` list: the alias where present, else the id.
    pub fn name(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.device_id)
    }
}

#[derive(Debug, Default)]
struct Inner {
    devices: HashMap<String, Entry>,
    aliases: HashMap<String, String>,
}

/// The set of connected plugs.
#[derive(Debug, Default)]
pub struct Registry {
    inner: Mutex<Inner>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain maps in a usable state.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `id`; an older connection of the same plug is told to close. Returns true when
    /// an older connection was replaced.
    pub fn register(&self, id: &str, entry: Entry) -> bool {
        let mut inner = self.lock();
        if let Some(alias) = &entry.alias {
            if let Some(prev) = inner.aliases.insert(alias.clone(), id.to_string()) {
                if prev != id {
                    tracing::warn!(
                        alias = %alias,
                        previous = %prev,
                        device_id = %id,
                        "Two plugs dialled the same path; the newer one takes the alias."
                    );
                    if let Some(e) = inner.devices.get_mut(&prev) {
                        e.alias = None;
                    }
                }
            }
        }
        let old = inner.devices.insert(id.to_string(), entry);
        if let Some(old) = &old {
            if let Some(a) = &old.alias {
                let new_alias = inner.devices.get(id).and_then(|e| e.alias.clone());
                if new_alias.as_ref() != Some(a) && inner.aliases.get(a).is_some_and(|x| x == id) {
                    inner.aliases.remove(a);
                }
            }
            old.replaced.cancel();
        }
        old.is_some()
    }

    /// Removes `id` if connection `conn` still owns it. Returns true if it did.
    pub fn unregister(&self, id: &str, conn: u64) -> bool {
        let mut inner = self.lock();
        if inner.devices.get(id).is_none_or(|e| e.conn != conn) {
            return false;
        }
        if let Some(e) = inner.devices.remove(id) {
            if let Some(a) = e.alias {
                if inner.aliases.get(&a).is_some_and(|x| x == id) {
                    inner.aliases.remove(&a);
                }
            }
        }
        true
    }

    /// Finds a plug by id, else by alias.
    pub fn resolve(&self, name: &str) -> Option<Target> {
        let inner = self.lock();
        let id = if inner.devices.contains_key(name) {
            name.to_string()
        } else {
            inner.aliases.get(name)?.clone()
        };
        inner.devices.get(&id).map(|e| Target {
            device_id: id.clone(),
            calls: e.calls.clone(),
            waiting: e.waiting.clone(),
        })
    }

    /// Every connected plug, sorted by the name it is listed under.
    pub fn list(&self) -> Vec<Listed> {
        let inner = self.lock();
        let mut out: Vec<Listed> = inner
            .devices
            .iter()
            .map(|(id, e)| Listed {
                device_id: id.clone(),
                alias: e.alias.clone(),
                remote: e.remote.to_string(),
            })
            .collect();
        out.sort_by(|a, b| a.name().cmp(b.name()));
        out
    }

    /// Number of connected plugs.
    pub fn len(&self) -> usize {
        self.lock().devices.len()
    }

    /// True when no plug is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(conn: u64, alias: Option<&str>) -> (Entry, mpsc::Receiver<Call>) {
        let (tx, rx) = mpsc::channel(1);
        (
            Entry {
                conn,
                alias: alias.map(str::to_string),
                calls: tx,
                replaced: CancellationToken::new(),
                remote: "127.0.0.1:1".parse().unwrap(),
                waiting: Default::default(),
            },
            rx,
        )
    }

    #[test]
    fn newer_connection_replaces_older_and_old_cannot_unregister_it() {
        let r = Registry::default();
        let (e1, _rx1) = entry(1, Some("jetson-01"));
        let t1 = e1.replaced.clone();
        assert!(!r.register("plug-a", e1));
        let (e2, _rx2) = entry(2, Some("jetson-01"));
        assert!(r.register("plug-a", e2));
        assert!(t1.is_cancelled());
        assert!(!r.unregister("plug-a", 1));
        assert_eq!(r.resolve("jetson-01").unwrap().device_id, "plug-a");
        assert_eq!(r.list()[0].name(), "jetson-01");
        assert!(r.unregister("plug-a", 2));
        assert!(r.resolve("jetson-01").is_none());
        assert!(r.is_empty());
    }

    #[test]
    fn alias_moves_to_the_newer_plug() {
        let r = Registry::default();
        let (e1, _rx1) = entry(1, Some("edge"));
        let (e2, _rx2) = entry(2, Some("edge"));
        r.register("plug-a", e1);
        r.register("plug-b", e2);
        assert_eq!(r.resolve("edge").unwrap().device_id, "plug-b");
        let names: Vec<String> = r.list().iter().map(|l| l.name().to_string()).collect();
        assert_eq!(names, ["edge", "plug-a"]);
        r.unregister("plug-a", 1);
        assert_eq!(r.resolve("edge").unwrap().device_id, "plug-b");
    }
}
