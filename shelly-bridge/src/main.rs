//! `shelly-bridge` binary: `shelly-bridge [serve] [flags]`, `shelly-bridge healthcheck
//! [flags]`. `shelly-bridge simulate` only points at `shelly-sim`, the plug simulator's own
//! binary, which the shipped bridge does not contain.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context as _;
use edge_metrics_common::cli::{Front, FrontDoor, EXIT_USAGE};
use edge_metrics_common::{healthcheck, init_tracing};
use shelly_bridge::config::BridgeConfig;
use shelly_bridge::StartError;

const USAGE: &str = "\
shelly-bridge: keeps Shelly Gen2+ outbound WebSocket connections and serves readings over HTTP

Usage:
  shelly-bridge [serve] [options]     run the bridge
  shelly-bridge healthcheck [options] GET /health on 127.0.0.1; exit 0 when healthy
  shelly-sim [options]                simulated plugs: a separate binary (`shelly-sim --help`)

Options (flags win over environment variables):
  --ws-bind ADDR         plug listener's address     SHELLY_WS_BIND       (0.0.0.0)
  --http-bind ADDR       HTTP API's address          SHELLY_HTTP_BIND     (127.0.0.1)
  --bind ADDR            both, where not given above SHELLY_BIND
  --ws-port N            plug WebSocket port, 0=any  SHELLY_WS_PORT       (8765)
  --http-port N          HTTP API port, 0=any        SHELLY_HTTP_PORT     (8766)
  --ws-token TOKEN       plugs dial .../NAME?token=  SHELLY_WS_TOKEN      (none: anyone may)
  --ws-token-file PATH   the token, read from a file SHELLY_WS_TOKEN_FILE
  --allow-device ID      only these ids (repeatable) SHELLY_ALLOW_DEVICES (comma list; all)
  --ws-tls-cert PATH     PEM chain: plugs use wss:// SHELLY_WS_TLS_CERT
  --ws-tls-key PATH      PEM private key             SHELLY_WS_TLS_KEY
  --max-plugs N          open plug connections       SHELLY_MAX_PLUGS     (2000)
  --max-http-connections N  open HTTP connections    SHELLY_MAX_HTTP_CONNECTIONS (256)
  --max-pending-requests N  waiting per plug (503)   SHELLY_MAX_PENDING_REQUESTS (64)
  --identify-timeout SECS   a plug names itself      SHELLY_IDENTIFY_TIMEOUT (10)
  --rpc-timeout SECS     wait for a plug's answer    SHELLY_RPC_TIMEOUT   (5)
  --ping-interval SECS   ping; silent 2x => dropped  SHELLY_PING_INTERVAL (20)
  --max-frame-bytes N    larger frames are dropped   SHELLY_MAX_FRAME_BYTES (65536)
  --src NAME             our JSON-RPC src            SHELLY_BRIDGE_SRC    (shelly-bridge-<host>)
An address comes from its own flag, --bind, its own variable, SHELLY_BIND, in that order.
Logging: RUST_LOG (default info).
";

/// What `shelly-bridge simulate` says: the simulator left the shipped binary.
const SIMULATE_MOVED: &str = "shelly-bridge simulate: the plug simulator is its own binary now; \
run `shelly-sim` with the same options";

fn main() -> ExitCode {
    let door = FrontDoor {
        name: "shelly-bridge",
        usage: USAGE,
        version: (env!("EDGE_METRICS_VERSION"), env!("EDGE_METRICS_REVISION")),
        subcommands: &["serve", "healthcheck", "simulate"],
    };
    let (sub, args) = match door.read(std::env::args_os().skip(1).collect()) {
        Front::Run { subcommand, args } => (subcommand, args),
        Front::Done => return ExitCode::SUCCESS,
    };
    if sub == "simulate" {
        eprintln!("{SIMULATE_MOVED}");
        return ExitCode::from(EXIT_USAGE);
    }
    let env: HashMap<String, String> = std::env::vars().collect();
    let hostname = edge_metrics_common::hostname(&env);
    let config = match BridgeConfig::from_args(args, &env, &hostname) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("shelly-bridge: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if sub == "healthcheck" {
        // On 127.0.0.1 unless bound to one specific address.
        let probe = healthcheck::get(config.http_addr, "/health");
        return healthcheck::exit_code("shelly-bridge healthcheck", "/health", probe);
    }
    init_tracing();
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "Bridge failed.");
            eprintln!("shelly-bridge: {e:#}");
            // An unusable certificate or key is configuration, like a bad flag.
            match e.downcast_ref::<StartError>() {
                Some(StartError::Tls(_)) => ExitCode::from(EXIT_USAGE),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn serve(config: BridgeConfig) -> anyhow::Result<()> {
    // One thread: thousands of idle plugs need memory, not cores.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let shutdown = edge_metrics_common::signal::shutdown_token("bridge");
        shelly_bridge::run(config, shutdown).await?;
        Ok(())
    })
}
