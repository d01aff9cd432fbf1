//! The Helm chart (`helm/edge-metrics`), rendered with the real `helm template` for several
//! value sets and read back into Kubernetes API types: both containers, their mounts, named
//! ports that match the Service and ServiceMonitor, the node name through the downward API,
//! the security contexts, and the PrometheusRule's PromQL checked by `promtool check rules`.
//!
//! Tools: `HELM` (else `.tools/bin/helm`, installed by `scripts/setup/helm.sh`) and `PROMTOOL`
//! (else `promtool` on PATH, from `scripts/setup/deps.sh`). A missing tool fails the test and
//! says what to install, unless `EDGE_METRICS_ALLOW_SKIP` names it (`helm`, `promtool`) for the
//! run (`test_support::require`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::proof::repo_root;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Service, Volume};
use serde::Deserialize;
use serde_yaml::Value;

fn chart_dir() -> PathBuf {
    repo_root().join("helm/edge-metrics")
}

/// Finds a tool from `env_var`, else `fallback`: a failure when it is missing, `None` only when
/// `EDGE_METRICS_ALLOW_SKIP` names it (its variable's name in lower case, e.g. `helm`).
fn tool(env_var: &str, fallback: PathBuf, install: &str) -> Option<PathBuf> {
    let name = env_var.to_ascii_lowercase();
    test_support::require::tool_at(&name, Some(env_var), &fallback, install)
}

fn helm() -> Option<PathBuf> {
    tool(
        "HELM",
        repo_root().join(".tools/bin/helm"),
        "scripts/setup/helm.sh",
    )
}

fn promtool() -> Option<PathBuf> {
    tool(
        "PROMTOOL",
        PathBuf::from("promtool"),
        "scripts/setup/deps.sh",
    )
}

/// The rendered manifests of one `helm template` run.
struct Rendered {
    docs: Vec<Value>,
}

impl Rendered {
    fn kind(&self, kind: &str) -> Vec<&Value> {
        self.docs
            .iter()
            .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
            .collect()
    }

    fn one<T: serde::de::DeserializeOwned>(&self, kind: &str) -> T {
        let found = self.kind(kind);
        assert_eq!(
            found.len(),
            1,
            "expected exactly one {kind}, got {}",
            found.len()
        );
        serde_yaml::from_value(found[0].clone())
            .unwrap_or_else(|e| panic!("{kind} does not deserialise into the API type: {e}"))
    }

    fn daemonset(&self) -> DaemonSet {
        self.one("DaemonSet")
    }

    fn pod(&self) -> PodSpec {
        self.daemonset()
            .spec
            .expect("DaemonSet has a spec")
            .template
            .spec
            .expect("pod template has a spec")
    }

    fn config(&self) -> Value {
        let cm: ConfigMap = self.one("ConfigMap");
        let text = cm
            .data
            .as_ref()
            .and_then(|d| d.get("config.yaml"))
            .expect("ConfigMap has config.yaml")
            .clone();
        serde_yaml::from_str(&text).expect("config.yaml in the ConfigMap is YAML")
    }
}

fn template(helm: &Path, values: &[&str], sets: &[&str]) -> Result<Rendered, String> {
    let mut cmd = Command::new(helm);
    cmd.arg("template")
        .arg("em")
        .arg(chart_dir())
        .args(["--namespace", "monitoring"]);
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
    let docs = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("helm output is YAML"))
        .filter(|v| !v.is_null())
        .collect();
    Ok(Rendered { docs })
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn port(c: &Container, name: &str) -> i32 {
    c.ports
        .as_ref()
        .and_then(|ps| ps.iter().find(|p| p.name.as_deref() == Some(name)))
        .unwrap_or_else(|| panic!("container {} has no port named {name}", c.name))
        .container_port
}

fn env<'a>(c: &'a Container, name: &str) -> &'a k8s_openapi::api::core::v1::EnvVar {
    c.env
        .as_ref()
        .and_then(|e| e.iter().find(|v| v.name == name))
        .unwrap_or_else(|| panic!("container {} has no env {name}", c.name))
}

fn volume<'a>(pod: &'a PodSpec, name: &str) -> &'a Volume {
    pod.volumes
        .as_ref()
        .and_then(|vs| vs.iter().find(|v| v.name == name))
        .unwrap_or_else(|| panic!("pod has no volume {name}"))
}

/// mountPath → (volume name, read-only) for one container.
fn mounts(c: &Container) -> BTreeMap<String, (String, bool)> {
    c.volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            (
                m.mount_path.clone(),
                (m.name.clone(), m.read_only.unwrap_or(false)),
            )
        })
        .collect()
}

fn config_port(cfg: &Value, key: &str) -> i64 {
    cfg.get(key)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("config.yaml has no integer {key}: {cfg:?}"))
}

fn server_url(cfg: &Value) -> String {
    cfg["shelly"]["server_url"]
        .as_str()
        .expect("shelly.server_url")
        .to_string()
}

#[test]
fn every_ci_values_file_passes_helm_lint_strict() {
    let Some(helm) = helm() else { return };
    let mut files: Vec<_> = std::fs::read_dir(chart_dir().join("ci"))
        .expect("helm/edge-metrics/ci exists")
        .map(|e| e.expect("readable dir entry").path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 4,
        "expected several ci/*-values.yaml scenarios, got {files:?}"
    );
    for f in files {
        let out = Command::new(&helm)
            .args(["lint", "--strict"])
            .arg(chart_dir())
            .arg("-f")
            .arg(&f)
            .output()
            .expect("helm runs");
        assert!(
            out.status.success(),
            "helm lint --strict -f {} failed:\n{}{}",
            f.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn defaults_run_both_containers_on_the_host_network_with_tegrastats_mounts() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &["default-values.yaml"], &[]).expect("defaults render");
    let pod = r.pod();
    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["exporter", "shelly-bridge"]);
    assert_eq!(pod.host_network, Some(true));
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    assert_eq!(pod.host_pid, Some(false));
    assert_eq!(pod.automount_service_account_token, Some(false));

    // Jetson nodes only, tolerating tainted ones.
    let sel = pod.node_selector.clone().expect("nodeSelector");
    assert_eq!(
        sel.get("kubernetes.io/arch").map(String::as_str),
        Some("arm64")
    );
    assert_eq!(
        sel.get("edge-metrics.io/jetson").map(String::as_str),
        Some("true")
    );
    let tol = pod.tolerations.clone().expect("tolerations");
    assert!(tol
        .iter()
        .any(|t| t.operator.as_deref() == Some("Exists")
            && t.effect.as_deref() == Some("NoSchedule")));

    let exporter = container(&pod, "exporter");
    // hostname label = node name, via the downward API.
    let host = env(exporter, "EDGE_METRICS_HOSTNAME");
    let field = host
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .expect("EDGE_METRICS_HOSTNAME comes from a fieldRef");
    assert_eq!(field.field_path, "spec.nodeName");
    assert_eq!(
        env(exporter, "LOCAL_CONFIG_PATH").value.as_deref(),
        Some("/etc/edge-metrics/config.yaml")
    );
    assert_eq!(
        exporter.args.clone().unwrap_or_default(),
        ["--config", "/etc/edge-metrics/config.yaml"]
    );

    // Mounts: writable config DIRECTORY; tegrastats, loader, libraries, debugfs read-only.
    let m = mounts(exporter);
    assert_eq!(
        m.get("/etc/edge-metrics"),
        Some(&("config".to_string(), false))
    );
    for path in [
        "/usr/bin/tegrastats",
        "/lib/ld-linux-aarch64.so.1",
        "/lib/aarch64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/etc/ld.so.cache",
        "/sys/kernel/debug",
    ] {
        let (vol, ro) = m
            .get(path)
            .unwrap_or_else(|| panic!("exporter does not mount {path}"));
        assert!(ro, "{path} must be mounted read-only");
        let hp = volume(&pod, vol)
            .host_path
            .as_ref()
            .unwrap_or_else(|| panic!("{vol} is not a hostPath"));
        assert_eq!(hp.path, path, "{vol} mounts the same host path");
    }
    let tegra = volume(&pod, &m["/usr/bin/tegrastats"].0)
        .host_path
        .clone()
        .unwrap();
    assert_eq!(tegra.type_.as_deref(), Some("File"));
    let cfg_vol = volume(&pod, "config")
        .host_path
        .clone()
        .expect("config is a hostPath");
    assert_eq!(cfg_vol.type_.as_deref(), Some("DirectoryOrCreate"));
    assert_eq!(cfg_vol.path, "/var/lib/edge-metrics");

    // The init container seeds the same directory from the ConfigMap.
    let init = pod.init_containers.clone().expect("init containers");
    assert_eq!(init.len(), 1);
    let im = mounts(&init[0]);
    assert_eq!(im.get("/config"), Some(&("config".to_string(), false)));
    assert_eq!(im.get("/seed"), Some(&("config-seed".to_string(), true)));
    let seed = volume(&pod, "config-seed")
        .config_map
        .clone()
        .expect("seed is the ConfigMap");
    let cm: ConfigMap = r.one("ConfigMap");
    assert_eq!(Some(seed.name), cm.metadata.name);
    assert!(cm.data.as_ref().unwrap().contains_key("seed.sh"));

    // Security: exporter root only for tegrastats, nothing else; bridge non-root and locked.
    let esc = exporter
        .security_context
        .clone()
        .expect("exporter securityContext");
    assert_eq!(esc.run_as_user, Some(0));
    assert_ne!(esc.privileged, Some(true));
    assert_eq!(esc.allow_privilege_escalation, Some(false));
    assert_eq!(esc.read_only_root_filesystem, Some(true));
    let caps = esc.capabilities.expect("exporter capabilities");
    assert_eq!(caps.drop.unwrap_or_default(), ["ALL"]);
    assert_eq!(caps.add.unwrap_or_default(), ["DAC_READ_SEARCH"]);

    let bridge = container(&pod, "shelly-bridge");
    let bsc = bridge
        .security_context
        .clone()
        .expect("bridge securityContext");
    assert_eq!(bsc.run_as_non_root, Some(true));
    assert_eq!(bsc.run_as_user, Some(65532));
    assert_eq!(bsc.read_only_root_filesystem, Some(true));
    assert_eq!(bsc.allow_privilege_escalation, Some(false));
    assert_eq!(
        bsc.capabilities.and_then(|c| c.drop).unwrap_or_default(),
        ["ALL"]
    );
    assert!(mounts(bridge).is_empty(), "the bridge needs no host mounts");

    // Ports and the config agree; probes use the named ports.
    let cfg = r.config();
    assert_eq!(
        i64::from(port(exporter, "metrics")),
        config_port(&cfg, "port")
    );
    assert_eq!(
        i64::from(port(exporter, "mgmt")),
        config_port(&cfg, "reload_port")
    );
    assert_eq!(config_port(&cfg, "port"), 9102);
    assert_eq!(config_port(&cfg, "reload_port"), 9101);
    assert_eq!(
        server_url(&cfg),
        format!("http://localhost:{}", port(bridge, "shelly-http"))
    );
    assert_eq!(port(bridge, "shelly-ws"), 8765);
    assert_eq!(
        cfg["tegrastats"]["path"].as_str(),
        Some("/usr/bin/tegrastats")
    );
    for probe in [&exporter.liveness_probe, &exporter.readiness_probe] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.clone())
            .expect("httpGet probe");
        assert_eq!(get.path.as_deref(), Some("/health"));
        assert_eq!(
            get.port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("mgmt".into())
        );
    }
    assert!(
        r.kind("ServiceMonitor").is_empty(),
        "ServiceMonitor is off by default"
    );
    assert!(
        r.kind("PrometheusRule").is_empty(),
        "PrometheusRule is off by default"
    );

    // The Service exposes the named metrics port of the pod.
    let svc: Service = r.one("Service");
    let sp = svc.spec.expect("Service spec");
    assert_eq!(sp.cluster_ip.as_deref(), Some("None"));
    let metrics = sp
        .ports
        .unwrap()
        .into_iter()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .expect("Service port named metrics");
    assert_eq!(metrics.port, 9102);
    assert_eq!(
        metrics.target_port,
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("metrics".into()))
    );
    let pod_labels = r
        .daemonset()
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .labels
        .unwrap();
    for (k, v) in sp.selector.expect("Service selector") {
        assert_eq!(
            pod_labels.get(&k),
            Some(&v),
            "Service selector {k} matches the pods"
        );
    }
}

#[test]
fn changed_ports_reach_config_containers_service_and_servicemonitor() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &["ports-values.yaml"], &[]).expect("ports scenario renders");
    let pod = r.pod();
    let exporter = container(&pod, "exporter");
    let bridge = container(&pod, "shelly-bridge");
    let cfg = r.config();
    assert_eq!(config_port(&cfg, "port"), 19102);
    assert_eq!(config_port(&cfg, "reload_port"), 19101);
    assert_eq!(port(exporter, "metrics"), 19102);
    assert_eq!(port(exporter, "mgmt"), 19101);
    assert_eq!(port(bridge, "shelly-ws"), 18765);
    assert_eq!(port(bridge, "shelly-http"), 18766);
    assert_eq!(server_url(&cfg), "http://localhost:18766");
    assert_eq!(
        env(bridge, "SHELLY_WS_PORT").value.as_deref(),
        Some("18765")
    );
    assert_eq!(
        env(bridge, "SHELLY_HTTP_PORT").value.as_deref(),
        Some("18766")
    );

    // The ServiceMonitor's endpoint names a Service port, which targets a container port name.
    let sm = &r.kind("ServiceMonitor")[0];
    let ep_port = sm["spec"]["endpoints"][0]["port"]
        .as_str()
        .expect("endpoint port name");
    let svc: Service = r.one("Service");
    let sp = svc.spec.unwrap();
    let svc_port = sp
        .ports
        .unwrap()
        .into_iter()
        .find(|p| p.name.as_deref() == Some(ep_port))
        .unwrap_or_else(|| panic!("Service has no port named {ep_port}"));
    assert_eq!(svc_port.port, 19102);
    let target = match svc_port.target_port {
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => s,
        other => panic!("targetPort should be a name, got {other:?}"),
    };
    assert_eq!(port(exporter, &target), 19102);
    // The ServiceMonitor selects the Service.
    let svc_labels = svc.metadata.labels.unwrap();
    let sel = sm["spec"]["selector"]["matchLabels"]
        .as_mapping()
        .expect("matchLabels");
    for (k, v) in sel {
        assert_eq!(
            svc_labels.get(k.as_str().unwrap()).map(String::as_str),
            v.as_str(),
            "ServiceMonitor selector {k:?}"
        );
    }
    assert_eq!(
        sm["spec"]["namespaceSelector"]["matchNames"][0].as_str(),
        Some("monitoring")
    );
}

#[test]
fn monitoring_values_label_the_servicemonitor_and_rules_pass_promtool() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &["monitoring-values.yaml"], &[]).expect("monitoring renders");
    let sm = &r.kind("ServiceMonitor")[0];
    assert_eq!(sm["apiVersion"].as_str(), Some("monitoring.coreos.com/v1"));
    let labels = &sm["metadata"]["labels"];
    assert_eq!(labels["release"].as_str(), Some("kube-prometheus-stack"));
    assert_eq!(labels["team"].as_str(), Some("edge"));
    let ep = &sm["spec"]["endpoints"][0];
    assert_eq!(ep["port"].as_str(), Some("metrics"));
    assert_eq!(ep["path"].as_str(), Some("/metrics"));
    assert_eq!(ep["interval"].as_str(), Some("30s"));
    assert_eq!(
        ep["relabelings"][0]["targetLabel"].as_str(),
        Some("node"),
        "relabelings pass through"
    );
    assert!(
        ep.get("metricRelabelings").is_none(),
        "empty fields are not rendered"
    );
    assert!(
        sm["spec"].get("jobLabel").is_none(),
        "empty fields are not rendered"
    );

    let rules = r.kind("PrometheusRule");
    assert_eq!(rules.len(), 1);
    let rule = rules[0];
    assert_eq!(
        rule["metadata"]["labels"]["release"].as_str(),
        Some("kube-prometheus-stack")
    );
    let groups = &rule["spec"]["groups"];
    let alerts: Vec<_> = groups[0]["rules"]
        .as_sequence()
        .expect("rules")
        .iter()
        .map(|r| r["alert"].as_str().expect("alert name").to_string())
        .collect();
    for want in [
        "EdgeMetricsExporterDown",
        "EdgeMetricsTegrastatsStale",
        "EdgeMetricsThermalWarning",
        "EdgeMetricsThermalCritical",
        "EdgeMetricsPlugLost",
    ] {
        assert!(
            alerts.iter().any(|a| a == want),
            "missing alert {want} in {alerts:?}"
        );
    }
    // The down alert's job is the Service name, which is the ServiceMonitor's default job.
    let svc: Service = r.one("Service");
    let down = groups[0]["rules"][0]["expr"].as_str().unwrap();
    assert!(
        down.contains(&format!("job=\"{}\"", svc.metadata.name.unwrap())),
        "{down}"
    );
    let text = serde_yaml::to_string(&serde_yaml::Mapping::from_iter([(
        Value::from("groups"),
        groups.clone(),
    )]))
    .unwrap();
    // Rules that collector names and metric names depend on stay in sync with the exporter.
    assert!(text.contains("edge_metrics_exporter_collector_up{collector=\"ShellyCollector\"}"));

    let Some(promtool) = promtool() else { return };
    let dir = test_support::TempDir::new("helm-rules");
    let file = dir.join("rules.yaml");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("SUCCESS: 5 rules found"),
        "promtool said: {said}"
    );
}

#[test]
fn kind_values_need_no_jetson_paths() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &["kind-values.yaml"], &[]).expect("kind scenario renders");
    let pod = r.pod();
    assert!(pod.node_selector.as_ref().is_none_or(|s| s.is_empty()));
    for v in pod.volumes.clone().unwrap_or_default() {
        if let Some(hp) = v.host_path {
            assert_ne!(
                hp.type_.as_deref(),
                Some("File"),
                "{} is a File hostPath",
                v.name
            );
        }
    }
    assert!(volume(&pod, "config").empty_dir.is_some());
    let cfg = r.config();
    assert_eq!(
        cfg["tegrastats"]["replay"].as_str(),
        Some("/var/lib/edge-metrics-replay/orin-agx-jp6.log")
    );
    assert!(
        cfg["tegrastats"].get("path").is_none(),
        "exactly one tegrastats source"
    );
    let exporter = container(&pod, "exporter");
    let m = mounts(exporter);
    assert_eq!(
        m.get("/var/lib/edge-metrics-replay"),
        Some(&("tegrastats-replay".to_string(), true))
    );
    assert!(!m.contains_key("/usr/bin/tegrastats"));
}

#[test]
fn logfile_without_bridge_runs_one_container_and_disables_shelly() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &["logfile-no-bridge-values.yaml"], &[]).expect("renders");
    let pod = r.pod();
    let names: Vec<_> = pod.containers.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["exporter"]);
    let cfg = r.config();
    assert_eq!(cfg["shelly"]["enabled"].as_bool(), Some(false));
    assert_eq!(
        cfg["tegrastats"]["logfile"].as_str(),
        Some("/var/log/tegrastats/tegrastats.log")
    );
    let exporter = container(&pod, "exporter");
    assert_eq!(
        mounts(exporter).get("/var/log/tegrastats"),
        Some(&("tegrastats-log".to_string(), true))
    );
    assert!(exporter
        .image
        .as_deref()
        .unwrap()
        .ends_with("@sha256:0000000000000000000000000000000000000000000000000000000000000000"));
}

#[test]
fn privileged_is_opt_in_and_bad_values_fail_with_a_reason() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &[], &["exporter.privileged=true"]).expect("renders");
    let esc = container(&r.pod(), "exporter")
        .security_context
        .clone()
        .unwrap();
    assert_eq!(esc.privileged, Some(true));

    let err = template(&helm, &[], &["tegrastats.mode=bogus"])
        .err()
        .expect("bogus mode fails");
    assert!(
        err.contains("tegrastats.mode must be host, logfile or replay"),
        "unhelpful error: {err}"
    );
}

/// Runs the ConfigMap's seed.sh (what the init container runs) with /seed and /config pointed
/// at temp dirs, in `mode`; returns what it printed.
fn run_seed(script: &str, seed: &Path, config: &Path, mode: &str) -> String {
    let script = script
        .replace("/seed/", &format!("{}/", seed.display()))
        .replace("/config/", &format!("{}/", config.display()));
    let out = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env("SEED_MODE", mode)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "seed.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_seed_script_copies_only_when_the_mode_says_so() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &[], &[]).expect("defaults render");
    let cm: ConfigMap = r.one("ConfigMap");
    let data = cm.data.unwrap();
    let (script, chart_config) = (&data["seed.sh"], &data["config.yaml"]);
    let dir = test_support::TempDir::new("helm-seed");
    let (seed, config) = (dir.join("seed"), dir.join("config"));
    std::fs::create_dir_all(&seed).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(seed.join("config.yaml"), chart_config).unwrap();
    let node_file = config.join("config.yaml");

    // First start: no config on the node, every mode copies.
    assert!(run_seed(script, &seed, &config, "ifChanged").contains("Seeded"));
    assert_eq!(&std::fs::read_to_string(&node_file).unwrap(), chart_config);

    // The exporter (or the API) edits the node's file: kept while the chart is unchanged.
    std::fs::write(
        &node_file,
        "device_type: jetson_orin\nmetrics:\n  x: true\n",
    )
    .unwrap();
    assert!(run_seed(script, &seed, &config, "ifChanged").contains("Kept"));
    assert!(run_seed(script, &seed, &config, "ifAbsent").contains("Kept"));
    assert!(std::fs::read_to_string(&node_file)
        .unwrap()
        .contains("x: true"));

    // A new chart config replaces it in ifChanged mode, not in ifAbsent mode.
    let changed = format!("{chart_config}# changed\n");
    std::fs::write(seed.join("config.yaml"), &changed).unwrap();
    assert!(run_seed(script, &seed, &config, "ifAbsent").contains("Kept"));
    assert!(run_seed(script, &seed, &config, "ifChanged").contains("Seeded"));
    assert_eq!(std::fs::read_to_string(&node_file).unwrap(), changed);
    // always: every start.
    assert!(run_seed(script, &seed, &config, "always").contains("Seeded"));
}
