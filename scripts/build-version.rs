// The build script of each daemon (`include!`d by exporter/, shelly-bridge/ and config-server/
// build.rs): stamps the binary with its version and git revision, as `--version`, the exporter's
// `edge_metrics_exporter_build_info{version,revision}` and the images' OCI labels show them.
//
//   EDGE_METRICS_VERSION   `git describe --tags --match 'v[0-9]*'` without the `v`
//                          (`0.1.0` on the tag, `0.1.0-3-g1a2b3c4` three commits later); with no
//                          such tag yet, the Cargo version and the short commit (`0.1.0-g1a2b3c4`)
//   EDGE_METRICS_REVISION  the full commit id (`git rev-parse HEAD`)
//
// Both can be given in the environment instead (a build in a container without git, a release
// job); either one set wins over git. Built from a source tarball without `.git` (or without
// git) they fall back to the Cargo version and `unknown`. No `-dirty` suffix: cargo cannot see
// an edit to the work tree, so the mark would go stale; the revision names a commit, not a tree.
// scripts/version.sh prints the same values for the shell scripts and tests/tests/release_refs.rs
// checks that the binaries agree with git.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=EDGE_METRICS_VERSION");
    println!("cargo:rerun-if-env-changed=EDGE_METRICS_REVISION");
    let cargo_version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    // Each daemon's package is a direct child of the workspace root.
    let workspace = manifest_dir.parent().unwrap_or(&manifest_dir).to_path_buf();
    let from_git = git_version(&workspace, &cargo_version);
    let given = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let version = given("EDGE_METRICS_VERSION")
        .or_else(|| from_git.as_ref().map(|g| g.0.clone()))
        .unwrap_or_else(|| cargo_version.clone());
    let revision = given("EDGE_METRICS_REVISION")
        .or_else(|| from_git.as_ref().map(|g| g.1.clone()))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=EDGE_METRICS_VERSION={version}");
    println!("cargo:rustc-env=EDGE_METRICS_REVISION={revision}");
}

/// `(version, revision)` from the git repository whose top level is `workspace`, or `None` when
/// there is none (a tarball, a copy without `.git`, no git installed).
fn git_version(workspace: &Path, cargo_version: &str) -> Option<(String, String)> {
    let top = git(workspace, &["rev-parse", "--show-toplevel"])?;
    // A tarball unpacked inside some other repository must not take that one's commit.
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(workspace).ok()? {
        return None;
    }
    // Rebuild when HEAD moves (checkout, commit) or a tag appears; only paths that exist, since
    // cargo reruns a build script on every build for a path that does not.
    let mut watch = vec![
        "HEAD".to_string(),
        "packed-refs".to_string(),
        "refs/tags".to_string(),
    ];
    if let Some(head_ref) = git(workspace, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(head_ref);
    }
    for name in watch {
        if let Some(path) = git(workspace, &["rev-parse", "--git-path", &name]) {
            let path = workspace.join(path);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    let revision = git(workspace, &["rev-parse", "HEAD"])?;
    let version = match git(workspace, &["describe", "--tags", "--match", "v[0-9]*"]) {
        Some(described) => described.trim_start_matches('v').to_string(),
        None => {
            let short = git(workspace, &["rev-parse", "--short=7", "HEAD"])?;
            format!("{cargo_version}-g{short}")
        }
    };
    Some((version, revision))
}

/// The trimmed standard output of a successful `git ARGS` run in `dir`.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
