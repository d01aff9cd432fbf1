//! Which device this is: the host's identity files, read once per start and reload, and the
//! device type that `device_type: auto` resolves to.
//!
//! Three small files are read under `host_root` (no program runs):
//! - `proc/device-tree/model`: the board's name (`NVIDIA Jetson AGX Orin Developer Kit`),
//!   NUL-terminated;
//! - `proc/device-tree/compatible`: NUL-separated strings, most specific first, the SoC last
//!   (`nvidia,p3737-0000+p3701-0000`, `nvidia,p3701-0000`, `nvidia,tegra234`);
//! - `etc/nv_tegra_release`: the L4T release (`# R36 (release), REVISION: 4.3, ...`).
//!
//! On a machine without a device tree (x86), `sys/class/dmi/id/{sys_vendor,product_name,
//! board_vendor}` name the maker ([`Dmi`]), and `sys/class/powercap/intel-rapl:0` says whether
//! Intel RAPL is there: a LattePanda (DFRobot) is detected by name, any other x86 machine with
//! RAPL as `lattepanda` too, because that collector (RAPL, thermal zones, CPU, RAM) is what
//! works on it, where the Jetson collector would wait for a tegrastats that does not exist.
//!
//! Any of them may be missing (a container without the mounts, a machine that is no Jetson):
//! that gives empty fields, never an error. The files are read by the owner when it starts a
//! configuration, never inside a collector's `collect`.
//!
//! [`DeviceKind`] is the resolved type: what every collector, label and default takes. It has
//! no `auto`, so a type that was not resolved cannot reach them.

use std::io::Read as _;
use std::path::Path;

use tracing::info;

use crate::config::DeviceType;

/// A device type that names a collector: what `device_type` resolves to. Unlike the config's
/// [`DeviceType`] it has no `auto`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// `jetson_orin`
    JetsonOrin,
    /// `jetson_xavier`
    JetsonXavier,
    /// `jetson_nano`
    JetsonNano,
    /// `jetson`: the generic fallback, Orin parsing.
    Jetson,
    /// `raspberry_pi` (sysfs, no tegrastats).
    RaspberryPi,
    /// `lattepanda`: any x86 board with Intel RAPL (sysfs, no tegrastats).
    LattePanda,
    /// `orange_pi`: Rockchip RK3588 (sysfs, no tegrastats).
    OrangePi,
}

impl DeviceKind {
    /// Every resolved type.
    pub const ALL: [DeviceKind; 7] = [
        DeviceKind::JetsonOrin,
        DeviceKind::JetsonXavier,
        DeviceKind::JetsonNano,
        DeviceKind::Jetson,
        DeviceKind::RaspberryPi,
        DeviceKind::LattePanda,
        DeviceKind::OrangePi,
    ];

    /// Whether this type reads tegrastats (the Jetsons) rather than sysfs (the other boards).
    pub fn runs_tegrastats(self) -> bool {
        matches!(
            self,
            DeviceKind::JetsonOrin
                | DeviceKind::JetsonXavier
                | DeviceKind::JetsonNano
                | DeviceKind::Jetson
        )
    }

    /// The type a config names, or `None` for `auto`, which has to be resolved first. The
    /// `match` is exhaustive: a new config value does not compile until it is wired here.
    pub fn configured(setting: DeviceType) -> Option<DeviceKind> {
        match setting {
            DeviceType::JetsonOrin => Some(DeviceKind::JetsonOrin),
            DeviceType::JetsonXavier => Some(DeviceKind::JetsonXavier),
            DeviceType::JetsonNano => Some(DeviceKind::JetsonNano),
            DeviceType::Jetson => Some(DeviceKind::Jetson),
            DeviceType::RaspberryPi => Some(DeviceKind::RaspberryPi),
            DeviceType::LattePanda => Some(DeviceKind::LattePanda),
            DeviceType::OrangePi => Some(DeviceKind::OrangePi),
            DeviceType::Auto => None,
        }
    }

    /// The config value and `device_type` label, e.g. `jetson_orin`.
    pub fn as_str(self) -> &'static str {
        DeviceType::from(self).as_str()
    }
}

impl From<DeviceKind> for DeviceType {
    fn from(kind: DeviceKind) -> DeviceType {
        match kind {
            DeviceKind::JetsonOrin => DeviceType::JetsonOrin,
            DeviceKind::JetsonXavier => DeviceType::JetsonXavier,
            DeviceKind::JetsonNano => DeviceType::JetsonNano,
            DeviceKind::Jetson => DeviceType::Jetson,
            DeviceKind::RaspberryPi => DeviceType::RaspberryPi,
            DeviceKind::LattePanda => DeviceType::LattePanda,
            DeviceKind::OrangePi => DeviceType::OrangePi,
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether the type in force was named in the config or detected (`device_type: auto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TypeSource {
    /// The config names the type.
    Configured,
    /// `auto`: read from the device tree.
    Detected,
}

impl TypeSource {
    /// `configured` or `detected`, as `/health` and `/config` show it.
    pub fn as_str(self) -> &'static str {
        match self {
            TypeSource::Configured => "configured",
            TypeSource::Detected => "detected",
        }
    }
}

/// Most bytes read of each identity file: the real ones are well under 1 KiB; a bigger one is
/// not what it claims to be and its tail is not needed.
const MAX_FILE_BYTES: u64 = 4096;

/// Most characters an identity field keeps (it becomes a label value).
const MAX_FIELD_CHARS: usize = 128;

/// L4T release → JetPack release, for the releases where NVIDIA's JetPack archive names
/// exactly one JetPack. Unknown releases give no JetPack (an empty label), never a guess.
/// Sources: testdata/devices/SOURCES.md.
const JETPACK: &[(&str, &str)] = &[
    ("28.1.0", "3.1"),
    ("28.2.0", "3.2"),
    ("32.1.0", "4.2"),
    ("32.3.1", "4.3"),
    ("32.4.3", "4.4"),
    ("32.4.4", "4.4.1"),
    ("32.5.0", "4.5"),
    ("32.5.1", "4.5.1"),
    ("32.6.1", "4.6"),
    ("32.7.1", "4.6.1"),
    ("32.7.2", "4.6.2"),
    ("32.7.3", "4.6.3"),
    ("32.7.4", "4.6.4"),
    ("32.7.5", "4.6.5"),
    ("32.7.6", "4.6.6"),
    ("34.1.0", "5.0 DP"),
    ("34.1.1", "5.0.1 DP"),
    ("35.1.0", "5.0.2"),
    ("35.2.1", "5.1"),
    ("35.3.1", "5.1.1"),
    ("35.4.1", "5.1.2"),
    ("35.5.0", "5.1.3"),
    ("35.6.0", "5.1.4"),
    ("35.6.1", "5.1.5"),
    ("36.2.0", "6.0 DP"),
    ("36.3.0", "6.0"),
    ("36.4.0", "6.1"),
    ("36.4.3", "6.2"),
    ("36.4.4", "6.2.1"),
    ("38.2.0", "7.0"),
];

/// The JetPack release of an L4T release (`36.4.3` → `6.2`), empty when the table does not
/// know it.
pub fn jetpack_for(l4t: &str) -> &'static str {
    JETPACK
        .iter()
        .find(|(release, _)| *release == l4t)
        .map_or("", |(_, jetpack)| jetpack)
}

/// What the identity files say. Every field is empty when its file is missing or unreadable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The board's name from `proc/device-tree/model`.
    pub model: String,
    /// The entries of `proc/device-tree/compatible`, most specific first.
    pub compatible: Vec<String>,
    /// The SoC: the `nvidia,tegraNNN` entry of `compatible` without its vendor (`tegra234`),
    /// else the last entry's name (`bcm2711` on a Raspberry Pi).
    pub soc: String,
    /// The L4T release from `etc/nv_tegra_release` (`36.4.3`).
    pub l4t: String,
    /// The JetPack release of [`l4t`](Identity::l4t) ([`jetpack_for`]), empty when unknown.
    pub jetpack: String,
}

impl Identity {
    /// Reads the three files under `host_root`. Never fails: a file that is missing, not a
    /// file, unreadable or odd gives empty fields.
    pub fn read(host_root: &Path) -> Identity {
        let model = read_small(&host_root.join("proc/device-tree/model"));
        let compatible = read_small(&host_root.join("proc/device-tree/compatible"));
        let release = read_small(&host_root.join("etc/nv_tegra_release"));
        Identity::parse(&model, &compatible, &String::from_utf8_lossy(&release))
    }

    /// The identity the three files' contents give; pure, so tests feed it bytes.
    pub fn parse(model: &[u8], compatible: &[u8], release: &str) -> Identity {
        let model = clean(&String::from_utf8_lossy(model));
        let compatible: Vec<String> = compatible
            .split(|b| *b == 0)
            .map(|entry| clean(&String::from_utf8_lossy(entry)))
            .filter(|entry| !entry.is_empty())
            .collect();
        let soc = compatible
            .iter()
            .find_map(|c| c.strip_prefix("nvidia,").filter(|s| s.starts_with("tegra")))
            .or_else(|| {
                compatible
                    .last()
                    .map(|c| c.rsplit_once(',').map_or(c.as_str(), |(_, name)| name))
            })
            .unwrap_or_default()
            .to_string();
        let l4t = l4t_release(release).unwrap_or_default();
        let jetpack = jetpack_for(&l4t).to_string();
        Identity {
            model,
            compatible,
            soc,
            l4t,
            jetpack,
        }
    }

    /// The device type these files point to, and the family found (for the log line). The
    /// SoC in `compatible` decides; without one, the model's name does; anything else is the
    /// generic `jetson`. See [`Identity::detect_with`] for x86 machines.
    pub fn detect(&self) -> (DeviceKind, &'static str) {
        self.detect_with(&Dmi::default())
    }

    /// [`Identity::detect`], with an x86 machine's [`Dmi`] files: a Jetson or other board by
    /// its device tree first, then (without a device tree) a LattePanda by its maker's name,
    /// any other machine with Intel RAPL as `lattepanda` too, and the rest as before.
    pub fn detect_with(&self, dmi: &Dmi) -> (DeviceKind, &'static str) {
        let has = |soc: &str| self.compatible.iter().any(|c| c == soc);
        let starts = |prefix: &str| self.compatible.iter().any(|c| c.starts_with(prefix));
        if starts("raspberrypi,")
            || [
                "brcm,bcm2711",
                "brcm,bcm2712",
                "brcm,bcm2837",
                "brcm,bcm2836",
                "brcm,bcm2835",
            ]
            .iter()
            .any(|soc| has(soc))
        {
            return (DeviceKind::RaspberryPi, "Raspberry Pi (device tree)");
        }
        if starts("rockchip,rk3588") {
            return (DeviceKind::OrangePi, "Rockchip RK3588 (device tree)");
        }
        if self.compatible.is_empty() && self.model.is_empty() {
            let named = |word: &str| {
                [&dmi.sys_vendor, &dmi.product_name, &dmi.board_vendor]
                    .iter()
                    .any(|f| f.to_ascii_lowercase().contains(word))
            };
            if named("lattepanda") || named("dfrobot") {
                return (DeviceKind::LattePanda, "LattePanda (DMI)");
            }
            if dmi.rapl {
                return (DeviceKind::LattePanda, "x86 with Intel RAPL (powercap)");
            }
        }
        if has("nvidia,tegra234") {
            return (DeviceKind::JetsonOrin, "Orin (tegra234)");
        }
        if has("nvidia,tegra194") {
            return (DeviceKind::JetsonXavier, "Xavier (tegra194)");
        }
        // TX2 has no collector of its own; Xavier's rules read its lines (the golden corpus
        // reads the TX2 logs the same way).
        if has("nvidia,tegra186") {
            return (DeviceKind::JetsonXavier, "TX2 (tegra186)");
        }
        if has("nvidia,tegra210") {
            return (DeviceKind::JetsonNano, "Nano or TX1 (tegra210)");
        }
        if has("nvidia,tegra264") {
            return (DeviceKind::Jetson, "Thor (tegra264)");
        }
        if !self.compatible.is_empty() {
            return (DeviceKind::Jetson, "no known Jetson SoC");
        }
        // No compatible file (an odd mount): the model's name is the next best thing.
        let model = self.model.to_ascii_lowercase();
        let named = |word: &str| model.contains(word);
        if !named("jetson") {
            (DeviceKind::Jetson, "nothing readable")
        } else if named("orin") {
            (DeviceKind::JetsonOrin, "Orin (by model name)")
        } else if named("xavier") || named("tx2") {
            (DeviceKind::JetsonXavier, "Xavier or TX2 (by model name)")
        } else if named("nano") || named("tx1") {
            (DeviceKind::JetsonNano, "Nano or TX1 (by model name)")
        } else {
            (DeviceKind::Jetson, "an unknown Jetson (by model name)")
        }
    }
}

/// An x86 machine's identity: `sys/class/dmi/id/{sys_vendor,product_name,board_vendor}`
/// (world-readable) and whether `sys/class/powercap/intel-rapl:0` exists. Empty elsewhere.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dmi {
    /// `sys_vendor` (`DFRobot`, `LattePanda`).
    pub sys_vendor: String,
    /// `product_name` (`LattePanda 3 Delta`).
    pub product_name: String,
    /// `board_vendor`.
    pub board_vendor: String,
    /// Whether the first Intel RAPL zone exists (readable or not).
    pub rapl: bool,
}

impl Dmi {
    /// Reads the files under `host_root`; missing ones give empty fields.
    pub fn read(host_root: &Path) -> Dmi {
        let field = |name: &str| {
            clean(&String::from_utf8_lossy(&read_small(
                &host_root.join("sys/class/dmi/id").join(name),
            )))
        };
        Dmi {
            sys_vendor: field("sys_vendor"),
            product_name: field("product_name"),
            board_vendor: field("board_vendor"),
            rapl: host_root.join("sys/class/powercap/intel-rapl:0").is_dir(),
        }
    }
}

/// The type in force, where it came from, and what the identity files say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// The resolved type.
    pub kind: DeviceKind,
    /// Named in the config or detected.
    pub source: TypeSource,
    /// The identity files' contents (read whatever the setting, for the info metric).
    pub identity: Identity,
    /// For a detected type, the family found (`Orin (tegra234)`).
    pub found: &'static str,
}

impl Device {
    /// Reads the identity files under `host_root` and resolves `setting`: a named type is used
    /// as it is, `auto` is detected. Logs nothing (see [`Device::log`]).
    pub fn resolve(setting: DeviceType, host_root: &Path) -> Device {
        let identity = Identity::read(host_root);
        // The DMI files matter only to `auto` on a machine without a device tree.
        let dmi = if setting == DeviceType::Auto && identity.compatible.is_empty() {
            Dmi::read(host_root)
        } else {
            Dmi::default()
        };
        Device::from_identity_and_dmi(setting, identity, &dmi)
    }

    /// [`Device::resolve`] over an identity already read.
    pub fn from_identity(setting: DeviceType, identity: Identity) -> Device {
        Device::from_identity_and_dmi(setting, identity, &Dmi::default())
    }

    /// [`Device::resolve`] over an identity and DMI files already read.
    pub fn from_identity_and_dmi(setting: DeviceType, identity: Identity, dmi: &Dmi) -> Device {
        let (kind, source, found) = match DeviceKind::configured(setting) {
            Some(kind) => (kind, TypeSource::Configured, ""),
            None => {
                let (kind, found) = identity.detect_with(dmi);
                (kind, TypeSource::Detected, found)
            }
        };
        Device {
            kind,
            source,
            identity,
            found,
        }
    }

    /// One INFO line saying what was found, for a detected type (a configured one is in the
    /// start-up line already).
    pub fn log(&self, host_root: &Path) {
        if self.source == TypeSource::Detected {
            info!(
                device_type = self.kind.as_str(),
                found = self.found,
                model = %self.identity.model,
                soc = %self.identity.soc,
                l4t = %self.identity.l4t,
                jetpack = %self.identity.jetpack,
                host_root = %host_root.display(),
                "Detected the device type (device_type: auto)."
            );
        }
    }
}

/// The first [`MAX_FILE_BYTES`] of a regular file, or nothing.
fn read_small(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    // A FIFO or device under a wrong host_root would block or never end: regular files only.
    let Ok(file) = std::fs::File::open(path) else {
        return out;
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return out;
    }
    if file.take(MAX_FILE_BYTES).read_to_end(&mut out).is_err() {
        out.clear();
    }
    out
}

/// `text` as a label value: control characters (the device tree's NULs, line breaks) dropped,
/// surrounding space trimmed, at most [`MAX_FIELD_CHARS`] characters.
fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_FIELD_CHARS)
        .collect()
}

/// `36.4.3` from the line `# R36 (release), REVISION: 4.3, GCID: ...`; `None` when the text
/// has no such line or its numbers are not numbers.
fn l4t_release(text: &str) -> Option<String> {
    let line = text.lines().find(|l| l.trim_start().starts_with("# R"))?;
    let rest = line.trim_start().strip_prefix("# R")?;
    let (major, rest) = rest.split_once(' ')?;
    let revision = rest.split_once("REVISION:")?.1;
    let revision = revision.split(',').next()?.trim();
    let numeric = |s: &str| !s.is_empty() && s.len() <= 4 && s.bytes().all(|b| b.is_ascii_digit());
    if !numeric(major) || revision.split('.').count() > 3 || !revision.split('.').all(numeric) {
        return None;
    }
    // `REVISION: 7` is written `32.7.0`, as NVIDIA names such a release.
    let minor = if revision.contains('.') { "" } else { ".0" };
    Some(format!("{major}.{revision}{minor}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/devices")
    }

    /// Every fixture tree: (directory, type detected, model, soc, l4t, jetpack).
    const FIXTURES: &[(&str, DeviceKind, &str, &str, &str, &str)] = &[
        (
            "agx-orin-jp6",
            DeviceKind::JetsonOrin,
            "NVIDIA Jetson AGX Orin Developer Kit",
            "tegra234",
            "36.4.3",
            "6.2",
        ),
        (
            "orin-nano-super-jp6",
            DeviceKind::JetsonOrin,
            "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
            "tegra234",
            "36.4.3",
            "6.2",
        ),
        (
            "orin-nx-jp6",
            DeviceKind::JetsonOrin,
            "NVIDIA Jetson Orin NX Engineering Reference Developer Kit",
            "tegra234",
            "36.4.4",
            "6.2.1",
        ),
        (
            "xavier-nx-jp5",
            DeviceKind::JetsonXavier,
            "NVIDIA Jetson Xavier NX Developer Kit",
            "tegra194",
            "35.4.1",
            "5.1.2",
        ),
        (
            "agx-xavier-jp4",
            DeviceKind::JetsonXavier,
            "Jetson-AGX",
            "tegra194",
            "32.6.1",
            "4.6",
        ),
        (
            "nano-jp4",
            DeviceKind::JetsonNano,
            "NVIDIA Jetson Nano Developer Kit",
            "tegra210",
            "32.7.1",
            "4.6.1",
        ),
        (
            "tx2-jp4",
            DeviceKind::JetsonXavier,
            "NVIDIA Jetson TX2 Developer Kit",
            "tegra186",
            "32.5.1",
            "4.5.1",
        ),
        (
            "agx-thor-jp7",
            DeviceKind::Jetson,
            "NVIDIA Jetson AGX Thor Developer Kit",
            "tegra264",
            "38.2.0",
            "7.0",
        ),
        (
            "raspberry-pi-4",
            DeviceKind::RaspberryPi,
            "Raspberry Pi 4 Model B Rev 1.4",
            "bcm2711",
            "",
            "",
        ),
        ("empty", DeviceKind::Jetson, "", "", "", ""),
    ];

    #[test]
    fn every_fixture_tree_resolves_and_names_its_board() {
        for (dir, kind, model, soc, l4t, jetpack) in FIXTURES {
            let root = fixtures().join(dir);
            assert!(root.is_dir(), "missing fixture tree {}", root.display());
            let device = Device::resolve(DeviceType::Auto, &root);
            assert_eq!(device.kind, *kind, "{dir}");
            assert_eq!(device.source, TypeSource::Detected, "{dir}");
            let id = &device.identity;
            assert_eq!(
                (id.model.as_str(), id.soc.as_str(), id.l4t.as_str()),
                (*model, *soc, *l4t),
                "{dir}"
            );
            assert_eq!(id.jetpack, *jetpack, "{dir}");
        }
        let dirs: Vec<_> = std::fs::read_dir(fixtures())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        for dir in dirs {
            assert!(
                FIXTURES.iter().any(|f| f.0 == dir),
                "fixture tree {dir} has no expectation here"
            );
        }
    }

    #[test]
    fn a_named_type_wins_over_the_device_tree() {
        let root = fixtures().join("nano-jp4");
        let device = Device::resolve(DeviceType::JetsonOrin, &root);
        assert_eq!(device.kind, DeviceKind::JetsonOrin);
        assert_eq!(device.source, TypeSource::Configured);
        // The identity is read all the same, for the info metric.
        assert_eq!(device.identity.soc, "tegra210");
        for setting in DeviceType::ALL {
            match DeviceKind::configured(setting) {
                Some(kind) => assert_eq!(DeviceType::from(kind), setting),
                None => assert_eq!(setting, DeviceType::Auto),
            }
        }
    }

    #[test]
    fn a_missing_root_gives_empty_fields_and_the_generic_type() {
        let device = Device::resolve(DeviceType::Auto, Path::new("/nonexistent/host/root"));
        assert_eq!(device.kind, DeviceKind::Jetson);
        assert_eq!(device.identity, Identity::default());
        // A directory where a file should be, or a device file, is not read.
        let odd = Identity::read(Path::new("/dev/null"));
        assert_eq!(odd, Identity::default());
    }

    #[test]
    fn release_lines_parse_or_give_nothing() {
        let l4t = |t: &str| l4t_release(t);
        assert_eq!(
            l4t("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n# KERNEL_VARIANT: oot\n").as_deref(),
            Some("36.4.3")
        );
        assert_eq!(
            l4t("# R38 (release), REVISION: 2.0, GCID: 1").as_deref(),
            Some("38.2.0")
        );
        assert_eq!(
            l4t("# R32 (release), REVISION: 7").as_deref(),
            Some("32.7.0")
        );
        assert_eq!(
            l4t("# R32 (release), REVISION: 5.0.1, GCID: 1").as_deref(),
            Some("32.5.0.1")
        );
        for bad in [
            "",
            "R36 4.3",
            "# R36 (release)",
            "# Rxx (release), REVISION: 4.3",
            "# R36 (release), REVISION: 4.x",
            "# R36 (release), REVISION: ",
            "# R36 (release), REVISION: 1.2.3.4",
        ] {
            assert_eq!(l4t(bad), None, "{bad:?}");
        }
        assert_eq!(jetpack_for("36.4.3"), "6.2");
        assert_eq!(jetpack_for("36.9.9"), "");
    }

    #[test]
    fn odd_bytes_become_clean_label_text() {
        let id = Identity::parse(
            b"Board \"x\"\\\nnext\0",
            b"\0\0vendor,board\0nvidia,tegra234\0\0",
            "# R36 (release), REVISION: 4.3\n",
        );
        assert_eq!(id.model, "Board \"x\"\\next");
        assert_eq!(id.compatible, ["vendor,board", "nvidia,tegra234"]);
        assert_eq!(id.soc, "tegra234");
        let long = Identity::parse(&[b'a'; 10_000], b"", "");
        assert_eq!(long.model.len(), MAX_FIELD_CHARS);
        let invalid = Identity::parse(&[0xff, 0xfe, b'A'], b"x", "");
        assert_eq!(invalid.model, "\u{fffd}\u{fffd}A");
        assert_eq!(invalid.soc, "x");
    }

    #[test]
    fn board_fixture_trees_resolve_to_their_types() {
        let boards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/boards");
        for (dir, kind) in [
            ("raspberry-pi-5", DeviceKind::RaspberryPi),
            ("lattepanda-3-delta", DeviceKind::LattePanda),
            ("orange-pi-5", DeviceKind::OrangePi),
        ] {
            let device = Device::resolve(DeviceType::Auto, &boards.join(dir));
            assert_eq!(device.kind, kind, "{dir}: {}", device.found);
            assert!(!kind.runs_tegrastats());
        }
    }

    #[test]
    fn x86_machines_are_told_by_dmi_and_rapl() {
        let none = Identity::default();
        let dmi = |vendor: &str, product: &str, rapl: bool| Dmi {
            sys_vendor: vendor.into(),
            product_name: product.into(),
            board_vendor: String::new(),
            rapl,
        };
        assert_eq!(
            none.detect_with(&dmi("DFRobot", "LattePanda 3 Delta", false)),
            (DeviceKind::LattePanda, "LattePanda (DMI)")
        );
        assert_eq!(
            none.detect_with(&dmi("LENOVO", "20XW", true)),
            (DeviceKind::LattePanda, "x86 with Intel RAPL (powercap)")
        );
        assert_eq!(
            none.detect_with(&dmi("QEMU", "Standard PC", false)).0,
            DeviceKind::Jetson
        );
        // A device tree wins over DMI: a Jetson with a stray RAPL answer stays a Jetson.
        let orin = Identity::parse(b"", b"nvidia,tegra234\0", "");
        assert_eq!(
            orin.detect_with(&dmi("", "", true)).0,
            DeviceKind::JetsonOrin
        );
        let rk = Identity::parse(b"", b"xunlong,orangepi-5\0rockchip,rk3588s\0", "");
        assert_eq!(rk.detect().0, DeviceKind::OrangePi);
        let pi5 = Identity::parse(b"", b"raspberrypi,5-model-b\0brcm,bcm2712\0", "");
        assert_eq!(pi5.detect().0, DeviceKind::RaspberryPi);
    }

    #[test]
    fn without_compatible_the_model_name_decides() {
        let by_model = |m: &str| Identity::parse(m.as_bytes(), b"", "").detect().0;
        assert_eq!(
            by_model("NVIDIA Jetson Orin Nano Developer Kit"),
            DeviceKind::JetsonOrin
        );
        assert_eq!(
            by_model("NVIDIA Jetson Xavier NX Developer Kit"),
            DeviceKind::JetsonXavier
        );
        assert_eq!(
            by_model("NVIDIA Jetson TX2 Developer Kit"),
            DeviceKind::JetsonXavier
        );
        assert_eq!(
            by_model("NVIDIA Jetson Nano Developer Kit"),
            DeviceKind::JetsonNano
        );
        assert_eq!(
            by_model("NVIDIA Jetson AGX Thor Developer Kit"),
            DeviceKind::Jetson
        );
        assert_eq!(
            by_model("Raspberry Pi 5 Model B Rev 1.0"),
            DeviceKind::Jetson
        );
    }
}
