//! The chart's sysfs mode (`tegrastats.mode=sysfs`), rendered by the real `helm template` and
//! then run: the config.yaml it writes turns the sysfs source on with `host_root: /host`, the
//! exporter container mounts the node's `/sys` and `/proc` files read-only under `/host` and
//! no tegrastats, loader or library; and that config.yaml, pointed at a fixture tree instead of
//! `/host`, makes the real binary serve the board's rails.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{command, testdata, Exporter, TempDir};
use serde_yaml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docs(text: &str) -> Vec<Value> {
    text.split("\n---")
        .filter_map(|d| serde_yaml::from_str::<Value>(d).ok())
        .filter(|v| v.is_mapping())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

#[test]
fn chart_sysfs_mode_mounts_sys_and_proc_and_no_tegrastats() {
    let Some(helm) = test_support::require::tool_at(
        "helm",
        Some("HELM"),
        &repo().join(".tools/bin/helm"),
        "scripts/setup/helm.sh",
    ) else {
        return;
    };
    let out = Command::new(&helm)
        .args(["template", "t"])
        .arg(repo().join("helm/edge-metrics"))
        .args(["--set", "tegrastats.mode=sysfs"])
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8(out.stdout).unwrap();
    let docs = docs(&rendered);

    // config.yaml: the sysfs source, under /host.
    let text = of_kind(&docs, "ConfigMap")["data"]["config.yaml"]
        .as_str()
        .expect("ConfigMap has config.yaml")
        .to_owned();
    let cfg = edge_metrics_exporter::config::parse(&text, "config.yaml")
        .unwrap_or_else(|e| panic!("the chart's config.yaml is refused: {e}\n{text}"));
    assert!(cfg.tegrastats.sysfs, "{text}");
    assert_eq!(cfg.host_root.as_deref(), Some(Path::new("/host")), "{text}");

    // The exporter's mounts: /sys and the /proc files under /host, read-only; no tegrastats.
    let ds = of_kind(&docs, "DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let exporter = pod["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some("exporter"))
        .expect("an exporter container");
    let mounts: Vec<(&str, bool)> = exporter["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["mountPath"].as_str().unwrap(),
                m["readOnly"].as_bool() == Some(true),
            )
        })
        .collect();
    for path in [
        "/host/sys",
        "/host/proc/stat",
        "/host/proc/meminfo",
        "/host/proc/buddyinfo",
        "/host/proc/device-tree",
    ] {
        assert!(
            mounts.contains(&(path, true)),
            "{path} read-only: {mounts:?}"
        );
    }
    let host_paths: Vec<&str> = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v["hostPath"]["path"].as_str())
        .collect();
    assert!(host_paths.contains(&"/sys"), "{host_paths:?}");
    for tegrastats_only in [
        "/usr/bin/tegrastats",
        "/lib/ld-linux-aarch64.so.1",
        "/lib/aarch64-linux-gnu",
        "/etc/ld.so.cache",
    ] {
        assert!(
            !host_paths.contains(&tegrastats_only),
            "{tegrastats_only} mounted in sysfs mode: {host_paths:?}"
        );
    }

    // That config.yaml on the real binary, with the fixture tree where /host would be.
    let dir = TempDir::new("sysfs-helm");
    let mut value: Value = serde_yaml::from_str(&text).unwrap();
    let root = testdata("sysfs/orin-nano/root");
    for (key, v) in [
        ("host_root", Value::from(root.to_str().unwrap())),
        ("port", Value::from(0)),
        ("reload_port", Value::from(0)),
        ("bind_address", Value::from("127.0.0.1")),
        ("reload_bind_address", Value::from("127.0.0.1")),
        ("interval", Value::from(0.2)),
    ] {
        value[key] = v;
    }
    value["shelly"]["enabled"] = Value::from(false);
    let path = dir.join("config.yaml");
    fs::write(&path, serde_yaml::to_string(&value).unwrap()).unwrap();
    let mut cmd = command();
    cmd.arg("--config").arg(&path);
    let exp = Exporter::start(cmd, None);
    let watts = exp.wait_sample("jetson_power_vdd_in_watts", Duration::from_secs(20));
    assert_eq!(watts, 10.0);
    assert_eq!(exp.health()["device_type"], "jetson_orin");
}
