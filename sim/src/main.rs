//! `shelly-sim` binary: simulated Shelly plugs dialling a bridge. Exit codes: 0 when the run
//! ends (`--run-for`, a signal, or every plug gone with `--reconnect never`), 64 for unusable
//! options, 1 otherwise.

use std::collections::HashMap;
use std::ffi::OsString;
use std::process::ExitCode;

use edge_metrics_common::cli::EXIT_USAGE;
use edge_metrics_common::init_tracing;
use shelly_sim::{SimConfig, USAGE};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // Help anywhere wins, even after an option that is wrong.
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    init_tracing();
    let env: HashMap<String, String> = std::env::vars().collect();
    let cfg = match SimConfig::from_args(args, &env) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("shelly-sim: {e}");
            return ExitCode::from(if e.usage { EXIT_USAGE } else { 1 });
        }
    };
    // One thread: a thousand idle plugs need memory, not cores.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shelly-sim: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(shelly_sim::run(cfg));
    ExitCode::SUCCESS
}
