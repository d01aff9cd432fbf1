//! The fleet page in a real browser: headless Chromium, driven by chromedriver over the
//! W3C WebDriver protocol (plain JSON over HTTP on loopback, spoken with the workspace's own
//! client), against the real server and the real exporter.
//!
//! An operator signs in through the page, switches a metric on for one device through its
//! form, and the exporter exposes it after `POST /reload`; a page made stale by a change
//! through the JSON API is refused ("changed meanwhile") without overwriting it; switched off
//! again from a fresh page, the metric leaves the exporter's `/metrics` at the next reload.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/setup/deps.sh installs both);
//! missing, the test fails unless `EDGE_METRICS_ALLOW_SKIP` names `chromium` / `chromedriver`.
//! `CHROMIUM` and `CHROMEDRIVER` may name other binaries. The page's screenshot is kept in
//! the test's temporary directory; `UPDATE_SCREENSHOT=1` also writes docs/fleet-page.png.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{assert_status, Server, DEVICE_SECRET, OPERATOR, OPERATOR_SECRET};
use serde_json::{json, Value};
use test_support::daemon::STARTUP;
use test_support::{http, require, wait_for, Daemon, Exporter, TempDir};

const DEVICE: &str = "orin-page";
/// The W3C name of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// Browser flags: headless, root in a container, nothing that phones out.
const CHROMIUM_FLAGS: [&str; 11] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--window-size=1280,860",
    "--force-device-scale-factor=1",
];

/// A chromedriver on 127.0.0.1 with one browser session; the session is closed (and the
/// browser with it) on drop, then chromedriver is killed.
struct Browser {
    _driver: Daemon,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    fn start(chromedriver: &Path, chromium: &Path, dir: &Path) -> Browser {
        let mut cmd = std::process::Command::new(chromedriver);
        cmd.args(["--port=0", "--allowed-ips=127.0.0.1"]);
        let driver = Daemon::start("chromedriver", cmd, Some(dir));
        let line = driver.wait_line(&["started successfully on port"], STARTUP);
        let port: u16 = line
            .rsplit(' ')
            .next()
            .and_then(|p| p.trim_end_matches('.').parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let profile = dir.join("chromium-profile");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.display().to_string(), "args": args},
        }}});
        let r = http::request(
            addr,
            "POST",
            "/session",
            &[("Content-Type", "application/json")],
            caps.to_string().as_bytes(),
        )
        .unwrap_or_else(|e| panic!("POST /session to chromedriver: {e}"));
        assert_eq!(
            r.status, 200,
            "chromedriver did not start Chromium: {}",
            r.body
        );
        let session = r.json()["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_string();
        Browser {
            _driver: driver,
            addr,
            session,
        }
    }

    /// One WebDriver command on this session; its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers: &[(&str, &str)] = if body.is_empty() {
            &[]
        } else {
            &[("Content-Type", "application/json")]
        };
        let r = http::request(self.addr, method, &path, headers, body.as_bytes())
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        assert_eq!(r.status, 200, "WebDriver {method} {path}: {}", r.body);
        r.json()["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn source(&self) -> String {
        self.call("GET", "/source", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The element `css` selects; panics when there is none.
    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element for {css}: {v}"))
            .to_string()
    }

    /// How many elements `css` selects.
    fn count(&self, css: &str) -> usize {
        let v = self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_array().map_or(0, Vec::len)
    }

    /// The ids of the device rows on the page, in order.
    fn rows(&self) -> Vec<String> {
        let source = self.source();
        source
            .split("<tr data-device=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(str::to_string)
            .collect()
    }

    /// Clicks `css` and waits until the page's rows are `expected`.
    fn click_to_rows(&self, css: &str, expected: &[&str]) {
        self.click(css);
        wait_for(
            Duration::from_secs(15),
            &format!("rows {expected:?} after clicking {css}"),
            || (self.rows() == expected).then_some(()),
        );
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Waits until the page's source contains `text`; returns the source.
    fn wait_text(&self, text: &str) -> String {
        wait_for(
            Duration::from_secs(15),
            &format!("{text:?} on the page"),
            || {
                let s = self.source();
                s.contains(text).then_some(s)
            },
        )
    }

    /// Switches `metric` to `state` through the form of the device's row.
    fn switch(&self, metric: &str, state: &str) {
        self.switch_on_row(DEVICE, metric, state);
    }

    /// Switches `metric` to `state` through the form of `device`'s row.
    fn switch_on_row(&self, device: &str, metric: &str, state: &str) {
        let form = format!("form[data-scope=\"device\"][data-target=\"{device}\"]");
        self.type_into(&format!("{form} input[name=\"metric\"]"), metric);
        self.click(&format!("{form} option[value=\"{state}\"]"));
        self.click(&format!("{form} button[type=\"submit\"]"));
    }

    fn screenshot(&self) -> Vec<u8> {
        let b64 = self.call("GET", "/screenshot", None);
        base64_decode(b64.as_str().expect("a base64 screenshot"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Closing the session ends Chromium; killing chromedriver alone could orphan it.
        let path = format!("/session/{}", self.session);
        let _ = http::request(self.addr, "DELETE", &path, &[], b"");
    }
}

/// Standard base64 (with padding) to bytes; panics on anything else.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {:?}", c as char),
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().filter(|c| *c != b'=').collect();
        let mut n = 0u32;
        for (i, c) in data.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..data.len()]);
    }
    out
}

fn operator(
    s: &Server,
    method: &str,
    path: &str,
    body: Option<&Value>,
    etag: Option<&str>,
) -> test_support::Response {
    let auth = format!("Bearer {OPERATOR_SECRET}");
    let mut headers = vec![("Authorization", auth.as_str())];
    if let Some(tag) = etag {
        headers.push(("If-Match", tag));
    }
    match body {
        Some(b) => s.put(path, b, &headers),
        None => s.request(method, path, &headers, ""),
    }
}

fn layer(s: &Server) -> (Value, String) {
    let r = operator(s, "GET", &format!("/config/{DEVICE}/layer"), None, None);
    assert_status(&r, 200, "the device's layer");
    let tag = r.header("etag").expect("an ETag").to_string();
    (r.json(), tag)
}

/// Waits until the exporter's `/metrics` has no sample of `name`.
fn wait_gone(exporter: &Exporter, name: &str) {
    wait_for(
        Duration::from_secs(20),
        &format!("{name} to leave /metrics"),
        || {
            test_support::sample(&exporter.scrape().body, name)
                .is_none()
                .then_some(())
        },
    );
}

fn reload(exporter: &Exporter) {
    let r = exporter.api("POST", "/reload", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["source"], "server", "{}", r.body);
}

#[test]
fn an_operator_switches_a_metric_in_the_browser_and_the_exporter_follows() {
    let Some(chromium) = require::tool_at(
        "chromium",
        Some("CHROMIUM"),
        Path::new("chromium"),
        "apt-get install -y chromium (scripts/setup/deps.sh)",
    ) else {
        return;
    };
    let Some(chromedriver) = require::tool_at(
        "chromedriver",
        Some("CHROMEDRIVER"),
        Path::new("chromedriver"),
        "apt-get install -y chromium-driver (scripts/setup/deps.sh)",
    ) else {
        return;
    };
    let server = Server::sqlite(&[
        ("CONFIG_SERVER_OPERATOR_TOKEN", OPERATOR),
        ("CONFIG_SERVER_DEVICE_TOKEN", DEVICE_SECRET),
    ]);
    let tmp = TempDir::new("fleet-page");
    let exporter = common::start_exporter(tmp.path(), &server, DEVICE);
    wait_for(Duration::from_secs(30), "the exporter's first push", || {
        let r = operator(&server, "GET", "/devices", None, None).json();
        r["devices"]
            .as_array()?
            .iter()
            .any(|d| d["device"] == DEVICE && d["layer"].is_object())
            .then_some(())
    });
    // A metric the exporter discovered but does not expose.
    let metric = exporter.metric_off();
    assert!(
        test_support::sample(&exporter.scrape().body, &metric).is_none(),
        "{metric} is off"
    );
    // A second device and an Orin default, so the page has something to compare.
    let r = server.put(
        "/config/xavier-lab-02",
        &json!({"device_type": "jetson_xavier", "interval": 5,
                "metrics": {"jetson_ram_used_mb": true, "jetson_gpu_usage_percent": true}}),
        &[
            ("Authorization", &format!("Bearer {DEVICE_SECRET}")),
            ("X-Edge-Metrics-Version", "0.1.0"),
            ("X-Edge-Metrics-Device-Type", "jetson_xavier"),
        ],
    );
    assert_status(&r, 201, "the second device's push");
    let r = operator(
        &server,
        "PUT",
        "/defaults/jetson_orin",
        Some(&json!({"metrics": {"jetson_ram_used_mb": true}})),
        None,
    );
    assert_status(&r, 201, "Orin defaults");

    let browser = Browser::start(&chromedriver, &chromium, tmp.path());
    let base = format!("http://{}", server.addr);

    // Signed out, the page sends the browser to the sign-in form.
    browser.goto(&format!("{base}/fleet"));
    assert!(browser.url().ends_with("/login"), "{}", browser.url());
    browser.type_into("input[name=\"token\"]", "wrong-token-wrong-token");
    browser.click("button[type=\"submit\"]");
    browser.wait_text("not an operator token");
    browser.type_into("input[name=\"token\"]", OPERATOR_SECRET);
    browser.click("button[type=\"submit\"]");
    let page = browser.wait_text("signed in as <b>alice</b>");
    assert!(
        page.contains(DEVICE) && page.contains("xavier-lab-02"),
        "{page}"
    );

    // On for this device, through its form.
    browser.switch(&metric, "on");
    browser.wait_text(&format!("Switched {metric} on in the layer of device"));
    assert_eq!(layer(&server).0["metrics"][&metric], true);
    reload(&exporter);
    exporter.wait_sample(&metric, Duration::from_secs(20));

    // Someone changes the device's layer behind the page's back: the page is stale now. The
    // exporter may still be pushing what its reload discovered, which moves the version too:
    // a 412 then means "read again", as for any client; anything else but 200 fails.
    let path = format!("/config/{DEVICE}/layer");
    wait_for(
        Duration::from_secs(20),
        "the change behind the page's back",
        || {
            let (mut body, tag) = layer(&server);
            body["interval"] = json!(0.5);
            let r = operator(&server, "PUT", &path, Some(&body), Some(&tag));
            if r.status != 412 {
                assert_status(&r, 200, "the change behind the page's back");
            }
            (r.status == 200).then_some(())
        },
    );
    browser.switch(&metric, "off");
    browser.wait_text("Changed meanwhile");
    assert_eq!(
        layer(&server).0["metrics"][&metric],
        true,
        "the stale page overwrote nothing"
    );

    // From a fresh page: off, and the exporter drops it at its next reload.
    browser.goto(&format!("{base}/fleet"));
    browser.switch(&metric, "off");
    browser.wait_text(&format!("Switched {metric} off in the layer of device"));
    assert_eq!(layer(&server).0["metrics"][&metric], false);
    reload(&exporter);
    wait_gone(&exporter, &metric);

    let png = browser.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
    std::fs::write(tmp.join("fleet-page.png"), &png).expect("the screenshot is written");
    if std::env::var_os("UPDATE_SCREENSHOT").is_some_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/fleet-page.png");
        std::fs::write(&docs, &png).expect("docs/fleet-page.png is written");
    }

    // Paging: three more devices, two per page, through the links and the filter form.
    for id in ["p-01", "p-02", "p-03"] {
        let r = server.put(
            &format!("/config/{id}"),
            &json!({"device_type": "jetson_nano"}),
            &[
                ("Authorization", &format!("Bearer {DEVICE_SECRET}")),
                ("X-Edge-Metrics-Device-Type", "jetson_nano"),
            ],
        );
        assert_status(&r, 201, "a device for paging");
    }
    browser.goto(&format!("{base}/fleet?limit=2"));
    browser.wait_text("5 known");
    assert_eq!(browser.rows(), [DEVICE, "p-01"]);
    assert_eq!(
        browser.count("a[rel=\"prev\"]"),
        0,
        "the first page has no previous"
    );
    browser.click_to_rows("a[rel=\"next\"]", &["p-02", "p-03"]);
    browser.click_to_rows("a[rel=\"next\"]", &["xavier-lab-02"]);
    assert_eq!(
        browser.count("a[rel=\"next\"]"),
        0,
        "the last page has no next"
    );
    browser.click_to_rows("a[rel=\"prev\"]", &["p-02", "p-03"]);
    // A switch on this page comes back to this page.
    let page_url = browser.url();
    assert!(page_url.contains("before="), "{page_url}");
    browser.switch_on_row("p-03", "jetson_ram_used_mb", "on");
    browser.wait_text("Switched jetson_ram_used_mb on in the layer of device");
    assert_eq!(browser.url(), page_url, "back on the page the form was on");
    assert_eq!(browser.rows(), ["p-02", "p-03"]);
    // The filter form: only the Nanos, still two per page.
    browser.goto(&format!("{base}/fleet?limit=2"));
    browser.click("select[name=\"device_type\"] option[value=\"jetson_nano\"]");
    browser.click_to_rows("nav.paging button[type=\"submit\"]", &["p-01", "p-02"]);
    browser.wait_text("3 matching");
    browser.click_to_rows("a[rel=\"next\"]", &["p-03"]);
    browser.click_to_rows("a[rel=\"first\"]", &["p-01", "p-02"]);
}

#[test]
fn base64_decodes_what_webdriver_sends() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk=\n"), b"hi");
    assert_eq!(base64_decode(""), b"");
}
