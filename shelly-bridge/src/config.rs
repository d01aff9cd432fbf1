//! Bridge settings from flags and environment variables (flags win).
//!
//! | flag | env | default |
//! |---|---|---|
//! | `--bind ADDR` | `SHELLY_BIND` | both listeners, where the two below are not given |
//! | `--ws-bind ADDR` | `SHELLY_WS_BIND` | `0.0.0.0` (plugs must reach it) |
//! | `--http-bind ADDR` | `SHELLY_HTTP_BIND` | `127.0.0.1` (the exporter on the same host) |
//! | `--ws-port N` | `SHELLY_WS_PORT` | 8765 |
//! | `--http-port N` | `SHELLY_HTTP_PORT` | 8766 |
//! | `--ws-token TOKEN` | `SHELLY_WS_TOKEN` | none: any host may pose as a plug |
//! | `--ws-token-file PATH` | `SHELLY_WS_TOKEN_FILE` | none (the token read from a file) |
//! | `--allow-device ID` (repeatable) | `SHELLY_ALLOW_DEVICES` (comma list) | every device |
//! | `--ws-tls-cert PATH` | `SHELLY_WS_TLS_CERT` | none: plain `ws://` |
//! | `--ws-tls-key PATH` | `SHELLY_WS_TLS_KEY` | none |
//! | `--max-plugs N` | `SHELLY_MAX_PLUGS` | 2000 open plug connections |
//! | `--max-http-connections N` | `SHELLY_MAX_HTTP_CONNECTIONS` | 256 |
//! | `--max-pending-requests N` | `SHELLY_MAX_PENDING_REQUESTS` | 64 waiting for one plug |
//! | `--identify-timeout SECS` | `SHELLY_IDENTIFY_TIMEOUT` | 10 |
//! | `--rpc-timeout SECS` | `SHELLY_RPC_TIMEOUT` | 5 |
//! | `--ping-interval SECS` | `SHELLY_PING_INTERVAL` | 20 (silent plug dropped after 2 intervals) |
//! | `--max-frame-bytes N` | `SHELLY_MAX_FRAME_BYTES` | 65536 |
//! | `--src NAME` | `SHELLY_BRIDGE_SRC` | `shelly-bridge-<hostname>` |
//!
//! A listener's address is the first of: its own flag, `--bind`, its own variable,
//! `SHELLY_BIND`, the default. The token is never kept as text: [`Token`] holds its SHA-256
//! digest, compares in constant time and prints as `<redacted>`.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use edge_metrics_common::cli::{self, ArgError};
use subtle::ConstantTimeEq;

/// Everything the bridge needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeConfig {
    /// Where plugs connect (WebSocket).
    pub ws_addr: SocketAddr,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// The secret a plug's URL must carry (`?token=`); `None`: any connection is accepted.
    pub ws_token: Option<Token>,
    /// Device ids allowed to register; `None`: every id.
    pub allow_devices: Option<BTreeSet<String>>,
    /// Certificate and key for `wss://`; `None`: plain `ws://`.
    pub ws_tls: Option<TlsFiles>,
    /// Open plug connections at most (identified or not); more are closed at once.
    pub max_plugs: usize,
    /// Open HTTP API connections at most; more are closed at once.
    pub max_http_connections: usize,
    /// Reading requests waiting for one plug at most; more are answered 503 at once.
    pub max_pending_requests: usize,
    /// How long a new connection may take to say which device it is.
    pub identify_timeout: Duration,
    /// How long a reading request waits for the plug's answer.
    pub rpc_timeout: Duration,
    /// How often a connection is pinged; silent for two intervals means gone.
    pub ping_interval: Duration,
    /// Frames longer than this are dropped (the connection stays); far longer ones close it.
    pub max_frame_bytes: usize,
    /// Our `src` in requests, so replies come back to us.
    pub src: String,
}

/// The PEM files of the plug listener's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The shared secret plugs send as `?token=` in the URL they dial. Holds only its SHA-256
/// digest; [`Token::matches`] compares digests in constant time, so neither the time taken nor
/// a length difference tells a guesser how close it came.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    digest: [u8; 32],
}

/// Shortest token accepted: guessing 16 random URL-safe characters is hopeless.
pub const TOKEN_MIN_LEN: usize = 16;

/// Longest token accepted (it has to fit in the plug's `server` setting).
pub const TOKEN_MAX_LEN: usize = 256;

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Token {
    /// A token from its text: 16 to 256 characters of `A-Z a-z 0-9 - . _ ~`, the characters a
    /// URL carries unencoded (so the plug's URL needs no escaping and the compare no decoding).
    pub fn new(text: &str) -> Result<Token, String> {
        let n = text.chars().count();
        if !(TOKEN_MIN_LEN..=TOKEN_MAX_LEN).contains(&n) {
            return Err(format!(
                "must be {TOKEN_MIN_LEN} to {TOKEN_MAX_LEN} characters long, got {n}; make one \
                 with `openssl rand -hex 32`"
            ));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')))
        {
            return Err(format!(
                "may only hold A-Z, a-z, 0-9 and - . _ ~ (it goes into a URL unescaped), found \
                 {}",
                bad.escape_default()
            ));
        }
        Ok(Token {
            digest: sha256(text.as_bytes()),
        })
    }

    /// Whether `candidate` is this token, in time that does not depend on how much of it is
    /// right.
    pub fn matches(&self, candidate: &str) -> bool {
        sha256(candidate.as_bytes()).ct_eq(&self.digest).into()
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// A flag or variable that could not be used: `name` is the flag or variable, `message` what
/// was wrong and what to do.
pub type ConfigError = ArgError;

fn err(name: &str, message: impl Into<String>) -> ConfigError {
    ArgError::new(name, message)
}

/// The flags given on the command line, each with its values in order (each flag takes a
/// value; the last of a repeated flag wins, except `--allow-device`, which adds up). A flag
/// without its value or an unknown argument is an error naming it.
fn given_flags<I>(args: I) -> Result<HashMap<&'static str, Vec<String>>, ConfigError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut parser = lexopt::Parser::from_args(args);
    let mut given: HashMap<&'static str, Vec<String>> = HashMap::new();
    while let Some(arg) = parser.next()? {
        let known = match &arg {
            lexopt::Arg::Long(name) => FLAGS.iter().copied().find(|f| f[2..] == **name),
            _ => None,
        };
        let Some(flag) = known else {
            return Err(err(
                &cli::shown(&arg),
                format!("unknown option; known: {} (see --help)", FLAGS.join(", ")),
            ));
        };
        given
            .entry(flag)
            .or_default()
            .push(cli::value(&mut parser)?);
    }
    Ok(given)
}

fn parse_port(name: &str, v: &str) -> Result<u16, ConfigError> {
    v.trim().parse().map_err(|_| {
        err(
            name,
            format!("`{v}` is not a port number (0-65535; 0 picks a free one)"),
        )
    })
}

fn parse_secs(name: &str, v: &str) -> Result<Duration, ConfigError> {
    let secs: f64 = v.trim().parse().map_err(|_| {
        err(
            name,
            format!("`{v}` is not a number of seconds, e.g. 5 or 0.5"),
        )
    })?;
    if !(secs > 0.0 && secs < 86_400.0) {
        return Err(err(
            name,
            format!("must be between 0 and 86400 seconds, got {v}"),
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_ip(name: &str, v: &str) -> Result<IpAddr, ConfigError> {
    v.trim().parse().map_err(|_| {
        err(
            name,
            format!("`{v}` is not an IP address, e.g. 0.0.0.0, 127.0.0.1 or ::"),
        )
    })
}

fn parse_count(name: &str, v: &str, max: usize) -> Result<usize, ConfigError> {
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(err(
            name,
            format!("must be a whole number from 1 to {max}, got `{v}`"),
        )),
    }
}

/// A device id as the allow-list takes it: what a plug sends as `src`.
fn parse_device_id(name: &str, v: &str) -> Result<String, ConfigError> {
    let id = v.trim();
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(id.to_string())
    } else {
        Err(err(
            name,
            format!(
                "`{}` is not a device id such as shellyplugsg3-8cbfea99a7f8",
                v.escape_default()
            ),
        ))
    }
}

/// Reads the token out of `path`; surrounding whitespace (the newline `echo` adds) is dropped.
fn read_token_file(name: &str, path: &str) -> Result<Token, ConfigError> {
    let text = std::fs::read_to_string(path.trim())
        .map_err(|e| err(name, format!("cannot read the token file {path}: {e}")))?;
    Token::new(text.trim()).map_err(|m| err(name, format!("the token in {path} {m}")))
}

/// Flags this module understands (each takes a value).
pub const FLAGS: [&str; 18] = [
    "--bind",
    "--ws-bind",
    "--http-bind",
    "--ws-port",
    "--http-port",
    "--ws-token",
    "--ws-token-file",
    "--allow-device",
    "--ws-tls-cert",
    "--ws-tls-key",
    "--max-plugs",
    "--max-http-connections",
    "--max-pending-requests",
    "--identify-timeout",
    "--rpc-timeout",
    "--ping-interval",
    "--max-frame-bytes",
    "--src",
];

impl BridgeConfig {
    /// Reads settings from `args` (after the subcommand) and `env`; `hostname` names the
    /// default `src`. Unknown flags and flags without their value are errors; so is a token
    /// file that cannot be read or holds no usable token.
    pub fn from_args<I>(
        args: I,
        env: &HashMap<String, String>,
        hostname: &str,
    ) -> Result<BridgeConfig, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        let given = given_flags(args)?;
        let flag = |f: &str| given.get(f).and_then(|v| v.last()).cloned();
        // The flag if given, else the environment variable; with the name to blame.
        let lookup = |f: &str, var: &str| match flag(f) {
            Some(v) => Some((f.to_string(), v)),
            None => env.get(var).map(|v| (var.to_string(), v.clone())),
        };
        // A listener's own flag, then --bind, then its own variable, then SHELLY_BIND.
        let bind = |own_flag: &str, own_var: &str, default: [u8; 4]| {
            let found = flag(own_flag)
                .map(|v| (own_flag, v))
                .or_else(|| flag("--bind").map(|v| ("--bind", v)))
                .or_else(|| env.get(own_var).map(|v| (own_var, v.clone())))
                .or_else(|| env.get("SHELLY_BIND").map(|v| ("SHELLY_BIND", v.clone())));
            match found {
                Some((n, v)) => parse_ip(n, &v),
                None => Ok(IpAddr::from(default)),
            }
        };
        let ws_ip = bind("--ws-bind", "SHELLY_WS_BIND", [0, 0, 0, 0])?;
        let http_ip = bind("--http-bind", "SHELLY_HTTP_BIND", [127, 0, 0, 1])?;
        let port = |f: &str, var: &str, default: u16| match lookup(f, var) {
            Some((n, v)) => parse_port(&n, &v),
            None => Ok(default),
        };
        let ws_port = port("--ws-port", "SHELLY_WS_PORT", 8765)?;
        let http_port = port("--http-port", "SHELLY_HTTP_PORT", 8766)?;
        let secs = |f: &str, var: &str, default: u64| match lookup(f, var) {
            Some((n, v)) => parse_secs(&n, &v),
            None => Ok(Duration::from_secs(default)),
        };
        let rpc_timeout = secs("--rpc-timeout", "SHELLY_RPC_TIMEOUT", 5)?;
        let ping_interval = secs("--ping-interval", "SHELLY_PING_INTERVAL", 20)?;
        let identify_timeout = secs("--identify-timeout", "SHELLY_IDENTIFY_TIMEOUT", 10)?;
        let count = |f: &str, var: &str, default: usize, max: usize| match lookup(f, var) {
            Some((n, v)) => parse_count(&n, &v, max),
            None => Ok(default),
        };
        let max_plugs = count("--max-plugs", "SHELLY_MAX_PLUGS", 2000, 1_000_000)?;
        let max_http_connections = count(
            "--max-http-connections",
            "SHELLY_MAX_HTTP_CONNECTIONS",
            256,
            1_000_000,
        )?;
        let max_pending_requests = count(
            "--max-pending-requests",
            "SHELLY_MAX_PENDING_REQUESTS",
            64,
            // A plug task looks over its waiting requests at every wake-up: keep the list short.
            10_000,
        )?;
        let max_frame_bytes = match lookup("--max-frame-bytes", "SHELLY_MAX_FRAME_BYTES") {
            Some((n, v)) => match v.trim().parse::<usize>() {
                Ok(b) if b >= 1024 => b,
                _ => {
                    return Err(err(
                        &n,
                        format!("must be a byte count of at least 1024, got `{v}`"),
                    ))
                }
            },
            None => 64 * 1024,
        };
        let src = match lookup("--src", "SHELLY_BRIDGE_SRC") {
            Some((_, v)) if !v.trim().is_empty() => v.trim().to_string(),
            _ => format!("shelly-bridge-{hostname}"),
        };
        let ws_token = match (
            lookup("--ws-token", "SHELLY_WS_TOKEN"),
            lookup("--ws-token-file", "SHELLY_WS_TOKEN_FILE"),
        ) {
            (Some((a, _)), Some((b, _))) => {
                return Err(err(
                    &a,
                    format!("give the token once: {a} or {b}, not both"),
                ))
            }
            (Some((n, v)), None) => Some(Token::new(v.trim()).map_err(|m| err(&n, m))?),
            (None, Some((n, path))) => Some(read_token_file(&n, &path)?),
            (None, None) => None,
        };
        let allow_devices = match given.get("--allow-device") {
            Some(values) => Some(("--allow-device", values.join(","))),
            None => env
                .get("SHELLY_ALLOW_DEVICES")
                .map(|v| ("SHELLY_ALLOW_DEVICES", v.clone())),
        };
        let allow_devices = match allow_devices {
            Some((n, list)) => {
                let ids = list
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|id| parse_device_id(n, id))
                    .collect::<Result<BTreeSet<String>, _>>()?;
                if ids.is_empty() {
                    return Err(err(
                        n,
                        "lists no device id; leave it unset to allow every device",
                    ));
                }
                Some(ids)
            }
            None => None,
        };
        let ws_tls = match (
            lookup("--ws-tls-cert", "SHELLY_WS_TLS_CERT"),
            lookup("--ws-tls-key", "SHELLY_WS_TLS_KEY"),
        ) {
            (Some((_, cert)), Some((_, key))) => Some(TlsFiles {
                cert: PathBuf::from(cert.trim()),
                key: PathBuf::from(key.trim()),
            }),
            (Some((n, _)), None) => {
                return Err(err(
                    &n,
                    "needs the key too: --ws-tls-key / SHELLY_WS_TLS_KEY",
                ))
            }
            (None, Some((n, _))) => {
                return Err(err(
                    &n,
                    "needs the certificate too: --ws-tls-cert / SHELLY_WS_TLS_CERT",
                ))
            }
            (None, None) => None,
        };
        Ok(BridgeConfig {
            ws_addr: SocketAddr::new(ws_ip, ws_port),
            http_addr: SocketAddr::new(http_ip, http_port),
            ws_token,
            allow_devices,
            ws_tls,
            max_plugs,
            max_http_connections,
            max_pending_requests,
            identify_timeout,
            rpc_timeout,
            ping_interval,
            max_frame_bytes,
            src,
        })
    }

    /// Whether `device_id` may register (always, without an allow-list).
    pub fn allows(&self, device_id: &str) -> bool {
        self.allow_devices
            .as_ref()
            .is_none_or(|ids| ids.contains(device_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let c = BridgeConfig::from_args(args(&[]), &HashMap::new(), "edge-01").unwrap();
        assert_eq!(c.ws_addr, "0.0.0.0:8765".parse().unwrap());
        assert_eq!(c.http_addr, "127.0.0.1:8766".parse().unwrap());
        assert_eq!(c.rpc_timeout, Duration::from_secs(5));
        assert_eq!(c.src, "shelly-bridge-edge-01");
        assert_eq!(c.ws_token, None);
        assert_eq!(c.allow_devices, None);
        assert_eq!(c.ws_tls, None);
        assert_eq!(
            (c.max_plugs, c.max_http_connections, c.max_pending_requests),
            (2000, 256, 64)
        );
        assert_eq!(c.identify_timeout, Duration::from_secs(10));
    }

    #[test]
    fn env_then_flags() {
        let env: HashMap<String, String> = [
            ("SHELLY_WS_PORT", "9000"),
            ("SHELLY_HTTP_PORT", "9001"),
            ("SHELLY_BIND", "127.0.0.1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let c =
            BridgeConfig::from_args(args(&["--http-port=0", "--rpc-timeout", "0.5"]), &env, "h")
                .unwrap();
        assert_eq!(c.ws_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.http_addr, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.rpc_timeout, Duration::from_millis(500));
    }

    #[test]
    fn bad_values_say_what_and_how() {
        let e =
            BridgeConfig::from_args(args(&["--ws-port", "x"]), &HashMap::new(), "h").unwrap_err();
        assert_eq!(e.name, "--ws-port");
        assert!(e.message.contains("port number"));
        let env: HashMap<String, String> =
            [("SHELLY_RPC_TIMEOUT".to_string(), "-1".to_string())].into();
        let e = BridgeConfig::from_args(args(&[]), &env, "h").unwrap_err();
        assert_eq!(e.name, "SHELLY_RPC_TIMEOUT");
        let e = BridgeConfig::from_args(args(&["--wat", "1"]), &HashMap::new(), "h").unwrap_err();
        assert!(e.message.contains("unknown option"));
    }

    #[test]
    fn a_flag_without_its_value_is_an_error_that_names_it() {
        // Regression: `--ws-port` as the last argument used to be accepted and ignored.
        let e = BridgeConfig::from_args(args(&["--ws-port"]), &HashMap::new(), "h").unwrap_err();
        assert_eq!(e.name, "--ws-port");
        assert!(e.message.contains("needs a value"), "{e}");
        let e = BridgeConfig::from_args(
            args(&["--bind", "127.0.0.1", "--src"]),
            &HashMap::new(),
            "h",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "--src: needs a value; see --help");
    }

    #[test]
    fn a_value_may_start_with_a_dash_and_the_last_flag_wins() {
        let c = BridgeConfig::from_args(
            args(&["--src", "-x", "--ws-port", "1", "--ws-port=2"]),
            &HashMap::new(),
            "h",
        )
        .unwrap();
        assert_eq!(c.src, "-x");
        assert_eq!(c.ws_addr.port(), 2);
    }

    #[test]
    fn stray_arguments_and_short_options_are_named() {
        for (arg, name) in [("serve", "serve"), ("-x", "-x"), ("--wat=1", "--wat")] {
            let e = BridgeConfig::from_args(args(&[arg]), &HashMap::new(), "h").unwrap_err();
            assert_eq!(e.name, name);
            assert!(
                e.message.starts_with("unknown option; known: --bind"),
                "{e}"
            );
        }
    }

    use test_support::env;

    const SECRET: &str = "0123456789abcdef-token";

    #[test]
    fn http_defaults_to_loopback_and_each_listener_has_its_own_address() {
        let c = BridgeConfig::from_args(args(&["--ws-bind", "127.0.0.2"]), &env(&[]), "h").unwrap();
        assert_eq!(c.ws_addr, "127.0.0.2:8765".parse().unwrap());
        assert_eq!(c.http_addr, "127.0.0.1:8766".parse().unwrap());
        let c = BridgeConfig::from_args(
            args(&["--http-bind", "::1"]),
            &env(&[("SHELLY_WS_BIND", "::")]),
            "h",
        )
        .unwrap();
        assert_eq!(c.ws_addr, "[::]:8765".parse().unwrap());
        assert_eq!(c.http_addr, "[::1]:8766".parse().unwrap());
    }

    #[test]
    fn bind_means_both_and_flags_win_over_variables() {
        // --bind alone: both listeners, as before.
        let c = BridgeConfig::from_args(args(&["--bind", "0.0.0.0"]), &env(&[]), "h").unwrap();
        assert_eq!(c.http_addr.ip().to_string(), "0.0.0.0");
        assert_eq!(c.ws_addr.ip().to_string(), "0.0.0.0");
        // Own flag, then --bind, then own variable, then SHELLY_BIND.
        let e = env(&[
            ("SHELLY_BIND", "127.0.0.3"),
            ("SHELLY_HTTP_BIND", "127.0.0.4"),
        ]);
        let c = BridgeConfig::from_args(args(&[]), &e, "h").unwrap();
        assert_eq!(c.http_addr.ip().to_string(), "127.0.0.4");
        assert_eq!(c.ws_addr.ip().to_string(), "127.0.0.3");
        let c = BridgeConfig::from_args(args(&["--bind", "127.0.0.5"]), &e, "h").unwrap();
        assert_eq!(c.http_addr.ip().to_string(), "127.0.0.5");
        assert_eq!(c.ws_addr.ip().to_string(), "127.0.0.5");
        let c = BridgeConfig::from_args(
            args(&["--bind", "127.0.0.5", "--http-bind", "127.0.0.6"]),
            &e,
            "h",
        )
        .unwrap();
        assert_eq!(c.http_addr.ip().to_string(), "127.0.0.6");
        assert_eq!(c.ws_addr.ip().to_string(), "127.0.0.5");
        let e =
            BridgeConfig::from_args(args(&[]), &env(&[("SHELLY_WS_BIND", "x")]), "h").unwrap_err();
        assert_eq!(e.name, "SHELLY_WS_BIND");
    }

    #[test]
    fn the_token_comes_from_a_flag_a_variable_or_a_file_and_is_never_printed() {
        let c = BridgeConfig::from_args(args(&["--ws-token", SECRET]), &env(&[]), "h").unwrap();
        let token = c.ws_token.clone().unwrap();
        assert!(token.matches(SECRET));
        assert!(!format!("{c:?}").contains(SECRET), "{c:?}");
        assert!(format!("{c:?}").contains("<redacted>"));
        let c =
            BridgeConfig::from_args(args(&[]), &env(&[("SHELLY_WS_TOKEN", SECRET)]), "h").unwrap();
        assert_eq!(c.ws_token, Some(token.clone()));

        let dir = std::env::temp_dir().join(format!("bridge-token-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, format!("{SECRET}\n")).unwrap();
        let path = file.to_str().unwrap();
        let c = BridgeConfig::from_args(args(&["--ws-token-file", path]), &env(&[]), "h").unwrap();
        assert_eq!(c.ws_token, Some(token));
        let e = BridgeConfig::from_args(
            args(&["--ws-token-file", path]),
            &env(&[("SHELLY_WS_TOKEN", SECRET)]),
            "h",
        )
        .unwrap_err();
        assert!(e.message.contains("not both"), "{e}");
        std::fs::write(&file, "short\n").unwrap();
        let e = BridgeConfig::from_args(args(&[]), &env(&[("SHELLY_WS_TOKEN_FILE", path)]), "h")
            .unwrap_err();
        assert_eq!(e.name, "SHELLY_WS_TOKEN_FILE");
        assert!(e.message.contains(path) && e.message.contains("16"), "{e}");
        assert!(
            !e.message.contains("short"),
            "the file's text is not echoed: {e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let e =
            BridgeConfig::from_args(args(&["--ws-token-file", "/nonexistent/t"]), &env(&[]), "h")
                .unwrap_err();
        assert!(
            e.message
                .contains("cannot read the token file /nonexistent/t"),
            "{e}"
        );
    }

    #[test]
    fn a_token_must_be_long_and_url_safe() {
        assert!(Token::new(SECRET).is_ok());
        assert!(Token::new(&"a".repeat(TOKEN_MAX_LEN)).is_ok());
        assert!(Token::new(&"a".repeat(TOKEN_MAX_LEN + 1)).is_err());
        assert!(Token::new("0123456789abcde")
            .unwrap_err()
            .contains("16 to 256"));
        let e = Token::new("0123456789abcdef&x=1").unwrap_err();
        assert!(e.contains("found &"), "{e}");
        let e =
            BridgeConfig::from_args(args(&["--ws-token", "a b c d e f g h i j"]), &env(&[]), "h")
                .unwrap_err();
        assert_eq!(e.name, "--ws-token");
    }

    #[test]
    fn the_compare_is_exact() {
        let t = Token::new(SECRET).unwrap();
        assert!(t.matches(SECRET));
        for wrong in [
            "",
            "0123456789abcdef-toke",
            "0123456789abcdef-tokenx",
            "1123456789abcdef-token",
            "0123456789ABCDEF-TOKEN",
        ] {
            assert!(!t.matches(wrong), "{wrong}");
        }
    }

    #[test]
    fn the_allow_list_adds_up_flags_or_reads_a_comma_list() {
        let c = BridgeConfig::from_args(
            args(&[
                "--allow-device",
                "shellyplugsg3-a",
                "--allow-device=shellyplugsg3-b,x",
            ]),
            &env(&[("SHELLY_ALLOW_DEVICES", "ignored-when-flags-are-given")]),
            "h",
        )
        .unwrap();
        let ids: Vec<&str> = c
            .allow_devices
            .as_ref()
            .unwrap()
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(ids, ["shellyplugsg3-a", "shellyplugsg3-b", "x"]);
        assert!(c.allows("x") && !c.allows("y"));
        let c = BridgeConfig::from_args(
            args(&[]),
            &env(&[("SHELLY_ALLOW_DEVICES", " a , b ,")]),
            "h",
        )
        .unwrap();
        assert_eq!(c.allow_devices.as_ref().unwrap().len(), 2);
        let c = BridgeConfig::from_args(args(&[]), &env(&[]), "h").unwrap();
        assert!(c.allows("anything"));
        let e = BridgeConfig::from_args(args(&[]), &env(&[("SHELLY_ALLOW_DEVICES", ",")]), "h")
            .unwrap_err();
        assert!(e.message.contains("no device id"), "{e}");
        let e =
            BridgeConfig::from_args(args(&["--allow-device", "a b"]), &env(&[]), "h").unwrap_err();
        assert_eq!(e.name, "--allow-device");
    }

    #[test]
    fn tls_needs_both_files_and_bounds_are_positive() {
        let c = BridgeConfig::from_args(
            args(&["--ws-tls-cert", "/c.pem"]),
            &env(&[("SHELLY_WS_TLS_KEY", "/k.pem")]),
            "h",
        )
        .unwrap();
        assert_eq!(
            c.ws_tls,
            Some(TlsFiles {
                cert: "/c.pem".into(),
                key: "/k.pem".into()
            })
        );
        let e = BridgeConfig::from_args(args(&["--ws-tls-cert", "/c.pem"]), &env(&[]), "h")
            .unwrap_err();
        assert!(e.message.contains("--ws-tls-key"), "{e}");
        for flag in [
            "--max-plugs",
            "--max-http-connections",
            "--max-pending-requests",
        ] {
            let e = BridgeConfig::from_args(args(&[flag, "0"]), &env(&[]), "h").unwrap_err();
            assert_eq!(e.name, flag);
        }
        let c = BridgeConfig::from_args(
            args(&["--max-plugs", "3", "--identify-timeout", "0.5"]),
            &env(&[("SHELLY_MAX_PENDING_REQUESTS", "2")]),
            "h",
        )
        .unwrap();
        assert_eq!((c.max_plugs, c.max_pending_requests), (3, 2));
        assert_eq!(c.identify_timeout, Duration::from_millis(500));
    }
}
