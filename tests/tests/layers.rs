//! The module structure, drawn from the code's own imports: in each daemon, a module may use
//! only modules of a lower layer (so there is no import circle and nothing looks up). A new
//! top-level module must be given its layer here, next to the map in docs/ARCHITECTURE.md.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The exporter's layers, lowest first. Modules in one layer do not use each other.
const EXPORTER: &[&[&str]] = &[
    &["config"],
    &["tegrastats", "device", "client", "energy"],
    &["sysfs"],
    &["boards"],
    &["collector", "configserver"],
    &["exposition"],
    &["selfmetrics"],
    &["owner"],
    &["http"],
];

/// The bridge's layers, lowest first.
const BRIDGE: &[&[&str]] = &[
    &["config", "rpc", "stats"],
    &["registry", "tls"],
    &["device"],
    &["ws", "http"],
];

/// The config crate's modules, lowest first (shared by the exporter and the Config Server).
const CONFIG: &[&[&str]] = &[
    &["yaml", "keys", "error", "position"],
    &["schema"],
    &["check"],
    &["env", "json"],
    &["store"],
];

/// The Config Server's layers, lowest first.
const CONFIG_SERVER: &[&[&str]] = &[
    &["auth", "merge", "stats", "time"],
    &["store"],
    &["settings", "service"],
    &["listing"],
    &["page"],
    &["http"],
];

/// The crate roots (lib.rs, main.rs) sit above every layer and are not checked.
const ROOTS: &[&str] = &["lib", "main"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`collector/jetson/mod.rs` → `collector`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).expect("file under src");
    let first = rel.components().next().expect("non-empty path");
    let name = first.as_os_str().to_string_lossy();
    name.strip_suffix(".rs").unwrap_or(&name).to_string()
}

/// Every `crate::<module>` a file names outside comments.
fn crate_refs(text: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `crate::{a, b}` lists several modules.
            if name.is_empty() && after.starts_with('{') {
                let inner = &after[1..after.find('}').unwrap_or(after.len())];
                for part in inner.split(',') {
                    let part = part.trim();
                    let module: String = part
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !module.is_empty() {
                        refs.insert(module);
                    }
                }
            } else if !name.is_empty() {
                refs.insert(name);
            }
            rest = after;
        }
    }
    refs
}

fn layer_of(layers: &[&[&str]], module: &str) -> Option<usize> {
    layers.iter().position(|layer| layer.contains(&module))
}

/// Every import that does not look down, as `file: module -> module` lines.
fn violations(src: &Path, layers: &[&[&str]]) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    assert!(!files.is_empty(), "no sources under {}", src.display());
    let mut found = Vec::new();
    for file in &files {
        let module = module_of(src, file);
        if ROOTS.contains(&module.as_str()) {
            continue;
        }
        let Some(from) = layer_of(layers, &module) else {
            found.push(format!(
                "{}: module `{module}` has no layer (add it to tests/tests/layers.rs and \
                 docs/ARCHITECTURE.md)",
                file.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable source");
        for target in crate_refs(&text) {
            if target == module {
                continue;
            }
            match layer_of(layers, &target) {
                Some(to) if to < from => {}
                Some(_) => found.push(format!(
                    "{}: `{module}` uses `{target}`, which is not below it",
                    file.display()
                )),
                // Items of the crate root (lib.rs) are not layered modules.
                None => {}
            }
        }
    }
    found
}

fn src(package: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(package)
        .join("src")
}

#[test]
fn exporter_modules_only_look_down() {
    let found = violations(&src("exporter"), EXPORTER);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn config_modules_only_look_down() {
    let found = violations(&src("config"), CONFIG);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn bridge_modules_only_look_down() {
    let found = violations(&src("shelly-bridge"), BRIDGE);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn config_server_modules_only_look_down() {
    let found = violations(&src("config-server"), CONFIG_SERVER);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn an_upward_import_is_found() {
    // The check itself: a lower module naming a higher one, in both import forms.
    assert_eq!(
        crate_refs(
            "use crate::{config, collector::Values}; // crate::owner\nlet x = crate::http::f();"
        ),
        BTreeSet::from(["collector".into(), "config".into(), "http".into()])
    );
    let dir = std::env::temp_dir().join(format!("layers-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tegrastats")).unwrap();
    std::fs::write(
        dir.join("tegrastats/source.rs"),
        "use crate::collector::X;\n",
    )
    .unwrap();
    std::fs::write(dir.join("collector.rs"), "use crate::tegrastats::Y;\n").unwrap();
    let found = violations(&dir, EXPORTER);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("`tegrastats` uses `collector`"),
        "{found:?}"
    );
}
