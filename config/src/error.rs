//! Why a configuration could not be used: [`ConfigError`], the [`Problem`]s it lists, and
//! [`error_chain`] for logging any error with its sources on one line.

use std::path::PathBuf;

/// One thing wrong with a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the file, when the text is a file and the key was found in it.
    pub line: Option<usize>,
    /// The key, dotted (`shelly.server_url`, `metrics.jetson_ram_used_mb`); empty for the file.
    pub key: String,
    /// What is wrong, the value found and the fix, e.g.
    /// `interval must be at least 0.1, got 0 (set interval: 1)`.
    pub message: String,
}

impl Problem {
    pub(super) fn new(line: Option<usize>, key: &str, message: String) -> Problem {
        Problem {
            line,
            key: key.to_string(),
            message,
        }
    }
}

fn render_problems(origin: &str, problems: &[Problem]) -> String {
    let parts: Vec<String> = problems
        .iter()
        .map(|p| match p.line {
            Some(line) => format!("{origin}:{line}: {}", p.message),
            None => format!("{origin}: {}", p.message),
        })
        .collect();
    parts.join("; ")
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path} (check the path and its permissions, or set --config / LOCAL_CONFIG_PATH)")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not a valid configuration. Displayed on one line, every problem as
    /// `origin:line: message`, separated by `; `.
    #[error("{}", render_problems(origin, problems))]
    Invalid {
        /// File name, "Config Server" or "environment".
        origin: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
    /// The file could not be written; the previous file, if any, is unchanged.
    #[error("cannot write config {path} (its directory must be writable: mount the directory, not the single file)")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl ConfigError {
    /// The individual problems of an [`ConfigError::Invalid`] (empty for other variants).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }

    /// An [`ConfigError::Invalid`] with the single problem `message`, about no key or line.
    pub(super) fn invalid(origin: &str, message: String) -> ConfigError {
        ConfigError::Invalid {
            origin: origin.to_string(),
            problems: vec![Problem::new(None, "", message)],
        }
    }
}

/// `error: source: source...` on one line, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str(": ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}
