//! Waiting for the signal that stops a daemon: SIGTERM (systemd, Kubernetes, `docker stop`)
//! or SIGINT (Ctrl-C). Exercised through the binaries: the bridge's end-to-end test stops
//! it with SIGTERM and checks a clean exit.

/// Returns when SIGTERM or SIGINT arrives (logged). Where SIGTERM cannot be watched, only
/// Ctrl-C stops the daemon, which is said once at WARN; `daemon` names it in that line.
pub async fn wait_for_shutdown(daemon: &str) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "Cannot watch SIGTERM; only Ctrl-C stops the {daemon}.");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received."),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received."),
    }
}

/// A token cancelled when SIGTERM or SIGINT arrives (see [`wait_for_shutdown`]); call it inside
/// the runtime.
pub fn shutdown_token(daemon: &'static str) -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_shutdown(daemon).await;
        cancel.cancel();
    });
    token
}
