//! The Jetson sysfs source (`tegrastats: {sysfs: true}`): reads the kernel's files once per
//! interval on the blocking pool and publishes each reading as a tegrastats [`Sample`], so the
//! Jetson collector, its staleness rule (three intervals), the energy counters and
//! `last_reading_timestamp_seconds` treat it exactly as a tegrastats line.
//!
//! The first reading has no CPU usage (a usage is the difference between two `/proc/stat`
//! reads); from the second on it has. What the board lacks is said once at INFO per start.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::fs::Root;
use super::jetson::{Part, Reader};
use crate::tegrastats::source::{Sample, SourceStats, TegraHandle};

/// What a sysfs source reads and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysfsSpec {
    /// The host root (`host_root`).
    pub root: PathBuf,
    /// The collection interval.
    pub interval: Duration,
}

/// A running sysfs source.
pub struct SysfsSource {
    spec: SysfsSpec,
    latest: watch::Sender<Option<Arc<Sample>>>,
    stats: Arc<SourceStats>,
    task: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl SysfsSource {
    /// Starts reading at once and then every interval.
    pub fn start(spec: SysfsSpec) -> SysfsSource {
        let (latest, _) = watch::channel(None);
        let cancel = CancellationToken::new();
        let join = tokio::spawn(run(spec.clone(), latest.clone(), cancel.clone()));
        SysfsSource {
            spec,
            latest,
            stats: Arc::new(SourceStats::default()),
            task: Some((cancel, join)),
        }
    }

    /// What it reads.
    pub fn spec(&self) -> &SysfsSpec {
        &self.spec
    }

    /// A handle for the Jetson collector, as a tegrastats source gives.
    pub fn handle(&self) -> TegraHandle {
        TegraHandle::new(self.latest.subscribe(), self.stats.clone())
    }

    /// Stops the task and waits for the read in progress.
    pub async fn stop(&mut self) {
        if let Some((cancel, join)) = self.task.take() {
            cancel.cancel();
            if let Err(error) = join.await {
                warn!(%error, "sysfs source task ended abnormally.");
            }
        }
    }
}

impl Drop for SysfsSource {
    fn drop(&mut self) {
        if let Some((cancel, _)) = self.task.take() {
            cancel.cancel();
        }
    }
}

async fn run(
    spec: SysfsSpec,
    latest: watch::Sender<Option<Arc<Sample>>>,
    cancel: CancellationToken,
) {
    info!(host_root = %spec.root.display(), "Reading Jetson readings from sysfs (tegrastats.sysfs).");
    let mut reader = Some(Reader::new(Root::new(&spec.root)));
    let mut ticker = tokio::time::interval(spec.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut said = false;
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let Some(mut r) = reader.take() else {
            return;
        };
        let read = tokio::task::spawn_blocking(move || {
            let line = r.read();
            (r, line)
        });
        let (r, line) = tokio::select! {
            () = cancel.cancelled() => return,
            done = read => match done {
                Ok(pair) => pair,
                Err(error) => {
                    warn!(%error, "sysfs read ended abnormally; stopping the sysfs source.");
                    return;
                }
            },
        };
        if !said {
            said = true;
            say_missing(r.missing());
        }
        reader = Some(r);
        if line.has_readings() {
            latest.send_replace(Some(Arc::new(Sample {
                line,
                at: Instant::now(),
                wall: SystemTime::now(),
            })));
        }
    }
}

/// One INFO line naming what this host lacks.
fn say_missing(missing: &[Part]) {
    if missing.is_empty() {
        info!("sysfs: every field was found.");
        return;
    }
    let parts: Vec<&str> = missing.iter().map(|p| p.describe()).collect();
    info!(
        missing = %parts.join("; "),
        "sysfs: not found on this host, left out (each is read again every interval)."
    );
}
