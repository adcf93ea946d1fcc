//! A copy the tablets cut into short cycles. vttablet puts `MAX_EXECUTION_TIME` of its
//! `--vreplication-copy-phase-duration` on the copy's SELECT (rowstreamer.go, Vitess v24);
//! MySQL ends the SELECT when that runs out (error 3024), and vtgate starts the shard's stream
//! again from the last VGTID it sent, whose `table_p_ks` say where the copy stood, each time
//! after a catch-up from a new snapshot. Tablets restarted with a phase of 300 ms cut an
//! 800k-row copy many times, under writes and a SIGKILL of the sync; the mirror must still
//! equal the source.

use std::time::{Duration, Instant};

use mysql::prelude::Queryable;

use super::harness::*;
use crate::support::vitess::*;

const TABLE: &str = "cc_rows";
const SEEDED: i64 = 100_000;
/// Doublings of the seeded rows: 800k rows.
const DOUBLINGS: u32 = 3;

/// Times vtgate's log says it started a stream again after MySQL ended the copy's SELECT (the
/// error's text is on the line after "error, retrying").
fn copy_cycles_in_vtgate_log() -> usize {
    let Some(log) = env_file().get("RESHARD_VTGATE_LOG").cloned() else {
        return 0;
    };
    (std::fs::read_to_string(log).unwrap_or_default().lines())
        .filter(|l| l.contains("maximum statement execution time exceeded (errno 3024)"))
        .count()
}

/// The tablets run with the default copy phase again when the test ends, also when it fails.
struct DefaultPhaseAtEnd;

impl Drop for DefaultPhaseAtEnd {
    fn drop(&mut self) {
        script(&["restart-tablets", KEYSPACE]);
    }
}

fn seed(c: &Cluster) -> i64 {
    fresh_table(c, TABLE, SEEDED);
    let mut conn = c.sql(KEYSPACE);
    let mut rows = SEEDED;
    for _ in 0..DOUBLINGS {
        conn.query_drop(format!(
            "INSERT INTO {TABLE} (id, v) SELECT id + {rows}, concat('fo', id + {rows}) FROM {TABLE}"
        ))
        .expect("doubling the table");
        rows *= 2;
    }
    rows
}

#[test]
fn a_copy_cut_into_short_cycles_by_the_tablets_loses_and_duplicates_nothing() {
    let Some(c) = cluster("RESHARD_") else { return };
    let rows = seed(&c);
    let phase = "300ms";
    script(&[
        "restart-tablets",
        KEYSPACE,
        "--vreplication-copy-phase-duration",
        phase,
    ]);
    let _restore = DefaultPhaseAtEnd;
    // A restarted replica reloads its schema; ask anyway, as for any new table.
    vtctld(&["ReloadSchemaKeyspace", KEYSPACE]);
    let dir = tempfile::tempdir().unwrap();
    let mut writes = Writes::start(&c, TABLE, rows);
    let mut report = Vec::new();
    for tablet_type in ["replica", "primary"] {
        let cycles_before = copy_cycles_in_vtgate_log();
        let began = Instant::now();
        let mut m = Mirror::new(
            dir.path().join(format!("{tablet_type}.db")),
            tablet_type,
            TABLE,
        );
        m.start(&c.grpc);
        m.wait_for_phase("copy");
        std::thread::sleep(Duration::from_millis(1_500));
        m.sigkill("in the copy's cycles");
        m.start(&c.grpc);
        m.wait_for_phase("replication");
        let copied = began.elapsed();
        m.converges("the copy");
        m.sigkill("in replication");
        writes.pause();
        let equal = m.equals_the_source(&c);
        writes.resume(&c);
        let cycles = copy_cycles_in_vtgate_log() - cycles_before;
        report.push(format!(
            "{tablet_type}: {rows} rows copied in {copied:.1?} with one SIGKILL; vtgate started the copy's stream again {cycles} times; {equal} rows equal to the source"
        ));
        assert!(
            cycles >= 2,
            "{tablet_type}: the tablets cut the copy {cycles} times, the test needs several"
        );
    }
    writes.pause();
    println!(
        "copy in {phase} cycles ({} write rounds):\n  {}",
        writes.rounds,
        report.join("\n  ")
    );
    run_sql(&mut c.sql(KEYSPACE), &[&format!("DROP TABLE {TABLE}")]);
}
