//! Tracing set-up: `RUST_LOG` (default `info`) to stderr, colours only on a terminal.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

/// The level used when `RUST_LOG` is unset or does not parse.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the process-wide subscriber. A second call leaves the first one in place.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter(std::env::var("RUST_LOG").ok().as_deref()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// The filter for a `RUST_LOG` value: the value itself when it parses, else
/// [`DEFAULT_FILTER`].
fn filter(rust_log: Option<&str>) -> EnvFilter {
    rust_log
        .and_then(|directives| EnvFilter::try_new(directives).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_FILTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_log_wins_and_info_is_the_fallback() {
        assert_eq!(filter(None).to_string(), "info");
        assert_eq!(filter(Some("[")).to_string(), "info", "unparsable");
        assert_eq!(
            filter(Some("warn,shelly_bridge=debug")).to_string(),
            "shelly_bridge=debug,warn"
        );
    }

    #[test]
    fn a_second_init_is_harmless() {
        init_tracing();
        init_tracing();
        tracing::info!("Logged after two initialisations.");
    }
}
