//! The configuration as JSON: [`to_json`] for `GET /config` and Config Server pushes,
//! [`from_json`] for a Config Server body, checked by the same rules as `config.yaml`, and
//! [`Secrets`], the keys that JSON never carries.

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

/// The secrets of a configuration: `api_token` and `config_server.token`. They live in
/// `config.yaml` (or the environment) and nowhere else: [`to_json`] takes them out, so neither
/// `GET /config` nor a push to the Config Server carries them, and a config that comes back
/// from the Config Server has none. [`Secrets::fill`] puts the local ones back into it.
/// The one list of secret keys: a new secret is added here, and both directions follow.
/// `Debug` shows only which ones are set.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    api_token: Option<String>,
    config_server_token: Option<String>,
}

impl Secrets {
    /// The secrets `config` holds.
    pub fn of(config: &Config) -> Secrets {
        Secrets {
            api_token: config.api_token.clone(),
            config_server_token: config.config_server.token.clone(),
        }
    }

    /// Takes the secrets out of `config`, leaving it without any.
    pub fn take(config: &mut Config) -> Secrets {
        Secrets {
            api_token: config.api_token.take(),
            config_server_token: config.config_server.token.take(),
        }
    }

    /// Gives `config` each of these secrets it lacks; one it has is kept (an operator may set
    /// it on purpose).
    pub fn fill(&self, config: &mut Config) {
        if config.api_token.is_none() {
            config.api_token.clone_from(&self.api_token);
        }
        if config.config_server.token.is_none() {
            config
                .config_server
                .token
                .clone_from(&self.config_server_token);
        }
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |s: &Option<String>| s.as_ref().map(|_| "<secret>");
        f.debug_struct("Secrets")
            .field("api_token", &set(&self.api_token))
            .field("config_server_token", &set(&self.config_server_token))
            .finish()
    }
}

/// The JSON of `GET /config` and of a Config Server push: `device_type`, `interval`, `port`,
/// `reload_port`, `shelly {enabled, server_url}`, `metrics {}`, the other keys, and the
/// unknown keys kept from the file. The [`Secrets`] (`api_token`, `config_server.token`) are
/// never included. An unknown key JSON cannot hold (a mapping with non-text keys inside it) is
/// left out of the JSON only; the file keeps it.
pub fn to_json(config: &Config) -> serde_json::Value {
    let mut shown = config.clone();
    Secrets::take(&mut shown);
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

    /// Both secrets stay out of the JSON, and come back from the local file into a config the
    /// Config Server sends, without overriding one it sets.
    #[test]
    fn secrets_never_reach_the_json_and_come_back_from_the_local_file() {
        let local = parse(
            "api_token: local-api\nconfig_server:\n  url: https://cfg.example\n  \
             token: local-cs\n  ca_file: /etc/edge-metrics/ca.pem\n",
            "c",
        )
        .unwrap();
        let j = to_json(&local);
        let text = j.to_string();
        assert!(
            !text.contains("local-api") && !text.contains("local-cs"),
            "{text}"
        );
        assert!(j.get("api_token").is_none());
        assert_eq!(
            j["config_server"],
            serde_json::json!({"url": "https://cfg.example", "ca_file": "/etc/edge-metrics/ca.pem"})
        );
        // What the server sends back has no secrets; the local ones fill the gaps.
        let mut fetched = from_json(j).unwrap();
        assert_eq!(Secrets::of(&fetched), Secrets::default());
        let secrets = Secrets::of(&local);
        secrets.fill(&mut fetched);
        assert_eq!(fetched, local);
        // One the server sets on purpose is kept.
        let mut fetched = from_json(serde_json::json!({"api_token": "from-server"})).unwrap();
        secrets.fill(&mut fetched);
        assert_eq!(fetched.api_token.as_deref(), Some("from-server"));
        assert_eq!(fetched.config_server.token.as_deref(), Some("local-cs"));
        // take() empties, Debug never shows them.
        let mut c = local.clone();
        let taken = Secrets::take(&mut c);
        assert_eq!(taken, secrets);
        assert_eq!(Secrets::of(&c), Secrets::default());
        let shown = format!("{taken:?}");
        assert!(!shown.contains("local-"), "{shown}");
        assert_eq!(
            shown,
            "Secrets { api_token: Some(\"<secret>\"), config_server_token: Some(\"<secret>\") }"
        );
    }
}
