//! `shelly-sim`: simulated Shelly Gen2+ plugs that dial a bridge like real ones. A test and
//! demo program: it is not part of the shipped bridge binary or image.
//!
//! Each plug is a WebSocket *client* that connects to `--url` (the path is its alias), sends one
//! `NotifyFullStatus` (`dst` = `"ws"`), then answers JSON-RPC requests (`Shelly.GetDeviceInfo`,
//! `Shelly.GetStatus`, `Switch.GetStatus`, `PM1.GetStatus`, `EM.GetStatus`, `EM1.GetStatus`,
//! `Switch.Set`, ...) with values that drift around the configured ones, and sends the
//! once-a-minute energy `NotifyStatus`. Lost connections are re-dialled with exponential
//! back-off (1 s doubling to 60 s by default), as the devices' firmware does.
//!
//! Faults for tests: `--reply-delay-ms`, `--no-reply`, `--error CODE:MSG`, `--drop-after`,
//! `--reconnect never`, `--run-for`. See [`USAGE`].

use std::collections::HashMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use edge_metrics_common::cli::{self, ArgError};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// Help text of `shelly-sim`.
pub const USAGE: &str = "\
shelly-sim: simulated Shelly plugs dialling a bridge

Usage: shelly-sim --url URL [options]

Options:
  --url URL              bridge to dial, with alias path, e.g. ws://127.0.0.1:8765/jetson-01
                         (SHELLY_SIM_URL); with --count > 1 plug i dials PATH-i; a query
                         such as ?token=SECRET is kept and never logged
  --profile NAME         plug-s-gen3 (default), plus-plug-s, plug-us-gen4, pm-mini, pro-3em,
                         pro-em, mini1-gen4 (a switch without metering)
  --count N              number of plugs (default 1)
  --id ID                device id (only with --count 1; default <prefix>-<mac>)
  --mac HEX12            MAC of the first plug (default from --seed); plug i adds i
  --power W              active power (default 42.5; negative = feeding back)
  --voltage V            voltage (default 230, 120 for plug-us-gen4)
  --pf X                 power factor (default 1.0; 0.9 for pro-3em/pro-em)
  --relay on|off         relay state (default on)
  --jitter PCT           random drift of readings in percent (default 1; 0 = exact)
  --seed N               seed of the drift (default 1)
  --numbers loose|plain  number style: loose like devices (0.000, 1 decimal) or plain JSON
  --reply-delay-ms N     answer every request after N ms
  --no-reply             read requests but never answer them
  --error CODE:MSG       answer reading requests with this RPC error
  --bad-json             answer the first reading request of each connection with broken JSON
  --drop-after SECS      close each connection after SECS (then re-dial)
  --reconnect always|never   re-dial after a lost connection (default always)
  --backoff-min-ms N     first re-dial delay (default 1000), doubled per failure
  --backoff-max-ms N     re-dial delay cap (default 60000)
  --hello-delay-ms N     delay before NotifyFullStatus (default 50)
  --clock synced|unsynced  unsynced: ts is the uptime and sys has no unixtime (default synced)
  --notify-interval SECS energy NotifyStatus period (default 60; 0 = none)
  --run-for SECS         exit 0 after SECS (default: run until SIGINT/SIGTERM)
";

/// A simulator failure; `usage` marks bad options (exit 64).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SimError {
    /// True when the options were unusable.
    pub usage: bool,
    /// What went wrong and what to do.
    pub message: String,
}

impl From<ArgError> for SimError {
    fn from(error: ArgError) -> SimError {
        usage(error.to_string())
    }
}

fn usage(message: impl Into<String>) -> SimError {
    SimError {
        usage: true,
        message: message.into(),
    }
}

/// Device models the simulator can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Plus Plug S (Gen2): `switch:0` metered, no `freq`/`ret_aenergy`.
    PlusPlugS,
    /// Plug S Gen3: `switch:0` metered with `freq` and `ret_aenergy`.
    PlugSGen3,
    /// Plug US Gen4: as Gen3, 60 Hz.
    PlugUsGen4,
    /// PM Mini Gen3: `pm1:0` only.
    PmMini,
    /// Pro 3EM (triphase): `em:0`, `emdata:0`, `temperature:0`.
    Pro3Em,
    /// Pro EM: `em1:0`, `em1:1`, unmetered `switch:0`.
    ProEm,
    /// Mini 1 Gen4: `switch:0` without metering.
    Mini1Gen4,
}

impl Profile {
    fn parse(s: &str) -> Option<Profile> {
        Some(match s {
            "plus-plug-s" => Profile::PlusPlugS,
            "plug-s-gen3" | "plug" => Profile::PlugSGen3,
            "plug-us-gen4" => Profile::PlugUsGen4,
            "pm-mini" => Profile::PmMini,
            "pro-3em" => Profile::Pro3Em,
            "pro-em" => Profile::ProEm,
            "mini1-gen4" | "switch" => Profile::Mini1Gen4,
            _ => return None,
        })
    }

    /// (id prefix, model, gen, app)
    fn ident(self) -> (&'static str, &'static str, u8, &'static str) {
        match self {
            Profile::PlusPlugS => ("shellyplusplugs", "SNPL-00112EU", 2, "PlusPlugS"),
            Profile::PlugSGen3 => ("shellyplugsg3", "S3PL-00112EU", 3, "PlugSG3"),
            Profile::PlugUsGen4 => ("shellyplugusg4", "S4PL-00116US", 4, "PlugUSG4"),
            Profile::PmMini => ("shellypmminig3", "S3PM-001PCEU16", 3, "MiniPMG3"),
            Profile::Pro3Em => ("shellypro3em", "SPEM-003CEBEU", 2, "Pro3EM"),
            Profile::ProEm => ("shellyproem50", "SPEM-002CEBEU50", 2, "ProEM"),
            Profile::Mini1Gen4 => ("shelly1minig4", "S4SW-001X8EU", 4, "Mini1G4"),
        }
    }

    fn has_switch(self) -> bool {
        matches!(
            self,
            Profile::PlusPlugS
                | Profile::PlugSGen3
                | Profile::PlugUsGen4
                | Profile::ProEm
                | Profile::Mini1Gen4
        )
    }

    fn switch_meters(self) -> bool {
        matches!(
            self,
            Profile::PlusPlugS | Profile::PlugSGen3 | Profile::PlugUsGen4
        )
    }

    fn newer_fields(self) -> bool {
        matches!(
            self,
            Profile::PlugSGen3 | Profile::PlugUsGen4 | Profile::PmMini
        )
    }
}

/// Parsed simulator options.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Bridge URL.
    pub url: String,
    /// Device model.
    pub profile: Profile,
    /// Number of plugs.
    pub count: usize,
    /// Explicit id (count 1).
    pub id: Option<String>,
    /// First MAC.
    pub mac: u64,
    /// Active power W.
    pub power: f64,
    /// Voltage V.
    pub voltage: f64,
    /// Power factor.
    pub pf: f64,
    /// Relay on.
    pub relay: bool,
    /// Drift in percent.
    pub jitter: f64,
    /// Drift seed.
    pub seed: u64,
    /// Device-style numbers.
    pub loose: bool,
    /// Delay before each answer.
    pub reply_delay: Duration,
    /// Never answer.
    pub no_reply: bool,
    /// Answer readings with this error.
    pub error: Option<(i64, String)>,
    /// Answer the first reading request per connection with broken JSON.
    pub bad_json: bool,
    /// Device clock not synced: `ts` is the uptime, no `sys.unixtime`.
    pub unsynced: bool,
    /// Close each connection after this long.
    pub drop_after: Option<Duration>,
    /// Re-dial after loss.
    pub reconnect: bool,
    /// First back-off.
    pub backoff_min: Duration,
    /// Back-off cap.
    pub backoff_max: Duration,
    /// Delay before NotifyFullStatus.
    pub hello_delay: Duration,
    /// Energy notification period.
    pub notify_interval: Option<Duration>,
    /// Exit after this long.
    pub run_for: Option<Duration>,
}

impl SimConfig {
    /// Parses `args` (without the program name); `env` supplies `SHELLY_SIM_URL`.
    pub fn from_args<I>(args: I, env: &HashMap<String, String>) -> Result<SimConfig, SimError>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        // Options that take a value; `--no-reply` and `--bad-json` take none.
        const WITH_VALUE: [&str; 22] = [
            "url",
            "profile",
            "count",
            "id",
            "mac",
            "power",
            "voltage",
            "pf",
            "relay",
            "jitter",
            "seed",
            "numbers",
            "reply-delay-ms",
            "error",
            "drop-after",
            "reconnect",
            "backoff-min-ms",
            "backoff-max-ms",
            "hello-delay-ms",
            "notify-interval",
            "run-for",
            "clock",
        ];
        let mut opts: HashMap<String, String> = HashMap::new();
        let (mut no_reply, mut bad_json) = (false, false);
        let mut parser = lexopt::Parser::from_args(args);
        while let Some(arg) = parser.next().map_err(ArgError::from)? {
            match arg {
                lexopt::Arg::Long("no-reply") => no_reply = true,
                lexopt::Arg::Long("bad-json") => bad_json = true,
                lexopt::Arg::Long(name) if WITH_VALUE.contains(&name) => {
                    let name = name.to_string();
                    opts.insert(name, cli::value(&mut parser)?);
                }
                other => return Err(ArgError::from(other.unexpected()).into()),
            }
        }
        fn num<T: std::str::FromStr>(
            opts: &HashMap<String, String>,
            k: &str,
            default: T,
        ) -> Result<T, SimError> {
            match opts.get(k) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| usage(format!("--{k}: `{v}` is not a valid number"))),
            }
        }
        let secs = |k: &str| -> Result<Option<Duration>, SimError> {
            let v: f64 = num(&opts, k, 0.0)?;
            if v < 0.0 || !v.is_finite() {
                return Err(usage(format!("--{k} must be 0 or more seconds")));
            }
            Ok((v > 0.0).then(|| Duration::from_secs_f64(v)))
        };
        let url = opts
            .get("url")
            .cloned()
            .or_else(|| env.get("SHELLY_SIM_URL").cloned())
            .ok_or_else(|| usage("--url is required, e.g. --url ws://127.0.0.1:8765/jetson-01"))?;
        if !url.starts_with("ws://") {
            return Err(usage(format!(
                "--url must start with ws:// (the simulator speaks plain WebSocket; wss:// is not \
                 supported), got `{url}`"
            )));
        }
        let profile_name = opts.get("profile").map_or("plug-s-gen3", String::as_str);
        let profile = Profile::parse(profile_name).ok_or_else(|| {
            usage(format!(
                "--profile `{profile_name}` is unknown; use plug-s-gen3, plus-plug-s, \
                 plug-us-gen4, pm-mini, pro-3em, pro-em or mini1-gen4"
            ))
        })?;
        let count: usize = num(&opts, "count", 1)?;
        if count == 0 || count > 100_000 {
            return Err(usage("--count must be between 1 and 100000"));
        }
        let id = opts.get("id").cloned();
        if id.is_some() && count > 1 {
            return Err(usage("--id names one plug; drop it or use --count 1"));
        }
        let seed: u64 = num(&opts, "seed", 1)?;
        let mac = match opts.get("mac") {
            Some(m) => u64::from_str_radix(m.trim(), 16)
                .ok()
                .filter(|_| m.trim().len() == 12)
                .ok_or_else(|| usage(format!("--mac `{m}` must be 12 hex digits")))?,
            // Distinct per URL and seed, so two simulators at one bridge do not collide.
            None => {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for b in url.bytes().chain(seed.to_le_bytes()) {
                    h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
                }
                0xA0B1_0000_0000 | ((h & 0xFFFF) << 16)
            }
        };
        let default_v = if profile == Profile::PlugUsGen4 {
            120.0
        } else {
            230.0
        };
        let default_pf = if matches!(profile, Profile::Pro3Em | Profile::ProEm) {
            0.9
        } else {
            1.0
        };
        // Two-word options: the first word is the default and means `true`.
        let either = |k: &str, yes: &str, no: &str| match opts.get(k).map(String::as_str) {
            None => Ok(true),
            Some(v) if v == yes => Ok(true),
            Some(v) if v == no => Ok(false),
            Some(v) => Err(usage(format!("--{k} must be {yes} or {no}, got `{v}`"))),
        };
        let relay = either("relay", "on", "off")?;
        let loose = either("numbers", "loose", "plain")?;
        let reconnect = either("reconnect", "always", "never")?;
        let unsynced = !either("clock", "synced", "unsynced")?;
        let error = match opts.get("error") {
            None => None,
            Some(v) => {
                let (c, m) = v.split_once(':').unwrap_or((v, "simulated error"));
                let code = c
                    .trim()
                    .parse()
                    .map_err(|_| usage(format!("--error `{v}` must look like -105:Bad id=0")))?;
                Some((code, m.to_string()))
            }
        };
        let pf: f64 = num(&opts, "pf", default_pf)?;
        if !(pf > 0.0 && pf <= 1.0) {
            return Err(usage("--pf must be in (0, 1]"));
        }
        let notify_interval = match opts.get("notify-interval") {
            None => Some(Duration::from_secs(60)),
            Some(_) => secs("notify-interval")?,
        };
        Ok(SimConfig {
            url,
            profile,
            count,
            id,
            mac,
            power: num(&opts, "power", 42.5)?,
            voltage: num(&opts, "voltage", default_v)?,
            pf,
            relay,
            jitter: num(&opts, "jitter", 1.0)?,
            seed,
            loose,
            reply_delay: Duration::from_millis(num(&opts, "reply-delay-ms", 0)?),
            no_reply,
            bad_json,
            unsynced,
            error,
            drop_after: secs("drop-after")?,
            reconnect,
            backoff_min: Duration::from_millis(num(&opts, "backoff-min-ms", 1000)?.max(1)),
            backoff_max: Duration::from_millis(num(&opts, "backoff-max-ms", 60_000)?.max(1)),
            hello_delay: Duration::from_millis(num(&opts, "hello-delay-ms", 50)?),
            notify_interval,
            run_for: secs("run-for")?,
        })
    }
}

/// Runs every plug until `--run-for` elapses, a signal arrives, or (with `--reconnect never`)
/// every plug has lost its connection.
pub async fn run(cfg: SimConfig) {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..cfg.count {
        let cfg = cfg.clone();
        set.spawn(async move { plug_main(cfg, i).await });
    }
    let deadline = async {
        match cfg.run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let signals = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            if let Ok(mut term) = signal(SignalKind::terminate()) {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
                return;
            }
        }
        let _ = tokio::signal::ctrl_c().await;
    };
    let all_done = async { while set.join_next().await.is_some() {} };
    tokio::select! {
        () = deadline => tracing::info!("Run time over; stopping the simulated plugs."),
        () = signals => tracing::info!("Signal received; stopping the simulated plugs."),
        () = all_done => tracing::info!("Every simulated plug has stopped."),
    }
}

/// Small deterministic generator for the drift (xorshift64*).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [-1, 1).
    fn sym(&mut self) -> f64 {
        self.next_f64() * 2.0 - 1.0
    }
}

/// The simulated device's physical state; survives reconnects.
struct Plug {
    cfg: SimConfig,
    id: String,
    mac: String,
    path_url: String,
    output: bool,
    energy_wh: f64,
    ret_energy_wh: f64,
    by_minute: [f64; 3],
    minute_energy_wh: f64,
    minute_ts: u64,
    last: Instant,
    booted: Instant,
    rng: Rng,
    ws_server: String,
    /// What last changed the relay (`init`, then `WS_out` after a `Switch.Set`).
    source: &'static str,
    /// A `NotifyStatus` to send after the current reply (relay changes).
    notify_after_reply: Option<String>,
    /// `--bad-json` already used on this connection.
    bad_json_done: bool,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A number rendered later in device style; see [`render`].
fn n(v: f64, decimals: usize, loose: bool) -> Value {
    if loose {
        Value::String(format!("\u{1}{v:.decimals$}"))
    } else {
        let f = 10f64.powi(decimals as i32);
        json!((v * f).round() / f)
    }
}

/// Serialises `v`, turning `n()` markers into bare numbers such as `0.000` or `42.5`.
fn render(v: &Value) -> String {
    let s = v.to_string();
    if !s.contains("\\u0001") {
        return s;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s.as_str();
    while let Some(pos) = rest.find("\"\\u0001") {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 7..];
        let end = after.find('"').unwrap_or(after.len());
        out.push_str(&after[..end]);
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

impl Plug {
    fn new(cfg: SimConfig, index: usize) -> Plug {
        let (prefix, ..) = cfg.profile.ident();
        let mac_num = (cfg.mac + index as u64) & 0xFFFF_FFFF_FFFF;
        let mac = format!("{mac_num:012X}");
        let id = cfg
            .id
            .clone()
            .unwrap_or_else(|| format!("{prefix}-{}", mac.to_lowercase()));
        let path_url = if cfg.count > 1 {
            with_suffix(&cfg.url, index + 1)
        } else {
            cfg.url.clone()
        };
        let now = unix_now() as u64;
        Plug {
            id,
            mac,
            ws_server: path_url.clone(),
            path_url,
            output: cfg.relay,
            energy_wh: 1000.0 + (index as f64) * 3.25,
            ret_energy_wh: 0.0,
            by_minute: [0.0; 3],
            minute_energy_wh: 0.0,
            minute_ts: now - now % 60,
            last: Instant::now(),
            booted: Instant::now(),
            rng: Rng(cfg
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(index as u64 + 1)
                | 1),
            source: "init",
            notify_after_reply: None,
            bad_json_done: false,
            cfg,
        }
    }

    /// Current active power with drift; 0 with the relay off.
    fn power(&mut self) -> f64 {
        if self.cfg.profile.has_switch() && self.cfg.profile.switch_meters() && !self.output {
            return 0.0;
        }
        let j = self.cfg.jitter / 100.0 * self.rng.sym();
        self.cfg.power * (1.0 + j)
    }

    fn voltage(&mut self) -> f64 {
        let j = self.cfg.jitter / 100.0 * 0.2 * self.rng.sym();
        self.cfg.voltage * (1.0 + j)
    }

    fn freq(&self) -> f64 {
        if self.cfg.profile == Profile::PlugUsGen4 {
            60.0
        } else {
            50.0
        }
    }

    /// Integrates energy up to now at the configured power.
    fn integrate(&mut self) {
        let now = Instant::now();
        let hours = now.duration_since(self.last).as_secs_f64() / 3600.0;
        self.last = now;
        let p = if self.output || !self.cfg.profile.switch_meters() {
            self.cfg.power
        } else {
            0.0
        };
        let wh = p.abs() * hours;
        if p < 0.0 && self.cfg.profile.newer_fields() {
            self.ret_energy_wh += wh;
        } else {
            self.energy_wh += wh;
        }
        self.minute_energy_wh += wh;
        let unix = unix_now() as u64;
        let minute = unix - unix % 60;
        if minute > self.minute_ts {
            self.by_minute = [
                self.minute_energy_wh * 1000.0,
                self.by_minute[0],
                self.by_minute[1],
            ];
            self.minute_energy_wh = 0.0;
            self.minute_ts = minute;
        }
    }

    fn energy_obj(&self, total: f64, by_minute: [f64; 3]) -> Value {
        let l = self.cfg.loose;
        json!({
            "total": n(total, 3, l),
            "by_minute": by_minute.map(|b| n(b, 3, l)),
            "minute_ts": self.minute_ts,
        })
    }

    fn metered_status(&mut self, id: u32) -> Map<String, Value> {
        self.integrate();
        let l = self.cfg.loose;
        let p = self.power();
        let v = self.voltage();
        let i = if v > 0.0 {
            p.abs() / (v * self.cfg.pf)
        } else {
            0.0
        };
        let mut o = Map::new();
        o.insert("id".into(), json!(id));
        o.insert("apower".into(), n(p, 1, l));
        o.insert("voltage".into(), n(v, 1, l));
        o.insert("current".into(), n(i, 3, l));
        if self.cfg.profile.newer_fields() {
            o.insert("freq".into(), n(self.freq(), 1, l));
        }
        if self.cfg.pf < 1.0 {
            o.insert("pf".into(), n(self.cfg.pf, 2, l));
        }
        o.insert(
            "aenergy".into(),
            self.energy_obj(self.energy_wh, self.by_minute),
        );
        if self.cfg.profile.newer_fields() {
            o.insert(
                "ret_aenergy".into(),
                self.energy_obj(self.ret_energy_wh, [0.0; 3]),
            );
        }
        o
    }

    fn switch_status(&mut self, id: u32) -> Value {
        let mut o = if self.cfg.profile.switch_meters() {
            self.metered_status(id)
        } else {
            let mut m = Map::new();
            m.insert("id".into(), json!(id));
            m
        };
        o.insert("source".into(), json!(self.source));
        o.insert("output".into(), json!(self.output));
        if self.cfg.profile != Profile::ProEm {
            let t = 38.0 + self.rng.sym();
            o.insert(
                "temperature".into(),
                json!({"tC": n(t, 1, self.cfg.loose), "tF": n(t * 1.8 + 32.0, 1, self.cfg.loose)}),
            );
        }
        Value::Object(o)
    }

    fn pm1_status(&mut self) -> Value {
        Value::Object(self.metered_status(0))
    }

    fn em_status(&mut self) -> Value {
        self.integrate();
        let l = self.cfg.loose;
        let total = self.power();
        let mut o = Map::new();
        o.insert("id".into(), json!(0));
        let (mut sum_i, mut sum_s) = (0.0, 0.0);
        for (ph, share) in [("a", 0.5), ("b", 0.3), ("c", 0.2)] {
            let p = total * share;
            let v = self.voltage();
            let s = p.abs() / self.cfg.pf;
            let i = s / v;
            sum_i += i;
            sum_s += s;
            o.insert(format!("{ph}_current"), n(i, 3, l));
            o.insert(format!("{ph}_voltage"), n(v, 1, l));
            o.insert(format!("{ph}_act_power"), n(p, 1, l));
            o.insert(format!("{ph}_aprt_power"), n(s, 1, l));
            // Energy meters sign the power factor like the active power (export < 0).
            o.insert(format!("{ph}_pf"), n(self.cfg.pf.copysign(p), 2, l));
            o.insert(format!("{ph}_freq"), n(self.freq(), 1, l));
        }
        o.insert("n_current".into(), Value::Null);
        o.insert("total_current".into(), n(sum_i, 3, l));
        o.insert("total_act_power".into(), n(total, 3, l));
        o.insert("total_aprt_power".into(), n(sum_s, 3, l));
        o.insert("user_calibrated_phase".into(), json!([]));
        Value::Object(o)
    }

    fn emdata_status(&mut self) -> Value {
        self.integrate();
        let l = self.cfg.loose;
        let e = self.energy_wh;
        json!({
            "id": 0,
            "a_total_act_energy": n(e * 0.5, 2, l), "a_total_act_ret_energy": n(0.0, 2, l),
            "b_total_act_energy": n(e * 0.3, 2, l), "b_total_act_ret_energy": n(0.0, 2, l),
            "c_total_act_energy": n(e * 0.2, 2, l), "c_total_act_ret_energy": n(0.0, 2, l),
            "total_act": n(e, 2, l), "total_act_ret": n(0.0, 2, l),
        })
    }

    fn em1_status(&mut self, id: u32) -> Value {
        self.integrate();
        let l = self.cfg.loose;
        let p = self.power() * if id == 0 { 1.0 } else { 0.3 };
        let v = self.voltage();
        let s = p.abs() / self.cfg.pf;
        json!({
            "id": id, "current": n(s / v, 3, l), "voltage": n(v, 1, l), "act_power": n(p, 1, l),
            "aprt_power": n(s, 1, l), "pf": n(self.cfg.pf.copysign(p), 2, l), "freq": n(self.freq(), 1, l),
            "calibration": "factory",
        })
    }

    fn em1data_status(&mut self, id: u32) -> Value {
        self.integrate();
        let share = if id == 0 { 1.0 } else { 0.3 };
        json!({"id": id, "total_act_energy": n(self.energy_wh * share, 2, self.cfg.loose),
               "total_act_ret_energy": n(0.0, 2, self.cfg.loose)})
    }

    fn sys_status(&self) -> Value {
        let mut v = json!({
            "mac": self.mac, "restart_required": false,
            "uptime": self.booted.elapsed().as_secs(), "ram_size": 262_144, "ram_free": 150_000,
            "fs_size": 458_752, "fs_free": 147_456, "cfg_rev": 7, "kvs_rev": 0,
            "schedule_rev": 0, "webhook_rev": 0, "available_updates": {},
        });
        // Before SNTP sync a real device has no wall clock: no unixtime/time at all.
        if !self.cfg.unsynced {
            v["unixtime"] = json!(unix_now() as u64);
        }
        v
    }

    /// `ts` of notifications: Unix time with 2 decimals, or the uptime when unsynced (the
    /// real captured NotifyFullStatus says `"ts":5.01`).
    fn ts(&self) -> f64 {
        let t = if self.cfg.unsynced {
            self.booted.elapsed().as_secs_f64()
        } else {
            unix_now()
        };
        (t * 100.0).round() / 100.0
    }

    fn full_status(&mut self) -> Value {
        let mut o = Map::new();
        match self.cfg.profile {
            Profile::PlusPlugS | Profile::PlugSGen3 | Profile::PlugUsGen4 | Profile::Mini1Gen4 => {
                o.insert("switch:0".into(), self.switch_status(0));
            }
            Profile::PmMini => {
                o.insert("pm1:0".into(), self.pm1_status());
            }
            Profile::Pro3Em => {
                o.insert("em:0".into(), self.em_status());
                o.insert("emdata:0".into(), self.emdata_status());
                let t = 45.0 + self.rng.sym();
                o.insert(
                    "temperature:0".into(),
                    json!({"id": 0, "tC": n(t, 1, self.cfg.loose), "tF": n(t * 1.8 + 32.0, 1, self.cfg.loose)}),
                );
            }
            Profile::ProEm => {
                o.insert("em1:0".into(), self.em1_status(0));
                o.insert("em1:1".into(), self.em1_status(1));
                o.insert("em1data:0".into(), self.em1data_status(0));
                o.insert("em1data:1".into(), self.em1data_status(1));
                o.insert("switch:0".into(), self.switch_status(0));
            }
        }
        o.insert("sys".into(), self.sys_status());
        o.insert("cloud".into(), json!({"connected": false}));
        o.insert("mqtt".into(), json!({"connected": false}));
        o.insert("ws".into(), json!({"connected": true}));
        Value::Object(o)
    }

    fn device_info(&self) -> Value {
        let (_, model, gen, app) = self.cfg.profile.ident();
        let mut v = json!({
            "name": null, "id": self.id, "mac": self.mac, "slot": 0, "model": model, "gen": gen,
            "fw_id": "20250101-000000/1.5.0-sim", "ver": "1.5.0", "app": app,
            "auth_en": false, "auth_domain": null,
        });
        if self.cfg.profile == Profile::Pro3Em {
            v["profile"] = json!("triphase");
        }
        v
    }

    fn methods(&self) -> Vec<&'static str> {
        let mut m = vec![
            "Shelly.GetDeviceInfo",
            "Shelly.GetStatus",
            "Shelly.GetConfig",
            "Shelly.ListMethods",
            "Shelly.Reboot",
            "Sys.GetStatus",
            "Ws.GetConfig",
            "Ws.GetStatus",
            "Ws.SetConfig",
        ];
        if self.cfg.profile.has_switch() {
            m.extend([
                "Switch.GetStatus",
                "Switch.Set",
                "Switch.Toggle",
                "Switch.GetConfig",
            ]);
        }
        match self.cfg.profile {
            Profile::PmMini => m.push("PM1.GetStatus"),
            Profile::Pro3Em => m.extend(["EM.GetStatus", "EMData.GetStatus"]),
            Profile::ProEm => m.extend(["EM1.GetStatus", "EM1Data.GetStatus"]),
            _ => {}
        }
        m
    }

    /// Answers one request: `Ok(result)` or `Err((code, message))`.
    fn answer(&mut self, method: &str, params: &Value) -> Result<Value, (i64, String)> {
        let canonical = self
            .methods()
            .into_iter()
            .find(|m| m.eq_ignore_ascii_case(method));
        let Some(m) = canonical else {
            return Err((404, format!("No handler for {method}")));
        };
        let is_reading = m.ends_with(".GetStatus") && m != "Sys.GetStatus" && m != "Ws.GetStatus";
        if is_reading {
            if let Some((code, msg)) = &self.cfg.error {
                return Err((*code, msg.clone()));
            }
        }
        let pid = params.get("id").and_then(Value::as_u64);
        let need_id = |max: u32| -> Result<u32, (i64, String)> {
            match pid {
                None => Err((-103, "Missing required 'id'".to_string())),
                Some(i) if i as u32 > max || i > u32::MAX as u64 => {
                    Err((-105, format!("Bad id={i}")))
                }
                Some(i) => Ok(i as u32),
            }
        };
        Ok(match m {
            "Shelly.GetDeviceInfo" => self.device_info(),
            "Shelly.GetStatus" => self.full_status(),
            "Shelly.GetConfig" => json!({
                "sys": {"device": {"name": null, "mac": self.mac}},
                "ws": {"enable": true, "server": self.ws_server, "ssl_ca": "*"},
            }),
            "Shelly.ListMethods" => json!({"methods": self.methods()}),
            "Shelly.Reboot" => Value::Null,
            "Sys.GetStatus" => self.sys_status(),
            "Ws.GetConfig" => json!({"enable": true, "server": self.ws_server, "ssl_ca": "*"}),
            "Ws.GetStatus" => json!({"connected": true}),
            "Ws.SetConfig" => {
                if let Some(s) = params.pointer("/config/server").and_then(Value::as_str) {
                    self.ws_server = s.to_string();
                }
                json!({"restart_required": true})
            }
            "Switch.GetStatus" => {
                need_id(0)?;
                self.switch_status(0)
            }
            "Switch.GetConfig" => {
                need_id(0)?;
                json!({"id": 0, "name": null, "in_mode": "momentary", "initial_state": "restore_last",
                       "auto_on": false, "auto_on_delay": 60.0, "auto_off": false, "auto_off_delay": 60.0,
                       "power_limit": 2500, "voltage_limit": 280, "current_limit": 10.0})
            }
            "Switch.Set" | "Switch.Toggle" => {
                need_id(0)?;
                self.integrate();
                let was_on = self.output;
                self.output = if m == "Switch.Toggle" {
                    !was_on
                } else {
                    params
                        .get("on")
                        .and_then(Value::as_bool)
                        .ok_or((-103, "Missing required 'on'".to_string()))?
                };
                self.source = "WS_out";
                if was_on != self.output {
                    let mut delta = json!({"id": 0, "output": self.output, "source": self.source});
                    if self.cfg.profile.switch_meters() {
                        let p = self.power();
                        delta["apower"] = n(p, 1, self.cfg.loose);
                        delta["current"] = n(
                            p.abs() / (self.cfg.voltage * self.cfg.pf),
                            3,
                            self.cfg.loose,
                        );
                    }
                    let ts = self.ts();
                    self.notify_after_reply = Some(render(&json!({"src": self.id, "dst": "ws",
                        "method": "NotifyStatus", "params": {"ts": ts, "switch:0": delta}})));
                }
                json!({"was_on": was_on})
            }
            "PM1.GetStatus" => {
                need_id(0)?;
                self.pm1_status()
            }
            "EM.GetStatus" => {
                need_id(0)?;
                self.em_status()
            }
            "EMData.GetStatus" => {
                need_id(0)?;
                self.emdata_status()
            }
            "EM1.GetStatus" => self.em1_status(need_id(1)?),
            "EM1Data.GetStatus" => self.em1data_status(need_id(1)?),
            _ => return Err((404, format!("No handler for {method}"))),
        })
    }

    fn notify_full_status(&mut self) -> String {
        let mut params = self.full_status();
        params["ts"] = json!(self.ts());
        render(
            &json!({"src": self.id, "dst": "ws", "method": "NotifyFullStatus", "params": params}),
        )
    }

    fn notify_energy(&mut self) -> Option<String> {
        self.integrate();
        let key = match self.cfg.profile {
            p if p.switch_meters() => "switch:0",
            Profile::PmMini => "pm1:0",
            _ => return None,
        };
        let mut comp = json!({"id": 0, "aenergy": self.energy_obj(self.energy_wh, self.by_minute)});
        if self.cfg.profile.newer_fields() {
            comp["ret_aenergy"] = self.energy_obj(self.ret_energy_wh, [0.0; 3]);
        }
        let ts = self.ts();
        Some(render(
            &json!({"src": self.id, "dst": "ws", "method": "NotifyStatus",
                            "params": {"ts": ts, key: comp}}),
        ))
    }
}

/// `url` with `-i` added to its path, the query (a plug token) kept after it.
fn with_suffix(url: &str, i: usize) -> String {
    let (url, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let (head, path) = match url
        .find("://")
        .and_then(|p| url[p + 3..].find('/').map(|q| p + 3 + q))
    {
        Some(p) => (&url[..p], &url[p..]),
        None => (url, ""),
    };
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        format!("{head}/{query}")
    } else {
        format!("{head}{trimmed}-{i}{query}")
    }
}

/// `url` as it may be logged: without its query, which may hold the bridge's plug token.
fn loggable(url: &str) -> &str {
    url.split('?').next().unwrap_or("")
}

enum SessionEnd {
    Lost,
    Reboot(Duration),
}

async fn plug_main(cfg: SimConfig, index: usize) {
    let mut plug = Plug::new(cfg.clone(), index);
    let mut backoff = cfg.backoff_min;
    loop {
        let mut req = match plug.path_url.as_str().into_client_request() {
            Ok(r) => r,
            Err(error) => {
                tracing::error!(url = %loggable(&plug.path_url), %error, "Unusable bridge URL.");
                return;
            }
        };
        req.headers_mut().insert(
            "sec-websocket-protocol",
            HeaderValue::from_static("json-rpc"),
        );
        let ws_cfg = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(0);
        tracing::debug!(device_id = %plug.id, "WS {}", loggable(&plug.path_url));
        let end = match tokio_tungstenite::connect_async_with_config(req, Some(ws_cfg), true).await
        {
            Ok((ws, _resp)) => {
                backoff = cfg.backoff_min;
                tracing::info!(device_id = %plug.id, url = %loggable(&plug.path_url), "Plug connected.");
                session(&mut plug, ws).await
            }
            Err(error) => {
                tracing::info!(
                    device_id = %plug.id,
                    url = %loggable(&plug.path_url),
                    %error,
                    retry_ms = backoff.as_millis() as u64,
                    "Invalid WebSocket handshake response or connect failure; will retry."
                );
                SessionEnd::Lost
            }
        };
        if !cfg.reconnect {
            tracing::info!(device_id = %plug.id, "Connection over; not re-dialling (--reconnect never).");
            return;
        }
        let wait = match end {
            SessionEnd::Reboot(d) => d,
            SessionEnd::Lost => {
                let w = backoff;
                backoff = (backoff * 2).min(cfg.backoff_max);
                w
            }
        };
        tokio::time::sleep(wait).await;
    }
}

async fn session<S>(plug: &mut Plug, ws: tokio_tungstenite::WebSocketStream<S>) -> SessionEnd
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    plug.bad_json_done = false;
    let (mut sink, mut stream) = ws.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Message>(16);
    let hello = tokio::time::sleep(plug.cfg.hello_delay);
    tokio::pin!(hello);
    let mut hello_sent = false;
    let drop_at = tokio::time::sleep(
        plug.cfg
            .drop_after
            .unwrap_or(Duration::from_secs(86_400 * 365)),
    );
    tokio::pin!(drop_at);
    let period = plug
        .cfg
        .notify_interval
        .unwrap_or(Duration::from_secs(86_400 * 365));
    let mut notify = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut reboot: Option<Duration> = None;
    loop {
        tokio::select! {
            () = &mut hello, if !hello_sent => {
                hello_sent = true;
                let text = plug.notify_full_status();
                if sink.send(Message::Text(text.into())).await.is_err() { return SessionEnd::Lost; }
            }
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                        tracing::info!(device_id = %plug.id, "Connection closed by the bridge.");
                        return SessionEnd::Lost;
                    }
                    Some(Ok(_)) => continue,
                };
                let Some((reply, is_reboot)) = handle_request(plug, text.as_str()) else { continue };
                if plug.cfg.no_reply {
                    continue;
                }
                if is_reboot {
                    reboot = Some(Duration::from_secs(2));
                }
                let delay = plug.cfg.reply_delay;
                if delay.is_zero() {
                    if sink.send(Message::Text(reply.into())).await.is_err() { return SessionEnd::Lost; }
                    if let Some(n) = plug.notify_after_reply.take() {
                        if sink.send(Message::Text(n.into())).await.is_err() { return SessionEnd::Lost; }
                    }
                } else {
                    let tx = out_tx.clone();
                    let notify = plug.notify_after_reply.take();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        let _ = tx.send(Message::Text(reply.into())).await;
                        if let Some(n) = notify {
                            let _ = tx.send(Message::Text(n.into())).await;
                        }
                    });
                }
                if let Some(d) = reboot {
                    let _ = sink.send(Message::Close(None)).await;
                    tracing::info!(device_id = %plug.id, "Rebooting.");
                    plug.booted = Instant::now();
                    return SessionEnd::Reboot(d);
                }
            }
            Some(m) = out_rx.recv() => {
                if sink.send(m).await.is_err() { return SessionEnd::Lost; }
            }
            _ = notify.tick() => {
                if let Some(text) = plug.notify_energy() {
                    if sink.send(Message::Text(text.into())).await.is_err() { return SessionEnd::Lost; }
                }
            }
            () = &mut drop_at => {
                tracing::info!(device_id = %plug.id, "Dropping the connection (--drop-after).");
                let _ = sink.send(Message::Close(None)).await;
                return SessionEnd::Lost;
            }
        }
    }
}

/// Applies the frame rules of a device to one text frame; returns the reply text to send (if
/// any) and whether it was a reboot request.
fn handle_request(plug: &mut Plug, text: &str) -> Option<(String, bool)> {
    let v: Value = serde_json::from_str(text).ok()?;
    let obj = v.as_object()?;
    let method = obj.get("method")?.as_str()?.to_string();
    if let Some(dst) = obj.get("dst").and_then(Value::as_str) {
        if dst != plug.id {
            return None;
        }
    }
    let id = obj.get("id")?.clone();
    if id.is_null() {
        return None;
    }
    let params = obj.get("params").cloned().unwrap_or(Value::Null);
    let mut reply = Map::new();
    reply.insert("id".into(), id);
    reply.insert("src".into(), json!(plug.id));
    if let Some(src) = obj.get("src").filter(|s| s.is_string()) {
        reply.insert("dst".into(), src.clone());
    }
    let is_reading = method.to_ascii_lowercase().ends_with(".getstatus")
        && !method.eq_ignore_ascii_case("Sys.GetStatus")
        && !method.eq_ignore_ascii_case("Ws.GetStatus");
    if plug.cfg.bad_json && is_reading && !plug.bad_json_done {
        plug.bad_json_done = true;
        let text = format!(
            "{{\"id\":{},\"src\":\"{}\",\"result\":{{\"apower\":1",
            reply["id"], plug.id
        );
        return Some((text, false));
    }
    let answer = plug.answer(&method, &params);
    let is_reboot = answer.is_ok() && method.eq_ignore_ascii_case("Shelly.Reboot");
    match answer {
        Ok(result) => reply.insert("result".into(), result),
        Err((code, message)) => {
            reply.insert("error".into(), json!({"code": code, "message": message}))
        }
    };
    let mut s = String::new();
    let _ = write!(s, "{}", render(&Value::Object(reply)));
    Some((s, is_reboot))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &[&str]) -> SimConfig {
        let mut a = vec![
            "--url".to_string(),
            "ws://127.0.0.1:1/jetson-01".to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        SimConfig::from_args(&a, &HashMap::new()).unwrap()
    }

    fn parse_err(extra: &[&str]) -> SimError {
        let mut a = vec!["--url", "ws://127.0.0.1:1/jetson-01"];
        a.extend(extra);
        SimConfig::from_args(a, &HashMap::new()).unwrap_err()
    }

    #[test]
    fn options_parse_with_their_defaults_and_errors_name_the_option() {
        let c = cfg(&[
            "--no-reply",
            "--count=3",
            "--power",
            "-50",
            "--clock",
            "unsynced",
        ]);
        assert!(c.no_reply && !c.bad_json && c.unsynced && c.relay && c.loose && c.reconnect);
        assert_eq!((c.count, c.power), (3, -50.0));
        assert_eq!(c.notify_interval, Some(Duration::from_secs(60)));
        for (args, message) in [
            (
                &["--relay", "maybe"][..],
                "--relay must be on or off, got `maybe`",
            ),
            (
                &["--reconnect", "sometimes"],
                "--reconnect must be always or never, got `sometimes`",
            ),
            (&["--seed"], "--seed: needs a value; see --help"),
            (&["--toast", "1"], "--toast: unknown option; see --help"),
            (&["extra"], "extra: unexpected argument; see --help"),
            (&["--no-reply=yes"], "--no-reply: takes no value, got `yes`"),
        ] {
            let e = parse_err(args);
            assert!(e.usage, "{args:?}");
            assert_eq!(e.message, message);
        }
        let e = SimConfig::from_args(["--count", "2"], &HashMap::new()).unwrap_err();
        assert!(e.message.starts_with("--url is required"), "{e}");
    }

    #[test]
    fn loose_numbers_render_like_devices() {
        let v = json!({"a": n(0.0, 3, true), "b": n(42.46, 1, true), "c": "x\u{1}"});
        assert_eq!(render(&v), r#"{"a":0.000,"b":42.5,"c":"x\u0001"}"#);
    }

    #[test]
    fn answers_with_device_semantics() {
        let mut p = Plug::new(cfg(&["--jitter", "0", "--power", "100"]), 0);
        let r = p.answer("switch.getstatus", &json!({"id": 0})).unwrap();
        assert_eq!(r["output"], true);
        let text = render(&r);
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["apower"], 100.0);
        assert_eq!(back["voltage"], 230.0);
        assert_eq!(back["current"], 0.435);
        assert_eq!(
            p.answer("Switch.GetStatus", &json!({})).unwrap_err().0,
            -103
        );
        assert_eq!(
            p.answer("Switch.GetStatus", &json!({"id": 3}))
                .unwrap_err()
                .0,
            -105
        );
        assert_eq!(
            p.answer("PM1.GetStatus", &json!({"id": 0})).unwrap_err().0,
            404
        );
        assert_eq!(
            p.answer("Switch.Set", &json!({"id": 0, "on": false}))
                .unwrap()["was_on"],
            true
        );
        let r: Value = serde_json::from_str(&render(
            &p.answer("Switch.GetStatus", &json!({"id": 0})).unwrap(),
        ))
        .unwrap();
        assert_eq!(r["apower"], 0.0);
        assert_eq!(r["source"], "WS_out");
        let note: Value = serde_json::from_str(&p.notify_after_reply.take().unwrap()).unwrap();
        assert_eq!(note["method"], "NotifyStatus");
        assert_eq!(note["dst"], "ws");
        assert_eq!(note["params"]["switch:0"]["output"], false);
        assert_eq!(note["params"]["switch:0"]["apower"], 0.0);
    }

    #[test]
    fn unsynced_clock_reports_uptime_and_no_unixtime() {
        let mut p = Plug::new(cfg(&["--clock", "unsynced"]), 0);
        let v: Value = serde_json::from_str(&p.notify_full_status()).unwrap();
        assert!(
            v["params"]["ts"].as_f64().unwrap() < 100.0,
            "{}",
            v["params"]["ts"]
        );
        assert!(v["params"]["sys"].get("unixtime").is_none());
        let mut p = Plug::new(cfg(&[]), 0);
        let v: Value = serde_json::from_str(&p.notify_full_status()).unwrap();
        assert!(v["params"]["ts"].as_f64().unwrap() > 1.7e9);
        assert!(v["params"]["sys"]["unixtime"].as_u64().is_some());
    }

    #[test]
    fn frame_rules() {
        let mut p = Plug::new(cfg(&[]), 0);
        assert!(handle_request(&mut p, "garbage").is_none());
        assert!(handle_request(&mut p, r#"{"method":"Shelly.GetStatus"}"#).is_none());
        assert!(handle_request(
            &mut p,
            r#"{"id":1,"dst":"other","method":"Shelly.GetStatus"}"#
        )
        .is_none());
        let (r, _) = handle_request(
            &mut p,
            r#"{"id":"x-1","src":"me","method":"Shelly.GetDeviceInfo"}"#,
        )
        .unwrap();
        let v: Value = serde_json::from_str(&r).unwrap();
        assert_eq!(v["id"], "x-1");
        assert_eq!(v["dst"], "me");
        assert_eq!(v["result"]["id"], json!(p.id));
    }

    #[test]
    fn profiles_have_their_components() {
        for (name, key) in [
            ("pm-mini", "pm1:0"),
            ("pro-3em", "em:0"),
            ("pro-em", "em1:0"),
            ("mini1-gen4", "switch:0"),
        ] {
            let mut p = Plug::new(cfg(&["--profile", name]), 0);
            let s = p.full_status();
            assert!(s.get(key).is_some(), "{name}");
        }
        let mut p = Plug::new(cfg(&["--profile", "mini1-gen4"]), 0);
        assert!(p.full_status()["switch:0"].get("apower").is_none());
    }

    #[test]
    fn several_plugs_get_numbered_paths() {
        assert_eq!(with_suffix("ws://h:1/jetson", 2), "ws://h:1/jetson-2");
        assert_eq!(with_suffix("ws://h:1/", 2), "ws://h:1/");
        assert_eq!(with_suffix("ws://h:1", 2), "ws://h:1/");
        // A plug token stays in the query, after the numbered path.
        assert_eq!(
            with_suffix("ws://h:1/edge?token=abc", 3),
            "ws://h:1/edge-3?token=abc"
        );
        assert_eq!(with_suffix("ws://h:1/?token=abc", 3), "ws://h:1/?token=abc");
        assert_eq!(loggable("ws://h:1/edge-3?token=abc"), "ws://h:1/edge-3");
    }
}
