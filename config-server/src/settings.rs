//! The server's settings, from flags and environment variables (a flag wins; a blank variable
//! counts as unset).
//!
//! | flag | variable | default |
//! |---|---|---|
//! | `--listen ADDR:PORT` | `CONFIG_SERVER_LISTEN` | `127.0.0.1:8080` |
//! | `--database URL` | `CONFIG_SERVER_DATABASE` | `sqlite://./config-server.db` |
//! | `--max-connections N` | `CONFIG_SERVER_MAX_CONNECTIONS` | 1024 open connections |
//! | | `CONFIG_SERVER_OPERATOR_TOKEN` / `_FILE` | none |
//! | | `CONFIG_SERVER_DEVICE_TOKEN` / `_FILE` | none |
//!
//! Tokens come only from the environment or files, never flags (a flag shows in `ps`). An
//! operator token list is `name:token` entries (or a bare token, named `operator`) separated by
//! commas or lines; a device token list is tokens separated the same way. With no token at all
//! the server is open, and [`Settings::check_exposure`] refuses an address beyond loopback.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;

use edge_metrics_common::cli::{self, ArgError};

use crate::auth::{self, Tokens};
use crate::store::{DatabaseUrl, DEFAULT_DATABASE};

/// The default listen address: loopback, the exporter's historical Config Server port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// The default cap on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Everything the server needs to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Where the HTTP API listens.
    pub listen: SocketAddr,
    /// The database.
    pub database: DatabaseUrl,
    /// The configured tokens (none: open).
    pub tokens: Tokens,
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
}

/// Flags this module understands (each takes a value).
pub const FLAGS: [&str; 3] = ["--listen", "--database", "--max-connections"];

fn given_flags<I>(args: I) -> Result<HashMap<&'static str, String>, ArgError>
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
            return Err(ArgError::new(
                cli::shown(&arg),
                format!("unknown option; known: {} (see --help)", FLAGS.join(", ")),
            ));
        };
        given.insert(flag, cli::value(&mut parser)?);
    }
    Ok(given)
}

/// Reads a token list from `VAR` or the file named by `VAR_FILE` (not both).
fn token_source(
    env: &HashMap<String, String>,
    var: &str,
) -> Result<Option<(String, String)>, ArgError> {
    let set = |name: &str| env.get(name).filter(|v| !v.trim().is_empty()).cloned();
    let file_var = format!("{var}_FILE");
    match (set(var), set(&file_var)) {
        (Some(_), Some(_)) => Err(ArgError::new(
            var,
            format!("give the token once: {var} or {file_var}, not both"),
        )),
        (Some(v), None) => Ok(Some((var.to_string(), v))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path.trim()).map_err(|e| {
                ArgError::new(&file_var, format!("cannot read the token file {path}: {e}"))
            })?;
            Ok(Some((format!("{file_var} ({})", path.trim()), text)))
        }
        (None, None) => Ok(None),
    }
}

impl Settings {
    /// Reads the settings from `args` (after the subcommand) and `env`. Unknown flags, a flag
    /// without its value, an unusable address, URL or token are errors naming the flag or
    /// variable.
    pub fn from_args<I>(args: I, env: &HashMap<String, String>) -> Result<Settings, ArgError>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        let given = given_flags(args)?;
        let lookup = |flag: &'static str, var: &'static str| -> Option<(&'static str, String)> {
            given.get(flag).map(|v| (flag, v.clone())).or_else(|| {
                env.get(var)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (var, v.clone()))
            })
        };
        let listen = match lookup("--listen", "CONFIG_SERVER_LISTEN") {
            Some((name, v)) => v.trim().parse::<SocketAddr>().map_err(|_| {
                ArgError::new(
                    name,
                    format!(
                        "`{}` is not ADDR:PORT with an IP address, e.g. 127.0.0.1:8080, \
                         0.0.0.0:8080 or [::]:8080",
                        v.escape_default()
                    ),
                )
            })?,
            None => DEFAULT_LISTEN
                .parse()
                .expect("invariant: the default listen address parses"),
        };
        let database = match lookup("--database", "CONFIG_SERVER_DATABASE") {
            Some((name, v)) => DatabaseUrl::parse(&v).map_err(|m| ArgError::new(name, m))?,
            None => DatabaseUrl::parse(DEFAULT_DATABASE)
                .expect("invariant: the default database URL parses"),
        };
        let max_connections = match lookup("--max-connections", "CONFIG_SERVER_MAX_CONNECTIONS") {
            Some((name, v)) => match v.trim().parse::<usize>() {
                Ok(n) if (1..=1_000_000).contains(&n) => n,
                _ => {
                    return Err(ArgError::new(
                        name,
                        format!("must be a whole number from 1 to 1000000, got `{v}`"),
                    ))
                }
            },
            None => DEFAULT_MAX_CONNECTIONS,
        };
        let operators = match token_source(env, "CONFIG_SERVER_OPERATOR_TOKEN")? {
            Some((name, text)) => {
                auth::parse_named_tokens(&text).map_err(|m| ArgError::new(name, m))?
            }
            None => Vec::new(),
        };
        let devices = match token_source(env, "CONFIG_SERVER_DEVICE_TOKEN")? {
            Some((name, text)) => auth::parse_tokens(&text).map_err(|m| ArgError::new(name, m))?,
            None => Vec::new(),
        };
        Ok(Settings {
            listen,
            database,
            tokens: Tokens { operators, devices },
            max_connections,
        })
    }

    /// Refuses an open server (no token) on an address beyond loopback: anyone who reaches
    /// it could rewrite every device's config.
    pub fn check_exposure(&self) -> Result<(), ArgError> {
        if self.tokens.is_open() && !self.listen.ip().is_loopback() {
            return Err(ArgError::new(
                "--listen",
                format!(
                    "{} is not a loopback address and no token is set; set \
                     CONFIG_SERVER_OPERATOR_TOKEN and CONFIG_SERVER_DEVICE_TOKEN (or their \
                     _FILE variants) to random secrets, e.g. `openssl rand -hex 32`, or listen \
                     on 127.0.0.1",
                    self.listen
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use test_support::env;

    #[test]
    fn defaults() {
        let s = Settings::from_args(Vec::<String>::new(), &HashMap::new()).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.database, DatabaseUrl::Sqlite("./config-server.db".into()));
        assert!(s.tokens.is_open());
        assert_eq!(s.max_connections, 1024);
        assert!(s.check_exposure().is_ok());
    }

    #[test]
    fn flags_win_over_variables_and_blank_variables_are_unset() {
        let e = env(&[
            ("CONFIG_SERVER_LISTEN", "0.0.0.0:9000"),
            ("CONFIG_SERVER_DATABASE", "  "),
        ]);
        let s = Settings::from_args(["--listen=127.0.0.1:0"], &e).unwrap();
        assert_eq!(s.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(s.database.backend(), "sqlite");
        let s = Settings::from_args(["--database", "postgres://u:p@h/db"], &e).unwrap();
        assert_eq!(s.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(s.database.backend(), "postgres");
    }

    #[test]
    fn mistakes_name_the_flag_or_variable() {
        let e = Settings::from_args(["--listen", "localhost:80"], &HashMap::new()).unwrap_err();
        assert_eq!(e.name, "--listen");
        let e = Settings::from_args(["--listen"], &HashMap::new()).unwrap_err();
        assert!(e.message.contains("needs a value"), "{e}");
        let e = Settings::from_args(["--port", "1"], &HashMap::new()).unwrap_err();
        assert!(e.message.contains("unknown option"), "{e}");
        let e = Settings::from_args(
            Vec::<String>::new(),
            &env(&[("CONFIG_SERVER_DATABASE", "mysql://x")]),
        )
        .unwrap_err();
        assert_eq!(e.name, "CONFIG_SERVER_DATABASE");
        let e = Settings::from_args(
            Vec::<String>::new(),
            &env(&[("CONFIG_SERVER_DEVICE_TOKEN", "short")]),
        )
        .unwrap_err();
        assert_eq!(e.name, "CONFIG_SERVER_DEVICE_TOKEN");
        let e = Settings::from_args(
            Vec::<String>::new(),
            &env(&[
                ("CONFIG_SERVER_OPERATOR_TOKEN", "aaaaaaaaaaaaaaaaaaaa"),
                ("CONFIG_SERVER_OPERATOR_TOKEN_FILE", "/x"),
            ]),
        )
        .unwrap_err();
        assert!(e.message.contains("not both"), "{e}");
    }

    #[test]
    fn tokens_from_variables_and_files() {
        let dir = std::env::temp_dir().join(format!("cs-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ops");
        std::fs::write(
            &file,
            "# operators\nalice:aaaaaaaaaaaaaaaaaaaa\nbob:bbbbbbbbbbbbbbbbbbbb\n",
        )
        .unwrap();
        let s = Settings::from_args(
            ["--listen", "0.0.0.0:8080"],
            &env(&[
                ("CONFIG_SERVER_OPERATOR_TOKEN_FILE", file.to_str().unwrap()),
                ("CONFIG_SERVER_DEVICE_TOKEN", "dddddddddddddddddddd"),
            ]),
        )
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<&str> = s.tokens.operators.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert_eq!(s.tokens.devices.len(), 1);
        assert!(s.check_exposure().is_ok());
        let e = Settings::from_args(
            Vec::<String>::new(),
            &env(&[("CONFIG_SERVER_DEVICE_TOKEN_FILE", "/nonexistent/token")]),
        )
        .unwrap_err();
        assert_eq!(e.name, "CONFIG_SERVER_DEVICE_TOKEN_FILE");
    }

    #[test]
    fn an_open_server_stays_on_loopback() {
        for addr in ["0.0.0.0:8080", "[::]:8080", "192.0.2.1:8080"] {
            let s = Settings::from_args(["--listen", addr], &HashMap::new()).unwrap();
            let e = s.check_exposure().unwrap_err();
            assert!(
                e.to_string().contains("CONFIG_SERVER_OPERATOR_TOKEN"),
                "{e}"
            );
        }
        for addr in ["127.0.0.1:8080", "127.0.0.2:1", "[::1]:8080"] {
            let s = Settings::from_args(["--listen", addr], &HashMap::new()).unwrap();
            assert!(s.check_exposure().is_ok(), "{addr}");
        }
    }
}
