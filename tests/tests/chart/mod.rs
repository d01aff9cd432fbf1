//! What the chart tests share (`helm.rs`, `helm_remote_write.rs`): where the chart and helm
//! are, and `helm template` parsed into documents.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::proof::repo_root;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde::Deserialize;
use serde_yaml::Value;

pub fn chart_dir() -> PathBuf {
    repo_root().join("helm/edge-metrics")
}

/// helm from `HELM`, else the one `scripts/setup/helm.sh` installs: a failure when missing,
/// `None` only when `EDGE_METRICS_ALLOW_SKIP` names `helm`.
pub fn helm() -> Option<PathBuf> {
    test_support::require::tool_at(
        "helm",
        Some("HELM"),
        &repo_root().join(".tools/bin/helm"),
        "scripts/setup/helm.sh",
    )
}

/// The documents of `helm template` with `-f ci/<values>` and `--set`s, or helm's error
/// output; with `kubeconfig`, as `--dry-run=server` against that cluster, so `lookup` sees
/// what it holds.
pub fn render(
    helm: &Path,
    values: &[&str],
    sets: &[&str],
    kubeconfig: Option<&Path>,
) -> Result<Vec<Value>, String> {
    let mut cmd = Command::new(helm);
    cmd.args(["template", "em"])
        .arg(chart_dir())
        .args(["--namespace", "monitoring"]);
    if let Some(kc) = kubeconfig {
        cmd.arg("--dry-run=server").arg("--kubeconfig").arg(kc);
    }
    for v in values {
        cmd.arg("-f").arg(chart_dir().join("ci").join(v));
    }
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().expect("helm runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8(out.stdout).expect("helm prints UTF-8");
    Ok(serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("helm output is YAML"))
        .filter(|v| !v.is_null())
        .collect())
}

/// The container (or init container) `name` of `pod`.
pub fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}
