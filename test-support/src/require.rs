//! What a test needs from outside the workspace: a program (curl, promtool, helm, openssl) or
//! a capability of the machine (a read-only mount, which needs root).
//!
//! A test never passes by not running. When what it needs is there, [`tool`] or
//! [`capability`] hands it over and the test runs. When it is missing the test **fails**, with
//! a message that says what is missing and how to get it, whatever `CI` says. The only way
//! around that is an explicit opt-out for the run:
//!
//! ```text
//! EDGE_METRICS_ALLOW_SKIP=promtool,helm cargo test    # these two may be missing
//! EDGE_METRICS_ALLOW_SKIP=all cargo test              # anything may be missing
//! ```
//!
//! A need named there (or `all`) that is missing makes the call return `None`: the test prints
//! a loud `SKIPPED` line and returns, and one line goes to the skip ledger, the file named by
//! `EDGE_METRICS_SKIP_LOG` when it is set (`scripts/test.sh` sets it and reports every line):
//!
//! ```text
//! metrics::promtool_accepts_the_output<TAB>promtool<TAB>not found on PATH; apt-get install -y prometheus
//! ```
//!
//! ```no_run
//! # fn make_read_only() -> Option<()> { None }
//! use test_support::require;
//! let Some(promtool) = require::tool("promtool", "apt-get install -y prometheus") else {
//!     return; // only with EDGE_METRICS_ALLOW_SKIP naming promtool
//! };
//! let Some(undo) = require::capability(
//!     "read-only-mount",
//!     make_read_only(),
//!     "needs root for `mount -o remount,bind,ro` or `chattr +i`",
//! ) else {
//!     return;
//! };
//! ```

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The opt-out variable: a comma-separated list of needs that may be missing in this run, or
/// `all`.
pub const ALLOW_SKIP: &str = "EDGE_METRICS_ALLOW_SKIP";

/// The skip ledger: when set, every skipped test appends one line (test, need, why) here.
pub const SKIP_LOG: &str = "EDGE_METRICS_SKIP_LOG";

/// The program `name` on `PATH`, else a failure that names `install` (the command that
/// installs it). `None` only when [`ALLOW_SKIP`] names `name` (or is `all`); the skip was then
/// announced and written to the ledger.
#[track_caller]
pub fn tool(name: &str, install: &str) -> Option<PathBuf> {
    tool_at(name, None, Path::new(name), install)
}

/// Like [`tool`] for a program whose location may be configured: the path in the variable
/// `env_var` when it is set, else `fallback`. A bare name (no `/`) is looked up on `PATH`, a
/// path must be a file. The need is called `name` in messages and in [`ALLOW_SKIP`].
#[track_caller]
pub fn tool_at(
    name: &str,
    env_var: Option<&str>,
    fallback: &Path,
    install: &str,
) -> Option<PathBuf> {
    let configured = env_var.and_then(std::env::var_os).map(PathBuf::from);
    let wanted = configured.as_deref().unwrap_or(fallback);
    let found = find_program(wanted, std::env::var_os("PATH"));
    let mut detail = if wanted.components().count() == 1 {
        format!("{} not found on PATH", wanted.display())
    } else {
        format!("{} not found", wanted.display())
    };
    if let Some(var) = env_var {
        detail.push_str(&format!(" (set {var} to its path)"));
    }
    detail.push_str(&format!("; install it: {install}"));
    need(name, found, &detail)
}

/// What the probe for capability `name` returned: `found` itself when it is `Some`; else a
/// failure saying `why` (what it takes, e.g. "needs root for mount"). `None` only when
/// [`ALLOW_SKIP`] names `name` (or is `all`); the skip was then announced and written to the
/// ledger.
#[track_caller]
pub fn capability<T>(name: &str, found: Option<T>, why: &str) -> Option<T> {
    need(name, found, why)
}

/// The shared decision of [`tool`] and [`capability`], with this process's settings.
#[track_caller]
fn need<T>(name: &str, found: Option<T>, detail: &str) -> Option<T> {
    // Straight to the process's stderr: libtest captures `println!`/`eprintln!` of a passing
    // test, and a skip must show in every run's output.
    let mut stderr = std::io::stderr();
    need_with(
        &Settings::from_env(),
        &current_test(),
        name,
        found,
        detail,
        &mut stderr,
    )
}

/// `found` when it is `Some`; else the [`decide`] verdict carried out: a panic, or the
/// `SKIPPED` line written to `out` and `None`.
#[track_caller]
fn need_with<T>(
    settings: &Settings,
    test: &str,
    name: &str,
    found: Option<T>,
    detail: &str,
    out: &mut dyn Write,
) -> Option<T> {
    if found.is_some() {
        return found;
    }
    match decide(settings, test, name, detail) {
        Verdict::Fail(msg) => panic!("{msg}"),
        Verdict::Skip(line) => {
            let _ = out.write_all(line.as_bytes());
            None
        }
    }
}

/// The settings [`decide`] reads: the opt-out list and the ledger file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// The value of [`ALLOW_SKIP`], when set.
    pub allow: Option<String>,
    /// The file named by [`SKIP_LOG`], when set and not empty.
    pub ledger: Option<PathBuf>,
}

impl Settings {
    /// The settings of this process.
    pub fn from_env() -> Settings {
        Settings {
            allow: std::env::var(ALLOW_SKIP).ok(),
            ledger: std::env::var_os(SKIP_LOG)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }

    /// Whether the opt-out names `need` (case-insensitive) or is `all`.
    pub fn allows(&self, need: &str) -> bool {
        allowed(self.allow.as_deref().unwrap_or(""))
            .iter()
            .any(|n| n == "all" || n.eq_ignore_ascii_case(need))
    }
}

/// The needs an opt-out value names: comma- or space-separated, trimmed, lower-cased, empty
/// entries dropped.
pub fn allowed(value: &str) -> Vec<String> {
    value
        .split([',', ' ', '\t'])
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect()
}

/// What to do about a missing need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The test fails with this message.
    Fail(String),
    /// The test is skipped: print this line (the ledger line is written already).
    Skip(String),
}

/// Decides about the missing need `need` of test `test` (`detail`: what is missing and how to
/// get it), appending the ledger line when the test is skipped.
pub fn decide(settings: &Settings, test: &str, need: &str, detail: &str) -> Verdict {
    if !settings.allows(need) {
        return Verdict::Fail(format!(
            "{test} needs {need}: {detail}. A missing need fails the test; to skip it for one \
             run instead, set {ALLOW_SKIP}={need} (or =all)"
        ));
    }
    let allow = settings.allow.as_deref().unwrap_or("");
    let mut line =
        format!("\n!!!!! SKIPPED {test}: needs {need}: {detail} ({ALLOW_SKIP}={allow}) !!!!!\n");
    if let Some(ledger) = &settings.ledger {
        let entry = ledger_line(test, need, detail);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(ledger)
            // One write per line: O_APPEND keeps lines from parallel test processes whole.
            .and_then(|mut f| f.write_all(entry.as_bytes()));
        if let Err(e) = written {
            return Verdict::Fail(format!(
                "{test} would be skipped (needs {need}: {detail}), but the skip ledger {} \
                 ({SKIP_LOG}) cannot be written: {e}",
                ledger.display()
            ));
        }
    } else {
        line.push_str(&format!("(not recorded: {SKIP_LOG} is not set)\n"));
    }
    Verdict::Skip(line)
}

/// One ledger line: test, need and why, tab-separated (tabs and newlines inside them become
/// spaces), ending in a newline.
pub fn ledger_line(test: &str, need: &str, why: &str) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    format!("{}\t{}\t{}\n", clean(test), clean(need), clean(why))
}

/// The running test's name: `<test binary>::<test path>`, e.g.
/// `metrics::promtool_accepts_the_output` (libtest names each test's thread after it; with
/// one test thread the name is `main` and only the binary is known).
pub fn current_test() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            // Cargo names test executables `<target>-<16 hex digits>`.
            Some((name, hash))
                if hash.len() == 16 && hash.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                name.to_string()
            }
            _ => stem,
        })
        .unwrap_or_else(|| "unknown".into());
    match std::thread::current().name() {
        Some(name) if name != "main" => format!("{binary}::{name}"),
        _ => binary,
    }
}

/// `wanted` when it is a path to a file; for a bare name, the first file of that name in
/// the directories of `path`.
pub fn find_program(wanted: &Path, path: Option<OsString>) -> Option<PathBuf> {
    if wanted.components().count() != 1 {
        return wanted.is_file().then(|| wanted.to_path_buf());
    }
    std::env::split_paths(&path?)
        .map(|dir| dir.join(wanted))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::temp::TempDir;

    fn settings(allow: Option<&str>, ledger: Option<&Path>) -> Settings {
        Settings {
            allow: allow.map(str::to_string),
            ledger: ledger.map(Path::to_path_buf),
        }
    }

    #[test]
    fn the_opt_out_lists_names_or_all() {
        assert_eq!(
            allowed(" promtool, Helm,,read-only-mount "),
            ["promtool", "helm", "read-only-mount"]
        );
        assert_eq!(allowed("curl helm"), ["curl", "helm"]);
        assert!(allowed("").is_empty());
        let s = settings(Some("promtool,HELM"), None);
        assert!(s.allows("promtool") && s.allows("helm") && s.allows("Helm"));
        assert!(!s.allows("curl"));
        assert!(!s.allows("prom"), "names match whole, not by prefix");
        assert!(settings(Some("all"), None).allows("anything"));
        assert!(settings(Some("curl,ALL"), None).allows("helm"));
        assert!(!settings(None, None).allows("curl"));
        assert!(!settings(Some(""), None).allows("curl"));
    }

    #[test]
    fn a_missing_need_fails_and_says_how_to_get_it_and_how_to_opt_out() {
        let dir = TempDir::new("require-fail");
        let ledger = dir.join("skips.tsv");
        let verdict = decide(
            &settings(Some("helm"), Some(&ledger)),
            "metrics::lint",
            "promtool",
            "promtool not found on PATH; install it: apt-get install -y prometheus",
        );
        let Verdict::Fail(msg) = verdict else {
            panic!("{verdict:?}")
        };
        for want in [
            "metrics::lint needs promtool",
            "apt-get install -y prometheus",
            "EDGE_METRICS_ALLOW_SKIP=promtool",
        ] {
            assert!(msg.contains(want), "{want} not in {msg}");
        }
        assert!(!ledger.exists(), "a failure is not a skip");
    }

    #[test]
    fn an_allowed_skip_is_loud_and_appends_one_ledger_line() {
        let dir = TempDir::new("require-skip");
        let ledger = dir.join("skips.tsv");
        let s = settings(Some("all"), Some(&ledger));
        let first = decide(&s, "api::ro", "read-only-mount", "needs root");
        let Verdict::Skip(line) = first else {
            panic!("{first:?}")
        };
        assert!(
            line.contains("SKIPPED api::ro: needs read-only-mount: needs root"),
            "{line}"
        );
        decide(&s, "docs_api::curl", "curl", "curl not found\ton PATH");
        assert_eq!(
            std::fs::read_to_string(&ledger).unwrap(),
            "api::ro\tread-only-mount\tneeds root\ndocs_api::curl\tcurl\tcurl not found on PATH\n"
        );
    }

    #[test]
    fn a_skip_without_a_ledger_says_it_was_not_recorded() {
        let verdict = decide(&settings(Some("curl"), None), "t", "curl", "missing");
        assert!(
            matches!(&verdict, Verdict::Skip(l) if l.contains("not recorded")),
            "{verdict:?}"
        );
    }

    #[test]
    fn an_unwritable_ledger_fails_rather_than_skipping_unrecorded() {
        let dir = TempDir::new("require-ledger");
        let verdict = decide(
            &settings(Some("all"), Some(&dir.join("no/such/dir/skips.tsv"))),
            "t",
            "curl",
            "missing",
        );
        assert!(
            matches!(&verdict, Verdict::Fail(m) if m.contains("cannot be written")),
            "{verdict:?}"
        );
    }

    #[test]
    fn ledger_lines_stay_three_tab_separated_fields() {
        assert_eq!(ledger_line("a\tb", "c\nd", "e\r\nf"), "a b\tc d\te  f\n");
    }

    #[test]
    fn programs_are_found_on_the_given_path_or_at_their_own() {
        let dir = TempDir::new("require-path");
        std::fs::write(dir.join("fake-tool"), "").unwrap();
        let path = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
        assert_eq!(
            find_program(Path::new("fake-tool"), Some(path.clone())),
            Some(dir.join("fake-tool"))
        );
        assert_eq!(find_program(Path::new("other-tool"), Some(path)), None);
        assert_eq!(find_program(Path::new("fake-tool"), None), None);
        assert_eq!(
            find_program(&dir.join("fake-tool"), None),
            Some(dir.join("fake-tool"))
        );
        assert_eq!(find_program(&dir.join("absent"), None), None);
    }

    #[test]
    fn a_present_need_is_handed_over() {
        assert_eq!(capability("anything", Some(7), "never used"), Some(7));
        assert!(tool("sh", "apt-get install -y dash").is_some());
    }

    #[test]
    #[should_panic(expected = "t needs no-such-capability: it is never there")]
    fn a_missing_need_panics_without_the_opt_out() {
        need_with::<()>(
            &settings(Some("curl"), None),
            "t",
            "no-such-capability",
            None,
            "it is never there",
            &mut Vec::new(),
        );
    }

    #[test]
    fn a_missing_need_is_none_with_the_opt_out() {
        let dir = TempDir::new("require-none");
        let ledger = dir.join("skips.tsv");
        let mut out = Vec::new();
        let got = need_with::<()>(
            &settings(Some("no-such-capability"), Some(&ledger)),
            "t",
            "no-such-capability",
            None,
            "it is never there",
            &mut out,
        );
        assert_eq!(got, None);
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("!!!!! SKIPPED t: needs no-such-capability: it is never there"),
            "{out}"
        );
        assert_eq!(
            std::fs::read_to_string(&ledger).unwrap(),
            "t\tno-such-capability\tit is never there\n"
        );
    }

    #[test]
    fn the_test_name_names_the_binary_and_the_test() {
        let name = current_test();
        assert!(name.starts_with("test_support"), "{name}");
        if std::thread::current().name() != Some("main") {
            assert!(
                name.ends_with("the_test_name_names_the_binary_and_the_test"),
                "{name}"
            );
        }
    }
}
