//! Parsing one tegrastats output line into a [`Line`], token by token.
//!
//! Tokens are classified by shape, never by position: the order of temperatures and rails is
//! per board and release, and on AGX Xavier `CPU`/`GPU` are both rail names (`CPU 466/466`) and
//! other fields (`CPU [..]`, `CPU@30C`). Field grammar and quirks are described in
//! `docs/METRICS.md`. The parser is hand-written (no regex) because it runs once per second per
//! device for the life of the exporter and the input is another program's output: it must be
//! cheap and must never panic, whatever bytes arrive.
//!
//! Outcomes per token:
//! - a recognised field with a well-formed value → the typed field of [`Line`];
//! - a recognised field whose value is malformed or truncated → [`Line::bad`], no value;
//! - the `NC` rail (an unconnected power-monitor channel printed twice) → ignored on purpose;
//! - anything else → [`Line::unknown`], verbatim.

use std::str::FromStr;

use super::line::{
    Core, Engine, EngineState, FieldError, Gpu, Iram, Lfb, Line, Load, Mts, Rail, Ram, Swap, Temp,
    Timestamp,
};

/// Why a whole line is not a tegrastats sample.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("empty line: tegrastats prints one sample per line, this one has no fields")]
    Empty,
    /// No `RAM` field, which every tegrastats sample has (right after the optional timestamp).
    #[error(
        "not a tegrastats sample: no `RAM` field, which every sample starts with \
         (check that the configured command is tegrastats): {found:?}"
    )]
    NotASample {
        /// The start of the line.
        found: String,
    },
}

/// At most this many characters of a failing text are kept in errors.
const EXCERPT_CHARS: usize = 60;
/// Numbers longer than this are refused: tegrastats prints 64-bit integers and short decimals.
const MAX_NUMBER_LEN: usize = 20;
/// At most this many space-separated tokens are joined while looking for a `CPU [` list's `]`.
const MAX_CPU_TOKENS: usize = 64;
/// Tokens kept on the stack before spilling to the heap (the longest corpus line has 52).
const STACK_TOKENS: usize = 160;
/// At most this many clocks in a `@[a,b,...]` list (Thor prints three).
const MAX_CLOCKS: usize = 8;

/// Engine families whose tokens are `<FAMILY>[index][_FREQ|_LOAD] <value>`.
/// `EMC` (memory controller) and `APE` (audio) are clocked the same way.
const ENGINE_FAMILIES: &[&str] = &[
    "EMC", "VIC", "APE", "NVENC", "NVDEC", "NVJPG", "NVDLA", "PVA", "OFA", "MSENC", "AVP",
];

/// Rails that are explicitly skipped: `NC` is an unconnected monitor channel, always 0 mW and
/// printed twice in the same AGX Orin JetPack 5 line.
const IGNORED_RAILS: &[&str] = &["NC"];

impl FromStr for Line {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Line, ParseError> {
        parse_line(s)
    }
}

/// Parses one line (a trailing `\r`/`\n` is ignored). See the module docs for the outcomes.
pub fn parse_line(raw: &str) -> Result<Line, ParseError> {
    let body = raw.trim_matches(|c: char| c == '\r' || c == '\n');
    // Tokens live on the stack: a real line has 20-60 of them, and one large heap buffer per
    // line costs more than the rest of the parse (the allocator consolidates on big requests).
    let mut stack = [""; STACK_TOKENS];
    let mut heap = Vec::new();
    let mut count = 0;
    let mut words = body.split_ascii_whitespace();
    for word in words.by_ref() {
        if count == STACK_TOKENS {
            heap.extend_from_slice(&stack);
            heap.push(word);
            break;
        }
        stack[count] = word;
        count += 1;
    }
    heap.extend(words);
    let tokens: &[&str] = if heap.is_empty() {
        &stack[..count]
    } else {
        &heap
    };
    if tokens.is_empty() {
        return Err(ParseError::Empty);
    }
    // Sized for the largest boards (14 temperatures or rails), so lists do not regrow.
    let mut p = Parser {
        line: Line {
            engines: Vec::with_capacity(12),
            temps: Vec::with_capacity(16),
            rails: Vec::with_capacity(8),
            ..Line::default()
        },
        saw_ram: false,
    };
    let mut i = 0;
    if let Some(ts) = timestamp(tokens) {
        p.line.timestamp = Some(ts);
        i = 2;
    }
    while i < tokens.len() {
        i += 1 + p.token(tokens[i], &tokens[i + 1..]);
    }
    if !p.saw_ram {
        return Err(ParseError::NotASample {
            found: excerpt(body),
        });
    }
    Ok(p.line)
}

struct Parser {
    line: Line,
    saw_ram: bool,
}

impl Parser {
    /// Handles `tok`; returns how many of the following tokens (`rest`) it consumed.
    fn token(&mut self, tok: &str, rest: &[&str]) -> usize {
        match tok {
            "RAM" => {
                self.saw_ram = true;
                return self.ram(rest);
            }
            "SWAP" => return self.swap(rest),
            "IRAM" => return self.iram(rest),
            "CPU" | "cpu" => {
                if let Some(used) = self.cpu(tok, rest) {
                    return used;
                }
                // `CPU 466/466` on AGX Xavier is a rail: fall through to the shape rules.
            }
            "MTS" => return self.mts(rest),
            "EDP" => return self.edp(rest),
            _ => {}
        }
        if tok.contains('@') {
            self.temperature(tok);
            return 0;
        }
        if is_rail_name(tok) && rest.first().is_some_and(|v| looks_like_rail_value(v)) {
            self.rail(tok, rest[0]);
            return 1;
        }
        match tok {
            "GR3D_FREQ" | "GR3D" => return self.gpu(tok, rest),
            "GR3D2_FREQ" => return self.gpu_gpc1(tok, rest),
            _ => {}
        }
        if let Some(name) = engine_name(tok) {
            return self.engine(tok, name, rest);
        }
        self.line.unknown.push(tok.to_owned());
        0
    }

    fn bad(&mut self, field: &'static str, found: &str) {
        self.line.bad.push(FieldError {
            field,
            found: excerpt(found),
        });
    }

    /// `RAM <used>/<total>MB (lfb <N>x<S><unit>)`.
    fn ram(&mut self, rest: &[&str]) -> usize {
        let Some(annexed) = with_annex(rest, "(lfb") else {
            self.bad("RAM", rest.first().copied().unwrap_or("RAM"));
            return 0;
        };
        let Some((used_mb, total_mb)) = pair_with_unit(annexed.value, "MB") else {
            self.bad("RAM", annexed.value);
            return annexed.used;
        };
        let lfb = match annexed.annex {
            Annex::Absent => None,
            Annex::Bad(found) => {
                self.bad("RAM lfb", found);
                None
            }
            Annex::Present(text) => {
                let lfb = lfb(text);
                if lfb.is_none() {
                    self.bad("RAM lfb", text);
                }
                lfb
            }
        };
        self.line.ram = Some(Ram {
            used_mb,
            total_mb,
            lfb,
        });
        annexed.used
    }

    /// `SWAP <used>/<total>MB (cached <c>MB)`.
    fn swap(&mut self, rest: &[&str]) -> usize {
        let Some(annexed) = with_annex(rest, "(cached") else {
            self.bad("SWAP", rest.first().copied().unwrap_or("SWAP"));
            return 0;
        };
        let Some((used_mb, total_mb)) = pair_with_unit(annexed.value, "MB") else {
            self.bad("SWAP", annexed.value);
            return annexed.used;
        };
        let cached_mb = match annexed.annex {
            Annex::Absent => None,
            Annex::Bad(found) => {
                self.bad("SWAP cached", found);
                None
            }
            Annex::Present(text) => {
                let mb = text.strip_suffix("MB").and_then(unsigned);
                if mb.is_none() {
                    self.bad("SWAP cached", text);
                }
                mb
            }
        };
        self.line.swap = Some(Swap {
            used_mb,
            total_mb,
            cached_mb,
        });
        annexed.used
    }

    /// `IRAM <used>/<total>kB(lfb <l>kB)`: no space before `(lfb`, lfb is one size.
    fn iram(&mut self, rest: &[&str]) -> usize {
        let Some(annexed) = with_annex(rest, "(lfb") else {
            self.bad("IRAM", rest.first().copied().unwrap_or("IRAM"));
            return 0;
        };
        let Some((used_kb, total_kb)) = pair_with_unit(annexed.value, "kB") else {
            self.bad("IRAM", annexed.value);
            return annexed.used;
        };
        let lfb_kb = match annexed.annex {
            Annex::Absent => None,
            Annex::Bad(found) => {
                self.bad("IRAM lfb", found);
                None
            }
            Annex::Present(text) => {
                let kb = text.strip_suffix("kB").and_then(unsigned);
                if kb.is_none() {
                    self.bad("IRAM lfb", text);
                }
                kb
            }
        };
        self.line.iram = Some(Iram {
            used_kb,
            total_kb,
            lfb_kb,
        });
        annexed.used
    }

    /// `CPU [<e>,<e>,...]` with entries `<load>%@<MHz>` or `off`; legacy
    /// `cpu [<load>%,...]@<MHz>`. Returns `None` when the next token is a rail value instead.
    fn cpu(&mut self, tok: &str, rest: &[&str]) -> Option<usize> {
        let Some(first) = rest.first() else {
            self.bad("CPU", tok);
            return Some(0);
        };
        if !first.starts_with('[') {
            if looks_like_rail_value(first) {
                return None;
            }
            self.bad("CPU", first);
            return Some(0);
        }
        // NVIDIA documents `CPU [X%,Y%, , ]@Z`: a list may span several tokens. Later pieces
        // hold only list characters, so a list cut before its `]` does not swallow the fields
        // after it (`GR3D_FREQ 0%@[510]` has a `]` of its own).
        let list_piece = |t: &&str| {
            t.bytes()
                .all(|c| c.is_ascii_digit() || b"%@,.of]".contains(&c))
        };
        let closing = rest
            .iter()
            .take(MAX_CPU_TOKENS)
            .enumerate()
            .take_while(|(k, t)| *k == 0 || list_piece(t))
            .find(|(_, t)| t.contains(']'));
        let Some((last, _)) = closing else {
            self.bad("CPU", first);
            return Some(1);
        };
        let joined;
        let text: &str = if last == 0 {
            first
        } else {
            joined = rest[..=last].join(" ");
            &joined
        };
        let used = Some(last + 1);
        // `text` starts with '[' and contains ']'.
        let Some((list, after)) = text[1..].split_once(']') else {
            self.bad("CPU", text);
            return used;
        };
        let shared_freq = match after {
            "" => None,
            _ => match after.strip_prefix('@').and_then(unsigned) {
                Some(f) => Some(f),
                None => {
                    self.bad("CPU", text);
                    return used;
                }
            },
        };
        let mut cores = Vec::with_capacity(16);
        for entry in list.split(',') {
            let core = cpu_entry(entry.trim(), shared_freq);
            if core == Core::Unreadable {
                self.bad("CPU core", entry);
            }
            cores.push(core);
        }
        self.line.cpu = Some(cores);
        used
    }

    /// `MTS fg X% bg Y%`.
    fn mts(&mut self, rest: &[&str]) -> usize {
        if let [fg_key, fg, bg_key, bg, ..] = rest {
            if *fg_key == "fg" && *bg_key == "bg" {
                if let (Some(fg_percent), Some(bg_percent)) = (percent(fg), percent(bg)) {
                    self.line.mts = Some(Mts {
                        fg_percent,
                        bg_percent,
                    });
                    return 4;
                }
            }
        }
        // Consume what still looks like part of the field, so it is not reported twice.
        let used = rest
            .iter()
            .take(4)
            .take_while(|t| **t == "fg" || **t == "bg" || t.ends_with('%'))
            .count();
        let found = if used == 0 {
            "MTS".to_owned()
        } else {
            rest[..used].join(" ")
        };
        self.bad("MTS", &found);
        used
    }

    /// Legacy `EDP limit N` (CPU clock cap, MHz).
    fn edp(&mut self, rest: &[&str]) -> usize {
        if let [key, value, ..] = rest {
            if *key == "limit" {
                if let Some(mhz) = unsigned(value) {
                    self.line.edp_limit_mhz = Some(mhz);
                    return 2;
                }
                self.bad("EDP limit", value);
                return 2;
            }
        }
        self.bad("EDP limit", rest.first().copied().unwrap_or("EDP"));
        usize::from(rest.first() == Some(&"limit"))
    }

    /// `<name>@<value>C`, or the claimed JetPack 7 `<name>@<a>C/<b>C` (the first value counts).
    fn temperature(&mut self, tok: &str) {
        let Some((name, value)) = tok.split_once('@') else {
            return;
        };
        // `C` is the shape; a value cut before it (`cpu@52.9`) is still a temperature, malformed.
        let cut = value.starts_with(|c: char| c.is_ascii_digit() || c == '-');
        if !is_sensor_name(name) || !(value.ends_with('C') || cut) {
            self.line.unknown.push(tok.to_owned());
            return;
        }
        let first = value.split('/').next().unwrap_or(value);
        match first.strip_suffix('C').and_then(signed) {
            Some(celsius) => self.line.temps.push(Temp {
                name: sanitize(name),
                celsius,
            }),
            None => self.bad("temperature", tok),
        }
    }

    /// `<NAME> <current>/<average>` with an optional `mW` on each (a third value is ignored).
    /// A value may be negative: Thor's `VDD_GPU` reads `-392mW` at idle, a real sensor
    /// reading that is exposed as read.
    fn rail(&mut self, name: &str, value: &str) {
        if IGNORED_RAILS.contains(&name) {
            return;
        }
        let mut parts = value.split('/');
        let current = parts.next().unwrap_or("");
        let average = parts.next().unwrap_or("");
        let with_unit = current.ends_with("mW");
        // Either both carry `mW` (JetPack 5+) or neither (JetPack 3/4); a mix is a cut token.
        let parsed = if with_unit {
            current
                .strip_suffix("mW")
                .zip(average.strip_suffix("mW"))
                .and_then(|(c, a)| signed(c).zip(signed(a)))
        } else {
            signed(current).zip(signed(average))
        };
        match parsed {
            Some((current_mw, average_mw)) => self.line.rails.push(Rail {
                name: name.to_ascii_lowercase(),
                current_mw,
                average_mw,
            }),
            None => self.bad("rail", &format!("{name} {value}")),
        }
    }

    /// `GR3D_FREQ X%`, `X%@Y`, `X%@[Y,Z]`, `@[Y,Y,Y]`; legacy `GR3D X%@Y`.
    fn gpu(&mut self, tok: &str, rest: &[&str]) -> usize {
        let Some(value) = rest.first().filter(|v| looks_like_engine_value(v)) else {
            self.bad("GR3D_FREQ", tok);
            return 0;
        };
        match load_clocks(value) {
            Some(Reading::Values { usage, clocks }) => {
                self.line.gpu = Some(Gpu {
                    usage_percent: usage,
                    freqs_mhz: clocks.as_slice().to_vec(),
                });
            }
            Some(Reading::Off) => self.line.gpu = Some(Gpu::default()),
            None => self.bad("GR3D_FREQ", value),
        }
        1
    }

    /// `GR3D2_FREQ X%@Y`: the second GPC on early JetPack 5 AGX Orin.
    fn gpu_gpc1(&mut self, tok: &str, rest: &[&str]) -> usize {
        let Some(value) = rest.first().filter(|v| looks_like_engine_value(v)) else {
            self.bad("GR3D2_FREQ", tok);
            return 0;
        };
        match load_clocks(value) {
            Some(Reading::Values { usage, clocks }) if clocks.len <= 1 => {
                self.line.gpu_gpc1 = Some(Load {
                    usage_percent: usage,
                    freq_mhz: clocks.as_slice().first().copied(),
                });
            }
            Some(Reading::Off) => self.line.gpu_gpc1 = Some(Load::default()),
            _ => self.bad("GR3D2_FREQ", value),
        }
        1
    }

    /// `<ENGINE> off`, `<ENGINE> <MHz>`, `<ENGINE> X%@Y`, `<ENGINE>_FREQ @Y`, `<ENGINE>_LOAD X%`.
    fn engine(&mut self, tok: &str, name: String, rest: &[&str]) -> usize {
        let Some(value) = rest.first().filter(|v| looks_like_engine_value(v)) else {
            self.bad("engine", tok);
            return 0;
        };
        let is_load = tok.ends_with("_LOAD");
        let state = match load_clocks(value) {
            Some(Reading::Off) => Some(EngineState::Off),
            Some(Reading::Values { usage, clocks }) if clocks.len <= 1 && !clocks.bracketed => {
                let clock = clocks.as_slice().first().copied();
                // A bare number is a clock (`NVENC 716`), except under a `_LOAD` name.
                let load = if is_load && usage.is_none() {
                    Load {
                        usage_percent: clock,
                        freq_mhz: None,
                    }
                } else {
                    Load {
                        usage_percent: usage,
                        freq_mhz: clock,
                    }
                };
                Some(EngineState::On(load))
            }
            _ => None,
        };
        match state {
            Some(state) => self.line.engines.push(Engine { name, state }),
            None => self.bad("engine", &format!("{tok} {value}")),
        }
        1
    }
}

/// The optional `MM-DD-YYYY HH:MM:SS` prefix.
fn timestamp(tokens: &[&str]) -> Option<Timestamp> {
    let [date, time, ..] = tokens else {
        return None;
    };
    let d = date.as_bytes();
    let t = time.as_bytes();
    let digits = |b: &[u8], at: &[usize]| at.iter().all(|&i| b[i].is_ascii_digit());
    if d.len() != 10 || d[2] != b'-' || d[5] != b'-' || !digits(d, &[0, 1, 3, 4, 6, 7, 8, 9]) {
        return None;
    }
    if t.len() != 8 || t[2] != b':' || t[5] != b':' || !digits(t, &[0, 1, 3, 4, 6, 7]) {
        return None;
    }
    let two = |b: &[u8], i: usize| (b[i] - b'0') * 10 + (b[i + 1] - b'0');
    let year = d[6..]
        .iter()
        .fold(0u16, |acc, c| acc * 10 + u16::from(c - b'0'));
    Some(Timestamp {
        month: two(d, 0),
        day: two(d, 3),
        year,
        hour: two(t, 0),
        minute: two(t, 3),
        second: two(t, 6),
    })
}

/// One `CPU [..]` entry.
fn cpu_entry(entry: &str, shared_freq: Option<f64>) -> Core {
    if entry == "off" {
        return Core::Offline;
    }
    let (load, freq) = match entry.split_once('@') {
        Some((load, freq)) => match unsigned(freq) {
            Some(f) => (load, Some(f)),
            None => return Core::Unreadable,
        },
        None => (entry, shared_freq),
    };
    match percent(load) {
        Some(usage) => Core::Online {
            usage_percent: Some(usage),
            freq_mhz: freq,
        },
        None => Core::Unreadable,
    }
}

/// `lfb <N>x<S>MB` or `<N>x<S>kB` (the `lfb ` already removed): blocks and block size in MB.
fn lfb(text: &str) -> Option<Lfb> {
    let (blocks, size) = text.split_once('x')?;
    let block_mb = if let Some(mb) = size.strip_suffix("MB") {
        unsigned(mb)?
    } else {
        unsigned(size.strip_suffix("kB")?)? / 1024.0
    };
    Some(Lfb {
        blocks: unsigned(blocks)?,
        block_mb,
    })
}

/// A value token and its parenthesised annex (`(lfb 6x1MB)`, `(cached 3MB)`).
struct Annexed<'a> {
    value: &'a str,
    annex: Annex<'a>,
    /// Tokens consumed after the keyword.
    used: usize,
}

enum Annex<'a> {
    /// The field printed no annex.
    Absent,
    /// `(key` was printed but the value after it is missing or not closed by `)`: the text.
    Bad(&'a str),
    /// The annex value, `)` removed.
    Present(&'a str),
}

/// Splits `value (key annex)` in both spacings: `a/bMB (lfb NxS)` and `a/bkB(lfb S)`.
/// `None` when there is no value token at all.
fn with_annex<'a>(rest: &[&'a str], key: &'a str) -> Option<Annexed<'a>> {
    let first = *rest.first().filter(|t| t.contains('/'))?;
    let (value, annex_at) = match first.strip_suffix(key) {
        Some(value) => (value, 1),
        None if rest.get(1) == Some(&key) => (first, 2),
        None => {
            return Some(Annexed {
                value: first,
                annex: Annex::Absent,
                used: 1,
            })
        }
    };
    // The annex value is consumed even when unclosed, so a cut `(lfb 6x1` is one bad token.
    Some(match rest.get(annex_at) {
        Some(text) => Annexed {
            value,
            annex: text
                .strip_suffix(')')
                .map_or(Annex::Bad(text), Annex::Present),
            used: annex_at + 1,
        },
        None => Annexed {
            value,
            annex: Annex::Bad(key),
            used: annex_at,
        },
    })
}

/// `<a>/<b><unit>` → (a, b); the unit is required (a cut token usually loses it).
fn pair_with_unit(text: &str, unit: &str) -> Option<(f64, f64)> {
    let (a, b) = text.strip_suffix(unit)?.split_once('/')?;
    unsigned(a).zip(unsigned(b))
}

/// What a load/clock value token said.
enum Reading {
    Off,
    Values { usage: Option<f64>, clocks: Clocks },
}

/// Up to [`MAX_CLOCKS`] clocks without allocating.
#[derive(Default)]
struct Clocks {
    values: [f64; MAX_CLOCKS],
    len: usize,
    bracketed: bool,
}

impl Clocks {
    fn as_slice(&self) -> &[f64] {
        &self.values[..self.len]
    }
}

/// `off`, `Y`, `X%`, `X%@Y`, `X%@[Y,Z,..]`, `@Y`, `@[Y,..]`.
fn load_clocks(text: &str) -> Option<Reading> {
    if text == "off" {
        return Some(Reading::Off);
    }
    let mut clocks = Clocks::default();
    let (load, clock) = match text.split_once('@') {
        Some((load, clock)) => (load, Some(clock)),
        None if text.ends_with('%') => (text, None),
        None => ("", Some(text)),
    };
    let usage = match load {
        "" => None,
        _ => Some(percent(load)?),
    };
    if let Some(clock) = clock {
        if let Some(list) = clock.strip_prefix('[') {
            let list = list.strip_suffix(']')?;
            clocks.bracketed = true;
            for part in list.split(',') {
                let slot = clocks.values.get_mut(clocks.len)?;
                *slot = unsigned(part)?;
                clocks.len += 1;
            }
        } else {
            clocks.values[0] = unsigned(clock)?;
            clocks.len = 1;
        }
    }
    if usage.is_none() && clocks.len == 0 {
        return None;
    }
    Some(Reading::Values { usage, clocks })
}

/// `NVENC`, `NVENC0_FREQ`, `NVDLA1_LOAD`, `VIC_FREQ`, `EMC`, ... → `nvenc`, `nvenc0`, `nvdla1`.
fn engine_name(tok: &str) -> Option<String> {
    let stem = tok
        .strip_suffix("_FREQ")
        .or_else(|| tok.strip_suffix("_LOAD"))
        .unwrap_or(tok);
    let family = ENGINE_FAMILIES.iter().find(|f| stem.starts_with(**f))?;
    let index = &stem[family.len()..];
    if index.len() > 2 || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(stem.to_ascii_lowercase())
}

/// An upper-case identifier such as `VDD_GPU_SOC`, `POM_5V_IN`, `GPU`, `SYS5V`.
fn is_rail_name(tok: &str) -> bool {
    let b = tok.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_uppercase()
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

/// Starts like `[-]<digits>[mW]/`: the value of a rail, never of another field.
fn looks_like_rail_value(tok: &str) -> bool {
    let digits = tok.strip_prefix('-').unwrap_or(tok);
    digits.as_bytes().first().is_some_and(u8::is_ascii_digit) && tok.contains('/')
}

/// Could be an engine value (`off`, `716`, `7%`, `0%@[305,305]`, `@0`), so it is consumed even
/// when malformed; a following field keyword or temperature is not.
fn looks_like_engine_value(tok: &&str) -> bool {
    *tok == "off"
        || tok
            .as_bytes()
            .first()
            .is_some_and(|c| c.is_ascii_digit() || *c == b'@')
}

/// A thermal-zone name: letters, digits, `_`, `-`, `.`.
fn is_sensor_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.')
}

/// Lower case, with `-` and `.` turned into `_` so the name fits a metric name.
fn sanitize(name: &str) -> String {
    name.bytes()
        .map(|c| match c {
            b'-' | b'.' => '_',
            c => char::from(c.to_ascii_lowercase()),
        })
        .collect()
}

/// `X%` → X.
fn percent(text: &str) -> Option<f64> {
    unsigned(text.strip_suffix('%')?)
}

/// A non-negative decimal: digits with at most one inner `.`; no sign, exponent, `inf`, `nan`.
fn unsigned(text: &str) -> Option<f64> {
    let b = text.as_bytes();
    if b.is_empty() || b.len() > MAX_NUMBER_LEN {
        return None;
    }
    let mut dot = false;
    for (i, c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' => {}
            b'.' if !dot && i > 0 && i + 1 < b.len() => dot = true,
            _ => return None,
        }
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// [`unsigned`] with an optional leading `-` (temperatures in the cold).
fn signed(text: &str) -> Option<f64> {
    match text.strip_prefix('-') {
        Some(abs) => unsigned(abs).map(|v| -v),
        None => unsigned(text),
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(EXCERPT_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Line {
        s.parse().unwrap()
    }

    use super::testing::{NANO, XAVIER_NX};

    fn clean(line: &Line) {
        assert!(line.unknown.is_empty(), "unknown: {:?}", line.unknown);
        assert!(line.bad.is_empty(), "bad: {:?}", line.bad);
    }

    #[test]
    fn spec_xavier_example_parses_every_field() {
        let line = parse(XAVIER_NX);
        clean(&line);
        assert_eq!(line.timestamp, None);
        assert_eq!(
            line.ram,
            Some(Ram {
                used_mb: 2690.0,
                total_mb: 6854.0,
                lfb: Some(Lfb {
                    blocks: 6.0,
                    block_mb: 1.0
                })
            })
        );
        assert_eq!(
            line.swap,
            Some(Swap {
                used_mb: 479.0,
                total_mb: 3427.0,
                cached_mb: Some(3.0)
            })
        );
        let cpu = line.cpu.as_ref().unwrap();
        assert_eq!(cpu.len(), 6);
        assert_eq!(
            cpu[0],
            Core::Online {
                usage_percent: Some(3.0),
                freq_mhz: Some(1904.0)
            }
        );
        assert_eq!(cpu[4], Core::Offline);
        assert_eq!(
            line.gpu,
            Some(Gpu {
                usage_percent: Some(0.0),
                freqs_mhz: vec![510.0]
            })
        );
        assert_eq!(
            line.engine("vic"),
            Some(&EngineState::On(Load {
                usage_percent: None,
                freq_mhz: Some(601.0)
            }))
        );
        assert_eq!(
            line.engine("emc"),
            Some(&EngineState::On(Load {
                usage_percent: Some(0.0),
                freq_mhz: Some(1600.0)
            }))
        );
        let temps: Vec<_> = line
            .temps
            .iter()
            .map(|t| (t.name.as_str(), t.celsius))
            .collect();
        assert_eq!(
            temps,
            [
                ("aux", 39.0),
                ("cpu", 39.5),
                ("ao", 37.5),
                ("gpu", 37.5),
                ("pmic", 50.0)
            ]
        );
        assert_eq!(
            line.rails[0],
            Rail {
                name: "vdd_in".into(),
                current_mw: 5079.0,
                average_mw: 5079.0
            }
        );
        assert_eq!(line.rails.len(), 3);
    }

    #[test]
    fn spec_nano_example_has_iram_and_unitless_rails() {
        let line = parse(NANO);
        clean(&line);
        assert_eq!(
            line.iram,
            Some(Iram {
                used_kb: 0.0,
                total_kb: 252.0,
                lfb_kb: Some(252.0)
            })
        );
        assert_eq!(
            line.gpu,
            Some(Gpu {
                usage_percent: Some(0.0),
                freqs_mhz: vec![76.0]
            })
        );
        assert_eq!(
            line.rails[0],
            Rail {
                name: "pom_5v_in".into(),
                current_mw: 2003.0,
                average_mw: 2003.0
            }
        );
        assert_eq!(line.temps.last().unwrap().name, "thermal");
    }

    #[test]
    fn issue_example_rail_current_and_average() {
        let line = parse("RAM 1/2MB VDD_IN 5079mW/4000mW");
        clean(&line);
        assert_eq!(line.rails[0].current_mw, 5079.0);
        assert_eq!(line.rails[0].average_mw, 4000.0);
    }

    #[test]
    fn issue_example_ram_with_lfb() {
        let line = parse("RAM 2690/6854MB (lfb 6x1MB)");
        clean(&line);
        let ram = line.ram.unwrap();
        assert_eq!((ram.used_mb, ram.total_mb), (2690.0, 6854.0));
        assert_eq!(
            ram.lfb,
            Some(Lfb {
                blocks: 6.0,
                block_mb: 1.0
            })
        );
    }

    #[test]
    fn issue_example_cpu_with_offline_core() {
        let line = parse("RAM 1/2MB CPU [3%@1904,off]");
        clean(&line);
        assert_eq!(
            line.cpu.unwrap(),
            [
                Core::Online {
                    usage_percent: Some(3.0),
                    freq_mhz: Some(1904.0)
                },
                Core::Offline
            ]
        );
    }

    #[test]
    fn timestamp_is_recognised_and_not_a_field() {
        let line = parse("05-02-2024 19:51:57 RAM 2886/30991MB (lfb 6284x4MB)");
        clean(&line);
        assert_eq!(
            line.timestamp,
            Some(Timestamp {
                month: 5,
                day: 2,
                year: 2024,
                hour: 19,
                minute: 51,
                second: 57
            })
        );
        // A timestamp-like pair anywhere else is unknown, not skipped.
        let line = parse("RAM 1/2MB 05-02-2024 19:51:57");
        assert_eq!(line.unknown, ["05-02-2024", "19:51:57"]);
    }

    #[test]
    fn lfb_in_kilobytes_is_converted_to_megabytes() {
        let line = parse("RAM 5408/6834MB (lfb 2x128kB)");
        assert_eq!(line.ram.unwrap().lfb.unwrap().block_mb, 0.125);
        let line = parse("RAM 4722/7844MB (lfb 1x512kB)");
        assert_eq!(line.ram.unwrap().lfb.unwrap().block_mb, 0.5);
    }

    #[test]
    fn gr3d_shapes() {
        let gpu = |s: &str| {
            let line = parse(&format!("RAM 1/2MB {s}"));
            clean(&line);
            line.gpu.unwrap()
        };
        let g = gpu("GR3D_FREQ 0%@[611,0]");
        assert_eq!(
            (g.usage_percent, g.freqs_mhz),
            (Some(0.0), vec![611.0, 0.0])
        );
        let g = gpu("GR3D_FREQ 0%@[510]");
        assert_eq!((g.usage_percent, g.freqs_mhz), (Some(0.0), vec![510.0]));
        let g = gpu("GR3D_FREQ 0%@76");
        assert_eq!((g.usage_percent, g.freqs_mhz), (Some(0.0), vec![76.0]));
        let g = gpu("GR3D_FREQ 42%");
        assert_eq!((g.usage_percent, g.freqs_mhz), (Some(42.0), vec![]));
        let g = gpu("GR3D_FREQ @[0,0,0]");
        assert_eq!((g.usage_percent, g.freqs_mhz), (None, vec![0.0, 0.0, 0.0]));
        let g = gpu("GR3D 3%@998");
        assert_eq!((g.usage_percent, g.freqs_mhz), (Some(3.0), vec![998.0]));
        let line = parse("RAM 1/2MB GR3D_FREQ 73%@1274 GR3D2_FREQ 99%@1274");
        clean(&line);
        assert_eq!(
            line.gpu_gpc1,
            Some(Load {
                usage_percent: Some(99.0),
                freq_mhz: Some(1274.0)
            })
        );
    }

    #[test]
    fn rail_names_collide_with_cpu_and_gpu_fields() {
        let line = parse(
            "RAM 1/2MB CPU [1%@1160,off] GR3D_FREQ 0%@114 GPU@30C CPU@30C GPU 466/466 \
             CPU 216/216 SYS5V 1854/1854",
        );
        clean(&line);
        assert_eq!(line.cpu.as_ref().unwrap().len(), 2);
        let rails: Vec<_> = line.rails.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(rails, ["gpu", "cpu", "sys5v"]);
        assert_eq!(line.temps.len(), 2);
    }

    #[test]
    fn nc_rails_are_skipped_and_three_value_rails_use_the_first_two() {
        let line = parse("RAM 1/2MB NC 0mW/0mW VDD_GPU_SOC 5139mW/5000mW/4000mW NC 0mW/0mW");
        clean(&line);
        assert_eq!(
            line.rails,
            [Rail {
                name: "vdd_gpu_soc".into(),
                current_mw: 5139.0,
                average_mw: 5000.0
            }]
        );
    }

    #[test]
    fn temperatures_keep_sentinels_and_negatives_and_take_the_first_of_two() {
        let line = parse("RAM 1/2MB CV0@-256C tj@-12.5C cpu@52.968C/52.968C Tboard@32C");
        clean(&line);
        let temps: Vec<_> = line
            .temps
            .iter()
            .map(|t| (t.name.as_str(), t.celsius))
            .collect();
        assert_eq!(
            temps,
            [
                ("cv0", -256.0),
                ("tj", -12.5),
                ("cpu", 52.968),
                ("tboard", 32.0)
            ]
        );
    }

    #[test]
    fn engines_off_clock_load_and_indexed() {
        let line = parse(
            "RAM 1/2MB NVENC off VIC 36%@115 NVJPG1 729 NVENC0_FREQ @0 NVENC_LOAD 7% \
             PVA0_FREQ off EMC_FREQ @3199 APE 25 MSENC 192 AVP 1%@115 EMC 1%@408",
        );
        clean(&line);
        let on = |mhz: Option<f64>, pct: Option<f64>| {
            EngineState::On(Load {
                usage_percent: pct,
                freq_mhz: mhz,
            })
        };
        let got: Vec<_> = line
            .engines
            .iter()
            .map(|e| (e.name.as_str(), e.state.clone()))
            .collect();
        assert_eq!(
            got,
            [
                ("nvenc", EngineState::Off),
                ("vic", on(Some(115.0), Some(36.0))),
                ("nvjpg1", on(Some(729.0), None)),
                ("nvenc0", on(Some(0.0), None)),
                ("nvenc", on(None, Some(7.0))),
                ("pva0", EngineState::Off),
                ("emc", on(Some(3199.0), None)),
                ("ape", on(Some(25.0), None)),
                ("msenc", on(Some(192.0), None)),
                ("avp", on(Some(115.0), Some(1.0))),
                ("emc", on(Some(408.0), Some(1.0))),
            ]
        );
    }

    #[test]
    fn multi_word_fields() {
        let line = parse("RAM 1/2MB MTS fg 1% bg 8% EDP limit 1734 APE 25");
        clean(&line);
        assert_eq!(
            line.mts,
            Some(Mts {
                fg_percent: 1.0,
                bg_percent: 8.0
            })
        );
        assert_eq!(line.edp_limit_mhz, Some(1734.0));
        let line = parse("RAM 1/2MB MTS fg x% bg 8% APE 25");
        assert_eq!(line.bad.len(), 1);
        assert!(line.unknown.is_empty(), "{:?}", line.unknown);
    }

    #[test]
    fn legacy_cpu_list_with_one_shared_clock() {
        let line = parse("RAM 1/2MB cpu [17%,13%,off,5%]@408");
        clean(&line);
        let cpu = line.cpu.unwrap();
        assert_eq!(
            cpu[1],
            Core::Online {
                usage_percent: Some(13.0),
                freq_mhz: Some(408.0)
            }
        );
        assert_eq!(cpu[2], Core::Offline);
    }

    #[test]
    fn offline_cores_keep_their_slot_anywhere_in_the_list() {
        let line = parse("RAM 1/2MB CPU [3%@345,off,off,0%@345,1%@345,1%@345]");
        clean(&line);
        let cpu = line.cpu.unwrap();
        assert_eq!(
            (cpu.len(), &cpu[1], &cpu[2]),
            (6, &Core::Offline, &Core::Offline)
        );
        assert_eq!(
            cpu[3],
            Core::Online {
                usage_percent: Some(0.0),
                freq_mhz: Some(345.0)
            }
        );
    }

    #[test]
    fn cpu_list_split_by_spaces_is_joined() {
        let line = parse("RAM 1/2MB CPU [1%, 2%, off]@100 APE 25");
        clean(&line);
        assert_eq!(line.cpu.unwrap().len(), 3);
    }

    #[test]
    fn unknown_tokens_are_kept_verbatim() {
        let line = parse("RAM 1/2MB FOO_FREQ 5 bar NEWENGINE0 off");
        assert_eq!(line.unknown, ["FOO_FREQ", "5", "bar", "NEWENGINE0", "off"]);
        assert!(line.bad.is_empty());
    }

    #[test]
    fn lines_longer_than_the_token_stack_are_read_completely() {
        let filler = "NVENC off ".repeat(STACK_TOKENS);
        let line = parse(&format!("RAM 1/2MB {filler}cpu@41C VDD_IN 5/6"));
        clean(&line);
        assert_eq!(line.engines.len(), STACK_TOKENS);
        assert_eq!(line.temps[0].celsius, 41.0);
        assert_eq!(line.rails[0].average_mw, 6.0);
    }

    #[test]
    fn line_endings_are_ignored() {
        let crlf = parse("RAM 1/2MB APE 25\r\n");
        clean(&crlf);
        assert_eq!(crlf, parse("RAM 1/2MB APE 25"));
    }

    #[test]
    fn not_a_sample() {
        assert_eq!("".parse::<Line>(), Err(ParseError::Empty));
        assert_eq!(" \r\n".parse::<Line>(), Err(ParseError::Empty));
        let err = "czw, 2 maj 2024, 17:51:57 UTC".parse::<Line>().unwrap_err();
        assert!(matches!(err, ParseError::NotASample { .. }));
        let err = "Tue Jan 26 18:22:31 UTC 2021".parse::<Line>().unwrap_err();
        assert!(matches!(err, ParseError::NotASample { .. }));
        assert!(err.to_string().contains("no `RAM` field"), "{err}");
        // A line cut at the front (a partial read) is not a sample either.
        assert!("DD_IN 5079mW/5079mW".parse::<Line>().is_err());
    }

    #[test]
    fn malformed_fields_are_bad_tokens_not_values() {
        let line = parse("RAM /MB CPU [");
        assert_eq!(line.ram, None);
        assert_eq!(line.cpu, None);
        assert_eq!(line.bad.len(), 2, "{:?}", line.bad);
        assert_eq!(line.bad[0].field, "RAM");
        assert!(line.unknown.is_empty(), "{:?}", line.unknown);

        // Truncated tokens: the unit or the closing parenthesis is missing.
        let line = parse("RAM 2690/68");
        assert_eq!((line.ram, line.bad.len()), (None, 1));
        let line = parse("RAM 2690/6854MB (lfb 6x1");
        assert_eq!(line.ram.as_ref().unwrap().lfb, None);
        assert_eq!(line.bad.len(), 1);
        assert!(line.unknown.is_empty(), "{:?}", line.unknown);
        let line = parse("RAM 2690/6854MB (lfb");
        assert_eq!(line.ram.as_ref().unwrap().used_mb, 2690.0);
        assert_eq!((line.bad.len(), line.unknown.len()), (1, 0));
        let line = parse("RAM 1/2MB VDD_IN 5079mW/50");
        assert_eq!((line.rails.len(), line.bad.len()), (0, 1));
        let line = parse("RAM 1/2MB GR3D_FREQ 0%@[611,");
        assert_eq!((line.gpu, line.bad.len()), (None, 1));
        let line = parse("RAM 1/2MB APE");
        assert_eq!(line.bad.len(), 1);
        let line = parse("RAM 1/2MB CPU [3%@1904,off EMC_FREQ 0%@1600 GR3D_FREQ 0%@[510]");
        assert_eq!((&line.cpu, line.bad.len()), (&None, 1));
        assert!(line.engine("emc").is_some() && line.gpu.is_some());
        assert!(line.unknown.is_empty(), "{:?}", line.unknown);
        let line = parse("RAM 1/2MB CPU [3%@1904,x,off]");
        assert_eq!(line.cpu.unwrap()[1], Core::Unreadable);
        assert_eq!(line.bad.len(), 1);
        let line = parse("RAM 1/2MB cpu@C GPU@--5C tj@52.9");
        assert_eq!((line.temps.len(), line.bad.len()), (0, 3));
        assert!(line.unknown.is_empty(), "{:?}", line.unknown);
    }

    #[test]
    fn huge_and_odd_numbers_are_refused() {
        let line = parse(&format!("RAM {}/2MB", "9".repeat(400)));
        assert_eq!((line.ram, line.bad.len()), (None, 1));
        for odd in ["1e9", "inf", "NaN", "+5", "1.", ".5", "1.2.3", "0x10"] {
            let line = parse(&format!("RAM {odd}/2MB"));
            assert_eq!(line.ram, None, "{odd}");
        }
        assert_eq!(
            unsigned("18446744073709551615"),
            Some(18446744073709551615.0)
        );
    }

    #[test]
    fn junk_never_panics() {
        for junk in [
            "RAM",
            "RAM (lfb",
            "RAM 1/2MB (lfb",
            "RAM 1/2MB (lfb )",
            "RAM 1/2MB IRAM 0/252kB(lfb",
            "RAM 1/2MB SWAP",
            "RAM 1/2MB SWAP 1/2MB (cached",
            "RAM 1/2MB CPU",
            "RAM 1/2MB CPU ]",
            "RAM 1/2MB CPU []",
            "RAM 1/2MB CPU [,,,]@",
            "RAM 1/2MB CPU [@@]",
            "RAM 1/2MB GR3D_FREQ @[]",
            "RAM 1/2MB GR3D_FREQ @[1,2,3,4,5,6,7,8,9]",
            "RAM 1/2MB GR3D2_FREQ @[1,2]",
            "RAM 1/2MB MTS",
            "RAM 1/2MB EDP",
            "RAM 1/2MB EDP limit",
            "RAM 1/2MB @ @@ @C é@5C ÿ",
            "RAM 1/2MB \u{0}\u{1}\u{7f} \u{fffd}\u{fffd} 日本@1C",
            "12-34-5678 99:99:99 RAM 1/2MB",
            "12-34-5678",
        ] {
            let _ = junk.parse::<Line>();
        }
    }
}

/// Test inputs shared with the layers above: the corpus lines and a fixed-seed mutator.
#[cfg(test)]
pub(crate) mod testing {
    /// The spec's Xavier NX example line.
    pub(crate) const XAVIER_NX: &str = "RAM 2690/6854MB (lfb 6x1MB) SWAP 479/3427MB (cached 3MB) \
        CPU [3%@1904,7%@1906,1%@1905,0%@1907,off,off] EMC_FREQ 0%@1600 GR3D_FREQ 0%@[510] \
        VIC_FREQ 601 APE 150 AUX@39C CPU@39.5C AO@37.5C GPU@37.5C PMIC@50C \
        VDD_IN 5079mW/5079mW VDD_CPU_GPU_CV 696mW/696mW VDD_SOC 1104mW/1104mW";

    /// The spec's Nano example line.
    pub(crate) const NANO: &str = "RAM 1409/3964MB (lfb 28x4MB) SWAP 0/1982MB (cached 0MB) \
        IRAM 0/252kB(lfb 252kB) CPU [22%@518,67%@518,off,off] EMC_FREQ 0%@1600 \
        GR3D_FREQ 0%@76 APE 25 PLL@28.5C CPU@32C PMIC@50C GPU@30.5C AO@39.5C thermal@31.25C \
        POM_5V_IN 2003/2003 POM_5V_GPU 0/0 POM_5V_CPU 320/320";

    /// xorshift64*: a fixed-seed generator, so a failure reproduces exactly.
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        pub(crate) fn below(&mut self, n: usize) -> usize {
            usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
        }
    }

    pub(crate) fn corpus_lines() -> Vec<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/tegrastats");
        let mut lines = Vec::new();
        for entry in std::fs::read_dir(&dir).expect("corpus directory testdata/tegrastats") {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap();
                lines.extend(text.lines().map(str::to_owned));
            }
        }
        assert!(lines.len() >= 93, "corpus has {} lines", lines.len());
        lines
    }

    /// Mutates a line: cut, delete, insert odd characters, repeat or swap tokens, blow up numbers.
    pub(crate) fn mutate(rng: &mut Rng, line: &str) -> String {
        const POOL: &[&str] = &[
            "0",
            "9",
            "%",
            "@",
            "[",
            "]",
            ",",
            "/",
            "(",
            ")",
            "x",
            "C",
            "-",
            ".",
            " ",
            "mW",
            "MB",
            "kB",
            "off",
            "\u{e9}",
            "\u{0}",
            "\u{65e5}",
            "\r",
            "\t",
            "RAM",
            "CPU",
            "[",
            "@[",
            "99999999999999999999999",
            "1e308",
            "-256",
            "NaN",
            "inf",
        ];
        let mut chars: Vec<char> = line.chars().collect();
        for _ in 0..=rng.below(4) {
            let len = chars.len();
            match rng.below(6) {
                0 => chars.truncate(rng.below(len + 1)),
                1 if len > 0 => {
                    let at = rng.below(len);
                    let n = 1 + rng.below(8);
                    chars.drain(at..(at + n).min(len));
                }
                2 => {
                    let at = rng.below(len + 1);
                    let piece = POOL[rng.below(POOL.len())];
                    chars.splice(at..at, piece.chars());
                }
                3 | 4 => {
                    let text: String = chars.iter().collect();
                    let mut tokens: Vec<&str> = text.split(' ').collect();
                    let (a, b) = (rng.below(tokens.len()), rng.below(tokens.len()));
                    if rng.below(2) == 0 {
                        tokens.swap(a, b);
                    } else {
                        let t = tokens[a];
                        tokens.insert(b, t);
                    }
                    chars = tokens.join(" ").chars().collect();
                }
                _ => {
                    let digit = chars.iter().position(|c| c.is_ascii_digit());
                    if let Some(at) = digit {
                        chars.splice(at..at, "123456789012345678901234567890".chars());
                    }
                }
            }
        }
        chars.into_iter().collect()
    }
}
