//! Samples out of Prometheus text exposition.

use std::net::SocketAddr;

/// The value of the first sample of `name` (any labels) in Prometheus text.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The value of the sample whose name and labels are exactly `series` as printed, e.g.
/// `power_total_watts{device_type="jetson_orin",hostname="edge-01"}`.
pub fn series(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().ok())?
    })
}

/// `GET /metrics` on `addr`: the text; panics unless it answers 200.
pub fn scrape(addr: SocketAddr) -> String {
    let r = crate::http::get(addr, "/metrics")
        .unwrap_or_else(|e| panic!("GET /metrics on {addr}: {e}"));
    assert_eq!(r.status, 200, "GET /metrics on {addr}: {}", r.body);
    r.body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_and_exact_series() {
        let text = "# HELP power_total_watts x\npower_total_watts{hostname=\"e\"} 45.3\n\
                    power_total_watts_x 1\nup 1\n";
        assert_eq!(sample(text, "power_total_watts"), Some(45.3));
        assert_eq!(sample(text, "up"), Some(1.0));
        assert_eq!(sample(text, "power_voltage_volts"), None);
        assert_eq!(
            series(text, "power_total_watts{hostname=\"e\"}"),
            Some(45.3)
        );
        assert_eq!(series(text, "power_total_watts"), None);
    }
}
