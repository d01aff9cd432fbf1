//! The environment variables that feed the configuration, read through the [`Env`] trait so
//! tests pass a map instead of changing the process environment, and the helpers that resolve
//! a setting from the config, then its variable, then the built-in default.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::{check_url, is_header_token};
use crate::error::{ConfigError, Problem};
use crate::keys::{DEFAULT_CONFIG_TIMEOUT_SECS, DEFAULT_HOST_ROOT, MAX_CONFIG_TIMEOUT_SECS};
use crate::schema::Config;

/// Config path used when neither `--config` nor `LOCAL_CONFIG_PATH` is given: `config.yaml`
/// in the working directory, as the original exporter and the binary's `--help` have it.
/// Deployments pass `/etc/edge-metrics/config.yaml` and mount that *directory* writable: see
/// [`save_atomic`](crate::config::save_atomic).
pub const DEFAULT_CONFIG_PATH: &str = "config.yaml";
/// Environment variable: config path when `--config` is not given.
pub const ENV_LOCAL_CONFIG_PATH: &str = "LOCAL_CONFIG_PATH";
/// Environment variable: `hostname` label when `hostname:` is not set in the config.
pub const ENV_HOSTNAME: &str = "EDGE_METRICS_HOSTNAME";
/// Environment variable: management API bearer token when `api_token:` is not set.
pub const ENV_API_TOKEN: &str = "EDGE_METRICS_API_TOKEN";
/// Environment variable: Config Server base URL when `config_server.url` is not set.
pub const ENV_CONFIG_SERVER_URL: &str = "CONFIG_SERVER_URL";
/// Environment variable: Config Server timeout in seconds when `config_server.timeout` is not
/// set (default [`DEFAULT_CONFIG_TIMEOUT_SECS`]).
pub const ENV_CONFIG_TIMEOUT: &str = "CONFIG_TIMEOUT";
/// Environment variable: Config Server bearer token when `config_server.token` is not set.
pub const ENV_CONFIG_SERVER_TOKEN: &str = "CONFIG_SERVER_TOKEN";

/// Environment variable: `host_root` when it is not set in the config (default
/// [`DEFAULT_HOST_ROOT`]).
pub const ENV_HOST_ROOT: &str = "EDGE_METRICS_HOST_ROOT";

/// Reads environment variables. The process uses [`ProcessEnv`]; tests pass a map.
pub trait Env {
    /// The variable's value, if set.
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).cloned()
    }
}

impl Env for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

/// A set, non-blank variable, trimmed.
fn env_value(env: &dyn Env, key: &str) -> Option<String> {
    env.get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// A key's value from the file, trimmed, unless it is blank; else the variable `var`: the
/// order every setting with a variable follows.
fn file_or_env(file: Option<&str>, env: &dyn Env, var: &str) -> Option<String> {
    file.map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .or_else(|| env_value(env, var))
}

/// The config path: the `--config` flag, else `LOCAL_CONFIG_PATH`, else
/// [`DEFAULT_CONFIG_PATH`].
pub fn config_path(flag: Option<&Path>, env: &dyn Env) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    env_value(env, ENV_LOCAL_CONFIG_PATH)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH))
}

/// The `hostname` label: config `hostname`, else `EDGE_METRICS_HOSTNAME`, else the system
/// hostname ([`system_hostname`]), else `localhost`.
pub fn resolve_hostname(cfg: &Config, env: &dyn Env) -> String {
    resolve_hostname_with(cfg, env, system_hostname)
}

fn resolve_hostname_with(
    cfg: &Config,
    env: &dyn Env,
    system: impl FnOnce() -> Option<String>,
) -> String {
    file_or_env(cfg.hostname.as_deref(), env, ENV_HOSTNAME)
        .or_else(system)
        .unwrap_or_else(|| "localhost".to_string())
}

/// The device id used with the Config Server (`/config/{device_id}`): the `hostname` label,
/// as [`resolve_hostname`] gives it, so each device asks for its own config.
pub fn device_id(cfg: &Config, env: &dyn Env) -> String {
    resolve_hostname(cfg, env)
}

/// The kernel's hostname from `/proc/sys/kernel/hostname`, else `/etc/hostname`. In a
/// container this is the container's name unless it shares the host's UTS namespace
/// (`network_mode: host` / `hostNetwork: true`); set `EDGE_METRICS_HOSTNAME` otherwise.
pub fn system_hostname() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
}

/// The directory the host's identity files are read under: config `host_root`, else
/// `EDGE_METRICS_HOST_ROOT`, else [`DEFAULT_HOST_ROOT`] (`/`).
pub fn host_root(cfg: &Config, env: &dyn Env) -> PathBuf {
    let file = cfg.host_root.as_deref().and_then(Path::to_str);
    PathBuf::from(
        file_or_env(file, env, ENV_HOST_ROOT).unwrap_or_else(|| DEFAULT_HOST_ROOT.to_string()),
    )
}

/// The management API bearer token: config `api_token`, else `EDGE_METRICS_API_TOKEN`; `None`
/// leaves the API open.
pub fn api_token(cfg: &Config, env: &dyn Env) -> Option<String> {
    file_or_env(cfg.api_token.as_deref(), env, ENV_API_TOKEN)
}

/// Whether `address` (a `reload_bind_address`) is a loopback address: `127.0.0.0/8`, `::1`,
/// or `::ffff:127.x.y.z`. Anything else, and text that is no address, is not.
pub fn is_loopback(address: &str) -> bool {
    address
        .trim()
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// The management API can rewrite config.yaml, so it may listen beyond loopback only with an
/// API token ([`api_token`]). `origin` names where `cfg` came from (the file, or "Config
/// Server"). The error is one line that says how to set a token.
pub fn check_api_exposure(cfg: &Config, env: &dyn Env, origin: &str) -> Result<(), ConfigError> {
    let address = cfg.reload_bind_address.trim();
    if is_loopback(address) || api_token(cfg, env).is_some() {
        return Ok(());
    }
    Err(ConfigError::Invalid {
        origin: origin.to_string(),
        problems: vec![Problem::new(
            None,
            "reload_bind_address",
            format!(
                "reload_bind_address {address} is not a loopback address and no API token is \
                 set, so anyone who reaches port {port} could rewrite the configuration \
                 (set api_token: \"<a long random secret>\" in config.yaml or \
                 {ENV_API_TOKEN}=<secret> in the environment, or set reload_bind_address: \
                 127.0.0.1)",
                port = cfg.reload_port,
            ),
        )],
    })
}

/// Where and how to reach the Config Server. Its `Debug` leaves the token out.
#[derive(Clone, PartialEq)]
pub struct ConfigServerSettings {
    /// Base URL, e.g. `http://config:8080`; requests go to `{url}/config/{device_id}`.
    pub url: String,
    /// Per-request timeout (connect + response).
    pub timeout: Duration,
    /// Bearer token sent as `Authorization: Bearer <token>`; none sends no such header.
    pub token: Option<String>,
    /// PEM file of a CA trusted for `https://` besides the built-in roots.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for ConfigServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigServerSettings")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("token", &self.token.as_ref().map(|_| "<secret>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// The Config Server to use, if any: `config_server.url`, else `CONFIG_SERVER_URL`; timeout
/// `config_server.timeout`, else `CONFIG_TIMEOUT`, else [`DEFAULT_CONFIG_TIMEOUT_SECS`]; token
/// `config_server.token`, else `CONFIG_SERVER_TOKEN` (the file wins, as for `api_token`);
/// `config_server.ca_file`. Values are those [`load`](crate::config::load) and [`check_env`]
/// accepted; an unusable `CONFIG_TIMEOUT` falls back to the default.
pub fn config_server(cfg: &Config, env: &dyn Env) -> Option<ConfigServerSettings> {
    let url = file_or_env(cfg.config_server.url.as_deref(), env, ENV_CONFIG_SERVER_URL)?;
    let secs = cfg
        .config_server
        .timeout
        .or_else(|| env_value(env, ENV_CONFIG_TIMEOUT).and_then(|t| parse_timeout(&t).ok()))
        .unwrap_or(DEFAULT_CONFIG_TIMEOUT_SECS);
    let token = file_or_env(
        cfg.config_server.token.as_deref(),
        env,
        ENV_CONFIG_SERVER_TOKEN,
    );
    Some(ConfigServerSettings {
        url,
        timeout: Duration::from_secs_f64(secs),
        token,
        ca_file: cfg.config_server.ca_file.clone(),
    })
}

fn parse_timeout(text: &str) -> Result<f64, ()> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= MAX_CONFIG_TIMEOUT_SECS => Ok(v),
        _ => Err(()),
    }
}

/// Checks the environment variables that feed the configuration (`CONFIG_SERVER_URL`,
/// `CONFIG_TIMEOUT`, `CONFIG_SERVER_TOKEN`), so a typo there stops start-up instead of being
/// ignored. A bad token is described, never shown.
pub fn check_env(env: &dyn Env) -> Result<(), ConfigError> {
    let mut problems = Vec::new();
    if let Some(url) = env_value(env, ENV_CONFIG_SERVER_URL) {
        if let Err(why) = check_url(&url) {
            problems.push(Problem::new(
                None,
                ENV_CONFIG_SERVER_URL,
                format!(
                    "{ENV_CONFIG_SERVER_URL} {why}, got {url:?} \
                     (set {ENV_CONFIG_SERVER_URL}=http://config-server:8080, or unset it)"
                ),
            ));
        }
    }
    if let Some(t) = env_value(env, ENV_CONFIG_TIMEOUT) {
        if parse_timeout(&t).is_err() {
            problems.push(Problem::new(
                None,
                ENV_CONFIG_TIMEOUT,
                format!(
                    "{ENV_CONFIG_TIMEOUT} must be a number of seconds above 0 and at most \
                     {MAX_CONFIG_TIMEOUT_SECS}, got {t:?} \
                     (set {ENV_CONFIG_TIMEOUT}={DEFAULT_CONFIG_TIMEOUT_SECS})"
                ),
            ));
        }
    }
    if let Some(t) = env_value(env, ENV_CONFIG_SERVER_TOKEN) {
        if !is_header_token(&t) {
            problems.push(Problem::new(
                None,
                ENV_CONFIG_SERVER_TOKEN,
                format!(
                    "{ENV_CONFIG_SERVER_TOKEN} must be one word of visible ASCII characters, as \
                     it is sent in an HTTP header; got text with a space, a control character \
                     or a non-ASCII character, not shown here (set \
                     {ENV_CONFIG_SERVER_TOKEN}=<a long random secret>, or unset it)"
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            origin: "environment".to_string(),
            problems,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_resolution_order() {
        let mut env = BTreeMap::new();
        let cfg = Config::default();
        assert_eq!(
            resolve_hostname_with(&cfg, &env, || Some("sys".into())),
            "sys"
        );
        assert_eq!(resolve_hostname_with(&cfg, &env, || None), "localhost");
        env.insert(ENV_HOSTNAME.to_string(), " env-host ".to_string());
        assert_eq!(
            resolve_hostname_with(&cfg, &env, || Some("sys".into())),
            "env-host"
        );
        let cfg2 = Config {
            hostname: Some("cfg-host".into()),
            ..Config::default()
        };
        assert_eq!(resolve_hostname(&cfg2, &env), "cfg-host");
        assert!(system_hostname().is_some());

        assert_eq!(host_root(&cfg, &env), PathBuf::from("/"));
        env.insert(ENV_HOST_ROOT.to_string(), " /host ".to_string());
        assert_eq!(host_root(&cfg, &env), PathBuf::from("/host"));
        let fixture = Config {
            host_root: Some("/srv/fixture".into()),
            ..Config::default()
        };
        assert_eq!(host_root(&fixture, &env), PathBuf::from("/srv/fixture"));

        assert_eq!(api_token(&cfg, &env), None);
        env.insert(ENV_API_TOKEN.to_string(), "s3cret".to_string());
        assert_eq!(api_token(&cfg, &env).as_deref(), Some("s3cret"));

        assert_eq!(config_server(&cfg, &env), None);
        env.insert(ENV_CONFIG_SERVER_URL.into(), "http://127.0.0.1:1".into());
        assert_eq!(
            config_server(&cfg, &env),
            Some(ConfigServerSettings {
                url: "http://127.0.0.1:1".into(),
                timeout: Duration::from_secs(5),
                token: None,
                ca_file: None,
            })
        );
        env.insert(ENV_CONFIG_TIMEOUT.into(), "0.5".into());
        assert_eq!(
            config_server(&cfg, &env).unwrap().timeout,
            Duration::from_millis(500)
        );
        let mut hm = HashMap::new();
        hm.insert(ENV_LOCAL_CONFIG_PATH.to_string(), "/x/c.yaml".to_string());
        assert_eq!(config_path(None, &hm), PathBuf::from("/x/c.yaml"));
        assert_eq!(
            config_path(Some(Path::new("/f.yaml")), &hm),
            PathBuf::from("/f.yaml")
        );
        assert_eq!(
            config_path(None, &BTreeMap::new()),
            PathBuf::from(DEFAULT_CONFIG_PATH)
        );
    }

    /// The token resolves like `api_token`: the file's, else the variable's; a blank one in
    /// the file counts as unset. The CA file has no variable.
    #[test]
    fn the_config_server_token_comes_from_the_file_else_the_environment() {
        let mut env = BTreeMap::new();
        env.insert(ENV_CONFIG_SERVER_URL.into(), "https://cfg.example".into());
        let mut cfg = Config::default();
        assert_eq!(config_server(&cfg, &env).unwrap().token, None);
        env.insert(ENV_CONFIG_SERVER_TOKEN.into(), " from-env ".into());
        assert_eq!(
            config_server(&cfg, &env).unwrap().token.as_deref(),
            Some("from-env")
        );
        cfg.config_server.token = Some("from-file".into());
        cfg.config_server.ca_file = Some("/etc/edge-metrics/ca.pem".into());
        let settings = config_server(&cfg, &env).unwrap();
        assert_eq!(settings.token.as_deref(), Some("from-file"));
        assert_eq!(
            settings.ca_file.as_deref(),
            Some(Path::new("/etc/edge-metrics/ca.pem"))
        );
        let shown = format!("{settings:?}");
        assert!(!shown.contains("from-file"), "{shown}");
        assert!(shown.contains("<secret>"), "{shown}");
        cfg.config_server.token = Some("  ".into());
        assert_eq!(
            config_server(&cfg, &env).unwrap().token.as_deref(),
            Some("from-env")
        );
    }

    #[test]
    fn a_bad_config_server_token_in_the_environment_is_described_not_shown() {
        let mut env = BTreeMap::new();
        env.insert(ENV_CONFIG_SERVER_TOKEN.to_string(), "two words".to_string());
        let e = check_env(&env).unwrap_err().to_string();
        assert_eq!(
            e,
            "environment: CONFIG_SERVER_TOKEN must be one word of visible ASCII characters, as \
             it is sent in an HTTP header; got text with a space, a control character or a \
             non-ASCII character, not shown here (set CONFIG_SERVER_TOKEN=<a long random \
             secret>, or unset it)"
        );
        assert!(!e.contains("two words"));
        env.insert(
            ENV_CONFIG_SERVER_TOKEN.to_string(),
            " s3cr3t.T0ken \n".to_string(),
        );
        check_env(&env).unwrap();
    }

    #[test]
    fn the_management_api_leaves_loopback_only_with_a_token() {
        let mut env = BTreeMap::new();
        let on = |address: &str| Config {
            reload_bind_address: address.into(),
            ..Config::default()
        };
        for address in ["127.0.0.1", "127.0.0.2", "::1", "::ffff:127.0.0.1"] {
            assert!(is_loopback(address), "{address}");
            check_api_exposure(&on(address), &env, "config.yaml").unwrap();
        }
        for address in ["0.0.0.0", "::", "192.0.2.7", "fe80::1", "localhost", ""] {
            assert!(!is_loopback(address), "{address}");
        }
        check_api_exposure(&Config::default(), &env, "config.yaml").unwrap();
        let e = check_api_exposure(&on("0.0.0.0"), &env, "/etc/edge-metrics/config.yaml")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "/etc/edge-metrics/config.yaml: reload_bind_address 0.0.0.0 is not a loopback \
             address and no API token is set, so anyone who reaches port 9101 could rewrite the \
             configuration (set api_token: \"<a long random secret>\" in config.yaml or \
             EDGE_METRICS_API_TOKEN=<secret> in the environment, or set reload_bind_address: \
             127.0.0.1)"
        );
        assert!(!e.contains('\n'));
        // A token from the file or from the environment allows it; a blank one does not.
        let blank = Config {
            api_token: Some("  ".into()),
            ..on("::")
        };
        assert!(check_api_exposure(&blank, &env, "c").is_err());
        let with_token = Config {
            api_token: Some("t0k".into()),
            ..on("::")
        };
        check_api_exposure(&with_token, &env, "c").unwrap();
        env.insert(ENV_API_TOKEN.to_string(), "s3cret".to_string());
        check_api_exposure(&on("192.0.2.7"), &env, "c").unwrap();
    }

    #[test]
    fn bad_env_values_are_named_with_their_fix() {
        let mut env = BTreeMap::new();
        env.insert(ENV_CONFIG_TIMEOUT.to_string(), "soon".to_string());
        let e = check_env(&env).unwrap_err().to_string();
        assert_eq!(
            e,
            "environment: CONFIG_TIMEOUT must be a number of seconds above 0 and at most 300, \
             got \"soon\" (set CONFIG_TIMEOUT=5)"
        );
        env.insert(ENV_CONFIG_TIMEOUT.to_string(), " 2 ".to_string());
        check_env(&env).unwrap();
    }
}
