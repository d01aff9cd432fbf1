//! Config Server client and background sync.
//!
//! Protocol (the original exporter's): `GET {url}/config/{device_id}` answers the device's
//! config as JSON (the shape of [`crate::config::to_json`]), validated with the same rules as
//! `config.yaml`; `PUT {url}/config/{device_id}` stores the full config as JSON. Plain HTTP
//! only: this build carries no TLS stack, so an `https://` URL is refused up front with a
//! clear error instead of failing on every request.
//!
//! [`spawn_sync`] pushes every config change in the background: only the newest pending
//! config is sent, failures retry with bounded exponential backoff, and a failure is logged
//! once per change between working and failing. [`SyncStats`] holds the counters the runtime
//! renders as self-metrics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, ConfigError};

/// Largest response body read from the Config Server.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// First retry delay of [`spawn_sync`] after a failed push.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay of [`spawn_sync`].
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Why a Config Server request failed. Messages name the URL and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigServerError {
    /// The base URL cannot be used.
    #[error("Config Server URL {url:?} is not usable: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The HTTP client could not be built.
    #[error("cannot build the Config Server HTTP client")]
    Client {
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// No connection (refused, unreachable, DNS).
    #[error("cannot reach the Config Server at {url} (is it running and reachable? the local config is used meanwhile)")]
    Connect {
        /// The request URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// No complete answer within the timeout.
    #[error("Config Server at {url} did not answer within {secs}s (check the server, or raise CONFIG_TIMEOUT / config_server.timeout)")]
    Timeout {
        /// The request URL.
        url: String,
        /// The timeout, in seconds.
        secs: f64,
    },
    /// Another transport failure (connection reset mid-answer, ...).
    #[error("Config Server request to {url} failed")]
    Request {
        /// The request URL.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// `GET` answered 404: the server has no config for this device.
    #[error("Config Server has no config for device {device_id:?} (404 from {url}); store one there with PUT, or unset CONFIG_SERVER_URL to use only the local file")]
    NotFound {
        /// The device id asked for.
        device_id: String,
        /// The request URL.
        url: String,
    },
    /// Any other non-2xx status.
    #[error("Config Server answered HTTP {status} for {url}: {body}")]
    Status {
        /// The request URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body, for the log.
        body: String,
    },
    /// The body is not JSON, or too large.
    #[error("Config Server sent an unreadable body from {url}: {reason} (it must answer the config as JSON)")]
    Garbage {
        /// The request URL.
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The body is JSON but not a valid config.
    #[error("Config Server sent an invalid config for device {device_id:?}: {error}")]
    Invalid {
        /// The device id asked for.
        device_id: String,
        /// Every problem found, as for `config.yaml` (shown in this message, not chained).
        error: ConfigError,
    },
}

/// Retry schedule of [`spawn_sync`]: `initial`, doubled after each failure, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// First delay after a failure.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: DEFAULT_INITIAL_BACKOFF,
            max: DEFAULT_MAX_BACKOFF,
        }
    }
}

/// Counters of the background sync, shared with the runtime for self-metrics.
#[derive(Debug, Default)]
pub struct SyncStats {
    pushes_ok: AtomicU64,
    pushes_failed: AtomicU64,
    pending: AtomicBool,
}

impl SyncStats {
    /// Pushes the Config Server accepted.
    pub fn pushes_ok(&self) -> u64 {
        self.pushes_ok.load(Ordering::Relaxed)
    }

    /// Push attempts that failed (each retry counts).
    pub fn pushes_failed(&self) -> u64 {
        self.pushes_failed.load(Ordering::Relaxed)
    }

    /// A changed config has not reached the Config Server yet.
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }
}

/// HTTP client of one Config Server.
#[derive(Clone, Debug)]
pub struct Client {
    http: reqwest::Client,
    base: reqwest::Url,
    timeout: Duration,
    backoff: Backoff,
    stats: Arc<SyncStats>,
}

impl Client {
    /// A client of the server at `url` (e.g. `http://config:8080`, a path prefix is kept);
    /// `timeout` bounds each request from connect to the last body byte.
    pub fn new(url: &str, timeout: Duration) -> Result<Client, ConfigServerError> {
        let bad = |reason: String| ConfigServerError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let mut base = reqwest::Url::parse(url.trim())
            .map_err(|e| bad(format!("{e} (use a URL such as http://config-server:8080)")))?;
        match base.scheme() {
            "http" => {}
            "https" => {
                return Err(bad(
                    "https is not supported by this build, which has no TLS stack (use http://, \
                     e.g. through a local TLS-terminating proxy)"
                        .to_string(),
                ))
            }
            other => return Err(bad(format!("scheme {other}:// is not http://"))),
        }
        if base.cannot_be_a_base() || base.host_str().is_none_or(str::is_empty) {
            return Err(bad("it has no host (use http://host:port)".to_string()));
        }
        base.set_query(None);
        base.set_fragment(None);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|source| ConfigServerError::Client { source })?;
        Ok(Client {
            http,
            base,
            timeout,
            backoff: Backoff::default(),
            stats: Arc::new(SyncStats::default()),
        })
    }

    /// The same client with another retry schedule for [`spawn_sync`].
    pub fn with_backoff(mut self, backoff: Backoff) -> Client {
        self.backoff = backoff;
        self
    }

    /// The counters [`spawn_sync`] updates.
    pub fn stats(&self) -> Arc<SyncStats> {
        Arc::clone(&self.stats)
    }

    /// `{url}/config/{device_id}`, the device id percent-encoded as one path segment.
    pub fn config_url(&self, device_id: &str) -> String {
        let mut u = self.base.clone();
        if let Ok(mut segments) = u.path_segments_mut() {
            segments.pop_if_empty().push("config").push(device_id);
        }
        u.to_string()
    }

    /// `GET {url}/config/{device_id}`: the device's config, validated like `config.yaml`.
    pub async fn fetch(&self, device_id: &str) -> Result<Config, ConfigServerError> {
        let url = self.config_url(device_id);
        let resp = self
            .http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| self.transport(&url, e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(ConfigServerError::NotFound {
                device_id: device_id.to_string(),
                url,
            });
        }
        let body = self.read_body(&url, resp).await?;
        if !status.is_success() {
            return Err(status_error(url, status, &body));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| ConfigServerError::Garbage {
                url: url.clone(),
                reason: format!("{e}, body starts {:?}", snippet(&body)),
            })?;
        config::from_json(json).map_err(|error| ConfigServerError::Invalid {
            device_id: device_id.to_string(),
            error,
        })
    }

    /// `PUT {url}/config/{device_id}` with the full config as JSON ([`config::to_json`], so the
    /// API token is never sent).
    pub async fn push(&self, device_id: &str, cfg: &Config) -> Result<(), ConfigServerError> {
        let url = self.config_url(device_id);
        let resp = self
            .http
            .put(&url)
            .json(&config::to_json(cfg))
            .send()
            .await
            .map_err(|e| self.transport(&url, e))?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let body = self.read_body(&url, resp).await.unwrap_or_default();
        Err(status_error(url, status, &body))
    }

    fn transport(&self, url: &str, e: reqwest::Error) -> ConfigServerError {
        if e.is_timeout() {
            ConfigServerError::Timeout {
                url: url.to_string(),
                secs: self.timeout.as_secs_f64(),
            }
        } else if e.is_connect() {
            ConfigServerError::Connect {
                url: url.to_string(),
                source: e,
            }
        } else {
            ConfigServerError::Request {
                url: url.to_string(),
                source: e,
            }
        }
    }

    async fn read_body(
        &self,
        url: &str,
        mut resp: reqwest::Response,
    ) -> Result<Vec<u8>, ConfigServerError> {
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.transport(url, e))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ConfigServerError::Garbage {
                    url: url.to_string(),
                    reason: format!("body is larger than {MAX_BODY_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn status_error(url: String, status: reqwest::StatusCode, body: &[u8]) -> ConfigServerError {
    ConfigServerError::Status {
        url,
        status: status.as_u16(),
        body: snippet(body),
    }
}

/// The first 200 characters of a body, on one line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    one_line.chars().take(200).collect()
}

/// Pushes the newest config to the Config Server after every change of `updates`, in the
/// background, until `shutdown`.
///
/// Changes that arrive while a push is in flight or waiting to retry are coalesced: only the
/// newest is sent. A failed push is retried after the client's [`Backoff`] (1 s doubling to
/// 60 s by default). The first failure after a success is logged at WARN, recovery at INFO,
/// each retry only at DEBUG. Nobody waits on this task: senders only update the watch.
pub fn spawn_sync(
    client: Client,
    device_id: String,
    mut updates: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let stats = client.stats();
        let backoff = client.backoff;
        let mut delay = backoff.initial;
        let mut pending: Option<Arc<Config>> = None;
        let mut failures_in_a_row: u64 = 0;
        let mut sender_gone = false;
        loop {
            if pending.is_none() {
                if sender_gone {
                    break;
                }
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => break,
                    changed = updates.changed() => match changed {
                        Ok(()) => pending = Some(Arc::clone(&updates.borrow_and_update())),
                        Err(_) => {
                            sender_gone = true;
                            continue;
                        }
                    },
                }
            }
            let Some(cfg) = pending.clone() else { continue };
            stats.pending.store(true, Ordering::Relaxed);
            let result = tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                r = client.push(&device_id, &cfg) => r,
            };
            match result {
                Ok(()) => {
                    stats.pushes_ok.fetch_add(1, Ordering::Relaxed);
                    if failures_in_a_row > 0 {
                        tracing::info!(
                            device_id,
                            failed_attempts = failures_in_a_row,
                            "Config Server push succeeded again."
                        );
                    } else {
                        tracing::debug!(device_id, "Pushed config to the Config Server.");
                    }
                    failures_in_a_row = 0;
                    delay = backoff.initial;
                    pending = None;
                    // A change that arrived during the push goes out next, without waiting.
                    if updates.has_changed().unwrap_or(false) {
                        pending = Some(Arc::clone(&updates.borrow_and_update()));
                    } else {
                        stats.pending.store(false, Ordering::Relaxed);
                    }
                }
                Err(error) => {
                    stats.pushes_failed.fetch_add(1, Ordering::Relaxed);
                    failures_in_a_row += 1;
                    if failures_in_a_row == 1 {
                        tracing::warn!(
                            device_id,
                            error = %config::error_chain(&error),
                            retry_in_secs = delay.as_secs_f64(),
                            "Config Server push failed; retrying in the background."
                        );
                    } else {
                        tracing::debug!(
                            device_id,
                            error = %config::error_chain(&error),
                            retry_in_secs = delay.as_secs_f64(),
                            "Config Server push failed again."
                        );
                    }
                    let wake = tokio::time::Instant::now() + delay;
                    loop {
                        tokio::select! {
                            biased;
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep_until(wake) => break,
                            changed = updates.changed(), if !sender_gone => match changed {
                                Ok(()) => pending = Some(Arc::clone(&updates.borrow_and_update())),
                                Err(_) => sender_gone = true,
                            },
                        }
                    }
                    delay = (delay * 2).min(backoff.max);
                }
            }
        }
        tracing::debug!(device_id, "Config Server sync stopped.");
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_built_and_checked() {
        let c = Client::new("http://127.0.0.1:8080", Duration::from_secs(1)).unwrap();
        assert_eq!(
            c.config_url("orin-01"),
            "http://127.0.0.1:8080/config/orin-01"
        );
        let c = Client::new("http://h:1/api/?x=1", Duration::from_secs(1)).unwrap();
        assert_eq!(c.config_url("a b/c"), "http://h:1/api/config/a%20b%2Fc");
        let e = Client::new("https://h", Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("https is not supported"), "{e}");
        let e = Client::new("h:80", Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("is not http://"), "{e}");
        assert!(Client::new("nonsense", Duration::from_secs(1)).is_err());
    }
}
