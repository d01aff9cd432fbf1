//! The one table of `config.yaml` keys ([`KEYS`]).
//!
//! Each key is written here once: its dotted name, the kind of value it takes, its default,
//! whether `null` is accepted, the fix a message suggests, and a line for the docs. Everything
//! else is derived from it: the checker's known-key lists and per-kind checks (`check.rs`), the
//! serde defaults of the types (`schema.rs`, through the `DEFAULT_*` constants below) and the
//! key list of `docs/CONFIG.md` ([`docs_table`]). Tests tie the table to `Config`'s fields in
//! both directions and the docs to the table.
//!
//! The constants are computed from the table when the crate compiles, so a key missing from it,
//! or a default of the wrong kind, is a build error rather than a surprise at run time.

use std::fmt;

/// What kind of value a key takes. It decides how the key is checked, the wording of the
/// message when the value is wrong, and the type shown in the docs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// One of the supported device types (`jetson_orin`, ...).
    DeviceType,
    /// A number of seconds from `min` to `max`; fractions allowed.
    Seconds {
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
    /// A timeout in seconds: above 0 and at most `max`; fractions allowed.
    Timeout {
        /// Largest accepted value.
        max: f64,
    },
    /// A TCP port, `0..=65535` (0 picks a free port).
    Port,
    /// A whole number from `min` to `max` (a count, such as a number of connections).
    Count {
        /// Smallest accepted value.
        min: u32,
        /// Largest accepted value.
        max: u32,
    },
    /// An IP address; host names are not accepted.
    IpAddr,
    /// Non-empty text.
    Text,
    /// A secret sent in an HTTP header: one word of visible ASCII (no spaces or control
    /// characters). Messages about it never show the value.
    Secret,
    /// A file path: non-empty text.
    Path,
    /// An `http://` or `https://` URL with a host.
    Url,
    /// `true` or `false`.
    Bool,
    /// A section owned by the exporter: a mapping whose keys are the table's
    /// `<section>.<key>` entries. Any other key in it is an error.
    Section,
    /// The `metrics:` map of metric name → `true`/`false`.
    Metrics,
    /// The original exporter's `enabled_metrics: [name, ...]` list: read, converted to
    /// `metrics:`, never written back.
    LegacyList,
}

/// A default value, as the table writes it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lit {
    /// Text (device type, address, path, URL).
    Text(&'static str),
    /// A port number.
    Port(u16),
    /// A whole number (a [`Kind::Count`]).
    Count(u32),
    /// A number of seconds.
    Seconds(f64),
    /// A boolean.
    Bool(bool),
}

impl fmt::Display for Lit {
    /// The value as it is written in YAML and in messages: `9102`, `1`, `0.0.0.0`, `true`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Text(s) => f.write_str(s),
            Lit::Port(p) => write!(f, "{p}"),
            Lit::Count(n) => write!(f, "{n}"),
            // f64's Display writes whole numbers without a fraction (`1`, never `1.0`).
            Lit::Seconds(s) => write!(f, "{s}"),
            Lit::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// What an absent key means.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyDefault {
    /// The key reads as this value (its serde default); `Config::default()` holds it.
    Value(Lit),
    /// The key stays unset in `Config`; the exporter then uses the key's environment variable,
    /// else this value.
    Fallback(Lit),
    /// No default value. The text says, for the docs, what an absent key means (`unset`).
    Unset(&'static str),
}

/// The fix a message about the key suggests, in parentheses after the value found.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fix {
    /// `set <key>: <default>`, with the key's [`KeyDefault::Value`] or
    /// [`KeyDefault::Fallback`].
    SetDefault,
    /// `set <key>: <value>`.
    Set(&'static str),
    /// `set <key>: <value>, or remove the key`.
    SetOrRemove(&'static str),
    /// Advice in words.
    Advice(&'static str),
}

/// One key of `config.yaml`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Key {
    /// Dotted name: `interval`, `shelly.server_url`. A dotted key belongs to the section named
    /// by its first part, which is a [`Kind::Section`] key of the table.
    pub name: &'static str,
    /// What value it takes.
    pub kind: Kind,
    /// What an absent key means.
    pub default: KeyDefault,
    /// Whether `key:` with nothing (YAML `null`) is accepted and means "absent".
    pub null_ok: bool,
    /// What messages about the key suggest.
    pub fix: Fix,
    /// One line for the docs' key list (Markdown).
    pub doc: &'static str,
}

impl Key {
    /// The last part of the name: `server_url` for `shelly.server_url`.
    pub fn short(&self) -> &'static str {
        self.name.rsplit('.').next().unwrap_or(self.name)
    }

    /// The section the key belongs to (`shelly` for `shelly.server_url`), none at the top.
    pub fn section(&self) -> Option<&'static str> {
        self.name.rsplit_once('.').map(|(section, _)| section)
    }

    /// The name's parts: `["shelly", "server_url"]`.
    pub fn path(&self) -> Vec<&'static str> {
        self.name.split('.').collect()
    }

    /// The default a fix or the docs show: a [`KeyDefault::Value`] or
    /// [`KeyDefault::Fallback`].
    pub fn default_lit(&self) -> Option<Lit> {
        match self.default {
            KeyDefault::Value(lit) | KeyDefault::Fallback(lit) => Some(lit),
            KeyDefault::Unset(_) => None,
        }
    }

    /// The fix as messages show it, without the parentheses: `set port: 9102`.
    pub fn fix_text(&self) -> String {
        let short = self.short();
        match self.fix {
            Fix::SetDefault => match self.default_lit() {
                Some(lit) => format!("set {short}: {lit}"),
                // The table test rules this out; say something useful all the same.
                None => format!("remove {short}"),
            },
            Fix::Set(value) => format!("set {short}: {value}"),
            Fix::SetOrRemove(value) => format!("set {short}: {value}, or remove the key"),
            Fix::Advice(text) => text.to_string(),
        }
    }
}

/// Every key of `config.yaml`, in the order messages list them: top-level keys in their
/// order, each section's keys after it.
pub const KEYS: &[Key] = &[
    Key {
        name: "device_type",
        kind: Kind::DeviceType,
        default: KeyDefault::Value(Lit::Text("auto")),
        null_ok: false,
        fix: Fix::SetDefault,
        doc: "Which board this is, and so which collector runs. `auto` reads the device tree \
              (and on x86 `/sys/class/dmi/id` and `/sys/class/powercap`) under `host_root` and \
              picks one of the others: Orin family (`nvidia,tegra234`) → `jetson_orin`, Xavier \
              and TX2 (`nvidia,tegra194`, `nvidia,tegra186`) → `jetson_xavier`, Nano and TX1 \
              (`nvidia,tegra210`) → `jetson_nano`, Raspberry Pi (`raspberrypi,*`, \
              `brcm,bcm2711`, `brcm,bcm2712`) → `raspberry_pi`, Rockchip RK3588 \
              (`rockchip,rk3588*`) → `orange_pi`, an x86 machine made by LattePanda/DFRobot or \
              with Intel RAPL → `lattepanda`, anything else (Thor included) → `jetson`. Or name \
              the type: `jetson_orin` (JetsonOrinCollector), `jetson_xavier` \
              (JetsonXavierCollector), `jetson_nano` (JetsonNanoCollector), `jetson`, the \
              generic fallback, which uses Orin parsing, `raspberry_pi` \
              (RaspberryPiCollector), `lattepanda` (LattePandaCollector) or `orange_pi` \
              (OrangePiCollector); the last three read sysfs and run no tegrastats. A named type \
              is used as it is. See [Device detection](#device-detection). Applied on \
              `POST /reload`.",
    },
    Key {
        name: "host_root",
        kind: Kind::Path,
        default: KeyDefault::Fallback(Lit::Text("/")),
        null_ok: true,
        fix: Fix::SetOrRemove("/host"),
        doc: "Directory the host's identity files are read under: \
              `{host_root}/proc/device-tree/model`, `…/proc/device-tree/compatible` and \
              `{host_root}/etc/nv_tegra_release`, for `device_type: auto` and \
              `edge_metrics_exporter_device_info`. When unset: `EDGE_METRICS_HOST_ROOT`, else \
              `/`. A container mounts the host's files read-only under `/host` and sets this to \
              `/host`; tests point it at a fixture tree. Missing files are not an error. Read \
              again on `POST /reload`.",
    },
    Key {
        name: "interval",
        kind: Kind::Seconds {
            min: 0.1,
            max: 3600.0,
        },
        default: KeyDefault::Value(Lit::Seconds(1.0)),
        null_ok: false,
        fix: Fix::SetDefault,
        doc: "Collection interval, also passed to tegrastats as `--interval <ms>`. Fractions are \
              allowed (`0.2` for tests and soaks). A whole number is written back and shown by \
              `GET /config` as an integer (`1`, never `1.0`).",
    },
    Key {
        name: "port",
        kind: Kind::Port,
        default: KeyDefault::Value(Lit::Port(9102)),
        null_ok: false,
        fix: Fix::SetDefault,
        doc: "Port of the Prometheus `/metrics` endpoint. 1..65535, or `0` to take any free port \
              (tests; the bound address is logged). Changing it requires a restart.",
    },
    Key {
        name: "reload_port",
        kind: Kind::Port,
        default: KeyDefault::Value(Lit::Port(9101)),
        null_ok: false,
        fix: Fix::SetDefault,
        doc: "Port of the management API (`/health`, `/config`, `/metrics/list`, \
              `/metrics/enable`, `/reload`). Same range. It must differ from `port` unless both \
              are `0`. Changing it requires a restart.",
    },
    Key {
        name: "bind_address",
        kind: Kind::IpAddr,
        default: KeyDefault::Value(Lit::Text("0.0.0.0")),
        null_ok: false,
        fix: Fix::SetDefault,
        doc: "Address the metrics server listens on. It must be an IP address, for example \
              `0.0.0.0`, `127.0.0.1` or `::`. Host names are not accepted.",
    },
    Key {
        name: "reload_bind_address",
        kind: Kind::IpAddr,
        default: KeyDefault::Value(Lit::Text("127.0.0.1")),
        null_ok: false,
        fix: Fix::SetDefault,
        doc: "Address the management API listens on. The default keeps it on this host: the \
              API can rewrite `config.yaml`. An address that is not a loopback one (`0.0.0.0`, \
              `::`, a LAN address) needs an API token (`api_token`, or \
              `EDGE_METRICS_API_TOKEN`); without one the exporter refuses to start (exit 64). \
              A probe from outside the host (a Kubernetes `httpGet` probe reaches the node \
              address under host networking) needs such an address, so a token must be set \
              (`GET /health` itself never asks for it); the `healthcheck` subcommand asks \
              127.0.0.1 and works with the default.",
    },
    Key {
        name: "max_connections",
        kind: Kind::Count { min: 1, max: 65536 },
        default: KeyDefault::Value(Lit::Count(256)),
        null_ok: false,
        fix: Fix::SetDefault,
        doc: "The most connections each of the two servers (metrics and management API) keeps \
              open at once. A connection over the cap is closed right after it is accepted, \
              before its request is read, and counted in \
              `edge_metrics_exporter_connections_refused_total{server}`; the log says so at \
              WARN at most once a minute. A connection holds its place until it closes; one that \
              sends no complete request for 10 s is closed. Changing it requires a restart.",
    },
    Key {
        name: "hostname",
        kind: Kind::Text,
        default: KeyDefault::Unset("unset"),
        null_ok: true,
        fix: Fix::SetOrRemove("\"edge-01\""),
        doc: "Value of the `hostname` label on every series. When unset: \
              `EDGE_METRICS_HOSTNAME`, else the kernel's hostname (`/proc/sys/kernel/hostname`, \
              else `/etc/hostname`), else `localhost`. In a container without host networking \
              the kernel hostname is the container's or the pod's name, so set this key or the \
              variable (from `spec.nodeName` in Kubernetes).",
    },
    Key {
        name: "api_token",
        kind: Kind::Text,
        default: KeyDefault::Unset("unset"),
        null_ok: true,
        fix: Fix::SetOrRemove("\"a-long-random-secret\""),
        doc: "When set (here or in `EDGE_METRICS_API_TOKEN`), the management API requires \
              `Authorization: Bearer <token>`. When unset, the API is open, and \
              `reload_bind_address` must be a loopback address. The token is never \
              shown by `GET /config` and never sent to the Config Server. Keep the file `0600`: \
              the exporter keeps the file's mode when it rewrites it.",
    },
    Key {
        name: "tegrastats",
        kind: Kind::Section,
        default: KeyDefault::Unset("each key's default"),
        null_ok: true,
        fix: Fix::Advice("indent its keys under `tegrastats:`"),
        doc: "Where Jetson readings come from: tegrastats (the first three keys below) or sysfs.",
    },
    Key {
        name: "tegrastats.path",
        kind: Kind::Path,
        default: KeyDefault::Value(Lit::Text("/usr/bin/tegrastats")),
        null_ok: false,
        fix: Fix::SetOrRemove("\"/usr/bin/tegrastats\""),
        doc: "The tegrastats executable, usually bind-mounted from the host. Restarted with \
              growing delays (0.5 s doubling to 30 s) when it exits, and killed and restarted \
              when it prints no line for thirty intervals (at least 5 s; long enough for a \
              tegrastats that block-buffers its output into the pipe).",
    },
    Key {
        name: "tegrastats.logfile",
        kind: Kind::Path,
        default: KeyDefault::Unset("unset"),
        null_ok: true,
        fix: Fix::SetOrRemove("\"/usr/bin/tegrastats\""),
        doc: "Read new lines from a file that a host-side `tegrastats --logfile` writes, instead \
              of spawning tegrastats.",
    },
    Key {
        name: "tegrastats.replay",
        kind: Kind::Path,
        default: KeyDefault::Unset("unset"),
        null_ok: true,
        fix: Fix::SetOrRemove("\"/usr/bin/tegrastats\""),
        doc: "Replay recorded tegrastats lines in a loop at `interval`. For demos and tests. If \
              several sources are set, `replay` wins, then `logfile`, then `path`.",
    },
    Key {
        name: "tegrastats.sysfs",
        kind: Kind::Bool,
        // Absent means false; the field is written only when true, so files keep their shape.
        default: KeyDefault::Unset("false"),
        null_ok: true,
        fix: Fix::SetOrRemove("true"),
        doc: "Read the kernel's own files under `host_root` (`/sys`, `/proc`, `/etc`) once per \
              `interval` instead of running tegrastats: the same metric names, no tegrastats \
              binary or library mounts, and root only for the EMC and engine clocks (debugfs). \
              When true it wins over `replay`, `logfile` and `path`. See \
              [sysfs mode](#sysfs-mode).",
    },
    Key {
        name: "shelly",
        kind: Kind::Section,
        default: KeyDefault::Unset("each key's default"),
        null_ok: true,
        fix: Fix::Advice("indent its keys under `shelly:`"),
        doc: "The Shelly collector: the three keys below.",
    },
    Key {
        name: "shelly.enabled",
        kind: Kind::Bool,
        default: KeyDefault::Value(Lit::Bool(true)),
        null_ok: false,
        fix: Fix::SetDefault,
        doc: "Run the Shelly collector, which polls shelly-bridge for wall-plug AC power.",
    },
    Key {
        name: "shelly.server_url",
        kind: Kind::Url,
        default: KeyDefault::Value(Lit::Text("http://localhost:8766")),
        null_ok: false,
        fix: Fix::SetDefault,
        doc: "shelly-bridge's HTTP API. Must start with `http://` or `https://`.",
    },
    Key {
        name: "shelly.device_id",
        kind: Kind::Text,
        default: KeyDefault::Unset("unset"),
        null_ok: true,
        fix: Fix::SetOrRemove("\"shellyplug-01\""),
        doc: "Ask `GET /metrics/{device_id}` instead of `GET /metrics` (the first plug).",
    },
    Key {
        name: "config_server",
        kind: Kind::Section,
        default: KeyDefault::Unset("unset"),
        null_ok: true,
        fix: Fix::Advice("indent its keys under `config_server:`"),
        doc: "The optional Config Server: the keys below. See \
              [Config Server](#config-server).",
    },
    Key {
        name: "config_server.url",
        kind: Kind::Url,
        default: KeyDefault::Unset("unset"),
        null_ok: true,
        fix: Fix::Set("http://config-server:8080"),
        doc: "Base URL of the Config Server. When unset: `CONFIG_SERVER_URL`. When both are \
              unset, no Config Server is used.",
    },
    Key {
        name: "config_server.timeout",
        kind: Kind::Timeout { max: 300.0 },
        default: KeyDefault::Fallback(Lit::Seconds(5.0)),
        null_ok: true,
        fix: Fix::SetDefault,
        doc: "Timeout of each Config Server request, from connect to the last byte. When unset: \
              `CONFIG_TIMEOUT`, else the default.",
    },
    Key {
        name: "config_server.token",
        kind: Kind::Secret,
        default: KeyDefault::Unset("unset"),
        null_ok: true,
        fix: Fix::SetOrRemove("\"a-long-random-secret\""),
        doc: "Bearer token sent to the Config Server as `Authorization: Bearer <token>` with \
              every fetch and push. When unset: `CONFIG_SERVER_TOKEN`; when both are unset, no \
              `Authorization` header is sent. One word of visible ASCII (no spaces). It is a \
              secret: never pushed to the Config Server, never shown by `GET /config`, never \
              logged, and kept from this file when the config comes from the Config Server. \
              Use `https://` for a server beyond this host, or the token crosses the network in \
              clear text.",
    },
    Key {
        name: "config_server.ca_file",
        kind: Kind::Path,
        default: KeyDefault::Unset("unset"),
        null_ok: true,
        fix: Fix::SetOrRemove("\"/etc/edge-metrics/config-server-ca.pem\""),
        doc: "PEM file with the certificate(s) of a CA that signed the Config Server's \
              certificate, trusted for `https://` in addition to the built-in Mozilla roots \
              (a private CA, a self-signed server). Read at start: a file that cannot be read \
              or holds no usable certificate stops the exporter (exit 64) with a message naming \
              it.",
    },
    Key {
        name: "metrics",
        kind: Kind::Metrics,
        default: KeyDefault::Unset("device defaults"),
        null_ok: true,
        fix: Fix::Advice(
            "letters, digits and _, not starting with a digit, e.g. jetson_ram_used_mb",
        ),
        doc: "Which metrics are exposed. Values must be the booleans `true` or `false`. YAML 1.2 \
              reads `yes`, `on` and `1` as text or numbers, so they are rejected. Names are \
              Prometheus metric names (letters, digits, `_`). Newly discovered metrics are added \
              here as `false`. An existing `true` or `false` is never overwritten.",
    },
    Key {
        name: "enabled_metrics",
        kind: Kind::LegacyList,
        default: KeyDefault::Unset("unset"),
        null_ok: true,
        fix: Fix::Advice("better: use `metrics:` with `name: true` lines"),
        doc: "The original exporter's list of enabled metrics. Still read: each name becomes \
              `name: true` in `metrics:`. Never written back. See \
              [the legacy list](#the-legacy-enabled_metrics-list).",
    },
];

// ---------------------------------------------------------------------------------------------
// Values taken from the table when the crate compiles
// ---------------------------------------------------------------------------------------------

/// Default `device_type`, as written in the file.
pub const DEFAULT_DEVICE_TYPE: &str = text_default("device_type");
/// `host_root` when neither the config nor `EDGE_METRICS_HOST_ROOT` sets one.
pub const DEFAULT_HOST_ROOT: &str = text_default("host_root");
/// Default `interval`, in seconds.
pub const DEFAULT_INTERVAL_SECS: f64 = seconds_default("interval");
/// Default `port` (Prometheus `/metrics`).
pub const DEFAULT_PORT: u16 = port_default("port");
/// Default `reload_port` (management API).
pub const DEFAULT_RELOAD_PORT: u16 = port_default("reload_port");
/// Default `bind_address`.
pub const DEFAULT_BIND_ADDRESS: &str = text_default("bind_address");
/// Default `reload_bind_address`.
pub const DEFAULT_RELOAD_BIND_ADDRESS: &str = text_default("reload_bind_address");
/// Default `max_connections`, the cap of each server.
pub const DEFAULT_MAX_CONNECTIONS: u32 = count_default("max_connections");
/// Smallest accepted `max_connections`.
pub const MIN_MAX_CONNECTIONS: u32 = count_range("max_connections").0;
/// Largest accepted `max_connections`.
pub const MAX_MAX_CONNECTIONS: u32 = count_range("max_connections").1;
/// Default `tegrastats.path`.
pub const DEFAULT_TEGRASTATS_PATH: &str = text_default("tegrastats.path");
/// Default `shelly.enabled`.
pub const DEFAULT_SHELLY_ENABLED: bool = bool_default("shelly.enabled");
/// Default `shelly.server_url`.
pub const DEFAULT_SHELLY_SERVER_URL: &str = text_default("shelly.server_url");
/// Config Server request timeout when neither the config nor the environment sets one.
pub const DEFAULT_CONFIG_TIMEOUT_SECS: f64 = seconds_default("config_server.timeout");
/// Smallest accepted `interval`, in seconds.
pub const MIN_INTERVAL_SECS: f64 = seconds_range("interval").0;
/// Largest accepted `interval`, in seconds.
pub const MAX_INTERVAL_SECS: f64 = seconds_range("interval").1;
/// Largest accepted Config Server timeout, in seconds.
pub const MAX_CONFIG_TIMEOUT_SECS: f64 = timeout_max("config_server.timeout");

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// The table's entry for `name`; used in constants, so a missing key fails the build.
const fn find(name: &str) -> &'static Key {
    let mut i = 0;
    while i < KEYS.len() {
        if same(KEYS[i].name, name) {
            return &KEYS[i];
        }
        i += 1;
    }
    panic!("the key table has no such key")
}

const fn default_lit(name: &str) -> Lit {
    match find(name).default {
        KeyDefault::Value(lit) | KeyDefault::Fallback(lit) => lit,
        KeyDefault::Unset(_) => panic!("the key table gives this key no default"),
    }
}

const fn text_default(name: &str) -> &'static str {
    match default_lit(name) {
        Lit::Text(s) => s,
        _ => panic!("the key table's default for this key is not text"),
    }
}

const fn port_default(name: &str) -> u16 {
    match default_lit(name) {
        Lit::Port(p) => p,
        _ => panic!("the key table's default for this key is not a port"),
    }
}

const fn count_default(name: &str) -> u32 {
    match default_lit(name) {
        Lit::Count(n) => n,
        _ => panic!("the key table's default for this key is not a count"),
    }
}

const fn seconds_default(name: &str) -> f64 {
    match default_lit(name) {
        Lit::Seconds(s) => s,
        _ => panic!("the key table's default for this key is not seconds"),
    }
}

const fn bool_default(name: &str) -> bool {
    match default_lit(name) {
        Lit::Bool(b) => b,
        _ => panic!("the key table's default for this key is not a boolean"),
    }
}

const fn seconds_range(name: &str) -> (f64, f64) {
    match find(name).kind {
        Kind::Seconds { min, max } => (min, max),
        _ => panic!("the key table does not give this key a range of seconds"),
    }
}

const fn count_range(name: &str) -> (u32, u32) {
    match find(name).kind {
        Kind::Count { min, max } => (min, max),
        _ => panic!("the key table does not give this key a range of whole numbers"),
    }
}

const fn timeout_max(name: &str) -> f64 {
    match find(name).kind {
        Kind::Timeout { max } => max,
        _ => panic!("the key table does not give this key a timeout"),
    }
}

// ---------------------------------------------------------------------------------------------
// Lookups
// ---------------------------------------------------------------------------------------------

/// The table's entry for the dotted `name`, if any.
pub fn get(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The top-level keys, in table order.
pub fn top_level() -> impl Iterator<Item = &'static Key> {
    KEYS.iter().filter(|k| k.section().is_none())
}

/// The keys of `section`, in table order.
pub fn in_section(section: &str) -> impl Iterator<Item = &'static Key> + '_ {
    KEYS.iter().filter(move |k| k.section() == Some(section))
}

// ---------------------------------------------------------------------------------------------
// Docs
// ---------------------------------------------------------------------------------------------

/// The line before the generated key list in `docs/CONFIG.md`.
pub const DOCS_BEGIN: &str = "<!-- keys:begin -->";
/// The line after the generated key list in `docs/CONFIG.md`.
pub const DOCS_END: &str = "<!-- keys:end -->";

impl Kind {
    /// The type column of the docs' key list.
    pub fn doc_type(&self) -> &'static str {
        match self {
            Kind::DeviceType | Kind::Text => "text",
            Kind::Secret => "text, secret",
            Kind::Seconds { .. } | Kind::Timeout { .. } => "number, seconds",
            Kind::Port | Kind::Count { .. } => "integer",
            Kind::IpAddr => "IP address",
            Kind::Path => "path",
            Kind::Url => "URL",
            Kind::Bool => "boolean",
            Kind::Section => "section",
            Kind::Metrics => "map of name → `true`/`false`",
            Kind::LegacyList => "list of names",
        }
    }

    /// What the docs add about the accepted values, if anything.
    fn doc_range(&self) -> Option<String> {
        match self {
            Kind::Seconds { min, max } => Some(format!("Accepted: `{min}` to `{max}`.")),
            Kind::Timeout { max } => Some(format!("Accepted: above `0`, at most `{max}`.")),
            Kind::Count { min, max } => Some(format!("Accepted: `{min}` to `{max}`.")),
            _ => None,
        }
    }
}

/// The key list of `docs/CONFIG.md`, the Markdown that stands between [`DOCS_BEGIN`] and
/// [`DOCS_END`]: one row per key of [`KEYS`].
pub fn docs_table() -> String {
    let mut out = String::from(
        "\n<!-- Generated from config/src/keys.rs. Edit the table there, then run \
         `UPDATE_DOCS=1 cargo test -p edge-metrics-config`. -->\n\n\
         | Key | Type | Default | Meaning |\n\
         |-----|------|---------|---------|\n",
    );
    for key in KEYS {
        let default = match key.default {
            KeyDefault::Value(lit) | KeyDefault::Fallback(lit) => format!("`{lit}`"),
            KeyDefault::Unset(text) => text.to_string(),
        };
        let mut meaning = key.doc.to_string();
        if let Some(range) = key.kind.doc_range() {
            meaning.push(' ');
            meaning.push_str(&range);
        }
        if key.null_ok && key.kind != Kind::Section {
            let short = key.short();
            meaning.push_str(&format!(
                " `{short}:` with nothing after it is the same as leaving it out."
            ));
        }
        out.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            key.name,
            key.kind.doc_type(),
            default,
            meaning.replace('|', "\\|"),
        ));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const DOCS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CONFIG.md");
    const UPDATE: &str = "UPDATE_DOCS=1 cargo test -p edge-metrics-config";

    #[test]
    fn names_are_unique_and_sections_come_first() {
        let mut seen = BTreeSet::new();
        for key in KEYS {
            assert!(seen.insert(key.name), "{} is in the table twice", key.name);
            if let Some(section) = key.section() {
                let parent = get(section).unwrap_or_else(|| panic!("{}: no section", key.name));
                assert_eq!(parent.kind, Kind::Section, "{}", key.name);
                assert!(
                    seen.contains(section),
                    "{} comes before {section}",
                    key.name
                );
            }
        }
    }

    #[test]
    fn defaults_fit_their_kinds_and_fixes() {
        for key in KEYS {
            if let Some(lit) = key.default_lit() {
                let fits = match (key.kind, lit) {
                    (Kind::DeviceType | Kind::IpAddr | Kind::Path | Kind::Url, Lit::Text(_)) => {
                        true
                    }
                    (Kind::Port, Lit::Port(_)) | (Kind::Bool, Lit::Bool(_)) => true,
                    (Kind::Seconds { min, max }, Lit::Seconds(s)) => (min..=max).contains(&s),
                    (Kind::Timeout { max }, Lit::Seconds(s)) => s > 0.0 && s <= max,
                    (Kind::Count { min, max }, Lit::Count(n)) => (min..=max).contains(&n),
                    _ => false,
                };
                assert!(
                    fits,
                    "{}: default {lit:?} does not fit {:?}",
                    key.name, key.kind
                );
            }
            if key.fix == Fix::SetDefault {
                assert!(
                    key.default_lit().is_some(),
                    "{}: fix needs a default",
                    key.name
                );
            }
            if matches!(key.default, KeyDefault::Unset(_)) {
                assert!(key.null_ok, "{}: an optional key accepts null", key.name);
            }
        }
    }

    #[test]
    fn fixes_read_as_messages_show_them() {
        let fix = |name| get(name).unwrap().fix_text();
        assert_eq!(fix("port"), "set port: 9102");
        assert_eq!(fix("interval"), "set interval: 1");
        assert_eq!(fix("config_server.timeout"), "set timeout: 5");
        assert_eq!(
            fix("hostname"),
            "set hostname: \"edge-01\", or remove the key"
        );
        assert_eq!(
            fix("config_server.url"),
            "set url: http://config-server:8080"
        );
        assert_eq!(
            fix("config_server.token"),
            "set token: \"a-long-random-secret\", or remove the key"
        );
        assert_eq!(
            fix("config_server.ca_file"),
            "set ca_file: \"/etc/edge-metrics/config-server-ca.pem\", or remove the key"
        );
        assert_eq!(MIN_INTERVAL_SECS.to_string(), "0.1");
        assert_eq!(MAX_CONFIG_TIMEOUT_SECS.to_string(), "300");
        assert_eq!(fix("max_connections"), "set max_connections: 256");
        assert_eq!(
            (
                MIN_MAX_CONNECTIONS,
                DEFAULT_MAX_CONNECTIONS,
                MAX_MAX_CONNECTIONS
            ),
            (1, 256, 65536)
        );
    }

    /// `docs/CONFIG.md` lists the keys of this table; `UPDATE_DOCS=1` rewrites the list.
    #[test]
    fn docs_key_list_matches_the_table() {
        let text = std::fs::read_to_string(DOCS_PATH).expect("docs/CONFIG.md is readable");
        let begin = text
            .find(DOCS_BEGIN)
            .map(|i| i + DOCS_BEGIN.len())
            .unwrap_or_else(|| panic!("docs/CONFIG.md has no {DOCS_BEGIN} line"));
        let end = text[begin..]
            .find(DOCS_END)
            .map(|i| begin + i)
            .unwrap_or_else(|| panic!("docs/CONFIG.md has no {DOCS_END} line after the begin"));
        let want = docs_table();
        let have = &text[begin..end];
        if have == want {
            return;
        }
        if std::env::var_os("UPDATE_DOCS").is_some() {
            let updated = format!("{}{want}{}", &text[..begin], &text[end..]);
            std::fs::write(DOCS_PATH, updated).expect("docs/CONFIG.md is writable");
            return;
        }
        let first = have
            .lines()
            .zip(want.lines())
            .position(|(h, w)| h != w)
            .unwrap_or(have.lines().count().min(want.lines().count()));
        panic!(
            "the key list in docs/CONFIG.md differs from config/src/keys.rs \
             (first at line {} of the list):\n  docs:  {}\n  table: {}\nRun `{UPDATE}` to \
             rewrite it.",
            first + 1,
            have.lines().nth(first).unwrap_or("(end)"),
            want.lines().nth(first).unwrap_or("(end)"),
        );
    }
}
