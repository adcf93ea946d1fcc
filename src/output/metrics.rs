//! The Prometheus metrics of `sync` and `demo`, served at `/metrics` by `output::endpoint`.
//!
//! Why it is shaped this way: the writer thread applies hundreds of thousands of rows a
//! second, so it feeds `Metrics` once per commit (pre-resolved counters and two histogram
//! observations: atomic adds), and per-table copy counts only after a commit that copied rows
//! (read from its own connection, the one that wrote them). Everything that is a reading
//! rather than an event (lag, timestamps, file sizes, state, process figures) is computed
//! when scraped (`output::exposition`), from `Progress` atomics and `fs::metadata`: the HTTP side
//! never opens the mirror. The `prometheus` crate writes the text format (0.0.4, the one
//! `promtool check metrics` reads).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts};

use crate::error::Class;
use crate::source::phase::Phase;

/// Transactions and row changes of one phase in one commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub transactions: u64,
    pub rows: u64,
}

/// What one SQLite commit held and how long it took.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommitMeasure {
    /// By `Phase::index`.
    pub applied: [Applied; 3],
    pub rows: usize,
    pub duration: Duration,
}

/// A table's copy on one shard, labelled as the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyLabels {
    pub keyspace: String,
    pub shard: String,
    pub table: String,
}

/// Seconds; commits range from a few rows (≈ 100 µs) to 20,000-row copy batches and fsyncs.
const COMMIT_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Row changes per commit; the default `--max-batch-rows` is 20,000.
const BATCH_BUCKETS: [f64; 10] = [
    1.0, 10.0, 100.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0, 50000.0,
];

/// Event metrics, fed by the writer thread and the sync loop.
pub struct Metrics {
    rows_applied: IntCounterVec,
    transactions_applied: IntCounterVec,
    /// (rows, transactions) per `Phase::index`, resolved once.
    by_phase: [(IntCounter, IntCounter); 3],
    commit_duration: Histogram,
    batch_rows: Histogram,
    copy_rows: IntCounterVec,
    copy_completed: IntGaugeVec,
    /// The label sets of `copy_rows` and `copy_completed` (to drop those of a dropped table).
    copy_labels: Mutex<BTreeSet<[String; 3]>>,
    reconnects: IntCounter,
    errors: IntCounterVec,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Metric names and labels are constants: a failure here is a bug, caught by the unit tests.
const VALID: &str = "constant metric options are valid";

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect(VALID)
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec())).expect(VALID)
}

impl Default for Metrics {
    fn default() -> Self {
        let rows_applied = counter_vec(
            "vtmirror_rows_applied_total",
            "Row changes committed to the mirror, by phase (copy, catch-up, replication).",
            &["phase"],
        );
        let transactions_applied = counter_vec(
            "vtmirror_transactions_applied_total",
            "Source transactions committed to the mirror, by phase (copy batches count as transactions).",
            &["phase"],
        );
        let by_phase = Phase::ALL.map(|p| {
            (
                rows_applied.with_label_values(&[p.name()]),
                transactions_applied.with_label_values(&[p.name()]),
            )
        });
        let errors = counter_vec(
            "vtmirror_errors_total",
            "Errors that ended a stream: transient ones are retried, a definite one stops the sync.",
            &["class"],
        );
        for class in ["transient", "definite"] {
            errors.with_label_values(&[class]);
        }
        Metrics {
            rows_applied,
            transactions_applied,
            by_phase,
            commit_duration: histogram(
                "vtmirror_commit_duration_seconds",
                "Time of one SQLite commit: metadata writes and COMMIT.",
                &COMMIT_BUCKETS,
            ),
            batch_rows: histogram(
                "vtmirror_batch_rows",
                "Row changes per SQLite commit.",
                &BATCH_BUCKETS,
            ),
            copy_rows: counter_vec(
                "vtmirror_copy_rows_total",
                "Rows copied into the mirror per table and shard, since the mirror was created.",
                &["keyspace", "shard", "table"],
            ),
            copy_completed: IntGaugeVec::new(
                Opts::new(
                    "vtmirror_copy_completed",
                    "1 once the copy of the table on the shard has finished.",
                ),
                &["keyspace", "shard", "table"],
            )
            .expect(VALID),
            copy_labels: Mutex::new(BTreeSet::new()),
            reconnects: IntCounter::new(
                "vtmirror_reconnects_total",
                "Streams restarted from the stored checkpoint after a transient error.",
            )
            .expect(VALID),
            errors,
        }
    }
}

impl Metrics {
    /// After a successful COMMIT.
    pub fn committed(&self, commit: &CommitMeasure) {
        for ((rows, transactions), applied) in self.by_phase.iter().zip(&commit.applied) {
            if applied.transactions > 0 || applied.rows > 0 {
                rows.inc_by(applied.rows);
                transactions.inc_by(applied.transactions);
            }
        }
        self.commit_duration.observe(commit.duration.as_secs_f64());
        self.batch_rows.observe(commit.rows as f64);
    }

    /// Sets the copy counts to the committed copy state (rows copied, finished or not).
    pub fn set_copy_states(&self, states: &[(CopyLabels, i64, bool)]) {
        let mut known = self.copy_labels.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = BTreeSet::new();
        for (labels, rows, done) in states {
            let values = [
                labels.keyspace.clone(),
                labels.shard.clone(),
                labels.table.clone(),
            ];
            let rows = (*rows).max(0) as u64;
            let counter = self.copy_rows.with_label_values(&values);
            if rows < counter.get() {
                // A table copied again from scratch: a counter reset, as Prometheus reads one.
                counter.reset();
            }
            counter.inc_by(rows - counter.get());
            (self.copy_completed.with_label_values(&values)).set(i64::from(*done));
            seen.insert(values);
        }
        for gone in known.difference(&seen) {
            let _ = self.copy_rows.remove_label_values(gone);
            let _ = self.copy_completed.remove_label_values(gone);
        }
        *known = seen;
    }

    pub fn error(&self, class: Class) {
        let name = match class {
            Class::Transient => "transient",
            Class::Definite => "definite",
        };
        self.errors.with_label_values(&[name]).inc();
    }

    pub fn reconnected(&self) {
        self.reconnects.inc();
    }

    pub(crate) fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.rows_applied.clone()),
            Box::new(self.transactions_applied.clone()),
            Box::new(self.commit_duration.clone()),
            Box::new(self.batch_rows.clone()),
            Box::new(self.copy_rows.clone()),
            Box::new(self.copy_completed.clone()),
            Box::new(self.reconnects.clone()),
            Box::new(self.errors.clone()),
        ]
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
