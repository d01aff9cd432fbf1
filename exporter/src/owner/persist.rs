//! config.yaml persistence for the owner: atomic saves off the runtime thread, counted in the
//! self-metrics, logged at WARN once per change of state (a read-only mount would otherwise
//! cost a line per cycle), and a "pending" mark for a save that failed and is retried at the
//! next cycle.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::{debug, info, warn};

use crate::config::{self, error_chain, Config};
use crate::selfmetrics::Counters;

/// Saves the running configuration to one file.
pub struct Persistence {
    path: PathBuf,
    counters: Arc<Counters>,
    /// The last write failed (so the next failure logs at DEBUG, a success at INFO).
    failing: bool,
    /// The file is behind the running configuration; [`Persistence::retry`] writes it.
    pending: bool,
}

impl Persistence {
    /// Persistence to `path`, counting writes in `counters`.
    pub fn new(path: PathBuf, counters: Arc<Counters>) -> Persistence {
        Persistence {
            path,
            counters,
            failing: false,
            pending: false,
        }
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `cfg` now. On failure the error text is returned and nothing is marked for a
    /// retry: the caller decides (an API change is refused instead).
    pub async fn save(&mut self, cfg: &Config) -> Result<(), String> {
        let path = self.path.clone();
        let owned = cfg.clone();
        let result = tokio::task::spawn_blocking(move || config::save_atomic(&path, &owned))
            .await
            .unwrap_or_else(|e| {
                Err(config::ConfigError::Write {
                    path: self.path.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
            });
        match result {
            Ok(()) => {
                self.counters
                    .config_writes_ok
                    .fetch_add(1, Ordering::Relaxed);
                self.pending = false;
                if std::mem::replace(&mut self.failing, false) {
                    info!(path = %self.path.display(), "Configuration saved again.");
                }
                Ok(())
            }
            Err(error) => {
                self.counters
                    .config_writes_failed
                    .fetch_add(1, Ordering::Relaxed);
                let text = error_chain(&error);
                if std::mem::replace(&mut self.failing, true) {
                    debug!(error = %text, "Could not save the configuration.");
                } else {
                    warn!(error = %text, "Could not save the configuration.");
                }
                Err(text)
            }
        }
    }

    /// Writes `cfg`, or marks it for [`Persistence::retry`] when that fails: for changes the
    /// exporter made itself (discoveries, a config fetched from the server), which stay in
    /// force either way.
    pub async fn save_or_retry(&mut self, cfg: &Config) {
        if self.save(cfg).await.is_err() {
            self.pending = true;
        }
    }

    /// Writes `cfg` if an earlier write failed.
    pub async fn retry(&mut self, cfg: &Config) {
        if self.pending {
            let _ = self.save(cfg).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_write_is_retried_until_it_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let blocked = dir.path().join("missing-dir");
        let counters = Arc::new(Counters::default());
        let mut p = Persistence::new(blocked.join("config.yaml"), counters.clone());
        let cfg = Config::default();
        p.save_or_retry(&cfg).await;
        assert!(p.pending && p.failing);
        p.retry(&cfg).await;
        assert_eq!(counters.config_writes_failed.load(Ordering::Relaxed), 2);
        std::fs::create_dir(&blocked).unwrap();
        p.retry(&cfg).await;
        assert!(!p.pending && !p.failing);
        assert_eq!(counters.config_writes_ok.load(Ordering::Relaxed), 1);
        // Nothing pending: no write.
        p.retry(&cfg).await;
        assert_eq!(counters.config_writes_ok.load(Ordering::Relaxed), 1);
        let saved = std::fs::read_to_string(blocked.join("config.yaml")).unwrap();
        assert_eq!(config::parse(&saved, "saved").unwrap(), cfg);
    }
}
