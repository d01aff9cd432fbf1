//! Config Server client and background sync.
//!
//! Protocol (the original exporter's): `GET {url}/config/{device_id}` answers the device's
//! config as JSON (the shape of [`crate::config::to_json`]), validated with the same rules as
//! `config.yaml`; `PUT {url}/config/{device_id}` stores the full config as JSON, without the
//! [`Secrets`](crate::config::Secrets). Every request carries `User-Agent:
//! edge-metrics-exporter/<version>`, `X-Edge-Metrics-Version: <version>` and
//! `X-Edge-Metrics-Device-Type: <device type>` (the server's fleet view shows them, and its
//! per-type defaults need the type), plus `Authorization: Bearer <token>` when a token is set.
//! The type is the one the exporter runs as ([`Client::set_device_kind`]: for
//! `device_type: auto`, what the device tree resolved to), never `auto`, which would tell the
//! server nothing; the body of a push keeps the config's own setting, `auto` included.
//!
//! `http://` and `https://`, over the exporter's [`HttpClient`](crate::client::HttpClient):
//! for an `https://` URL it trusts the Mozilla roots plus the certificates of
//! `config_server.ca_file`; an `http://` URL gets a client without TLS. The CA file is read and
//! checked when the client is built, whatever the scheme, so a mistake shows before `https://`
//! is used. Redirects are not followed, so a token never goes anywhere but the configured
//! server.
//!
//! [`spawn_sync`] pushes every config change in the background: only the newest pending
//! config is sent, failures retry with bounded exponential backoff, and a failure is logged
//! once per change between working and failing. [`SyncStats`] holds the counters the runtime
//! renders as self-metrics.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::client::BoxError;
use crate::client::{ClientError, HttpClient, Response};
use crate::config::{self, Config, ConfigError, ConfigServerSettings, DeviceType};
use crate::device::DeviceKind;

/// Largest response body read from the Config Server.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// First retry delay of [`spawn_sync`] after a failed push.
pub const DEFAULT_INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Longest retry delay of [`spawn_sync`].
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// `User-Agent` of every request.
pub const USER_AGENT: &str = concat!("edge-metrics-exporter/", env!("CARGO_PKG_VERSION"));
/// The exporter's version, sent in [`VERSION_HEADER`].
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Header with the exporter's version (`X-Edge-Metrics-Version`).
pub const VERSION_HEADER: &str = "x-edge-metrics-version";
/// Header with the running device type (`X-Edge-Metrics-Device-Type`).
pub const DEVICE_TYPE_HEADER: &str = "x-edge-metrics-device-type";

/// Why a Config Server request failed. Messages name the URL and say what to do; none shows
/// the token.
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
    /// The token cannot be sent in a header (the config checks rule this out for configured
    /// tokens; a client built in code may still pass one).
    #[error("the Config Server token cannot be sent in an HTTP header (use one word of visible ASCII characters)")]
    BadToken,
    /// `config_server.ca_file` cannot be used.
    #[error("Config Server CA file {} {reason} (set config_server.ca_file to a PEM file with the certificate of the CA that signed the Config Server's certificate, or remove it)", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No connection (refused, unreachable, DNS).
    #[error("cannot reach the Config Server at {url} (is it running and reachable? the local config is used meanwhile)")]
    Connect {
        /// The request URL.
        url: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The TLS handshake failed: most often a certificate this exporter does not trust.
    #[error("TLS with the Config Server at {url} failed: {reason}")]
    Tls {
        /// The request URL.
        url: String,
        /// The TLS error and what to do about it.
        reason: String,
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
        source: BoxError,
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
    #[error("Config Server answered HTTP {status} for {url}: {body}{hint}")]
    Status {
        /// The request URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body, for the log.
        body: String,
        /// What to do, for the statuses that have an obvious fix (empty otherwise).
        hint: String,
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

/// HTTP client of one Config Server. Its `Debug` shows whether a token is set, not the token.
#[derive(Clone)]
pub struct Client {
    http: HttpClient,
    base: url::Url,
    /// `Bearer <token>`, marked sensitive.
    authorization: Option<HeaderValue>,
    backoff: Backoff,
    stats: Arc<SyncStats>,
    /// The type the exporter runs as, shared with every clone (the push task's included).
    running: Arc<Mutex<Option<DeviceKind>>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base.as_str())
            .field("timeout", &self.http.timeout())
            .field("token", &self.authorization.as_ref().map(|_| "<secret>"))
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client of the server at `url` (e.g. `http://config:8080`, a path prefix is kept)
    /// without a token or a CA file; `timeout` bounds each request from connect to the last
    /// body byte.
    pub fn new(url: &str, timeout: Duration) -> Result<Client, ConfigServerError> {
        Client::from_settings(&ConfigServerSettings {
            url: url.to_string(),
            timeout,
            token: None,
            ca_file: None,
        })
    }

    /// A client for `settings`: URL, timeout, token and CA file. A CA file that cannot be
    /// read or holds no usable certificate is [`ConfigServerError::CaFile`].
    pub fn from_settings(settings: &ConfigServerSettings) -> Result<Client, ConfigServerError> {
        let url = settings.url.as_str();
        let bad = |reason: String| ConfigServerError::BadUrl {
            url: url.to_string(),
            reason,
        };
        let mut base = url::Url::parse(url.trim())
            .map_err(|e| bad(format!("{e} (use a URL such as http://config-server:8080)")))?;
        match base.scheme() {
            "http" | "https" => {}
            other => return Err(bad(format!("scheme {other}:// is not http:// or https://"))),
        }
        if base.cannot_be_a_base() || base.host_str().is_none_or(str::is_empty) {
            return Err(bad("it has no host (use http://host:port)".to_string()));
        }
        base.set_query(None);
        base.set_fragment(None);
        let authorization = match settings.token.as_deref() {
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| ConfigServerError::BadToken)?;
                // Kept out of hyper's debug output of the request.
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let ca = match settings.ca_file.as_deref() {
            Some(path) => ca_roots(path)?,
            None => rustls::RootCertStore::empty(),
        };
        // TLS state (the root store, rustls' config) only for a server that needs it.
        let http = if base.scheme() == "https" {
            HttpClient::https(settings.timeout, ca)
        } else {
            HttpClient::http(settings.timeout)
        };
        Ok(Client {
            http,
            base,
            authorization,
            backoff: Backoff::default(),
            stats: Arc::new(SyncStats::default()),
            running: Arc::default(),
        })
    }

    /// Sets the device type the exporter runs as (the resolved one), which every request
    /// from now on reports in [`DEVICE_TYPE_HEADER`], this client's clones included.
    pub fn set_device_kind(&self, kind: DeviceKind) {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner) = Some(kind);
    }

    /// The device type set with [`Client::set_device_kind`], if any.
    pub fn device_kind(&self) -> Option<DeviceKind> {
        *self.running.lock().unwrap_or_else(PoisonError::into_inner)
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

    /// Whether a token goes out unencrypted to another host: `http://` to a host that is
    /// not a loopback address or `localhost`.
    pub fn sends_token_in_clear(&self) -> bool {
        let local = match self.base.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.to_canonical().is_loopback(),
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        self.authorization.is_some() && self.base.scheme() == "http" && !local
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
    /// `device_type` is the running one, sent in [`DEVICE_TYPE_HEADER`] (not at all when it
    /// is `auto`).
    pub async fn fetch(
        &self,
        device_id: &str,
        device_type: DeviceType,
    ) -> Result<Config, ConfigServerError> {
        let url = self.config_url(device_id);
        let mut headers = self.headers(device_type);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let response = self
            .http
            .get(&url, headers)
            .await
            .map_err(|e| self.error(&url, e))?;
        let Response {
            status,
            headers,
            body,
        } = response;
        if status == StatusCode::NOT_FOUND {
            return Err(ConfigServerError::NotFound {
                device_id: device_id.to_string(),
                url,
            });
        }
        let body = body
            .read(MAX_BODY_BYTES)
            .await
            .map_err(|e| self.error(&url, e))?;
        if !status.is_success() {
            return Err(status_error(url, status, &headers, &body));
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

    /// `PUT {url}/config/{device_id}` with the full config as JSON ([`config::to_json`], so
    /// neither secret is sent). The device type reported in [`DEVICE_TYPE_HEADER`] is the one
    /// set with [`Client::set_device_kind`], else `cfg`'s when it names one (an unresolved
    /// `auto` sends no header).
    pub async fn push(&self, device_id: &str, cfg: &Config) -> Result<(), ConfigServerError> {
        let url = self.config_url(device_id);
        let json = serde_json::to_vec(&config::to_json(cfg))
            .expect("invariant: a serde_json::Value always serialises");
        let running = self.device_kind().map_or(cfg.device_type, DeviceType::from);
        let mut headers = self.headers(running);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let response = self
            .http
            .put(&url, headers, json.into())
            .await
            .map_err(|e| self.error(&url, e))?;
        if response.status.is_success() {
            return Ok(());
        }
        let body = response.body.read(MAX_BODY_BYTES).await.unwrap_or_default();
        Err(status_error(url, response.status, &response.headers, &body))
    }

    /// The headers every request carries.
    fn headers(&self, device_type: DeviceType) -> HeaderMap {
        let mut headers = HeaderMap::with_capacity(5);
        headers.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        headers.insert(
            HeaderName::from_static(VERSION_HEADER),
            HeaderValue::from_static(VERSION),
        );
        if device_type != DeviceType::Auto {
            headers.insert(
                HeaderName::from_static(DEVICE_TYPE_HEADER),
                HeaderValue::from_static(device_type.as_str()),
            );
        }
        if let Some(authorization) = &self.authorization {
            headers.insert(header::AUTHORIZATION, authorization.clone());
        }
        headers
    }

    /// A failed request as the variant that says what to do: TLS, connect, timeout, ...
    fn error(&self, url: &str, e: ClientError) -> ConfigServerError {
        let url = url.to_string();
        if let Some(tls) = e.tls() {
            return ConfigServerError::Tls {
                url,
                reason: tls_reason(tls),
            };
        }
        match e {
            // The URL came from url::Url, so http's parser takes it; say so if it ever does not.
            ClientError::Invalid(e) => ConfigServerError::BadUrl {
                url,
                reason: format!("cannot make a request of it: {e}"),
            },
            ClientError::Timeout(_) => ConfigServerError::Timeout {
                url,
                secs: self.http.timeout().as_secs_f64(),
            },
            ClientError::Connect(source) => ConfigServerError::Connect { url, source },
            ClientError::Broken(source) => ConfigServerError::Request { url, source },
            ClientError::TooLarge(limit) => ConfigServerError::Garbage {
                url,
                reason: format!("body is larger than {limit} bytes"),
            },
        }
    }
}

/// The certificates of `config_server.ca_file` as roots to trust beside the Mozilla ones.
fn ca_roots(path: &Path) -> Result<rustls::RootCertStore, ConfigServerError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_ca_file(path)? {
        roots.add(cert.der).map_err(|e| ConfigServerError::CaFile {
            path: path.to_path_buf(),
            reason: format!(
                "has a certificate that is not usable (number {} of {}): {e}",
                cert.number, cert.of
            ),
        })?;
    }
    Ok(roots)
}

/// One certificate of a CA file, with its place for messages.
struct CaCert {
    der: CertificateDer<'static>,
    number: usize,
    of: usize,
}

/// The certificates of a PEM file: at least one, each a `CERTIFICATE` section (other
/// sections, such as a key, are skipped).
fn read_ca_file(path: &Path) -> Result<Vec<CaCert>, ConfigServerError> {
    let bad = |reason: String| ConfigServerError::CaFile {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(format!("cannot be read: {e}")))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("is not a valid PEM file: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "holds no certificate (a PEM file with -----BEGIN CERTIFICATE----- blocks is expected)"
                .to_string(),
        ));
    }
    let of = certs.len();
    Ok(certs
        .into_iter()
        .enumerate()
        .map(|(i, der)| CaCert {
            der,
            number: i + 1,
            of,
        })
        .collect())
}

/// rustls' message and the fix for it.
fn tls_reason(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let fix = match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "the server's certificate is not signed by a CA this exporter trusts: set \
             config_server.ca_file to the PEM file of the CA that signed it"
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            "the server's certificate is for another name: use a name it holds in \
             config_server.url"
        }
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => "renew the server's certificate, or check this device's clock",
        rustls::Error::InvalidCertificate(_) => "check the server's certificate",
        _ => "is it serving https:// on that port? a plain http server needs an http:// URL",
    };
    format!("{e} ({fix})")
}

fn status_error(
    url: String,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> ConfigServerError {
    let hint = if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        " (check config_server.token or CONFIG_SERVER_TOKEN)".to_string()
    } else if status.is_redirection() {
        let to = headers
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map_or_else(String::new, |l| format!(" to {}", snippet(l.as_bytes())));
        format!(" (a redirect{to}; redirects are not followed: set config_server.url to the address that answers)")
    } else {
        String::new()
    };
    ConfigServerError::Status {
        url,
        status: status.as_u16(),
        body: snippet(body),
        hint,
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
        let c = Client::new("https://h", Duration::from_secs(1)).unwrap();
        assert_eq!(c.config_url("d"), "https://h/config/d");
        let e = Client::new("ftp://h", Duration::from_secs(1)).unwrap_err();
        assert!(
            e.to_string()
                .contains("scheme ftp:// is not http:// or https://"),
            "{e}"
        );
        let e = Client::new("h:80", Duration::from_secs(1)).unwrap_err();
        assert!(e.to_string().contains("is not http://"), "{e}");
        assert!(Client::new("nonsense", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn only_an_https_server_gets_a_client_with_tls() {
        let plain = Client::new("http://cfg:8080", Duration::from_secs(1)).unwrap();
        assert!(format!("{:?}", plain.http).contains("https: false"));
        let tls = Client::new("https://cfg", Duration::from_secs(1)).unwrap();
        assert!(format!("{:?}", tls.http).contains("https: true"));
    }

    fn settings(url: &str, token: Option<&str>) -> ConfigServerSettings {
        ConfigServerSettings {
            url: url.to_string(),
            timeout: Duration::from_secs(1),
            token: token.map(str::to_string),
            ca_file: None,
        }
    }

    #[test]
    fn a_token_is_kept_out_of_debug_and_refused_when_no_header_can_carry_it() {
        let c = Client::from_settings(&settings("https://cfg", Some("s3cr3t"))).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("<secret>"), "{shown}");
        let e = Client::from_settings(&settings("https://cfg", Some("a\nb"))).unwrap_err();
        assert!(matches!(e, ConfigServerError::BadToken), "{e:?}");
        assert!(!e.to_string().contains("a\nb"));
    }

    #[test]
    fn a_token_in_clear_is_noticed_only_beyond_this_host() {
        let clear = |url: &str, token: Option<&str>| {
            Client::from_settings(&settings(url, token))
                .unwrap()
                .sends_token_in_clear()
        };
        assert!(clear("http://cfg.example:8080", Some("t")));
        assert!(clear("http://192.0.2.7", Some("t")));
        assert!(!clear("http://cfg.example:8080", None));
        assert!(!clear("https://cfg.example", Some("t")));
        for local in [
            "http://127.0.0.1:8080",
            "http://[::1]:1",
            "http://LOCALHOST",
        ] {
            assert!(!clear(local, Some("t")), "{local}");
        }
    }

    #[test]
    fn headers_name_the_exporter_and_its_version() {
        assert_eq!(
            USER_AGENT,
            format!("edge-metrics-exporter/{}", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(VERSION, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn tls_errors_say_what_to_do() {
        use rustls::CertificateError as C;
        let reason = tls_reason(&rustls::Error::InvalidCertificate(C::UnknownIssuer));
        assert_eq!(
            reason,
            "invalid peer certificate: UnknownIssuer (the server's certificate is not signed \
             by a CA this exporter trusts: set config_server.ca_file to the PEM file of the CA \
             that signed it)"
        );
        let reason = tls_reason(&rustls::Error::InvalidCertificate(C::NotValidForName));
        assert!(
            reason.contains("use a name it holds in config_server.url"),
            "{reason}"
        );
        let reason = tls_reason(&rustls::Error::InvalidCertificate(C::Expired));
        assert!(reason.contains("check this device's clock"), "{reason}");
        let reason = tls_reason(&rustls::Error::InvalidMessage(
            rustls::InvalidMessage::InvalidContentType,
        ));
        assert!(
            reason.contains("a plain http server needs an http:// URL"),
            "{reason}"
        );
    }
}
