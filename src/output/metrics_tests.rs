use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::output::exposition::Exposition;
use crate::output::progress::{Progress, SyncState};

/// Every metric family README.md documents (process figures come from the crate).
pub const DOCUMENTED: [&str; 23] = [
    "vtmirror_rows_applied_total",
    "vtmirror_transactions_applied_total",
    "vtmirror_lag_seconds",
    "vtmirror_last_commit_timestamp_seconds",
    "vtmirror_last_event_timestamp_seconds",
    "vtmirror_last_heartbeat_timestamp_seconds",
    "vtmirror_copy_rows_total",
    "vtmirror_copy_completed",
    "vtmirror_commit_duration_seconds",
    "vtmirror_batch_rows",
    "vtmirror_reconnects_total",
    "vtmirror_errors_total",
    "vtmirror_state",
    "vtmirror_db_size_bytes",
    "vtmirror_wal_size_bytes",
    "vtmirror_build_info",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
    "process_threads",
];

fn labels(table: &str) -> CopyLabels {
    CopyLabels {
        keyspace: "commerce".into(),
        shard: "-80".into(),
        table: table.into(),
    }
}

fn rendered(progress: &Arc<Progress>, db: &std::path::Path) -> String {
    Exposition::new(Arc::clone(progress), db.to_path_buf())
        .unwrap()
        .render()
        .unwrap()
}

#[test]
fn every_documented_metric_is_exposed_with_help_and_type() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    std::fs::write(&db, [0u8; 4096]).unwrap();
    let progress = Arc::new(Progress::default());
    progress
        .metrics
        .set_copy_states(&[(labels("customer"), 10, false)]);
    let text = rendered(&progress, &db);
    for name in DOCUMENTED {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} in:\n{text}"
        );
        assert!(text.contains(&format!("# HELP {name} ")), "{name}");
    }
    assert!(text.contains("vtmirror_db_size_bytes 4096\n"), "{text}");
    assert!(text.contains("vtmirror_wal_size_bytes 0\n"));
    assert!(
        text.contains("vtmirror_lag_seconds NaN\n"),
        "no lag while copying"
    );
    assert!(text.contains("vtmirror_state{state=\"starting\"} 1\n"));
    assert!(text.contains("vtmirror_state{state=\"failed\"} 0\n"));
    assert!(text.contains("vtmirror_errors_total{class=\"definite\"} 0\n"));
    assert!(text.contains("# TYPE vtmirror_commit_duration_seconds histogram\n"));
}

#[test]
fn a_commit_counts_rows_and_transactions_by_phase_and_observes_its_size_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let progress = Arc::new(Progress::default());
    let mut applied = [Applied::default(); 3];
    applied[Phase::Copy.index()] = Applied {
        transactions: 1,
        rows: 2000,
    };
    applied[Phase::CatchUp.index()] = Applied {
        transactions: 3,
        rows: 7,
    };
    progress.metrics.committed(&CommitMeasure {
        applied,
        rows: 2007,
        duration: Duration::from_millis(3),
    });
    progress.metrics.error(Class::Transient);
    progress.metrics.reconnected();
    progress.set_state(SyncState::Replicating);
    progress.stored(true, 1_000);
    let text = rendered(&progress, &dir.path().join("absent.db"));
    for line in [
        "vtmirror_rows_applied_total{phase=\"copy\"} 2000",
        "vtmirror_rows_applied_total{phase=\"catch-up\"} 7",
        "vtmirror_rows_applied_total{phase=\"replication\"} 0",
        "vtmirror_transactions_applied_total{phase=\"catch-up\"} 3",
        "vtmirror_batch_rows_bucket{le=\"2000\"} 0",
        "vtmirror_batch_rows_bucket{le=\"5000\"} 1",
        "vtmirror_batch_rows_sum 2007",
        "vtmirror_commit_duration_seconds_bucket{le=\"0.005\"} 1",
        "vtmirror_commit_duration_seconds_count 1",
        "vtmirror_errors_total{class=\"transient\"} 1",
        "vtmirror_reconnects_total 1",
        "vtmirror_state{state=\"replicating\"} 1",
        "vtmirror_last_event_timestamp_seconds 1000",
    ] {
        assert!(text.contains(&format!("{line}\n")), "{line} in:\n{text}");
    }
    let lag = text
        .lines()
        .find_map(|l| l.strip_prefix("vtmirror_lag_seconds "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("a lag once copied with a known event time");
    assert!(lag > 1.0e9, "now minus 1970 + 1000 s: {lag}");
}

#[test]
fn copy_counts_follow_the_committed_copy_state_including_a_restarted_or_dropped_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let progress = Arc::new(Progress::default());
    let metrics = &progress.metrics;
    metrics.set_copy_states(&[
        (labels("customer"), 500, false),
        (labels("corder"), 9, true),
    ]);
    metrics.set_copy_states(&[(labels("customer"), 800, true), (labels("corder"), 9, true)]);
    let text = rendered(&progress, &db);
    let customer = "{keyspace=\"commerce\",shard=\"-80\",table=\"customer\"}";
    assert!(
        text.contains(&format!("vtmirror_copy_rows_total{customer} 800\n")),
        "{text}"
    );
    assert!(text.contains(&format!("vtmirror_copy_completed{customer} 1\n")));
    // The table copied again from scratch, the other one dropped.
    metrics.set_copy_states(&[(labels("customer"), 20, false)]);
    let text = rendered(&progress, &db);
    assert!(
        text.contains(&format!("vtmirror_copy_rows_total{customer} 20\n")),
        "{text}"
    );
    assert!(text.contains(&format!("vtmirror_copy_completed{customer} 0\n")));
    assert!(!text.contains("table=\"corder\""), "{text}");
}

#[test]
fn the_readme_documents_every_exposed_metric() {
    let readme = include_str!("../../README.md");
    let progress = Arc::new(Progress::default());
    progress
        .metrics
        .set_copy_states(&[(labels("customer"), 1, false)]);
    let text = rendered(&progress, std::path::Path::new("absent.db"));
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert!(names.len() >= DOCUMENTED.len(), "{names:?}");
    for name in names {
        assert!(
            readme.contains(&format!("`{name}`")),
            "README.md does not document {name}"
        );
    }
}
