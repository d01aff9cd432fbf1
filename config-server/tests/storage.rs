//! The storage suite: the same test functions run against SQLite (a temporary file) and
//! PostgreSQL (a throwaway cluster from `test_support::pg`, one fresh database per test),
//! through the service operations the HTTP routes call. A missing PostgreSQL fails the
//! `postgres::` tests with the install command (see `test_support::require` for the opt-out).

use std::collections::BTreeSet;
use std::sync::Arc;

use edge_metrics_config::DeviceType;
use edge_metrics_config_server::auth::{self, Caller, Token};
use edge_metrics_config_server::service::{self, Layer, Seen, ServiceError};
use edge_metrics_config_server::store::{DatabaseUrl, DeviceFilter, Position, Store};
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
    the_device_list_pages_by_id_with_filters,
    a_page_boundary_holds_when_devices_come_and_go,
    a_device_on_auto_gets_the_layer_of_the_type_it_reported,
    migration_2_gives_layer_only_devices_a_row,
);

const T0: i64 = 1_700_000_000_000;

/// Every device, one page of at most the largest size.
fn devices(store: &dyn Store) -> Vec<service::DeviceSummary> {
    let q = service::DeviceQuery {
        limit: service::MAX_PAGE,
        ..service::DeviceQuery::default()
    };
    let page = service::devices_page(store, &q).expect("the device list");
    assert_eq!(page.next_after, None, "one page holds them all");
    page.devices
}

/// The ids of one page, and its next/prev boundaries.
fn page_of(
    store: &dyn Store,
    filter: DeviceFilter,
    position: Position,
    limit: usize,
) -> (Vec<String>, u64, Option<String>, Option<String>) {
    let q = service::DeviceQuery {
        filter,
        position,
        limit,
    };
    let p = service::devices_page(store, &q).expect("a page of devices");
    let ids = p.devices.iter().map(|d| d.row.device.clone()).collect();
    (ids, p.total, p.next_after, p.prev_before)
}

fn ids(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

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
    assert_eq!(
        versions,
        vec![
            (1, "initial".to_string()),
            (2, "device_listing".to_string())
        ]
    );
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
            .contains("schema version 999, newer than this server knows (2)"),
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
    let list = devices(&*store);
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
    let list = devices(&*store);
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
    let listed = devices(&*store);
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

/// Pushes `device`'s config as the device itself, reporting `reported` in the header, at `at`.
fn push_seen(store: &dyn Store, device: &str, body: Value, reported: Option<&str>, at: i64) {
    service::push(
        store,
        device,
        body,
        &Caller::Fleet,
        &Seen::from_headers(Some("0.1.0"), reported),
        None,
        at,
    )
    .expect("push");
}

fn the_device_list_pages_by_id_with_filters(b: &Backend) {
    let store = b.open();
    // dev-1..dev-7: odd ones Orins, even ones Nanos; dev-1..3 call at T0, the rest an hour
    // before; dev-8 has only a layer an operator wrote, and never called.
    for i in 1..=7 {
        let (t, body) = if i % 2 == 1 {
            ("jetson_orin", orin(json!({})))
        } else {
            ("jetson_nano", json!({"device_type": "jetson_nano"}))
        };
        let at = if i <= 3 { T0 } else { T0 - 3_600_000 };
        push_seen(&*store, &format!("dev-{i}"), body, Some(t), at);
    }
    service::put_layer(
        &*store,
        &Layer::Device("dev-8".into()),
        json!({"metrics": {"gpu": true}}),
        None,
        "alice",
        T0,
    )
    .unwrap();
    let all = DeviceFilter::default();
    let (p1, total, next, prev) = page_of(&*store, all.clone(), Position::Start, 3);
    assert_eq!(p1, ids(&["dev-1", "dev-2", "dev-3"]));
    assert_eq!(total, 8, "the layer-only device counts");
    assert_eq!(prev, None, "nothing before the first page");
    let next = next.expect("a next page");
    let (p2, _, next2, prev2) = page_of(&*store, all.clone(), Position::After(next), 3);
    assert_eq!(p2, ids(&["dev-4", "dev-5", "dev-6"]));
    assert_eq!(prev2.as_deref(), Some("dev-4"));
    let (p3, _, next3, prev3) = page_of(&*store, all.clone(), Position::After(next2.unwrap()), 3);
    assert_eq!(p3, ids(&["dev-7", "dev-8"]));
    assert_eq!(next3, None, "the last page has no next");
    // Back from the last page: the three before it, then the first page again.
    let (back, _, bnext, bprev) =
        page_of(&*store, all.clone(), Position::Before(prev3.unwrap()), 3);
    assert_eq!(back, p2);
    assert_eq!(bnext.as_deref(), Some("dev-6"));
    let (first, _, _, fprev) = page_of(&*store, all.clone(), Position::Before(bprev.unwrap()), 3);
    assert_eq!(first, p1);
    assert_eq!(fprev, None, "back at the start");
    // The layer-only device is listed with its layer and no calls.
    let d8 = devices(&*store)
        .into_iter()
        .find(|d| d.row.device == "dev-8")
        .unwrap();
    assert_eq!(d8.row.first_seen_at, 0);
    assert_eq!(d8.row.last_fetch_at, None);
    assert!(d8.layer.is_some());
    // Filters: by type, by seen, both; the total is the filter's.
    let orins = DeviceFilter {
        device_type: Some("jetson_orin".into()),
        ..DeviceFilter::default()
    };
    let (o, total, next, _) = page_of(&*store, orins.clone(), Position::Start, 2);
    assert_eq!((o, total), (ids(&["dev-1", "dev-3"]), 4));
    let (o, _, next, prev) = page_of(&*store, orins, Position::After(next.unwrap()), 2);
    assert_eq!(o, ids(&["dev-5", "dev-7"]));
    assert_eq!((next, prev.as_deref()), (None, Some("dev-5")));
    let recent = DeviceFilter {
        seen_recently: Some(true),
        seen_since: T0 - 60_000,
        ..DeviceFilter::default()
    };
    let (r, total, _, _) = page_of(&*store, recent, Position::Start, 10);
    assert_eq!((r, total), (ids(&["dev-1", "dev-2", "dev-3"]), 3));
    let quiet_nanos = DeviceFilter {
        device_type: Some("jetson_nano".into()),
        seen_recently: Some(false),
        seen_since: T0 - 60_000,
    };
    let (q, total, _, _) = page_of(&*store, quiet_nanos, Position::Start, 10);
    assert_eq!((q, total), (ids(&["dev-4", "dev-6"]), 2));
    let quiet = DeviceFilter {
        seen_recently: Some(false),
        seen_since: T0 - 60_000,
        ..DeviceFilter::default()
    };
    let (q, _, _, _) = page_of(&*store, quiet, Position::Start, 10);
    assert!(
        q.contains(&"dev-8".to_string()),
        "never seen is quiet: {q:?}"
    );
    // The count of the whole fleet includes it too.
    assert_eq!(
        service::count_devices(&*store, T0 - 60_000).unwrap(),
        (3, 8)
    );
    // Its first call makes it seen from then on.
    service::fetch(&*store, "dev-8", &Caller::Fleet, &Seen::default(), T0 + 5).unwrap();
    let d8 = devices(&*store)
        .into_iter()
        .find(|d| d.row.device == "dev-8")
        .unwrap();
    assert_eq!(d8.row.first_seen_at, T0 + 5);
}

fn a_page_boundary_holds_when_devices_come_and_go(b: &Backend) {
    let store = b.open();
    for i in [10, 20, 30, 40, 50] {
        push_seen(
            &*store,
            &format!("d{i}"),
            orin(json!({})),
            Some("jetson_orin"),
            T0,
        );
    }
    let all = DeviceFilter::default();
    let (p1, _, next, _) = page_of(&*store, all.clone(), Position::Start, 2);
    assert_eq!(p1, ids(&["d10", "d20"]));
    // Meanwhile one device arrives before the boundary, one after, and one on the first page
    // goes: the next page neither repeats nor skips one.
    push_seen(&*store, "d15", orin(json!({})), Some("jetson_orin"), T0);
    push_seen(&*store, "d35", orin(json!({})), Some("jetson_orin"), T0);
    let tag = service::etag(
        service::get_layer(&*store, &Layer::Device("d10".into()))
            .unwrap()
            .rev,
    );
    assert!(service::delete_device(&*store, "d10", Some(&tag), "alice", T0).unwrap());
    let (p2, total, _, _) = page_of(&*store, all, Position::After(next.unwrap()), 2);
    assert_eq!(p2, ids(&["d30", "d35"]));
    assert_eq!(total, 6);
}

fn a_device_on_auto_gets_the_layer_of_the_type_it_reported(b: &Backend) {
    let store = b.open();
    let tag = service::etag(0);
    service::put_layer(
        &*store,
        &Layer::Type(DeviceType::JetsonOrin),
        json!({"interval": 2, "metrics": {"orin_only": true}}),
        Some(&tag),
        "alice",
        T0,
    )
    .unwrap();
    let auto = json!({"device_type": "auto", "metrics": {"ram": true}});
    // An exporter on auto that has not resolved its type (or an old one) reports nothing:
    // no type layer.
    push_seen(&*store, "auto-01", auto.clone(), None, T0);
    let f = fetch(&*store, "auto-01").unwrap();
    assert_eq!(f.config["device_type"], "auto", "the setting stays auto");
    assert_eq!(
        f.config.get("interval"),
        None,
        "not the Orin layer's: {}",
        f.config
    );
    assert!(!enabled(&f.config, "orin_only"), "{}", f.config);
    // `auto` in the header is no report either.
    push_seen(&*store, "auto-01", auto.clone(), Some("auto"), T0 + 1);
    assert!(!enabled(
        &fetch(&*store, "auto-01").unwrap().config,
        "orin_only"
    ));
    // It reports jetson_orin: the Orin layer from this very fetch on, the setting still auto.
    let f = service::fetch(
        &*store,
        "auto-01",
        &Caller::Fleet,
        &Seen::from_headers(Some("0.1.0"), Some("jetson_orin")),
        T0 + 2,
    )
    .unwrap()
    .unwrap();
    assert_eq!(f.config["device_type"], "auto");
    assert_eq!(f.config["interval"], 2, "{}", f.config);
    assert!(enabled(&f.config, "orin_only"), "{}", f.config);
    assert!(enabled(&f.config, "ram"), "its own layer still on top");
    edge_metrics_config::from_json(f.config.clone()).unwrap();
    // A fetch without the header uses the stored report; so does the list.
    let again = fetch(&*store, "auto-01").unwrap();
    assert_eq!(again.config, f.config);
    let d = devices(&*store)
        .into_iter()
        .find(|d| d.row.device == "auto-01")
        .unwrap();
    assert_eq!(d.device_type.as_deref(), Some("jetson_orin"));
    assert_eq!(d.config_rev, f.rev);
    // A push reporting an Orin keeps only what differs from the Orin defaults.
    let pushed = service::push(
        &*store,
        "auto-01",
        json!({"device_type": "auto", "interval": 2, "port": 9300,
               "metrics": {"ram": true, "orin_only": true}}),
        &Caller::Fleet,
        &Seen::from_headers(Some("0.1.0"), Some("jetson_orin")),
        None,
        T0 + 3,
    )
    .unwrap();
    assert_eq!(
        pushed.layer,
        json!({"device_type": "auto", "port": 9300, "metrics": {"ram": true}}),
        "the Orin layer's values are not copied into the device's"
    );
    // The Orin layer's checks cover devices on auto that reported an Orin: a reload_port on
    // the port auto-01 moved its metrics to would clash there.
    let orin_tag = service::etag(
        service::get_layer(&*store, &Layer::Type(DeviceType::JetsonOrin))
            .unwrap()
            .rev,
    );
    let e = service::put_layer(
        &*store,
        &Layer::Type(DeviceType::JetsonOrin),
        json!({"interval": 2, "reload_port": 9300, "metrics": {"orin_only": true}}),
        Some(&orin_tag),
        "alice",
        T0 + 4,
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("auto-01") && e.to_string().contains("must differ"),
        "{e}"
    );
    // A device whose config names a type gets that type's layer whatever it reports.
    push_seen(
        &*store,
        "nano-01",
        json!({"device_type": "jetson_nano"}),
        Some("jetson_orin"),
        T0,
    );
    assert!(!enabled(
        &fetch(&*store, "nano-01").unwrap().config,
        "orin_only"
    ));
}

fn migration_2_gives_layer_only_devices_a_row(b: &Backend) {
    // A database at schema 1 with a device that has a layer and no row, and one whose row
    // says `auto`.
    let schema1 = edge_metrics_config_server::store::MIGRATIONS[0].2;
    let setup = format!(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
         applied_at BIGINT NOT NULL); {schema1}; \
         INSERT INTO schema_migrations VALUES (1, 'initial', 0); \
         INSERT INTO documents VALUES ('device:layer-only', '{{\"interval\": 3}}', 4, 0, 'alice'); \
         INSERT INTO devices (device, device_type, first_seen_at) VALUES ('old-auto', 'auto', 5);"
    );
    match &b.url {
        DatabaseUrl::Sqlite(path) => rusqlite::Connection::open(path)
            .unwrap()
            .execute_batch(&setup)
            .unwrap(),
        DatabaseUrl::Postgres(url) => ::postgres::Client::connect(url, ::postgres::NoTls)
            .unwrap()
            .batch_execute(&setup)
            .unwrap(),
    }
    let store = b.open();
    let list = devices(&*store);
    let names: Vec<&str> = list.iter().map(|d| d.row.device.as_str()).collect();
    assert_eq!(names, ["layer-only", "old-auto"]);
    assert_eq!(list[0].row.first_seen_at, 0);
    assert_eq!(list[0].layer.as_ref().map(|l| l.1), Some(4));
    assert_eq!(list[1].row.device_type, None, "auto is no reported type");
}
