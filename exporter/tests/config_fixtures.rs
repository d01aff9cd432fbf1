//! Config fixtures: every file in `tests/fixtures/config/valid/` must load, survive a save and
//! a JSON round trip unchanged; every file in `invalid/` must fail with an error containing
//! each of its `# expect: <text>` lines, on one line. An empty directory or an invalid file
//! without `# expect:` fails the test, so nothing is skipped silently.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use edge_metrics_exporter::config::{self, Config, ConfigError, DeviceType};
use test_support::TempDir;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

fn parse_fixture(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).unwrap();
    config::parse(&text, &name(path))
}

#[test]
fn valid_fixtures_load_and_round_trip() {
    let scratch = TempDir::new("fixtures-valid");
    let mut failures = Vec::new();
    for path in fixtures("valid") {
        let file = name(&path);
        let cfg = match parse_fixture(&path) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{file}: {e}"));
                continue;
            }
        };
        // Through the file: save_atomic then load gives the same config.
        let out = scratch.join(&file);
        config::save_atomic(&out, &cfg).unwrap();
        let loaded = config::load(&out, &BTreeMap::new(), &Config::default).unwrap();
        assert!(!loaded.created);
        if loaded.config != cfg {
            failures.push(format!("{file}: changed by save/load: {:?}", loaded.config));
        }
        // Through JSON (GET /config, Config Server): same, except the secret token.
        let back = config::from_json(config::to_json(&cfg)).unwrap();
        let expected = Config {
            api_token: None,
            ..cfg.clone()
        };
        if back != expected {
            failures.push(format!("{file}: changed by JSON round trip: {back:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn valid_fixtures_mean_what_they_say() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/valid");
    let get = |f: &str| parse_fixture(&dir.join(f)).unwrap();

    let orin = get("spec_orin.yaml");
    assert_eq!(orin.device_type, DeviceType::JetsonOrin);
    assert_eq!(orin.interval, 1.0);
    assert_eq!((orin.port, orin.reload_port), (9102, 9101));
    assert_eq!(orin.metrics.len(), 4);
    assert!(orin.metrics.values().all(|v| *v));
    assert!(orin.extra.is_empty());

    assert_eq!(
        get("spec_xavier.yaml").device_type,
        DeviceType::JetsonXavier
    );
    assert_eq!(
        get("spec_xavier.yaml").metrics.get("jetson_swap_cached_mb"),
        Some(&true)
    );
    let nano = get("spec_nano.yaml");
    assert_eq!(nano.device_type, DeviceType::JetsonNano);
    assert_eq!(nano.metrics.get("jetson_iram_used_percent"), Some(&true));
    let generic = get("spec_generic_jetson.yaml");
    assert_eq!(generic.device_type, DeviceType::Jetson);
    assert_eq!(generic.metrics.get("jetson_temp_gpu_celsius"), Some(&false));

    let shelly = get("spec_shelly.yaml");
    assert!(shelly.shelly.enabled);
    assert_eq!(shelly.shelly.server_url, "http://localhost:8766");
    assert_eq!(shelly.metrics.get("power_current_amps"), Some(&true));

    // Legacy list → map, and the old key is not written back.
    let legacy = get("legacy_enabled_metrics.yaml");
    let want: BTreeMap<String, bool> = [
        "jetson_ram_used_mb",
        "jetson_temp_cpu_celsius",
        "power_total_watts",
    ]
    .iter()
    .map(|n| (n.to_string(), true))
    .collect();
    assert_eq!(legacy.metrics, want);
    assert!(legacy.extra.is_empty());
    let yaml = config::to_yaml(&legacy).unwrap();
    assert!(!yaml.contains("enabled_metrics"), "{yaml}");
    assert!(yaml.contains("\nmetrics:\n"), "{yaml}");

    // Unknown keys are kept and written back.
    let unknown = get("unknown_keys.yaml");
    let keys: Vec<&str> = unknown.extra.keys().map(String::as_str).collect();
    assert_eq!(keys, vec!["ina260", "jetson", "labels", "site"]);
    let yaml = config::to_yaml(&unknown).unwrap();
    for k in [
        "site: lab-3",
        "use_tegrastats: true",
        "i2c_address: 64",
        "- edge",
    ] {
        assert!(yaml.contains(k), "{k} missing from\n{yaml}");
    }
    assert_eq!(config::to_json(&unknown)["site"], "lab-3");

    let harness = get("test_harness.yaml");
    assert_eq!(
        harness.interval_duration(),
        std::time::Duration::from_millis(200)
    );
    assert_eq!((harness.port, harness.reload_port), (0, 0));
    assert_eq!(harness.api_addr().unwrap().to_string(), "[::1]:0");
    assert_eq!(harness.config_server.timeout, Some(0.5));
    assert!(harness.metrics.is_empty());
    let server = config::config_server(&harness, &BTreeMap::new()).unwrap();
    assert_eq!(server.url, "http://127.0.0.1:18080/api");
    assert_eq!(server.timeout, std::time::Duration::from_millis(500));

    // Both name the type; everything else is the default (whose type is `auto`).
    let orin = Config {
        device_type: config::DeviceType::JetsonOrin,
        ..Config::default()
    };
    let min = get("minimal.yaml");
    assert_eq!(min, orin);
    assert_eq!(get("null_sections.yaml"), orin);

    let auto = get("auto_host_root.yaml");
    assert_eq!(auto.device_type, config::DeviceType::Auto);
    assert_eq!(
        auto.host_root.as_deref(),
        Some(std::path::Path::new("/host"))
    );
    assert_eq!(config::to_json(&auto)["host_root"], "/host");
}

#[test]
fn invalid_fixtures_fail_with_their_expected_text() {
    let mut failures = Vec::new();
    for path in fixtures("invalid") {
        let file = name(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let expects: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .collect();
        assert!(!expects.is_empty(), "{file} has no `# expect:` line");
        match config::parse(&text, &file) {
            Ok(cfg) => failures.push(format!("{file}: parsed, but should fail: {cfg:?}")),
            Err(e) => {
                let shown = e.to_string();
                if shown.contains('\n') {
                    failures.push(format!("{file}: error is not one line: {shown}"));
                }
                for want in &expects {
                    if !shown.contains(want) {
                        failures.push(format!("{file}:\n  want: {want}\n  got:  {shown}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_file_on_disk_is_left_untouched_by_load() {
    let scratch = TempDir::new("fixtures-untouched");
    for path in fixtures("invalid") {
        let target = scratch.join(name(&path));
        std::fs::copy(&path, &target).unwrap();
        let before = std::fs::read(&target).unwrap();
        let err = config::load(&target, &BTreeMap::new(), &Config::default).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err}");
        assert_eq!(std::fs::read(&target).unwrap(), before, "{}", name(&path));
    }
}

/// The configs the project ships (systemd install, compose demo) must pass validation, so a
/// deploy never starts with exit 64 on its own example.
#[test]
fn shipped_configs_are_valid() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut failures = Vec::new();
    for rel in ["deploy/systemd/config.yaml", "docker/demo/config.yaml"] {
        let path = root.join(rel);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read shipped config {rel}: {e}"));
        if let Err(e) = config::parse(&text, rel) {
            failures.push(e.to_string());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
