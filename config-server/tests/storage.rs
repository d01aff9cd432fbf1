//! The storage suite: the same test functions run against SQLite (a temporary file) and
//! PostgreSQL (a throwaway cluster from `test_support::pg`, one fresh database per test),
//! through the service operations the HTTP routes call. A missing PostgreSQL fails the
//! `postgres::` tests with the install command (see `test_support::require` for the opt-out).

use std::collections::BTreeSet;
use std::sync::Arc;

use edge_metrics_config_server::auth::{self, Caller, Token};
use edge_metrics_config_server::service::{self, Layer, Seen, ServiceError};
use edge_metrics_config_server::store::{DatabaseUrl, Store};
use serde_json::{json, Value};
use test_support::pg::Cluster;
use test_support::TempDir;

/// A database to open (again and again, to test what survives a reopen).
struct Backend {
    url: DatabaseUrl,
    _dir: Option<TempDir>,
}

impl Backend {
    fn open(&self) -> Arc<dyn Store> {
        Arc::from(self.url.open().expect("the test database opens"))
    }
}

fn sqlite(label: &str) -> Backend {
    let dir = TempDir::new(label);
    Backend {
        url: DatabaseUrl::Sqlite(dir.join("config-server.db")),
        _dir: Some(dir),
    }
}

fn postgres(label: &str) -> Option<Backend> {
    let pg = Cluster::shared()?;
    Some(Backend {
        url: DatabaseUrl::parse(&pg.database(label)).expect("a cluster URL parses"),
        _dir: None,
    })
}

/// Each function below becomes `sqlite::<name>` and `postgres::<name>`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(&super::sqlite(stringify!($name))) })*
        }
        mod postgres {
            $(#[test] fn $name() {
                let Some(backend) = super::postgres(stringify!($name)) else { return };
                super::$name(&backend)
            })*
        }
    };
}

on_both_backends!(
    migrations_apply_once_and_data_survives_a_reopen,
    a_schema_newer_than_the_server_is_refused,
    fetch_is_404_until_a_push_then_the_merge,
    the_device_layer_keeps_only_what_differs_from_the_defaults,
    a_device_that_never_fetched_cannot_override_operator_keys,
    an_operator_change_survives_a_stale_device_push,
    a_device_change_after_its_fetch_is_kept,
    if_match_is_required_and_checked_on_operator_writes,
    a_push_with_if_match_is_refused_when_stale,
    every_change_is_in_the_history_and_can_be_reverted,
    an_invalid_config_is_refused_and_not_stored,
    fetches_and_pushes_are_recorded_per_device,
    a_device_token_works_for_its_device_only,
    concurrent_writers_lose_nothing,
    a_change_to_defaults_that_breaks_a_device_is_refused,
);

const T0: i64 = 1_700_000_000_000;

/// Whether a merged config switches `metric` on (absent is off: the exporter adds a metric it
/// discovers as `false`).
fn enabled(config: &Value, metric: &str) -> bool {
    config["metrics"][metric] == json!(true)
}

fn operator(name: &str) -> Caller {
    Caller::Operator(name.to_string())
}

fn orin(metrics: Value) -> Value {
    json!({"device_type": "jetson_orin", "interval": 1, "metrics": metrics})
}

fn fetch(store: &dyn Store, device: &str) -> Option<service::Fetched> {
    service::fetch(store, device, &Caller::Open, &Seen::default(), T0).expect("fetch")
}

fn push(store: &dyn Store, device: &str, body: Value) -> service::Pushed {
    service::push(
        store,
        device,
        body,
        &Caller::Open,
        &Seen::default(),
        None,
        T0,
    )
    .expect("push")
}

fn put_fleet(store: &dyn Store, body: Value) -> service::LayerWrite {
    let current = service::get_layer(store, &Layer::Fleet).unwrap();
    let tag = service::etag(current.rev);
    service::put_layer(store, &Layer::Fleet, body, Some(&tag), "alice", T0).expect("fleet write")
}

fn migrations_apply_once_and_data_survives_a_reopen(b: &Backend) {
    let store = b.open();
    push(&*store, "orin-01", orin(json!({"gpu": true})));
    drop(store);
    // A second open finds the schema in place (no migration runs again) and the data.
    let store = b.open();
    let f = fetch(&*store, "orin-01").expect("the push survived a reopen");
    assert_eq!(f.config["metrics"]["gpu"], true);
    let versions = match &b.url {
        DatabaseUrl::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path).unwrap();
            let mut stmt = conn
                .prepare("SELECT version, name FROM schema_migrations ORDER BY version")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap()
        }
        DatabaseUrl::Postgres(url) => {
            let mut c = ::postgres::Client::connect(url, ::postgres::NoTls).unwrap();
            c.query(
                "SELECT version, name FROM schema_migrations ORDER BY version",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)))
            .collect()
        }
    };
    assert_eq!(versions, vec![(1, "initial".to_string())]);
    store.ping().unwrap();
}

fn a_schema_newer_than_the_server_is_refused(b: &Backend) {
    drop(b.open());
    let sql = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (999, 'future', 0)";
    match &b.url {
        DatabaseUrl::Sqlite(path) => {
            rusqlite::Connection::open(path)
                .unwrap()
                .execute(sql, [])
                .unwrap();
        }
        DatabaseUrl::Postgres(url) => {
            ::postgres::Client::connect(url, ::postgres::NoTls)
                .unwrap()
                .execute(sql, &[])
                .unwrap();
        }
    }
    let e = b.url.open().map(|_| ()).unwrap_err();
    assert!(
        e.to_string()
            .contains("schema version 999, newer than this server knows (1)"),
        "{e}"
    );
}

fn fetch_is_404_until_a_push_then_the_merge(b: &Backend) {
    let store = b.open();
    assert_eq!(fetch(&*store, "orin-01"), None);
    let first = push(&*store, "orin-01", orin(json!({"gpu": true})));
    assert!(first.created && first.changed);
    let again = push(&*store, "orin-01", orin(json!({"gpu": true})));
    assert!(!again.created && !again.changed, "{again:?}");
    assert_eq!(
        again.config_rev, first.config_rev,
        "no change, no new version"
    );
    put_fleet(&*store, json!({"interval": 5, "metrics": {"ram": true}}));
    let tag = service::etag(0);
    service::put_layer(
        &*store,
        &Layer::Type(edge_metrics_config::DeviceType::JetsonOrin),
        json!({"metrics": {"temp": true}}),
        Some(&tag),
        "alice",
        T0,
    )
    .unwrap();
    let f = fetch(&*store, "orin-01").unwrap();
    assert_eq!(f.config["device_type"], "jetson_orin");
    assert_eq!(f.config["interval"], 5, "the fleet's interval");
    assert_eq!(
        f.config["metrics"],
        json!({"gpu": true, "ram": true, "temp": true})
    );
    assert!(f.rev > first.config_rev);
    // The merged config is a valid exporter config.
    edge_metrics_config::from_json(f.config).unwrap();
}

fn the_device_layer_keeps_only_what_differs_from_the_defaults(b: &Backend) {
    let store = b.open();
    put_fleet(
        &*store,
        json!({"interval": 5, "metrics": {"gpu": true, "ram": true}}),
    );
    assert!(fetch(&*store, "orin-01").is_none());
    // First contact, then a fetch: the device has seen the fleet's values.
    push(&*store, "orin-01", orin(json!({})));
    fetch(&*store, "orin-01").unwrap();
    // What an exporter pushes: its full config, with the defaults it got and discoveries.
    let full = json!({
        "device_type": "jetson_orin",
        "interval": 5,
        "port": 9102,
        "reload_port": 9101,
        "shelly": {"enabled": true, "server_url": "http://localhost:8766"},
        "metrics": {"gpu": true, "ram": false, "new_one": false, "own": true},
        "rack": "r7"
    });
    let p = push(&*store, "orin-01", full);
    assert_eq!(
        p.layer,
        json!({"device_type": "jetson_orin", "metrics": {"ram": false, "own": true}, "rack": "r7"}),
        "only the differences are stored"
    );
    // The operator changes the fleet later: keys the device did not override follow.
    put_fleet(
        &*store,
        json!({"interval": 10, "metrics": {"gpu": true, "ram": true, "new_one": true}}),
    );
    let f = fetch(&*store, "orin-01").unwrap();
    assert_eq!(f.config["interval"], 10);
    assert_eq!(
        f.config["metrics"]["new_one"], true,
        "a discovered false did not pin it"
    );
    assert_eq!(
        f.config["metrics"]["ram"], false,
        "the device's explicit false wins"
    );
}

fn a_device_that_never_fetched_cannot_override_operator_keys(b: &Backend) {
    let store = b.open();
    put_fleet(&*store, json!({"metrics": {"ram": true}}));
    // A new device: its fetch found nothing, so it runs its local config and pushes that.
    assert!(fetch(&*store, "orin-01").is_none());
    let p = push(&*store, "orin-01", orin(json!({"ram": false, "own": true})));
    assert_eq!(p.kept, ["metrics.ram"]);
    let f = fetch(&*store, "orin-01").unwrap();
    assert!(
        enabled(&f.config, "ram"),
        "fleet policy reaches a new device"
    );
    assert!(
        enabled(&f.config, "own"),
        "its keys the operator does not manage are kept"
    );
    // Having fetched, it may override.
    let p = push(&*store, "orin-01", orin(json!({"ram": false, "own": true})));
    assert!(p.kept.is_empty(), "{p:?}");
    assert!(!enabled(&fetch(&*store, "orin-01").unwrap().config, "ram"));
}

fn an_operator_change_survives_a_stale_device_push(b: &Backend) {
    let store = b.open();
    push(&*store, "orin-01", orin(json!({"gpu": false, "ram": true})));
    // The device fetches (version A) ...
    let seen = fetch(&*store, "orin-01").unwrap();
    // ... the operator enables gpu on this device, then changes the fleet interval ...
    let layer = service::get_layer(&*store, &Layer::Device("orin-01".into())).unwrap();
    let mut body = layer.body.clone();
    body["metrics"]["gpu"] = json!(true);
    service::put_layer(
        &*store,
        &Layer::Device("orin-01".into()),
        body,
        Some(&service::etag(layer.rev)),
        "alice",
        T0,
    )
    .unwrap();
    put_fleet(&*store, json!({"interval": 3}));
    // ... and the device, still on version A, pushes a change of its own (temp on) with
    // its stale gpu=false and interval 1.
    let p = push(
        &*store,
        "orin-01",
        orin(json!({"gpu": false, "ram": true, "temp": true})),
    );
    let kept: BTreeSet<&str> = p.kept.iter().map(String::as_str).collect();
    assert_eq!(kept, BTreeSet::from(["interval", "metrics.gpu"]), "{p:?}");
    let f = fetch(&*store, "orin-01").unwrap();
    assert!(f.rev > seen.rev);
    assert_eq!(
        f.config["metrics"]["gpu"], true,
        "the operator's change stands"
    );
    assert_eq!(f.config["interval"], 3, "the fleet's change stands");
    assert_eq!(
        f.config["metrics"]["temp"], true,
        "the device's own change is kept too"
    );
    // Having fetched, the device's next push is judged by the new version: it may now
    // switch gpu off again, deliberately.
    let p = push(
        &*store,
        "orin-01",
        json!({"device_type": "jetson_orin", "interval": 3, "metrics": {"gpu": false, "ram": true, "temp": true}}),
    );
    assert!(p.kept.is_empty(), "{p:?}");
    assert!(!enabled(&fetch(&*store, "orin-01").unwrap().config, "gpu"));
}

fn a_device_change_after_its_fetch_is_kept(b: &Backend) {
    let store = b.open();
    put_fleet(&*store, json!({"metrics": {"gpu": true}}));
    push(&*store, "orin-01", orin(json!({"gpu": true})));
    fetch(&*store, "orin-01").unwrap();
    // The operator's fleet change came before the fetch: the device saw it and may override.
    let p = push(&*store, "orin-01", orin(json!({"gpu": false})));
    assert!(p.kept.is_empty(), "{p:?}");
    assert_eq!(
        fetch(&*store, "orin-01").unwrap().config["metrics"]["gpu"],
        false
    );
}

fn if_match_is_required_and_checked_on_operator_writes(b: &Backend) {
    let store = b.open();
    let layer = Layer::Fleet;
    // Creating needs no If-Match (or "v0").
    let w = service::put_layer(&*store, &layer, json!({"interval": 2}), None, "alice", T0).unwrap();
    assert!(w.created);
    let e =
        service::put_layer(&*store, &layer, json!({"interval": 3}), None, "bob", T0).unwrap_err();
    assert!(
        matches!(e, ServiceError::NeedsIfMatch { current } if current == w.rev),
        "{e:?}"
    );
    let ok = service::put_layer(
        &*store,
        &layer,
        json!({"interval": 3}),
        Some(&service::etag(w.rev)),
        "bob",
        T0,
    )
    .unwrap();
    assert!(ok.rev > w.rev && !ok.created);
    // Alice still holds the first version: refused, and nothing changed.
    let e = service::put_layer(
        &*store,
        &layer,
        json!({"interval": 4}),
        Some(&service::etag(w.rev)),
        "alice",
        T0,
    )
    .unwrap_err();
    assert!(
        matches!(e, ServiceError::Stale { current, .. } if current == ok.rev),
        "{e:?}"
    );
    let now = service::get_layer(&*store, &layer).unwrap();
    assert_eq!((now.body, now.rev), (json!({"interval": 3}), ok.rev));
    let e = service::put_layer(
        &*store,
        &Layer::Device("new-one".into()),
        json!({"interval": 4}),
        Some("\"v9\""),
        "alice",
        T0,
    )
    .unwrap_err();
    assert!(matches!(e, ServiceError::Stale { current: 0, .. }), "{e:?}");
}

fn a_push_with_if_match_is_refused_when_stale(b: &Backend) {
    let store = b.open();
    push(&*store, "orin-01", orin(json!({"gpu": true})));
    let f = fetch(&*store, "orin-01").unwrap();
    put_fleet(&*store, json!({"interval": 2}));
    let e = service::push(
        &*store,
        "orin-01",
        orin(json!({"gpu": false})),
        &operator("alice"),
        &Seen::default(),
        Some(&service::etag(f.rev)),
        T0,
    )
    .unwrap_err();
    assert!(matches!(e, ServiceError::Stale { .. }), "{e:?}");
    let now = fetch(&*store, "orin-01").unwrap();
    assert_eq!(now.config["metrics"]["gpu"], true);
    let p = service::push(
        &*store,
        "orin-01",
        json!({"device_type": "jetson_orin", "interval": 1, "metrics": {"gpu": false}}),
        &operator("alice"),
        &Seen::default(),
        Some(&service::etag(now.rev)),
        T0,
    )
    .unwrap();
    assert!(
        p.kept.is_empty(),
        "a current If-Match protects nothing: {p:?}"
    );
    let after = fetch(&*store, "orin-01").unwrap();
    assert!(!enabled(&after.config, "gpu"));
    assert_eq!(
        after.config["interval"], 1,
        "pinned against the fleet's 2 on purpose"
    );
}

fn every_change_is_in_the_history_and_can_be_reverted(b: &Backend) {
    let store = b.open();
    let dev = Layer::Device("orin-01".into());
    let v1 = push(&*store, "orin-01", orin(json!({"gpu": true}))).layer_rev;
    let v2 = service::put_layer(
        &*store,
        &dev,
        json!({"device_type": "jetson_orin", "metrics": {"gpu": false}}),
        Some(&service::etag(v1)),
        "alice",
        T0 + 1000,
    )
    .unwrap()
    .rev;
    let history = service::history(&*store, &dev, None, 10).unwrap();
    let summary: Vec<(i64, &str, &str)> = history
        .iter()
        .map(|h| (h.rev, h.actor.as_str(), h.action.as_str()))
        .collect();
    assert_eq!(summary, vec![(v2, "alice", "put"), (v1, "device", "push")]);
    assert_eq!(history[0].at, T0 + 1000);
    assert_eq!(
        history[0].changes,
        json!([{"key": "metrics.gpu", "path": ["metrics", "gpu"], "before": true, "after": false}])
    );
    assert_eq!(history[1].before, None, "created");
    // Revert to v1: needs If-Match, restores the body, and is itself a change.
    let e = service::revert(&*store, &dev, v1, None, "bob", T0).unwrap_err();
    assert!(matches!(e, ServiceError::NeedsIfMatch { .. }), "{e:?}");
    let e = service::revert(&*store, &dev, 12345, Some(&service::etag(v2)), "bob", T0).unwrap_err();
    assert!(matches!(e, ServiceError::NotFound(_)), "{e:?}");
    let r = service::revert(&*store, &dev, v1, Some(&service::etag(v2)), "bob", T0).unwrap();
    assert!(r.rev > v2 && r.changed);
    assert_eq!(
        fetch(&*store, "orin-01").unwrap().config["metrics"]["gpu"],
        true
    );
    let history = service::history(&*store, &dev, None, 10).unwrap();
    assert_eq!(
        (
            history[0].action.as_str(),
            history[0].actor.as_str(),
            history[0].reverted_to
        ),
        ("revert", "bob", Some(v1))
    );
    // Paging: older than the newest, one at a time.
    let page = service::history(&*store, &dev, Some(r.rev), 1).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].rev, v2);
    // The fleet layer has a history of its own.
    put_fleet(&*store, json!({"interval": 2}));
    let fleet = service::history(&*store, &Layer::Fleet, None, 10).unwrap();
    assert_eq!(fleet.len(), 1);
    assert_eq!(fleet[0].doc, "fleet");
}

fn an_invalid_config_is_refused_and_not_stored(b: &Backend) {
    let store = b.open();
    let e = service::push(
        &*store,
        "orin-01",
        json!({"device_type": "jetson_tx2", "interval": 0}),
        &Caller::Open,
        &Seen::default(),
        None,
        T0,
    )
    .unwrap_err();
    let ServiceError::BadRequest(message) = e else {
        panic!("{e:?}")
    };
    // The exporter's own words.
    assert!(
        message.contains("Unsupported device type: jetson_tx2"),
        "{message}"
    );
    assert!(message.contains("interval"), "{message}");
    assert_eq!(fetch(&*store, "orin-01"), None, "nothing was stored");
    let e = service::put_layer(
        &*store,
        &Layer::Fleet,
        json!({"metrics": {"gpu": 1}}),
        None,
        "alice",
        T0,
    )
    .unwrap_err();
    assert!(
        matches!(&e, ServiceError::BadRequest(m) if m.contains("metrics.gpu must be true or false")),
        "{e:?}"
    );
    assert_eq!(service::get_layer(&*store, &Layer::Fleet).unwrap().rev, 0);
    let e = service::put_layer(
        &*store,
        &Layer::Type(edge_metrics_config::DeviceType::Jetson),
        json!({"device_type": "jetson_nano"}),
        None,
        "alice",
        T0,
    )
    .unwrap_err();
    assert!(matches!(e, ServiceError::BadRequest(_)), "{e:?}");
    let e = service::put_layer(
        &*store,
        &Layer::Fleet,
        json!({"api_token": "aaaaaaaaaaaaaaaaaaaa"}),
        None,
        "alice",
        T0,
    )
    .unwrap_err();
    assert!(matches!(e, ServiceError::BadRequest(_)), "{e:?}");
}

fn fetches_and_pushes_are_recorded_per_device(b: &Backend) {
    let store = b.open();
    let seen = Seen::from_headers(Some("0.3.1"), Some("jetson_nano"));
    // A fetch before any config: recorded, with no version.
    service::fetch(&*store, "nano-01", &Caller::Open, &seen, T0).unwrap();
    service::push(
        &*store,
        "nano-01",
        json!({"device_type": "jetson_nano", "metrics": {"a": true, "b": true, "c": false}}),
        &Caller::Open,
        &seen,
        None,
        T0 + 10,
    )
    .unwrap();
    let f = service::fetch(&*store, "nano-01", &Caller::Open, &seen, T0 + 20)
        .unwrap()
        .unwrap();
    // An operator's look is not the device's fetch.
    service::fetch(
        &*store,
        "nano-01",
        &operator("alice"),
        &Seen::default(),
        T0 + 30,
    )
    .unwrap();
    let list = service::devices(&*store).unwrap();
    assert_eq!(list.len(), 1);
    let d = &list[0];
    assert_eq!(d.row.device, "nano-01");
    assert_eq!(d.device_type.as_deref(), Some("jetson_nano"));
    assert_eq!(d.row.exporter_version.as_deref(), Some("0.3.1"));
    assert_eq!(d.row.first_seen_at, T0);
    assert_eq!(d.row.last_push_at, Some(T0 + 10));
    assert_eq!(d.row.last_fetch_at, Some(T0 + 20));
    assert_eq!(d.row.fetched_rev, Some(f.rev));
    assert_eq!(d.config_rev, f.rev);
    assert_eq!(d.enabled_metrics, 2);
    assert_eq!(
        d.layer.as_ref().map(|l| l.0.clone()),
        Some(json!({"device_type": "jetson_nano", "metrics": {"a": true, "b": true}}))
    );
    assert_eq!(service::count_devices(&*store, T0 + 15).unwrap(), (1, 1));
    assert_eq!(service::count_devices(&*store, T0 + 25).unwrap(), (0, 1));
    // Without the headers nothing is lost: the type comes from the config.
    service::push(
        &*store,
        "orin-02",
        orin(json!({})),
        &Caller::Open,
        &Seen::default(),
        None,
        T0,
    )
    .unwrap();
    let list = service::devices(&*store).unwrap();
    let orin = list.iter().find(|d| d.row.device == "orin-02").unwrap();
    assert_eq!(orin.device_type.as_deref(), Some("jetson_orin"));
    assert_eq!(orin.row.exporter_version, None);
    // Forgetting a device takes its layer (kept in the history), row and token.
    let layer = service::get_layer(&*store, &Layer::Device("orin-02".into())).unwrap();
    assert!(service::delete_device(&*store, "orin-02", None, "alice", T0).is_err());
    assert!(service::delete_device(
        &*store,
        "orin-02",
        Some(&service::etag(layer.rev)),
        "alice",
        T0
    )
    .unwrap());
    assert_eq!(fetch(&*store, "orin-02"), None);
    let h = service::history(&*store, &Layer::Device("orin-02".into()), None, 5).unwrap();
    assert_eq!(h[0].action, "delete");
}

fn a_device_token_works_for_its_device_only(b: &Backend) {
    let store = b.open();
    let tokens = auth::Tokens {
        operators: auth::parse_named_tokens("alice:aaaaaaaaaaaaaaaaaaaa").unwrap(),
        devices: auth::parse_tokens("ffffffffffffffffffff").unwrap(),
    };
    let fleet = tokens
        .classify(Some("Bearer ffffffffffffffffffff"))
        .unwrap();
    // The fleet token works for every device ...
    push_as(&*store, "orin-01", &fleet).unwrap();
    push_as(&*store, "orin-02", &fleet).unwrap();
    // ... until a device gets its own token.
    let own = service::create_device_token(&*store, "orin-01", "alice", T0).unwrap();
    let e = push_as(&*store, "orin-01", &fleet).unwrap_err();
    assert!(
        matches!(e, ServiceError::Auth(auth::AuthError::Forbidden(_))),
        "{e:?}"
    );
    let mine = tokens.classify(Some(&format!("Bearer {own}"))).unwrap();
    push_as(&*store, "orin-01", &mine).unwrap();
    service::fetch(&*store, "orin-01", &mine, &Seen::default(), T0)
        .unwrap()
        .unwrap();
    let e = push_as(&*store, "orin-02", &mine).unwrap_err();
    assert!(
        matches!(e, ServiceError::Auth(auth::AuthError::Invalid)),
        "{e:?}"
    );
    let listed = service::devices(&*store).unwrap();
    assert!(listed
        .iter()
        .any(|d| d.row.device == "orin-01" && d.has_token));
    // Only the digest is stored.
    assert_ne!(Token::new(&own).unwrap().hex(), own);
    // Rotation: the old token stops working.
    let newer = service::create_device_token(&*store, "orin-01", "alice", T0).unwrap();
    assert_ne!(newer, own);
    assert!(push_as(&*store, "orin-01", &mine).is_err());
    assert!(service::delete_device_token(&*store, "orin-01").unwrap());
    assert!(!service::delete_device_token(&*store, "orin-01").unwrap());
    push_as(&*store, "orin-01", &fleet).unwrap();
}

fn push_as(store: &dyn Store, device: &str, caller: &Caller) -> Result<(), ServiceError> {
    service::push(
        store,
        device,
        orin(json!({"gpu": true})),
        caller,
        &Seen::default(),
        None,
        T0,
    )
    .map(|_| ())
}

fn concurrent_writers_lose_nothing(b: &Backend) {
    // Several servers may share one PostgreSQL: open the store twice to act like two.
    let stores = [b.open(), b.open()];
    const DEVICES: usize = 4;
    const PUSHES: usize = 15;
    const OPERATOR_WRITES: usize = 15;
    std::thread::scope(|scope| {
        for d in 0..DEVICES {
            let store = Arc::clone(&stores[d % 2]);
            scope.spawn(move || {
                for i in 0..PUSHES {
                    push(
                        &*store,
                        &format!("dev-{d}"),
                        orin(json!({ format!("m{i}"): true })),
                    );
                }
            });
        }
        let store = Arc::clone(&stores[1]);
        scope.spawn(move || {
            // The operator retries on 412, as a client should; a write never goes missing.
            let mut done = 0;
            let mut attempts = 0;
            while done < OPERATOR_WRITES {
                attempts += 1;
                assert!(attempts < 10 * OPERATOR_WRITES, "too many refusals");
                let current = service::get_layer(&*store, &Layer::Fleet).unwrap();
                let mut body = current.body.clone();
                body[format!("k{done}")] = json!(done);
                match service::put_layer(
                    &*store,
                    &Layer::Fleet,
                    body,
                    Some(&service::etag(current.rev)),
                    "alice",
                    T0,
                ) {
                    Ok(_) => done += 1,
                    Err(ServiceError::Stale { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        });
    });
    let store = &*stores[0];
    for d in 0..DEVICES {
        let f = fetch(store, &format!("dev-{d}")).unwrap();
        assert_eq!(
            f.config["metrics"],
            json!({ format!("m{}", PUSHES - 1): true }),
            "the last push of dev-{d} is its layer"
        );
        let h = service::history(store, &Layer::Device(format!("dev-{d}")), None, 100).unwrap();
        assert_eq!(h.len(), PUSHES, "one history entry per changing push");
    }
    let fleet = service::get_layer(store, &Layer::Fleet).unwrap();
    for k in 0..OPERATOR_WRITES {
        assert_eq!(fleet.body[format!("k{k}")], json!(k), "{fleet:?}");
    }
    // Versions are unique across documents: every change took its own revision.
    let mut revs: Vec<i64> = (0..DEVICES)
        .flat_map(|d| {
            service::history(store, &Layer::Device(format!("dev-{d}")), None, 100).unwrap()
        })
        .chain(service::history(store, &Layer::Fleet, None, 100).unwrap())
        .map(|h| h.rev)
        .collect();
    let n = revs.len();
    revs.sort_unstable();
    revs.dedup();
    assert_eq!(revs.len(), n);
}

fn a_change_to_defaults_that_breaks_a_device_is_refused(b: &Backend) {
    let store = b.open();
    // orin-01 sets both ports itself: a fleet reload_port does not reach it.
    push(
        &*store,
        "orin-01",
        json!({"device_type": "jetson_orin", "port": 9101, "reload_port": 9200}),
    );
    put_fleet(&*store, json!({"reload_port": 9101}));
    // orin-02 moved only its metrics port: a fleet reload_port equal to it would clash.
    push(
        &*store,
        "orin-02",
        json!({"device_type": "jetson_orin", "port": 9300}),
    );
    let current = service::get_layer(&*store, &Layer::Fleet).unwrap();
    let e = service::put_layer(
        &*store,
        &Layer::Fleet,
        json!({"reload_port": 9300}),
        Some(&service::etag(current.rev)),
        "alice",
        T0,
    )
    .unwrap_err();
    let ServiceError::BadRequest(m) = e else {
        panic!("{e:?}")
    };
    assert!(m.contains("1 device(s)") && m.contains("orin-02"), "{m}");
    assert!(m.contains("must differ"), "{m}");
    assert_eq!(
        service::get_layer(&*store, &Layer::Fleet).unwrap().rev,
        current.rev,
        "nothing was stored"
    );
}
