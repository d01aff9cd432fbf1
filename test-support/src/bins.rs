//! Where the workspace's binaries are and how to run them.
//!
//! A crate's integration tests get `CARGO_BIN_EXE_<name>` for that crate's own binaries at
//! compile time; [`bin!`](crate::bin) passes it on. Every other binary is looked up beside the
//! test executable: `target/<profile>/deps/<test>-<hash>` runs next to `target/<profile>/<name>`,
//! which `cargo test --workspace` builds (so does a cross build, under
//! `target/<triple>/<profile>/`). Nothing here builds: a missing binary is a panic that says
//! which command builds it.
//!
//! When cargo runs the tests through a runner (`CARGO_TARGET_<TRIPLE>_RUNNER`, e.g.
//! `qemu-aarch64-static` in `scripts/test-arm64.sh`), [`command`] runs the binaries through
//! the same runner, so they start whether or not the host has binfmt set up.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The target triple this crate was built for (from `build.rs`).
const TARGET: &str = env!("TEST_SUPPORT_TARGET");

/// Path of the workspace binary `name`, e.g. `test_support::bin!("shelly-bridge")`.
///
/// Expands to [`locate`] with the calling crate's `CARGO_BIN_EXE_<name>`, set when `name` is a
/// binary of the crate whose tests these are.
#[macro_export]
macro_rules! bin {
    ($name:literal) => {
        $crate::bins::locate($name, option_env!(concat!("CARGO_BIN_EXE_", $name)))
    };
}

/// Path of the workspace binary `name`: `given` (a crate's `CARGO_BIN_EXE_<name>`) when set,
/// else `CARGO_BIN_EXE_<name>` from the environment, else `name` beside the test executable.
///
/// Panics when the file is missing, naming the command that builds it.
pub fn locate(name: &str, given: Option<&str>) -> PathBuf {
    if let Some(path) = given {
        return PathBuf::from(path);
    }
    if let Some(path) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("invariant: a test knows its own executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("invariant: test executables live in target/<profile>/deps");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: `cargo test --workspace` builds every workspace binary \
         (or `cargo build -p <its package>` with the tests' profile and target)",
        path.display()
    );
    path
}

/// The runner cargo uses for this target, split into words, when
/// `CARGO_TARGET_<TRIPLE>_RUNNER` is set and not empty.
pub fn runner() -> Option<Vec<String>> {
    let var = format!(
        "CARGO_TARGET_{}_RUNNER",
        TARGET.to_ascii_uppercase().replace(['-', '.'], "_")
    );
    let words: Vec<String> = std::env::var(var)
        .ok()?
        .split_whitespace()
        .map(str::to_string)
        .collect();
    (!words.is_empty()).then_some(words)
}

/// A command that runs `program`: through the cargo [`runner`] when one is set, else directly.
pub fn command(program: &Path) -> Command {
    match runner() {
        Some(words) => {
            let mut cmd = Command::new(&words[0]);
            cmd.args(&words[1..]).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// [`command`] with the environment every daemon under test gets: `RUST_LOG=info` (the
/// lifecycle lines tests wait for; a caller may set its own after) and `NO_COLOR=1`.
pub fn daemon_command(program: &Path) -> Command {
    let mut cmd = command(program);
    cmd.env("RUST_LOG", "info").env("NO_COLOR", "1");
    cmd
}

/// Runs `cmd` to its end with stdin closed and stdout and stderr captured. Panics, after
/// killing it, when it is still running after `timeout`.
pub fn run_to_end(cmd: &mut Command, timeout: Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    // Reading both pipes to their end while waiting: a chatty child never blocks on a full pipe.
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(output) => output.unwrap_or_else(|e| panic!("cannot read what {cmd:?} printed: {e}")),
        Err(_) => {
            crate::daemon::send_signal(pid, "KILL");
            panic!("{cmd:?} did not exit within {timeout:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_path_wins() {
        assert_eq!(
            locate("anything", Some("/opt/anything")),
            PathBuf::from("/opt/anything")
        );
    }

    #[test]
    #[should_panic(expected = "cargo test --workspace")]
    fn a_missing_binary_says_how_to_build_it() {
        locate("no-such-binary-in-this-workspace", None);
    }

    #[test]
    fn run_to_end_captures_both_streams_and_the_status() {
        let out = run_to_end(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        );
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(
            (&out.stdout[..], &out.stderr[..]),
            (&b"out\n"[..], &b"err\n"[..])
        );
    }

    #[test]
    #[should_panic(expected = "did not exit within")]
    fn run_to_end_is_bounded() {
        run_to_end(Command::new("sleep").arg("30"), Duration::from_millis(100));
    }

    #[test]
    fn the_target_is_known() {
        assert!(TARGET.contains('-'), "{TARGET}");
    }
}
