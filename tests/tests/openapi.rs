//! The OpenAPI documents in `docs/openapi/` are true of the real binaries.
//!
//! Each test starts the binary on 127.0.0.1 (port 0), provokes every documented status of
//! every documented operation, and checks each answer against the document: the status is
//! listed for that operation, the content type matches, and a JSON body validates against the
//! schema (JSON Schema 2020-12, as OpenAPI 3.1 uses). It then asks for paths and methods the
//! document does not have and requires a 404/405 JSON error for each, so the server answers no
//! route the document leaves out. A documented status that no request provoked fails the test,
//! unless it is in the test's short list of statuses provoked elsewhere, with the reason.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use e2e::proof::{corpus, repo_root, start_bridge, start_exporter, Tmpfs};
use serde_json::{json, Value};
use test_support::http::{self, request, Response};
use test_support::{wait_for, TempDir};

/// An OpenAPI document and what the test has seen of it.
struct Doc {
    name: &'static str,
    root: Value,
    seen: BTreeSet<(String, String, String)>,
}

impl Doc {
    fn load(name: &'static str) -> Doc {
        let path = repo_root().join("docs/openapi").join(name);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let root: Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        assert!(
            root["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "{name}: expected an OpenAPI 3.1 document"
        );
        Doc {
            name,
            root,
            seen: BTreeSet::new(),
        }
    }

    /// Follows a local `$ref` (`#/components/...`) if `v` is one.
    fn deref<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let pointer = r.strip_prefix('#').expect("only local references are used");
                self.root
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("{}: dangling $ref {r}", self.name))
            }
            None => v,
        }
    }

    /// Every (path, method, status) the document lists.
    fn documented(&self) -> BTreeSet<(String, String, String)> {
        let mut out = BTreeSet::new();
        for (path, item) in self.root["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                for status in op["responses"].as_object().expect("responses").keys() {
                    out.insert((path.clone(), method.clone(), status.clone()));
                }
            }
        }
        out
    }

    /// Whether the document has `method` on any path.
    fn has_operation(&self, path: &str, method: &str) -> bool {
        self.root["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .any(|(tpl, item)| template_matches(tpl, path) && item.get(method).is_some())
    }

    /// Checks `resp` (to `method` on the concrete `path`) against the document and records it.
    fn check(&mut self, method: &str, path: &str, resp: &Response) {
        let method = method.to_ascii_lowercase();
        let path_only = path.split('?').next().unwrap_or(path);
        let (tpl, item) = self.root["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .find(|(tpl, _)| template_matches(tpl, path_only))
            .unwrap_or_else(|| panic!("{}: {path_only} is not a documented path", self.name));
        let tpl = tpl.clone();
        let op = item
            .get(&method)
            .unwrap_or_else(|| panic!("{}: {method} {tpl} is not documented", self.name));
        let status = resp.status.to_string();
        let documented = op["responses"].get(&status).unwrap_or_else(|| {
            panic!(
                "{}: {method} {path} answered {status}, which is not documented; body: {}",
                self.name,
                resp.text()
            )
        });
        let documented = self.deref(documented).clone();
        let content = documented["content"]
            .as_object()
            .expect("every documented response has content");
        let ctype = resp.header("content-type").unwrap_or("");
        let (media, media_obj) = content
            .iter()
            .find(|(m, _)| ctype.starts_with(m.as_str()))
            .unwrap_or_else(|| {
                panic!(
                    "{}: {method} {path} → {status} has content type {ctype:?}, documented: {:?}",
                    self.name,
                    content.keys().collect::<Vec<_>>()
                )
            });
        if media == "application/json" {
            self.validate(
                &media_obj["schema"],
                &resp.json(),
                &format!("{method} {path} → {status}"),
            );
        }
        self.seen.insert((tpl, method, status));
    }

    fn validate(&self, schema: &Value, instance: &Value, what: &str) {
        let mut full = schema.clone();
        let obj = full.as_object_mut().expect("schemas are objects");
        obj.insert(
            "$schema".into(),
            json!("https://json-schema.org/draft/2020-12/schema"),
        );
        obj.insert("components".into(), self.root["components"].clone());
        let validator = jsonschema::validator_for(&full)
            .unwrap_or_else(|e| panic!("{}: schema for {what} does not compile: {e}", self.name));
        let errors: Vec<String> = validator
            .iter_errors(instance)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{}: {what} body does not match the document:\n  {}\nbody: {instance}",
            self.name,
            errors.join("\n  ")
        );
    }

    /// Fails unless every documented status was seen, but those in `elsewhere`.
    fn assert_covered(&self, elsewhere: &[(&str, &str, &str, &str)]) {
        let skipped: BTreeSet<(String, String, String)> = elsewhere
            .iter()
            .map(|(p, m, s, _why)| (p.to_string(), m.to_string(), s.to_string()))
            .collect();
        let missing: Vec<_> = self
            .documented()
            .into_iter()
            .filter(|k| !self.seen.contains(k) && !skipped.contains(k))
            .collect();
        assert!(
            missing.is_empty(),
            "{}: documented but never provoked: {missing:?}",
            self.name
        );
        for k in &skipped {
            assert!(
                self.documented().contains(k),
                "{}: the skip list names {k:?}, which is not documented",
                self.name
            );
        }
    }

    /// Asks for a route the document does not have; requires a JSON 404/405 error.
    fn probe_undocumented(&self, addr: SocketAddr, method: &str, path: &str) {
        assert!(
            !self.has_operation(path, &method.to_ascii_lowercase()),
            "{method} {path} is documented; probe something else"
        );
        let resp = request(addr, method, path, &[], b"").expect("server answers");
        assert!(
            resp.status == 404 || resp.status == 405,
            "{}: undocumented {method} {path} answered {} (must be 404 or 405): {}",
            self.name,
            resp.status,
            resp.text()
        );
        if method != "HEAD" {
            let body = resp.json();
            assert!(
                body["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{}: {method} {path} → {} has no JSON error: {body}",
                self.name,
                resp.status
            );
        }
    }
}

/// Whether the concrete `path` matches the OpenAPI template (`{name}` = one segment).
fn template_matches(tpl: &str, path: &str) -> bool {
    let t: Vec<&str> = tpl.split('/').collect();
    let p: Vec<&str> = path.split('/').collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

/// Runs the request (a body is JSON unless `headers` name another Content-Type) and checks the
/// answer against the document; returns the response.
fn call(
    doc: &mut Doc,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut headers = headers.to_vec();
    if !body.is_empty()
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        headers.push(("Content-Type", "application/json"));
    }
    let resp = request(addr, method, path, &headers, body)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    doc.check(method, path, &resp);
    resp
}

/// GETs `paths` at the same time; each must answer `status`, as the document says.
fn get_at_once(doc: &mut Doc, addr: SocketAddr, paths: [&'static str; 2], status: u16) {
    let waits: Vec<_> = paths
        .into_iter()
        .map(|path| std::thread::spawn(move || (path, http::get(addr, path).unwrap())))
        .collect();
    for w in waits {
        let (path, r) = w.join().unwrap();
        doc.check("GET", path, &r);
        assert_eq!(r.status, status, "{path}: {}", r.text());
    }
}

const TOKEN: &str = "openapi-test-token";

#[test]
fn management_api_matches_its_document() {
    let mut doc = Doc::load("management.yaml");
    let tmp = TempDir::new("openapi-mgmt");
    // config.yaml on its own tmpfs, so the test can make saving fail (read-only) for the 500.
    let fs = Tmpfs::new(tmp.join("cfg"), "1m");
    let config = fs.dir.join("config.yaml");
    let corpus = corpus("orin-agx-jp6.log");
    let text = format!(
        "device_type: jetson_orin\ninterval: 0.2\nport: 0\nreload_port: 0\n\
         bind_address: 127.0.0.1\nreload_bind_address: 127.0.0.1\nhostname: openapi\n\
         api_token: {TOKEN}\ntegrastats:\n  replay: {}\nshelly:\n  enabled: false\n",
        corpus.display()
    );
    std::fs::write(&config, &text).unwrap();
    let exp = start_exporter(&config, tmp.path());
    let api = exp.api;
    let auth = format!("Bearer {TOKEN}");
    let auth = [("Authorization", auth.as_str())];

    // /health needs no token; wait until a cycle has discovered metrics.
    call(&mut doc, api, "GET", "/health", &[], b"");
    let names: Vec<String> = wait_for(Duration::from_secs(10), "metrics discovered", || {
        let r = request(api, "GET", "/metrics/list", &auth, b"").ok()?;
        let names: Vec<String> = r.json()["metrics"].as_object()?.keys().cloned().collect();
        (!names.is_empty()).then_some(names)
    });
    wait_for(Duration::from_secs(10), "healthy", || {
        let r = call(&mut doc, api, "GET", "/health", &[], b"");
        (r.json()["status"] == "healthy").then_some(())
    });

    // GET /config and /metrics/list: with, without, and with a wrong token.
    for path in ["/config", "/metrics/list"] {
        let r = call(&mut doc, api, "GET", path, &auth, b"");
        assert_eq!(r.status, 200, "{}", r.text());
        let r = call(&mut doc, api, "GET", path, &[], b"");
        assert_eq!(r.status, 401);
        let r = call(
            &mut doc,
            api,
            "GET",
            path,
            &[("Authorization", "Bearer nope")],
            b"",
        );
        assert_eq!(r.status, 401);
    }
    let cfg = call(&mut doc, api, "GET", "/config", &auth, b"").json();
    assert_eq!(cfg["device_type"], "jetson_orin");
    assert_eq!(cfg["interval"], json!(0.2));

    // POST /metrics/enable: success, and every way to get it wrong.
    let enable = |doc: &mut Doc, body: &str| {
        call(doc, api, "POST", "/metrics/enable", &auth, body.as_bytes())
    };
    let first = &names[0];
    let body = format!("{{\"{first}\": true}}");
    let r = enable(&mut doc, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["updated"], 1);
    assert_eq!(r.json()["metrics"][first.as_str()], true);
    let r = call(&mut doc, api, "POST", "/metrics/enable", &auth, b"{}");
    assert_eq!((r.status, r.json()["updated"].clone()), (200, json!(0)));
    for (body, why) in [
        (
            r#"{"invalid_metric": true}"#.to_string(),
            "Invalid metric name: invalid_metric",
        ),
        (
            format!("{{\"{first}\": \"yes\"}}"),
            "expected true or false",
        ),
        ("{\"a\": ".to_string(), "Malformed JSON"),
        ("[true]".to_string(), "got an array"),
    ] {
        let r = enable(&mut doc, &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains(why), "{body}: {}", r.text());
    }
    let mut with_type = auth.to_vec();
    with_type.push(("Content-Type", "text/plain"));
    let r = call(&mut doc, api, "POST", "/metrics/enable", &with_type, b"{}");
    assert_eq!(r.status, 400);
    let r = call(&mut doc, api, "POST", "/metrics/enable", &[], b"{}");
    assert_eq!(r.status, 401);
    let big = format!(
        "{{\"{first}\": true, \"pad\": \"{}\"}}",
        "x".repeat(70 * 1024)
    );
    let r = enable(&mut doc, &big);
    assert_eq!(r.status, 413);
    let mut chunked = auth.to_vec();
    chunked.push(("Transfer-Encoding", "chunked"));
    chunked.push(("Content-Type", "application/json"));
    let r = request(
        api,
        "POST",
        "/metrics/enable",
        &chunked,
        b"2\r\n{}\r\n0\r\n\r\n",
    )
    .expect("server answers");
    doc.check("POST", "/metrics/enable", &r);
    assert_eq!(r.status, 411, "{}", r.text());

    // POST /reload: success; refused (400) while config.yaml is invalid, which keeps the
    // running configuration; 401 without the token.
    let r = call(&mut doc, api, "POST", "/reload", &auth, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let saved = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, "device_type: [unclosed\n").unwrap();
    let r = call(&mut doc, api, "POST", "/reload", &auth, b"");
    assert_eq!(r.status, 400, "{}", r.text());
    std::fs::write(&config, &saved).unwrap();
    let r = call(&mut doc, api, "POST", "/reload", &[], b"");
    assert_eq!(r.status, 401);

    // 500: the directory of config.yaml turns read-only; nothing may change.
    fs.remount("remount,ro");
    let body = format!("{{\"{first}\": false}}");
    let r = enable(&mut doc, &body);
    fs.remount("remount,rw");
    assert_eq!(r.status, 500, "{}", r.text());
    let list = call(&mut doc, api, "GET", "/metrics/list", &auth, b"").json();
    assert_eq!(
        list["metrics"][first.as_str()],
        true,
        "a failed save changed the state"
    );

    // Nothing the document leaves out is answered.
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/metrics"),
        ("GET", "/metrics/list/extra"),
        ("GET", "/metrics/enable"),
        ("GET", "/reload"),
        ("POST", "/health"),
        ("POST", "/config"),
        ("PUT", "/metrics/enable"),
        ("DELETE", "/config"),
        ("PATCH", "/metrics/list"),
        ("GET", "/admin"),
        ("GET", "/health/../config"),
        ("GET", "/config.yaml"),
    ] {
        doc.probe_undocumented(api, method, path);
    }

    doc.assert_covered(&[
        (
            "/metrics/enable",
            "post",
            "503",
            "only while shutting down; not provokable without a race",
        ),
        (
            "/reload",
            "post",
            "503",
            "only while shutting down; not provokable without a race",
        ),
    ]);
    assert!(
        exp.proc.try_wait().is_none(),
        "the exporter exited:\n{}",
        exp.proc.log()
    );
}

#[test]
fn bridge_api_matches_its_document() {
    let mut doc = Doc::load("bridge.yaml");
    let tmp = TempDir::new("openapi-bridge");
    let bridge = start_bridge(
        tmp.path(),
        "bridge",
        &["--rpc-timeout", "2", "--max-pending-requests", "2"],
    );
    let api = bridge.http;
    let plug = |alias: &str, extra: &[&str]| bridge.plug(alias, extra, Some(tmp.path()));
    let wait_devices = |n: u64| bridge.wait_devices(n, Duration::from_secs(10));

    // Nothing connected.
    for path in ["/metrics", "/metrics/nobody"] {
        let r = call(&mut doc, api, "GET", path, &[], b"");
        assert_eq!(r.status, 404, "{}", r.text());
    }
    let r = call(&mut doc, api, "GET", "/devices", &[], b"");
    assert_eq!(r.json()["count"], 0);
    let r = call(&mut doc, api, "GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
    let r = call(&mut doc, api, "GET", "/bridge/metrics", &[], b"");
    assert_eq!(r.status, 200);

    // One healthy plug: by default, by alias, by device id.
    let a = plug("a", &[]);
    let devices = wait_devices(1);
    let id = devices["plugs"][0]["device_id"]
        .as_str()
        .expect("device id")
        .to_string();
    for path in [
        "/metrics".to_string(),
        "/metrics/a".to_string(),
        format!("/metrics/{id}"),
    ] {
        let r = call(&mut doc, api, "GET", &path, &[], b"");
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(
            r.json()["metrics"]["power_total_watts"].is_number(),
            "{}",
            r.text()
        );
    }
    a.kill();
    wait_devices(0);

    // A plug that answers with an RPC error → 500; with a second plug and none named → 409.
    let b = plug(
        "b",
        &[
            "--error",
            "404:No handler for Switch.GetStatus",
            "--mac",
            "AABBCCDDEE01",
        ],
    );
    wait_devices(1);
    for path in ["/metrics", "/metrics/b"] {
        let r = call(&mut doc, api, "GET", path, &[], b"");
        assert_eq!(r.status, 500, "{path}: {}", r.text());
    }
    let c = plug("c", &["--no-reply", "--mac", "AABBCCDDEE02"]);
    wait_devices(2);
    let r = call(&mut doc, api, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 409, "{}", r.text());
    b.kill();
    wait_devices(1);

    // A plug that never answers: two requests wait for it (→ 504 after the RPC timeout) and
    // fill its --max-pending-requests 2, so more are refused at once (→ 503).
    let waits: Vec<_> = ["/metrics", "/metrics/c"]
        .into_iter()
        .map(|path| std::thread::spawn(move || (path, http::get(api, path).unwrap())))
        .collect();
    wait_for(
        Duration::from_secs(10),
        "two requests waiting for c",
        || {
            let m = http::get(api, "/bridge/metrics").ok()?;
            (m.sample("shelly_bridge_pending_requests") == Some(2.0)).then_some(())
        },
    );
    for path in ["/metrics", "/metrics/c"] {
        let r = call(&mut doc, api, "GET", path, &[], b"");
        assert_eq!(r.status, 503, "{path}: {}", r.text());
    }
    for w in waits {
        let (path, r) = w.join().unwrap();
        doc.check("GET", path, &r);
        assert_eq!(r.status, 504, "{path}: {}", r.text());
    }
    c.kill();
    wait_devices(0);

    // A plug whose connection drops while requests wait → 502 (both paths at once).
    let _d = plug(
        "d",
        &[
            "--no-reply",
            "--drop-after",
            "1",
            "--reconnect",
            "never",
            "--mac",
            "AABBCCDDEE03",
        ],
    );
    wait_devices(1);
    get_at_once(&mut doc, api, ["/metrics", "/metrics/d"], 502);

    for (method, path) in [
        ("GET", "/"),
        ("POST", "/metrics"),
        ("DELETE", "/metrics/a"),
        ("PUT", "/devices"),
        ("POST", "/health"),
        ("GET", "/devices/a"),
        ("GET", "/metrics/a/b"),
        ("GET", "/bridge"),
        ("GET", "/rpc"),
    ] {
        doc.probe_undocumented(api, method, path);
    }
    doc.assert_covered(&[]);
    assert!(
        bridge.proc.try_wait().is_none(),
        "the bridge exited:\n{}",
        bridge.proc.log()
    );
}
