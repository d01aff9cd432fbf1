//! `config.yaml` on disk: [`load`] (writing a fresh config when the file is absent) and
//! [`save_atomic`] (temp file, fsync, rename, directory fsync), with the text [`to_yaml`]
//! produces.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::check::parse;
use crate::env::{check_env, Env};
use crate::error::{error_chain, ConfigError};
use crate::schema::Config;
use crate::yaml;

/// What [`load`] produced.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The validated configuration.
    pub config: Config,
    /// The file was absent and a fresh config was built (and written, unless the directory is
    /// not writable, which is logged).
    pub created: bool,
}

/// Loads `path`. A missing file gets `fresh()` (the caller knows the device's default metrics;
/// the config does not), written atomically; if that write fails the fresh config runs in
/// memory and a warning is logged. An unreadable or invalid file, or a bad
/// `CONFIG_SERVER_URL` / `CONFIG_TIMEOUT`, is an `Err` whose `Display` is one line (main exits
/// 64 with it).
pub fn load(path: &Path, env: &dyn Env, fresh: &dyn Fn() -> Config) -> Result<Loaded, ConfigError> {
    check_env(env)?;
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let config = parse(&text, &path.display().to_string())?;
            Ok(Loaded {
                config,
                created: false,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let config = fresh();
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                // A missing directory is created; if that fails, save_atomic reports why.
                let _ = std::fs::create_dir_all(dir);
            }
            match save_atomic(path, &config) {
                Ok(()) => tracing::info!(path = %path.display(), "Wrote a default config."),
                Err(error) => tracing::warn!(
                    error = %error_chain(&error),
                    "Running with the default config in memory; changes will not persist."
                ),
            }
            Ok(Loaded {
                config,
                created: true,
            })
        }
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

const FILE_HEADER: &str = "# edge-metrics-exporter configuration (docs/CONFIG.md).\n\
# The exporter rewrites this file when metrics are discovered or changed through the API;\n\
# comments are not kept, unknown keys are.\n";

/// The YAML text [`save_atomic`] writes.
pub fn to_yaml(config: &Config) -> Result<String, yaml::Error> {
    Ok(format!("{FILE_HEADER}{}", yaml::to_string(config)?))
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `config` to `path` atomically: a temp file in the same directory, `sync_all`,
/// `rename` over the target, then fsync of the directory. On any failure the temp file is
/// removed and the previous file stays whole.
///
/// `rename(2)` cannot replace a single-file bind mount (`EBUSY`), so deployments must mount
/// the config *directory* writable. A symlinked target is followed, so the link survives.
pub fn save_atomic(path: &Path, config: &Config) -> Result<(), ConfigError> {
    let fail = |source: std::io::Error| ConfigError::Write {
        path: path.to_path_buf(),
        source,
    };
    let text = to_yaml(config).map_err(|e| fail(std::io::Error::other(e)))?;
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).map_err(fail)?,
        _ => path.to_path_buf(),
    };
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.yaml".to_string());
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = write_temp(&temp, &target, text.as_bytes())
        .and_then(|()| std::fs::rename(&temp, &target).map_err(explain_rename));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(fail(e));
    }
    // Makes the rename itself durable. Some filesystems cannot fsync a directory; the file is
    // already in place then, so only real I/O errors count.
    if let Err(e) = std::fs::File::open(&dir).and_then(|d| d.sync_all()) {
        if !matches!(
            e.kind(),
            std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
        ) {
            return Err(fail(e));
        }
    }
    Ok(())
}

fn write_temp(temp: &Path, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(temp)?;
    // Keep the old file's mode (a file holding api_token may be 0600).
    if let Ok(meta) = std::fs::metadata(target) {
        file.set_permissions(meta.permissions())?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

fn explain_rename(e: std::io::Error) -> std::io::Error {
    if e.raw_os_error() == Some(libc::EBUSY) {
        std::io::Error::new(
            e.kind(),
            format!("{e}; the file is probably a single-file bind mount: mount its directory"),
        )
    } else {
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::env::{ENV_CONFIG_SERVER_URL, ENV_CONFIG_TIMEOUT};
    use crate::schema::DeviceType;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "edge-metrics-config-{tag}-{}-{}",
                std::process::id(),
                TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// What the caller's fresh config looks like: defaults plus enabled metrics (the real one
    /// comes from the collectors, which the config does not know).
    fn fresh() -> Config {
        Config {
            metrics: BTreeMap::from([
                ("jetson_ram_used_mb".to_string(), true),
                ("power_total_watts".to_string(), true),
            ]),
            ..Config::default()
        }
    }

    #[test]
    fn bad_env_values_fail_load() {
        let dir = TempDir::new("env");
        let mut env = BTreeMap::new();
        env.insert(ENV_CONFIG_TIMEOUT.to_string(), "soon".to_string());
        env.insert(
            ENV_CONFIG_SERVER_URL.to_string(),
            "localhost:8080".to_string(),
        );
        let e = load(&dir.0.join("config.yaml"), &env, &fresh)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("environment: CONFIG_SERVER_URL must start with http://"),
            "{e}"
        );
        assert!(
            e.contains("CONFIG_TIMEOUT must be a number of seconds"),
            "{e}"
        );
        assert!(!dir.0.join("config.yaml").exists());
    }

    #[test]
    fn save_round_trip_keeps_unknown_keys() {
        let dir = TempDir::new("roundtrip");
        let path = dir.0.join("config.yaml");
        let text = "device_type: jetson_xavier\ninterval: 0.5\nfuture_section:\n  nested: [1, 2]\n  flag: true\nmetrics:\n  jetson_temp_aux_celsius: false\n";
        let cfg = parse(text, "in").unwrap();
        save_atomic(&path, &cfg).unwrap();
        let back = parse(&std::fs::read_to_string(&path).unwrap(), "out").unwrap();
        assert_eq!(back, cfg);
        assert_eq!(
            back.extra["future_section"]["nested"],
            yaml::from_str::<yaml::Value>("[1, 2]").unwrap()
        );
        assert_eq!(entries(&dir.0), vec!["config.yaml".to_string()]);
        // A second save replaces the file and keeps its mode.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut changed = back.clone();
        changed.metrics.insert("jetson_ram_used_mb".into(), true);
        save_atomic(&path, &changed).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let again = parse(&std::fs::read_to_string(&path).unwrap(), "out").unwrap();
        assert_eq!(again, changed);
    }

    #[test]
    fn save_follows_a_symlink() {
        let dir = TempDir::new("symlink");
        let real = dir.0.join("real.yaml");
        let link = dir.0.join("config.yaml");
        std::fs::write(&real, "interval: 3\n").unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        save_atomic(&link, &parse("interval: 4\n", "c").unwrap()).unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            parse(&std::fs::read_to_string(&real).unwrap(), "c")
                .unwrap()
                .interval,
            4.0
        );
    }

    // Tests run as root, where permission bits do not stop writes, so each failure below is
    // one that root cannot get past either.

    #[test]
    fn save_fails_when_parent_is_a_file() {
        let dir = TempDir::new("parentfile");
        let file = dir.0.join("not-a-dir");
        std::fs::write(&file, "keep").unwrap();
        let err = save_atomic(&file.join("config.yaml"), &Config::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Write { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
        assert_eq!(entries(&dir.0), vec!["not-a-dir".to_string()]);
    }

    #[test]
    fn save_fails_under_proc() {
        let err = save_atomic(
            Path::new("/proc/edge-metrics-test/config.yaml"),
            &Config::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Write { .. }), "{err}");
    }

    #[test]
    fn failed_rename_removes_temp_and_leaves_target() {
        // The target is a non-empty directory: the temp file is written, the rename fails.
        let dir = TempDir::new("renamefail");
        let target = dir.0.join("config.yaml");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), "x").unwrap();
        let err = save_atomic(&target, &Config::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Write { .. }), "{err}");
        assert_eq!(entries(&dir.0), vec!["config.yaml".to_string()]);
        assert_eq!(entries(&target), vec!["inside".to_string()]);
    }

    /// Clears the immutable flag even when the test fails.
    struct Immutable(PathBuf);
    impl Drop for Immutable {
        fn drop(&mut self) {
            let _ = std::process::Command::new("chattr")
                .arg("-i")
                .arg(&self.0)
                .status();
        }
    }

    #[test]
    fn read_only_directory_gives_err_and_old_file_unchanged() {
        // `chattr +i` makes a directory unwritable even for root (ext4, xfs, btrfs).
        let dir = TempDir::new("immutable");
        let sub = dir.0.join("conf");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("config.yaml");
        let old = "device_type: jetson_nano\ninterval: 2\n";
        std::fs::write(&path, old).unwrap();
        let status = std::process::Command::new("chattr")
            .arg("+i")
            .arg(&sub)
            .status()
            .expect("chattr (e2fsprogs) is needed to make a directory read-only for root");
        assert!(
            status.success(),
            "chattr +i failed: the temp filesystem must support it"
        );
        let _guard = Immutable(sub.clone());
        let err = save_atomic(&path, &fresh()).unwrap_err();
        assert!(matches!(err, ConfigError::Write { .. }), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), old);
        assert_eq!(entries(&sub), vec!["config.yaml".to_string()]);
        // Loading a missing file there runs on the fresh config in memory instead of failing.
        let loaded = load(&sub.join("absent.yaml"), &BTreeMap::new(), &fresh).unwrap();
        assert!(loaded.created);
        assert_eq!(loaded.config, fresh());
        assert!(!sub.join("absent.yaml").exists());
    }

    #[test]
    fn load_creates_defaults_then_reads_them_back() {
        let dir = TempDir::new("load");
        let path = dir.0.join("sub").join("config.yaml");
        let first = load(&path, &BTreeMap::new(), &fresh).unwrap();
        assert!(first.created);
        assert_eq!(first.config.device_type, DeviceType::Auto);
        assert_eq!(first.config.metrics.get("power_total_watts"), Some(&true));
        let second = load(&path, &BTreeMap::new(), &|| unreachable!("the file exists")).unwrap();
        assert!(!second.created);
        assert_eq!(second.config, first.config);
    }

    #[test]
    fn load_reports_unreadable_and_invalid_files() {
        let dir = TempDir::new("bad");
        let path = dir.0.join("config.yaml");
        std::fs::write(&path, [0xff, 0xfe, b'\n']).unwrap();
        let e = load(&path, &BTreeMap::new(), &fresh).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }));
        std::fs::write(&path, "interval: fast\n").unwrap();
        let e = load(&path, &BTreeMap::new(), &fresh)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "{}:1: interval must be a number of seconds, got \"fast\" (set interval: 1)",
                path.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "interval: fast\n");
    }
}
