//! The page's routes without a server: sign-in, the session cookie, CSRF, the switch through
//! the operators' write path, and the stale-page refusal.

use super::*;
use crate::auth::{parse_named_tokens, parse_tokens};
use crate::service::Seen;
use crate::store::sqlite::SqliteStore;
use test_support::TempDir;

const OPERATOR: &str = "aaaaaaaaaaaaaaaaaaaa";
const DEVICE: &str = "dddddddddddddddddddd";
const FORM: &str = "application/x-www-form-urlencoded";

struct Fixture {
    pages: Pages,
    store: Arc<dyn Store>,
    _dir: TempDir,
}

fn fixture(tokens: Tokens) -> Fixture {
    let dir = TempDir::new("page-unit");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.join("config.db")).expect("a fresh SQLite store opens"));
    let pages = Pages::new(Arc::clone(&store), tokens, Arc::new(Stats::default()));
    Fixture {
        pages,
        store,
        _dir: dir,
    }
}

fn with_tokens() -> Fixture {
    fixture(Tokens {
        operators: parse_named_tokens(&format!("alice:{OPERATOR}")).unwrap(),
        devices: parse_tokens(DEVICE).unwrap(),
    })
}

type Reply = warp::http::Response<Bytes>;

async fn get(f: &Fixture, path: &str, cookie: Option<&str>) -> Reply {
    let mut req = warp::test::request().method("GET").path(path);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.reply(&routes(&f.pages)).await
}

async fn post(f: &Fixture, path: &str, cookie: Option<&str>, body: &str) -> Reply {
    let mut req = warp::test::request()
        .method("POST")
        .path(path)
        .header("content-type", FORM)
        .body(body);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    req.reply(&routes(&f.pages)).await
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn text(r: &Reply) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// Signs in; returns the `Cookie` header value and the session's CSRF token.
async fn sign_in(f: &Fixture) -> (String, String) {
    let r = post(f, "/login", None, &format!("token={OPERATOR}")).await;
    assert_eq!(r.status(), 303, "{}", text(&r));
    let set = header(&r, "set-cookie").to_string();
    let cookie = set.split(';').next().unwrap().to_string();
    let id = cookie.split_once('=').unwrap().1;
    let csrf = f
        .pages
        .sessions()
        .get(id, Instant::now())
        .expect("the cookie names a live session")
        .csrf;
    (cookie, csrf)
}

fn layer(f: &Fixture, l: &Layer) -> LayerDoc {
    service::get_layer(&*f.store, l).unwrap()
}

#[tokio::test]
async fn the_page_needs_a_session_and_the_login_a_real_operator_token() {
    let f = with_tokens();
    for path in ["/", "/fleet"] {
        let r = get(&f, path, None).await;
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(header(&r, "location"), "/login");
    }
    let r = get(&f, "/fleet", Some("edge_metrics_session=forged")).await;
    assert_eq!(header(&r, "location"), "/login", "an unknown session id");
    let r = get(&f, "/login", None).await;
    assert_eq!(r.status(), 200);
    assert!(text(&r).contains("name=\"token\""));
    for wrong in [
        "token=",
        &format!("token={DEVICE}"),
        "token=zzzzzzzzzzzzzzzzzzzz",
    ] {
        let r = post(&f, "/login", None, wrong).await;
        assert_eq!(r.status(), 401, "{wrong}");
        assert!(header(&r, "set-cookie").is_empty(), "{wrong}");
        assert!(text(&r).contains("not an operator token"), "{wrong}");
    }
    let r = post(&f, "/login", None, &format!("token={OPERATOR}")).await;
    assert_eq!(r.status(), 303);
    assert_eq!(header(&r, "location"), "/fleet");
    let set = header(&r, "set-cookie");
    for part in [
        "edge_metrics_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(set.contains(part), "{part} in {set}");
    }
    assert!(
        !set.contains(OPERATOR),
        "the cookie is not the token: {set}"
    );
    let cookie = set.split(';').next().unwrap();
    let r = get(&f, "/", Some(cookie)).await;
    assert_eq!(r.status(), 200);
    assert!(text(&r).contains("signed in as <b>alice</b>"));
    let csp = header(&r, "content-security-policy");
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(header(&r, "cache-control"), "no-store");
    assert!(header(&r, "content-type").starts_with("text/html"));
}

#[tokio::test]
async fn a_proxy_that_says_https_gets_a_secure_cookie() {
    let f = with_tokens();
    let r = warp::test::request()
        .method("POST")
        .path("/login")
        .header("content-type", FORM)
        .header("x-forwarded-proto", "https")
        .body(format!("token={OPERATOR}"))
        .reply(&routes(&f.pages))
        .await;
    assert!(header(&r, "set-cookie").ends_with("; Secure"));
}

#[tokio::test]
async fn an_open_server_still_gives_the_page_a_session_and_csrf_tokens() {
    let f = fixture(Tokens::default());
    let r = get(&f, "/login", None).await;
    assert_eq!(r.status(), 303);
    let cookie = header(&r, "set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = get(&f, "/fleet", Some(&cookie)).await;
    assert!(text(&r).contains("signed in as <b>anonymous</b>"));
    let r = post(
        &f,
        "/fleet/metric",
        Some(&cookie),
        "scope=fleet&target=&version=0&metric=jetson_ram_used_mb&state=on",
    )
    .await;
    assert_eq!(r.status(), 403, "no CSRF token, no change");
    assert!(!layer(&f, &Layer::Fleet).exists);
}

#[tokio::test]
async fn a_switch_needs_the_sessions_csrf_token() {
    let f = with_tokens();
    let (cookie, csrf) = sign_in(&f).await;
    let other = sign_in(&f).await.1;
    let form = "scope=fleet&target=&version=0&metric=jetson_ram_used_mb&state=on";
    for body in [
        form.to_string(),
        format!("csrf=&{form}"),
        format!("csrf={other}&{form}"),
    ] {
        let r = post(&f, "/fleet/metric", Some(&cookie), &body).await;
        assert_eq!(r.status(), 403, "{body}");
        assert!(text(&r).contains("CSRF"), "{}", text(&r));
    }
    let r = post(&f, "/fleet/metric", None, &format!("csrf={csrf}&{form}")).await;
    assert_eq!(r.status(), 403, "a token without the cookie");
    assert!(!layer(&f, &Layer::Fleet).exists, "nothing was written");
    // Signing out needs it too.
    let r = post(&f, "/logout", Some(&cookie), "csrf=nope").await;
    assert_eq!(r.status(), 403);
    let r = post(&f, "/logout", Some(&cookie), &format!("csrf={csrf}")).await;
    assert_eq!(r.status(), 303);
    assert!(header(&r, "set-cookie").contains("Max-Age=0"));
    let r = get(&f, "/fleet", Some(&cookie)).await;
    assert_eq!(header(&r, "location"), "/login", "the session is gone");
}

#[tokio::test]
async fn a_switch_writes_the_layer_and_a_stale_page_overwrites_nothing() {
    let f = with_tokens();
    let (cookie, csrf) = sign_in(&f).await;
    let switch = |version: i64, state: &str| {
        format!(
            "csrf={csrf}&scope=type&target=jetson_orin&version={version}\
             &metric=jetson_gpu_usage_percent&state={state}"
        )
    };
    let orin = Layer::Type(DeviceType::JetsonOrin);
    let r = post(&f, "/fleet/metric", Some(&cookie), &switch(0, "on")).await;
    assert_eq!(r.status(), 303, "{}", text(&r));
    let doc = layer(&f, &orin);
    assert_eq!(
        doc.body,
        json!({"metrics": {"jetson_gpu_usage_percent": true}})
    );
    let history = service::history(&*f.store, &orin, None, 10).unwrap();
    assert_eq!(history[0].actor, "alice", "the history names the operator");
    // The next page shows what happened, once.
    let page = text(&get(&f, "/fleet", Some(&cookie)).await);
    assert!(
        page.contains("Switched jetson_gpu_usage_percent on in the defaults of jetson_orin"),
        "{page}"
    );
    assert!(page.contains(&format!("name=\"version\" value=\"{}\"", doc.rev)));
    assert!(!text(&get(&f, "/fleet", Some(&cookie)).await).contains("Switched"));

    // A page rendered before that change still says version 0: refused, nothing overwritten.
    let r = post(&f, "/fleet/metric", Some(&cookie), &switch(0, "off")).await;
    assert_eq!(r.status(), 409);
    let page = text(&r);
    assert!(page.contains("changed meanwhile"), "{page}");
    assert!(page.contains("Reload the fleet page"), "{page}");
    assert_eq!(layer(&f, &orin), doc);

    // From the current version: back to the defaults, and the empty metrics map goes.
    let r = post(
        &f,
        "/fleet/metric",
        Some(&cookie),
        &switch(doc.rev, "default"),
    )
    .await;
    assert_eq!(r.status(), 303, "{}", text(&r));
    assert_eq!(layer(&f, &orin).body, json!({}));
}

#[tokio::test]
async fn a_bad_form_is_refused_with_its_reason() {
    let f = with_tokens();
    let (cookie, csrf) = sign_in(&f).await;
    for (body, reason) in [
        (
            "scope=galaxy&target=&version=0&metric=m&state=on",
            "scope must be",
        ),
        (
            "scope=type&target=tx2&version=0&metric=m&state=on",
            "no defaults layer for device type",
        ),
        ("scope=fleet&target=&version=x&metric=m&state=on", "version"),
        (
            "scope=fleet&target=&version=0&metric=1bad&state=on",
            "not a metric name",
        ),
        (
            "scope=fleet&target=&version=0&metric=m&state=maybe",
            "state must be",
        ),
    ] {
        let r = post(
            &f,
            "/fleet/metric",
            Some(&cookie),
            &format!("csrf={csrf}&{body}"),
        )
        .await;
        assert_eq!(r.status(), 400, "{body}");
        assert!(text(&r).contains(reason), "{reason}: {}", text(&r));
    }
}

#[tokio::test]
async fn devices_show_with_escaped_names_and_their_layer_against_the_defaults() {
    let f = with_tokens();
    let evil = "<i>orin</i>\"'&";
    let config = json!({
        "device_type": "jetson_orin",
        "interval": 5,
        "metrics": {"jetson_ram_used_mb": true, "jetson_swap_used_mb": false},
    });
    let seen = Seen::from_headers(Some("0.1.0"), Some("jetson_orin"));
    service::push(
        &*f.store,
        evil,
        config,
        &crate::auth::Caller::Fleet,
        &seen,
        None,
        now_ms(),
    )
    .unwrap();
    let (cookie, _) = sign_in(&f).await;
    let page = text(&get(&f, "/fleet", Some(&cookie)).await);
    assert!(!page.contains("<i>"), "{page}");
    assert!(
        page.contains("&lt;i&gt;orin&lt;/i&gt;&quot;&#39;&amp;"),
        "{page}"
    );
    assert!(page.contains("0.1.0"));
    // interval 5 against the exporter's default, the metric on against unset; the metric
    // off that the defaults do not mention is no departure.
    assert!(page.contains("<code>interval</code>"), "{page}");
    assert!(
        page.contains("<code>metrics.jetson_ram_used_mb</code> <span class=\"was\">unset</span>"),
        "{page}"
    );
    assert!(!page.contains("metrics.jetson_swap_used_mb"), "{page}");
    assert!(!page.contains("class=\"quiet\""), "seen just now: {page}");
}

#[test]
fn forms_decode_like_browsers_send_them() {
    let f = Form::parse(b"a=1&b=x+y%2Bz&c=%3Cp%3E&a=2&empty&bad=%FF");
    assert_eq!(f.get("a"), "1", "the first value counts");
    assert_eq!(f.get("b"), "x y+z");
    assert_eq!(f.get("c"), "<p>");
    assert_eq!(f.get("empty"), "");
    assert_eq!(f.get("bad"), "", "not UTF-8: dropped");
    assert_eq!(f.get("missing"), "");
}

#[test]
fn a_switch_changes_only_its_metric() {
    let sw = |state| Switch {
        layer: Layer::Fleet,
        version: 3,
        metric: "m".into(),
        state,
    };
    let body = object(&json!({"interval": 2, "metrics": {"x": true}}));
    assert_eq!(
        Value::Object(sw(Some(false)).apply(body.clone()).unwrap()),
        json!({"interval": 2, "metrics": {"x": true, "m": false}})
    );
    let only_m = object(&json!({"metrics": {"m": true}}));
    assert_eq!(Value::Object(sw(None).apply(only_m).unwrap()), json!({}));
    let broken = object(&json!({"metrics": [1]}));
    assert!(sw(Some(true)).apply(broken).is_err());
}

#[test]
fn the_diff_leaves_out_what_the_defaults_already_say() {
    let defaults = object(&json!({"interval": 1, "metrics": {"a": true}}));
    let own = object(&json!({"interval": 1, "metrics": {"a": false, "b": true, "c": false}}));
    let keys: Vec<String> = layer_diff(&defaults, &own)
        .iter()
        .map(Change::key)
        .collect();
    assert_eq!(keys, ["metrics.a", "metrics.b"]);
}
