//! Bridge settings from flags and environment variables (flags win).
//!
//! | flag | env | default |
//! |---|---|---|
//! | `--bind ADDR` | `SHELLY_BIND` | `0.0.0.0` (both listeners) |
//! | `--ws-port N` | `SHELLY_WS_PORT` | 8765 |
//! | `--http-port N` | `SHELLY_HTTP_PORT` | 8766 |
//! | `--rpc-timeout SECS` | `SHELLY_RPC_TIMEOUT` | 5 |
//! | `--ping-interval SECS` | `SHELLY_PING_INTERVAL` | 20 (silent plug dropped after 2 intervals) |
//! | `--max-frame-bytes N` | `SHELLY_MAX_FRAME_BYTES` | 65536 |
//! | `--src NAME` | `SHELLY_BRIDGE_SRC` | `shelly-bridge-<hostname>` |

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use edge_metrics_common::cli::{self, ArgError};

/// Everything the bridge needs to run.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeConfig {
    /// Where plugs connect (WebSocket).
    pub ws_addr: SocketAddr,
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// How long a reading request waits for the plug's answer.
    pub rpc_timeout: Duration,
    /// How often a connection is pinged; silent for two intervals means gone.
    pub ping_interval: Duration,
    /// Frames longer than this are dropped (the connection stays); far longer ones close it.
    pub max_frame_bytes: usize,
    /// Our `src` in requests, so replies come back to us.
    pub src: String,
}

/// A flag or variable that could not be used: `name` is the flag or variable, `message` what
/// was wrong and what to do.
pub type ConfigError = ArgError;

fn err(name: &str, message: impl Into<String>) -> ConfigError {
    ArgError::new(name, message)
}

/// The flags given on the command line (each takes a value; the last of a repeated flag
/// wins). A flag without its value or an unknown argument is an error naming it.
fn given_flags<I>(args: I) -> Result<HashMap<&'static str, String>, ConfigError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    let mut parser = lexopt::Parser::from_args(args);
    let mut given = HashMap::new();
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
        given.insert(flag, cli::value(&mut parser)?);
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

/// Flags this module understands (each takes a value).
pub const FLAGS: [&str; 7] = [
    "--bind",
    "--ws-port",
    "--http-port",
    "--rpc-timeout",
    "--ping-interval",
    "--max-frame-bytes",
    "--src",
];

impl BridgeConfig {
    /// Reads settings from `args` (after the subcommand) and `env`; `hostname` names the
    /// default `src`. Unknown flags and flags without their value are errors.
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
        // The flag if given, else the environment variable; with the name to blame.
        let lookup = |flag: &str, var: &str| match given.get(flag) {
            Some(v) => Some((flag.to_string(), v.clone())),
            None => env.get(var).map(|v| (var.to_string(), v.clone())),
        };
        let bind: IpAddr = match lookup("--bind", "SHELLY_BIND") {
            Some((n, v)) => v.trim().parse().map_err(|_| {
                err(
                    &n,
                    format!("`{v}` is not an IP address, e.g. 0.0.0.0, 127.0.0.1 or ::"),
                )
            })?,
            None => IpAddr::from([0, 0, 0, 0]),
        };
        let port = |flag: &str, var: &str, default: u16| match lookup(flag, var) {
            Some((n, v)) => parse_port(&n, &v),
            None => Ok(default),
        };
        let ws_port = port("--ws-port", "SHELLY_WS_PORT", 8765)?;
        let http_port = port("--http-port", "SHELLY_HTTP_PORT", 8766)?;
        let secs = |flag: &str, var: &str, default: u64| match lookup(flag, var) {
            Some((n, v)) => parse_secs(&n, &v),
            None => Ok(Duration::from_secs(default)),
        };
        let rpc_timeout = secs("--rpc-timeout", "SHELLY_RPC_TIMEOUT", 5)?;
        let ping_interval = secs("--ping-interval", "SHELLY_PING_INTERVAL", 20)?;
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
        Ok(BridgeConfig {
            ws_addr: SocketAddr::new(bind, ws_port),
            http_addr: SocketAddr::new(bind, http_port),
            rpc_timeout,
            ping_interval,
            max_frame_bytes,
            src,
        })
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
        assert_eq!(c.http_addr, "0.0.0.0:8766".parse().unwrap());
        assert_eq!(c.rpc_timeout, Duration::from_secs(5));
        assert_eq!(c.src, "shelly-bridge-edge-01");
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
}
