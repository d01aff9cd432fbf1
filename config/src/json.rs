//! The configuration as JSON: [`to_json`] for `GET /config` and Config Server pushes,
//! [`from_json`] for a Config Server body, checked by the same rules as `config.yaml`.

use crate::check::from_value;
use crate::error::ConfigError;
use crate::schema::Config;
use crate::yaml;

/// Builds a validated `Config` from a Config Server JSON body (the shape [`to_json`] makes).
pub fn from_json(value: serde_json::Value) -> Result<Config, ConfigError> {
    let origin = "Config Server";
    let value = yaml::to_value(value)
        .map_err(|e| ConfigError::invalid(origin, format!("body is not usable: {e}")))?;
    from_value(value, origin, None, true)
}

/// The JSON of `GET /config` and of a Config Server push: `device_type`, `interval`, `port`,
/// `reload_port`, `shelly {enabled, server_url}`, `metrics {}`, the other keys, and the
/// unknown keys kept from the file. `api_token` is never included: it is a secret. An unknown
/// key JSON cannot hold (a mapping with non-text keys inside it) is left out of the JSON only;
/// the file keeps it.
pub fn to_json(config: &Config) -> serde_json::Value {
    let mut shown = config.clone();
    shown.api_token = None;
    let extra = std::mem::take(&mut shown.extra);
    let mut value =
        serde_json::to_value(&shown).expect("invariant: Config without extra is JSON-safe");
    if let serde_json::Value::Object(map) = &mut value {
        for (k, v) in extra {
            match serde_json::to_value(&v) {
                Ok(j) => {
                    map.insert(k, j);
                }
                Err(error) => {
                    tracing::debug!(key = %k, %error, "Left out a config key JSON cannot hold.")
                }
            }
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::parse;

    #[test]
    fn json_round_trip_matches_spec_shape_and_hides_token() {
        let c = parse(
            "device_type: jetson_orin\ninterval: 1\nport: 9102\nreload_port: 9101\napi_token: t0k\nshelly:\n  enabled: true\n  server_url: http://localhost:8766\nmetrics:\n  power_total_watts: true\nrack: r7\n",
            "c",
        )
        .unwrap();
        let j = to_json(&c);
        assert_eq!(j["device_type"], "jetson_orin");
        assert_eq!(j["interval"].to_string(), "1");
        assert_eq!(j["port"], 9102);
        assert_eq!(j["reload_port"], 9101);
        assert_eq!(
            j["shelly"],
            serde_json::json!({"enabled": true, "server_url": "http://localhost:8766"})
        );
        assert_eq!(j["metrics"], serde_json::json!({"power_total_watts": true}));
        assert_eq!(j["rack"], "r7");
        assert!(j.get("api_token").is_none());
        let back = from_json(j).unwrap();
        assert_eq!(
            back,
            Config {
                api_token: None,
                ..c
            }
        );
        let e = from_json(serde_json::Value::Null).unwrap_err().to_string();
        assert_eq!(
            e,
            "Config Server: is empty (send at least {\"device_type\": \"jetson_orin\"})"
        );
        let e = from_json(serde_json::json!({"interval": "1"}))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "Config Server: interval must be a number of seconds, got \"1\" (set interval: 1)"
        );
    }
}
