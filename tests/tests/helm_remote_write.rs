//! The chart's remote-write agent (`remoteWrite`, `templates/remote-write.yaml`), rendered with
//! the real `helm template` and read back into Kubernetes API types: off by default; when on, a
//! DaemonSet of its own on the pair's nodes with the host network, its WAL on a hostPath, the
//! node name for the `node` label, credentials from a Secret, httpGet probes on the node's
//! loopback and resource limits; values that cannot work fail with the fix.
//!
//! The rendered pieces also run: the init container's script (`render.sh`) fills the Secret's
//! URL and user name into the config template, `promtool check config --agent` accepts the
//! result, and a real Prometheus started with the container's own arguments remote-writes to a
//! real receiver (a second Prometheus, `--web.enable-remote-write-receiver`, asking for the
//! basic-auth credentials of `ci/remote-write-values.yaml`), which then answers PromQL for the
//! agent's series with the external labels cluster, site, region and node.
//!
//! Tools: `HELM` (else `.tools/bin/helm`, from `scripts/setup/helm.sh`), `PROMTOOL` (else
//! `promtool`) and `PROMETHEUS` (else `prometheus`; both from `scripts/setup/deps.sh`). A missing
//! tool fails the test unless `EDGE_METRICS_ALLOW_SKIP` names it (`test_support::require`).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

mod chart;

use chart::{chart_dir, container, helm};
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec, Secret, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_yaml::Value;
use test_support::{wait_for, TempDir};

const VALUES: &str = "remote-write-values.yaml";
/// The credentials of `ci/remote-write-values.yaml`.
const USERNAME: &str = "edge-fleet";
const PASSWORD: &str = "ci-only-password";
/// bcrypt (cost 4) of PASSWORD, for the receiver's web config.
const PASSWORD_BCRYPT: &str = "$2b$04$XhHYJukn4WZ/1W/Wiy0aSOVeTTmR9cJQ1B0xLoGp9SKc4DfQHpRCm";
/// `Basic` + base64 of USERNAME:PASSWORD, for our queries to the receiver.
const BASIC: &str = "Basic ZWRnZS1mbGVldDpjaS1vbmx5LXBhc3N3b3Jk";

fn prom_tool(name: &str) -> Option<PathBuf> {
    let var = name.to_ascii_uppercase();
    test_support::require::tool_at(
        name,
        Some(&var),
        Path::new(name),
        "scripts/setup/deps.sh (Debian package prometheus)",
    )
}

/// The documents of one `helm template` run, or helm's error output.
fn render(helm: &Path, values: &[&str], sets: &[&str]) -> Result<Vec<Value>, String> {
    chart::render(helm, values, sets, None)
}

/// The one document of `kind` named `name`, as the API type.
fn named<T: serde::de::DeserializeOwned>(docs: &[Value], kind: &str, name: &str) -> T {
    let found: Vec<_> = docs
        .iter()
        .filter(|d| {
            d["kind"].as_str() == Some(kind) && d["metadata"]["name"].as_str() == Some(name)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} {name}, got {}",
        found.len()
    );
    serde_yaml::from_value(found[0].clone())
        .unwrap_or_else(|e| panic!("{kind} {name} does not deserialise into the API type: {e}"))
}

fn names_of(docs: &[Value], kind: &str) -> Vec<String> {
    docs.iter()
        .filter(|d| d["kind"].as_str() == Some(kind))
        .filter_map(|d| d["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

fn pod_of(ds: &DaemonSet) -> PodSpec {
    ds.spec
        .as_ref()
        .and_then(|s| s.template.spec.clone())
        .expect("the DaemonSet has a pod spec")
}

fn args(c: &Container) -> Vec<String> {
    c.args.clone().unwrap_or_default()
}

/// The agent's config template and init script from its ConfigMap.
fn agent_files(docs: &[Value]) -> (String, String) {
    let cm: ConfigMap = named(docs, "ConfigMap", "em-edge-metrics-agent");
    let data = cm.data.expect("the agent ConfigMap has data");
    (
        data.get("agent.yml.tmpl").expect("agent.yml.tmpl").clone(),
        data.get("render.sh").expect("render.sh").clone(),
    )
}

/// Runs the init container's script as the pod would (same environment names), with `secret`
/// as the mounted Secret. Returns the written agent.yml, or the script's error output.
fn run_render(
    docs: &[Value],
    auth: &str,
    secret: &[(&str, &str)],
    dir: &TempDir,
) -> Result<String, String> {
    let (template, script) = agent_files(docs);
    let secret_dir = dir.join("secret");
    let out_dir = dir.join("config");
    let wal_dir = dir.join("wal");
    for d in [&secret_dir, &out_dir, &wal_dir] {
        std::fs::create_dir_all(d).expect("temp dirs");
    }
    for (k, v) in secret {
        std::fs::write(secret_dir.join(k), v).expect("write a Secret key");
    }
    std::fs::write(dir.join("agent.yml.tmpl"), template).expect("write the template");
    std::fs::write(dir.join("render.sh"), script).expect("write the script");
    // Our own uid and gid: the pod's root chowns to 65532, a test user cannot.
    let id = |flag: &str| {
        let out = Command::new("id").arg(flag).output().expect("id runs");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let out = Command::new("sh")
        .arg(dir.join("render.sh"))
        .env("AUTH", auth)
        .env("SECRET_DIR", &secret_dir)
        .env("TEMPLATE", dir.join("agent.yml.tmpl"))
        .env("OUT_DIR", &out_dir)
        .env("WAL_DIR", &wal_dir)
        .env("AGENT_UID", id("-u"))
        .env("AGENT_GID", id("-g"))
        .output()
        .expect("sh runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(std::fs::read_to_string(out_dir.join("agent.yml")).expect("render.sh wrote agent.yml"))
}

fn promtool_accepts(promtool: &Path, config: &str, dir: &TempDir) {
    let path = dir.join("check.yml");
    std::fs::write(&path, config).expect("write the config");
    let out = Command::new(promtool)
        .args(["check", "config", "--agent"])
        .arg(&path)
        .output()
        .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check config --agent rejects the rendered config:\n{config}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn remote_write_is_off_by_default() {
    let Some(helm) = helm() else { return };
    let docs = render(&helm, &["default-values.yaml"], &[]).expect("defaults render");
    for kind in ["DaemonSet", "ConfigMap", "Secret"] {
        let names = names_of(&docs, kind);
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with("-agent") || n.ends_with("-remote-write")),
            "remoteWrite is off by default, yet {kind}s {names:?} are rendered"
        );
    }
}

#[test]
fn the_ci_values_pass_helm_lint_strict() {
    let Some(helm) = helm() else { return };
    let out = Command::new(&helm)
        .args(["lint", "--strict"])
        .arg(chart_dir())
        .arg("-f")
        .arg(chart_dir().join("ci").join(VALUES))
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm lint --strict -f ci/{VALUES}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_agent_runs_as_its_own_daemonset_on_the_pairs_nodes() {
    let Some(helm) = helm() else { return };
    let docs = render(&helm, &[VALUES], &[]).expect("ci/remote-write-values.yaml renders");
    let pair: DaemonSet = named(&docs, "DaemonSet", "em-edge-metrics");
    let agent: DaemonSet = named(&docs, "DaemonSet", "em-edge-metrics-agent");
    let (pair_pod, pod) = (pod_of(&pair), pod_of(&agent));

    // The pair's pod is untouched: still its two containers.
    let pair_containers: Vec<_> = pair_pod
        .containers
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(pair_containers, ["exporter", "shelly-bridge"]);
    // Same nodes as the pair.
    assert_eq!(
        pod.node_selector, pair_pod.node_selector,
        "nodeSelector follows the pair's"
    );
    assert_eq!(
        pod.tolerations, pair_pod.tolerations,
        "tolerations follow the pair's"
    );
    assert_eq!(
        pod.host_network,
        Some(true),
        "loopback scraping needs the host network"
    );
    assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));
    assert_eq!(pod.automount_service_account_token, Some(false));

    // Its pods are not the pair's: the pair's Service and DaemonSet select neither.
    let agent_labels = agent
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .expect("agent pod labels");
    let service: Service = named(&docs, "Service", "em-edge-metrics");
    let selects =
        |sel: &BTreeMap<String, String>| sel.iter().all(|(k, v)| agent_labels.get(k) == Some(v));
    let svc_sel = service
        .spec
        .and_then(|s| s.selector)
        .expect("Service selector");
    assert!(
        !selects(&svc_sel),
        "the pair's Service would select the agent's pods: {svc_sel:?}"
    );
    let ds_sel = pair
        .spec
        .expect("spec")
        .selector
        .match_labels
        .expect("matchLabels");
    assert!(
        !selects(&ds_sel),
        "the pair's DaemonSet would adopt the agent's pods"
    );

    let c = container(&pod, "prometheus-agent");
    let a = args(c);
    for want in [
        "--enable-feature=agent,expand-external-labels",
        "--config.file=/etc/prometheus-agent/config/agent.yml",
        "--storage.agent.path=/var/lib/prometheus-agent",
        "--storage.agent.wal-compression",
        "--storage.agent.retention.max-time=24h",
        "--web.listen-address=127.0.0.1:9090",
    ] {
        assert!(a.iter().any(|x| x == want), "agent args lack {want}: {a:?}");
    }
    // Tagged with the chart's appVersion, like the pair's images.
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml is YAML");
    let app_version = chart["appVersion"].as_str().expect("appVersion");
    assert_eq!(
        c.image.as_deref(),
        Some(format!("ghcr.io/edge-metrics/prometheus-agent:{app_version}").as_str())
    );

    // NODE_NAME (the node label) from the downward API; GOMEMLIMIT from the memory limit.
    let env = c.env.clone().unwrap_or_default();
    let from = |name: &str| {
        env.iter()
            .find(|e| e.name == name)
            .and_then(|e| e.value_from.clone())
            .unwrap_or_else(|| panic!("agent env {name} missing or not valueFrom"))
    };
    assert_eq!(
        from("NODE_NAME").field_ref.expect("fieldRef").field_path,
        "spec.nodeName"
    );
    assert_eq!(
        from("GOMEMLIMIT")
            .resource_field_ref
            .expect("resourceFieldRef")
            .resource,
        "limits.memory"
    );

    // Resources set (the measured sizes), a locked-down user, probes on the node's loopback.
    let res = c.resources.clone().expect("resources");
    let limits = res.limits.expect("limits");
    assert_eq!(limits["memory"].0, "160Mi");
    assert_eq!(limits["cpu"].0, "250m");
    assert_eq!(res.requests.expect("requests")["memory"].0, "64Mi");
    let sc = c.security_context.clone().expect("securityContext");
    assert_eq!(sc.run_as_user, Some(65532));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        sc.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_string()])
    );
    for (probe, path) in [
        (&c.liveness_probe, "/-/healthy"),
        (&c.readiness_probe, "/-/ready"),
    ] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.clone())
            .expect("httpGet probe");
        assert_eq!(get.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(get.port, IntOrString::Int(9090));
    }

    // The WAL on a per-node hostPath; the Secret's keys as files; the config from the init
    // container, which alone may chown.
    let mounts: BTreeMap<_, _> = c
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| (m.mount_path.clone(), m.name.clone()))
        .collect();
    assert_eq!(mounts["/var/lib/prometheus-agent"], "wal");
    assert_eq!(mounts["/etc/prometheus-agent/secret"], "secret");
    assert_eq!(mounts["/etc/prometheus-agent/config"], "config");
    let vol = |name: &str| {
        pod.volumes
            .iter()
            .flatten()
            .find(|v| v.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no volume {name}"))
    };
    let wal = vol("wal").host_path.expect("the WAL is a hostPath");
    assert_eq!(wal.path, "/var/lib/edge-metrics-agent");
    assert_eq!(wal.type_.as_deref(), Some("DirectoryOrCreate"));
    let secret = vol("secret").secret.expect("a Secret volume");
    assert_eq!(
        secret.secret_name.as_deref(),
        Some("em-edge-metrics-remote-write")
    );
    let items: Vec<_> = secret
        .items
        .iter()
        .flatten()
        .map(|i| (i.key.as_str(), i.path.as_str()))
        .collect();
    assert_eq!(
        items,
        [
            ("url", "url"),
            ("username", "username"),
            ("password", "password")
        ]
    );
    let init = container(&pod, "render-config");
    let isc = init.security_context.clone().expect("init securityContext");
    assert_eq!(
        isc.capabilities.and_then(|c| c.add),
        Some(vec!["CHOWN".to_string()])
    );
    assert_eq!(isc.read_only_root_filesystem, Some(true));

    // The chart-made Secret holds what the values say.
    let s: Secret = named(&docs, "Secret", "em-edge-metrics-remote-write");
    let data = s.string_data.expect("stringData");
    assert_eq!(
        data["url"],
        "https://metrics.example.com/api/v1/write?tenant=edge&x=a&y=b"
    );
    assert_eq!(data["username"], USERNAME);
    assert_eq!(data["password"], PASSWORD);
}

#[test]
fn the_init_script_fills_the_secret_into_a_config_promtool_accepts() {
    let Some(helm) = helm() else { return };
    let Some(promtool) = prom_tool("promtool") else {
        return;
    };
    let docs = render(&helm, &[VALUES], &[]).expect("renders");
    let dir = TempDir::new("rw-render");
    // `&` and `?` stay as they are: the script replaces text, not a pattern.
    let url = "https://mimir.example/api/v1/push?a=1&b=%2F";
    let cfg = run_render(
        &docs,
        "basic",
        &[("url", url), ("username", USERNAME), ("password", PASSWORD)],
        &dir,
    )
    .expect("render.sh succeeds");
    promtool_accepts(&promtool, &cfg, &dir);
    let v: Value = serde_yaml::from_str(&cfg).expect("agent.yml is YAML");
    let rw = &v["remote_write"][0];
    assert_eq!(rw["url"].as_str(), Some(url));
    assert_eq!(rw["basic_auth"]["username"].as_str(), Some(USERNAME));
    assert_eq!(
        rw["basic_auth"]["password_file"].as_str(),
        Some("/etc/prometheus-agent/secret/password")
    );
    assert!(
        !cfg.contains(PASSWORD),
        "the password must stay in its file, not the config"
    );
    assert_eq!(
        rw["queue_config"]["retry_on_http_429"].as_bool(),
        Some(true)
    );
    assert_eq!(
        rw["write_relabel_configs"][0]["action"].as_str(),
        Some("drop")
    );
    let labels = &v["global"]["external_labels"];
    assert_eq!(labels["cluster"].as_str(), Some("ci"));
    assert_eq!(labels["site"].as_str(), Some("lab-1"));
    assert_eq!(labels["region"].as_str(), Some("eu-west"));
    assert_eq!(labels["node"].as_str(), Some("${NODE_NAME}"));
    assert_eq!(v["global"]["scrape_interval"].as_str(), Some("5s"));
    let jobs: Vec<_> = v["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .map(|j| {
            (
                j["job_name"].as_str().unwrap_or(""),
                j["static_configs"][0]["targets"][0].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        jobs,
        [
            ("edge-metrics-exporter", "127.0.0.1:9102"),
            ("shelly-bridge", "127.0.0.1:8766"),
            ("prometheus-agent", "127.0.0.1:9090"),
        ]
    );

    // A value that would leave its quotes, or a Secret without the key, stops the pod's start.
    let bad = TempDir::new("rw-render-bad");
    let err = run_render(
        &docs,
        "basic",
        &[
            ("url", "https://x/'y"),
            ("username", "u"),
            ("password", "p"),
        ],
        &bad,
    )
    .expect_err("a quote in the URL is refused");
    assert!(err.contains("no quote"), "{err}");
    let bad = TempDir::new("rw-render-nokey");
    let err = run_render(
        &docs,
        "basic",
        &[("url", "https://x/"), ("password", "p")],
        &bad,
    )
    .expect_err("a missing username is refused");
    assert!(err.contains("no key username"), "{err}");
    let bad = TempDir::new("rw-render-scheme");
    let err = run_render(
        &docs,
        "basic",
        &[("url", "ftp://x/"), ("username", "u"), ("password", "p")],
        &bad,
    )
    .expect_err("a non-HTTP URL is refused");
    assert!(err.contains("http:// or https://"), "{err}");
}

#[test]
fn bearer_auth_from_an_existing_secret_and_changed_ports() {
    let Some(helm) = helm() else { return };
    let Some(promtool) = prom_tool("promtool") else {
        return;
    };
    let docs = render(
        &helm,
        &[VALUES, "ports-values.yaml"],
        &[
            "remoteWrite.auth=bearer",
            "remoteWrite.existingSecret=central-store",
            "remoteWrite.secretKeys.url=endpoint",
            "remoteWrite.secretKeys.token=api-key",
            "remoteWrite.port=19090",
            "bridge.enabled=false",
        ],
    )
    .expect("renders");
    assert!(
        !names_of(&docs, "Secret")
            .iter()
            .any(|n| n.ends_with("-remote-write")),
        "with existingSecret the chart makes no Secret"
    );
    let pod = pod_of(&named(&docs, "DaemonSet", "em-edge-metrics-agent"));
    let secret = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "secret")
        .and_then(|v| v.secret.clone())
        .expect("secret volume");
    assert_eq!(secret.secret_name.as_deref(), Some("central-store"));
    let items: Vec<_> = secret
        .items
        .iter()
        .flatten()
        .map(|i| (i.key.as_str(), i.path.as_str()))
        .collect();
    assert_eq!(items, [("endpoint", "url"), ("api-key", "token")]);
    let dir = TempDir::new("rw-bearer");
    let cfg = run_render(
        &docs,
        "bearer",
        &[
            ("url", "http://vm.example:8428/api/v1/write"),
            ("token", "t0k3n"),
        ],
        &dir,
    )
    .expect("render.sh succeeds");
    promtool_accepts(&promtool, &cfg, &dir);
    let v: Value = serde_yaml::from_str(&cfg).expect("YAML");
    let rw = &v["remote_write"][0];
    assert_eq!(
        rw["authorization"]["credentials_file"].as_str(),
        Some("/etc/prometheus-agent/secret/token")
    );
    assert!(rw.get("basic_auth").is_none());
    // ports-values.yaml moves the exporter's port; the bridge is off, so is its job.
    let ports: Value = serde_yaml::from_str(
        &std::fs::read_to_string(chart_dir().join("ci/ports-values.yaml"))
            .expect("ports-values.yaml"),
    )
    .expect("YAML");
    let metrics = ports["ports"]["metrics"].as_i64().expect("ports.metrics");
    let targets: Vec<_> = v["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .map(|j| {
            j["static_configs"][0]["targets"][0]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(
        targets,
        [
            format!("127.0.0.1:{metrics}"),
            "127.0.0.1:19090".to_string()
        ]
    );
}

#[test]
fn values_that_cannot_work_fail_with_a_reason() {
    let Some(helm) = helm() else { return };
    for (sets, want) in [
        (
            vec!["remoteWrite.externalLabels.cluster="],
            "remoteWrite.externalLabels.cluster is required",
        ),
        (
            vec!["remoteWrite.externalLabels.site="],
            "remoteWrite.externalLabels.site is required",
        ),
        (
            vec!["remoteWrite.url=ftp://x"],
            "remoteWrite.url must be an http:// or https:// URL",
        ),
        (
            vec!["remoteWrite.auth=digest"],
            "remoteWrite.auth must be basic, bearer or none",
        ),
        (
            vec!["remoteWrite.password="],
            "remoteWrite.auth basic needs",
        ),
        (
            vec!["hostNetwork=false"],
            "remoteWrite.enabled needs hostNetwork: true",
        ),
    ] {
        let err = render(&helm, &[VALUES], &sets).expect_err(&format!("{sets:?} should fail"));
        assert!(
            err.contains(want),
            "{sets:?}: the error should say {want:?}, got {err}"
        );
    }
}

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

/// Kills and reaps a child on drop; prints its log when the test failed.
struct Guard {
    child: Child,
    log: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<_> = text.lines().rev().take(20).collect();
            eprintln!("--- {} (last lines)", self.log.display());
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

fn spawn(program: &Path, args: &[String], env: &[(&str, &str)], log: PathBuf) -> Guard {
    let file = std::fs::File::create(&log).expect("log file");
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone"))
        .stderr(file);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Guard {
        child: cmd.spawn().expect("prometheus starts"),
        log,
    }
}

/// `%`-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn the_rendered_agent_remote_writes_with_its_labels_and_credentials() {
    let Some(helm) = helm() else { return };
    let Some(prometheus) = prom_tool("prometheus") else {
        return;
    };
    let docs = render(&helm, &[VALUES], &[]).expect("renders");
    let dir = TempDir::new("rw-agent");
    let receiver = free_addr();
    let agent_addr = free_addr();

    // The receiver asks for the ci values' credentials.
    let web = dir.join("receiver-web.yml");
    std::fs::write(
        &web,
        format!("basic_auth_users:\n  {USERNAME}: {PASSWORD_BCRYPT}\n"),
    )
    .expect("web config");
    std::fs::write(dir.join("receiver.yml"), "global: {}\n").expect("receiver config");
    let _receiver = spawn(
        &prometheus,
        &[
            format!("--config.file={}", dir.join("receiver.yml").display()),
            format!("--web.config.file={}", web.display()),
            format!(
                "--storage.tsdb.path={}",
                dir.join("receiver-data").display()
            ),
            format!("--web.listen-address={receiver}"),
            "--web.enable-remote-write-receiver".to_string(),
        ],
        &[],
        dir.join("receiver.log"),
    );

    // The config as the init container writes it, with the Secret's password file where this
    // test keeps it (the pod mounts it at /etc/prometheus-agent/secret).
    let cfg = run_render(
        &docs,
        "basic",
        &[
            ("url", &format!("http://{receiver}/api/v1/write")),
            ("username", USERNAME),
            ("password", PASSWORD),
        ],
        &dir,
    )
    .expect("render.sh succeeds");
    let cfg = cfg.replace(
        "/etc/prometheus-agent/secret/",
        &format!("{}/", dir.join("secret").display()),
    );
    std::fs::write(dir.join("config/agent.yml"), &cfg).expect("write agent.yml");

    // The container's own arguments, with this test's paths and port.
    let pod = pod_of(&named(&docs, "DaemonSet", "em-edge-metrics-agent"));
    let c = container(&pod, "prometheus-agent");
    let run_args: Vec<String> = args(c)
        .into_iter()
        .map(|a| match a.split_once('=') {
            Some(("--config.file", _)) => {
                format!("--config.file={}", dir.join("config/agent.yml").display())
            }
            Some(("--storage.agent.path", _)) => {
                format!("--storage.agent.path={}", dir.join("wal").display())
            }
            Some(("--web.listen-address", _)) => format!("--web.listen-address={agent_addr}"),
            _ => a,
        })
        .collect();
    let _agent = spawn(
        &prometheus,
        &run_args,
        &[("NODE_NAME", "node-x")],
        dir.join("agent.log"),
    );

    // Nothing listens on the exporter's port here, so its `up` is 0; the sample still travels,
    // with the external labels, through the receiver's basic auth.
    let query = encode(
        r#"up{job="edge-metrics-exporter",cluster="ci",site="lab-1",region="eu-west",node="node-x"}"#,
    );
    let path = format!("/api/v1/query?query={query}");
    let found = wait_for(
        Duration::from_secs(60),
        "the agent's series at the receiver",
        || {
            let r = test_support::http::request(
                receiver,
                "GET",
                &path,
                &[("Authorization", BASIC)],
                b"",
            )
            .ok()?;
            // 503 while its storage starts.
            if r.status != 200 {
                return None;
            }
            let body = r.json();
            let n = body["data"]["result"].as_array().map(Vec::len).unwrap_or(0);
            (n == 1).then_some(body)
        },
    );
    assert_eq!(
        found["data"]["result"][0]["metric"]["instance"],
        "127.0.0.1:9102"
    );
    // Without the credentials the receiver refuses: the agent got in with the Secret's.
    let r =
        test_support::http::request(receiver, "GET", &path, &[], b"").expect("receiver answers");
    assert_eq!(r.status, 401, "the receiver must ask for basic auth");
}
