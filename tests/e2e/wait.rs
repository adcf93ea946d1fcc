//! `vtmirror wait` (read-your-writes) on real Vitess: keyspace `things` (-80, 80-), a sync
//! running as a child process, and cycles of write → wait → read the mirror. Every row
//! written before a wait must be in the mirror when it returns (stale reads: 0); a write to a
//! table the mirror does not select must not leave a wait hanging; a stopped sync makes
//! `--timeout` exit 3. Prints the wait latency and the mirror's own lag (write → row visible,
//! polled without `wait`). `VTMIRROR_WAIT_CYCLES` sets the number of cycles (default 1000).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use vtmirror::commands::wait::{run, WaitFor, WaitOptions, WaitOutcome};

use crate::support::vitess::{run_sql, sync_process, Cleanup, Cluster, KillOnDrop};

const SHARDS: [&str; 2] = ["-80", "80-"];
/// Every this many cycles the real binary waits instead of the library call.
const BINARY_EVERY: usize = 100;
/// Every this many cycles only the unselected table is written before the wait.
const UNSELECTED_EVERY: usize = 50;

fn cycles() -> usize {
    (std::env::var("VTMIRROR_WAIT_CYCLES").ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn wait_for_source(c: &Cluster, db: &Path, timeout: Duration) -> WaitOptions {
    WaitOptions {
        db: db.to_path_buf(),
        wait_for: WaitFor::Source {
            vtgate: c.grpc.as_str().into(),
            caller_id: None,
        },
        timeout,
    }
}

/// `vtmirror wait` as a process: its exit code and stderr.
fn wait_binary(grpc: &str, db: &Path, timeout_secs: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args(["wait", "--vtgate", grpc, "--timeout", timeout_secs])
        .arg("--db")
        .arg(db)
        .output()
        .expect("vtmirror wait runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn rows_with_id(mirror: &rusqlite::Connection, id: i64) -> i64 {
    (mirror.query_row("SELECT count(*) FROM wt_rows WHERE id = ?1", [id], |r| {
        r.get(0)
    }))
    .expect("the mirror answers")
}

/// The value at quantile `q` of sorted `values`, in milliseconds.
fn quantile_ms(values: &[Duration], q: f64) -> f64 {
    let i = ((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1;
    values[i].as_secs_f64() * 1000.0
}

fn summary(name: &str, values: &mut [Duration]) -> String {
    values.sort();
    format!(
        "{name}: n={} p50={:.1} ms p99={:.1} ms max={:.1} ms",
        values.len(),
        quantile_ms(values, 0.50),
        quantile_ms(values, 0.99),
        quantile_ms(values, 1.0)
    )
}

/// What the cycles saw: wait latencies after writes to the mirrored and to the unselected
/// table (library calls), the real binary's waits, and the ids missing right after a wait.
#[derive(Default)]
struct Cycles {
    waits: Vec<Duration>,
    unselected_waits: Vec<Duration>,
    /// Through the real binary (process start included), counted apart.
    binary_waits: Vec<Duration>,
    stale: Vec<i64>,
}

impl Cycles {
    fn print(&mut self, lags: &[Duration]) {
        let checked = self.waits.len() + self.binary_waits.len();
        println!(
            "vtmirror wait on real Vitess ({} cycles, things -80/80-, sync --tablet-type primary):",
            cycles()
        );
        println!("  stale reads: {} of {checked}", self.stale.len());
        let lines = [
            (
                "wait latency, library call (write acknowledged → wait returned)",
                &mut self.waits,
            ),
            (
                "wait latency after a write to an unselected table",
                &mut self.unselected_waits,
            ),
            (
                "wait latency, the vtmirror binary (process start included)",
                &mut self.binary_waits,
            ),
            (
                "mirror lag (write acknowledged → row visible, no wait)",
                &mut lags.to_vec(),
            ),
        ];
        for (name, values) in lines {
            println!("  {}", summary(name, values));
        }
    }
}

/// The mirror and the means to write and wait: the sync, the shards' sessions, a reader.
struct Bench<'a> {
    c: &'a Cluster,
    db: std::path::PathBuf,
    sync: KillOnDrop,
    runtime: tokio::runtime::Runtime,
    conns: [mysql::Conn; 2],
    mirror: rusqlite::Connection,
}

#[test]
fn every_row_written_before_wait_is_in_the_mirror_when_it_returns() {
    let Some(c) = crate::support::vitess::cluster("") else {
        return;
    };
    let _cleanup = Cleanup::new(&c)
        .then("things", "DROP TABLE IF EXISTS wt_rows")
        .then("things", "DROP TABLE IF EXISTS wt_other");
    let dir = tempfile::tempdir().unwrap();
    let mut bench = Bench::start(&c, &dir.path().join("wait.db"));
    let mut seen = Cycles::default();
    for cycle in 0..cycles() {
        bench.cycle(cycle, &mut seen);
    }
    let lags = bench.mirror_lags(200);
    seen.print(&lags);
    assert!(
        seen.stale.is_empty(),
        "rows missing right after wait returned: {:?}",
        seen.stale
    );
    bench.a_stopped_sync_times_out();
}

impl<'a> Bench<'a> {
    /// Creates the tables, starts the sync (only `wt_rows` selected) and waits for its copy.
    fn start(c: &'a Cluster, db: &Path) -> Bench<'a> {
        run_sql(
            &mut c.sql("things"),
            &[
                "DROP TABLE IF EXISTS wt_rows",
                "DROP TABLE IF EXISTS wt_other",
                "CREATE TABLE wt_rows (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(64))",
                "CREATE TABLE wt_other (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(64))",
            ],
        );
        let extra = ["--tablet-type", "primary", "--tables", "wt_rows"];
        let mut sync = KillOnDrop(sync_process(&c.grpc, "things", db, &extra));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // A missing file is an error for wait (exit 2): let the sync create it first.
        let created = Instant::now();
        while vtmirror::mirror::store::open_read_only(db).is_err() {
            sync.assert_running("before creating the mirror");
            assert!(
                created.elapsed() < Duration::from_secs(60),
                "no mirror file after 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The first wait also waits for the copy to complete.
        let first = runtime.block_on(run(&wait_for_source(c, db, Duration::from_secs(120))));
        assert!(
            matches!(first, Ok(WaitOutcome::Reached { .. })),
            "{first:?}"
        );
        let read_only = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        Bench {
            c,
            db: db.to_path_buf(),
            sync,
            runtime,
            conns: SHARDS.map(|s| c.sql(&format!("things:{s}"))),
            mirror: rusqlite::Connection::open_with_flags(db, read_only).unwrap(),
        }
    }

    /// One write (on alternating shards; every `UNSELECTED_EVERY`th to the unselected table),
    /// one wait (every `BINARY_EVERY`th through the binary), one read of the mirror.
    fn cycle(&mut self, cycle: usize, seen: &mut Cycles) {
        self.sync.assert_running(&format!("at cycle {cycle}"));
        let id = cycle as i64 + 1;
        let unselected = cycle % UNSELECTED_EVERY == UNSELECTED_EVERY - 1;
        let table = if unselected { "wt_other" } else { "wt_rows" };
        let sql = format!("INSERT INTO {table} (id, v) VALUES ({id}, 'c{cycle}')");
        self.conns[cycle % 2].query_drop(sql).unwrap();
        let started = Instant::now();
        if cycle % BINARY_EVERY == BINARY_EVERY - 2 {
            let (code, stderr) = wait_binary(&self.c.grpc, &self.db, "30");
            assert_eq!(code, Some(0), "vtmirror wait at cycle {cycle}: {stderr}");
        } else {
            let opts = wait_for_source(self.c, &self.db, Duration::from_secs(30));
            match self.runtime.block_on(run(&opts)) {
                Ok(WaitOutcome::Reached { .. }) => {}
                other => panic!("wait at cycle {cycle} (unselected: {unselected}): {other:?}"),
            }
        }
        let waited = started.elapsed();
        if cycle % BINARY_EVERY == BINARY_EVERY - 2 {
            seen.binary_waits.push(waited);
        } else if unselected {
            seen.unselected_waits.push(waited);
        } else {
            seen.waits.push(waited);
        }
        if !unselected && rows_with_id(&self.mirror, id) != 1 {
            seen.stale.push(id);
        }
    }

    /// A stopped sync: a write after it is never reached, so the wait times out with exit 3.
    fn a_stopped_sync_times_out(mut self) {
        self.sync.sigkill("before the timeout check");
        self.conns[0]
            .query_drop("INSERT INTO wt_rows (id, v) VALUES (-1, 'after the sync stopped')")
            .unwrap();
        let started = Instant::now();
        let (code, stderr) = wait_binary(&self.c.grpc, &self.db, "1");
        assert_eq!(code, Some(3), "a stopped sync times out: {stderr}");
        assert!(
            stderr.contains("timed out") && stderr.contains("things/-80"),
            "{stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(rows_with_id(&self.mirror, -1), 0);
        // An unreachable vtgate is an error: exit 2, one line.
        let (code, stderr) = wait_binary("127.0.0.1:1", &self.db, "1");
        assert_eq!(code, Some(2), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains("vtgate is unreachable"), "{stderr}");
    }

    /// Write → row visible in the mirror, polled every 0.5 ms without `wait`: how far the
    /// mirror itself trails the source (what a wait cannot beat).
    fn mirror_lags(&mut self, count: i64) -> Vec<Duration> {
        let mut lags = Vec::new();
        for i in 0..count {
            let id = 10_000_000 + i;
            let sql = format!("INSERT INTO wt_rows (id, v) VALUES ({id}, 'lag')");
            self.conns[(i % 2) as usize].query_drop(sql).unwrap();
            let started = Instant::now();
            while rows_with_id(&self.mirror, id) == 0 {
                assert!(
                    started.elapsed() < Duration::from_secs(30),
                    "row {id} never arrived"
                );
                self.sync.assert_running("while measuring lag");
                std::thread::sleep(Duration::from_micros(500));
            }
            lags.push(started.elapsed());
        }
        lags
    }
}
