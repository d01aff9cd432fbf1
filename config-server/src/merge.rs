//! The layering of configs, as JSON values: no storage, no HTTP, only the rules.
//!
//! - [`merge`]: a more specific layer over a less specific one. Objects merge key by key,
//!   recursively; anything else (a number, a string, a boolean, a list, `null`) is replaced
//!   whole by the more specific layer. So a device's explicit `"x": false` in `metrics` wins
//!   over a fleet `"x": true`, and a device that says nothing about `x` gets the fleet's value.
//! - [`minimal_layer`]: what a device's own layer must hold so that the layers under it plus
//!   this layer give the full config the device pushed: only the values that differ from the
//!   layers below. Two equivalences keep it small: a key that is absent is the same as `null`,
//!   and inside `metrics` an absent metric is the same as `false` (the exporter adds newly
//!   discovered metrics as `false`; storing those would pin every device against a later fleet
//!   `true`).
//! - [`changes`]: the leaf paths where two documents differ, with both values: the "what
//!   changed" of the history, and the input of the race rule.
//! - [`resolve_push`]: the race rule. Paths that someone other than the device changed since
//!   the device last fetched keep the stored value; every other path takes the pushed one.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A JSON object: one layer.
pub type Object = Map<String, Value>;

/// A key path inside a document, e.g. `["metrics", "jetson_gpu_usage_percent"]`.
pub type Path = Vec<String>;

/// The key under which metric switches live; an absent metric counts as `false` there.
pub const METRICS: &str = "metrics";

/// `over` on top of `base`: objects merge key by key (recursively), anything else in `over`
/// replaces what `base` has.
pub fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => Value::Object(merge_objects(b, o)),
        _ => over.clone(),
    }
}

/// [`merge`] for two objects.
pub fn merge_objects(base: &Object, over: &Object) -> Object {
    let mut out = base.clone();
    for (k, v) in over {
        let merged = match out.get(k) {
            Some(b) => merge(b, v),
            None => v.clone(),
        };
        out.insert(k.clone(), merged);
    }
    out
}

/// The layers merged in order, least specific first.
pub fn merge_all<'a>(layers: impl IntoIterator<Item = &'a Object>) -> Object {
    layers
        .into_iter()
        .fold(Object::new(), |acc, layer| merge_objects(&acc, layer))
}

/// Whether `value` at `path` says the same as an absent key: `null`, and `false` for a metric.
fn same_as_absent(path: &[String], value: &Value) -> bool {
    value.is_null() || (is_metric_path(path) && *value == Value::Bool(false))
}

fn is_metric_path(path: &[String]) -> bool {
    path.len() == 2 && path[0] == METRICS
}

/// The smallest layer that, merged over `base`, says what `full` says: keys of `full` whose
/// value `base` already gives (or that say the same as absence where `base` has nothing) are
/// left out, objects are compared key by key, and objects left empty are dropped. Keys that
/// `base` has and `full` lacks are not touched (a layer cannot remove a key below it).
pub fn minimal_layer(full: &Object, base: &Object) -> Object {
    minimal_in(&mut Vec::new(), full, base)
}

fn minimal_in(path: &mut Path, full: &Object, base: &Object) -> Object {
    let mut out = Object::new();
    for (k, v) in full {
        path.push(k.clone());
        let kept = match (base.get(k), v) {
            (None, v) if same_as_absent(path, v) => None,
            (Some(Value::Object(b)), Value::Object(f)) => {
                let inner = minimal_in(path, f, b);
                (!inner.is_empty()).then_some(Value::Object(inner))
            }
            (Some(b), v) if b == v => None,
            (_, v) => Some(v.clone()),
        };
        path.pop();
        if let Some(v) = kept {
            out.insert(k.clone(), v);
        }
    }
    out
}

/// One difference between two documents.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Where.
    pub path: Path,
    /// The value before (`None`: absent).
    pub before: Option<Value>,
    /// The value after (`None`: absent).
    pub after: Option<Value>,
}

impl Change {
    /// The path written with dots, e.g. `metrics.jetson_gpu_usage_percent`.
    pub fn key(&self) -> String {
        self.path.join(".")
    }

    /// As stored in the history: `{"path": [...], "before": v, "after": v}` (absent: left out).
    pub fn to_json(&self) -> Value {
        let mut m = Object::new();
        m.insert("key".into(), Value::String(self.key()));
        m.insert(
            "path".into(),
            Value::Array(self.path.iter().cloned().map(Value::String).collect()),
        );
        if let Some(b) = &self.before {
            m.insert("before".into(), b.clone());
        }
        if let Some(a) = &self.after {
            m.insert("after".into(), a.clone());
        }
        Value::Object(m)
    }

    /// Reads back what [`Change::to_json`] wrote; `None` for anything else.
    pub fn from_json(value: &Value) -> Option<Change> {
        let path = value
            .get("path")?
            .as_array()?
            .iter()
            .map(|p| p.as_str().map(str::to_string))
            .collect::<Option<Path>>()?;
        Some(Change {
            path,
            before: value.get("before").cloned(),
            after: value.get("after").cloned(),
        })
    }
}

/// Every leaf path where `before` and `after` differ, in key order. Objects are compared key by
/// key (an object that appears or goes counts as its leaves); an object replaced by a scalar
/// (or the other way round) is one change at its path.
pub fn changes(before: &Object, after: &Object) -> Vec<Change> {
    let mut out = Vec::new();
    changes_in(&mut Vec::new(), before, after, &mut out);
    out
}

fn changes_in(path: &mut Path, before: &Object, after: &Object, out: &mut Vec<Change>) {
    let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for k in keys {
        path.push(k.clone());
        let empty = Object::new();
        match (before.get(k), after.get(k)) {
            (Some(Value::Object(b)), Some(Value::Object(a))) => changes_in(path, b, a, out),
            // An object that appears or goes is its leaves appearing or going, so that the
            // race rule protects those keys and not the whole section.
            (None, Some(Value::Object(a))) => changes_in(path, &empty, a, out),
            (Some(Value::Object(b)), None) => changes_in(path, b, &empty, out),
            (b, a) if b != a => out.push(Change {
                path: path.clone(),
                before: b.cloned(),
                after: a.cloned(),
            }),
            _ => {}
        }
        path.pop();
    }
}

/// How a path relates to a set of protected paths.
enum Protection {
    /// Neither the path nor anything above or below it is protected.
    None,
    /// The path itself, or a path above it, is protected: keep the stored value whole.
    Whole,
    /// Only paths below it are protected: decide key by key.
    Inside,
}

fn protection(path: &[String], protected: &BTreeSet<Path>) -> Protection {
    let mut inside = false;
    for p in protected {
        if path.starts_with(p) {
            return Protection::Whole;
        }
        if p.starts_with(path) {
            inside = true;
        }
    }
    if inside {
        Protection::Inside
    } else {
        Protection::None
    }
}

/// The race rule: the device layer after a push. `stored` is the device's layer before the
/// push, `pushed` the minimal layer of what it pushed ([`minimal_layer`]), `protected` the
/// paths that someone other than the device changed (in any of its layers) after the device
/// last fetched. A protected path keeps what `stored` has there, present or absent; every
/// other path takes what `pushed` has. Objects left empty are dropped.
pub fn resolve_push(stored: &Object, pushed: &Object, protected: &BTreeSet<Path>) -> Object {
    resolve_in(&mut Vec::new(), stored, pushed, protected)
}

fn resolve_in(
    path: &mut Path,
    stored: &Object,
    pushed: &Object,
    protected: &BTreeSet<Path>,
) -> Object {
    let mut out = Object::new();
    let keys: BTreeSet<&String> = stored.keys().chain(pushed.keys()).collect();
    for k in keys {
        path.push(k.clone());
        let (s, p) = (stored.get(k), pushed.get(k));
        let kept = match protection(path, protected) {
            Protection::None => p.cloned(),
            Protection::Whole => s.cloned(),
            Protection::Inside => {
                let empty = Object::new();
                match (s, p) {
                    (Some(Value::Object(_)) | None, Some(Value::Object(_)) | None) => {
                        let s = s.and_then(Value::as_object).unwrap_or(&empty);
                        let p = p.and_then(Value::as_object).unwrap_or(&empty);
                        let inner = resolve_in(path, s, p, protected);
                        (!inner.is_empty()).then_some(Value::Object(inner))
                    }
                    // The shapes differ: the stored one stands, as for a protected path.
                    _ => s.cloned(),
                }
            }
        };
        path.pop();
        if let Some(v) = kept {
            out.insert(k.clone(), v);
        }
    }
    out
}

/// The number of metrics switched on in a merged config.
pub fn enabled_metrics(config: &Object) -> usize {
    config
        .get(METRICS)
        .and_then(Value::as_object)
        .map_or(0, |m| {
            m.values().filter(|v| **v == Value::Bool(true)).count()
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Object {
        v.as_object().expect("test value is an object").clone()
    }

    fn paths(list: &[&str]) -> BTreeSet<Path> {
        list.iter()
            .map(|p| p.split('.').map(str::to_string).collect())
            .collect()
    }

    #[test]
    fn maps_merge_key_by_key_and_the_more_specific_scalar_wins() {
        let fleet = obj(json!({
            "interval": 5,
            "metrics": {"a": true, "b": true},
            "shelly": {"enabled": true, "server_url": "http://bridge:8766"},
            "rack": "r1"
        }));
        let orin = obj(json!({"metrics": {"c": true}, "interval": 2}));
        let device = obj(json!({
            "device_type": "jetson_orin",
            "metrics": {"a": false},
            "shelly": {"enabled": false},
            "rack": ["x"]
        }));
        assert_eq!(
            Value::Object(merge_all([&fleet, &orin, &device])),
            json!({
                "device_type": "jetson_orin",
                "interval": 2,
                "metrics": {"a": false, "b": true, "c": true},
                "shelly": {"enabled": false, "server_url": "http://bridge:8766"},
                "rack": ["x"]
            })
        );
    }

    #[test]
    fn a_device_false_wins_over_a_fleet_true_and_silence_takes_the_fleet_value() {
        let fleet = obj(json!({"metrics": {"gpu": true, "ram": true}}));
        let device = obj(json!({"metrics": {"gpu": false}}));
        let merged = merge_all([&fleet, &device]);
        assert_eq!(merged["metrics"], json!({"gpu": false, "ram": true}));
        assert_eq!(enabled_metrics(&merged), 1);
    }

    #[test]
    fn null_and_a_scalar_replace_a_whole_object() {
        let base = obj(json!({"shelly": {"enabled": true}, "x": {"y": 1}}));
        let over = obj(json!({"shelly": null, "x": 3}));
        assert_eq!(
            Value::Object(merge_objects(&base, &over)),
            json!({"shelly": null, "x": 3})
        );
    }

    #[test]
    fn the_minimal_layer_keeps_only_what_differs_from_the_layers_below() {
        let base = obj(json!({
            "device_type": "jetson_orin",
            "interval": 1,
            "port": 9102,
            "shelly": {"enabled": true, "server_url": "http://localhost:8766"},
            "metrics": {"gpu": true, "ram": false}
        }));
        let full = obj(json!({
            "device_type": "jetson_orin",
            "interval": 1,
            "port": 9200,
            "shelly": {"enabled": true, "server_url": "http://bridge:8766"},
            "metrics": {"gpu": true, "ram": false, "new1": false, "new2": true, "temp": false},
            "hostname": null,
            "rack": "r7"
        }));
        assert_eq!(
            Value::Object(minimal_layer(&full, &base)),
            json!({
                "port": 9200,
                "shelly": {"server_url": "http://bridge:8766"},
                "metrics": {"new2": true},
                "rack": "r7"
            })
        );
        // Merged back over the base, it says what the device pushed (up to the equivalences).
        let back = merge_objects(&base, &minimal_layer(&full, &base));
        assert_eq!(back["port"], 9200);
        assert_eq!(back["metrics"]["new2"], true);
        assert!(back["metrics"].get("new1").is_none());
    }

    #[test]
    fn an_explicit_false_against_a_true_below_is_kept() {
        let base = obj(json!({"metrics": {"gpu": true}}));
        let full = obj(json!({"metrics": {"gpu": false}}));
        assert_eq!(
            Value::Object(minimal_layer(&full, &base)),
            json!({"metrics": {"gpu": false}})
        );
    }

    #[test]
    fn false_outside_metrics_is_a_value_like_any_other() {
        let base = obj(json!({}));
        let full = obj(json!({"shelly": {"enabled": false}, "flag": false}));
        assert_eq!(
            Value::Object(minimal_layer(&full, &base)),
            json!({"shelly": {"enabled": false}, "flag": false})
        );
    }

    #[test]
    fn changes_are_leaf_paths_with_both_values() {
        let before = obj(json!({"interval": 1, "metrics": {"a": true, "b": false}, "x": {"y": 1}}));
        let after = obj(
            json!({"interval": 1, "metrics": {"a": false, "c": true}, "x": 2, "s": {"e": true}}),
        );
        let found: Vec<(String, Option<Value>, Option<Value>)> = changes(&before, &after)
            .into_iter()
            .map(|c| (c.key(), c.before, c.after))
            .collect();
        assert_eq!(
            found,
            vec![
                ("metrics.a".into(), Some(json!(true)), Some(json!(false))),
                ("metrics.b".into(), Some(json!(false)), None),
                ("metrics.c".into(), None, Some(json!(true))),
                ("s.e".into(), None, Some(json!(true))),
                ("x".into(), Some(json!({"y": 1})), Some(json!(2))),
            ]
        );
        let c = &changes(&before, &after)[0];
        assert_eq!(Change::from_json(&c.to_json()).as_ref(), Some(c));
    }

    #[test]
    fn the_race_rule_keeps_protected_paths_and_takes_the_rest_from_the_push() {
        // Stored: the operator set gpu=true on the device after it fetched; the device had
        // set port 9200 before.
        let stored = obj(json!({"port": 9200, "metrics": {"gpu": true}}));
        // The push, from a device that never saw gpu=true: gpu absent (it had false), and a
        // new metric and interval of its own.
        let pushed = obj(json!({"port": 9200, "interval": 2, "metrics": {"ram": true}}));
        let resolved = resolve_push(&stored, &pushed, &paths(&["metrics.gpu"]));
        assert_eq!(
            Value::Object(resolved),
            json!({"port": 9200, "interval": 2, "metrics": {"gpu": true, "ram": true}})
        );
    }

    #[test]
    fn a_protected_path_that_was_absent_stays_absent() {
        // The operator changed the fleet's interval; the device's stale push carries its old
        // interval as a difference. The fleet value must stand, so the layer gets no interval.
        let stored = obj(json!({}));
        let pushed = obj(json!({"interval": 1, "metrics": {"x": true}}));
        let resolved = resolve_push(&stored, &pushed, &paths(&["interval"]));
        assert_eq!(Value::Object(resolved), json!({"metrics": {"x": true}}));
    }

    #[test]
    fn protection_of_a_parent_covers_children_and_shapes_that_differ_keep_the_stored_one() {
        let stored = obj(json!({"shelly": {"enabled": false}, "x": 1}));
        let pushed = obj(json!({"shelly": {"enabled": true, "server_url": "u"}, "x": {"y": 2}}));
        let resolved = resolve_push(&stored, &pushed, &paths(&["shelly", "x.y"]));
        assert_eq!(
            Value::Object(resolved),
            json!({"shelly": {"enabled": false}, "x": 1})
        );
        // Nothing protected: the push is the layer.
        assert_eq!(resolve_push(&stored, &pushed, &BTreeSet::new()), pushed);
    }
}
