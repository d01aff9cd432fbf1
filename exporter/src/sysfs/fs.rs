//! File access under a host root, and the error accounting every reader shares.
//!
//! - A path that does not exist is `None` without a word: boards differ in what they have, and
//!   the caller decides whether to say so (once, at INFO).
//! - A file that exists but cannot be read (permissions, I/O) or whose text is not what the
//!   kernel documents is `None` too, and counts in [`read_errors`] with a DEBUG line naming the
//!   path and the reason. A reader never panics on a file's content.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use tracing::debug;

/// Files that existed but could not be read or parsed, since the process started.
static READ_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Longest file text read after the first read; procfs tables are a few kB.
const MAX_TEXT: u64 = 256 * 1024;
/// The first read's size: one page, the most a sysfs attribute holds.
const FIRST_READ: usize = 4096;

/// How many files could not be read or parsed since the process started
/// (`edge_metrics_exporter_sysfs_read_errors_total`).
pub fn read_errors() -> u64 {
    READ_ERRORS.load(Ordering::Relaxed)
}

/// Counts a file that could not be read or parsed, with a DEBUG line.
pub fn count_error(path: &Path, reason: &str) {
    READ_ERRORS.fetch_add(1, Ordering::Relaxed);
    debug!(path = %path.display(), reason, "sysfs: could not read a file; left out.");
}

/// The directory the host's `/sys`, `/proc` and `/etc` are under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    base: PathBuf,
}

impl Root {
    /// A root at `base` (`/` on the host, `/host` in a container).
    pub fn new(base: impl Into<PathBuf>) -> Root {
        Root { base: base.into() }
    }

    /// The root itself.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `rel` (an absolute host path such as `/sys/class/hwmon`, or a relative one) under the
    /// root.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.base.join(rel.trim_start_matches('/'))
    }
}

/// What reading a file gave, for callers that must tell "absent" from "unreadable".
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// The text, trimmed of surrounding whitespace and NUL bytes (device-tree strings end in
    /// one).
    Text(String),
    /// No such file or directory.
    Missing,
    /// It exists but could not be read (permissions: debugfs without root).
    Denied,
    /// It exists but could not be read for another reason.
    Failed(String),
}

impl Probe {
    /// The text, if it was read.
    pub fn text(self) -> Option<String> {
        match self {
            Probe::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// Reads `path` without counting anything: for files whose absence or denial the caller
/// reports itself (debugfs).
pub fn probe(path: &Path) -> Probe {
    use std::io::Read as _;
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return probe_error(&e),
    };
    // A sysfs attribute is produced whole by the first read (one page at most), so a read
    // that does not fill the buffer is the whole file: one read call instead of a second one
    // that returns 0. Longer files (procfs tables) are read on to the end.
    let mut buf = [0u8; FIRST_READ];
    let n = match file.read(&mut buf) {
        Ok(n) => n,
        Err(e) => return probe_error(&e),
    };
    let mut bytes = buf[..n].to_vec();
    if n == FIRST_READ {
        if let Err(e) = file.take(MAX_TEXT).read_to_end(&mut bytes) {
            return probe_error(&e);
        }
    }
    match String::from_utf8(bytes) {
        Ok(text) => Probe::Text(clean(&text).to_owned()),
        Err(_) => Probe::Failed("not UTF-8 text".into()),
    }
}

fn probe_error(e: &std::io::Error) -> Probe {
    match e.kind() {
        std::io::ErrorKind::NotFound => Probe::Missing,
        std::io::ErrorKind::PermissionDenied => Probe::Denied,
        _ => match e.raw_os_error() {
            // ENOTDIR: a path through a file; EINVAL/ENODATA/EIO: an attribute the driver
            // refuses to read right now (a gated rail, a sleeping sensor).
            Some(20) => Probe::Missing,
            _ => Probe::Failed(e.to_string()),
        },
    }
}

fn clean(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace() || c == '\0')
}

/// The trimmed text of `path`; `None` when missing (silently) or unreadable (counted).
pub fn text(path: &Path) -> Option<String> {
    match probe(path) {
        Probe::Text(t) => Some(t),
        Probe::Missing => None,
        Probe::Denied => {
            count_error(path, "permission denied");
            None
        }
        Probe::Failed(reason) => {
            count_error(path, &reason);
            None
        }
    }
}

/// An integer file (`temp`, `in1_input`, `cur_freq`, ...); malformed text is counted.
pub fn int(path: &Path) -> Option<i64> {
    let t = text(path)?;
    match parse_int(&t) {
        Some(v) => Some(v),
        None => {
            count_error(path, &format!("not an integer: {:?}", excerpt(&t)));
            None
        }
    }
}

/// A decimal integer, optionally signed, nothing else (no spaces, units or exponents).
pub fn parse_int(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The start of a text, for messages.
pub fn excerpt(text: &str) -> String {
    text.chars().take(40).collect()
}

/// The entries of `dir` whose name starts with `prefix`, as (name, path), ordered by name with
/// numbers compared as numbers (`thermal_zone2` before `thermal_zone10`). A missing directory
/// is empty; an unreadable one is counted.
pub fn entries(dir: &Path, prefix: &str) -> Vec<(String, PathBuf)> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) => {
            if !matches!(probe_error(&e), Probe::Missing) {
                count_error(dir, &e.to_string());
            }
            return Vec::new();
        }
    };
    let mut out: Vec<(String, PathBuf)> = read
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.starts_with(prefix).then(|| (name, e.path()))
        })
        .collect();
    out.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    out
}

/// The number after `prefix` in `name` (`cpu12` with `cpu` → 12); `None` if anything else
/// follows.
pub fn index_after(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    if rest.is_empty() || rest.len() > 9 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// Compares names with embedded numbers by value.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(s: &str) -> (&str, Option<u64>) {
        let digits = s.bytes().rev().take_while(u8::is_ascii_digit).count();
        let (head, tail) = s.split_at(s.len() - digits);
        (head, tail.parse().ok())
    }
    let (ha, na) = split(a);
    let (hb, nb) = split(b);
    ha.cmp(hb).then(na.cmp(&nb)).then(a.cmp(b))
}

/// Expands a pattern of `/`-separated parts under `root`, where a part may end in `*` (a
/// prefix match), e.g. `sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*`. Results in natural order.
pub fn glob(root: &Root, pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![root.base().to_path_buf()];
    for part in pattern.trim_start_matches('/').split('/') {
        let mut next = Vec::new();
        for dir in &found {
            match part.strip_suffix('*') {
                Some(prefix) => next.extend(entries(dir, prefix).into_iter().map(|(_, p)| p)),
                None => {
                    let p = dir.join(part);
                    if p.exists() {
                        next.push(p);
                    }
                }
            }
        }
        found = next;
    }
    found
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::{Path, PathBuf};

    /// A fresh directory under the system's temp dir, removed on drop.
    pub struct Tree(pub PathBuf);

    impl Tree {
        pub fn new(tag: &str) -> Tree {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("em-sysfs-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Tree(dir)
        }

        /// Writes `text` at `rel`, creating directories.
        pub fn put(&self, rel: &str, text: &str) -> &Tree {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
            self
        }

        pub fn root(&self) -> super::Root {
            super::Root::new(&self.0)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Tree;
    use super::*;

    #[test]
    fn integers_are_plain_decimal_only() {
        assert_eq!(parse_int("45500"), Some(45500));
        assert_eq!(parse_int("-256000"), Some(-256000));
        assert_eq!(parse_int("+7"), Some(7));
        for bad in [
            "",
            "-",
            "1e3",
            "12 mV",
            "0x10",
            "1.5",
            "9999999999999999999",
            "nan",
        ] {
            assert_eq!(parse_int(bad), None, "{bad}");
        }
    }

    #[test]
    fn missing_is_silent_and_malformed_is_counted() {
        let t = Tree::new("fs");
        t.put("a", "42\n").put("b", "forty-two\n").put("c", "gpu\0");
        let before = read_errors();
        assert_eq!(int(&t.path().join("a")), Some(42));
        assert_eq!(int(&t.path().join("nope")), None);
        assert_eq!(text(&t.path().join("c")).as_deref(), Some("gpu"));
        // Other tests run in parallel and may count too: at least ours.
        assert_eq!(int(&t.path().join("b")), None);
        assert!(read_errors() > before);
        assert_eq!(probe(&t.path().join("a/b")), Probe::Missing);
    }

    #[test]
    fn texts_longer_than_a_page_are_read_whole() {
        let t = Tree::new("long");
        for len in [4095, 4096, 4097, 20_000] {
            let body: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            t.put("f", &body);
            assert_eq!(
                text(&t.path().join("f")).map(|s| s.len()),
                Some(len),
                "{len}"
            );
        }
    }

    #[test]
    fn entries_and_glob_order_numbers_by_value() {
        let t = Tree::new("glob");
        for n in [10, 2, 1] {
            t.put(&format!("x/thermal_zone{n}/temp"), "1");
        }
        t.put("x/cooling_device0/type", "fan");
        let names: Vec<_> = entries(&t.path().join("x"), "thermal_zone")
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["thermal_zone1", "thermal_zone2", "thermal_zone10"]);
        let found = glob(&t.root(), "/x/thermal_zone*/temp");
        assert_eq!(found.len(), 3);
        assert!(found[2].ends_with("thermal_zone10/temp"));
        assert!(glob(&t.root(), "/nothing/*/here").is_empty());
        assert_eq!(index_after("cpu12", "cpu"), Some(12));
        assert_eq!(index_after("cpufreq", "cpu"), None);
        assert_eq!(t.root().join("/sys/x"), t.path().join("sys/x"));
    }
}
