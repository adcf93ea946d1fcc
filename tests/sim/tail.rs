//! `vtmirror tail` against the simulated vtgate, through the real gRPC path.

use std::time::Duration;

use crate::support::*;
use tonic::Code;
use vtmirror::commands::tail::{vgtid_text, Format};
use vtmirror::sim::TxnSpec;

const LIMIT: Duration = Duration::from_secs(20);

fn vgtid_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("VGTID after event:"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_transaction_prints_its_time_a_row_table_and_the_vgtid_after_it() {
    let (model, server) = source(20).await;
    let start = model.positions();
    model
        .apply(&TxnSpec::new().insert("customer", customer_row(9_001, "a@example.com")))
        .unwrap();
    let after = model.positions();
    let opts = tail_options(&server.endpoint(), start, Format::Text, Some(1));
    let (result, out, notices) = run_tail(opts, LIMIT).await;
    result.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("Event log timestamp: ") && lines[0].ends_with(" +0000 UTC"),
        "{out}"
    );
    assert_eq!(
        lines[1], lines[3],
        "the table is boxed by +---+ lines:\n{out}"
    );
    let header: Vec<&str> = lines[2].split('|').map(str::trim).collect();
    assert_eq!(
        header,
        ["", "table", "op", "customer_id", "email", "created", ""]
    );
    let row: Vec<&str> = lines[4].split('|').map(str::trim).collect();
    assert_eq!(
        row,
        [
            "",
            "commerce.customer",
            "INSERT",
            "9001",
            "a@example.com",
            "2024-01-02 03:04:05.000000",
            ""
        ]
    );
    assert_eq!(
        lines[6],
        format!("VGTID after event:  {}", vgtid_text(&after))
    );
    assert!(notices.starts_with("vtgate connected: "), "{notices}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_has_one_object_per_row_change_and_per_commit_with_updates_showing_both_images()
{
    let (model, server) = source(20).await;
    let start = model.positions();
    model
        .apply(&TxnSpec::new().insert("customer", customer_row(9_002, "old@example.com")))
        .unwrap();
    model
        .apply(&TxnSpec::new().update("customer", customer_row(9_002, "new@example.com")))
        .unwrap();
    model
        .apply(&TxnSpec::new().delete("customer", 9_002))
        .unwrap();
    let opts = tail_options(&server.endpoint(), start, Format::Json, Some(3));
    let (result, out, _) = run_tail(opts, LIMIT).await;
    result.unwrap();
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["row", "commit", "row", "commit", "row", "commit"]);
    assert_eq!(events[0]["op"], "insert");
    assert_eq!(events[2]["op"], "update");
    assert_eq!(events[2]["before"]["email"], "old@example.com");
    assert_eq!(events[2]["after"]["email"], "new@example.com");
    assert_eq!(events[4]["op"], "delete");
    assert_eq!(events[4]["after"], serde_json::Value::Null);
    assert_eq!(
        positions_of(&events[5]["vgtid"]),
        positions(&model.positions())
    );
}

fn positions_of(vgtid: &serde_json::Value) -> std::collections::BTreeMap<String, String> {
    vgtid["shard_gtids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["shard"].as_str().unwrap().to_string(),
                s["gtid"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_shard_is_retried_with_a_visible_message() {
    let (model, server) = source(20).await;
    let start = model.positions();
    model.apply_random_transactions(2);
    server.faults().reject_next_requests(
        2,
        Code::Unavailable,
        "target: commerce.-80.replica: no valid tablet",
    );
    let opts = tail_options(&server.endpoint(), start, Format::Text, Some(2));
    let (result, out, notices) = run_tail(opts, LIMIT).await;
    result.unwrap();
    let retries: Vec<&str> = notices
        .lines()
        .filter(|l| {
            l.starts_with(
                "remote error: Code: Unavailable: target: commerce.-80.replica: no valid tablet",
            )
        })
        .collect();
    assert_eq!(retries.len(), 2, "{notices}");
    assert!(notices.contains(", retrying in "), "{notices}");
    assert_eq!(vgtid_lines(&out).len(), 2, "{out}");
}

/// Customer ids that all live on the first shard, so each source transaction is one stream
/// transaction.
fn ids_on_one_shard(model: &vtmirror::sim::SharedModel, n: usize) -> Vec<i64> {
    let first = model.read(|m| m.shard_of(9_000));
    (9_000..)
        .filter(|&id| model.read(|m| m.shard_of(id)) == first)
        .take(n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_anywhere_resumes_without_repeating_or_skipping_a_row() {
    let (model, server) = source(20).await;
    let start = model.positions();
    let ids = ids_on_one_shard(&model, 12);
    for pair in ids.chunks(2) {
        let spec = TxnSpec::new()
            .insert("customer", customer_row(pair[0], "x@example.com"))
            .insert("customer", customer_row(pair[1], "y@example.com"));
        model.apply(&spec).unwrap();
    }
    for cut in 2..14 {
        server
            .faults()
            .fail_after_events(cut, Code::Unavailable, "injected: tablet went away");
        let opts = tail_options(&server.endpoint(), start.clone(), Format::Json, Some(6));
        let (result, out, notices) = run_tail(opts, LIMIT).await;
        result.unwrap();
        assert!(
            notices.contains("injected: tablet went away"),
            "cut {cut}: {notices}"
        );
        let printed: Vec<i64> = out
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .filter(|e| e["event"] == "row")
            .map(|e| e["after"]["customer_id"].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(
            printed, ids,
            "cut after {cut} events: every row once, in order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_position_prints_every_existing_row_then_copy_completed() {
    let (model, server) = source(30).await;
    let mut opts = tail_options(
        &server.endpoint(),
        vtmirror::source::vgtid::fresh("commerce", ""),
        Format::Json,
        None,
    );
    opts.spec.rules = vtmirror::source::vstream::rules(&["accounts".to_string()], &[]);
    let (result, out, _) = run_tail(opts, Duration::from_secs(3)).await;
    result.unwrap();
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let rows = events.iter().filter(|e| e["event"] == "row").count();
    assert_eq!(rows, expected(&model, "accounts").len());
    assert!(events
        .iter()
        .all(|e| e["table"].is_null() || e["table"] == "accounts"));
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "copy_completed" && e["shard"].is_null()),
        "the final COPY_COMPLETED is printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definite_error_ends_tail_with_the_reason() {
    let (model, server) = source(10).await;
    server
        .faults()
        .reject_next_requests(1, Code::InvalidArgument, "injected: bad vgtid");
    let opts = tail_options(&server.endpoint(), model.positions(), Format::Text, Some(1));
    let (result, _, _) = run_tail(opts, LIMIT).await;
    let err = result.unwrap_err();
    assert!(
        format!("{err:#}").contains("injected: bad vgtid"),
        "{err:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_vtgate_is_an_error_not_a_retry_loop() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = listener.local_addr().unwrap().to_string();
    drop(listener);
    let opts = tail_options(
        &endpoint,
        vtmirror::source::vgtid::fresh("commerce", "current"),
        Format::Text,
        None,
    );
    let (result, _, _) = run_tail(opts, LIMIT).await;
    let err = result.unwrap_err();
    assert!(
        format!("{err:#}").contains("vtgate is unreachable"),
        "{err:#}"
    );
}
