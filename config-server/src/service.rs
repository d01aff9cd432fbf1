//! What the server does, whatever the storage and the transport: fetch and push for devices,
//! layers, history and revert for operators, the device list, per-device tokens. Every
//! operation is one transaction of a [`Store`], synchronous (callers use the blocking pool).
//!
//! # Documents and versions
//!
//! Three kinds of layer are stored: the fleet defaults (`fleet`), the defaults of one device
//! type (`type:jetson_orin`), and a device's own layer (`device:orin-01`). The store has one
//! revision counter that every change raises; a document's version is the revision of its
//! last change (ETag `"v17"`), so versions only grow, and skip the numbers other documents
//! took. A device's merged config has the version of its newest layer. An absent document
//! has version 0.
//!
//! # The race rule
//!
//! A device's `GET /config/{device}` records the version it returned (`fetched_rev`). A push
//! without `If-Match` is judged against it: every key path that anyone other than the device
//! changed, in the fleet, type or device layer, after that version is *protected*. The
//! device's layer keeps what it had at a protected path (present or absent, so the operator's
//! value shows through) and takes the push everywhere else. The next fetch returns the merge,
//! so the device picks up the operator's change then. A device that never fetched is judged
//! against version 0: it cannot override a key an operator manages until it has fetched once.
//! A push with `If-Match` (the merged config's ETag) is based on what it names: it is refused
//! with 412 if that is no longer current, and nothing is protected when it is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};

use edge_metrics_config::{self as config_rules, DeviceType};
use serde_json::{json, Value};

use crate::auth::{AuthError, Caller, Token, DEVICE_ACTOR};
use crate::merge::{self, Change, Object, Path};
use crate::store::{
    with_bookkeeping_tx, with_tx, DeviceFilter, DeviceRow, Document, HistoryEntry, Position, Store,
    StoreError, Tx,
};

/// The fleet layer's key.
pub const FLEET: &str = "fleet";
/// The most history entries one request returns.
pub const MAX_HISTORY: usize = 1000;
/// How many broken device configs a refusal names.
const NAMED_FAILURES: usize = 3;
/// Longest device id accepted (a DNS name's length).
pub const MAX_DEVICE_ID_BYTES: usize = 253;
/// Longest exporter version recorded from `X-Edge-Metrics-Version`.
pub const MAX_VERSION_CHARS: usize = 64;

/// Why an operation was refused (4xx) or could not be done (503).
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Nothing there (404).
    #[error("{0}")]
    NotFound(String),
    /// The request or its body cannot be used (400): the text says why, for a config with the
    /// exporter's own message.
    #[error("{0}")]
    BadRequest(String),
    /// `If-Match` names another version than the current one (412).
    #[error("the document changed: its version is now \"v{current}\", not {given}; fetch it again and redo the change")]
    Stale {
        /// The version now.
        current: i64,
        /// The `If-Match` header sent.
        given: String,
    },
    /// A write to an existing document without `If-Match` (428).
    #[error("send If-Match with the ETag you last read (\"v{current}\"): this document exists, and a write without it could undo someone else's change")]
    NeedsIfMatch {
        /// The version now.
        current: i64,
    },
    /// The caller may not do this (401, 403).
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The store failed (503).
    #[error("storage failed: {0}")]
    Storage(#[from] StoreError),
}

/// A layer an operator reads and writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Layer {
    /// Defaults for every device.
    Fleet,
    /// Defaults for one device type.
    Type(DeviceType),
    /// One device's own settings.
    Device(String),
}

impl Layer {
    /// Its key in the store.
    pub fn key(&self) -> String {
        match self {
            Layer::Fleet => FLEET.to_string(),
            Layer::Type(t) => type_key(*t),
            Layer::Device(id) => device_key(id),
        }
    }

    /// How messages name it.
    pub fn describe(&self) -> String {
        match self {
            Layer::Fleet => "the fleet defaults".to_string(),
            Layer::Type(t) => format!("the defaults of {t}"),
            Layer::Device(id) => format!(
                "the layer of device \"{}\"",
                edge_metrics_common::text::shown(id, 64)
            ),
        }
    }
}

/// The key of a device type's layer.
pub fn type_key(t: DeviceType) -> String {
    format!("type:{}", t.as_str())
}

/// The key of a device's layer.
pub fn device_key(id: &str) -> String {
    format!("device:{id}")
}

/// The strong ETag of version `rev`: `"v17"`.
pub fn etag(rev: i64) -> String {
    format!("\"v{rev}\"")
}

/// Whether an `If-Match` value matches version `current` (0: the document does not exist).
/// `*` matches any existing document; `"v0"` matches an absent one; weak tags never match.
pub fn if_match_matches(header: &str, current: i64) -> bool {
    header.split(',').map(str::trim).any(|tag| {
        if tag == "*" {
            current > 0
        } else {
            tag == etag(current)
        }
    })
}

/// Checks a device id from a path: 1 to 253 bytes, no control characters.
pub fn check_device_id(id: &str) -> Result<(), ServiceError> {
    if id.is_empty() || id.len() > MAX_DEVICE_ID_BYTES || id.chars().any(char::is_control) {
        return Err(ServiceError::BadRequest(format!(
            "device id \"{}\" must be 1 to {MAX_DEVICE_ID_BYTES} bytes without control \
             characters (the exporter sends its hostname label)",
            edge_metrics_common::text::shown(id, 64)
        )));
    }
    Ok(())
}

/// What a device's request headers say about it; absent or unusable values are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// `X-Edge-Metrics-Version`.
    pub version: Option<String>,
    /// `X-Edge-Metrics-Device-Type`.
    pub device_type: Option<DeviceType>,
}

impl Seen {
    /// From the two header values; a value that is too long, holds odd characters or names
    /// no device type is dropped (the request still counts).
    pub fn from_headers(version: Option<&str>, device_type: Option<&str>) -> Seen {
        let version = version.map(str::trim).filter(|v| {
            !v.is_empty()
                && v.chars().count() <= MAX_VERSION_CHARS
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
        });
        Seen {
            version: version.map(str::to_string),
            // `auto` is a setting, not a type a device runs: it says nothing.
            device_type: device_type
                .and_then(|t| DeviceType::from_name(t.trim()))
                .filter(|t| *t != DeviceType::Auto),
        }
    }
}

/// Validates a full config with the exporter's rules, quietly (the exporter's "kept unknown
/// keys" warning is for a device's own log, not the server's).
fn check_config(value: Value) -> Result<config_rules::Config, String> {
    tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
        config_rules::from_json(value)
    })
    .map_err(|e| config_rules::error_chain(&e))
}

/// The config a device of type `t` runs when a key is absent: the exporter's defaults, as
/// JSON. Pushed values equal to these are not stored in a device's layer.
pub fn exporter_defaults(t: DeviceType) -> &'static Object {
    static DEFAULTS: OnceLock<Vec<Object>> = OnceLock::new();
    let all = DEFAULTS.get_or_init(|| {
        DeviceType::ALL
            .iter()
            .map(|t| {
                let config = check_config(json!({ "device_type": t.as_str() }))
                    .expect("invariant: a config naming only a supported device type is valid");
                match config_rules::to_json(&config) {
                    Value::Object(m) => m,
                    _ => unreachable!("invariant: to_json makes an object"),
                }
            })
            .collect()
    });
    let i = DeviceType::ALL
        .iter()
        .position(|x| *x == t)
        .expect("invariant: ALL lists every device type");
    &all[i]
}

/// The stored layers that concern one device, read together, and the type it last reported.
#[derive(Clone, Debug, Default)]
struct View {
    fleet: Option<Document>,
    types: BTreeMap<&'static str, Document>,
    device: Option<Document>,
    /// The type the device last reported (its stored row), never `auto`.
    reported: Option<DeviceType>,
}

fn layer_body(doc: Option<&Document>) -> Object {
    doc.and_then(|d| d.body.as_object().cloned())
        .unwrap_or_default()
}

fn rev(doc: Option<&Document>) -> i64 {
    doc.map_or(0, |d| d.rev)
}

/// The device types that have a defaults layer: every type but `auto`, which a device
/// resolves itself from its hardware. A device on `auto` gets the layer of the type it last
/// reported in `X-Edge-Metrics-Device-Type`, and none until it reports one.
pub fn layer_types() -> impl Iterator<Item = DeviceType> {
    DeviceType::ALL
        .into_iter()
        .filter(|t| *t != DeviceType::Auto)
}

/// The device type named `name`, when it has a defaults layer (see [`layer_types`]).
pub fn layer_type(name: &str) -> Option<DeviceType> {
    DeviceType::from_name(name).filter(|t| *t != DeviceType::Auto)
}

/// `jetson_orin, jetson_xavier, ...`: the types with a defaults layer, for messages.
pub fn layer_type_list() -> String {
    layer_types()
        .map(DeviceType::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The keys of the fleet layer and of every type layer.
fn defaults_keys() -> Vec<String> {
    std::iter::once(FLEET.to_string())
        .chain(layer_types().map(type_key))
        .collect()
}

fn load_view(tx: &mut dyn Tx, device: Option<&str>) -> Result<View, StoreError> {
    let mut keys = defaults_keys();
    let dkey = device.map(device_key);
    if let Some(k) = &dkey {
        keys.push(k.clone());
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut view = View::default();
    for (key, doc) in tx.documents(&refs)? {
        if key == FLEET {
            view.fleet = Some(doc);
        } else if Some(&key) == dkey.as_ref() {
            view.device = Some(doc);
        } else if let Some(t) = key.strip_prefix("type:").and_then(layer_type) {
            view.types.insert(t.as_str(), doc);
        }
    }
    if let Some(id) = device {
        view.reported = tx.device(id)?.and_then(|r| reported_type(&r));
    }
    Ok(view)
}

/// The type a device's row says it runs, when that selects a defaults layer.
fn reported_type(row: &DeviceRow) -> Option<DeviceType> {
    row.device_type.as_deref().and_then(layer_type)
}

/// A device's `device_type` setting: its own layer's, else the fleet's, else the exporter's
/// default (`auto`).
fn resolve_setting(fleet: &Object, device: &Object) -> DeviceType {
    [device, fleet]
        .iter()
        .find_map(|layer| {
            layer
                .get("device_type")
                .and_then(Value::as_str)
                .and_then(DeviceType::from_name)
        })
        .unwrap_or_else(|| {
            DeviceType::from_name(config_rules::DEFAULT_DEVICE_TYPE)
                .expect("invariant: the default device type is supported")
        })
}

/// The type whose defaults layer a device gets: its setting when that names a type;
/// for `auto`, the type the device last reported (`X-Edge-Metrics-Device-Type`); none when
/// it is on `auto` and never reported one.
fn layer_type_of(setting: DeviceType, reported: Option<DeviceType>) -> Option<DeviceType> {
    if setting == DeviceType::Auto {
        reported.filter(|t| *t != DeviceType::Auto)
    } else {
        Some(setting)
    }
}

/// A device's merged config, its type and its version.
struct Merged {
    config: Object,
    /// Its `device_type` setting (`auto` included), what the merged config says.
    setting: DeviceType,
    /// The type whose defaults layer is in the merge (see [`layer_type_of`]).
    layer_type: Option<DeviceType>,
    rev: i64,
}

impl Merged {
    /// The type to show for the device: the one it runs when known, else its setting.
    fn shown_type(&self) -> DeviceType {
        self.layer_type.unwrap_or(self.setting)
    }
}

impl View {
    fn type_doc(&self, t: Option<DeviceType>) -> Option<&Document> {
        self.types.get(t?.as_str())
    }

    /// The merge for a device whose own layer is `device` (the stored one, or a candidate)
    /// and that last reported type `reported`.
    fn merged_with(
        &self,
        device: &Object,
        device_rev: i64,
        reported: Option<DeviceType>,
    ) -> Merged {
        let fleet = layer_body(self.fleet.as_ref());
        let setting = resolve_setting(&fleet, device);
        let layer_type = layer_type_of(setting, reported);
        let type_layer = layer_body(self.type_doc(layer_type));
        let mut config = merge::merge_all([&fleet, &type_layer, device]);
        config.insert("device_type".into(), Value::String(setting.as_str().into()));
        let rev = rev(self.fleet.as_ref())
            .max(rev(self.type_doc(layer_type)))
            .max(device_rev);
        Merged {
            config,
            setting,
            layer_type,
            rev,
        }
    }

    /// The device's stored merge, `reported` being the type it reports now (else the stored
    /// one).
    fn merged(&self, reported: Option<DeviceType>) -> Option<Merged> {
        let doc = self.device.as_ref()?;
        Some(self.merged_with(&layer_body(Some(doc)), doc.rev, reported.or(self.reported)))
    }
}

/// Checks who may use `GET`/`PUT /config/{device}`: operators and the open server always; the
/// fleet token unless the device has its own; a device's own token for that device only.
fn device_access(
    tx: &mut dyn Tx,
    device: &str,
    caller: &Caller,
) -> Result<Result<(), ServiceError>, StoreError> {
    Ok(match caller {
        Caller::Open | Caller::Operator(_) => Ok(()),
        Caller::Fleet => match tx.device_token(device)? {
            Some(_) => Err(AuthError::Forbidden(format!(
                "device \"{}\" has a token of its own; the fleet token is not accepted for it",
                edge_metrics_common::text::shown(device, 64)
            ))
            .into()),
            None => Ok(()),
        },
        Caller::Unknown(presented) => {
            let own = tx.device_token(device)?;
            match own.as_deref().and_then(Token::from_hex) {
                Some(t) if t.matches(presented) => Ok(()),
                _ => Err(AuthError::Invalid.into()),
            }
        }
    })
}

/// Whether a caller's requests are the device's own (and so count as it being seen).
fn is_device(caller: &Caller) -> bool {
    !matches!(caller, Caller::Operator(_))
}

/// Records a device's request in its row.
fn note_seen(
    tx: &mut dyn Tx,
    device: &str,
    seen: &Seen,
    config_type: Option<DeviceType>,
    now: i64,
    update: impl FnOnce(&mut DeviceRow),
) -> Result<(), StoreError> {
    let mut row = tx.device(device)?.unwrap_or_else(|| DeviceRow {
        device: device.to_string(),
        ..DeviceRow::default()
    });
    if row.first_seen_at == 0 {
        // No row yet, or one an operator's write of its layer made: this is its first call.
        row.first_seen_at = now;
    }
    let config_type = config_type.filter(|t| *t != DeviceType::Auto);
    if let Some(t) = seen.device_type.or(config_type) {
        row.device_type = Some(t.as_str().to_string());
    }
    if let Some(v) = &seen.version {
        row.exporter_version = Some(v.clone());
    }
    update(&mut row);
    tx.put_device(&row)
}

/// A device's merged config, as `GET /config/{device}` answers it.
#[derive(Clone, Debug, PartialEq)]
pub struct Fetched {
    /// The merged config (fleet, then type, then device).
    pub config: Value,
    /// Its version (ETag).
    pub rev: i64,
}

/// `GET /config/{device}`: the merged config, or `None` when the device has no layer (404).
/// A device's own fetch (not an operator's) records when, what it says it is, and the version
/// returned, which the race rule judges its next push by.
pub fn fetch(
    store: &dyn Store,
    device: &str,
    caller: &Caller,
    seen: &Seen,
    now: i64,
) -> Result<Option<Fetched>, ServiceError> {
    check_device_id(device)?;
    // A fetch writes only bookkeeping (when, what it reported, the version it got); losing
    // the last of it in a power cut errs on the safe side of the race rule (an older
    // fetched version protects more operator keys), so it need not wait for the disk.
    let out = with_bookkeeping_tx(store, |tx| {
        if let Err(e) = device_access(tx, device, caller)? {
            return Ok(Err(e));
        }
        let view = load_view(tx, Some(device))?;
        // The type the device reports with this very request selects its layer (an
        // operator's look reports nothing and uses the stored one).
        let reporting = if is_device(caller) {
            seen.device_type
        } else {
            None
        };
        let merged = view.merged(reporting);
        if is_device(caller) {
            let fetched = merged.as_ref().map(|m| m.rev);
            note_seen(
                tx,
                device,
                seen,
                merged.as_ref().and_then(|m| m.layer_type),
                now,
                |row| {
                    row.last_fetch_at = Some(now);
                    if fetched.is_some() {
                        row.fetched_rev = fetched;
                    }
                },
            )?;
        }
        Ok(Ok(merged.map(|m| Fetched {
            config: Value::Object(m.config),
            rev: m.rev,
        })))
    })?;
    out
}

/// What a push did.
#[derive(Clone, Debug, PartialEq)]
pub struct Pushed {
    /// The device had no layer before.
    pub created: bool,
    /// The layer changed (a push equal to what is stored changes nothing and takes no version).
    pub changed: bool,
    /// The version of the device's layer now.
    pub layer_rev: i64,
    /// The version of its merged config now (what the next fetch returns).
    pub config_rev: i64,
    /// The device's layer now.
    pub layer: Value,
    /// Keys where the push was overruled by a newer change of someone else (the race rule).
    pub kept: Vec<String>,
}

/// The outcome of planning a push on the store's current state.
struct PushPlan {
    stored: Option<Document>,
    layer: Object,
    kept: Vec<String>,
    config_rev_before: i64,
}

/// Paths that anyone but the device changed in `keys` after revision `after`.
fn protected_paths(
    tx: &mut dyn Tx,
    keys: &[&str],
    after: i64,
) -> Result<BTreeSet<Path>, StoreError> {
    let mut out = BTreeSet::new();
    for entry in tx.history_since(keys, after)? {
        if entry.actor == DEVICE_ACTOR {
            continue;
        }
        if let Some(list) = entry.changes.as_array() {
            out.extend(list.iter().filter_map(Change::from_json).map(|c| c.path));
        }
    }
    Ok(out)
}

fn plan_push(
    tx: &mut dyn Tx,
    device: &str,
    full: &Object,
    t: DeviceType,
    reporting: Option<DeviceType>,
    if_match: Option<&str>,
) -> Result<Result<PushPlan, ServiceError>, StoreError> {
    let view = load_view(tx, Some(device))?;
    let reported = reporting.or(view.reported);
    let config_rev_before = view.merged(reported).map_or(0, |m| m.rev);
    // The type layer the pushed config falls under: its own type, or on `auto` the one the
    // device reports.
    let lt = layer_type_of(t, reported);
    let protected = match if_match {
        Some(given) if !if_match_matches(given, config_rev_before) => {
            return Ok(Err(ServiceError::Stale {
                current: config_rev_before,
                given: given.to_string(),
            }))
        }
        Some(_) => BTreeSet::new(),
        None => {
            let after = tx.device(device)?.and_then(|r| r.fetched_rev).unwrap_or(0);
            let mut keys = vec![FLEET.to_string(), device_key(device)];
            keys.extend(lt.map(type_key));
            let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
            protected_paths(tx, &refs, after)?
        }
    };
    let fleet = layer_body(view.fleet.as_ref());
    let base = merge::merge_all([
        exporter_defaults(lt.unwrap_or(t)),
        &fleet,
        &layer_body(view.type_doc(lt)),
    ]);
    let mut pushed = merge::minimal_layer(full, &base);
    // The type selects the type layer, so the device's layer always names it.
    pushed.insert("device_type".into(), Value::String(t.as_str().into()));
    let stored_body = layer_body(view.device.as_ref());
    let layer = merge::resolve_push(&stored_body, &pushed, &protected);
    let kept = merge::changes(&pushed, &layer)
        .iter()
        .map(Change::key)
        .collect();
    let merged = view.merged_with(&layer, 0, reported);
    if let Err(message) = check_config(Value::Object(merged.config)) {
        return Ok(Err(ServiceError::BadRequest(format!(
            "with the stored defaults this config would be invalid: {message}"
        ))));
    }
    Ok(Ok(PushPlan {
        stored: view.device,
        layer,
        kept,
        config_rev_before,
    }))
}

/// `PUT /config/{device}`: stores what the device pushed as its own layer: the values that
/// differ from the layers below (the exporter's defaults, the fleet's, its type's), with the
/// race rule applied (see the module docs). The body is validated with the exporter's rules
/// first; an invalid one is refused with the exporter's message and nothing is stored.
pub fn push(
    store: &dyn Store,
    device: &str,
    body: Value,
    caller: &Caller,
    seen: &Seen,
    if_match: Option<&str>,
    now: i64,
) -> Result<Pushed, ServiceError> {
    check_device_id(device)?;
    if !body.is_object() {
        return Err(ServiceError::BadRequest(
            "the body must be the config as a JSON object, e.g. {\"device_type\": \"jetson_orin\"}"
                .to_string(),
        ));
    }
    let parsed = check_config(body).map_err(ServiceError::BadRequest)?;
    let t = parsed.device_type;
    let Value::Object(full) = config_rules::to_json(&parsed) else {
        unreachable!("invariant: to_json makes an object")
    };
    let actor = match caller {
        Caller::Operator(name) => name.clone(),
        _ => DEVICE_ACTOR.to_string(),
    };
    let out = with_tx(store, |tx| {
        if let Err(e) = device_access(tx, device, caller)? {
            return Ok(Err(e));
        }
        let reporting = if is_device(caller) {
            seen.device_type
        } else {
            None
        };
        let mut plan = match plan_push(tx, device, &full, t, reporting, if_match)? {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let unchanged = |p: &PushPlan| {
            p.stored
                .as_ref()
                .is_some_and(|d| d.body.as_object() == Some(&p.layer))
        };
        let mut rev = None;
        if !unchanged(&plan) {
            // Take the write turn, then plan again on what is current now.
            let next = tx.next_revision()?;
            plan = match plan_push(tx, device, &full, t, reporting, if_match)? {
                Ok(p) => p,
                Err(e) => return Ok(Err(e)),
            };
            if !unchanged(&plan) {
                rev = Some(next);
            }
        }
        let created = plan.stored.is_none();
        let (layer_rev, config_rev) = match rev {
            Some(rev) => {
                let before = plan.stored.as_ref().map(|d| d.body.clone());
                let changes = merge::changes(&layer_body(plan.stored.as_ref()), &plan.layer);
                write_document(
                    tx,
                    &device_key(device),
                    plan.layer.clone(),
                    before,
                    &changes,
                    Written::new(rev, now, &actor, "push", None),
                )?;
                (rev, rev)
            }
            None => (rev_of(plan.stored.as_ref()), plan.config_rev_before),
        };
        if is_device(caller) {
            note_seen(tx, device, seen, Some(t), now, |row| {
                row.last_push_at = Some(now)
            })?;
        }
        if !plan.kept.is_empty() {
            tracing::info!(
                device = %edge_metrics_common::text::shown(device, 64),
                keys = %plan.kept.join(", "),
                "Kept newer operator values over a device push."
            );
        }
        Ok(Ok(Pushed {
            created,
            changed: rev.is_some(),
            layer_rev,
            config_rev,
            layer: Value::Object(plan.layer.clone()),
            kept: plan.kept.clone(),
        }))
    })?;
    out
}

fn rev_of(doc: Option<&Document>) -> i64 {
    rev(doc)
}

/// The stamp of one change.
struct Written<'a> {
    rev: i64,
    at: i64,
    actor: &'a str,
    action: &'static str,
    reverted_to: Option<i64>,
}

impl<'a> Written<'a> {
    fn new(
        rev: i64,
        at: i64,
        actor: &'a str,
        action: &'static str,
        reverted_to: Option<i64>,
    ) -> Self {
        Written {
            rev,
            at,
            actor,
            action,
            reverted_to,
        }
    }
}

fn write_document(
    tx: &mut dyn Tx,
    key: &str,
    body: Object,
    before: Option<Value>,
    changes: &[Change],
    w: Written<'_>,
) -> Result<(), StoreError> {
    let body = Value::Object(body);
    tx.put_document(
        key,
        &Document {
            body: body.clone(),
            rev: w.rev,
            updated_at: w.at,
            updated_by: w.actor.to_string(),
        },
    )?;
    tx.add_history(&HistoryEntry {
        rev: w.rev,
        doc: key.to_string(),
        at: w.at,
        actor: w.actor.to_string(),
        action: w.action.to_string(),
        reverted_to: w.reverted_to,
        before,
        after: body,
        changes: Value::Array(changes.iter().map(Change::to_json).collect()),
    })
}

/// Runs `work` on `store` in tokio's blocking pool, as the async routes must (every operation
/// here is synchronous); a task that panicked or was cancelled is a storage failure.
pub async fn on_blocking_pool<T: Send + 'static>(
    store: &Arc<dyn Store>,
    work: impl FnOnce(&dyn Store) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ServiceError> {
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || work(&*store)).await {
        Ok(r) => r,
        Err(e) => Err(ServiceError::Storage(StoreError::Query {
            backend: "task",
            reason: format!("the storage task failed: {e}"),
        })),
    }
}

/// A stored layer with its version; version 0 and an empty body when it does not exist.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerDoc {
    /// The layer.
    pub body: Value,
    /// Its version (0: absent).
    pub rev: i64,
    /// Whether it exists.
    pub exists: bool,
}

/// Reads one layer.
pub fn get_layer(store: &dyn Store, layer: &Layer) -> Result<LayerDoc, ServiceError> {
    if let Layer::Device(id) = layer {
        check_device_id(id)?;
    }
    let key = layer.key();
    let doc = with_tx(store, |tx| {
        Ok(Ok::<_, ServiceError>(tx.documents(&[&key])?.pop()))
    })??;
    Ok(match doc {
        Some((_, d)) => LayerDoc {
            body: d.body,
            rev: d.rev,
            exists: true,
        },
        None => LayerDoc {
            body: Value::Object(Object::new()),
            rev: 0,
            exists: false,
        },
    })
}

/// What an operator's write did.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerWrite {
    /// The layer did not exist before.
    pub created: bool,
    /// Anything changed (writing what is stored changes nothing and takes no version).
    pub changed: bool,
    /// Its version now.
    pub rev: i64,
    /// The layer now.
    pub body: Value,
}

/// Checks a layer on its own: an object, no secret, no `device_type` in a type's layer, and
/// valid by the exporter's rules when it is all a device of that type has.
fn check_layer(layer: &Layer, body: &Value) -> Result<Object, ServiceError> {
    let Some(obj) = body.as_object() else {
        return Err(ServiceError::BadRequest(
            "a layer must be a JSON object of config keys, e.g. {\"metrics\": {\"jetson_gpu_usage_percent\": true}}"
                .to_string(),
        ));
    };
    if obj.contains_key("api_token") {
        return Err(ServiceError::BadRequest(
            "api_token is not kept by the Config Server: each device keeps its own \
             (config.yaml or EDGE_METRICS_API_TOKEN)"
                .to_string(),
        ));
    }
    if let Some(token) = obj.get("config_server").and_then(|c| c.get("token")) {
        if !token.is_null() {
            return Err(ServiceError::BadRequest(
                "config_server.token is not kept by the Config Server: each device keeps its \
                 own (config.yaml or CONFIG_SERVER_TOKEN)"
                    .to_string(),
            ));
        }
    }
    let t = match layer {
        Layer::Type(t) => {
            if obj.contains_key("device_type") {
                return Err(ServiceError::BadRequest(format!(
                    "the defaults of {t} cannot set device_type: the device's own type selects \
                     this layer"
                )));
            }
            *t
        }
        _ => resolve_setting(&Object::new(), obj),
    };
    let mut probe = Object::new();
    probe.insert("device_type".into(), Value::String(t.as_str().into()));
    check_config(Value::Object(merge::merge_objects(&probe, obj)))
        .map_err(ServiceError::BadRequest)?;
    Ok(obj.clone())
}

/// Checks that every device the layer concerns still has a valid merged config with `new` in
/// place of the stored layer.
fn check_devices(
    tx: &mut dyn Tx,
    layer: &Layer,
    new: &Object,
) -> Result<Result<(), ServiceError>, StoreError> {
    let mut view = load_view(tx, None)?;
    let doc = |body: &Object| Document {
        body: Value::Object(body.clone()),
        rev: 0,
        updated_at: 0,
        updated_by: String::new(),
    };
    let devices: Vec<(String, Object)> = match layer {
        Layer::Device(id) => vec![(id.clone(), new.clone())],
        _ => tx
            .documents_with_prefix("device:")?
            .into_iter()
            .map(|(k, d)| {
                let id = k.trim_start_matches("device:").to_string();
                (id, layer_body(Some(&d)))
            })
            .collect(),
    };
    // The type each device last reported: a device on `auto` falls under that type's layer.
    let reported: BTreeMap<String, DeviceType> = match layer {
        Layer::Device(id) => tx
            .device(id)?
            .and_then(|r| reported_type(&r).map(|t| (r.device, t)))
            .into_iter()
            .collect(),
        _ => tx
            .devices()?
            .into_iter()
            .filter_map(|r| reported_type(&r).map(|t| (r.device, t)))
            .collect(),
    };
    match layer {
        Layer::Fleet => view.fleet = Some(doc(new)),
        Layer::Type(t) => {
            view.types.insert(t.as_str(), doc(new));
        }
        Layer::Device(_) => {}
    }
    let mut failures = Vec::new();
    let mut count = 0usize;
    for (id, device_layer) in &devices {
        let merged = view.merged_with(device_layer, 0, reported.get(id).copied());
        if let Layer::Type(t) = layer {
            if merged.layer_type != Some(*t) {
                continue;
            }
        }
        if let Err(message) = check_config(Value::Object(merged.config)) {
            count += 1;
            if failures.len() < NAMED_FAILURES {
                failures.push(format!(
                    "device \"{}\": {message}",
                    edge_metrics_common::text::shown(id, 64)
                ));
            }
        }
    }
    if count == 0 {
        return Ok(Ok(()));
    }
    let more = if count > failures.len() {
        format!(" (and {} more)", count - failures.len())
    } else {
        String::new()
    };
    Ok(Err(ServiceError::BadRequest(format!(
        "this change would make the config of {count} device(s) invalid: {}{more}",
        failures.join("; ")
    ))))
}

/// The shared path of [`put_layer`] and [`revert`]: If-Match, checks, write, history.
/// Makes the new body of a layer inside the write's transaction.
type NewBody<'a> = dyn FnMut(&mut dyn Tx) -> Result<Result<Value, ServiceError>, StoreError> + 'a;

/// Who writes, when, and how the history names it.
struct Stamp<'a> {
    actor: &'a str,
    now: i64,
    action: &'static str,
    reverted_to: Option<i64>,
}

fn write_layer(
    store: &dyn Store,
    layer: &Layer,
    if_match: Option<&str>,
    stamp: Stamp<'_>,
    new_body: &mut NewBody<'_>,
) -> Result<LayerWrite, ServiceError> {
    let Stamp {
        actor,
        now,
        action,
        reverted_to,
    } = stamp;
    if let Layer::Device(id) = layer {
        check_device_id(id)?;
    }
    let key = layer.key();
    let out = with_tx(store, |tx| {
        let rev = tx.next_revision()?;
        let current = tx.documents(&[&key])?.pop().map(|(_, d)| d);
        let current_rev = rev_of(current.as_ref());
        match if_match {
            None if current.is_some() => {
                return Ok(Err(ServiceError::NeedsIfMatch {
                    current: current_rev,
                }))
            }
            Some(given) if !if_match_matches(given, current_rev) => {
                return Ok(Err(ServiceError::Stale {
                    current: current_rev,
                    given: given.to_string(),
                }))
            }
            _ => {}
        }
        let value = match new_body(tx)? {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        let new = match check_layer(layer, &value) {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = check_devices(tx, layer, &new)? {
            return Ok(Err(e));
        }
        let before_body = layer_body(current.as_ref());
        if current.is_some() && before_body == new {
            return Ok(Ok(LayerWrite {
                created: false,
                changed: false,
                rev: current_rev,
                body: Value::Object(new),
            }));
        }
        let changes = merge::changes(&before_body, &new);
        write_document(
            tx,
            &key,
            new.clone(),
            current.map(|d| d.body),
            &changes,
            Written::new(rev, now, actor, action, reverted_to),
        )?;
        if let Layer::Device(id) = layer {
            // Every device with a layer has a row, which the device list pages over; one
            // that never called has first_seen_at 0 until it does.
            if tx.device(id)?.is_none() {
                tx.put_device(&DeviceRow {
                    device: id.clone(),
                    ..DeviceRow::default()
                })?;
            }
        }
        Ok(Ok(LayerWrite {
            created: current_rev == 0,
            changed: true,
            rev,
            body: Value::Object(new),
        }))
    })?;
    out
}

/// Replaces a layer with `body` (an operator's write). `If-Match` is required when the layer
/// exists (428 without it) and must name its current version (412 otherwise); the layer is
/// checked alone and, merged, for every device it concerns.
pub fn put_layer(
    store: &dyn Store,
    layer: &Layer,
    body: Value,
    if_match: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<LayerWrite, ServiceError> {
    let stamp = Stamp {
        actor,
        now,
        action: "put",
        reverted_to: None,
    };
    write_layer(store, layer, if_match, stamp, &mut |_| Ok(Ok(body.clone())))
}

/// Restores a layer to what it was at `version` (a version from its history), as a new
/// change. `If-Match` as for [`put_layer`].
pub fn revert(
    store: &dyn Store,
    layer: &Layer,
    version: i64,
    if_match: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<LayerWrite, ServiceError> {
    let key = layer.key();
    let describe = layer.describe();
    let stamp = Stamp {
        actor,
        now,
        action: "revert",
        reverted_to: Some(version),
    };
    write_layer(store, layer, if_match, stamp, &mut |tx| {
        Ok(match tx.history_entry(&key, version)? {
            Some(entry) => Ok(entry.after),
            None => Err(ServiceError::NotFound(format!(
                "version {version} is not in the history of {describe}; GET its history for \
                     the versions there are"
            ))),
        })
    })
}

/// A layer's history, newest first: at most `limit` entries older than version `before`.
pub fn history(
    store: &dyn Store,
    layer: &Layer,
    before: Option<i64>,
    limit: usize,
) -> Result<Vec<HistoryEntry>, ServiceError> {
    if let Layer::Device(id) = layer {
        check_device_id(id)?;
    }
    let key = layer.key();
    let limit = limit.clamp(1, MAX_HISTORY);
    with_tx(store, |tx| {
        Ok(Ok::<_, ServiceError>(tx.history(&key, before, limit)?))
    })?
}

/// One device as `GET /devices` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceSummary {
    /// What the store knows of its requests (defaults when it never made one).
    pub row: DeviceRow,
    /// Its device type: what it last said, else its merged config's.
    pub device_type: Option<String>,
    /// Its own layer and that layer's version, when it has one.
    pub layer: Option<(Value, i64)>,
    /// The version of its merged config (0: no layer).
    pub config_rev: i64,
    /// Metrics switched on in its merged config.
    pub enabled_metrics: usize,
    /// Whether it has a token of its own.
    pub has_token: bool,
}

/// The default number of devices a page lists.
pub const DEFAULT_PAGE: usize = 100;
/// The most devices one page lists.
pub const MAX_PAGE: usize = 1000;

/// Which page of devices to list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceQuery {
    /// Which devices.
    pub filter: DeviceFilter,
    /// Where the page starts.
    pub position: Position,
    /// How many at most (clamped to 1..=[`MAX_PAGE`]).
    pub limit: usize,
}

/// One page of devices.
#[derive(Clone, Debug, PartialEq)]
pub struct DevicePage {
    /// The devices, by id.
    pub devices: Vec<DeviceSummary>,
    /// How many devices match the filter, on every page.
    pub total: u64,
    /// The last id of this page, when more devices follow it.
    pub next_after: Option<String>,
    /// The first id of this page, when devices come before it.
    pub prev_before: Option<String>,
}

/// A page of the devices the store knows (from their requests or their layer), by id: the
/// rows that match, their layers, merges and tokens, all read in one transaction.
pub fn devices_page(store: &dyn Store, query: &DeviceQuery) -> Result<DevicePage, ServiceError> {
    let limit = query.limit.clamp(1, MAX_PAGE);
    with_tx(store, |tx| {
        let view = load_view(tx, None)?;
        // One more than asked, in the direction of travel: whether the page has a neighbour
        // there.
        let mut rows = tx.list_devices(&query.filter, &query.position, limit + 1)?;
        let more = rows.len() > limit;
        if more {
            match query.position {
                Position::Before(_) => {
                    rows.remove(0);
                }
                _ => {
                    rows.pop();
                }
            }
        }
        let (first, last) = (
            rows.first().map(|r| r.device.clone()),
            rows.last().map(|r| r.device.clone()),
        );
        // The other direction: one row is enough to know.
        let behind = |tx: &mut dyn Tx, position: Position| -> Result<bool, StoreError> {
            Ok(!tx.list_devices(&query.filter, &position, 1)?.is_empty())
        };
        let (next_after, prev_before) = match (&query.position, &first, &last) {
            (_, None, _) | (_, _, None) => (None, None),
            (Position::Before(_), Some(f), Some(l)) => (
                behind(tx, Position::After(l.clone()))?.then(|| l.clone()),
                more.then(|| f.clone()),
            ),
            (Position::After(_), Some(f), Some(l)) => (
                more.then(|| l.clone()),
                behind(tx, Position::Before(f.clone()))?.then(|| f.clone()),
            ),
            (Position::Start, _, Some(l)) => (more.then(|| l.clone()), None),
        };
        let total = tx.count_matching(&query.filter)?;
        let keys: Vec<String> = rows.iter().map(|r| device_key(&r.device)).collect();
        let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut layers: BTreeMap<String, Document> = tx.documents(&key_refs)?.into_iter().collect();
        let ids: Vec<&str> = rows.iter().map(|r| r.device.as_str()).collect();
        let tokens: BTreeSet<String> = tx.tokens_among(&ids)?.into_iter().collect();
        let devices = rows
            .into_iter()
            .map(|row| {
                let doc = layers.remove(&device_key(&row.device));
                let merged = doc
                    .as_ref()
                    .map(|d| view.merged_with(&layer_body(Some(d)), d.rev, reported_type(&row)));
                DeviceSummary {
                    device_type: row
                        .device_type
                        .clone()
                        .or_else(|| merged.as_ref().map(|m| m.shown_type().to_string())),
                    layer: doc.map(|d| (d.body, d.rev)),
                    config_rev: merged.as_ref().map_or(0, |m| m.rev),
                    enabled_metrics: merged
                        .as_ref()
                        .map_or(0, |m| merge::enabled_metrics(&m.config)),
                    has_token: tokens.contains(&row.device),
                    row,
                }
            })
            .collect();
        Ok(Ok::<_, ServiceError>(DevicePage {
            devices,
            total,
            next_after,
            prev_before,
        }))
    })?
}

/// Makes (or replaces) a device's own token and returns it; only its digest is stored.
pub fn create_device_token(
    store: &dyn Store,
    device: &str,
    actor: &str,
    now: i64,
) -> Result<String, ServiceError> {
    check_device_id(device)?;
    let token = crate::auth::generate().map_err(|e| {
        ServiceError::Storage(StoreError::Query {
            backend: "random",
            reason: e,
        })
    })?;
    let digest = Token::new(&token)
        .expect("invariant: a generated token is 64 hex digits")
        .hex();
    with_tx(store, |tx| {
        tx.put_device_token(device, &digest, now, actor)?;
        Ok(Ok::<_, ServiceError>(()))
    })??;
    Ok(token)
}

/// Removes a device's own token (the fleet token works for it again); whether it had one.
pub fn delete_device_token(store: &dyn Store, device: &str) -> Result<bool, ServiceError> {
    check_device_id(device)?;
    with_tx(store, |tx| {
        Ok(Ok::<_, ServiceError>(tx.delete_device_token(device)?))
    })?
}

/// Forgets a device: its layer (kept in the history), its row and its token. `If-Match` is
/// required (the layer's version) when it has a layer. Whether there was anything.
pub fn delete_device(
    store: &dyn Store,
    device: &str,
    if_match: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<bool, ServiceError> {
    check_device_id(device)?;
    let key = device_key(device);
    with_tx(store, |tx| {
        let rev = tx.next_revision()?;
        let current = tx.documents(&[&key])?.pop().map(|(_, d)| d);
        if let Some(doc) = &current {
            match if_match {
                None => return Ok(Err(ServiceError::NeedsIfMatch { current: doc.rev })),
                Some(given) if !if_match_matches(given, doc.rev) => {
                    return Ok(Err(ServiceError::Stale {
                        current: doc.rev,
                        given: given.to_string(),
                    }))
                }
                _ => {}
            }
            let before = layer_body(Some(doc));
            let changes = merge::changes(&before, &Object::new());
            tx.add_history(&HistoryEntry {
                rev,
                doc: key.clone(),
                at: now,
                actor: actor.to_string(),
                action: "delete".to_string(),
                reverted_to: None,
                before: Some(doc.body.clone()),
                after: Value::Object(Object::new()),
                changes: Value::Array(changes.iter().map(Change::to_json).collect()),
            })?;
            tx.delete_document(&key)?;
        }
        let row = tx.delete_device(device)?;
        let token = tx.delete_device_token(device)?;
        Ok(Ok::<_, ServiceError>(current.is_some() || row || token))
    })?
}

/// (devices seen since `since`, all devices).
pub fn count_devices(store: &dyn Store, since: i64) -> Result<(u64, u64), ServiceError> {
    with_tx(store, |tx| {
        Ok(Ok::<_, ServiceError>(tx.count_devices(since)?))
    })?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_and_if_match() {
        assert_eq!(etag(17), "\"v17\"");
        assert!(if_match_matches("\"v17\"", 17));
        assert!(if_match_matches("\"v3\", \"v17\"", 17));
        assert!(!if_match_matches("\"v16\"", 17));
        assert!(!if_match_matches("W/\"v17\"", 17), "weak tags never match");
        assert!(if_match_matches("*", 17));
        assert!(!if_match_matches("*", 0), "* needs the document to exist");
        assert!(if_match_matches("\"v0\"", 0));
    }

    #[test]
    fn device_ids_and_headers() {
        assert!(check_device_id("orin-01").is_ok());
        assert!(check_device_id("a b/c").is_ok());
        assert!(check_device_id("").is_err());
        assert!(check_device_id("x\ny").is_err());
        assert!(check_device_id(&"a".repeat(254)).is_err());
        let s = Seen::from_headers(Some(" 0.1.0 "), Some("jetson_nano"));
        assert_eq!(s.version.as_deref(), Some("0.1.0"));
        assert_eq!(s.device_type, Some(DeviceType::JetsonNano));
        let s = Seen::from_headers(Some("1.0\u{1b}[31m"), Some("tx2"));
        assert_eq!(s, Seen::default());
        let s = Seen::from_headers(None, Some("auto"));
        assert_eq!(
            s.device_type, None,
            "auto is a setting, not a type a device runs"
        );
    }

    #[test]
    fn exporter_defaults_are_the_full_shape() {
        let d = exporter_defaults(DeviceType::JetsonNano);
        assert_eq!(d["device_type"], "jetson_nano");
        assert_eq!(d["interval"], 1);
        assert_eq!(d["port"], 9102);
        assert!(d["shelly"].is_object());
        assert_eq!(d["metrics"], json!({}));
    }

    #[test]
    fn type_resolution_order() {
        let fleet = json!({"device_type": "jetson_xavier"});
        let fleet = fleet.as_object().unwrap();
        let own = json!({"device_type": "jetson_nano"});
        assert_eq!(
            resolve_setting(fleet, own.as_object().unwrap()),
            DeviceType::JetsonNano
        );
        assert_eq!(
            resolve_setting(fleet, &Object::new()),
            DeviceType::JetsonXavier
        );
        // Nothing says: the exporter's default, `auto`.
        assert_eq!(
            resolve_setting(&Object::new(), &Object::new()),
            DeviceType::Auto
        );
        // A named type selects its layer whatever the device reports; `auto` takes the
        // reported type, and no layer without one.
        let nano = Some(DeviceType::JetsonNano);
        assert_eq!(
            layer_type_of(DeviceType::JetsonOrin, nano),
            Some(DeviceType::JetsonOrin)
        );
        assert_eq!(layer_type_of(DeviceType::Auto, nano), nano);
        assert_eq!(layer_type_of(DeviceType::Auto, None), None);
        assert_eq!(
            layer_type_of(DeviceType::Auto, Some(DeviceType::Auto)),
            None
        );
        assert!(layer_types().all(|t| t != DeviceType::Auto));
        assert_eq!(layer_type("auto"), None);
        assert_eq!(layer_type("jetson_nano"), Some(DeviceType::JetsonNano));
    }
}
