//! What production brings, against the real-tablet cluster (keyspace `onlineddl`, one shard,
//! a primary and a replica): `PlannedReparentShard` in the middle of a sync's copy and its
//! replication, streaming from the replica and from the primary, and vtgate SIGKILLed and
//! restarted, with writes going on and the sync SIGKILLed in between. Each mirror ends equal to
//! the source row by row; its stored checkpoint never moves backwards (each sample's GTID set
//! contains the one before); each fault says how long the sync took to commit again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::vitess::*;
use vtmirror::source::gtid_set::GtidSet;

const KEYSPACE: &str = "onlineddl";
const TABLE: &str = "fo_rows";
const ROWS: i64 = 200_000;

fn vtctld(args: &[&str]) -> String {
    let client = env_file()
        .get("VTMIRROR_VTCTLDCLIENT")
        .cloned()
        .expect("the cluster script names its vtctldclient wrapper");
    let out = Command::new(client)
        .args(args)
        .output()
        .expect("vtctldclient runs");
    assert!(
        out.status.success(),
        "vtctldclient {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (primary, replica) tablet aliases of the keyspace's one shard.
fn tablets() -> (String, String) {
    let listed = vtctld(&["GetTablets", "--keyspace", KEYSPACE, "--shard", "0"]);
    let alias_of = |kind: &str| {
        (listed.lines())
            .find(|l| l.split_whitespace().nth(3) == Some(kind))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no {kind} in {listed}"))
            .to_string()
    };
    (alias_of("primary"), alias_of("replica"))
}

/// Makes the replica the primary (and the primary a replica). Writes pause meanwhile: vtgate's
/// buffering does not hide every write of a reparent ("primary is serving but initially found
/// no available tablet"), and a failed write fails the test.
fn planned_reparent(writes: &mut Writes, c: &Cluster) -> Duration {
    writes.pause();
    let began = Instant::now();
    let (_, replica) = tablets();
    vtctld(&[
        "PlannedReparentShard",
        &format!("{KEYSPACE}/0"),
        "--new-primary",
        &replica,
    ]);
    writes.resume(c);
    began.elapsed()
}

fn restart_vtgate() {
    let out = Command::new("bash")
        .args(["scripts/vitess-local.sh", "restart-vtgate", "2"])
        .output()
        .expect("the cluster script runs");
    assert!(
        out.status.success(),
        "restart-vtgate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The stored checkpoint's GTID set per shard (none before the first commit).
fn stored_sets(db: &Path) -> BTreeMap<String, GtidSet> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let stored: Option<Vec<u8>> = conn
        .query_row("SELECT vgtid FROM _vtmirror_checkpoint", [], |r| r.get(0))
        .ok();
    let Some(bytes) = stored else {
        return BTreeMap::new();
    };
    let vgtid = vtmirror::mirror::checkpoint::decode(&bytes).unwrap();
    (vgtid.shard_gtids.iter())
        .filter_map(|s| Some((s.shard.clone(), GtidSet::from_position(&s.gtid).ok()??)))
        .collect()
}

/// Writes through vtgate, paused while vtgate is down (a write that fails fails the test);
/// each resumption inserts keys of its own.
struct Writes {
    writer: Option<Writer>,
    resumed: i64,
    rounds: u64,
}

impl Writes {
    fn resume(&mut self, c: &Cluster) {
        let keys = 9_000_000 + 10_000_000 * self.resumed;
        let target = WriteTarget::new(KEYSPACE, TABLE, ("id", "v"), 1..=ROWS, keys);
        self.writer = Some(Writer::start(c, &[target]));
        self.resumed += 1;
    }

    fn pause(&mut self) {
        if let Some(writer) = self.writer.take() {
            self.rounds += writer.stop();
        }
    }

    /// Pauses the writes around a vtgate restart.
    fn around_restart(&mut self, c: &Cluster) {
        self.pause();
        restart_vtgate();
        self.resume(c);
    }
}

/// A mirror's sync under faults: its process, and the checks on its checkpoint.
struct Mirror {
    db: PathBuf,
    tablet_type: &'static str,
    seen: BTreeMap<String, GtidSet>,
    sync: Option<KillOnDrop>,
}

impl Mirror {
    fn start(&mut self, grpc: &str) {
        let args = ["--tablet-type", self.tablet_type, "--tables", TABLE];
        self.sync = Some(KillOnDrop(sync_process(grpc, KEYSPACE, &self.db, &args)));
    }

    /// Asserts the checkpoint contains every earlier one.
    fn observe(&mut self, context: &str) {
        for (shard, set) in stored_sets(&self.db) {
            if let Some(before) = self.seen.get(&shard) {
                assert!(
                    set.contains(before),
                    "{context}: checkpoint of {shard} moved backwards"
                );
            }
            self.seen.insert(shard, set);
        }
    }

    fn transactions(&self) -> i64 {
        let conn = rusqlite::Connection::open(&self.db).unwrap();
        conn.query_row(
            "SELECT coalesce(max(transactions), 0) FROM _vtmirror_checkpoint",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0)
    }

    /// Waits until the sync commits again after a fault; returns how long that took.
    fn converges(&mut self, fault: &str) -> Duration {
        let (began, before) = (Instant::now(), self.transactions());
        while self.transactions() == before {
            if let Some(sync) = self.sync.as_mut() {
                sync.assert_running(&format!("after {fault}"));
            }
            assert!(
                began.elapsed() < Duration::from_secs(120),
                "no commit 120 s after {fault}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        self.observe(fault);
        began.elapsed()
    }

    fn sigkill(&mut self, context: &str) {
        if let Some(mut sync) = self.sync.take() {
            sync.sigkill(context);
        }
        assert_intact(&self.db, context);
        self.observe(context);
    }
}

#[test]
fn reparents_and_vtgate_restarts_during_copy_and_replication_lose_nothing() {
    let Some(c) = cluster("RESHARD_") else { return };
    let mut conn = c.sql(KEYSPACE);
    run_sql(
        &mut conn,
        &[
            &format!("DROP TABLE IF EXISTS {TABLE}"),
            &format!(
                "CREATE TABLE {TABLE} (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(40) NOT NULL)"
            ),
        ],
    );
    seed_rows(&mut conn, TABLE, ("id", "v"), 1..=ROWS, "fo");
    // The replica's schema engine learns of a new table on its own schedule; a VStream Copy
    // from it before that fails with "table … is not present in the database".
    vtctld(&["ReloadSchemaKeyspace", KEYSPACE]);
    let dir = tempfile::tempdir().unwrap();
    let mut mirrors: Vec<Mirror> = ["replica", "primary"]
        .into_iter()
        .map(|tablet_type| Mirror {
            db: dir.path().join(format!("{tablet_type}.db")),
            tablet_type,
            seen: BTreeMap::new(),
            sync: None,
        })
        .collect();
    let mut writes = Writes {
        writer: None,
        resumed: 0,
        rounds: 0,
    };
    writes.resume(&c);
    let mut report = Vec::new();
    for m in &mut mirrors {
        // During the copy: a reparent, then a SIGKILL.
        m.start(&c.grpc);
        m.sync.as_mut().unwrap().wait_for_phase(&m.db, "copy");
        let phase = stored_phase(&m.db);
        let took = planned_reparent(&mut writes, &c);
        let converged = m.converges("a reparent during the copy");
        report.push(format!(
            "{}: PRS ({took:?}) begun in {phase:?}, ended in {:?}; committed again {converged:?} later",
            m.tablet_type,
            stored_phase(&m.db)
        ));
        m.sigkill("after the reparent during the copy");
        // vtgate killed while the copy (or catch-up) goes on.
        m.start(&c.grpc);
        std::thread::sleep(Duration::from_millis(400));
        let phase = stored_phase(&m.db);
        writes.around_restart(&c);
        let converged = m.converges("a vtgate restart");
        report.push(format!(
            "{}: vtgate SIGKILLed and restarted while in {phase:?}, committed again {converged:?} after it served",
            m.tablet_type
        ));
        // In replication: a reparent back, a vtgate restart, a SIGKILL.
        m.sync
            .as_mut()
            .unwrap()
            .wait_for_phase(&m.db, "replication");
        let took = planned_reparent(&mut writes, &c);
        let converged = m.converges("a reparent during replication");
        report.push(format!(
            "{}: PRS in {took:?} during replication, committed again {converged:?} later",
            m.tablet_type
        ));
        writes.around_restart(&c);
        let converged = m.converges("a vtgate restart during replication");
        report.push(format!(
            "{}: vtgate restart during replication, committed again {converged:?} after it served",
            m.tablet_type
        ));
        m.sigkill("in replication");
    }
    writes.pause();
    let rounds = writes.rounds;
    // The session opened before the vtgate restarts is gone with them.
    let mut conn = c.sql(KEYSPACE);
    for m in &mut mirrors {
        let args = ["--tablet-type", m.tablet_type, "--tables", TABLE];
        let (ok, err) = sync_until_caught_up(&c.grpc, KEYSPACE, &m.db, &args);
        assert!(ok, "{} mirror final sync: {err}", m.tablet_type);
        m.observe("at the end");
        let rows = assert_same(&mut conn, &m.db, TABLE, 1);
        report.push(format!(
            "{}: {rows} rows equal to the source",
            m.tablet_type
        ));
    }
    println!(
        "failover scenarios ({rounds} write rounds):\n  {}",
        report.join("\n  ")
    );
    run_sql(&mut conn, &[&format!("DROP TABLE {TABLE}")]);
}
