//! The Helm chart (`helm/edge-metrics`), rendered with the real `helm template` for several
//! value sets and read back into Kubernetes API types: both containers, their mounts, named
//! ports that match the Service and ServiceMonitor, the node name through the downward API,
//! the security contexts, the exec probes, the token Secrets and where they are used, and the
//! PrometheusRule's PromQL checked by `promtool check rules`.
//!
//! Some renders go further. Generated tokens must survive an upgrade: `helm template
//! --dry-run=server` against a stand-in for the Kubernetes API (a [`FakeHttp`] serving the
//! Secrets of the previous render) shows `lookup` reading them back. And the rendered
//! containers must work: the real `shelly-bridge` and `edge-metrics-exporter` run with the
//! environment, Secret files and config.yaml the pod would get, and their probe commands run
//! against them; so does the optional Config Server, with the exporter pushing to it (needs
//! the workspace binaries: `cargo build -p edge-metrics-exporter -p shelly-bridge -p shelly-sim
//! -p edge-metrics-config-server`, which `scripts/test-helm.sh` does).
//!
//! Tools: `HELM` (else `.tools/bin/helm`, installed by `scripts/setup/helm.sh`), `PROMTOOL`
//! (else `promtool` on PATH, from `scripts/setup/deps.sh`) and `OPENSSL` (else `openssl`, for
//! the bridge's TLS certificate). A missing tool fails the test and says what to install,
//! unless `EDGE_METRICS_ALLOW_SKIP` names it (`helm`, `promtool`, `openssl`) for the run
//! (`test_support::require`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

mod chart;

use chart::{chart_dir, container, helm};
use e2e::proof::repo_root;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EnvVar, PersistentVolumeClaim, PodSpec, Probe, Secret, Service, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_yaml::Value;
use test_support::{Bridge, Daemon, Exporter, FakeHttp, Reply};

/// Finds a tool from `env_var`, else `fallback`: a failure when it is missing, `None` only when
/// `EDGE_METRICS_ALLOW_SKIP` names it (its variable's name in lower case, e.g. `helm`).
fn tool(env_var: &str, fallback: PathBuf, install: &str) -> Option<PathBuf> {
    let name = env_var.to_ascii_lowercase();
    test_support::require::tool_at(&name, Some(env_var), &fallback, install)
}

fn promtool() -> Option<PathBuf> {
    tool(
        "PROMTOOL",
        PathBuf::from("promtool"),
        "scripts/setup/deps.sh",
    )
}

fn openssl() -> Option<PathBuf> {
    tool(
        "OPENSSL",
        PathBuf::from("openssl"),
        "apt-get install -y openssl",
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

    /// The Secrets the chart made, by name.
    fn secrets(&self) -> BTreeMap<String, Secret> {
        self.kind("Secret")
            .into_iter()
            .map(|d| {
                let s: Secret = serde_yaml::from_value(d.clone())
                    .unwrap_or_else(|e| panic!("Secret does not deserialise: {e}"));
                (s.metadata.name.clone().expect("a Secret has a name"), s)
            })
            .collect()
    }

    /// The raw document of the Secret `name`, as the API server would store it.
    fn secret_doc(&self, name: &str) -> Option<Value> {
        self.kind("Secret")
            .into_iter()
            .find(|d| d["metadata"]["name"].as_str() == Some(name))
            .cloned()
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
    render(helm, values, sets, None)
}

/// `helm template` (see [`chart::render`]) as the rendered manifests.
fn render(
    helm: &Path,
    values: &[&str],
    sets: &[&str],
    kubeconfig: Option<&Path>,
) -> Result<Rendered, String> {
    chart::render(helm, values, sets, kubeconfig).map(|docs| Rendered { docs })
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

/// The command of an exec probe; panics when the probe is missing or of another kind.
fn exec_command(probe: Option<&Probe>, what: &str) -> Vec<String> {
    probe
        .and_then(|p| p.exec.as_ref())
        .and_then(|e| e.command.clone())
        .unwrap_or_else(|| panic!("{what} is not an exec probe: {probe:?}"))
}

fn has_port(c: &Container, name: &str) -> bool {
    c.ports
        .iter()
        .flatten()
        .any(|p| p.name.as_deref() == Some(name))
}

fn has_env(c: &Container, name: &str) -> bool {
    c.env.iter().flatten().any(|v| v.name == name)
}

/// (Secret name, key) that the env variable `name` of `c` is read from.
fn secret_ref(c: &Container, name: &str) -> (String, String) {
    let r = env(c, name)
        .value_from
        .as_ref()
        .and_then(|v| v.secret_key_ref.as_ref())
        .unwrap_or_else(|| panic!("{name} of {} is not a secretKeyRef", c.name));
    (r.name.clone(), r.key.clone())
}

/// The Secret a pod volume shows, and its items as (key, path).
fn secret_volume(pod: &PodSpec, name: &str) -> (String, Vec<(String, String)>) {
    let s = volume(pod, name)
        .secret
        .as_ref()
        .unwrap_or_else(|| panic!("volume {name} is not a Secret"));
    let items = s
        .items
        .iter()
        .flatten()
        .map(|i| (i.key.clone(), i.path.clone()))
        .collect();
    (s.secret_name.clone().expect("secretName"), items)
}

/// The text under `key` of a Secret (k8s-openapi has decoded the base64 already).
fn secret_text(secret: &Secret, key: &str) -> String {
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .unwrap_or_else(|| panic!("Secret {:?} has no key {key}", secret.metadata.name));
    String::from_utf8(bytes.0.clone()).expect("a token is text")
}

/// A token both daemons accept: 16 to 256 characters of `A-Z a-z 0-9 - . _ ~` (the bridge's
/// rule, which needs no escaping in the plug's URL).
fn assert_usable_token(token: &str) {
    assert!(
        (16..=256).contains(&token.len())
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)),
        "not a usable token: {token:?}"
    );
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
    // The bridge mounts nothing from the host; only the plug token (next test), read-only.
    let bm = mounts(bridge);
    assert_eq!(
        bm.values().cloned().collect::<Vec<_>>(),
        [("shelly-ws-token".to_string(), true)],
        "the bridge mounts only its token: {bm:?}"
    );
    assert!(volume(&pod, "shelly-ws-token").host_path.is_none());

    // Ports and the config agree. The management API stays on the node's loopback by default,
    // so the pod declares no port for it (changed_ports_... checks it when it is open).
    let cfg = r.config();
    assert_eq!(
        i64::from(port(exporter, "metrics")),
        config_port(&cfg, "port")
    );
    assert!(!has_port(exporter, "mgmt"), "9101 is on loopback only");
    assert_eq!(cfg["reload_bind_address"].as_str(), Some("127.0.0.1"));
    assert!(
        !has_env(exporter, "EDGE_METRICS_API_TOKEN"),
        "no token is needed on loopback"
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
    // Probes run each image's healthcheck inside the container: on the host network an httpGet
    // probe would ask the node's address, where neither 9101 nor 8766 listens by default. The
    // exporter's reads reload_port from LOCAL_CONFIG_PATH (checked above), the bridge's
    // SHELLY_HTTP_PORT from its env. Neither probes the plug port (a TCP probe there would
    // count as a failed WebSocket upgrade).
    for (c, bin) in [
        (exporter, "/edge-metrics-exporter"),
        (bridge, "/shelly-bridge"),
    ] {
        for (probe, kind) in [
            (&c.liveness_probe, "liveness"),
            (&c.readiness_probe, "readiness"),
        ] {
            assert_eq!(
                exec_command(probe.as_ref(), &format!("{} {kind}", c.name)),
                [bin, "healthcheck"]
            );
        }
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
    let svc_ports = sp.ports.unwrap();
    let metrics = svc_ports
        .iter()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .expect("Service port named metrics");
    assert_eq!(metrics.port, 9102);
    assert_eq!(
        metrics.target_port,
        Some(IntOrString::String("metrics".into()))
    );
    assert_eq!(svc_ports.len(), 1, "only metrics: {svc_ports:?}");
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
        .clone()
        .unwrap()
        .into_iter()
        .find(|p| p.name.as_deref() == Some(ep_port))
        .unwrap_or_else(|| panic!("Service has no port named {ep_port}"));
    assert_eq!(svc_port.port, 19102);
    // The management API is open in this scenario (ci/ports-values.yaml), so its moved port
    // reaches the container and the Service as well.
    let mgmt = sp
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("mgmt"))
        .expect("Service port named mgmt");
    assert_eq!(mgmt.port, 19101);
    assert_eq!(mgmt.target_port, Some(IntOrString::String("mgmt".into())));
    let target = match svc_port.target_port {
        Some(IntOrString::String(s)) => s,
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
    for want in ALERTS {
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
        said.contains(&format!("SUCCESS: {} rules found", ALERTS.len())),
        "promtool said: {said}"
    );
}

/// Every alert of the chart (templates/_rules.tpl), in the order of the rule file.
const ALERTS: [&str; 6] = [
    "EdgeMetricsExporterDown",
    "EdgeMetricsTegrastatsStale",
    "EdgeMetricsPlugLost",
    "EdgeMetricsThermalWarning",
    "EdgeMetricsThermalCritical",
    "EdgeMetricsPowerBudget",
];

/// The rule file for Prometheus outside Kubernetes, and its promtool unit tests.
const RULES_FILE: &str = "deploy/prometheus/edge-metrics-rules.yaml";
const RULES_TESTS: &str = "deploy/prometheus/tests";
const RULES_HEADER: &str = "\
# edge-metrics alerting rules for a Prometheus outside Kubernetes: add this file to rule_files
# in prometheus.yml and scrape the exporters as job \"edge-metrics\" (docs/DEPLOY.md, Alerts).
# Generated: the Helm chart's PrometheusRule (helm/edge-metrics/templates/_rules.tpl) for
# helm/edge-metrics/ci/rules-file-values.yaml. Change the template, then rewrite this file with
#   UPDATE_RULES=1 cargo test -p e2e --test helm the_plain_rules_file
# Unit tests: promtool test rules deploy/prometheus/tests/*.test.yaml
";

/// The PrometheusRule's `spec` (a rule file: `groups:`) as the plain file holds it.
fn rule_file_text(r: &Rendered) -> String {
    let rules = r.kind("PrometheusRule");
    assert_eq!(rules.len(), 1, "one PrometheusRule");
    format!(
        "{RULES_HEADER}{}",
        serde_yaml::to_string(&rules[0]["spec"]).unwrap()
    )
}

/// Runs promtool with `args`; panics with its output unless it exits 0; returns its stdout.
fn promtool_ok(promtool: &Path, args: &[&Path]) -> String {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("promtool runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{said}");
    said
}

#[test]
fn the_plain_rules_file_is_the_charts_rendering() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &["rules-file-values.yaml"], &[]).expect("renders");
    let text = rule_file_text(&r);
    let path = repo_root().join(RULES_FILE);
    if std::env::var_os("UPDATE_RULES").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let held = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        held == text,
        "{RULES_FILE} differs from the chart's rendering; rewrite it with \
         `UPDATE_RULES=1 cargo test -p e2e --test helm the_plain_rules_file` and review the \
         diff. The chart renders:\n{text}"
    );
    assert!(text.contains("up{job=\"edge-metrics\"} == 0"), "{text}");
}

/// Each alert of the plain file has promtool unit tests in deploy/prometheus/tests/ where it
/// fires and where it stays quiet, and they pass.
#[test]
fn every_alert_passes_its_promtool_unit_tests() {
    let Some(promtool) = promtool() else { return };
    let file = repo_root().join(RULES_FILE);
    let said = promtool_ok(&promtool, &[Path::new("check"), Path::new("rules"), &file]);
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", ALERTS.len())),
        "{said}"
    );
    let rules: Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let in_file: Vec<_> = rules["groups"][0]["rules"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(in_file, ALERTS);

    let mut tests: Vec<PathBuf> = std::fs::read_dir(repo_root().join(RULES_TESTS))
        .expect("deploy/prometheus/tests exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".test.yaml"))
        .collect();
    tests.sort();
    let (mut fires, mut quiet) = (BTreeMap::new(), BTreeMap::new());
    for t in &tests {
        let doc: Value = serde_yaml::from_str(&std::fs::read_to_string(t).unwrap()).unwrap();
        for case in doc["tests"].as_sequence().into_iter().flatten() {
            for a in case["alert_rule_test"].as_sequence().into_iter().flatten() {
                let name = a["alertname"].as_str().unwrap().to_string();
                let expected = a["exp_alerts"].as_sequence().map_or(0, Vec::len);
                let seen = if expected > 0 { &mut fires } else { &mut quiet };
                *seen.entry(name).or_insert(0) += 1;
            }
        }
    }
    for alert in ALERTS {
        assert!(
            fires.contains_key(alert),
            "no unit test where {alert} fires"
        );
        assert!(
            quiet.contains_key(alert),
            "no unit test where {alert} stays quiet"
        );
    }
    let mut args: Vec<&Path> = vec![Path::new("test"), Path::new("rules")];
    args.extend(tests.iter().map(PathBuf::as_path));
    let said = promtool_ok(&promtool, &args);
    assert!(!said.contains("FAILED"), "{said}");
}

/// nodes.<node>.powerBudgetWatts (ci/fleet-values.yaml): jetson-a has 25 W, jetson-b none,
/// every other node the chart's 60 W. promtool evaluates the rendered rule.
#[test]
fn per_node_power_budgets_alert_per_node() {
    let Some(helm) = helm() else { return };
    let Some(promtool) = promtool() else { return };
    let r = template(&helm, &["fleet-values.yaml"], &[]).expect("fleet scenario renders");
    let dir = test_support::TempDir::new("helm-budget");
    std::fs::write(dir.join("rules.yaml"), rule_file_text(&r)).unwrap();
    let summary = |host: &str, w: &str| {
        format!(
            "summary: '{host} draws {w} W from the wall, over its power budget'\n              \
             description: \"The node's wall-plug power (power_total_watts), averaged over 5m, \
             has been above its budget for 10m (prometheusRule.powerBudget.watts, or \
             nodes.<node>.powerBudgetWatts).\""
        )
    };
    let test = format!(
        r#"rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'power_total_watts{{hostname="jetson-a", job="edge-metrics"}}'
        values: '30x20'
      - series: 'power_total_watts{{hostname="jetson-b", job="edge-metrics"}}'
        values: '100x20'
      - series: 'power_total_watts{{hostname="node-c", job="edge-metrics"}}'
        values: '70x20'
      - series: 'power_total_watts{{hostname="node-d", job="edge-metrics"}}'
        values: '50x20'
    alert_rule_test:
      - eval_time: 16m
        alertname: EdgeMetricsPowerBudget
        exp_alerts:
          - exp_labels: {{severity: warning, hostname: jetson-a, job: edge-metrics}}
            exp_annotations:
              {a}
          - exp_labels: {{severity: warning, hostname: node-c, job: edge-metrics}}
            exp_annotations:
              {c}
"#,
        a = summary("jetson-a", "30.0"),
        c = summary("node-c", "70.0"),
    );
    let file = dir.join("budget.test.yaml");
    std::fs::write(&file, test).unwrap();
    promtool_ok(&promtool, &[Path::new("test"), Path::new("rules"), &file]);
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
        err.contains("tegrastats.mode must be host, logfile, replay or sysfs"),
        "unhelpful error: {err}"
    );
}

/// Runs the ConfigMap's seed.sh (what the init container runs) with /seed and /config pointed
/// at temp dirs, for node `node` in `mode`; returns what it printed.
fn run_seed(script: &str, seed: &Path, config: &Path, mode: &str, node: &str) -> String {
    let out = try_seed(script, seed, config, mode, node);
    assert!(
        out.status.success(),
        "seed.sh failed for {node}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// seed.sh as the init container runs it (`sh /seed/seed.sh`, SEED_MODE and NODE_NAME set),
/// with its two directories moved to `seed` and `config`.
fn try_seed(
    script: &str,
    seed: &Path,
    config: &Path,
    mode: &str,
    node: &str,
) -> std::process::Output {
    let script = script
        .replace("/seed/", &format!("{}/", seed.display()))
        .replace("/config/", &format!("{}/", config.display()));
    Command::new("sh")
        .arg("-c")
        .arg(&script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SEED_MODE", mode)
        .env("NODE_NAME", node)
        .output()
        .expect("sh runs")
}

impl Rendered {
    /// The ConfigMap's data: config.yaml, node-<name>.yaml, node-<name>.mode, seed.sh.
    fn config_map_data(&self) -> BTreeMap<String, String> {
        let cm: ConfigMap = self.one("ConfigMap");
        cm.data.expect("the ConfigMap has data")
    }

    /// The ConfigMap mounted at /seed: every entry written as a file into `dir`.
    fn write_seed(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        for (key, text) in self.config_map_data() {
            std::fs::write(dir.join(key), text).unwrap();
        }
    }

    /// The config.yaml the init container writes on a fresh node named `node`: the rendered
    /// seed.sh run for real.
    fn seeded_config(&self, node: &str) -> Value {
        let dir = test_support::TempDir::new("helm-seeded");
        let (seed, config) = (dir.join("seed"), dir.join("config"));
        self.write_seed(&seed);
        std::fs::create_dir_all(&config).unwrap();
        let script = &self.config_map_data()["seed.sh"];
        let said = run_seed(script, &seed, &config, "ifChanged", node);
        assert!(said.contains("Seeded"), "{said}");
        let text = std::fs::read_to_string(config.join("config.yaml")).unwrap();
        serde_yaml::from_str(&text).expect("the seeded config.yaml is YAML")
    }
}

#[test]
fn the_seed_script_copies_only_when_the_mode_says_so() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &[], &[]).expect("defaults render");
    let data = r.config_map_data();
    let (script, chart_config) = (&data["seed.sh"], &data["config.yaml"]);
    let dir = test_support::TempDir::new("helm-seed");
    let (seed, config) = (dir.join("seed"), dir.join("config"));
    r.write_seed(&seed);
    std::fs::create_dir_all(&config).unwrap();
    let node_file = config.join("config.yaml");
    // The chart's config with this node's name as its plug.
    let for_node = chart_config.replace("__NODE_NAME__", "\"node-1\"");
    assert_ne!(
        &for_node, chart_config,
        "no plug placeholder in {chart_config}"
    );

    // First start: no config on the node, every mode copies.
    assert!(run_seed(script, &seed, &config, "ifChanged", "node-1").contains("Seeded"));
    assert_eq!(std::fs::read_to_string(&node_file).unwrap(), for_node);
    assert!(
        !config.join("config.yaml.seed").exists(),
        "the temp file is gone"
    );

    // The exporter (or the API) edits the node's file: kept while the chart is unchanged.
    std::fs::write(
        &node_file,
        "device_type: jetson_orin\nmetrics:\n  x: true\n",
    )
    .unwrap();
    assert!(run_seed(script, &seed, &config, "ifChanged", "node-1").contains("Kept"));
    assert!(run_seed(script, &seed, &config, "ifAbsent", "node-1").contains("Kept"));
    assert!(std::fs::read_to_string(&node_file)
        .unwrap()
        .contains("x: true"));
    assert!(
        !config.join("config.yaml.seed").exists(),
        "a kept file leaves no temp file"
    );

    // A new chart config replaces it in ifChanged mode, not in ifAbsent mode.
    let changed = format!("{chart_config}# changed\n");
    std::fs::write(seed.join("config.yaml"), &changed).unwrap();
    assert!(run_seed(script, &seed, &config, "ifAbsent", "node-1").contains("Kept"));
    assert!(run_seed(script, &seed, &config, "ifChanged", "node-1").contains("Seeded"));
    assert_eq!(
        std::fs::read_to_string(&node_file).unwrap(),
        changed.replace("__NODE_NAME__", "\"node-1\"")
    );
    // always: every start.
    assert!(run_seed(script, &seed, &config, "always", "node-1").contains("Seeded"));

    // Without a usable node name nothing is written, and the message says why.
    std::fs::write(&node_file, "kept: true\n").unwrap();
    for (node, want) in [
        ("", "NODE_NAME is empty"),
        ("Node_1", "is not a Kubernetes node name"),
        ("a/b", "is not a Kubernetes node name"),
    ] {
        let out = try_seed(script, &seed, &config, "always", node);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{node:?}: {err}");
        assert!(err.contains(want), "{node:?}: {err}");
    }
    let out = try_seed(script, &seed, &config, "sometimes", "node-1");
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ifChanged, ifAbsent or always"));
    assert_eq!(std::fs::read_to_string(&node_file).unwrap(), "kept: true\n");
}

/// ci/fleet-values.yaml: jetson-a and jetson-b have entries under `nodes:`, node-c has none.
/// The init container's script, run for each name against the rendered ConfigMap, writes each
/// node its own config.yaml, and each node's seed mode works on its own file.
#[test]
fn per_node_settings_reach_only_their_node() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &["fleet-values.yaml"], &[]).expect("fleet scenario renders");
    let data = r.config_map_data();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        [
            "config.yaml",
            "node-jetson-a.yaml",
            "node-jetson-b.mode",
            "node-jetson-b.yaml",
            "seed.sh"
        ]
    );
    // The init container knows which node it is on.
    let pod = r.pod();
    let init = &pod.init_containers.clone().expect("init containers")[0];
    let field = env(init, "NODE_NAME")
        .value_from
        .as_ref()
        .and_then(|v| v.field_ref.as_ref())
        .expect("NODE_NAME comes from a fieldRef");
    assert_eq!(field.field_path, "spec.nodeName");
    assert_eq!(
        env(init, "SEED_MODE").value.as_deref(),
        Some("ifChanged"),
        "configSeed.mode for every node without its own"
    );

    let dir = test_support::TempDir::new("helm-fleet-seed");
    let seed = dir.join("seed");
    r.write_seed(&seed);
    let script = &data["seed.sh"];
    let node_dir = |node: &str| {
        let d = dir.join(node);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let read = |node: &str| -> Value {
        serde_yaml::from_str(&std::fs::read_to_string(dir.join(node).join("config.yaml")).unwrap())
            .unwrap()
    };
    for node in ["jetson-a", "jetson-b", "node-c"] {
        let said = run_seed(script, &seed, &node_dir(node), "ifChanged", node);
        assert!(said.contains("Seeded"), "{node}: {said}");
    }
    let (a, b, c) = (read("jetson-a"), read("jetson-b"), read("node-c"));

    // jetson-a: its own interval and metric switch, its plug by device id.
    assert_eq!(a["interval"].as_i64(), Some(5));
    assert_eq!(
        a["metrics"]["jetson_temp_gpu_celsius"].as_bool(),
        Some(false)
    );
    assert_eq!(
        a["shelly"]["device_id"].as_str(),
        Some("shellyplugsg3-8cbfea99a7f8")
    );
    // jetson-b: the chart's metrics plus its own; its plug by its name.
    assert_eq!(b["interval"].as_i64(), Some(1));
    assert_eq!(
        b["metrics"]["jetson_temp_gpu_celsius"].as_bool(),
        Some(true)
    );
    assert_eq!(b["metrics"]["jetson_temp_tj_celsius"].as_bool(), Some(true));
    assert_eq!(b["shelly"]["device_id"].as_str(), Some("jetson-b"));
    // node-c (no entry): the chart's config, its plug by its name.
    assert_eq!(c["interval"].as_i64(), Some(1));
    assert_eq!(
        c["metrics"]["jetson_temp_gpu_celsius"].as_bool(),
        Some(true)
    );
    assert!(c["metrics"].get("jetson_temp_tj_celsius").is_none());
    assert_eq!(c["shelly"]["device_id"].as_str(), Some("node-c"));
    // What every pod shares is the same on every node.
    for cfg in [&a, &b, &c] {
        assert_eq!(config_port(cfg, "port"), 9102);
        assert_eq!(server_url(cfg), "http://localhost:8766");
        assert_eq!(cfg["device_type"].as_str(), Some("auto"));
        assert_eq!(cfg["host_root"].as_str(), Some("/host"));
        assert_eq!(
            cfg["tegrastats"]["path"].as_str(),
            Some("/usr/bin/tegrastats")
        );
    }
    // Each file is one the exporter accepts: it starts on it (ports and tegrastats moved).
    for (node, cfg) in [("jetson-a", &a), ("node-c", &c)] {
        let mut cfg = cfg.clone();
        cfg["port"] = Value::from(0);
        cfg["reload_port"] = Value::from(0);
        cfg["bind_address"] = Value::from("127.0.0.1");
        cfg["host_root"] = Value::from(dir.path().display().to_string());
        cfg["tegrastats"] = serde_yaml::from_str(&format!(
            "replay: {}",
            repo_root()
                .join("testdata/tegrastats/orin-agx-jp6.log")
                .display()
        ))
        .unwrap();
        let run = node_dir(&format!("{node}-run"));
        let file = run.join("config.yaml");
        std::fs::write(&file, serde_yaml::to_string(&cfg).unwrap()).unwrap();
        let mut cmd = test_support::daemon_command(&test_support::bin!("edge-metrics-exporter"));
        cmd.arg("--config").arg(&file);
        let e = Exporter::start(cmd, Some(&run));
        let shown = test_support::http::get(e.api, "/config").unwrap().json();
        assert_eq!(
            shown["shelly"]["device_id"],
            cfg["shelly"]["device_id"].as_str().unwrap()
        );
    }

    // The API edits each node's file; the chart is unchanged.
    for node in ["jetson-a", "jetson-b", "node-c"] {
        std::fs::write(dir.join(node).join("config.yaml"), "edited: true\n").unwrap();
    }
    let rerun = |r: &Rendered, node: &str| {
        let seed = dir.join(format!("seed-{node}"));
        let _ = std::fs::remove_dir_all(&seed);
        r.write_seed(&seed);
        let mode = env(&r.pod().init_containers.clone().unwrap()[0], "SEED_MODE")
            .value
            .clone()
            .unwrap();
        run_seed(
            &r.config_map_data()["seed.sh"],
            &seed,
            &dir.join(node),
            &mode,
            node,
        )
    };
    assert!(rerun(&r, "jetson-a").contains("Kept"));
    assert!(
        rerun(&r, "jetson-b").contains("Seeded"),
        "jetson-b's own seedMode is always"
    );
    assert!(rerun(&r, "node-c").contains("Kept"));

    // jetson-a's entry changes: jetson-a is seeded again (ifChanged), the others are not.
    let changed = template(
        &helm,
        &["fleet-values.yaml"],
        &["nodes.jetson-a.config.interval=10"],
    )
    .expect("renders");
    assert!(rerun(&changed, "jetson-a").contains("Seeded"));
    assert_eq!(read("jetson-a")["interval"].as_i64(), Some(10));
    assert!(rerun(&changed, "node-c").contains("Kept"));
    assert_eq!(
        std::fs::read_to_string(dir.join("node-c").join("config.yaml")).unwrap(),
        "edited: true\n"
    );
    // ...and with configSeed.mode=ifAbsent no node without its own mode is seeded again.
    std::fs::write(dir.join("jetson-a").join("config.yaml"), "edited: true\n").unwrap();
    let absent = template(
        &helm,
        &["fleet-values.yaml"],
        &[
            "nodes.jetson-a.config.interval=20",
            "configSeed.mode=ifAbsent",
        ],
    )
    .expect("renders");
    assert!(rerun(&absent, "jetson-a").contains("Kept"));
    assert!(rerun(&absent, "jetson-b").contains("Seeded"));

    // Every node's pod restarts on a change to any entry (one pod template).
    let annotation = |r: &Rendered| {
        r.daemonset()
            .spec
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()["checksum/config"]
            .clone()
    };
    assert_ne!(annotation(&r), annotation(&changed));
}

#[test]
fn bad_node_entries_fail_with_what_to_change() {
    let Some(helm) = helm() else { return };
    for (set, want) in [
        (
            "nodes.Jetson_A.shellyDevice=x",
            "\"Jetson_A\" is not a Kubernetes node name",
        ),
        (
            "nodes.jetson-a.shelyDevice=x",
            "nodes.jetson-a.shelyDevice is not a known key",
        ),
        (
            "nodes.jetson-a.config.port=1",
            "nodes.jetson-a.config.port cannot differ per node",
        ),
        (
            "nodes.jetson-a.config.tegrastats.path=/x",
            "nodes.jetson-a.config.tegrastats cannot differ per node",
        ),
        (
            "nodes.jetson-a.config.shelly.server_url=http://x",
            "nodes.jetson-a.config.shelly.server_url cannot differ per node",
        ),
        (
            "nodes.jetson-a.shellyDevice=a/b",
            "nodes.jetson-a.shellyDevice must be a plug's device id or alias",
        ),
        (
            "nodes.jetson-a.seedMode=sometimes",
            "nodes.jetson-a.seedMode must be ifChanged, ifAbsent or always",
        ),
        (
            "nodes.jetson-a.powerBudgetWatts=lots",
            "nodes.jetson-a.powerBudgetWatts must be a number of watts",
        ),
        (
            "nodes.jetson-a.config=5",
            "nodes.jetson-a.config must be a map",
        ),
    ] {
        let err = template(&helm, &[], &[set])
            .err()
            .unwrap_or_else(|| panic!("{set} rendered"));
        assert!(err.contains(want), "{set}: unhelpful error: {err}");
    }
}

/// The default plug mapping for real: two plugs dial one bridge as /node-1 and /node-2, the
/// second with its own power; the exporter seeded for node-2 reads node-2's plug, not the
/// first one the bridge lists.
#[test]
fn each_node_reads_the_plug_that_dials_its_name() {
    let Some(helm) = helm() else { return };
    let replay = repo_root().join("testdata/tegrastats/orin-agx-jp6.log");
    let r = template(
        &helm,
        &["kind-values.yaml"],
        &[
            &format!("tegrastats.replayFile={}", replay.display()),
            "bridge.wsToken.generate=false",
        ],
    )
    .expect("renders");
    let dir = test_support::TempDir::new("helm-plug-by-name");
    let bridge = e2e::proof::start_bridge(dir.path(), "bridge", &[]);
    let _first = bridge.plug(
        "node-1",
        &["--power", "11", "--jitter", "0"],
        Some(dir.path()),
    );
    bridge.wait_devices(1, Duration::from_secs(30));
    let _second = bridge.plug(
        "node-2",
        &["--power", "22", "--jitter", "0"],
        Some(dir.path()),
    );
    bridge.wait_devices(2, Duration::from_secs(30));

    let mut cfg = r.seeded_config("node-2");
    assert_eq!(cfg["shelly"]["device_id"].as_str(), Some("node-2"));
    cfg["port"] = Value::from(0);
    cfg["reload_port"] = Value::from(0);
    cfg["bind_address"] = Value::from("127.0.0.1");
    cfg["shelly"]["server_url"] = Value::from(format!("http://{}", bridge.http));
    let file = dir.join("config.yaml");
    std::fs::write(&file, serde_yaml::to_string(&cfg).unwrap()).unwrap();
    let e = e2e::proof::start_exporter(&file, dir.path());
    let watts = e.wait_sample("power_total_watts", Duration::from_secs(30));
    assert_eq!(watts, 22.0, "node-2 read another plug");
}

#[test]
fn management_beyond_loopback_gets_a_token_and_its_port() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &[], &[]).expect("defaults render");
    assert!(
        !r.secrets().contains_key("em-edge-metrics-api-token"),
        "no API token Secret while the API is on loopback"
    );

    // Open, without a Secret of one's own: the chart makes one and hands it to the exporter,
    // which would refuse to start without it (exit 64).
    for addr in ["0.0.0.0", "::"] {
        let r = template(&helm, &[], &[&format!("management.bindAddress={addr}")])
            .expect("an open management API renders");
        let pod = r.pod();
        let exporter = container(&pod, "exporter");
        assert_eq!(r.config()["reload_bind_address"].as_str(), Some(addr));
        let (name, key) = secret_ref(exporter, "EDGE_METRICS_API_TOKEN");
        assert_eq!(
            (name.as_str(), key.as_str()),
            ("em-edge-metrics-api-token", "token")
        );
        assert_usable_token(&secret_text(&r.secrets()[&name], &key));
        assert_eq!(port(exporter, "mgmt"), 9101);
        let svc: Service = r.one("Service");
        assert!(
            svc.spec
                .unwrap()
                .ports
                .unwrap()
                .iter()
                .any(|p| p.name.as_deref() == Some("mgmt") && p.port == 9101),
            "the Service exposes mgmt once the API is open"
        );
        // The probes still ask 127.0.0.1, which a listener on every address answers.
        assert_eq!(
            exec_command(exporter.readiness_probe.as_ref(), "exporter readiness"),
            ["/edge-metrics-exporter", "healthcheck"]
        );
    }

    // The operator's Secret wins, and then the chart makes none (ci/secured-values.yaml).
    let r = template(&helm, &["secured-values.yaml"], &[]).expect("secured scenario renders");
    let pod = r.pod();
    assert_eq!(
        secret_ref(container(&pod, "exporter"), "EDGE_METRICS_API_TOKEN"),
        ("edge-metrics-api".to_string(), "api-token".to_string())
    );
    assert!(
        r.secrets().is_empty(),
        "every token comes from the operator's Secrets: {:?}",
        r.secrets().keys()
    );

    // A given Secret reaches the exporter on loopback too, as it did before the bind address
    // was a value; the port stays undeclared.
    let r = template(&helm, &[], &["apiToken.existingSecret=mine"]).expect("renders");
    let pod = r.pod();
    let exporter = container(&pod, "exporter");
    assert_eq!(
        secret_ref(exporter, "EDGE_METRICS_API_TOKEN"),
        ("mine".to_string(), "token".to_string())
    );
    assert!(!has_port(exporter, "mgmt"));

    // A node's own address cannot be one value for a DaemonSet, and the probes would miss it.
    let err = template(&helm, &[], &["management.bindAddress=192.168.1.20"])
        .err()
        .expect("a LAN address fails");
    assert!(
        err.contains("management.bindAddress must be 127.0.0.1") && err.contains("192.168.1.20"),
        "unhelpful error: {err}"
    );
}

#[test]
fn plugs_need_a_token_from_a_generated_or_a_given_secret() {
    let Some(helm) = helm() else { return };
    // Nothing given: the chart makes a Secret and the bridge reads the token from its file.
    let r = template(&helm, &[], &[]).expect("defaults render");
    let pod = r.pod();
    let bridge = container(&pod, "shelly-bridge");
    assert_eq!(
        env(bridge, "SHELLY_WS_TOKEN_FILE").value.as_deref(),
        Some("/etc/shelly-bridge/ws-token/token")
    );
    assert!(
        !has_env(bridge, "SHELLY_WS_TOKEN"),
        "the token is a file, not a value `kubectl describe` shows"
    );
    assert_eq!(
        mounts(bridge).get("/etc/shelly-bridge/ws-token"),
        Some(&("shelly-ws-token".to_string(), true))
    );
    let (name, items) = secret_volume(&pod, "shelly-ws-token");
    assert_eq!(name, "em-edge-metrics-ws-token");
    assert_eq!(items, [("token".to_string(), "token".to_string())]);
    let secret = &r.secrets()[&name];
    let token = secret_text(secret, "token");
    assert_usable_token(&token);
    assert_eq!(
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("helm.sh/resource-policy"))
            .map(String::as_str),
        Some("keep"),
        "provisioned plugs hold the token: an uninstall keeps the Secret"
    );
    // Random, not derived from the release: without a cluster to read it back from, every
    // render makes another (generated_tokens_survive_an_upgrade shows `lookup` keeping it).
    let again = template(&helm, &[], &[]).expect("defaults render");
    assert_ne!(
        secret_text(&again.secrets()[&name], "token"),
        token,
        "two tokens made without a cluster are equal"
    );
    // Neither listener address is forced: the plug port stays on every address, the HTTP API
    // on loopback (SHELLY_BIND would move both).
    for var in ["SHELLY_BIND", "SHELLY_WS_BIND", "SHELLY_HTTP_BIND"] {
        assert!(!has_env(bridge, var), "{var} set by the chart");
    }

    // The operator's Secret, under any key: mounted as the same file, nothing generated.
    let r = template(
        &helm,
        &[],
        &[
            "bridge.wsToken.existingSecret=plug-token",
            "bridge.wsToken.key=secret",
        ],
    )
    .expect("renders");
    let pod = r.pod();
    assert_eq!(
        secret_volume(&pod, "shelly-ws-token"),
        (
            "plug-token".to_string(),
            vec![("secret".to_string(), "token".to_string())]
        )
    );
    assert_eq!(
        env(container(&pod, "shelly-bridge"), "SHELLY_WS_TOKEN_FILE")
            .value
            .as_deref(),
        Some("/etc/shelly-bridge/ws-token/token")
    );
    assert!(r.secrets().is_empty(), "{:?}", r.secrets().keys());

    // Opting out (for the switch-over of plugs provisioned without a token): no token at all.
    let r = template(&helm, &[], &["bridge.wsToken.generate=false"]).expect("renders");
    let pod = r.pod();
    let bridge = container(&pod, "shelly-bridge");
    assert!(!has_env(bridge, "SHELLY_WS_TOKEN_FILE"));
    assert!(mounts(bridge).is_empty());
    assert!(r.secrets().is_empty());

    // No bridge, no plug token.
    let r = template(&helm, &["logfile-no-bridge-values.yaml"], &[]).expect("renders");
    assert!(r.secrets().is_empty());
    assert!(pod_volume_names(&r.pod())
        .iter()
        .all(|v| !v.starts_with("shelly-")));
}

fn pod_volume_names(pod: &PodSpec) -> Vec<String> {
    pod.volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect()
}

#[test]
fn bridge_tls_allow_list_and_caps_come_from_values() {
    let Some(helm) = helm() else { return };
    // Defaults: plain ws://, every device, the bridge's own caps spelt out.
    let r = template(&helm, &[], &[]).expect("defaults render");
    let pod = r.pod();
    let bridge = container(&pod, "shelly-bridge");
    for var in [
        "SHELLY_WS_TLS_CERT",
        "SHELLY_WS_TLS_KEY",
        "SHELLY_ALLOW_DEVICES",
    ] {
        assert!(!has_env(bridge, var), "{var} set by default");
    }
    assert!(!pod_volume_names(&pod).contains(&"shelly-ws-tls".to_string()));
    let caps = |c: &Container| -> Vec<String> {
        [
            "SHELLY_MAX_PLUGS",
            "SHELLY_MAX_HTTP_CONNECTIONS",
            "SHELLY_MAX_PENDING_REQUESTS",
            "SHELLY_IDENTIFY_TIMEOUT",
        ]
        .iter()
        .map(|v| env(c, v).value.clone().unwrap_or_default())
        .collect()
    };
    assert_eq!(caps(bridge), ["2000", "256", "64", "10"]);

    // ci/secured-values.yaml: a kubernetes.io/tls Secret, an allow-list, tighter caps.
    let r = template(&helm, &["secured-values.yaml"], &[]).expect("secured scenario renders");
    let pod = r.pod();
    let bridge = container(&pod, "shelly-bridge");
    assert_eq!(
        mounts(bridge).get("/etc/shelly-bridge/tls"),
        Some(&("shelly-ws-tls".to_string(), true))
    );
    let (name, items) = secret_volume(&pod, "shelly-ws-tls");
    assert_eq!(name, "shelly-plugs-tls");
    assert_eq!(
        items,
        [
            ("tls.crt".to_string(), "tls.crt".to_string()),
            ("tls.key".to_string(), "tls.key".to_string())
        ]
    );
    assert_eq!(
        env(bridge, "SHELLY_WS_TLS_CERT").value.as_deref(),
        Some("/etc/shelly-bridge/tls/tls.crt")
    );
    assert_eq!(
        env(bridge, "SHELLY_WS_TLS_KEY").value.as_deref(),
        Some("/etc/shelly-bridge/tls/tls.key")
    );
    assert_eq!(
        env(bridge, "SHELLY_ALLOW_DEVICES").value.as_deref(),
        Some("shellyplugsg3-8cbfea99a7f8,shellypmmini-543204a1b2c3")
    );
    assert_eq!(caps(bridge), ["50", "32", "8", "5"]);
    assert_eq!(
        secret_volume(&pod, "shelly-ws-token").0,
        "shelly-plugs",
        "token and certificate are separate Secrets"
    );
}

/// Answers what `helm template --dry-run=server` asks the Kubernetes API for `lookup`: the
/// `v1` resource list, and a Secret by name from `secrets` (name → its JSON), 404 otherwise.
fn fake_api(secrets: Arc<Mutex<BTreeMap<String, String>>>) -> FakeHttp {
    FakeHttp::start(move |req| {
        let path = req.path.split('?').next().unwrap_or_default();
        if path == "/api/v1" {
            return Reply::json(
                200,
                r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[
                    {"name":"secrets","singularName":"secret","namespaced":true,"kind":"Secret",
                     "verbs":["get","list"]}]}"#,
            );
        }
        let held = path
            .strip_prefix("/api/v1/namespaces/monitoring/secrets/")
            .and_then(|name| {
                secrets
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(name)
                    .cloned()
            });
        held.map_or_else(
            || {
                Reply::json(
                    404,
                    r#"{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}"#,
                )
            },
            |body| Reply::json(200, body),
        )
    })
}

/// A Kubernetes API for `helm template --dry-run=server` ([`fake_api`]) and a kubeconfig that
/// points at it, in a directory of its own.
struct FakeCluster {
    /// Secret name → its JSON: what the cluster holds.
    store: Arc<Mutex<BTreeMap<String, String>>>,
    api: FakeHttp,
    kubeconfig: PathBuf,
    _dir: test_support::TempDir,
}

impl FakeCluster {
    fn start(label: &str) -> FakeCluster {
        let dir = test_support::TempDir::new(label);
        let store = Arc::new(Mutex::new(BTreeMap::new()));
        let api = fake_api(store.clone());
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\n\
                 clusters: [{{name: fake, cluster: {{server: \"{}\"}}}}]\n\
                 users: [{{name: u, user: {{}}}}]\n\
                 contexts: [{{name: c, context: {{cluster: fake, user: u}}}}]\n\
                 current-context: c\n",
                api.url()
            ),
        )
        .unwrap();
        FakeCluster {
            store,
            api,
            kubeconfig,
            _dir: dir,
        }
    }

    /// Stores the Secrets `names` as `install` rendered them, as after `helm install`.
    fn adopt<N: AsRef<str>>(&self, install: &Rendered, names: &[N]) {
        for name in names {
            let name = name.as_ref();
            let doc = install.secret_doc(name).expect("rendered");
            self.store
                .lock()
                .unwrap()
                .insert(name.to_string(), serde_json::to_string(&doc).unwrap());
        }
    }
}

/// The `token` key of each of the Secrets `names` in `r`.
fn tokens_of<N: AsRef<str>>(r: &Rendered, names: &[N]) -> Vec<String> {
    let secrets = r.secrets();
    names
        .iter()
        .map(|n| secret_text(&secrets[n.as_ref()], "token"))
        .collect()
}

#[test]
fn generated_tokens_survive_an_upgrade() {
    let Some(helm) = helm() else { return };
    let cluster = FakeCluster::start("helm-cluster");
    let kubeconfig = &cluster.kubeconfig;
    let names = ["em-edge-metrics-api-token", "em-edge-metrics-ws-token"];
    let sets = ["management.bindAddress=0.0.0.0"];

    let install = render(&helm, &[], &sets, Some(kubeconfig)).expect("install renders");
    let first = tokens_of(&install, &names);
    cluster.adopt(&install, &names);
    let upgrade = render(&helm, &[], &sets, Some(kubeconfig)).expect("upgrade renders");
    assert_eq!(
        tokens_of(&upgrade, &names),
        first,
        "an upgrade changed a token"
    );
    for name in names {
        assert!(
            cluster
                .api
                .requests()
                .iter()
                .any(|r| r.path == format!("/api/v1/namespaces/monitoring/secrets/{name}")),
            "helm never asked the cluster for {name}"
        );
    }
    // The operator's Secret is not the chart's to read or write.
    let own = render(
        &helm,
        &[],
        &[
            "management.bindAddress=0.0.0.0",
            "bridge.wsToken.existingSecret=em-edge-metrics-ws-token",
        ],
        Some(kubeconfig),
    )
    .expect("renders");
    assert_eq!(
        own.secrets().keys().collect::<Vec<_>>(),
        ["em-edge-metrics-api-token"]
    );

    // A fresh cluster gets new tokens.
    cluster.store.lock().unwrap().clear();
    let fresh = tokens_of(
        &render(&helm, &[], &sets, Some(kubeconfig)).expect("renders"),
        &names,
    );
    for (new, old) in fresh.iter().zip(&first) {
        assert_ne!(new, old, "a fresh install reused a token");
    }
}

/// A port free on this machine now. The probe commands read their port from the same
/// environment as the daemon, so port 0 does not do here.
fn free_port() -> String {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port()
        .to_string()
}

/// Secret name → key → bytes: what the test's cluster holds.
type Cluster = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

fn cluster_of(r: &Rendered) -> Cluster {
    r.secrets()
        .into_iter()
        .map(|(name, s)| {
            let data = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            (name, data)
        })
        .collect()
}

/// The environment `c` gets in the pod, rebuilt on this machine: each Secret volume it mounts
/// is written to a directory under `dir` (and values naming a path under that mount point
/// there instead), `secretKeyRef`s are read from `cluster`, and the node name is `node-1`.
fn pod_env(pod: &PodSpec, c: &Container, cluster: &Cluster, dir: &Path) -> Vec<(String, String)> {
    let mut moved = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let Some(sv) = volume(pod, &m.name).secret.as_ref() else {
            continue;
        };
        let name = sv.secret_name.clone().expect("secretName");
        let data = cluster
            .get(&name)
            .unwrap_or_else(|| panic!("the test's cluster has no Secret {name}"));
        let local = dir.join(&m.name);
        std::fs::create_dir_all(&local).unwrap();
        let items: Vec<(String, String)> = match &sv.items {
            Some(items) => items
                .iter()
                .map(|i| (i.key.clone(), i.path.clone()))
                .collect(),
            None => data.keys().map(|k| (k.clone(), k.clone())).collect(),
        };
        for (key, path) in items {
            let bytes = data
                .get(&key)
                .unwrap_or_else(|| panic!("Secret {name} has no key {key}"));
            std::fs::write(local.join(path), bytes).unwrap();
        }
        moved.push((format!("{}/", m.mount_path), local));
    }
    let resolve = |v: &EnvVar| -> String {
        if let Some(value) = &v.value {
            return moved
                .iter()
                .find_map(|(mount, local)| {
                    value
                        .strip_prefix(mount.as_str())
                        .map(|rest| local.join(rest).display().to_string())
                })
                .unwrap_or_else(|| value.clone());
        }
        let from = v.value_from.as_ref().expect("value or valueFrom");
        if let Some(r) = &from.secret_key_ref {
            let bytes = cluster
                .get(&r.name)
                .and_then(|d| d.get(&r.key))
                .unwrap_or_else(|| panic!("{}: no Secret {} key {}", v.name, r.name, r.key));
            return String::from_utf8(bytes.clone()).expect("text");
        }
        match &from.field_ref {
            Some(f) if f.field_path == "spec.nodeName" => "node-1".to_string(),
            _ => panic!("{}: unexpected valueFrom {from:?}", v.name),
        }
    };
    c.env
        .iter()
        .flatten()
        .map(|v| (v.name.clone(), resolve(v)))
        .collect()
}

fn set_env(env: &mut Vec<(String, String)>, name: &str, value: &str) {
    env.retain(|(k, _)| k != name);
    env.push((name.to_string(), value.to_string()));
}

/// `program` with exactly `env` (nothing inherited from the test) and `NO_COLOR`.
fn with_env(program: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = test_support::command(program);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("NO_COLOR", "1");
    cmd
}

/// Runs the probe command of `probe` (the image's binary at `/`, here the workspace's build)
/// with `env`; panics unless it exits 0.
fn run_probe(probe: Option<&Probe>, what: &str, program: &Path, env: &[(String, String)]) {
    let command = exec_command(probe, what);
    let name = program.file_name().unwrap().to_string_lossy();
    assert_eq!(
        command[0],
        format!("/{name}"),
        "{what} runs the image's binary"
    );
    let mut cmd = with_env(program, env);
    cmd.args(&command[1..]);
    let out = test_support::run_to_end(&mut cmd, Duration::from_secs(30));
    assert!(
        out.status.success(),
        "{what} ({command:?}) failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A simulated plug dialling `url`.
fn sim(name: &str, url: &str, extra: &[&str]) -> Daemon {
    let mut cmd = test_support::daemon_command(&test_support::bin!("shelly-sim"));
    cmd.args(["--url", url])
        .args(["--backoff-min-ms", "100", "--backoff-max-ms", "500"])
        .args(["--run-for", "120"])
        .args(extra);
    Daemon::start(name, cmd, None)
}

fn bridge_counter(b: &Bridge, series: &str) -> f64 {
    let text = test_support::http::get(b.http, "/bridge/metrics")
        .expect("the bridge's HTTP API answers")
        .body;
    test_support::prom::series(&text, series).unwrap_or_else(|| panic!("no {series}"))
}

#[test]
fn the_rendered_bridge_takes_its_token_allow_list_and_caps() {
    let Some(helm) = helm() else { return };
    const PLUG: &str = "shellyplugsg3-8cbfea99a7f8";
    let r = template(
        &helm,
        &[],
        &[
            &format!("bridge.allowDevices={{{PLUG}}}"),
            "bridge.limits.maxPlugs=7",
            "bridge.limits.maxPendingRequests=3",
        ],
    )
    .expect("renders");
    let pod = r.pod();
    let spec = container(&pod, "shelly-bridge");
    let dir = test_support::TempDir::new("helm-bridge");
    let cluster = cluster_of(&r);
    let mut env = pod_env(&pod, spec, &cluster, dir.path());
    for var in ["SHELLY_WS_PORT", "SHELLY_HTTP_PORT"] {
        set_env(&mut env, var, &free_port());
    }
    let program = test_support::bin!("shelly-bridge");
    let b = Bridge::start("bridge", with_env(&program, &env), None);
    let ready = b
        .proc
        .wait_line(&["Bridge ready."], test_support::daemon::STARTUP);
    for want in [
        "plug_auth=\"token\"",
        "allowed_devices=1 ",
        "max_plugs=7 ",
        "max_http_connections=256 ",
        "max_pending_requests=3 ",
        "identify_timeout_secs=10.0 ",
    ] {
        assert!(ready.contains(want), "{want} missing from: {ready}");
    }
    // Plugs reach the plug port on every address; the HTTP API stays on loopback.
    assert!(b.ws.ip().is_unspecified(), "plug port on {}", b.ws);
    assert!(b.http.ip().is_loopback(), "HTTP API on {}", b.http);
    run_probe(
        spec.readiness_probe.as_ref(),
        "bridge readiness",
        &program,
        &env,
    );
    run_probe(
        spec.liveness_probe.as_ref(),
        "bridge liveness",
        &program,
        &env,
    );

    // A plug set up as NOTES.txt says (the token from the Secret in the URL) registers.
    let token = secret_text(&r.secrets()["em-edge-metrics-ws-token"], "token");
    let ws = SocketAddr::from((Ipv4Addr::LOCALHOST, b.ws.port()));
    let _plug = sim(
        "plug",
        &format!("ws://{ws}/node-1?token={token}"),
        &["--id", PLUG],
    );
    let devices = b.wait_devices(1, Duration::from_secs(30));
    assert_eq!(devices["devices"][0], "node-1");

    // Without the token, even with the plug's own id: 401, and the plug stays registered.
    let _intruder = sim("intruder", &format!("ws://{ws}/intruder"), &["--id", PLUG]);
    test_support::wait_for(Duration::from_secs(30), "a refusal for the token", || {
        (bridge_counter(&b, "shelly_bridge_ws_rejected_total{reason=\"token\"}") >= 1.0)
            .then_some(())
    });
    // With the token but an id off the allow-list: closed.
    let _stranger = sim(
        "stranger",
        &format!("ws://{ws}/stranger?token={token}"),
        &["--id", "shellyplugsg3-000000000001"],
    );
    test_support::wait_for(
        Duration::from_secs(30),
        "a refusal by the allow-list",
        || {
            (bridge_counter(&b, "shelly_bridge_ws_rejected_total{reason=\"allow_list\"}") >= 1.0)
                .then_some(())
        },
    );
    assert_eq!(
        b.wait_devices(1, Duration::from_secs(5))["devices"][0],
        "node-1"
    );
}

#[test]
fn the_rendered_bridge_serves_wss_with_the_tls_secret() {
    let Some(helm) = helm() else { return };
    let Some(openssl) = openssl() else { return };
    let r = template(&helm, &["secured-values.yaml"], &[]).expect("secured scenario renders");
    let pod = r.pod();
    let spec = container(&pod, "shelly-bridge");
    let dir = test_support::TempDir::new("helm-tls");
    // The operator's Secrets: a token, and a certificate with its key as kubernetes.io/tls.
    let out = Command::new(openssl)
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .arg("-keyout")
        .arg(dir.join("tls.key"))
        .arg("-out")
        .arg(dir.join("tls.crt"))
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    let cluster: Cluster = [
        (
            "shelly-plugs",
            vec![("ws-token", b"operator-made-token.0123".to_vec())],
        ),
        (
            "shelly-plugs-tls",
            vec![("tls.crt", read("tls.crt")), ("tls.key", read("tls.key"))],
        ),
    ]
    .into_iter()
    .map(|(name, data)| {
        let data = data.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        (name.to_string(), data)
    })
    .collect();
    let mut env = pod_env(&pod, spec, &cluster, &dir.join("pod"));
    for var in ["SHELLY_WS_PORT", "SHELLY_HTTP_PORT"] {
        set_env(&mut env, var, &free_port());
    }
    let program = test_support::bin!("shelly-bridge");
    let b = Bridge::start("bridge-tls", with_env(&program, &env), None);
    b.proc.wait_line(
        &["Listening for plug WebSocket", "scheme=\"wss\""],
        test_support::daemon::STARTUP,
    );
    let ready = b
        .proc
        .wait_line(&["Bridge ready."], test_support::daemon::STARTUP);
    for want in [
        "plug_auth=\"token\"",
        "allowed_devices=2 ",
        "max_plugs=50 ",
        "max_http_connections=32 ",
        "max_pending_requests=8 ",
        "identify_timeout_secs=5.0 ",
    ] {
        assert!(ready.contains(want), "{want} missing from: {ready}");
    }
    run_probe(
        spec.readiness_probe.as_ref(),
        "bridge readiness",
        &program,
        &env,
    );
    // A plain ws:// plug cannot talk to a TLS listener.
    let ws = SocketAddr::from((Ipv4Addr::LOCALHOST, b.ws.port()));
    let _plug = sim(
        "plain-plug",
        &format!("ws://{ws}/node-1?token=operator-made-token.0123"),
        &[],
    );
    test_support::wait_for(Duration::from_secs(30), "a refusal for TLS", || {
        (bridge_counter(&b, "shelly_bridge_ws_rejected_total{reason=\"tls\"}") >= 1.0).then_some(())
    });
}

#[test]
fn the_rendered_exporter_opens_its_api_only_with_the_token() {
    let Some(helm) = helm() else { return };
    let replay = repo_root().join("testdata/tegrastats/orin-agx-jp6.log");
    let r = template(
        &helm,
        &["kind-values.yaml"],
        &[
            "management.bindAddress=0.0.0.0",
            &format!("tegrastats.replayFile={}", replay.display()),
        ],
    )
    .expect("renders");
    let pod = r.pod();
    let spec = container(&pod, "exporter");
    let dir = test_support::TempDir::new("helm-exporter");
    let mut cfg = r.seeded_config("node-1");
    let (metrics_port, api_port) = (free_port(), free_port());
    cfg["port"] = Value::from(metrics_port.parse::<u16>().unwrap());
    cfg["reload_port"] = Value::from(api_port.parse::<u16>().unwrap());
    let config = dir.join("config.yaml");
    std::fs::write(&config, serde_yaml::to_string(&cfg).unwrap()).unwrap();
    let mut env = pod_env(&pod, spec, &cluster_of(&r), dir.path());
    set_env(&mut env, "LOCAL_CONFIG_PATH", &config.display().to_string());
    let args: Vec<OsString> = spec
        .args
        .iter()
        .flatten()
        .map(|a| {
            if a == "/etc/edge-metrics/config.yaml" {
                config.clone().into_os_string()
            } else {
                OsString::from(a)
            }
        })
        .collect();
    let program = test_support::bin!("edge-metrics-exporter");
    let token = env
        .iter()
        .find(|(k, _)| k == "EDGE_METRICS_API_TOKEN")
        .map(|(_, v)| v.clone())
        .expect("the chart passes the token");

    // Without it the exporter would not start: the reason the chart must pass one.
    let without: Vec<_> = env
        .iter()
        .filter(|(k, _)| k != "EDGE_METRICS_API_TOKEN")
        .cloned()
        .collect();
    let out = test_support::run_to_end(
        with_env(&program, &without).args(&args),
        Duration::from_secs(30),
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{said}");
    assert!(said.contains("EDGE_METRICS_API_TOKEN"), "{said}");

    let mut cmd = with_env(&program, &env);
    cmd.args(&args);
    let e = Exporter::start(cmd, None);
    assert!(e.api.ip().is_unspecified(), "management API on {}", e.api);
    run_probe(
        spec.readiness_probe.as_ref(),
        "exporter readiness",
        &program,
        &env,
    );
    run_probe(
        spec.liveness_probe.as_ref(),
        "exporter liveness",
        &program,
        &env,
    );
    let api = SocketAddr::from((Ipv4Addr::LOCALHOST, e.api.port()));
    let get = |headers: &[(&str, &str)]| {
        test_support::http::request(api, "GET", "/config", headers, b"")
            .expect("the management API answers")
            .status
    };
    assert_eq!(get(&[]), 401, "an open API without the token");
    let bearer = format!("Bearer {token}");
    assert_eq!(get(&[("Authorization", bearer.as_str())]), 200);
}

// --- The optional Config Server (configServer.*) ---------------------------------------------

const CS_NAME: &str = "em-edge-metrics-config-server";
const CS_URL: &str = "http://em-edge-metrics-config-server.monitoring.svc.cluster.local:8080";

impl Rendered {
    fn deployment(&self) -> Deployment {
        self.one("Deployment")
    }

    fn config_server_pod(&self) -> PodSpec {
        self.deployment()
            .spec
            .expect("Deployment has a spec")
            .template
            .spec
            .expect("pod template has a spec")
    }

    /// The Service named `name`.
    fn service(&self, name: &str) -> Service {
        self.kind("Service")
            .into_iter()
            .map(|d| -> Service {
                serde_yaml::from_value(d.clone())
                    .unwrap_or_else(|e| panic!("Service does not deserialise: {e}"))
            })
            .find(|s| s.metadata.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no Service {name}"))
    }
}

/// True when every label of `selector` is in `labels`.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[test]
fn config_server_is_off_by_default_and_the_exporter_gets_no_url() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &[], &[]).expect("defaults render");
    assert!(r.kind("Deployment").is_empty());
    assert!(r.kind("PersistentVolumeClaim").is_empty());
    assert!(
        !r.secrets().keys().any(|k| k.contains("config-server")),
        "no Config Server token while it is off: {:?}",
        r.secrets().keys()
    );
    let pod = r.pod();
    let exporter = container(&pod, "exporter");
    assert!(!has_env(exporter, "CONFIG_SERVER_URL"));
    assert!(!has_env(exporter, "CONFIG_SERVER_TOKEN"));
}

#[test]
fn config_server_on_sqlite_runs_one_pod_on_a_pvc_with_generated_tokens() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &["config-server-sqlite-values.yaml"], &[]).expect("renders");
    let deploy = r.deployment();
    assert_eq!(deploy.metadata.name.as_deref(), Some(CS_NAME));
    let spec = deploy.spec.clone().expect("spec");
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(
        spec.strategy.and_then(|s| s.type_).as_deref(),
        Some("Recreate"),
        "one SQLite writer: the old pod must go before the new one opens the file"
    );

    // Its pods are its own: neither the exporter's Service nor the DaemonSet selects them,
    // and its Service selects nothing else.
    let pod_labels = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .expect("pod labels");
    let ds_labels = r
        .daemonset()
        .spec
        .unwrap()
        .template
        .metadata
        .and_then(|m| m.labels)
        .unwrap();
    let exporter_svc = r.service("em-edge-metrics").spec.unwrap().selector.unwrap();
    let cs_svc = r.service(CS_NAME).spec.unwrap();
    let cs_selector = cs_svc.selector.clone().unwrap();
    assert!(selects(&cs_selector, &pod_labels));
    assert!(!selects(&cs_selector, &ds_labels));
    assert!(!selects(&exporter_svc, &pod_labels));
    assert!(!selects(
        &r.daemonset().spec.unwrap().selector.match_labels.unwrap(),
        &pod_labels
    ));
    assert!(selects(
        &spec.selector.match_labels.clone().unwrap(),
        &pod_labels
    ));

    let pod = r.config_server_pod();
    let c = container(&pod, "config-server");
    assert_eq!(port(c, "http"), 8080);
    let svc_port = &cs_svc.ports.unwrap()[0];
    assert_eq!(
        (svc_port.port, svc_port.target_port.clone()),
        (8080, Some(IntOrString::String("http".into())))
    );
    assert_eq!(cs_svc.type_.as_deref(), Some("ClusterIP"));
    assert_eq!(
        env(c, "CONFIG_SERVER_LISTEN").value.as_deref(),
        Some("0.0.0.0:8080")
    );
    assert_eq!(
        env(c, "CONFIG_SERVER_DATABASE").value.as_deref(),
        Some("sqlite:///var/lib/edge-metrics-config-server/config-server.db")
    );
    let m = mounts(c);
    assert_eq!(
        m["/var/lib/edge-metrics-config-server"],
        ("data".to_string(), false)
    );
    assert_eq!(
        volume(&pod, "data")
            .persistent_volume_claim
            .as_ref()
            .map(|p| p.claim_name.as_str()),
        Some(CS_NAME)
    );
    let pvc: PersistentVolumeClaim = r.one("PersistentVolumeClaim");
    assert_eq!(pvc.metadata.name.as_deref(), Some(CS_NAME));
    assert_eq!(
        pvc.metadata
            .annotations
            .unwrap_or_default()
            .get("helm.sh/resource-policy")
            .map(String::as_str),
        Some("keep"),
        "an uninstall must not delete the fleet's configs"
    );
    let pvc_spec = pvc.spec.unwrap();
    assert_eq!(pvc_spec.storage_class_name.as_deref(), Some("local-path"));
    assert_eq!(pvc_spec.access_modes.unwrap_or_default(), ["ReadWriteOnce"]);
    assert_eq!(
        pvc_spec.resources.unwrap().requests.unwrap()["storage"].0,
        "2Gi"
    );

    // Non-root with a read-only root; the PVC is writable through fsGroup.
    let sc = c.security_context.clone().expect("securityContext");
    assert_eq!(
        (
            sc.run_as_user,
            sc.run_as_non_root,
            sc.read_only_root_filesystem
        ),
        (Some(65532), Some(true), Some(true))
    );
    assert_eq!(
        pod.security_context.as_ref().and_then(|p| p.fs_group),
        Some(65532)
    );
    for (probe, what) in [
        (c.liveness_probe.as_ref(), "liveness"),
        (c.readiness_probe.as_ref(), "readiness"),
    ] {
        assert_eq!(
            exec_command(probe, what),
            ["/edge-metrics-config-server", "healthcheck"]
        );
    }

    // Tokens: generated, as files; the exporters send the device token.
    let operator = format!("{CS_NAME}-operator-token");
    let device = format!("{CS_NAME}-device-token");
    assert_eq!(
        secret_volume(&pod, "operator-token"),
        (operator.clone(), vec![("token".into(), "token".into())])
    );
    assert_eq!(
        secret_volume(&pod, "device-token"),
        (device.clone(), vec![("token".into(), "token".into())])
    );
    assert_eq!(
        env(c, "CONFIG_SERVER_OPERATOR_TOKEN_FILE").value.as_deref(),
        Some("/etc/edge-metrics-config-server/operator-token/token")
    );
    assert_eq!(
        m["/etc/edge-metrics-config-server/operator-token"],
        ("operator-token".to_string(), true)
    );
    let secrets = r.secrets();
    assert_usable_token(&secret_text(&secrets[&operator], "token"));
    assert_usable_token(&secret_text(&secrets[&device], "token"));
    assert_ne!(
        secret_text(&secrets[&operator], "token"),
        secret_text(&secrets[&device], "token")
    );

    let ds_pod = r.pod();
    let exporter = container(&ds_pod, "exporter");
    assert_eq!(
        env(exporter, "CONFIG_SERVER_URL").value.as_deref(),
        Some(CS_URL)
    );
    assert_eq!(
        secret_ref(exporter, "CONFIG_SERVER_TOKEN"),
        (device, "token".to_string())
    );
    assert_eq!(
        ds_pod.dns_policy.as_deref(),
        Some("ClusterFirstWithHostNet"),
        "the exporter on the host network must resolve the Service's cluster name"
    );

    // More than one pod on one SQLite file is refused with the way out.
    let err = template(
        &helm,
        &["config-server-sqlite-values.yaml"],
        &["configServer.replicas=2"],
    )
    .err()
    .expect("two SQLite servers fail");
    assert!(
        err.contains("SQLite allows one server") && err.contains("database.existingSecret"),
        "unhelpful error: {err}"
    );
}

#[test]
fn config_server_on_postgres_takes_its_url_and_tokens_from_given_secrets() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &["config-server-postgres-values.yaml"], &[]).expect("renders");
    let spec = r.deployment().spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    assert_eq!(
        spec.strategy.and_then(|s| s.type_).as_deref(),
        Some("RollingUpdate")
    );
    assert!(
        r.kind("PersistentVolumeClaim").is_empty(),
        "no PVC for PostgreSQL"
    );
    assert!(
        !r.secrets().keys().any(|k| k.contains("config-server")),
        "every Config Server secret is the operator's: {:?}",
        r.secrets().keys()
    );
    let pod = r.config_server_pod();
    let c = container(&pod, "config-server");
    assert_eq!(
        secret_ref(c, "CONFIG_SERVER_DATABASE"),
        ("config-server-db".to_string(), "url".to_string())
    );
    assert!(volume(&pod, "data").empty_dir.is_some());
    assert_eq!(
        secret_volume(&pod, "operator-token"),
        (
            "config-server-tokens".to_string(),
            vec![("operator".into(), "token".into())]
        )
    );
    assert_eq!(
        secret_volume(&pod, "device-token"),
        (
            "config-server-tokens".to_string(),
            vec![("device".into(), "token".into())]
        )
    );
    let ds_pod = r.pod();
    let exporter = container(&ds_pod, "exporter");
    assert_eq!(
        env(exporter, "CONFIG_SERVER_URL").value.as_deref(),
        Some(CS_URL)
    );
    assert_eq!(
        secret_ref(exporter, "CONFIG_SERVER_TOKEN"),
        ("config-server-tokens".to_string(), "device".to_string())
    );
}

#[test]
fn config_server_tokens_survive_an_upgrade() {
    let Some(helm) = helm() else { return };
    let cluster = FakeCluster::start("helm-cs-cluster");
    let kubeconfig = Some(cluster.kubeconfig.as_path());
    let names = [
        format!("{CS_NAME}-operator-token"),
        format!("{CS_NAME}-device-token"),
    ];
    let values = ["config-server-sqlite-values.yaml"];
    let install = render(&helm, &values, &[], kubeconfig).expect("install renders");
    let first = tokens_of(&install, &names);
    cluster.adopt(&install, &names);
    let upgrade = render(&helm, &values, &[], kubeconfig).expect("upgrade renders");
    assert_eq!(
        tokens_of(&upgrade, &names),
        first,
        "an upgrade changed a Config Server token"
    );
}

#[test]
fn the_rendered_config_server_serves_the_rendered_exporter() {
    let Some(helm) = helm() else { return };
    let replay = repo_root().join("testdata/tegrastats/orin-agx-jp6.log");
    let r = template(
        &helm,
        &["kind-values.yaml", "config-server-sqlite-values.yaml"],
        &[&format!("tegrastats.replayFile={}", replay.display())],
    )
    .expect("renders");
    let cluster = cluster_of(&r);
    let dir = test_support::TempDir::new("helm-config-server");

    // The server with the pod's environment and token files; its port and database moved here.
    let cs_pod = r.config_server_pod();
    let spec = container(&cs_pod, "config-server");
    let mut env = pod_env(&cs_pod, spec, &cluster, &dir.join("cs"));
    let cs_port = free_port();
    set_env(
        &mut env,
        "CONFIG_SERVER_LISTEN",
        &format!("0.0.0.0:{cs_port}"),
    );
    let db = dir.join("config-server.db");
    set_env(
        &mut env,
        "CONFIG_SERVER_DATABASE",
        &format!("sqlite://{}", db.display()),
    );
    let program = test_support::bin!("edge-metrics-config-server");
    let mut cmd = test_support::daemon_command(&program);
    cmd.env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("NO_COLOR", "1");
    let server = Daemon::start("config-server", cmd, None);
    // Beyond loopback it starts only because the token files are usable.
    let addr = server.wait_addr(&["Listening."], Duration::from_secs(30));
    assert!(addr.ip().is_unspecified(), "listens on {addr}");
    run_probe(
        spec.readiness_probe.as_ref(),
        "config server readiness",
        &program,
        &env,
    );
    run_probe(
        spec.liveness_probe.as_ref(),
        "config server liveness",
        &program,
        &env,
    );

    // The exporter with the DaemonSet's environment, its URL pointed at this server.
    let pod = r.pod();
    let ex = container(&pod, "exporter");
    let mut cfg = r.seeded_config("node-1");
    cfg["port"] = Value::from(free_port().parse::<u16>().unwrap());
    cfg["reload_port"] = Value::from(free_port().parse::<u16>().unwrap());
    let config = dir.join("config.yaml");
    std::fs::write(&config, serde_yaml::to_string(&cfg).unwrap()).unwrap();
    let mut ex_env = pod_env(&pod, ex, &cluster, &dir.join("exporter"));
    let url = ex_env
        .iter()
        .find(|(k, _)| k == "CONFIG_SERVER_URL")
        .map(|(_, v)| v.clone())
        .expect("the chart points the exporter at the server");
    assert_eq!(url, CS_URL);
    set_env(
        &mut ex_env,
        "CONFIG_SERVER_URL",
        &format!("http://127.0.0.1:{cs_port}"),
    );
    set_env(
        &mut ex_env,
        "LOCAL_CONFIG_PATH",
        &config.display().to_string(),
    );
    let mut cmd = with_env(&test_support::bin!("edge-metrics-exporter"), &ex_env);
    cmd.arg("--config").arg(&config);
    let _exporter = Exporter::start(cmd, None);

    // The operator (token from the generated Secret) sees the node among the devices.
    let operator =
        String::from_utf8(cluster[&format!("{CS_NAME}-operator-token")]["token"].clone()).unwrap();
    let bearer = format!("Bearer {operator}");
    let local = SocketAddr::from((Ipv4Addr::LOCALHOST, cs_port.parse::<u16>().unwrap()));
    let devices = || {
        test_support::http::request(
            local,
            "GET",
            "/devices",
            &[("Authorization", bearer.as_str())],
            b"",
        )
        .expect("the server answers")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let resp = devices();
        assert_eq!(resp.status, 200, "{}", resp.text());
        let body = resp.json();
        let listed = body["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device"] == "node-1")
            .cloned();
        if let Some(d) = listed.filter(|d| !d["layer"].is_null()) {
            assert_eq!(d["device_type"], "jetson_orin");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "node-1 never pushed its config: {body}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The device token (the exporter's) may not list the fleet.
    let device =
        String::from_utf8(cluster[&format!("{CS_NAME}-device-token")]["token"].clone()).unwrap();
    let status = test_support::http::request(
        local,
        "GET",
        "/devices",
        &[("Authorization", format!("Bearer {device}").as_str())],
        b"",
    )
    .unwrap()
    .status;
    assert_eq!(status, 403);
}

/// `device_type: auto` by default: the node's device tree and L4T release file are mounted
/// read-only under /host and config.yaml reads them there; without the mounts no host_root is
/// set, and a host_root of the operator's own is kept.
#[test]
fn device_detection_mounts_the_identity_files_and_sets_host_root() {
    let Some(helm) = helm() else { return };
    let r = template(&helm, &["default-values.yaml"], &[]).expect("defaults render");
    let cfg = r.config();
    assert_eq!(cfg["device_type"].as_str(), Some("auto"));
    assert_eq!(cfg["host_root"].as_str(), Some("/host"));
    let pod = r.pod();
    let m = mounts(container(&pod, "exporter"));
    for (inside, host, kind) in [
        (
            "/host/proc/device-tree",
            "/sys/firmware/devicetree/base",
            "Directory",
        ),
        (
            "/host/etc/nv_tegra_release",
            "/etc/nv_tegra_release",
            "File",
        ),
    ] {
        let (vol, ro) = m
            .get(inside)
            .unwrap_or_else(|| panic!("exporter does not mount {inside}"));
        assert!(ro, "{inside} must be read-only");
        let hp = volume(&pod, vol).host_path.clone().expect("a hostPath");
        assert_eq!((hp.path.as_str(), hp.type_.as_deref()), (host, Some(kind)));
    }

    let r = template(&helm, &[], &["device.hostMounts=null"]).expect("no mounts render");
    assert!(r.config().get("host_root").is_none());
    let m = mounts(container(&r.pod(), "exporter"));
    assert!(!m.keys().any(|p| p.starts_with("/host/")), "{m:?}");

    let r = template(
        &helm,
        &[],
        &["config.host_root=/mnt/node", "device.hostRoot=/mnt/node"],
    )
    .expect("own host_root renders");
    assert_eq!(r.config()["host_root"].as_str(), Some("/mnt/node"));
    let m = mounts(container(&r.pod(), "exporter"));
    assert!(m.contains_key("/mnt/node/proc/device-tree"), "{m:?}");
}
