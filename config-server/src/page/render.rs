//! The fleet page's HTML, from plain view types: no I/O, so every byte is testable.
//!
//! Everything that came from a device or a layer (ids, types, versions, keys, values) and
//! every message passes through [`esc`] before it reaches the page, in text and in
//! (always double-quoted) attributes alike. The page has no script; its CSS is one inline
//! `<style>` block; each form carries the session's CSRF token and the version of the layer it
//! changes, as the page was rendered.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;

use crate::listing::Listing;
use crate::merge::{Change, Object};

use super::session::Flash;

/// Devices not seen for longer than this are marked quiet (the `seen_recently` window of
/// `GET /devices`).
pub const QUIET_AFTER_MS: i64 = 5 * 60 * 1000;

/// Which layer a form changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One device's own layer.
    Device,
    /// One device type's defaults.
    Type,
    /// The fleet defaults.
    Fleet,
}

impl Scope {
    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Device => "device",
            Scope::Type => "type",
            Scope::Fleet => "fleet",
        }
    }
}

/// One device's row.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DeviceView {
    /// Its id (the exporter's hostname label).
    pub id: String,
    /// Its device type, when known.
    pub device_type: Option<String>,
    /// The exporter version it last sent.
    pub exporter_version: Option<String>,
    /// When it last fetched or pushed (ms since the epoch).
    pub last_seen_ms: Option<i64>,
    /// Metrics on in its merged config.
    pub enabled_metrics: usize,
    /// Its own layer's version (0: it has none).
    pub layer_rev: i64,
    /// Whether it last fetched the current version of its config.
    pub up_to_date: Option<bool>,
    /// Where its own layer departs from its defaults (before: the defaults' value).
    pub diff: Vec<Change>,
}

/// A defaults layer (the fleet's or a device type's).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerView {
    /// Fleet or type.
    pub scope: Scope,
    /// The type's name; empty for the fleet.
    pub target: String,
    /// Its version (0: it does not exist yet).
    pub rev: i64,
    /// Its keys.
    pub body: Object,
}

/// Where this page of devices sits in the fleet, and the links around it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Paging {
    /// Devices the store knows (the whole fleet).
    pub known: u64,
    /// Of those, not seen in the last 5 minutes.
    pub quiet: u64,
    /// Devices that match the filter (on every page).
    pub matching: u64,
    /// The page asked for (its filters fill the filter form).
    pub listing: Listing,
    /// `/fleet?...` of the first page, when this is not it.
    pub first: Option<String>,
    /// `/fleet?...` of the page before, when there is one.
    pub prev: Option<String>,
    /// `/fleet?...` of the page after, when there is one.
    pub next: Option<String>,
    /// This page's query, which the forms carry back (`back`).
    pub here: String,
}

/// Everything the fleet page shows.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetView {
    /// Who is signed in.
    pub operator: String,
    /// The session's CSRF token, put in every form.
    pub csrf: String,
    /// Now, for "last seen" (ms since the epoch).
    pub now_ms: i64,
    /// The message left by the last change, if any.
    pub flash: Option<Flash>,
    /// Where this page is, with the links to the others.
    pub paging: Paging,
    /// This page's devices, by id.
    pub devices: Vec<DeviceView>,
    /// The fleet defaults.
    pub fleet: LayerView,
    /// Each device type's defaults.
    pub types: Vec<LayerView>,
    /// Metric names offered in the forms' suggestion list.
    pub metrics: BTreeSet<String>,
}

/// `text` with `& < > " '` replaced by character references: safe in element text and in a
/// quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as compact text (a string without its quotes would hide `"1"` vs `1`).
fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// How long ago `then` was, roughly: `12 s`, `5 min`, `3 h`, `2 d`.
pub fn age(now_ms: i64, then_ms: i64) -> String {
    let s = (now_ms - then_ms).max(0) / 1000;
    match s {
        0..60 => format!("{s} s ago"),
        60..3600 => format!("{} min ago", s / 60),
        3600..86_400 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

const STYLE: &str = "\
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1d2330;background:#fff}\
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.4em 0 .4em}\
header{display:flex;justify-content:space-between;align-items:baseline;gap:1em}\
table{border-collapse:collapse;width:100%}\
th,td{border-bottom:1px solid #dde;padding:.35em .5em;text-align:left;vertical-align:top}\
th{background:#f2f4f8;font-weight:600}\
code{font:12px ui-monospace,monospace;background:#f2f4f8;padding:0 .2em}\
ul.diff,ul.keys{margin:0;padding:0;list-style:none}\
.was{color:#8a8f9c;text-decoration:line-through}.now{color:#0b6b2b;font-weight:600}\
.quiet{background:#fde8c8;color:#7a4100;border-radius:3px;padding:0 .3em;font-size:.85em}\
.muted{color:#8a8f9c}.flash{padding:.5em .8em;border-radius:4px}\
.ok{background:#e3f4e8}.bad{background:#fbe1e1}\
form.switch{display:flex;gap:.3em;margin:0}form.inline{display:inline;margin:0}\
input[name=metric]{width:16em}\
.layers{display:grid;grid-template-columns:repeat(auto-fill,minmax(22em,1fr));gap:.8em}\
.layers section{border:1px solid #dde;border-radius:4px;padding:.5em .7em}\
.layers h3{font-size:1em;margin:0 0 .3em}\
nav.paging{display:flex;flex-wrap:wrap;justify-content:space-between;gap:.5em;margin:.3em 0 .6em}\
nav.paging a,nav.paging .muted{margin-left:.6em}input[name=limit]{width:5em}";

/// The page around `body`, with the headers' promise kept: no script, no external asset.
fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <title>{} · edge-metrics Config Server</title><style>{STYLE}</style></head>\
         <body>\n{body}\n</body></html>\n",
        esc(title)
    )
}

/// The hidden inputs every state-changing form carries.
fn csrf_input(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    )
}

/// The form that switches one metric in one layer, made from version `rev` of it, on the
/// page whose query is `back` (where the browser returns after the switch).
pub fn switch_form(csrf: &str, scope: Scope, target: &str, rev: i64, back: &str) -> String {
    let (scope, target) = (scope.as_str(), esc(target));
    format!(
        "<form method=\"post\" action=\"/fleet/metric\" class=\"switch\" \
         data-scope=\"{scope}\" data-target=\"{target}\">{}\
         <input type=\"hidden\" name=\"back\" value=\"{}\">\
         <input type=\"hidden\" name=\"scope\" value=\"{scope}\">\
         <input type=\"hidden\" name=\"target\" value=\"{target}\">\
         <input type=\"hidden\" name=\"version\" value=\"{rev}\">\
         <input name=\"metric\" list=\"metric-names\" required maxlength=\"128\" \
         placeholder=\"metric name\" aria-label=\"metric name\">\
         <select name=\"state\" aria-label=\"switch to\"><option value=\"on\">on</option>\
         <option value=\"off\">off</option><option value=\"default\">as defaults</option>\
         </select><button type=\"submit\">Switch</button></form>",
        csrf_input(csrf),
        esc(back)
    )
}

fn diff_list(diff: &[Change]) -> String {
    if diff.is_empty() {
        return "<span class=\"muted\">as defaults</span>".to_string();
    }
    let mut out = String::from("<ul class=\"diff\">");
    for c in diff {
        let was = c
            .before
            .as_ref()
            .map_or_else(|| "unset".to_string(), json_text);
        let now = c
            .after
            .as_ref()
            .map_or_else(|| "unset".to_string(), json_text);
        let _ = write!(
            out,
            "<li><code>{}</code> <span class=\"was\">{}</span> → <span class=\"now\">{}</span></li>",
            esc(&c.key()),
            esc(&was),
            esc(&now)
        );
    }
    out.push_str("</ul>");
    out
}

fn keys_list(body: &Object) -> String {
    let leaves = crate::merge::changes(&Object::new(), body);
    if leaves.is_empty() {
        return "<p class=\"muted\">nothing set</p>".to_string();
    }
    let mut out = String::from("<ul class=\"keys\">");
    for c in leaves {
        let v = c.after.as_ref().map(json_text).unwrap_or_default();
        let _ = write!(
            out,
            "<li><code>{}</code> = <b>{}</b></li>",
            esc(&c.key()),
            esc(&v)
        );
    }
    out.push_str("</ul>");
    out
}

fn device_row(v: &FleetView, d: &DeviceView) -> String {
    let opt = |s: &Option<String>| match s {
        Some(s) => esc(s),
        None => "<span class=\"muted\">unknown</span>".to_string(),
    };
    let seen = match d.last_seen_ms {
        Some(t) => {
            let quiet = if v.now_ms - t > QUIET_AFTER_MS {
                " <span class=\"quiet\" title=\"not seen in the last 5 minutes\">quiet</span>"
            } else {
                ""
            };
            format!(
                "<span title=\"{}\">{}</span>{quiet}",
                esc(&crate::time::rfc3339(t)),
                esc(&age(v.now_ms, t))
            )
        }
        None => {
            "never <span class=\"quiet\" title=\"never fetched or pushed\">quiet</span>".to_string()
        }
    };
    let sync = match d.up_to_date {
        Some(true) => "",
        Some(false) => {
            " <span class=\"muted\" title=\"has not fetched its current config yet; \
                        it does at its next reload or restart\">(reload pending)</span>"
        }
        None => "",
    };
    format!(
        "<tr data-device=\"{id}\"><td><b>{id}</b></td><td>{}</td><td>{}</td><td>{seen}</td>\
         <td>{}{sync}</td><td>{}</td><td>{}</td></tr>\n",
        opt(&d.device_type),
        opt(&d.exporter_version),
        d.enabled_metrics,
        diff_list(&d.diff),
        switch_form(&v.csrf, Scope::Device, &d.id, d.layer_rev, &v.paging.here),
        id = esc(&d.id),
    )
}

fn layer_section(csrf: &str, l: &LayerView, back: &str) -> String {
    let title = match l.scope {
        Scope::Fleet => "Fleet defaults (every device)".to_string(),
        _ => format!("<code>{}</code> defaults", esc(&l.target)),
    };
    let version = if l.rev > 0 {
        format!("version {}", l.rev)
    } else {
        "not set yet".to_string()
    };
    format!(
        "<section data-layer=\"{}\"><h3>{title} <span class=\"muted\">{version}</span></h3>\
         {}{}</section>\n",
        esc(if l.target.is_empty() {
            "fleet"
        } else {
            &l.target
        }),
        keys_list(&l.body),
        switch_form(csrf, l.scope, &l.target, l.rev, back)
    )
}

/// The filter form (a plain GET of `/fleet`) and the links to the other pages.
fn paging_bar(v: &FleetView) -> String {
    let p = &v.paging;
    let l = &p.listing;
    let mut types = String::from("<option value=\"\">any type</option>");
    for t in &v.types {
        let selected = if l.device_type.as_deref() == Some(t.target.as_str()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            types,
            "<option value=\"{0}\"{selected}>{0}</option>",
            esc(&t.target)
        );
    }
    let seen_option = |value: &str, label: &str, on: bool| {
        format!(
            "<option value=\"{value}\"{}>{label}</option>",
            if on { " selected" } else { "" }
        )
    };
    let seen = [
        seen_option("", "seen or quiet", l.seen_recently.is_none()),
        seen_option("recent", "seen in 5 minutes", l.seen_recently == Some(true)),
        seen_option("quiet", "quiet", l.seen_recently == Some(false)),
    ]
    .concat();
    let link = |href: &Option<String>, rel: &str, text: &str| match href {
        Some(h) => format!("<a href=\"{}\" rel=\"{rel}\">{text}</a>", esc(h)),
        None => format!("<span class=\"muted\">{text}</span>"),
    };
    let what = if l.filtered() { "matching" } else { "in all" };
    format!(
        "<nav class=\"paging\"><form method=\"get\" action=\"/fleet\" class=\"inline\">\
         <select name=\"device_type\" aria-label=\"device type\">{types}</select> \
         <select name=\"seen\" aria-label=\"seen\">{seen}</select> \
         <label>per page <input name=\"limit\" type=\"number\" min=\"1\" max=\"{}\" \
         value=\"{}\"></label> <button type=\"submit\">Show</button></form> \
         <span class=\"pages\">{} on this page, {} {what} · {} {} {}</span></nav>\n",
        crate::service::MAX_PAGE,
        l.limit,
        v.devices.len(),
        p.matching,
        link(&p.first, "first", "« First"),
        link(&p.prev, "prev", "‹ Previous"),
        link(&p.next, "next", "Next ›"),
    )
}

/// The fleet page.
pub fn fleet(v: &FleetView) -> String {
    let mut b = String::new();
    let _ = writeln!(
        b,
        "<header><h1>Fleet</h1><div>signed in as <b>{}</b> \
         <form method=\"post\" action=\"/logout\" class=\"inline\">{}\
         <button type=\"submit\">Sign out</button></form></div></header>",
        esc(&v.operator),
        csrf_input(&v.csrf)
    );
    if let Some(f) = &v.flash {
        let class = if f.ok { "ok" } else { "bad" };
        let _ = writeln!(
            b,
            "<p class=\"flash {class}\" role=\"status\">{}</p>",
            esc(&f.text)
        );
    }
    let _ = writeln!(
        b,
        "<h2>Devices <span class=\"muted\">{} known, {} quiet (not seen in 5 minutes)\
         </span></h2>",
        v.paging.known, v.paging.quiet
    );
    b.push_str(&paging_bar(v));
    if v.devices.is_empty() && v.paging.known == 0 {
        b.push_str(
            "<p class=\"muted\">No device has fetched or pushed yet. Point an exporter's \
             <code>config_server.url</code> here.</p>\n",
        );
    } else if v.devices.is_empty() {
        b.push_str("<p class=\"muted\">No device on this page matches.</p>\n");
    } else {
        b.push_str(
            "<table><thead><tr><th>Device</th><th>Type</th><th>Exporter</th>\
             <th>Last seen</th><th>Metrics on</th><th>Own layer vs defaults</th>\
             <th>Switch a metric for this device</th></tr></thead><tbody>\n",
        );
        for d in &v.devices {
            b.push_str(&device_row(v, d));
        }
        b.push_str("</tbody></table>\n");
    }
    b.push_str(
        "<h2>Defaults <span class=\"muted\">device layer over type over fleet; \
         &quot;as defaults&quot; removes the key from that layer</span></h2>\n\
         <div class=\"layers\">\n",
    );
    b.push_str(&layer_section(&v.csrf, &v.fleet, &v.paging.here));
    for t in &v.types {
        b.push_str(&layer_section(&v.csrf, t, &v.paging.here));
    }
    b.push_str("</div>\n<datalist id=\"metric-names\">");
    for m in &v.metrics {
        let _ = write!(b, "<option value=\"{}\">", esc(m));
    }
    b.push_str("</datalist>");
    document("Fleet", &b)
}

/// The sign-in form, with `error` above it when the last try failed.
pub fn login(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"flash bad\" role=\"alert\">{}</p>", esc(e)))
        .unwrap_or_default();
    document(
        "Sign in",
        &format!(
            "<h1>Fleet: sign in</h1>{error}\
             <form method=\"post\" action=\"/login\">\
             <p><label>Operator token<br><input type=\"password\" name=\"token\" \
             autocomplete=\"current-password\" required maxlength=\"512\" size=\"48\" \
             autofocus></label></p>\
             <p><button type=\"submit\">Sign in</button></p></form>\
             <p class=\"muted\">The secret part of an entry of CONFIG_SERVER_OPERATOR_TOKEN \
             (without <code>name:</code>). The page keeps you signed in with a cookie for 8 \
             hours.</p>"
        ),
    )
}

/// A page that reports one outcome, with a way back to the fleet page.
pub fn message(title: &str, text: &str, ok: bool) -> String {
    let class = if ok { "ok" } else { "bad" };
    document(
        title,
        &format!(
            "<h1>{}</h1><p class=\"flash {class}\" role=\"alert\">{}</p>\
             <p><a href=\"/fleet\">Reload the fleet page</a></p>",
            esc(title),
            esc(text)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EVIL: &str = "<script>alert('x')</script>\"&";

    fn view() -> FleetView {
        FleetView {
            operator: "alice".into(),
            csrf: "c".repeat(64),
            now_ms: 1_000_000_000,
            flash: None,
            paging: Paging::default(),
            devices: vec![],
            fleet: LayerView {
                scope: Scope::Fleet,
                target: String::new(),
                rev: 0,
                body: Object::new(),
            },
            types: vec![],
            metrics: BTreeSet::new(),
        }
    }

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc(EVIL),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;"
        );
        assert_eq!(esc("orin-01.lab"), "orin-01.lab");
    }

    #[test]
    fn nothing_a_device_sent_reaches_the_page_unescaped() {
        let mut v = view();
        v.devices.push(DeviceView {
            id: EVIL.into(),
            device_type: Some(EVIL.into()),
            exporter_version: Some(EVIL.into()),
            last_seen_ms: Some(v.now_ms),
            enabled_metrics: 3,
            layer_rev: 4,
            up_to_date: Some(false),
            diff: vec![Change {
                path: vec!["metrics".into(), EVIL.into()],
                before: None,
                after: Some(json!(EVIL)),
            }],
        });
        let mut body = Object::new();
        body.insert(EVIL.into(), json!({ EVIL: EVIL }));
        v.types.push(LayerView {
            scope: Scope::Type,
            target: EVIL.into(),
            rev: 2,
            body,
        });
        v.metrics.insert(EVIL.into());
        v.flash = Some(Flash {
            ok: false,
            text: EVIL.into(),
        });
        v.operator = EVIL.into();
        let html = fleet(&v);
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("alert('x')"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)"));
        // Attribute values never end early: every quote inside them is escaped.
        assert!(html.contains(
            "data-target=\"&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&amp;\""
        ));
        assert!(!login(Some(EVIL)).contains("<script"));
        assert!(!message(EVIL, EVIL, false).contains("<script"));
    }

    #[test]
    fn every_form_that_changes_state_carries_the_csrf_token() {
        let mut v = view();
        v.devices.push(DeviceView {
            id: "orin-01".into(),
            layer_rev: 7,
            ..DeviceView::default()
        });
        let html = fleet(&v);
        let forms = html.matches("<form method=\"post\"").count();
        assert_eq!(forms, 3, "sign out, the device, the fleet: {html}");
        let token = format!("name=\"csrf\" value=\"{}\"", v.csrf);
        assert_eq!(html.matches(&token).count(), forms, "{html}");
    }

    #[test]
    fn a_form_carries_the_version_it_was_rendered_from() {
        let f = switch_form("t", Scope::Device, "orin-01", 17, "after=6162");
        assert!(f.contains("name=\"back\" value=\"after=6162\""), "{f}");
        assert!(f.contains("name=\"version\" value=\"17\""), "{f}");
        assert!(f.contains("name=\"scope\" value=\"device\""), "{f}");
        assert!(f.contains("data-target=\"orin-01\""), "{f}");
        let fleet_form = switch_form("t", Scope::Fleet, "", 0, "");
        assert!(fleet_form.contains("name=\"version\" value=\"0\""));
    }

    #[test]
    fn quiet_devices_are_marked() {
        let mut v = view();
        let now = v.now_ms;
        for (id, seen) in [
            ("fresh", Some(now - 60_000)),
            ("old", Some(now - QUIET_AFTER_MS - 1)),
            ("never", None),
        ] {
            v.devices.push(DeviceView {
                id: id.into(),
                last_seen_ms: seen,
                ..DeviceView::default()
            });
        }
        v.paging.known = 3;
        v.paging.quiet = 2;
        let html = fleet(&v);
        let row = |id: &str| {
            let start = html.find(&format!("<tr data-device=\"{id}\"")).unwrap();
            let end = start + html[start..].find("</tr>").unwrap();
            html[start..end].to_string()
        };
        assert!(
            !row("fresh").contains("class=\"quiet\""),
            "{}",
            row("fresh")
        );
        assert!(row("fresh").contains("1 min ago"));
        assert!(row("old").contains("class=\"quiet\""));
        assert!(row("never").contains("class=\"quiet\""));
        assert!(html.contains("3 known, 2 quiet"), "{html}");
    }

    #[test]
    fn the_diff_shows_the_defaults_value_and_the_devices() {
        let html = diff_list(&[
            Change {
                path: vec!["metrics".into(), "jetson_gpu_usage_percent".into()],
                before: Some(json!(true)),
                after: Some(json!(false)),
            },
            Change {
                path: vec!["interval".into()],
                before: None,
                after: Some(json!(5)),
            },
        ]);
        assert!(html.contains(
            "<code>metrics.jetson_gpu_usage_percent</code> <span class=\"was\">true</span> → \
             <span class=\"now\">false</span>"
        ));
        assert!(html.contains("<span class=\"was\">unset</span>"));
        assert!(diff_list(&[]).contains("as defaults"));
    }

    #[test]
    fn the_page_has_no_script_and_no_external_asset() {
        let html = fleet(&view());
        for banned in ["<script", "src=", "<link", "http://", "https://"] {
            assert!(!html.contains(banned), "{banned} in {html}");
        }
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(age(10_000, 0), "10 s ago");
        assert_eq!(age(300_000, 0), "5 min ago");
        assert_eq!(age(7_200_000, 0), "2 h ago");
        assert_eq!(age(3 * 86_400_000, 0), "3 d ago");
        assert_eq!(
            age(0, 5_000),
            "0 s ago",
            "a clock step back is not negative"
        );
    }
}
