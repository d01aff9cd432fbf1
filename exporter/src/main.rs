//! `edge-metrics-exporter` binary: flags → config → `edge_metrics_exporter::run`; maps errors to
//! exit codes (64: unusable configuration, 1: anything else).
//!
//! ```text
//! edge-metrics-exporter [--config PATH]          (else LOCAL_CONFIG_PATH, else /etc/edge-metrics/config.yaml)
//! edge-metrics-exporter healthcheck [--url URL]  (GET the management /health, exit 0 on 200)
//! edge-metrics-exporter --version | --help
//! ```

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use edge_metrics_common::{healthcheck, init_tracing};

use edge_metrics_exporter::config;
use edge_metrics_exporter::config::error_chain;
use edge_metrics_exporter::owner::{ConfigOrigin, EnvMap};
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

/// Exit code for an unusable configuration (EX_USAGE).
const EXIT_CONFIG: u8 = 64;

enum Mode {
    Run,
    Healthcheck { url: Option<String> },
    Version,
    Help,
}

struct Args {
    mode: Mode,
    config: Option<PathBuf>,
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut mode = Mode::Run;
    let mut config = None;
    let mut url = None;
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--config" | "-c" => config = Some(PathBuf::from(value("--config")?)),
            "--url" => url = Some(value("--url")?),
            "--version" | "-V" => mode = Mode::Version,
            "--help" | "-h" => mode = Mode::Help,
            "healthcheck" => mode = Mode::Healthcheck { url: None },
            other => return Err(format!("unknown argument {other:?}; see --help")),
        }
    }
    if let Mode::Healthcheck { url: u } = &mut mode {
        *u = url;
    } else if url.is_some() {
        return Err("--url only goes with healthcheck".into());
    }
    Ok(Args { mode, config })
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("edge-metrics-exporter: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let env: EnvMap = std::env::vars().collect();
    let config_path = config::config_path(args.config.as_deref(), &env);
    match args.mode {
        Mode::Version => {
            println!("edge-metrics-exporter {}", env!("CARGO_PKG_VERSION"));
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
    let (config, created) = match config::load(&config_path, &env) {
        Ok(loaded) => (loaded.config, loaded.created),
        Err(error) => {
            eprintln!("{}", error_chain(&error));
            return ExitCode::from(EXIT_CONFIG);
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
            ExitCode::FAILURE
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
