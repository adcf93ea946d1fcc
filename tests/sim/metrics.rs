//! `vtmirror sync --metrics-addr` against the simulated vtgate, scraped by a real Prometheus
//! (Debian's package; skipped with a reason when it is missing, unless `VTMIRROR_E2E=1`):
//! rows applied grow, the lag is a number, copy progress reaches completion, `promtool` finds
//! nothing wrong in `/metrics`, and `/readyz` follows the copy.

use std::time::{Duration, Instant};

use crate::support::prometheus::{binaries_or_skip, free_port, http_get, Prometheus};
use crate::support::sync_runner::BinarySync;
use crate::support::*;

/// Rows per table; 3 tables on 2 shards, copied 100 rows per response.
const ROWS_PER_TABLE: usize = 3_000;

/// Polls `check` every 200 ms until it holds (true) or `limit` passed (false).
async fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !check() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    true
}

/// `eventually`, or a panic with `what`, Prometheus's view of its target and the endpoint's
/// current metrics.
async fn until(
    limit: Duration,
    what: &str,
    (prometheus, addr): (&Prometheus, &str),
    check: impl FnMut() -> bool,
) {
    if !eventually(limit, check).await {
        let scraped = http_get(addr, "/metrics").map(|r| r.1).unwrap_or_default();
        panic!(
            "never true: {what}\nup: {:?}\nprometheus log:\n{}\n/metrics:\n{scraped}",
            prometheus.query("up"),
            prometheus.log()
        );
    }
}

/// Runs `promtool check metrics` on `text`: its complaints (empty when it finds none).
fn promtool_problems(promtool: &std::path::Path, text: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool starts");
    let mut stdin = child.stdin.take().expect("promtool's stdin");
    stdin.write_all(text.as_bytes()).expect("metrics written");
    drop(stdin);
    let out = child.wait_with_output().expect("promtool ends");
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        said
    } else {
        format!("exit {}: {said}", out.status)
    }
}

/// Every query of the example Grafana dashboard, its variables filled in.
fn dashboard_queries() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/grafana/vtmirror-dashboard.json"
    );
    let text = std::fs::read_to_string(path).expect("the dashboard is readable");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dashboard["panels"].as_array().expect("panels").clone();
    let exprs: Vec<String> = panels
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_string))
        .map(|e| {
            e.replace("$instance", ".+")
                .replace("$__rate_interval", "1m")
        })
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_sees_rows_grow_a_numeric_lag_and_the_copy_complete_while_readyz_follows()
{
    let Some(bins) = binaries_or_skip("the Prometheus test") else {
        return;
    };
    // Prometheus first: it makes its first scrape only about 5 s after it starts.
    let addr = format!("127.0.0.1:{}", free_port());
    let prometheus = Prometheus::start(&bins.prometheus, &addr);
    let ok = eventually(Duration::from_secs(15), || prometheus.value("up").is_some()).await;
    assert!(
        ok,
        "Prometheus never tried its target:\n{}",
        prometheus.log()
    );
    let (model, server) = source_with_batch(ROWS_PER_TABLE, 100).await;
    // About 5 s of copy, so that Prometheus and /readyz see it in progress.
    server.faults().set_max_responses_per_sec(Some(20.0));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let flags = ["--metrics-addr", &addr, "--heartbeat", "1", "--quiet"];
    let sync = BinarySync::spawn(&server.endpoint(), &db, &flags);
    let ok = eventually(Duration::from_secs(10), || {
        http_get(&addr, "/readyz").is_some()
    })
    .await;
    assert!(ok, "the endpoint never answered; log:\n{}", sync.log_text());
    let (status, reason) = http_get(&addr, "/readyz").expect("/readyz answers");
    assert_eq!(
        (status, reason.starts_with("not ready: copy in progress")),
        (503, true),
        "{reason}"
    );
    let copy_seen = "sum(vtmirror_copy_rows_total) > 0 and min(vtmirror_copy_completed) == 0";
    let seen = (&prometheus, addr.as_str());
    until(
        Duration::from_secs(10),
        "Prometheus sees the copy in progress",
        seen,
        || prometheus.value(copy_seen).is_some(),
    )
    .await;
    assert_eq!(
        http_get(&addr, "/readyz").map(|r| r.0),
        Some(503),
        "still copying"
    );
    server.faults().set_max_responses_per_sec(None);

    let total = (3 * ROWS_PER_TABLE) as f64;
    until(
        Duration::from_secs(15),
        "Prometheus sees every table copied",
        seen,
        || {
            prometheus.value("min(vtmirror_copy_completed)") == Some(1.0)
                && prometheus.value("sum(vtmirror_copy_rows_total)") == Some(total)
        },
    )
    .await;
    assert_eq!(
        prometheus.query("vtmirror_copy_completed").len(),
        6,
        "3 tables × 2 shards"
    );
    until(Duration::from_secs(10), "/readyz says ready", seen, || {
        http_get(&addr, "/readyz").is_some_and(|(s, body)| s == 200 && body.starts_with("ready:"))
    })
    .await;

    let before = prometheus
        .value("sum(vtmirror_rows_applied_total)")
        .expect("rows applied are scraped");
    assert!(
        before >= total,
        "{before} rows applied after copying {total}"
    );
    model.apply_random_transactions(100);
    until(
        Duration::from_secs(10),
        "replicated rows reach Prometheus",
        seen,
        || {
            prometheus
                .value("vtmirror_rows_applied_total{phase=\"replication\"}")
                .is_some_and(|v| v > 0.0)
                && prometheus
                    .value("sum(vtmirror_rows_applied_total)")
                    .is_some_and(|v| v > before)
        },
    )
    .await;
    let lag = prometheus
        .value("vtmirror_lag_seconds")
        .expect("a lag is scraped");
    assert!(lag.is_finite() && (0.0..=5.0).contains(&lag), "lag {lag}");
    assert_eq!(
        prometheus.value("vtmirror_state{state=\"replicating\"}"),
        Some(1.0)
    );
    assert!(prometheus
        .value("process_resident_memory_bytes")
        .is_some_and(|b| b > 0.0));

    for expr in dashboard_queries() {
        let series = prometheus.query(&expr);
        assert!(!series.is_empty(), "the dashboard query {expr} has no data");
    }

    let (status, text) = http_get(&addr, "/metrics").expect("/metrics answers");
    assert_eq!(status, 200);
    assert_eq!(
        promtool_problems(&bins.promtool, &text),
        "",
        "promtool on:\n{text}"
    );
    assert_eq!(http_get(&addr, "/healthz").map(|r| r.0), Some(200));
    assert!(sync.terminate().success());
    assert_mirror_equals_source(&db, &model);
    drop(prometheus);
}
