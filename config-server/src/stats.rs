//! The server's own metrics, written as Prometheus text on `GET /metrics`:
//!
//! - `edge_metrics_config_server_requests_total{route, code}`: answered requests, by route
//!   template (`GET /config/{device}`, ...; `other` for unknown paths) and status code;
//! - `edge_metrics_config_server_storage_errors_total`: storage operations that failed;
//! - `edge_metrics_config_server_devices_seen`: devices that fetched or pushed in the last
//!   5 minutes, and `edge_metrics_config_server_devices`: every device the store knows (both
//!   read from the store at scrape time, so several servers on one PostgreSQL agree);
//! - `edge_metrics_config_server_build_info{version, database}`.
//!
//! Route labels come from a fixed list, so a client cannot grow the number of series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Counters shared by every request.
#[derive(Debug, Default)]
pub struct Stats {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    storage_errors: AtomicU64,
}

/// What the store said at scrape time; `None` when it could not be asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCounts {
    /// Devices that fetched or pushed in the last 5 minutes.
    pub seen_recently: u64,
    /// Every device the store knows.
    pub known: u64,
}

impl Stats {
    /// Counts one answered request.
    pub fn request(&self, route: &'static str, code: u16) {
        let mut map = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *map.entry((route, code)).or_default() += 1;
    }

    /// Counts one failed storage operation.
    pub fn storage_error(&self) {
        self.storage_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Failed storage operations so far.
    pub fn storage_errors(&self) -> u64 {
        self.storage_errors.load(Ordering::Relaxed)
    }

    /// The exposition text.
    pub fn render(&self, database: &str, devices: Option<DeviceCounts>) -> String {
        let mut out = String::new();
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        out.push_str(
            "# HELP edge_metrics_config_server_requests_total HTTP requests answered, by route \
             and status code.\n# TYPE edge_metrics_config_server_requests_total counter\n",
        );
        for ((route, code), n) in requests {
            let _ = writeln!(
                out,
                "edge_metrics_config_server_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"
            );
        }
        let _ = write!(
            out,
            "# HELP edge_metrics_config_server_storage_errors_total Storage operations that \
             failed.\n# TYPE edge_metrics_config_server_storage_errors_total counter\n\
             edge_metrics_config_server_storage_errors_total {}\n",
            self.storage_errors()
        );
        if let Some(d) = devices {
            let _ = write!(
                out,
                "# HELP edge_metrics_config_server_devices_seen Devices that fetched or pushed \
                 their config in the last 5 minutes.\n\
                 # TYPE edge_metrics_config_server_devices_seen gauge\n\
                 edge_metrics_config_server_devices_seen {}\n\
                 # HELP edge_metrics_config_server_devices Devices the store knows.\n\
                 # TYPE edge_metrics_config_server_devices gauge\n\
                 edge_metrics_config_server_devices {}\n",
                d.seen_recently, d.known
            );
        }
        let _ = write!(
            out,
            "# HELP edge_metrics_config_server_build_info The running server: version and \
             storage backend.\n# TYPE edge_metrics_config_server_build_info gauge\n\
             edge_metrics_config_server_build_info{{version=\"{}\",database=\"{database}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_with_help_and_type() {
        let s = Stats::default();
        s.request("GET /config/{device}", 200);
        s.request("GET /config/{device}", 200);
        s.request("PUT /defaults", 412);
        s.storage_error();
        let text = s.render(
            "sqlite",
            Some(DeviceCounts {
                seen_recently: 3,
                known: 5,
            }),
        );
        assert!(text.contains(
            "edge_metrics_config_server_requests_total{route=\"GET /config/{device}\",code=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "edge_metrics_config_server_requests_total{route=\"PUT /defaults\",code=\"412\"} 1\n"
        ));
        assert!(text.contains("edge_metrics_config_server_storage_errors_total 1\n"));
        assert!(text.contains("edge_metrics_config_server_devices_seen 3\n"));
        assert!(text.contains("edge_metrics_config_server_devices 5\n"));
        for family in [
            "requests_total",
            "storage_errors_total",
            "devices_seen",
            "devices",
            "build_info",
        ] {
            let name = format!("edge_metrics_config_server_{family}");
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        // Without the store's answer the gauges are left out, not shown as zero.
        assert!(!s.render("sqlite", None).contains("devices_seen"));
    }
}
