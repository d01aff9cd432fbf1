//! The tegrastats source: one long-running task that turns tegrastats output into the latest
//! parsed reading.
//!
//! Three kinds, chosen by the `tegrastats:` config section ([`SourceSpec::from_config`]):
//! - `path`: spawn the executable once with `--interval <ms>`, read its lines as they come,
//!   restart it with bounded backoff when it exits or falls silent ([`silence_limit`]), kill it
//!   on shutdown;
//! - `logfile`: follow a file written by a host-side `tegrastats --logfile` (rotation and
//!   truncation start over from the new file's beginning);
//! - `replay`: loop over recorded lines at the interval (demo mode and tests).
//!
//! Each line is parsed once into a model-free [`Line`] and published through a `watch` channel;
//! collectors only read the latest [`Sample`]. Nothing here knows which device type reads it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::line::Line;
use super::parse::parse_line;
use crate::config::TegrastatsConfig;

/// The first wait before restarting an exited tegrastats.
const BACKOFF_START: Duration = Duration::from_millis(500);
/// The longest wait between restarts.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A run at least this long that produced lines resets the backoff.
const HEALTHY_RUN: Duration = Duration::from_secs(10);
/// At most one stderr line is logged at WARN per this period; the rest go to DEBUG.
const STDERR_LOG_PERIOD: Duration = Duration::from_secs(60);
/// The shortest silence after which a running tegrastats is taken for hung (see
/// [`silence_limit`]).
const SILENCE_FLOOR: Duration = Duration::from_secs(5);
/// Longest line kept; a longer one is skipped (and counted) without being buffered whole.
pub const MAX_LINE: usize = 64 * 1024;

/// What [`next_line`] read.
#[derive(Debug, PartialEq, Eq)]
enum LineRead {
    /// A line (without its newline) is in the buffer.
    Line,
    /// A line longer than [`MAX_LINE`] was skipped.
    TooLong,
    /// End of output.
    Eof,
}

/// Reads one line of raw bytes into `buf` (cleared first), never holding more than
/// [`MAX_LINE`] bytes: tegrastats output is not guaranteed to be UTF-8 or newline-terminated.
async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<LineRead> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(match (any, too_long) {
                (false, _) => LineRead::Eof,
                (true, true) => LineRead::TooLong,
                (true, false) => LineRead::Line,
            });
        }
        any = true;
        let (chunk, used, end) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if buf.len() + chunk.len() > MAX_LINE {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if end {
            return Ok(if too_long {
                LineRead::TooLong
            } else {
                LineRead::Line
            });
        }
    }
}

/// Where lines come from, resolved from the `tegrastats:` section and the interval.
#[derive(Clone, Debug, PartialEq)]
pub enum SourceSpec {
    /// Spawn the executable with `--interval <ms>`.
    Spawn {
        /// The tegrastats executable.
        path: PathBuf,
        /// The collection interval, passed as `--interval`.
        interval: Duration,
    },
    /// Follow a log file.
    Logfile {
        /// The file written by `tegrastats --logfile`.
        path: PathBuf,
        /// How often to look for new lines.
        poll: Duration,
    },
    /// Loop over the lines of a recorded file.
    Replay {
        /// The recorded file.
        path: PathBuf,
        /// The time between two lines.
        interval: Duration,
    },
    /// Nothing to read: the device type is a board read from sysfs (`raspberry_pi`,
    /// `lattepanda`, `orange_pi`), which has no tegrastats. The task publishes nothing.
    Idle,
}

impl SourceSpec {
    /// `replay`, else `logfile`, else `path`.
    pub fn from_config(cfg: &TegrastatsConfig, interval: Duration) -> SourceSpec {
        if let Some(path) = &cfg.replay {
            SourceSpec::Replay {
                path: path.clone(),
                interval,
            }
        } else if let Some(path) = &cfg.logfile {
            SourceSpec::Logfile {
                path: path.clone(),
                poll: (interval / 4).clamp(Duration::from_millis(50), Duration::from_millis(500)),
            }
        } else {
            SourceSpec::Spawn {
                path: cfg.path.clone(),
                interval,
            }
        }
    }

    /// The name collectors use in errors.
    pub fn name(&self) -> &'static str {
        "tegrastats"
    }

    /// Checks what must exist at start-up: the executable (spawn) or the recording (replay).
    /// A log file may appear later.
    pub fn check(&self) -> Result<(), SourceError> {
        match self {
            SourceSpec::Spawn { path, .. } => match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => Ok(()),
                Ok(_) => Err(SourceError::NotFound {
                    path: path.clone(),
                    reason: "not a regular file".into(),
                }),
                Err(e) => Err(SourceError::NotFound {
                    path: path.clone(),
                    reason: e.to_string(),
                }),
            },
            SourceSpec::Replay { path, .. } => match std::fs::read_to_string(path) {
                Ok(text) if text.lines().any(|l| !l.trim().is_empty()) => Ok(()),
                Ok(_) => Err(SourceError::EmptyReplay { path: path.clone() }),
                Err(e) => Err(SourceError::Replay {
                    path: path.clone(),
                    reason: e.to_string(),
                }),
            },
            SourceSpec::Logfile { .. } | SourceSpec::Idle => Ok(()),
        }
    }
}

/// Why the source cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The tegrastats executable is missing.
    #[error(
        "tegrastats not found at {}: {reason}. Bind-mount the host's tegrastats into the \
         container (e.g. -v /usr/bin/tegrastats:/usr/bin/tegrastats:ro, with /sys, \
         /sys/kernel/debug and the host libraries it links), or set tegrastats.path to where it \
         is, or set tegrastats.logfile to a file written by a host-side \
         `tegrastats --logfile`, or tegrastats.replay to a recorded file",
        path.display()
    )]
    NotFound {
        /// The configured path.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The replay file cannot be read.
    #[error("cannot read tegrastats.replay file {}: {reason}. Point tegrastats.replay at a recorded tegrastats output file", path.display())]
    Replay {
        /// The configured file.
        path: PathBuf,
        /// The OS error.
        reason: String,
    },
    /// The replay file has no lines.
    #[error("tegrastats.replay file {} has no lines. Record some tegrastats output into it", path.display())]
    EmptyReplay {
        /// The configured file.
        path: PathBuf,
    },
}

/// One parsed tegrastats line.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The parsed line.
    pub line: Line,
    /// When the line was read (monotonic, for staleness).
    pub at: Instant,
    /// When the line was read (wall clock, for the timestamp self-metric).
    pub wall: SystemTime,
}

/// Counters the source keeps; rendered as self-metrics.
#[derive(Debug, Default)]
pub struct SourceStats {
    /// Lines read (parsed or not).
    pub lines_read: AtomicU64,
    /// Lines that did not parse plus tokens that did not parse.
    pub parse_errors: AtomicU64,
    /// Times the tegrastats child was started again after it exited.
    pub restarts: AtomicU64,
}

/// What collectors hold: the latest sample and the counters. Cheap to clone.
#[derive(Clone)]
pub struct TegraHandle {
    latest: watch::Receiver<Option<Arc<Sample>>>,
    /// The source's counters.
    pub stats: Arc<SourceStats>,
}

impl TegraHandle {
    /// A handle over samples that another source publishes into `latest` (the sysfs source
    /// builds the same [`Line`]s), read with the same latest-sample and staleness rules.
    pub fn new(latest: watch::Receiver<Option<Arc<Sample>>>, stats: Arc<SourceStats>) -> Self {
        TegraHandle { latest, stats }
    }

    /// The latest parsed sample, if any.
    pub fn latest(&self) -> Option<Arc<Sample>> {
        self.latest.borrow().clone()
    }

    /// Waits until a new sample is published (pending forever once the source is gone).
    pub async fn changed(&mut self) {
        if self.latest.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A running source task and what it shares.
pub struct TegraSource {
    spec: SourceSpec,
    latest: watch::Sender<Option<Arc<Sample>>>,
    stats: Arc<SourceStats>,
    task: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

impl TegraSource {
    /// Starts the source task. Call [`SourceSpec::check`] first for a clear start-up error.
    pub fn start(spec: SourceSpec) -> TegraSource {
        let (latest, _) = watch::channel(None);
        let mut source = TegraSource {
            spec,
            latest,
            stats: Arc::new(SourceStats::default()),
            task: None,
        };
        source.spawn_task();
        source
    }

    fn spawn_task(&mut self) {
        let cancel = CancellationToken::new();
        let ctx = Ctx {
            latest: self.latest.clone(),
            stats: self.stats.clone(),
        };
        let spec = self.spec.clone();
        let token = cancel.clone();
        let join = tokio::spawn(async move {
            match spec {
                SourceSpec::Spawn { path, interval } => run_spawn(path, interval, ctx, token).await,
                SourceSpec::Logfile { path, poll } => run_logfile(path, poll, ctx, token).await,
                SourceSpec::Replay { path, interval } => {
                    run_replay(path, interval, ctx, token).await
                }
                SourceSpec::Idle => {
                    drop(ctx);
                    token.cancelled().await
                }
            }
        });
        self.task = Some((cancel, join));
    }

    /// A handle for collectors.
    pub fn handle(&self) -> TegraHandle {
        TegraHandle {
            latest: self.latest.subscribe(),
            stats: self.stats.clone(),
        }
    }

    /// The spec it runs.
    pub fn spec(&self) -> &SourceSpec {
        &self.spec
    }

    /// Stops the current task (killing a child) and starts one for `spec` without waiting for
    /// the old one to finish: it is reaped in the background, so whoever restarts the source
    /// (the owner, between two collection cycles) is not held up by a slow exit. The latest
    /// sample stays until the new source replaces it or it goes stale.
    pub fn restart(&mut self, spec: SourceSpec) {
        if let Some((cancel, join)) = self.task.take() {
            cancel.cancel();
            tokio::spawn(async move {
                if let Err(error) = join.await {
                    warn!(%error, "tegrastats source task ended abnormally.");
                }
            });
        }
        self.spec = spec;
        self.spawn_task();
    }

    /// Stops the task and waits for it (a child is killed and reaped).
    pub async fn stop(&mut self) {
        if let Some((cancel, join)) = self.task.take() {
            cancel.cancel();
            if let Err(error) = join.await {
                warn!(%error, "tegrastats source task ended abnormally.");
            }
        }
    }
}

struct Ctx {
    latest: watch::Sender<Option<Arc<Sample>>>,
    stats: Arc<SourceStats>,
}

impl Ctx {
    /// Counts a line that was too long to keep.
    fn on_too_long(&self) {
        self.stats.lines_read.fetch_add(1, Ordering::Relaxed);
        self.stats.parse_errors.fetch_add(1, Ordering::Relaxed);
        debug!(
            max_bytes = MAX_LINE,
            "Skipped a tegrastats line longer than the limit."
        );
    }

    /// Parses one line of raw bytes (invalid UTF-8 is replaced, then fails to parse).
    fn on_bytes(&self, raw: &[u8]) {
        self.on_line(&String::from_utf8_lossy(raw));
    }

    /// Parses one line and publishes it when it carries a reading.
    fn on_line(&self, raw: &str) {
        let raw = raw.trim();
        if raw.is_empty() {
            return;
        }
        self.stats.lines_read.fetch_add(1, Ordering::Relaxed);
        match parse_line(raw) {
            Ok(line) if line.has_readings() => {
                if !line.bad.is_empty() {
                    let bad = u64::try_from(line.bad.len()).unwrap_or(u64::MAX);
                    self.stats.parse_errors.fetch_add(bad, Ordering::Relaxed);
                    debug!(bad_tokens = bad, line = %raw, "Some tegrastats tokens did not parse.");
                }
                self.latest.send_replace(Some(Arc::new(Sample {
                    line,
                    at: Instant::now(),
                    wall: SystemTime::now(),
                })));
            }
            Ok(_) => {
                self.stats.parse_errors.fetch_add(1, Ordering::Relaxed);
                debug!(line = %raw, "Skipped a tegrastats line with no readable field.");
            }
            Err(error) => {
                self.stats.parse_errors.fetch_add(1, Ordering::Relaxed);
                debug!(%error, "Skipped a tegrastats line that did not parse.");
            }
        }
    }
}

async fn run_spawn(path: PathBuf, interval: Duration, ctx: Ctx, cancel: CancellationToken) {
    let ms = interval.as_millis().max(1).to_string();
    let silence = silence_limit(interval);
    let mut backoff = BACKOFF_START;
    let mut first = true;
    loop {
        if !first {
            ctx.stats.restarts.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        let started = Instant::now();
        let lines_before = ctx.stats.lines_read.load(Ordering::Relaxed);
        let outcome = run_child(&path, &ms, silence, &ctx, &cancel).await;
        if cancel.is_cancelled() {
            return;
        }
        let produced = ctx.stats.lines_read.load(Ordering::Relaxed) > lines_before;
        if produced && started.elapsed() >= HEALTHY_RUN {
            backoff = BACKOFF_START;
        }
        warn!(path = %path.display(), outcome = %outcome, retry_in_ms = backoff.as_millis() as u64, "tegrastats stopped; restarting it.");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = cancel.cancelled() => return,
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// How long a running tegrastats may print no complete line before it is killed and restarted:
/// thirty intervals, at least [`SILENCE_FLOOR`]. tegrastats prints one line per interval, so this
/// only catches a child that is stuck (a hung sysfs read, a stopped process); readings already
/// went stale after three intervals, this brings them back. Thirty lines (about 9 KiB) are more
/// than a block-buffered stdout holds, so a build that buffered its output into the pipe would
/// still be read in bursts rather than killed before its first flush.
pub fn silence_limit(interval: Duration) -> Duration {
    (interval * 30).max(SILENCE_FLOOR)
}

/// Runs one child until it exits, falls silent for `silence` or `cancel` fires; returns how it
/// ended.
async fn run_child(
    path: &Path,
    ms: &str,
    silence: Duration,
    ctx: &Ctx,
    cancel: &CancellationToken,
) -> String {
    let mut child = match Command::new(path)
        .arg("--interval")
        .arg(ms)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(error) => return format!("could not start: {error}"),
    };
    info!(path = %path.display(), pid = child.id().unwrap_or(0), interval_ms = %ms, "Started tegrastats.");
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(log_stderr(stderr));
    }
    let Some(stdout) = child.stdout.take() else {
        return "no stdout".into();
    };
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::with_capacity(1024);
    loop {
        tokio::select! {
            line = tokio::time::timeout(silence, next_line(&mut reader, &mut buf)) => match line {
                Ok(Ok(LineRead::Line)) => ctx.on_bytes(&buf),
                Ok(Ok(LineRead::TooLong)) => ctx.on_too_long(),
                Ok(Ok(LineRead::Eof)) => break,
                Ok(Err(error)) => {
                    warn!(%error, "Could not read tegrastats output.");
                    break;
                }
                Err(_) => {
                    let _ = child.kill().await;
                    return format!(
                        "printed no line for {} s; killed as hung",
                        silence.as_secs_f64()
                    );
                }
            },
            () = cancel.cancelled() => {
                let _ = child.kill().await;
                debug!("Stopped tegrastats.");
                return "stopped".into();
            }
        }
        // Buffered output reads without ever waiting: without this a flood of lines would
        // keep the runtime's one thread here (tens of thousands of lines) while scrapes wait.
        tokio::task::coop::consume_budget().await;
    }
    // stdout closed: reap the child (kill it if it closed stdout but lives on).
    match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(error)) => format!("wait failed: {error}"),
        Err(_) => {
            let _ = child.kill().await;
            "closed its output; killed".into()
        }
    }
}

async fn log_stderr(stderr: impl AsyncRead + Unpin) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    let mut last_warn: Option<Instant> = None;
    let mut suppressed = 0u64;
    while let Ok(read) = next_line(&mut reader, &mut buf).await {
        let line = match read {
            LineRead::Eof => break,
            LineRead::TooLong => "(a line longer than 64 KiB)".to_string(),
            LineRead::Line => String::from_utf8_lossy(&buf).into_owned(),
        };
        if last_warn.is_none_or(|t| t.elapsed() >= STDERR_LOG_PERIOD) {
            warn!(line = %line, suppressed, "tegrastats wrote to stderr.");
            last_warn = Some(Instant::now());
            suppressed = 0;
        } else {
            suppressed += 1;
            debug!(line = %line, "tegrastats wrote to stderr.");
        }
    }
}

async fn run_replay(path: PathBuf, interval: Duration, ctx: Ctx, cancel: CancellationToken) {
    let text = match tokio::fs::read_to_string(&path).await {
        Ok(text) => text,
        Err(error) => {
            warn!(%error, path = %path.display(), "Cannot read the tegrastats replay file.");
            return;
        }
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        warn!(path = %path.display(), "The tegrastats replay file has no lines.");
        return;
    }
    info!(path = %path.display(), lines = lines.len(), "Replaying recorded tegrastats lines.");
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for line in lines.iter().cycle() {
        tokio::select! {
            _ = tick.tick() => ctx.on_line(line),
            () = cancel.cancelled() => return,
        }
    }
}

/// Identity of a file, to notice rotation.
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

async fn run_logfile(path: PathBuf, poll: Duration, ctx: Ctx, cancel: CancellationToken) {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut file: Option<(tokio::fs::File, (u64, u64))> = None;
    let mut pos = 0u64;
    let mut partial = Vec::new();
    let mut warned_missing = false;
    let mut first_open = true;
    let mut skipping = false;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match tokio::fs::metadata(&path).await {
            Ok(meta) => {
                warned_missing = false;
                let id = file_id(&meta);
                let rotated = file.as_ref().is_some_and(|(_, old)| *old != id);
                let truncated = meta.len() < pos;
                if file.is_none() || rotated || truncated {
                    match tokio::fs::File::open(&path).await {
                        Ok(mut f) => {
                            // On the first open skip old lines; after rotation or truncation
                            // the new content is all new.
                            pos = if first_open { meta.len() } else { 0 };
                            if let Err(error) = f.seek(std::io::SeekFrom::Start(pos)).await {
                                warn!(%error, path = %path.display(), "Cannot seek in the tegrastats log file.");
                            }
                            if !first_open {
                                info!(path = %path.display(), rotated, truncated, "Following the tegrastats log file from its start.");
                            } else {
                                info!(path = %path.display(), "Following the tegrastats log file.");
                            }
                            first_open = false;
                            partial.clear();
                            skipping = false;
                            file = Some((f, id));
                        }
                        Err(error) => {
                            warn!(%error, path = %path.display(), "Cannot open the tegrastats log file.");
                        }
                    }
                }
                if let Some((f, _)) = file.as_mut() {
                    loop {
                        match f.read(&mut buf).await {
                            Ok(0) => break,
                            Ok(n) => {
                                pos += n as u64;
                                partial.extend_from_slice(&buf[..n]);
                                while let Some(nl) = partial.iter().position(|&b| b == b'\n') {
                                    let line: Vec<u8> = partial.drain(..=nl).collect();
                                    if skipping {
                                        skipping = false;
                                    } else {
                                        ctx.on_bytes(&line);
                                    }
                                }
                                // An endless line is dropped, not buffered whole.
                                if partial.len() > MAX_LINE {
                                    partial.clear();
                                    if !skipping {
                                        ctx.on_too_long();
                                        skipping = true;
                                    }
                                }
                            }
                            Err(error) => {
                                warn!(%error, path = %path.display(), "Cannot read the tegrastats log file.");
                                file = None;
                                break;
                            }
                        }
                    }
                }
            }
            Err(error) => {
                if !warned_missing {
                    warn!(%error, path = %path.display(), "The tegrastats log file is missing; waiting for it.");
                    warned_missing = true;
                }
                if file.take().is_some() {
                    pos = 0;
                    first_open = false;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(poll) => {}
            () = cancel.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const LINE: &str = "RAM 2690/6854MB (lfb 6x1MB) SWAP 479/3427MB (cached 3MB)";

    fn ram_used(s: &Sample) -> Option<f64> {
        s.line.ram.as_ref().map(|r| r.used_mb)
    }

    async fn wait_for(handle: &TegraHandle, pred: impl Fn(&Sample) -> bool) -> Arc<Sample> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(s) = handle.latest() {
                if pred(&s) {
                    return s;
                }
            }
            assert!(Instant::now() < deadline, "no matching sample within 5 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn replay_publishes_parsed_lines_in_a_loop() {
        let dir = tempdir();
        let path = dir.join("rec.log");
        std::fs::write(
            &path,
            format!("{LINE}\n\nRAM 100/6854MB (lfb 6x1MB)\ngarbage\n"),
        )
        .unwrap();
        let spec = SourceSpec::Replay {
            path,
            interval: Duration::from_millis(20),
        };
        spec.check().unwrap();
        let mut source = TegraSource::start(spec);
        let handle = source.handle();
        wait_for(&handle, |s| ram_used(s) == Some(100.0)).await;
        wait_for(&handle, |s| ram_used(s) == Some(2690.0)).await;
        assert!(handle.stats.parse_errors.load(Ordering::Relaxed) >= 1);
        source.stop().await;
    }

    #[tokio::test]
    async fn logfile_follows_appends_and_truncation() {
        let dir = tempdir();
        let path = dir.join("tegra.log");
        std::fs::write(&path, "RAM 1/10MB\n").unwrap();
        let mut source = TegraSource::start(SourceSpec::Logfile {
            path: path.clone(),
            poll: Duration::from_millis(20),
        });
        let handle = source.handle();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        // Old lines are skipped. The event that shows the source has opened the file: a
        // marker line (one without a reading) appended after that is read. Markers written
        // before the open are old lines too, so one is appended each poll until one is read.
        let deadline = Instant::now() + Duration::from_secs(5);
        while handle.stats.lines_read.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "no marker line read within 5 s");
            f.write_all(b"marker\n").unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Every line read so far was a marker: the old reading was never read or published.
        assert!(handle.latest().is_none(), "old lines are skipped");
        assert_eq!(
            handle.stats.lines_read.load(Ordering::Relaxed),
            handle.stats.parse_errors.load(Ordering::Relaxed),
            "only marker lines were read"
        );
        f.write_all(b"RAM 2/10MB\nRAM 3/").unwrap();
        wait_for(&handle, |s| ram_used(s) == Some(2.0)).await;
        f.write_all(b"10MB\n").unwrap();
        wait_for(&handle, |s| ram_used(s) == Some(3.0)).await;
        std::fs::write(&path, "RAM 4/10MB\n").unwrap(); // truncation
        wait_for(&handle, |s| ram_used(s) == Some(4.0)).await;
        let rotated = dir.join("tegra.log.new");
        std::fs::write(&rotated, "RAM 5/10MB\n").unwrap();
        std::fs::rename(&rotated, &path).unwrap(); // rotation
        wait_for(&handle, |s| ram_used(s) == Some(5.0)).await;
        source.stop().await;
    }

    #[tokio::test]
    async fn lines_are_capped_and_bytes_need_not_be_utf8() {
        let mut data = b"RAM \xff\xfe bad\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        data.extend_from_slice(b"\nRAM 1/2MB\ntail");
        let mut reader = BufReader::with_capacity(4096, &data[..]);
        let mut buf = Vec::new();
        assert_eq!(
            next_line(&mut reader, &mut buf).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(String::from_utf8_lossy(&buf), "RAM \u{fffd}\u{fffd} bad");
        assert_eq!(
            next_line(&mut reader, &mut buf).await.unwrap(),
            LineRead::TooLong
        );
        assert!(
            buf.capacity() <= 2 * MAX_LINE + 4096,
            "an endless line is not buffered whole"
        );
        assert_eq!(
            next_line(&mut reader, &mut buf).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"RAM 1/2MB");
        assert_eq!(
            next_line(&mut reader, &mut buf).await.unwrap(),
            LineRead::Line
        );
        assert_eq!(buf, b"tail");
        assert_eq!(
            next_line(&mut reader, &mut buf).await.unwrap(),
            LineRead::Eof
        );
    }

    #[test]
    fn silence_limit_is_thirty_intervals_with_a_floor() {
        assert_eq!(
            silence_limit(Duration::from_secs(1)),
            Duration::from_secs(30)
        );
        assert_eq!(
            silence_limit(Duration::from_secs(2)),
            Duration::from_secs(60)
        );
        assert_eq!(
            silence_limit(Duration::from_millis(200)),
            Duration::from_secs(6)
        );
        assert_eq!(
            silence_limit(Duration::from_millis(100)),
            Duration::from_secs(5)
        );
    }

    #[test]
    fn missing_executable_names_the_path_and_the_alternatives() {
        let spec = SourceSpec::Spawn {
            path: "/nonexistent/tegrastats".into(),
            interval: Duration::from_secs(1),
        };
        let msg = spec.check().unwrap_err().to_string();
        assert!(msg.starts_with("tegrastats not found at /nonexistent/tegrastats: No such file"));
        assert!(msg.contains("tegrastats.logfile") && msg.contains("tegrastats.replay"));
        assert!(!msg.contains('\n'));
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "em-source-{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
