//! `device_type: auto` with the real binary: for each fixture tree under `testdata/devices/`
//! (passed as `host_root`) the exporter picks the family's collector, labels every sample with
//! the detected type, says so in `/health` and `/config`, and exports the board in
//! `edge_metrics_exporter_device_info`. A named type still wins over the device tree, and a
//! reload reads the files again.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{orin_corpus, testdata, wait_for, Exporter, Setup};

/// (fixture, device_type, collector, model, soc, l4t, jetpack).
const FAMILIES: &[(&str, &str, &str, &str, &str, &str, &str)] = &[
    (
        "agx-orin-jp6",
        "jetson_orin",
        "JetsonOrinCollector",
        "NVIDIA Jetson AGX Orin Developer Kit",
        "tegra234",
        "36.4.3",
        "6.2",
    ),
    (
        "orin-nano-super-jp6",
        "jetson_orin",
        "JetsonOrinCollector",
        "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
        "tegra234",
        "36.4.3",
        "6.2",
    ),
    (
        "orin-nx-jp6",
        "jetson_orin",
        "JetsonOrinCollector",
        "NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
        "tegra234",
        "36.4.4",
        "6.2.1",
    ),
    (
        "xavier-nx-jp5",
        "jetson_xavier",
        "JetsonXavierCollector",
        "NVIDIA Jetson Xavier NX Developer Kit",
        "tegra194",
        "35.4.1",
        "5.1.2",
    ),
    (
        "agx-xavier-jp4",
        "jetson_xavier",
        "JetsonXavierCollector",
        "Jetson-AGX",
        "tegra194",
        "32.6.1",
        "4.6",
    ),
    (
        "nano-jp4",
        "jetson_nano",
        "JetsonNanoCollector",
        "NVIDIA Jetson Nano Developer Kit",
        "tegra210",
        "32.7.1",
        "4.6.1",
    ),
    (
        "tx2-jp4",
        "jetson_xavier",
        "JetsonXavierCollector",
        "NVIDIA Jetson TX2 Developer Kit",
        "tegra186",
        "32.5.1",
        "4.5.1",
    ),
    (
        "agx-thor-jp7",
        "jetson",
        "JetsonOrinCollector",
        "NVIDIA Jetson AGX Thor Developer Kit",
        "tegra264",
        "38.2.0",
        "7.0",
    ),
    (
        "raspberry-pi-4",
        "raspberry_pi",
        "RaspberryPiCollector",
        "Raspberry Pi 4 Model B Rev 1.4",
        "bcm2711",
        "",
        "",
    ),
    ("empty", "jetson", "JetsonOrinCollector", "", "", "", ""),
];

/// A setup on the Orin corpus whose config says `device_type` and `host_root` as given.
fn setup(device_type: &str, host_root: &Path) -> Setup {
    let setup = Setup::new(&orin_corpus(), "");
    let text = setup
        .config_text(&format!("host_root: {}\n", host_root.display()))
        .replace(
            "device_type: jetson_orin\n",
            &format!("device_type: {device_type}\n"),
        );
    std::fs::write(&setup.config_path, text).unwrap();
    setup
}

/// The `device_info` sample line of a scrape.
fn info_line(exp: &Exporter) -> String {
    let body = exp.scrape().body;
    body.lines()
        .find(|l| l.starts_with("edge_metrics_exporter_device_info{"))
        .unwrap_or_else(|| panic!("no device_info sample in:\n{body}"))
        .to_string()
}

fn info_text(model: &str, soc: &str, l4t: &str, jetpack: &str) -> String {
    format!(
        "edge_metrics_exporter_device_info{{model=\"{model}\",soc=\"{soc}\",l4t=\"{l4t}\",\
         jetpack=\"{jetpack}\"}} 1"
    )
}

#[test]
fn each_family_is_detected_and_shown_everywhere() {
    for (dir, device_type, collector, model, soc, l4t, jetpack) in FAMILIES {
        let root = testdata("devices").join(dir);
        let setup = setup("auto", &root);
        let exp = setup.start();
        let line = exp
            .proc
            .wait_line(&["Detected the device type"], Duration::from_secs(5));
        assert!(
            line.contains(&format!("device_type=\"{device_type}\""))
                || line.contains(&format!("device_type={device_type}")),
            "{dir}: {line}"
        );

        let health = exp.health();
        assert_eq!(health["device_type"], *device_type, "{dir}: {health}");
        assert_eq!(health["collector"], *collector, "{dir}: {health}");
        assert_eq!(health["device_type_source"], "detected", "{dir}: {health}");

        let config = exp.api("GET", "/config", &[], None).json();
        assert_eq!(config["device_type"], "auto", "{dir}: {config}");
        assert_eq!(config["resolved_device_type"], *device_type, "{dir}");
        assert_eq!(config["device_type_source"], "detected", "{dir}");
        assert_eq!(
            config["host_root"],
            root.display().to_string(),
            "{dir}: {config}"
        );

        let labels = format!("{{device_type=\"{device_type}\",hostname=\"edge-01\"}}");
        wait_for(
            Duration::from_secs(10),
            &format!("{dir}: a RAM sample labelled {labels}"),
            || {
                let body = exp.scrape().body;
                // The boards read from sysfs name their RAM with their own prefix.
                let ram = match *collector {
                    "RaspberryPiCollector" => "rpi_ram_used_mb",
                    _ => "jetson_ram_used_mb",
                };
                body.contains(&format!("{ram}{labels} ")).then_some(())
            },
        );
        let body = exp.scrape().body;
        assert!(
            !body.contains("device_type=\"auto\""),
            "{dir}: `auto` reached a label:\n{body}"
        );
        assert_eq!(
            info_line(&exp),
            info_text(model, soc, l4t, jetpack),
            "{dir}"
        );
    }
}

/// Replaces `from` by `to` in config.yaml and reloads. The exporter rewrites config.yaml when
/// it discovers metrics, so the edit is made after the first cycle has been saved, and made
/// again (bounded) should a later discovery have written over it.
fn edit_and_reload(exp: &Exporter, setup: &Setup, from: &str, to: &str) {
    exp.wait_sample("jetson_ram_used_mb", Duration::from_secs(10));
    wait_for(
        Duration::from_secs(10),
        &format!("config.yaml with {to}"),
        || {
            let text = std::fs::read_to_string(&setup.config_path).unwrap();
            if !text.contains(to) {
                std::fs::write(&setup.config_path, text.replace(from, to)).unwrap();
            }
            let reply = exp.api("POST", "/reload", &[], None);
            assert_eq!(reply.status, 200, "{}", reply.text());
            let kept = std::fs::read_to_string(&setup.config_path).unwrap();
            kept.contains(to).then_some(())
        },
    );
}

#[test]
fn a_named_type_wins_and_a_reload_reads_the_files_again() {
    let nano = testdata("devices").join("nano-jp4");
    let setup = setup("jetson_orin", &nano);
    let exp = setup.start();
    let health = exp.health();
    assert_eq!(health["device_type"], "jetson_orin");
    assert_eq!(health["device_type_source"], "configured");
    assert_eq!(health["collector"], "JetsonOrinCollector");
    // The board is reported whatever the setting.
    assert_eq!(
        info_line(&exp),
        info_text(
            "NVIDIA Jetson Nano Developer Kit",
            "tegra210",
            "32.7.1",
            "4.6.1"
        )
    );

    // `auto` on reload: the Nano's files decide, and the collector follows.
    edit_and_reload(
        &exp,
        &setup,
        "device_type: jetson_orin",
        "device_type: auto",
    );
    let health = exp.health();
    assert_eq!(health["device_type"], "jetson_nano", "{health}");
    assert_eq!(health["device_type_source"], "detected");
    assert_eq!(health["collector"], "JetsonNanoCollector");
    let list = exp.api("GET", "/metrics/list", &[], None).json();
    assert_eq!(list["device_type"], "jetson_nano");

    // Another host_root on reload: its files are read.
    let thor = testdata("devices").join("agx-thor-jp7");
    edit_and_reload(
        &exp,
        &setup,
        &nano.display().to_string(),
        &thor.display().to_string(),
    );
    assert_eq!(exp.health()["device_type"], "jetson");
    wait_for(Duration::from_secs(5), "Thor's device_info", || {
        info_line(&exp).contains("soc=\"tegra264\"").then_some(())
    });
}
