//! Every `curl` example in docs/API.md's `bash` blocks runs against a live exporter and
//! succeeds (the documented ports replaced by the test's).

mod common;

use std::time::Duration;

use common::*;

/// The curl commands of the `bash` blocks, continuation lines joined.
fn curl_examples(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_bash = false;
    let mut current = String::new();
    for line in doc.lines() {
        if line.starts_with("```") {
            in_bash = line.trim() == "```bash";
            continue;
        }
        if !in_bash {
            continue;
        }
        let trimmed = line.trim();
        if current.is_empty() && !trimmed.starts_with("curl ") {
            continue;
        }
        if let Some(part) = trimmed.strip_suffix('\\') {
            current.push_str(part);
            current.push(' ');
        } else {
            current.push_str(trimmed);
            out.push(std::mem::take(&mut current));
        }
    }
    out
}

#[test]
fn the_curl_examples_in_the_api_doc_succeed() {
    let Some(_) = test_support::require::tool("curl", "apt-get install -y curl") else {
        return;
    };
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/API.md")).unwrap();
    let examples = curl_examples(&doc);
    for path in [
        "/health",
        "/config",
        "/metrics/list",
        "/metrics/enable",
        "/reload",
        ":9102/metrics",
    ] {
        assert!(
            examples.iter().any(|e| e.contains(path)),
            "no curl example for {path}"
        );
    }
    let setup = Setup::new(
        &orin_corpus(),
        "metrics:\n  jetson_gpu_usage_percent: false\n  jetson_cpu_avg_usage_percent: false\n  jetson_temp_gpu_celsius: true\n",
    );
    let exp = setup.start_with_env(&[("EDGE_METRICS_API_TOKEN", "doc-token")]);
    wait_for(Duration::from_secs(10), "first cycle", || {
        (exp.scrape().body.contains("collector_up")).then_some(())
    });
    for example in &examples {
        let cmd = example
            .replace("localhost:9101", &exp.api.to_string())
            .replace("localhost:9102", &exp.metrics.to_string())
            .replacen("curl ", "curl --fail-with-body -sS --max-time 10 ", 1);
        let out = std::process::Command::new("bash")
            .args(["-c", &cmd])
            .env("TOKEN", "doc-token")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "example failed: {example}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list = exp
        .api(
            "GET",
            "/metrics/list",
            &[("Authorization", "Bearer doc-token")],
            None,
        )
        .json();
    assert_eq!(
        list["metrics"]["jetson_gpu_usage_percent"], true,
        "the enable example applied"
    );
}
