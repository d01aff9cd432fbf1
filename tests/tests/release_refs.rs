//! What a release names must agree everywhere, and what a build says it is must be what git
//! says:
//!
//! - the default image references of `compose*.yaml`, the Helm chart's values and `Chart.yaml`,
//!   and the ones README.md and docs/DEPLOY.md show all name the same registry path and the
//!   Cargo version; the Dockerfiles' default `VERSION` and CHANGELOG.md's latest release too;
//! - each daemon's `--version` and the exporter's `edge_metrics_exporter_build_info` carry the
//!   version `git describe` gives for the commit they name (scripts/build-version.rs), and that
//!   commit is this checkout's (HEAD, or an ancestor when HEAD moved after the build).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::proof::{corpus, exporter_config_every, repo_root, start_exporter};
use test_support::{bin, command, require, run_to_end, TempDir};

/// Where the images live, as users pull them.
const REGISTRY_PATH: &str = "ghcr.io/edge-metrics";
/// The images and the compose variable that names each one's default reference.
const IMAGES: [(&str, &str); 4] = [
    ("EXPORTER_IMAGE", "edge-metrics-exporter"),
    ("BRIDGE_IMAGE", "shelly-bridge"),
    ("CONFIG_SERVER_IMAGE", "edge-metrics-config-server"),
    ("SIM_IMAGE", "shelly-sim"),
];

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `[workspace.package] version` of the root Cargo.toml.
fn cargo_version() -> String {
    let text = read("Cargo.toml");
    let section = text
        .split("[workspace.package]")
        .nth(1)
        .expect("Cargo.toml has [workspace.package]");
    section
        .lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("[workspace.package] has a version")
        .to_string()
}

/// Every `${VAR:-default}` image default in the compose files: VAR → default reference.
fn compose_defaults() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for file in [
        "compose.yaml",
        "compose.demo.yaml",
        "compose.config-server.yaml",
    ] {
        let text = read(file);
        for (var, _) in IMAGES {
            let needle = format!("${{{var}:-");
            for (at, _) in text.match_indices(&needle) {
                let rest = &text[at + needle.len()..];
                let end = rest.find('}').expect("a ${VAR:-default} closes");
                let value = rest[..end].to_string();
                if let Some(seen) = out.insert(var.to_string(), value.clone()) {
                    assert_eq!(seen, value, "{file}: two defaults for {var}");
                }
            }
        }
    }
    out
}

/// Every `ghcr.io/...:tag` in a document, as (repository path, tag).
fn doc_refs(text: &str) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    for (at, _) in text.match_indices("ghcr.io/") {
        let rest = &text[at..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "/._:-@".contains(c)))
            .unwrap_or(rest.len());
        let reference = rest[..end].trim_end_matches(['.', ':']);
        // Registry paths without a tag (a table of names, `oci://.../charts`) are not pulls.
        if let Some((path, tag)) = reference.rsplit_once(':') {
            if !tag.contains('/') && !tag.is_empty() {
                refs.push((path.to_string(), tag.to_string()));
            }
        }
    }
    refs
}

#[test]
fn compose_chart_and_docs_name_the_same_images_and_version() {
    let version = cargo_version();
    let defaults = compose_defaults();
    for (var, image) in IMAGES {
        assert_eq!(
            defaults.get(var).map(String::as_str),
            Some(format!("{REGISTRY_PATH}/{image}:{version}").as_str()),
            "the compose files' default for {var}"
        );
    }

    // The chart: registry/repository per image, the tag empty so appVersion applies.
    let chart: serde_yaml::Value =
        serde_yaml::from_str(&read("helm/edge-metrics/Chart.yaml")).expect("Chart.yaml is YAML");
    assert_eq!(
        chart["appVersion"].as_str(),
        Some(version.as_str()),
        "Chart.yaml appVersion"
    );
    assert_eq!(
        chart["version"].as_str(),
        Some(version.as_str()),
        "Chart.yaml version"
    );
    let values: serde_yaml::Value =
        serde_yaml::from_str(&read("helm/edge-metrics/values.yaml")).expect("values.yaml is YAML");
    for (key, var) in [
        ("exporter", "EXPORTER_IMAGE"),
        ("bridge", "BRIDGE_IMAGE"),
        ("configServer", "CONFIG_SERVER_IMAGE"),
    ] {
        let image = &values[key]["image"];
        let path = format!(
            "{}/{}",
            image["registry"].as_str().unwrap_or_default(),
            image["repository"].as_str().unwrap_or_default()
        );
        let tag = match image["tag"].as_str() {
            Some("") | None => chart["appVersion"].as_str().unwrap_or_default(),
            Some(t) => t,
        };
        assert_eq!(
            format!("{path}:{tag}"),
            defaults[var],
            "the chart's default {key} image and compose's {var}"
        );
        assert_eq!(
            image["digest"].as_str(),
            Some(""),
            "{key}.image.digest pins nothing by default"
        );
    }

    // What the docs tell users to pull or build.
    for doc in ["README.md", "docs/DEPLOY.md"] {
        let refs = doc_refs(&read(doc));
        assert!(
            !refs.is_empty(),
            "{doc} names no ghcr.io image reference with a tag"
        );
        for (path, tag) in &refs {
            assert!(
                path.starts_with(&format!("{REGISTRY_PATH}/")),
                "{doc}: {path}:{tag} is not under {REGISTRY_PATH}"
            );
            assert_eq!(
                tag, &version,
                "{doc}: {path}:{tag} is not version {version}"
            );
        }
    }
    let readme = read("README.md");
    for image in ["edge-metrics-exporter", "shelly-bridge"] {
        assert!(
            readme.contains(&format!("{REGISTRY_PATH}/{image}:{version}")),
            "README.md does not name {REGISTRY_PATH}/{image}:{version}"
        );
    }

    // The images' default VERSION label and the changelog's latest release.
    for (_, image) in IMAGES {
        let file = format!("docker/{image}.Dockerfile");
        assert!(
            read(&file).contains(&format!("\nARG VERSION={version}\n")),
            "{file}: ARG VERSION is not {version}"
        );
    }
    let changelog = read("CHANGELOG.md");
    assert!(
        changelog.contains("\n## [Unreleased]\n"),
        "CHANGELOG.md has no Unreleased section"
    );
    let latest = changelog
        .lines()
        .find(|l| l.starts_with("## [") && !l.starts_with("## [Unreleased]"))
        .expect("CHANGELOG.md has a release");
    assert!(
        latest.starts_with(&format!("## [{version}] - ")),
        "CHANGELOG.md's latest release is `{latest}`, Cargo says {version}"
    );
}

/// `git ARGS` in the repository: its trimmed output, or `None` when it fails.
fn git(git: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new(git)
        .arg("-C")
        .arg(repo_root())
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `NAME VERSION (revision REV)` → (VERSION, REV).
fn parse_version_line(name: &str, line: &str) -> (String, String) {
    let rest = line
        .strip_prefix(&format!("{name} "))
        .unwrap_or_else(|| panic!("`{line}` does not start with {name}"));
    let (version, rest) = rest
        .split_once(" (revision ")
        .unwrap_or_else(|| panic!("`{line}` has no revision"));
    let revision = rest
        .strip_suffix(')')
        .unwrap_or_else(|| panic!("`{line}` does not end with `)`"));
    (version.to_string(), revision.to_string())
}

/// Checks `(version, revision)` of `name` against git (or the build's override, or the
/// fallback outside git).
fn check_against_git(git_bin: &Path, name: &str, version: &str, revision: &str) {
    let given = |var: &str| std::env::var(var).ok().filter(|v| !v.trim().is_empty());
    let (given_version, given_revision) = (
        given("EDGE_METRICS_VERSION"),
        given("EDGE_METRICS_REVISION"),
    );
    if given_version.is_some() || given_revision.is_some() {
        // The build took these over git (scripts/build-version.rs).
        if let Some(v) = given_version {
            assert_eq!(version, v, "{name}: EDGE_METRICS_VERSION");
        }
        if let Some(r) = given_revision {
            assert_eq!(revision, r, "{name}: EDGE_METRICS_REVISION");
        }
    } else if git(git_bin, &["rev-parse", "--show-toplevel"]).is_some() {
        // The commit a binary names is this checkout's: HEAD, or an ancestor of it when a
        // commit landed after the build script ran (several people commit in one tree).
        let head = git(git_bin, &["rev-parse", "HEAD"]).expect("git rev-parse HEAD");
        assert!(
            revision == head
                || git(git_bin, &["merge-base", "--is-ancestor", revision, "HEAD"]).is_some(),
            "{name} names commit {revision}, which is not HEAD ({head}) or before it"
        );
        let want = match git(
            git_bin,
            &["describe", "--tags", "--match", "v[0-9]*", revision],
        ) {
            Some(described) => described.trim_start_matches('v').to_string(),
            None => format!(
                "{}-g{}",
                cargo_version(),
                git(git_bin, &["rev-parse", "--short=7", revision]).expect("short commit")
            ),
        };
        assert_eq!(version, want, "{name}: git describe of {revision}");
    } else {
        assert_eq!(
            (version, revision),
            (cargo_version().as_str(), "unknown"),
            "{name} outside git: the Cargo version and `unknown`"
        );
    }
}

#[test]
fn version_and_build_info_agree_with_git_describe() {
    let Some(git_bin) = require::tool("git", "apt-get install -y git") else {
        return;
    };
    let mut exporter_says = None;
    for name in [
        "edge-metrics-exporter",
        "shelly-bridge",
        "edge-metrics-config-server",
    ] {
        let path = match name {
            "edge-metrics-exporter" => bin!("edge-metrics-exporter"),
            "shelly-bridge" => bin!("shelly-bridge"),
            _ => bin!("edge-metrics-config-server"),
        };
        let out = run_to_end(command(&path).arg("--version"), Duration::from_secs(30));
        assert!(out.status.success(), "{name} --version: {out:?}");
        let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let (version, revision) = parse_version_line(name, &line);
        check_against_git(&git_bin, name, &version, &revision);
        if exporter_says.is_none() {
            exporter_says = Some((version, revision));
        }
    }
    let (version, revision) = exporter_says.expect("the exporter ran first");

    // The exporter's build_info carries the same two values.
    let tmp = TempDir::new("release-refs");
    let config = exporter_config_every(
        tmp.path(),
        1.0,
        &format!("replay: {}", corpus("orin-agx-jp5.log").display()),
        "metrics: {}\n",
    );
    let exporter = start_exporter(&config, tmp.path());
    let body = exporter.scrape().body;
    let want = format!(
        "edge_metrics_exporter_build_info{{version=\"{version}\",revision=\"{revision}\"}} 1"
    );
    assert!(
        body.lines().any(|l| l == want),
        "no `{want}` in:\n{}",
        body.lines()
            .filter(|l| l.contains("build_info"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
