//! `edge-metrics-exporter` binary: flags → config → `edge_metrics_exporter::run`; maps errors to
//! exit codes (64: unusable configuration, including a management API beyond loopback without
//! an API token; 1: anything else).
//!
//! ```text
//! edge-metrics-exporter [--config PATH]          (else LOCAL_CONFIG_PATH, else /etc/edge-metrics/config.yaml)
//! edge-metrics-exporter healthcheck [--url URL]  (GET the management /health, exit 0 on 200)
//! edge-metrics-exporter --version | --help
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use edge_metrics_common::cli::{self, ArgError, EXIT_USAGE};
use edge_metrics_common::{healthcheck, init_tracing};

use edge_metrics_exporter::config::error_chain;
use edge_metrics_exporter::device::Device;
use edge_metrics_exporter::owner::{ConfigOrigin, EnvMap};
use edge_metrics_exporter::selfmetrics::{REVISION, VERSION};
use edge_metrics_exporter::{collector, config};
use edge_metrics_exporter::{run, RunOptions};
use tokio_util::sync::CancellationToken;

const USAGE: &str = "\
edge-metrics-exporter: Prometheus exporter for NVIDIA Jetson tegrastats and Shelly plug power

Usage:
  edge-metrics-exporter [--config PATH]
  edge-metrics-exporter healthcheck [--url URL] [--config PATH]
  edge-metrics-exporter --version | --help

Options:
  --config PATH   config.yaml to use (default: $LOCAL_CONFIG_PATH, else
                  /etc/edge-metrics/config.yaml);
                  written with defaults when missing
  --url URL       health URL to check (default: http://127.0.0.1:<reload_port>/health)

Logging: RUST_LOG (default info).";

#[derive(Debug, PartialEq)]
enum Mode {
    Run,
    Healthcheck { url: Option<String> },
    Version,
    Help,
}

#[derive(Debug)]
struct Args {
    mode: Mode,
    config: Option<PathBuf>,
}

/// Reads the command line (without the program name). The last of `--help`, `--version`
/// and `healthcheck` decides the mode; `--url` only goes with `healthcheck`.
fn parse_args<I>(args: I) -> Result<Args, ArgError>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::Arg::{Long, Short, Value};
    let mut mode = Mode::Run;
    let mut config = None;
    let mut url = None;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        match arg {
            Long("config") | Short('c') => config = Some(PathBuf::from(parser.value()?)),
            Long("url") => url = Some(cli::value(&mut parser)?),
            Long("version") | Short('V') => mode = Mode::Version,
            Long("help") | Short('h') => mode = Mode::Help,
            Value(word) if word == "healthcheck" => mode = Mode::Healthcheck { url: None },
            other => return Err(other.unexpected().into()),
        }
    }
    if let Mode::Healthcheck { url: u } = &mut mode {
        *u = url;
    } else if url.is_some() {
        return Err(ArgError::new("--url", "only goes with healthcheck"));
    }
    Ok(Args { mode, config })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args_os().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("edge-metrics-exporter: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let env: EnvMap = std::env::vars().collect();
    let config_path = config::config_path(args.config.as_deref(), &env);
    match args.mode {
        Mode::Version => {
            println!("edge-metrics-exporter {VERSION} (revision {REVISION})");
            ExitCode::SUCCESS
        }
        Mode::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Mode::Healthcheck { url } => run_healthcheck(url, &config_path),
        Mode::Run => serve(config_path, env),
    }
}

fn serve(config_path: PathBuf, env: EnvMap) -> ExitCode {
    init_tracing();
    // A fresh config says `device_type: auto`; its default metrics are those of the type
    // detected now (host_root from the environment, the file does not exist yet).
    let fresh = || {
        let host_root = config::host_root(&config::Config::default(), &env);
        collector::fresh_config(Device::resolve(config::DeviceType::Auto, &host_root).kind)
    };
    let (config, created) = match config::load(&config_path, &env, &fresh) {
        Ok(loaded) => (loaded.config, loaded.created),
        Err(error) => {
            eprintln!("{}", error_chain(&error));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // One thread is plenty for a 1 Hz exporter and keeps RSS small.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = RunOptions {
        config_path,
        config,
        origin: ConfigOrigin::Local,
        created,
        env,
    };
    match runtime.block_on(run(options, CancellationToken::new())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}", error_chain(&e));
            if e.is_usage() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// GET the management /health; exit 0 on 200. No shell or curl needed in the image.
fn run_healthcheck(url: Option<String>, config_path: &Path) -> ExitCode {
    let url = url.unwrap_or_else(|| {
        let port = std::fs::read_to_string(config_path)
            .ok()
            .and_then(|t| config::parse(&t, "config").ok())
            .map_or(9101, |c| c.reload_port);
        format!("http://127.0.0.1:{port}/health")
    });
    healthcheck::exit_code("healthcheck", &url, healthcheck::get_url(&url))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, ArgError> {
        parse_args(args.iter().copied())
    }

    #[test]
    fn config_without_its_value_is_an_error_that_names_it() {
        let e = parse(&["--config"]).unwrap_err();
        assert_eq!(e.to_string(), "--config: needs a value; see --help");
        let e = parse(&["healthcheck", "-c"]).unwrap_err();
        assert_eq!(e.name, "-c");
        let e = parse(&["healthcheck", "--url"]).unwrap_err();
        assert_eq!(e.name, "--url");
    }

    #[test]
    fn flags_subcommand_and_modes() {
        let a = parse(&[]).unwrap();
        assert_eq!((a.mode, a.config), (Mode::Run, None));
        let a = parse(&["--config=/tmp/c.yaml"]).unwrap();
        assert_eq!(a.config, Some(PathBuf::from("/tmp/c.yaml")));
        let a = parse(&[
            "-c",
            "x.yaml",
            "healthcheck",
            "--url",
            "http://127.0.0.1:1/health",
        ])
        .unwrap();
        assert_eq!(a.config, Some(PathBuf::from("x.yaml")));
        assert_eq!(
            a.mode,
            Mode::Healthcheck {
                url: Some("http://127.0.0.1:1/health".into())
            }
        );
        assert_eq!(parse(&["--help", "--version"]).unwrap().mode, Mode::Version);
        assert_eq!(parse(&["-V", "-h"]).unwrap().mode, Mode::Help);
    }

    #[test]
    fn usage_errors_name_the_argument() {
        assert_eq!(
            parse(&["--no-such-flag"]).unwrap_err().name,
            "--no-such-flag"
        );
        assert_eq!(parse(&["serve"]).unwrap_err().name, "serve");
        let e = parse(&["--url", "http://127.0.0.1:1/health"]).unwrap_err();
        assert_eq!(e.to_string(), "--url: only goes with healthcheck");
    }
}
