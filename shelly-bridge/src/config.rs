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
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

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

/// A flag or variable that could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{name}: {message}")]
pub struct ConfigError {
    /// The flag or variable.
    pub name: String,
    /// What was wrong and what to do.
    pub message: String,
}

fn err(name: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        name: name.to_string(),
        message: message.into(),
    }
}

/// Finds `--flag VALUE` or `--flag=VALUE` in `args`, else the environment variable.
fn lookup(
    args: &[String],
    flag: &str,
    env: &HashMap<String, String>,
    var: &str,
) -> Option<(String, String)> {
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        if args[i] == flag {
            if let Some(v) = args.get(i + 1) {
                found = Some((flag.to_string(), v.clone()));
            }
            i += 2;
            continue;
        }
        if let Some(v) = args[i].strip_prefix(flag).and_then(|r| r.strip_prefix('=')) {
            found = Some((flag.to_string(), v.to_string()));
        }
        i += 1;
    }
    found.or_else(|| env.get(var).map(|v| (var.to_string(), v.clone())))
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
    /// default `src`. Unknown flags are an error.
    pub fn from_args(
        args: &[String],
        env: &HashMap<String, String>,
        hostname: &str,
    ) -> Result<BridgeConfig, ConfigError> {
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            let name = a.split('=').next().unwrap_or(a);
            if !FLAGS.contains(&name) {
                return Err(err(
                    a,
                    format!("unknown option; known: {} (see --help)", FLAGS.join(", ")),
                ));
            }
            i += if a.contains('=') { 1 } else { 2 };
        }
        let bind: IpAddr = match lookup(args, "--bind", env, "SHELLY_BIND") {
            Some((n, v)) => v.trim().parse().map_err(|_| {
                err(
                    &n,
                    format!("`{v}` is not an IP address, e.g. 0.0.0.0, 127.0.0.1 or ::"),
                )
            })?,
            None => IpAddr::from([0, 0, 0, 0]),
        };
        let port = |flag: &str, var: &str, default: u16| match lookup(args, flag, env, var) {
            Some((n, v)) => parse_port(&n, &v),
            None => Ok(default),
        };
        let ws_port = port("--ws-port", "SHELLY_WS_PORT", 8765)?;
        let http_port = port("--http-port", "SHELLY_HTTP_PORT", 8766)?;
        let secs = |flag: &str, var: &str, default: u64| match lookup(args, flag, env, var) {
            Some((n, v)) => parse_secs(&n, &v),
            None => Ok(Duration::from_secs(default)),
        };
        let rpc_timeout = secs("--rpc-timeout", "SHELLY_RPC_TIMEOUT", 5)?;
        let ping_interval = secs("--ping-interval", "SHELLY_PING_INTERVAL", 20)?;
        let max_frame_bytes = match lookup(args, "--max-frame-bytes", env, "SHELLY_MAX_FRAME_BYTES")
        {
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
        let src = match lookup(args, "--src", env, "SHELLY_BRIDGE_SRC") {
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
        let c = BridgeConfig::from_args(&[], &HashMap::new(), "edge-01").unwrap();
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
            BridgeConfig::from_args(&args(&["--http-port=0", "--rpc-timeout", "0.5"]), &env, "h")
                .unwrap();
        assert_eq!(c.ws_addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.http_addr, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.rpc_timeout, Duration::from_millis(500));
    }

    #[test]
    fn bad_values_say_what_and_how() {
        let e =
            BridgeConfig::from_args(&args(&["--ws-port", "x"]), &HashMap::new(), "h").unwrap_err();
        assert_eq!(e.name, "--ws-port");
        assert!(e.message.contains("port number"));
        let env: HashMap<String, String> =
            [("SHELLY_RPC_TIMEOUT".to_string(), "-1".to_string())].into();
        let e = BridgeConfig::from_args(&[], &env, "h").unwrap_err();
        assert_eq!(e.name, "SHELLY_RPC_TIMEOUT");
        let e = BridgeConfig::from_args(&args(&["--wat", "1"]), &HashMap::new(), "h").unwrap_err();
        assert!(e.message.contains("unknown option"));
    }
}
