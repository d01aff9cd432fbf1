//! `edge-metrics-config-server` binary: `edge-metrics-config-server [serve] [options]` and
//! `edge-metrics-config-server healthcheck [options]`. Flags and environment → settings (exit
//! 64 when unusable, or when an open server would listen beyond loopback) → `lib::run` (exit 1
//! when the database cannot be opened or the port bound).

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context as _;
use edge_metrics_common::cli::{Front, FrontDoor, EXIT_USAGE};
use edge_metrics_common::{healthcheck, init_tracing};
use edge_metrics_config_server::settings::Settings;

const NAME: &str = "edge-metrics-config-server";

const USAGE: &str = "\
edge-metrics-config-server: layered configs for edge-metrics exporters (GET/PUT /config/{device})

Usage:
  edge-metrics-config-server [serve] [options]      run the server
  edge-metrics-config-server healthcheck [options]  GET /health; exit 0 when healthy

Options (flags win over environment variables):
  --listen ADDR:PORT      where the API listens    CONFIG_SERVER_LISTEN   (127.0.0.1:8080)
  --database URL          sqlite://PATH or         CONFIG_SERVER_DATABASE (sqlite://./config-server.db)
                          postgres://user:pass@host:5432/db
  --max-connections N     open connections at most CONFIG_SERVER_MAX_CONNECTIONS (1024)
Tokens (environment only; name:token entries or bare tokens, comma or line separated):
  CONFIG_SERVER_OPERATOR_TOKEN / CONFIG_SERVER_OPERATOR_TOKEN_FILE   defaults, history, /devices
  CONFIG_SERVER_DEVICE_TOKEN   / CONFIG_SERVER_DEVICE_TOKEN_FILE     GET/PUT /config/{device}
Without any token the server is open and listens only on loopback.
Logging: RUST_LOG (default info). Docs: docs/CONFIG-SERVER.md
";

fn main() -> ExitCode {
    let door = FrontDoor {
        name: NAME,
        usage: USAGE,
        version: (env!("EDGE_METRICS_VERSION"), env!("EDGE_METRICS_REVISION")),
        subcommands: &["serve", "healthcheck"],
    };
    let (sub, args) = match door.read(std::env::args_os().skip(1).collect()) {
        Front::Run { subcommand, args } => (subcommand, args),
        Front::Done => return ExitCode::SUCCESS,
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    let settings = match Settings::from_args(args, &env) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{NAME}: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if sub == "healthcheck" {
        let probe = healthcheck::get(settings.listen, "/health");
        return healthcheck::exit_code(&format!("{NAME} healthcheck"), "/health", probe);
    }
    if let Err(e) = settings.check_exposure() {
        eprintln!("{NAME}: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    init_tracing();
    match serve(settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "Config Server failed.");
            eprintln!("{NAME}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let shutdown = edge_metrics_common::signal::shutdown_token("server");
        edge_metrics_config_server::run(settings, shutdown).await?;
        Ok(())
    })
}
