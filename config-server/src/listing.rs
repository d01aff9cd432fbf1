//! The device list's query, shared by `GET /devices` and the fleet page: a page size, an
//! opaque cursor and filters, read from a query string and written back into the links to the
//! next and previous pages.
//!
//! - `limit`: devices per page, 1 to [`MAX_PAGE`] (default [`DEFAULT_PAGE`]).
//! - `after` / `before`: a cursor from an answer's `next` / `prev`. Paging is by device id
//!   (keyset), so devices added or removed elsewhere in the list neither repeat nor skip a
//!   device on the next page. The cursor is the id in hex: opaque to clients, which only pass
//!   it back.
//! - `device_type`: only devices of that type (what they report, else what their config
//!   named), one of the types with a defaults layer.
//! - `seen`: `recent` (fetched or pushed in the last 5 minutes) or `quiet` (not, or never).

use std::fmt::Write as _;
use std::time::Duration;

use crate::service::{self, DeviceQuery, DEFAULT_PAGE, MAX_PAGE};
use crate::store::{DeviceFilter, Position};

/// The query's parameter names, for messages.
/// A device that fetched or pushed within this window counts as seen (`seen=recent`).
pub const SEEN_WINDOW: Duration = Duration::from_secs(300);

/// [`SEEN_WINDOW`] in milliseconds.
pub fn seen_window_ms() -> i64 {
    i64::try_from(SEEN_WINDOW.as_millis()).unwrap_or(i64::MAX)
}

const NAMES: &str = "limit, after, before, device_type, seen";

/// A cursor for the page boundary at device `id`.
pub fn cursor(id: &str) -> String {
    let mut out = String::with_capacity(id.len() * 2);
    for b in id.bytes() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The device id a cursor names; the error says what to do.
pub fn decode_cursor(text: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "the cursor \"{}\" is not one this server made; pass back the `next` or `prev` of \
             an answer, or leave after/before out for the first page",
            edge_metrics_common::text::shown(text, 32)
        )
    };
    if text.is_empty() || text.len() % 2 != 0 || text.len() > 2 * service::MAX_DEVICE_ID_BYTES {
        return Err(bad());
    }
    let bytes = (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2).ok_or_else(bad)?, 16).map_err(|_| bad()))
        .collect::<Result<Vec<u8>, String>>()?;
    String::from_utf8(bytes).map_err(|_| bad())
}

/// What a listing's query string asks for, before the time is known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Devices per page (already clamped).
    pub limit: usize,
    /// Where the page starts.
    pub position: Position,
    /// Only this type.
    pub device_type: Option<String>,
    /// Only devices seen recently (`true`) or quiet (`false`).
    pub seen_recently: Option<bool>,
}

impl Listing {
    /// Reads `limit`, `after`, `before`, `device_type` and `seen` from `pairs` (decoded query
    /// pairs). Anything else, or a value that does not fit, is an error naming it.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Listing, String> {
        let mut l = Listing {
            limit: DEFAULT_PAGE,
            ..Listing::default()
        };
        let mut after = None;
        let mut before = None;
        for (name, value) in pairs {
            match name {
                "limit" => {
                    l.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_PAGE).contains(n))
                        .ok_or_else(|| {
                            format!(
                                "limit must be a whole number from 1 to {MAX_PAGE}, got \"{}\"",
                                edge_metrics_common::text::shown(value, 16)
                            )
                        })?;
                }
                "after" => after = Some(decode_cursor(value)?),
                "before" => before = Some(decode_cursor(value)?),
                "device_type" if value.is_empty() => {}
                "device_type" => {
                    let t = service::layer_type(value).ok_or_else(|| {
                        format!(
                            "device_type must be one of {}, got \"{}\"",
                            service::layer_type_list(),
                            edge_metrics_common::text::shown(value, 32)
                        )
                    })?;
                    l.device_type = Some(t.as_str().to_string());
                }
                "seen" => {
                    l.seen_recently = match value {
                        "" => None,
                        "recent" => Some(true),
                        "quiet" => Some(false),
                        other => {
                            return Err(format!(
                                "seen must be recent or quiet, got \"{}\"",
                                edge_metrics_common::text::shown(other, 16)
                            ))
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "unknown query parameter \"{}\"; the device list takes {NAMES}",
                        edge_metrics_common::text::shown(other, 32)
                    ))
                }
            }
        }
        l.position = match (after, before) {
            (Some(_), Some(_)) => {
                return Err("give after or before, not both".to_string());
            }
            (Some(a), None) => Position::After(a),
            (None, Some(b)) => Position::Before(b),
            (None, None) => Position::Start,
        };
        Ok(l)
    }

    /// [`Listing::parse`] of a raw query string (`a=1&b=2`, percent-encoded).
    pub fn parse_query(query: &str) -> Result<Listing, String> {
        let pairs = decode_pairs(query)?;
        Listing::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The store query, with "recently" meaning at or after `seen_since` (ms).
    pub fn query(&self, seen_since: i64) -> DeviceQuery {
        DeviceQuery {
            filter: DeviceFilter {
                device_type: self.device_type.clone(),
                seen_recently: self.seen_recently,
                seen_since,
            },
            position: self.position.clone(),
            limit: self.limit,
        }
    }

    /// The query string of this listing at `position` (`limit` only when not the default),
    /// ready to follow `?`.
    pub fn query_string(&self, position: &Position) -> String {
        let mut parts = Vec::new();
        if self.limit != DEFAULT_PAGE {
            parts.push(format!("limit={}", self.limit));
        }
        if let Some(t) = &self.device_type {
            // Type names are `[a-z_]`: nothing to encode.
            parts.push(format!("device_type={t}"));
        }
        match self.seen_recently {
            Some(true) => parts.push("seen=recent".to_string()),
            Some(false) => parts.push("seen=quiet".to_string()),
            None => {}
        }
        match position {
            Position::Start => {}
            Position::After(id) => parts.push(format!("after={}", cursor(id))),
            Position::Before(id) => parts.push(format!("before={}", cursor(id))),
        }
        parts.join("&")
    }

    /// Whether any filter is set.
    pub fn filtered(&self) -> bool {
        self.device_type.is_some() || self.seen_recently.is_some()
    }
}

/// The pairs of a query string, `+` and percent-escapes decoded; an escape that is not UTF-8
/// is an error.
pub fn decode_pairs(query: &str) -> Result<Vec<(String, String)>, String> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "the query string is not UTF-8 after percent-decoding".to_string())
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k)?, decode(v)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_the_server_did_not_make() {
        for id in ["orin-01", "a b/c", "ü-ß", &"x".repeat(253)] {
            assert_eq!(decode_cursor(&cursor(id)).unwrap(), id);
        }
        assert_eq!(cursor("ab"), "6162");
        for bad in ["", "6", "zz", "c3", &"61".repeat(254)] {
            let e = decode_cursor(bad).unwrap_err();
            assert!(e.contains("not one this server made"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_query_is_read_and_written_back() {
        let l = Listing::parse_query("").unwrap();
        assert_eq!(l.limit, DEFAULT_PAGE);
        assert_eq!(l.position, Position::Start);
        assert_eq!(l.query_string(&Position::Start), "");
        let q = format!(
            "limit=2&device_type=jetson_orin&seen=quiet&after={}",
            cursor("orin-02")
        );
        let l = Listing::parse_query(&q).unwrap();
        assert_eq!(l.limit, 2);
        assert_eq!(l.device_type.as_deref(), Some("jetson_orin"));
        assert_eq!(l.seen_recently, Some(false));
        assert_eq!(l.position, Position::After("orin-02".into()));
        assert_eq!(l.query_string(&l.position), q);
        assert!(l.filtered());
        let d = l.query(5);
        assert_eq!(d.filter.seen_since, 5);
        assert_eq!(d.limit, 2);
        // An empty filter field (a form's "any") is no filter.
        let l = Listing::parse_query("device_type=&seen=").unwrap();
        assert!(!l.filtered());
    }

    #[test]
    fn bad_queries_say_what_is_wrong() {
        for (q, says) in [
            ("limit=0", "limit must be a whole number from 1 to 1000"),
            ("limit=1001", "from 1 to 1000"),
            ("limit=x", "got \"x\""),
            ("device_type=auto", "device_type must be one of jetson_orin"),
            ("seen=old", "seen must be recent or quiet"),
            ("page=2", "unknown query parameter \"page\""),
            ("after=6162&before=6162", "not both"),
            ("after=%FF", "not UTF-8"),
        ] {
            let e = Listing::parse_query(q).unwrap_err();
            assert!(e.contains(says), "{q}: {e}");
        }
    }
}
