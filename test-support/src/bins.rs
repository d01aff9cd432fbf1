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
use std::process::Command;

/// The exporter's binary name.
pub const EXPORTER: &str = "edge-metrics-exporter";
/// The bridge's binary name.
pub const BRIDGE: &str = "shelly-bridge";
/// The plug simulator's binary name.
pub const SIM: &str = "shelly-sim";

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
    fn the_target_is_known() {
        assert!(TARGET.contains('-'), "{TARGET}");
    }
}
