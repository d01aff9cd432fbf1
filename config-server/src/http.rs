//! The HTTP API. Device routes (a device token, an operator token, or none on an open server):
//!
//! - `GET /config/{device}`: the merged config (fleet → type → device), `ETag`; 404 with
//!   `{"error"}` when the device has no layer.
//! - `PUT /config/{device}`: a device's push of its full config, stored as its own layer
//!   (201 created, 200 otherwise); optional `If-Match` (412 when stale).
//!
//! Operator routes (an operator token, or none on an open server):
//!
//! - `GET`/`PUT /config/{device}/layer`, `DELETE /config/{device}`,
//!   `GET /config/{device}/history`, `POST /config/{device}/revert` (`{"version": N}`);
//! - `GET`/`PUT /defaults`, `GET /defaults/history`, `POST /defaults/revert`;
//! - `GET`/`PUT /defaults/{device_type}`, `.../history`, `.../revert`;
//! - `GET /devices`; `POST`/`DELETE /devices/{device}/token`.
//!
//! Writes to an existing layer need `If-Match` (428 without, 412 stale). Open to all:
//! `GET /health` (200, or 503 when the database does not answer) and `GET /metrics`.
//!
//! The fleet page ([`crate::page`]: `GET /`, `/fleet`, `/login`, `POST /login`, `/logout`,
//! `/fleet/metric`) is served beside them, HTML for browsers.
//!
//! Errors are `{"error": "..."}`; 401 carries `WWW-Authenticate: Bearer`. Path segments are
//! percent-decoded (the exporter encodes its device id as one segment); text from a request is
//! repeated cut and escaped. Store work runs on the blocking pool.

use std::convert::Infallible;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edge_metrics_common::limit::{Throttle, WARN_PERIOD};
use edge_metrics_common::text::shown;
use edge_metrics_config::DeviceType;
use serde_json::{json, Value};
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::auth::{AuthError, Caller, Tokens};
use crate::listing::{self, seen_window_ms, Listing, SEEN_WINDOW};
use crate::page::{self, Pages};
use crate::service::{self, Layer, Seen, ServiceError};
use crate::stats::{DeviceCounts, Stats};
use crate::store::{DeviceRow, HistoryEntry, Position, Store};
use crate::time::{now_ms, rfc3339};

/// Largest request body (the exporter's client reads at most this much too).
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
/// How long `/health` and `/metrics` wait for the database.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest piece of request text an error message repeats.
const SHOWN: usize = 64;

/// Shared state of the routes.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    tokens: Tokens,
    stats: Arc<Stats>,
    storage_warnings: Throttle,
    pages: Pages,
}

impl App {
    /// The routes' state over `store`, with the configured `tokens`.
    pub fn new(store: Arc<dyn Store>, tokens: Tokens, stats: Arc<Stats>) -> App {
        let pages = Pages::new(Arc::clone(&store), tokens.clone(), Arc::clone(&stats));
        App {
            inner: Arc::new(Inner {
                store,
                tokens,
                stats,
                storage_warnings: Throttle::new(WARN_PERIOD),
                pages,
            }),
        }
    }

    /// Runs `work` on the store in the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Store) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        service::on_blocking_pool(&self.inner.store, work).await
    }

    /// Counts the answer and hands it back.
    fn done(&self, route: &'static str, response: Response) -> Response {
        self.inner.stats.request(route, response.status().as_u16());
        tracing::debug!(route, status = response.status().as_u16(), "Answered.");
        response
    }

    /// The error as a response; a storage failure is counted and logged (once a minute).
    fn fail(&self, error: ServiceError) -> Response {
        if let ServiceError::Storage(e) = &error {
            self.inner.stats.storage_error();
            if let Some(held_back) = self.inner.storage_warnings.hit() {
                tracing::warn!(error = %e, similar_since_last = held_back, "Storage failed.");
            }
        }
        error_response(&error)
    }
}

/// A path segment, percent-decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment(pub String);

impl FromStr for Segment {
    type Err = ();
    fn from_str(s: &str) -> Result<Segment, ()> {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| Segment(c.into_owned()))
            .map_err(|_| ())
    }
}

/// The request headers the routes read.
#[derive(Clone, Debug, Default)]
struct Heads {
    authorization: Option<String>,
    if_match: Option<String>,
    version: Option<String>,
    device_type: Option<String>,
}

fn heads() -> impl Filter<Extract = (Heads,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|h: HeaderMap| {
        let get = |name: &str| {
            h.get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Heads {
            authorization: get("authorization"),
            if_match: get("if-match"),
            version: get("x-edge-metrics-version"),
            device_type: get("x-edge-metrics-device-type"),
        }
    })
}

fn body() -> impl Filter<Extract = (Bytes,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(MAX_BODY_BYTES).and(warp::body::bytes())
}

fn with(app: &App) -> impl Filter<Extract = (App,), Error = Infallible> + Clone {
    let app = app.clone();
    warp::any().map(move || app.clone())
}

#[derive(Debug, serde::Deserialize)]
struct Page {
    before: Option<i64>,
    limit: Option<usize>,
}

fn json_reply(status: StatusCode, body: &Value) -> Response {
    let mut r = warp::reply::with_status(warp::reply::json(body), status).into_response();
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    r
}

fn with_etag(mut r: Response, rev: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&service::etag(rev)) {
        r.headers_mut().insert("etag", v);
    }
    r
}

fn error_reply(status: StatusCode, message: &str) -> Response {
    json_reply(status, &json!({ "error": message }))
}

fn error_response(error: &ServiceError) -> Response {
    let message = error.to_string();
    match error {
        ServiceError::NotFound(_) => error_reply(StatusCode::NOT_FOUND, &message),
        ServiceError::BadRequest(_) => error_reply(StatusCode::BAD_REQUEST, &message),
        ServiceError::Stale { current, .. } => with_etag(
            error_reply(StatusCode::PRECONDITION_FAILED, &message),
            *current,
        ),
        ServiceError::NeedsIfMatch { current } => with_etag(
            error_reply(StatusCode::PRECONDITION_REQUIRED, &message),
            *current,
        ),
        ServiceError::Auth(AuthError::Forbidden(_)) => error_reply(StatusCode::FORBIDDEN, &message),
        ServiceError::Auth(e) => {
            let mut r = error_reply(StatusCode::UNAUTHORIZED, &message);
            let challenge = match e {
                AuthError::Invalid => {
                    "Bearer realm=\"edge-metrics-config-server\", error=\"invalid_token\""
                }
                _ => "Bearer realm=\"edge-metrics-config-server\"",
            };
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static(challenge));
            r
        }
        ServiceError::Storage(_) => error_reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is not available; try again later",
        ),
    }
}

fn parse_json_body(body: &Bytes) -> Result<Value, ServiceError> {
    serde_json::from_slice(body)
        .map_err(|e| ServiceError::BadRequest(format!("the body is not JSON: {e}")))
}

fn device_type(segment: &str) -> Result<DeviceType, ServiceError> {
    service::layer_type(segment).ok_or_else(|| {
        ServiceError::NotFound(format!(
            "no defaults layer for device type \"{}\"; there is one for: {}",
            shown(segment, SHOWN),
            service::layer_type_list()
        ))
    })
}

/// The name the history records for an operator-level write.
fn actor(caller: &Caller) -> String {
    caller.operator_name().to_string()
}

/// The whole API.
pub fn routes(app: App) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let recover_app = app.clone();
    get_config(&app)
        .or(put_config(&app))
        .unify()
        .or(delete_config(&app))
        .unify()
        .or(config_layer_get(&app))
        .unify()
        .or(config_layer_put(&app))
        .unify()
        .or(config_history(&app))
        .unify()
        .or(config_revert(&app))
        .unify()
        // Before `/defaults/{device_type}`, which would take `history` for a type's name.
        .or(defaults_history(&app))
        .unify()
        .or(defaults_revert(&app))
        .unify()
        .or(defaults_get(&app))
        .unify()
        .or(defaults_put(&app))
        .unify()
        .or(devices(&app))
        .unify()
        .or(device_token(&app))
        .unify()
        .or(health(&app))
        .unify()
        .or(metrics(&app))
        .unify()
        .or(page::routes(&app.inner.pages))
        .unify()
        .recover(move |rejection: warp::Rejection| {
            let app = recover_app.clone();
            async move { Ok::<_, Infallible>(app.done("other", rejected(&rejection))) }
        })
        .unify()
}

fn rejected(r: &warp::Rejection) -> Response {
    if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        error_reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed on this path; see docs/CONFIG-SERVER.md for the routes",
        )
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        error_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
    } else if r.find::<warp::reject::LengthRequired>().is_some() {
        error_reply(
            StatusCode::LENGTH_REQUIRED,
            "send the body with a Content-Length",
        )
    } else if r.find::<warp::reject::InvalidQuery>().is_some() {
        error_reply(
            StatusCode::BAD_REQUEST,
            "the query must be ?before=VERSION&limit=N with whole numbers",
        )
    } else {
        error_reply(
            StatusCode::NOT_FOUND,
            "unknown path; use /config/{device}, /defaults, /defaults/{device_type}, /devices, \
             /health or /metrics (or /fleet in a browser)",
        )
    }
}

// ---- device routes ------------------------------------------------------------------------

const R_GET_CONFIG: &str = "GET /config/{device}";
const R_PUT_CONFIG: &str = "PUT /config/{device}";

/// GET /config/{device}
fn get_config(app: &App) -> BoxedFilter<(Response,)> {
    warp::path!("config" / Segment)
        .and(warp::get())
        .and(heads())
        .and(with(app))
        .then(|Segment(device), h: Heads, app: App| async move {
            let r = get_config_handler(&app, device, h).await;
            app.done(R_GET_CONFIG, r)
        })
        .boxed()
}

async fn get_config_handler(app: &App, device: String, h: Heads) -> Response {
    let caller = match app.inner.tokens.classify(h.authorization.as_deref()) {
        Ok(c) => c,
        Err(e) => return app.fail(e.into()),
    };
    let seen = Seen::from_headers(h.version.as_deref(), h.device_type.as_deref());
    let id = device.clone();
    match app
        .blocking(move |s| service::fetch(s, &id, &caller, &seen, now_ms()))
        .await
    {
        Ok(Some(f)) => with_etag(json_reply(StatusCode::OK, &f.config), f.rev),
        Ok(None) => error_reply(
            StatusCode::NOT_FOUND,
            &format!(
                "no config for device \"{}\": it has pushed none and no operator wrote its \
                 layer; PUT /config/{{device}} stores one",
                shown(&device, SHOWN)
            ),
        ),
        Err(e) => app.fail(e),
    }
}

/// PUT /config/{device}
fn put_config(app: &App) -> BoxedFilter<(Response,)> {
    warp::path!("config" / Segment)
        .and(warp::put())
        .and(heads())
        .and(body())
        .and(with(app))
        .then(
            |Segment(device), h: Heads, body: Bytes, app: App| async move {
                let r = put_config_handler(&app, device, h, body).await;
                app.done(R_PUT_CONFIG, r)
            },
        )
        .boxed()
}

async fn put_config_handler(app: &App, device: String, h: Heads, body: Bytes) -> Response {
    let caller = match app.inner.tokens.classify(h.authorization.as_deref()) {
        Ok(c) => c,
        Err(e) => return app.fail(e.into()),
    };
    let value = match parse_json_body(&body) {
        Ok(v) => v,
        Err(e) => return app.fail(e),
    };
    let seen = Seen::from_headers(h.version.as_deref(), h.device_type.as_deref());
    let id = device.clone();
    let if_match = h.if_match.clone();
    match app
        .blocking(move |s| {
            service::push(s, &id, value, &caller, &seen, if_match.as_deref(), now_ms())
        })
        .await
    {
        Ok(p) => {
            let status = if p.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            with_etag(
                json_reply(
                    status,
                    &json!({
                        "device": device,
                        "version": p.layer_rev,
                        "config_version": p.config_rev,
                        "changed": p.changed,
                        "layer": p.layer,
                        "kept": p.kept,
                    }),
                ),
                p.config_rev,
            )
        }
        Err(e) => app.fail(e),
    }
}

// ---- operator routes: layers --------------------------------------------------------------

/// Runs an operator route: checks the token, then `work` with the caller.
async fn as_operator<F, Fut>(app: &App, h: &Heads, work: F) -> Response
where
    F: FnOnce(Caller) -> Fut,
    Fut: std::future::Future<Output = Result<Response, ServiceError>>,
{
    match app.inner.tokens.operator(h.authorization.as_deref()) {
        Ok(caller) => match work(caller).await {
            Ok(r) => r,
            Err(e) => app.fail(e),
        },
        Err(e) => app.fail(e.into()),
    }
}

async fn layer_get(app: &App, h: Heads, layer: Layer) -> Response {
    let app2 = app.clone();
    as_operator(app, &h, |_| async move {
        let is_device = matches!(layer, Layer::Device(_));
        let describe = layer.describe();
        let doc = app2
            .blocking(move |s| service::get_layer(s, &layer))
            .await?;
        if is_device && !doc.exists {
            return Err(ServiceError::NotFound(format!("{describe} does not exist")));
        }
        Ok(with_etag(json_reply(StatusCode::OK, &doc.body), doc.rev))
    })
    .await
}

async fn layer_put(app: &App, h: Heads, layer: Layer, body: Bytes) -> Response {
    let app2 = app.clone();
    let if_match = h.if_match.clone();
    as_operator(app, &h, |caller| async move {
        let value = parse_json_body(&body)?;
        let who = actor(&caller);
        let w = app2
            .blocking(move |s| {
                service::put_layer(s, &layer, value, if_match.as_deref(), &who, now_ms())
            })
            .await?;
        let status = if w.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        Ok(with_etag(
            json_reply(
                status,
                &json!({"version": w.rev, "changed": w.changed, "layer": w.body}),
            ),
            w.rev,
        ))
    })
    .await
}

fn history_json(entry: &HistoryEntry) -> Value {
    let mut v = json!({
        "version": entry.rev,
        "at": rfc3339(entry.at),
        "by": entry.actor,
        "action": entry.action,
        "changes": entry.changes,
        "layer": entry.after,
    });
    if let Some(n) = entry.reverted_to {
        v["reverted_to"] = json!(n);
    }
    v
}

async fn layer_history(app: &App, h: Heads, layer: Layer, page: Page) -> Response {
    let app2 = app.clone();
    as_operator(app, &h, |_| async move {
        let key = layer.key();
        let limit = page.limit.unwrap_or(100);
        let list = app2
            .blocking(move |s| service::history(s, &layer, page.before, limit))
            .await?;
        let entries: Vec<Value> = list.iter().map(history_json).collect();
        Ok(json_reply(
            StatusCode::OK,
            &json!({"document": key, "count": entries.len(), "history": entries}),
        ))
    })
    .await
}

async fn layer_revert(app: &App, h: Heads, layer: Layer, body: Bytes) -> Response {
    let app2 = app.clone();
    let if_match = h.if_match.clone();
    as_operator(app, &h, |caller| async move {
        let value = parse_json_body(&body)?;
        let version = value
            .get("version")
            .and_then(Value::as_i64)
            .filter(|v| *v > 0)
            .ok_or_else(|| {
                ServiceError::BadRequest(
                    "send {\"version\": N} with a version from the history".to_string(),
                )
            })?;
        let who = actor(&caller);
        let w = app2
            .blocking(move |s| {
                service::revert(s, &layer, version, if_match.as_deref(), &who, now_ms())
            })
            .await?;
        Ok(with_etag(
            json_reply(
                StatusCode::OK,
                &json!({"version": w.rev, "reverted_to": version, "changed": w.changed, "layer": w.body}),
            ),
            w.rev,
        ))
    })
    .await
}

/// DELETE /config/{device}
fn delete_config(app: &App) -> BoxedFilter<(Response,)> {
    warp::path!("config" / Segment)
        .and(warp::delete())
        .and(heads())
        .and(with(app))
        .then(|Segment(device), h: Heads, app: App| async move {
            let app2 = app.clone();
            let if_match = h.if_match.clone();
            let r = as_operator(&app, &h, |caller| async move {
                let who = actor(&caller);
                let id = device.clone();
                let found = app2
                    .blocking(move |s| {
                        service::delete_device(s, &id, if_match.as_deref(), &who, now_ms())
                    })
                    .await?;
                if found {
                    Ok(StatusCode::NO_CONTENT.into_response())
                } else {
                    Err(ServiceError::NotFound(format!(
                        "no device \"{}\"",
                        shown(&device, SHOWN)
                    )))
                }
            })
            .await;
            app.done("DELETE /config/{device}", r)
        })
        .boxed()
}

/// GET /config/{device}/layer
fn config_layer_get(app: &App) -> BoxedFilter<(Response,)> {
    warp::path!("config" / Segment / "layer")
        .and(warp::get())
        .and(heads())
        .and(with(app))
        .then(|Segment(device), h: Heads, app: App| async move {
            let r = layer_get(&app, h, Layer::Device(device)).await;
            app.done("GET /config/{device}/layer", r)
        })
        .boxed()
}

/// PUT /config/{device}/layer
fn config_layer_put(app: &App) -> BoxedFilter<(Response,)> {
    warp::path!("config" / Segment / "layer")
        .and(warp::put())
        .and(heads())
        .and(body())
        .and(with(app))
        .then(
            |Segment(device), h: Heads, body: Bytes, app: App| async move {
                let r = layer_put(&app, h, Layer::Device(device), body).await;
                app.done("PUT /config/{device}/layer", r)
            },
        )
        .boxed()
}

/// GET /config/{device}/history
fn config_history(app: &App) -> BoxedFilter<(Response,)> {
    warp::path!("config" / Segment / "history")
        .and(warp::get())
        .and(warp::query::<Page>())
        .and(heads())
        .and(with(app))
        .then(
            |Segment(device), page: Page, h: Heads, app: App| async move {
                let r = layer_history(&app, h, Layer::Device(device), page).await;
                app.done("GET /config/{device}/history", r)
            },
        )
        .boxed()
}

/// POST /config/{device}/revert
fn config_revert(app: &App) -> BoxedFilter<(Response,)> {
    warp::path!("config" / Segment / "revert")
        .and(warp::post())
        .and(heads())
        .and(body())
        .and(with(app))
        .then(
            |Segment(device), h: Heads, body: Bytes, app: App| async move {
                let r = layer_revert(&app, h, Layer::Device(device), body).await;
                app.done("POST /config/{device}/revert", r)
            },
        )
        .boxed()
}

/// `defaults` (the fleet's layer, `None`) or `defaults/{device_type}` (`Some`) at the start of
/// the path, with `suffix` (`""`, `"history"`, `"revert"`) after it and nothing more.
fn defaults_path(suffix: &'static str) -> BoxedFilter<(Option<Segment>,)> {
    let rest = move || {
        let tail = if suffix.is_empty() {
            warp::any().boxed()
        } else {
            warp::path(suffix).boxed()
        };
        tail.and(warp::path::end())
    };
    let fleet = warp::path("defaults").and(rest()).map(|| None);
    let typed = warp::path("defaults")
        .and(warp::path::param::<Segment>())
        .and(rest())
        .map(Some);
    fleet.or(typed).unify().boxed()
}

/// The layer a defaults path names and the route label for it (fleet or typed).
fn defaults_layer(
    typed: Option<Segment>,
    labels: (&'static str, &'static str),
) -> (&'static str, Result<Layer, ServiceError>) {
    match typed {
        None => (labels.0, Ok(Layer::Fleet)),
        Some(Segment(t)) => (labels.1, device_type(&t).map(Layer::Type)),
    }
}

/// GET /defaults and GET /defaults/{device_type}
fn defaults_get(app: &App) -> BoxedFilter<(Response,)> {
    defaults_path("")
        .and(warp::get())
        .and(heads())
        .and(with(app))
        .then(|t: Option<Segment>, h: Heads, app: App| async move {
            let (label, layer) =
                defaults_layer(t, ("GET /defaults", "GET /defaults/{device_type}"));
            let r = match layer {
                Ok(layer) => layer_get(&app, h, layer).await,
                Err(e) => app.fail(e),
            };
            app.done(label, r)
        })
        .boxed()
}

/// PUT /defaults and PUT /defaults/{device_type}
fn defaults_put(app: &App) -> BoxedFilter<(Response,)> {
    defaults_path("")
        .and(warp::put())
        .and(heads())
        .and(body())
        .and(with(app))
        .then(
            |t: Option<Segment>, h: Heads, body: Bytes, app: App| async move {
                let (label, layer) =
                    defaults_layer(t, ("PUT /defaults", "PUT /defaults/{device_type}"));
                let r = match layer {
                    Ok(layer) => layer_put(&app, h, layer, body).await,
                    Err(e) => app.fail(e),
                };
                app.done(label, r)
            },
        )
        .boxed()
}

/// GET /defaults/history and GET /defaults/{device_type}/history
fn defaults_history(app: &App) -> BoxedFilter<(Response,)> {
    defaults_path("history")
        .and(warp::get())
        .and(warp::query::<Page>())
        .and(heads())
        .and(with(app))
        .then(
            |t: Option<Segment>, page: Page, h: Heads, app: App| async move {
                let labels = (
                    "GET /defaults/history",
                    "GET /defaults/{device_type}/history",
                );
                let (label, layer) = defaults_layer(t, labels);
                let r = match layer {
                    Ok(layer) => layer_history(&app, h, layer, page).await,
                    Err(e) => app.fail(e),
                };
                app.done(label, r)
            },
        )
        .boxed()
}

/// POST /defaults/revert and POST /defaults/{device_type}/revert
fn defaults_revert(app: &App) -> BoxedFilter<(Response,)> {
    defaults_path("revert")
        .and(warp::post())
        .and(heads())
        .and(body())
        .and(with(app))
        .then(
            |t: Option<Segment>, h: Heads, body: Bytes, app: App| async move {
                let labels = (
                    "POST /defaults/revert",
                    "POST /defaults/{device_type}/revert",
                );
                let (label, layer) = defaults_layer(t, labels);
                let r = match layer {
                    Ok(layer) => layer_revert(&app, h, layer, body).await,
                    Err(e) => app.fail(e),
                };
                app.done(label, r)
            },
        )
        .boxed()
}

// ---- operator routes: devices -------------------------------------------------------------

fn device_json(d: &service::DeviceSummary, now: i64) -> Value {
    let row: &DeviceRow = &d.row;
    let ts = |t: Option<i64>| t.map(rfc3339);
    let last_seen = row.last_fetch_at.max(row.last_push_at);
    let window = seen_window_ms();
    let (layer, layer_version) = match &d.layer {
        Some((body, rev)) => (body.clone(), Some(*rev)),
        None => (Value::Null, None),
    };
    let config_version = (d.config_rev > 0).then_some(d.config_rev);
    json!({
        "device": row.device,
        "device_type": d.device_type,
        "exporter_version": row.exporter_version,
        "first_seen": (row.first_seen_at > 0).then(|| rfc3339(row.first_seen_at)),
        "last_fetch": ts(row.last_fetch_at),
        "last_push": ts(row.last_push_at),
        "last_seen": ts(last_seen),
        "seen_recently": last_seen.is_some_and(|t| now - t <= window),
        "enabled_metrics": d.enabled_metrics,
        "layer": layer,
        "layer_version": layer_version,
        "config_version": config_version,
        "fetched_version": row.fetched_rev,
        "up_to_date": config_version.map(|c| row.fetched_rev == Some(c)),
        "own_token": d.has_token,
    })
}

/// GET /devices: one page (`limit`, `after`/`before` cursors, `device_type` and `seen`
/// filters; see [`crate::listing`]), with `next`/`prev` cursors and a `Link` header.
fn devices(app: &App) -> BoxedFilter<(Response,)> {
    warp::path!("devices")
        .and(warp::get())
        .and(optional_raw_query())
        .and(heads())
        .and(with(app))
        .then(|query: String, h: Heads, app: App| async move {
            let app2 = app.clone();
            let r = as_operator(&app, &h, |_| async move {
                let listing = Listing::parse_query(&query).map_err(ServiceError::BadRequest)?;
                let now = now_ms();
                let q = listing.query(now - seen_window_ms());
                let mut page = app2.blocking(move |s| service::devices_page(s, &q)).await?;
                let next = page.next_after.as_deref().map(listing::cursor);
                let prev = page.prev_before.as_deref().map(listing::cursor);
                let head = json!({
                    "count": page.devices.len(),
                    "total": page.total,
                    "limit": listing.limit,
                    "next": next,
                    "prev": prev,
                    "seen_window_seconds": SEEN_WINDOW.as_secs(),
                });
                // Written a device at a time: the page's JSON tree never exists whole.
                let mut body = head.to_string().into_bytes();
                body.pop(); // the closing brace
                body.extend_from_slice(b",\"devices\":[");
                for (i, d) in page.devices.drain(..).enumerate() {
                    if i > 0 {
                        body.push(b',');
                    }
                    serde_json::to_writer(&mut body, &device_json(&d, now))
                        .expect("invariant: a serde_json::Value always serialises");
                }
                body.extend_from_slice(b"]}");
                let mut r = warp::reply::with_status(
                    warp::reply::with_header(body, "content-type", "application/json"),
                    StatusCode::OK,
                )
                .into_response();
                r.headers_mut()
                    .insert("cache-control", HeaderValue::from_static("no-store"));
                let mut links = Vec::new();
                if let Some(id) = &page.next_after {
                    let q = listing.query_string(&Position::After(id.clone()));
                    links.push(format!("</devices?{q}>; rel=\"next\""));
                }
                if let Some(id) = &page.prev_before {
                    let q = listing.query_string(&Position::Before(id.clone()));
                    links.push(format!("</devices?{q}>; rel=\"prev\""));
                }
                if !links.is_empty() {
                    if let Ok(v) = HeaderValue::from_str(&links.join(", ")) {
                        r.headers_mut().insert("link", v);
                    }
                }
                Ok(r)
            })
            .await;
            app.done("GET /devices", r)
        })
        .boxed()
}

/// The raw query string, empty when there is none.
fn optional_raw_query() -> impl Filter<Extract = (String,), Error = Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// POST and DELETE /devices/{device}/token
fn device_token(app: &App) -> BoxedFilter<(Response,)> {
    let create = warp::path!("devices" / Segment / "token")
        .and(warp::post())
        .and(heads())
        .and(with(app))
        .then(|Segment(device), h: Heads, app: App| async move {
            let app2 = app.clone();
            let r = as_operator(&app, &h, |caller| async move {
                let who = actor(&caller);
                let id = device.clone();
                let token = app2
                    .blocking(move |s| service::create_device_token(s, &id, &who, now_ms()))
                    .await?;
                tracing::info!(
                    device = %shown(&device, SHOWN),
                    by = %actor(&caller),
                    "Made a device token."
                );
                Ok(json_reply(
                    StatusCode::CREATED,
                    &json!({"device": device, "token": token}),
                ))
            })
            .await;
            app.done("POST /devices/{device}/token", r)
        });
    let remove = warp::path!("devices" / Segment / "token")
        .and(warp::delete())
        .and(heads())
        .and(with(app))
        .then(|Segment(device), h: Heads, app: App| async move {
            let app2 = app.clone();
            let r = as_operator(&app, &h, |_| async move {
                let id = device.clone();
                if app2
                    .blocking(move |s| service::delete_device_token(s, &id))
                    .await?
                {
                    Ok(StatusCode::NO_CONTENT.into_response())
                } else {
                    Err(ServiceError::NotFound(format!(
                        "device \"{}\" has no token of its own",
                        shown(&device, SHOWN)
                    )))
                }
            })
            .await;
            app.done("DELETE /devices/{device}/token", r)
        });
    create.or(remove).unify().boxed()
}

// ---- open routes --------------------------------------------------------------------------

/// GET /health
fn health(app: &App) -> BoxedFilter<(Response,)> {
    warp::path!("health")
        .and(warp::get())
        .and(with(app))
        .then(|app: App| async move {
            let backend = app.inner.store.backend();
            let probe = app.blocking(|s| s.ping().map_err(ServiceError::from));
            let answer = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "no answer within {}s",
                    PROBE_TIMEOUT.as_secs()
                )),
            };
            let r = match answer {
                Ok(()) => json_reply(
                    StatusCode::OK,
                    &json!({"status": "healthy", "database": backend, "version": env!("CARGO_PKG_VERSION")}),
                ),
                Err(error) => {
                    app.inner.stats.storage_error();
                    json_reply(
                        StatusCode::SERVICE_UNAVAILABLE,
                        &json!({"status": "unhealthy", "database": backend, "error": error, "version": env!("CARGO_PKG_VERSION")}),
                    )
                }
            };
            app.done("GET /health", r)
        })
        .boxed()
}

/// GET /metrics
fn metrics(app: &App) -> BoxedFilter<(Response,)> {
    warp::path!("metrics")
        .and(warp::get())
        .and(with(app))
        .then(|app: App| async move {
            let since = now_ms() - seen_window_ms();
            let probe = app.blocking(move |s| service::count_devices(s, since));
            let counts = match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
                Ok(Ok((seen_recently, known))) => Some(DeviceCounts {
                    seen_recently,
                    known,
                }),
                _ => {
                    app.inner.stats.storage_error();
                    None
                }
            };
            // Count this scrape before rendering, so it shows in its own output.
            app.inner.stats.request("GET /metrics", 200);
            let text = app.inner.stats.render(app.inner.store.backend(), counts);
            warp::reply::with_header(
                text,
                "content-type",
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .into_response()
        })
        .boxed()
}
