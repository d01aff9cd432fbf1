//! The fleet page: server-rendered HTML for operators, no script, plain forms.
//!
//! - `GET /` and `GET /fleet`: one page of devices (type, exporter version, last seen with a
//!   "quiet" mark after 5 minutes, metrics on, its own layer against its defaults), with links
//!   to the next and previous pages and a filter form (the query of `GET /devices`: `limit`,
//!   `after`/`before`, `device_type`, `seen`; see [`crate::listing`]), the fleet and per-type
//!   defaults, and on each a form to switch one metric on, off, or back to the defaults.
//!   Without a session: `303` to `/login`.
//! - `GET /login`: the sign-in form (on an open server, a session at once). `POST /login`
//!   (`token=`): an operator token starts a [`session`] (cookie) and goes to `/fleet`.
//! - `POST /logout` (`csrf=`): ends the session.
//! - `POST /fleet/metric` (`csrf`, `scope` = device|type|fleet, `target`, `version`, `metric`,
//!   `state` = on|off|default): writes the layer through [`service::put_layer`], as
//!   `PUT /config/{d}/layer` and `PUT /defaults[/{type}]` do, with `If-Match` set to the
//!   version the page was rendered from. A layer that changed meanwhile is not overwritten:
//!   `409` and a page saying so. Success: `303` back to the same page of `/fleet` (the form's
//!   `back` field, checked like a query) with a one-time message.
//!
//! Every form that changes state carries the session's CSRF token, checked in constant time,
//! and the cookie is `SameSite=Strict`, so another site can neither read the page nor make
//! the browser post to it. Answers carry a Content-Security-Policy that allows no script and
//! no framing.

pub mod render;
pub mod session;

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use edge_metrics_config::{self as config_rules, DeviceType};
use serde_json::{json, Value};
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode};
use warp::reply::{Reply, Response};
use warp::Filter;

use crate::auth::{Tokens, ANONYMOUS_ACTOR};
use crate::listing::Listing;
use crate::merge::{self, Change, Object, METRICS};
use crate::service::{self, DevicePage, Layer, LayerDoc, LayerWrite, ServiceError};
use crate::stats::Stats;
use crate::store::Position;
use crate::store::{with_tx, Store};
use crate::time::now_ms;

use render::{DeviceView, FleetView, LayerView, Paging, Scope};
use session::{Flash, Session, Sessions};

/// Largest form body accepted.
const MAX_FORM_BYTES: u64 = 16 * 1024;
/// Longest metric name a form may send.
const MAX_METRIC_CHARS: usize = 128;

/// The page's shared state.
#[derive(Clone)]
pub struct Pages {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    tokens: Tokens,
    stats: Arc<Stats>,
    sessions: Sessions,
}

impl Pages {
    /// The page over `store`, signing in with the operator tokens of `tokens`.
    pub fn new(store: Arc<dyn Store>, tokens: Tokens, stats: Arc<Stats>) -> Pages {
        Pages {
            inner: Arc::new(Inner {
                store,
                tokens,
                stats,
                sessions: Sessions::default(),
            }),
        }
    }

    /// The sessions (tests look inside).
    pub fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&dyn Store) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        service::on_blocking_pool(&self.inner.store, work).await
    }

    fn done(&self, route: &'static str, response: Response) -> Response {
        self.inner.stats.request(route, response.status().as_u16());
        response
    }

    /// The session named by the request's cookie, with the cookie's value.
    fn session(&self, h: &Heads) -> Option<(String, Session)> {
        let id = session::cookie_value(h.cookie.as_deref()?, session::COOKIE)?;
        let s = self.inner.sessions.get(id, Instant::now())?;
        Some((id.to_string(), s))
    }
}

/// The request headers the page reads.
#[derive(Clone, Debug, Default)]
struct Heads {
    cookie: Option<String>,
    /// `X-Forwarded-Proto: https` from a TLS-terminating proxy: the cookie gets `Secure`.
    https: bool,
}

fn heads() -> impl Filter<Extract = (Heads,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|h: warp::http::HeaderMap| {
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        Heads {
            cookie: get("cookie").map(str::to_string),
            https: get("x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https")),
        }
    })
}

fn form_body() -> impl Filter<Extract = (Form,), Error = warp::Rejection> + Clone {
    warp::body::content_length_limit(MAX_FORM_BYTES)
        .and(warp::body::bytes())
        .map(|b: Bytes| Form::parse(&b))
}

fn with(p: &Pages) -> impl Filter<Extract = (Pages,), Error = Infallible> + Clone {
    let p = p.clone();
    warp::any().map(move || p.clone())
}

/// An `application/x-www-form-urlencoded` body: the first value of each name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form(HashMap<String, String>);

impl Form {
    /// Parses a form body; pairs that do not decode as UTF-8 are dropped.
    pub fn parse(body: &[u8]) -> Form {
        let decode = |s: &str| {
            let spaced = s.replace('+', " ");
            percent_encoding::percent_decode_str(&spaced)
                .decode_utf8()
                .ok()
                .map(|c| c.into_owned())
        };
        let text = String::from_utf8_lossy(body);
        let mut map = HashMap::new();
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if let (Some(k), Some(v)) = (decode(k), decode(v)) {
                map.entry(k).or_insert(v);
            }
        }
        Form(map)
    }

    /// The value of `name`, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map_or("", String::as_str)
    }
}

/// An HTML answer with the page's security headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut r = warp::reply::with_status(warp::reply::html(body), status).into_response();
    let h = r.headers_mut();
    for (name, value) in [
        ("cache-control", "no-store"),
        (
            "content-security-policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

/// `303 See Other` to `location` (a path of this server), optionally setting a cookie.
fn redirect(location: &str, cookie: Option<String>) -> Response {
    let mut r = warp::reply::with_status(warp::reply(), StatusCode::SEE_OTHER).into_response();
    let h = r.headers_mut();
    h.insert(
        "location",
        HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/fleet")),
    );
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert("set-cookie", c);
    }
    r
}

/// The page's routes.
pub fn routes(p: &Pages) -> BoxedFilter<(Response,)> {
    fleet_get(p)
        .or(login_get(p))
        .unify()
        .or(login_post(p))
        .unify()
        .or(logout(p))
        .unify()
        .or(metric_post(p))
        .unify()
        .boxed()
}

/// GET / and GET /fleet
fn fleet_get(p: &Pages) -> BoxedFilter<(Response,)> {
    warp::path::end()
        .or(warp::path!("fleet"))
        .unify()
        .and(warp::get())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(heads())
        .and(with(p))
        .then(|query: String, h: Heads, p: Pages| async move {
            let r = fleet_page(&p, &h, &query).await;
            p.done("GET /fleet", r)
        })
        .boxed()
}

async fn fleet_page(p: &Pages, h: &Heads, query: &str) -> Response {
    let Some((id, session)) = p.session(h) else {
        return redirect("/login", None);
    };
    let listing = match Listing::parse_query(query) {
        Ok(l) => l,
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                render::message("Not a page of the fleet", &e, false),
            )
        }
    };
    let flash = p.inner.sessions.take_flash(&id);
    let now = now_ms();
    let l = listing.clone();
    match p.blocking(move |s| load(s, &l, now)).await {
        Ok(data) => {
            let view = fleet_view(data, &listing, session, flash, now);
            html(StatusCode::OK, render::fleet(&view))
        }
        Err(e) => failed(p, &e),
    }
}

/// What the page shows, read from the store.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// One page of devices.
    pub page: DevicePage,
    /// The fleet defaults.
    pub fleet: LayerDoc,
    /// Each device type's defaults.
    pub types: Vec<(DeviceType, LayerDoc)>,
    /// Devices seen in the last 5 minutes, and all devices (the whole fleet, unfiltered).
    pub counts: (u64, u64),
}

fn load(store: &dyn Store, listing: &Listing, now: i64) -> Result<Loaded, ServiceError> {
    let since = now - crate::listing::seen_window_ms();
    let page = service::devices_page(store, &listing.query(since))?;
    let fleet = service::get_layer(store, &Layer::Fleet)?;
    let types = service::layer_types()
        .map(|t| Ok((t, service::get_layer(store, &Layer::Type(t))?)))
        .collect::<Result<_, ServiceError>>()?;
    let counts = service::count_devices(store, since)?;
    Ok(Loaded {
        page,
        fleet,
        types,
        counts,
    })
}

fn object(v: &Value) -> Object {
    v.as_object().cloned().unwrap_or_default()
}

/// Where a device's own layer departs from its defaults (the exporter's, then the fleet's,
/// then its type's): each changed leaf with the defaults' value before. A metric the layer
/// switches off where the defaults do not mention it is no departure (absent means off).
pub fn layer_diff(defaults: &Object, own: &Object) -> Vec<Change> {
    merge::changes(defaults, &merge::merge_objects(defaults, own))
        .into_iter()
        .filter(|c| {
            let metric = c.path.len() == 2 && c.path[0] == METRICS;
            !(metric && c.before.is_none() && c.after == Some(Value::Bool(false)))
        })
        .collect()
}

/// The page's view of what was loaded, `listing` being the page asked for.
pub fn fleet_view(
    data: Loaded,
    listing: &Listing,
    session: Session,
    flash: Option<Flash>,
    now_ms: i64,
) -> FleetView {
    let fleet = object(&data.fleet.body);
    let type_layers: HashMap<DeviceType, Object> = data
        .types
        .iter()
        .map(|(t, doc)| (*t, object(&doc.body)))
        .collect();
    let mut metrics = BTreeSet::new();
    let mut note_metrics = |body: &Object| {
        if let Some(m) = body.get(METRICS).and_then(Value::as_object) {
            metrics.extend(m.keys().cloned());
        }
    };
    note_metrics(&fleet);
    type_layers.values().for_each(&mut note_metrics);
    let default_type = DeviceType::from_name(config_rules::DEFAULT_DEVICE_TYPE)
        .expect("invariant: the default device type is supported");
    let devices = data
        .page
        .devices
        .iter()
        .map(|d| {
            let own = d.layer.as_ref().map(|(b, _)| object(b)).unwrap_or_default();
            note_metrics(&own);
            let t = d
                .device_type
                .as_deref()
                .and_then(DeviceType::from_name)
                .unwrap_or(default_type);
            let empty = Object::new();
            let defaults = merge::merge_all([
                service::exporter_defaults(t),
                &fleet,
                type_layers.get(&t).unwrap_or(&empty),
            ]);
            let row = &d.row;
            let config_rev = (d.config_rev > 0).then_some(d.config_rev);
            DeviceView {
                id: row.device.clone(),
                device_type: d.device_type.clone(),
                exporter_version: row.exporter_version.clone(),
                last_seen_ms: row.last_fetch_at.max(row.last_push_at),
                enabled_metrics: d.enabled_metrics,
                layer_rev: d.layer.as_ref().map_or(0, |(_, rev)| *rev),
                up_to_date: config_rev.map(|c| row.fetched_rev == Some(c)),
                diff: layer_diff(&defaults, &own),
            }
        })
        .collect();
    let layer_view = |scope, target: &str, doc: &LayerDoc| LayerView {
        scope,
        target: target.to_string(),
        rev: doc.rev,
        body: object(&doc.body),
    };
    let link = |position: Position| format!("/fleet?{}", listing.query_string(&position));
    let paging = Paging {
        known: data.counts.1,
        quiet: data.counts.1.saturating_sub(data.counts.0),
        matching: data.page.total,
        listing: listing.clone(),
        first: (listing.position != Position::Start).then(|| link(Position::Start)),
        prev: data
            .page
            .prev_before
            .clone()
            .map(|id| link(Position::Before(id))),
        next: data
            .page
            .next_after
            .clone()
            .map(|id| link(Position::After(id))),
        here: listing.query_string(&listing.position),
    };
    FleetView {
        operator: session.operator,
        csrf: session.csrf,
        now_ms,
        flash,
        paging,
        devices,
        fleet: layer_view(Scope::Fleet, "", &data.fleet),
        types: data
            .types
            .iter()
            .map(|(t, doc)| layer_view(Scope::Type, t.as_str(), doc))
            .collect(),
        metrics,
    }
}

/// A storage failure as a page (counted, logged by the caller's throttle-free path once).
fn failed(p: &Pages, e: &ServiceError) -> Response {
    if let ServiceError::Storage(error) = e {
        p.inner.stats.storage_error();
        tracing::warn!(%error, "Storage failed while serving the fleet page.");
        return html(
            StatusCode::SERVICE_UNAVAILABLE,
            render::message(
                "Database unavailable",
                "The database did not answer; nothing was changed. Try again in a moment.",
                false,
            ),
        );
    }
    html(
        StatusCode::BAD_REQUEST,
        render::message("Not saved", &e.to_string(), false),
    )
}

/// GET /login
fn login_get(p: &Pages) -> BoxedFilter<(Response,)> {
    warp::path!("login")
        .and(warp::get())
        .and(heads())
        .and(with(p))
        .then(|h: Heads, p: Pages| async move {
            let r = if p.session(&h).is_some() {
                redirect("/fleet", None)
            } else if p.inner.tokens.is_open() {
                // No token is configured (loopback only): nothing to ask, but the page still
                // gets a session so that its forms carry a CSRF token.
                start_session(&p, ANONYMOUS_ACTOR, h.https)
            } else {
                html(StatusCode::OK, render::login(None))
            };
            p.done("GET /login", r)
        })
        .boxed()
}

fn start_session(p: &Pages, operator: &str, https: bool) -> Response {
    match p.inner.sessions.start(operator, Instant::now()) {
        Ok((id, _)) => {
            let cookie = session::set_cookie(&id, session::SESSION_TTL, https);
            redirect("/fleet", Some(cookie))
        }
        Err(e) => html(
            StatusCode::INTERNAL_SERVER_ERROR,
            render::message("Cannot sign in", &e, false),
        ),
    }
}

/// POST /login
fn login_post(p: &Pages) -> BoxedFilter<(Response,)> {
    warp::path!("login")
        .and(warp::post())
        .and(heads())
        .and(form_body())
        .and(with(p))
        .then(|h: Heads, form: Form, p: Pages| async move {
            let r = sign_in(&p, &h, &form);
            p.done("POST /login", r)
        })
        .boxed()
}

fn sign_in(p: &Pages, h: &Heads, form: &Form) -> Response {
    let tokens = &p.inner.tokens;
    if tokens.is_open() {
        return start_session(p, ANONYMOUS_ACTOR, h.https);
    }
    if tokens.operators.is_empty() {
        return html(
            StatusCode::UNAUTHORIZED,
            render::login(Some(
                "This server has no operator token (CONFIG_SERVER_OPERATOR_TOKEN), so nobody \
                 can sign in to the fleet page.",
            )),
        );
    }
    let token = form.get("token").trim();
    let caller = (!token.is_empty() && !token.contains(char::is_whitespace))
        .then(|| tokens.operator(Some(&format!("Bearer {token}"))).ok())
        .flatten();
    match caller {
        Some(caller) => {
            tracing::info!(
                operator = caller.operator_name(),
                "Signed in to the fleet page."
            );
            start_session(p, caller.operator_name(), h.https)
        }
        None => html(
            StatusCode::UNAUTHORIZED,
            render::login(Some(
                "That is not an operator token of this server. Use the secret part of an \
                 entry of CONFIG_SERVER_OPERATOR_TOKEN (without the name: in front).",
            )),
        ),
    }
}

/// POST /logout
fn logout(p: &Pages) -> BoxedFilter<(Response,)> {
    warp::path!("logout")
        .and(warp::post())
        .and(heads())
        .and(form_body())
        .and(with(p))
        .then(|h: Heads, form: Form, p: Pages| async move {
            let r = match p.session(&h) {
                Some((id, s)) if session::csrf_matches(&s, form.get("csrf")) => {
                    p.inner.sessions.end(&id);
                    redirect("/login", Some(session::clear_cookie()))
                }
                Some(_) => forged(),
                None => redirect("/login", Some(session::clear_cookie())),
            };
            p.done("POST /logout", r)
        })
        .boxed()
}

fn forged() -> Response {
    html(
        StatusCode::FORBIDDEN,
        render::message(
            "Refused",
            "This form did not come from this server's fleet page (its CSRF token does not \
             match your session). Nothing was changed; reload the fleet page and try again.",
            false,
        ),
    )
}

/// One metric switch, as a form asks for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Switch {
    /// The layer.
    pub layer: Layer,
    /// The version the page showed for it (0: absent).
    pub version: i64,
    /// The metric.
    pub metric: String,
    /// `Some(on)`, or `None` to remove the key (back to what the layers below say).
    pub state: Option<bool>,
}

impl Switch {
    /// Reads a switch from a form; the error says what is wrong with it.
    pub fn from_form(form: &Form) -> Result<Switch, String> {
        let target = form.get("target");
        let layer = match form.get("scope") {
            "fleet" => Layer::Fleet,
            "type" => Layer::Type(service::layer_type(target).ok_or_else(|| {
                format!(
                    "no defaults layer for device type {:?}; there is one for: {}",
                    edge_metrics_common::text::shown(target, 64),
                    service::layer_type_list()
                )
            })?),
            "device" => {
                service::check_device_id(target).map_err(|e| e.to_string())?;
                Layer::Device(target.to_string())
            }
            other => {
                return Err(format!(
                    "scope must be device, type or fleet, got {:?}",
                    edge_metrics_common::text::shown(other, 16)
                ))
            }
        };
        let version = form
            .get("version")
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .ok_or("the form lacks the version it was made from; reload the fleet page")?;
        let metric = form.get("metric").trim();
        if metric.chars().count() > MAX_METRIC_CHARS || !config_rules::is_metric_name(metric) {
            return Err(format!(
                "{:?} is not a metric name (letters, digits and _, not starting with a digit, \
                 e.g. jetson_gpu_usage_percent)",
                edge_metrics_common::text::shown(metric, 64)
            ));
        }
        let state = match form.get("state") {
            "on" => Some(true),
            "off" => Some(false),
            "default" => None,
            other => {
                return Err(format!(
                    "state must be on, off or default, got {:?}",
                    edge_metrics_common::text::shown(other, 16)
                ))
            }
        };
        Ok(Switch {
            layer,
            version,
            metric: metric.to_string(),
            state,
        })
    }

    /// `body` (the layer as the page showed it) with the switch made.
    pub fn apply(&self, mut body: Object) -> Result<Object, ServiceError> {
        let metrics = body
            .entry(METRICS)
            .or_insert_with(|| Value::Object(Object::new()));
        let Some(map) = metrics.as_object_mut() else {
            return Err(ServiceError::BadRequest(
                "this layer's metrics is not a map; fix it through the JSON API".to_string(),
            ));
        };
        match self.state {
            Some(on) => {
                map.insert(self.metric.clone(), Value::Bool(on));
            }
            None => {
                map.remove(&self.metric);
            }
        }
        if map.is_empty() {
            body.remove(METRICS);
        }
        Ok(body)
    }

    fn describe(&self) -> String {
        let how = match self.state {
            Some(true) => "on",
            Some(false) => "off",
            None => "back to the defaults",
        };
        format!(
            "Switched {} {how} in {}",
            self.metric,
            self.layer.describe()
        )
    }
}

/// Makes `switch` through the operators' write path: the layer as the page showed it (its
/// version must still be current), changed, written with `If-Match` on that version.
pub fn make_switch(
    store: &dyn Store,
    switch: &Switch,
    actor: &str,
    now: i64,
) -> Result<LayerWrite, ServiceError> {
    let doc = service::get_layer(store, &switch.layer)?;
    let stale = || ServiceError::Stale {
        current: doc.rev,
        given: service::etag(switch.version),
    };
    if doc.rev != switch.version {
        return Err(stale());
    }
    let mut body = object(&doc.body);
    if let (Layer::Device(id), false) = (&switch.layer, doc.exists) {
        // A device that fetched but never pushed has no layer: a new one says what type the
        // device reported, so the merge picks its type's defaults.
        let id = id.clone();
        let row = with_tx(store, |tx| Ok(Ok::<_, ServiceError>(tx.device(&id)?)))??;
        if let Some(t) = row.and_then(|r| r.device_type) {
            body.insert("device_type".into(), json!(t));
        }
    }
    let body = switch.apply(body)?;
    let if_match = service::etag(switch.version);
    service::put_layer(
        store,
        &switch.layer,
        Value::Object(body),
        Some(&if_match),
        actor,
        now,
    )
}

/// POST /fleet/metric
fn metric_post(p: &Pages) -> BoxedFilter<(Response,)> {
    warp::path!("fleet" / "metric")
        .and(warp::post())
        .and(heads())
        .and(form_body())
        .and(with(p))
        .then(|h: Heads, form: Form, p: Pages| async move {
            let r = switch_metric(&p, &h, form).await;
            p.done("POST /fleet/metric", r)
        })
        .boxed()
}

/// The page a form came from (its `back` field, a query of `/fleet`), read and written again
/// so that only a page of `/fleet` can be the target; the first page when it does not parse.
pub fn back_to(back: &str) -> String {
    match Listing::parse_query(back) {
        Ok(l) => {
            let q = l.query_string(&l.position);
            if q.is_empty() {
                "/fleet".to_string()
            } else {
                format!("/fleet?{q}")
            }
        }
        Err(_) => "/fleet".to_string(),
    }
}

async fn switch_metric(p: &Pages, h: &Heads, form: Form) -> Response {
    let Some((id, s)) = p.session(h) else {
        return html(
            StatusCode::FORBIDDEN,
            render::message(
                "Signed out",
                "Your session has ended (sessions last 8 hours; a server restart ends them). \
                 Nothing was changed: sign in again and redo the change.",
                false,
            ),
        );
    };
    if !session::csrf_matches(&s, form.get("csrf")) {
        return forged();
    }
    let switch = match Switch::from_form(&form) {
        Ok(sw) => sw,
        Err(e) => {
            return html(
                StatusCode::BAD_REQUEST,
                render::message("Not saved", &e, false),
            )
        }
    };
    let actor = s.operator.clone();
    let sw = switch.clone();
    match p
        .blocking(move |store| make_switch(store, &sw, &actor, now_ms()))
        .await
    {
        Ok(w) => {
            let text = if w.changed {
                format!(
                    "{} (version {}). Devices pick it up at their next reload or restart.",
                    switch.describe(),
                    w.rev
                )
            } else {
                format!(
                    "{} already said that; nothing changed.",
                    switch.layer.describe()
                )
            };
            tracing::info!(
                operator = %s.operator,
                layer = %switch.layer.key(),
                metric = %switch.metric,
                version = w.rev,
                "Switched a metric from the fleet page."
            );
            p.inner.sessions.set_flash(&id, Flash { ok: true, text });
            redirect(&back_to(form.get("back")), None)
        }
        Err(ServiceError::Stale { current, .. }) => html(
            StatusCode::CONFLICT,
            render::message(
                "Changed meanwhile",
                &format!(
                    "Not saved: {} changed meanwhile (it is at version {current}; this page \
                     showed version {}). Nothing was overwritten. Reload the fleet page to see \
                     the change, then redo yours if it is still needed.",
                    switch.layer.describe(),
                    switch.version
                ),
                false,
            ),
        ),
        Err(e) => failed(p, &e),
    }
}

#[cfg(test)]
mod tests;
