//! docs/openapi/config-server.yaml is true of the real binary's routes: every documented
//! operation is answered with one of its documented statuses (never "unknown path" or 405),
//! and every other method on a documented path is refused (405, or 404 where the path also
//! reads as an unknown device type).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::Server;
use serde_json::json;

const METHODS: [&str; 4] = ["GET", "PUT", "POST", "DELETE"];

/// The documented statuses of every operation: path template → method → statuses.
fn documented() -> BTreeMap<String, BTreeMap<String, Vec<u16>>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi/config-server.yaml");
    let text = std::fs::read_to_string(&path).expect("the OpenAPI document is readable");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("the document is YAML");
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let mut out = BTreeMap::new();
    for (p, item) in doc["paths"].as_mapping().expect("paths") {
        let mut ops = BTreeMap::new();
        for m in METHODS {
            let Some(op) = item.get(m.to_ascii_lowercase()) else {
                continue;
            };
            let statuses = op["responses"]
                .as_mapping()
                .expect("responses")
                .keys()
                .map(|k| k.as_str().and_then(|s| s.parse().ok()).expect("a status"))
                .collect();
            ops.insert(m.to_string(), statuses);
        }
        out.insert(p.as_str().expect("a path").to_string(), ops);
    }
    out
}

fn concrete(template: &str) -> String {
    template
        .replace("{device}", "orin-01")
        .replace("{device_type}", "jetson_orin")
}

fn body_for(method: &str, template: &str) -> String {
    match (method, template.ends_with("/revert")) {
        ("POST", true) => json!({"version": 1}).to_string(),
        ("PUT", _) if template == "/config/{device}" => {
            json!({"device_type": "jetson_orin"}).to_string()
        }
        ("PUT", _) => json!({"interval": 2}).to_string(),
        _ => String::new(),
    }
}

#[test]
fn every_documented_operation_is_routed_and_nothing_else_is() {
    let doc = documented();
    assert_eq!(doc.len(), 14, "{:?}", doc.keys());
    let s = Server::sqlite(&[]);
    // Something to find: a device with a layer.
    s.put(
        "/config/orin-01",
        &json!({"device_type": "jetson_orin"}),
        &[],
    );
    for (template, ops) in &doc {
        let path = concrete(template);
        for method in METHODS {
            let body = body_for(method, template);
            let r = s.request(
                method,
                &path,
                &[("Content-Type", "application/json")],
                &body,
            );
            match ops.get(method) {
                Some(statuses) => {
                    assert!(
                        statuses.contains(&r.status),
                        "{method} {path}: {} is not documented ({statuses:?}): {}",
                        r.status,
                        r.body
                    );
                    assert!(
                        !r.body.contains("unknown path"),
                        "{method} {path} is documented but not routed"
                    );
                }
                // 404: `/defaults/history` also reads as a device type named `history`.
                None => assert!(
                    [404, 405].contains(&r.status),
                    "{method} {path} is not documented but answered {}: {}",
                    r.status,
                    r.body
                ),
            }
        }
    }
}
