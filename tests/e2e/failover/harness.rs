//! The failover scenarios' tools: the cluster script's faults (reparents, restarts), writes
//! that pause around them, and a mirror whose sync is watched: its checkpoint never moves
//! backwards, and each fault is timed until the sync commits again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::vitess::*;
use vtmirror::source::gtid_set::GtidSet;

pub const KEYSPACE: &str = "onlineddl";

pub fn vtctld(args: &[&str]) -> String {
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
pub fn tablets() -> (String, String) {
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

/// Runs a step of the cluster script (`restart-vtgate 2`, `ers onlineddl` ...); returns how
/// long it took.
pub fn script(args: &[&str]) -> Duration {
    let began = Instant::now();
    let out = Command::new("bash")
        .arg("scripts/vitess-local.sh")
        .args(args)
        .output()
        .expect("the cluster script runs");
    assert!(
        out.status.success(),
        "vitess-local.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    began.elapsed()
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
    let vgtid = vtmirror::source::vgtid::decode(&bytes).unwrap();
    (vgtid.shard_gtids.iter())
        .filter_map(|s| Some((s.shard.clone(), GtidSet::from_position(&s.gtid).ok()??)))
        .collect()
}

/// A reparent of the keyspace's one shard.
#[derive(Debug, Clone, Copy)]
pub enum Reparent {
    /// `PlannedReparentShard` to the replica.
    Planned,
    /// The primary's vttablet SIGKILLed, `EmergencyReparentShard` to the replica, the old
    /// primary back as a replica (`vitess-local.sh ers`).
    Emergency,
}

impl Reparent {
    /// Runs the reparent; returns how long it took. Writes pause meanwhile: vtgate's buffering
    /// does not hide every write of a reparent ("primary is serving but initially found no
    /// available tablet"), and a failed write fails the test.
    pub fn run(self, writes: &mut Writes, c: &Cluster) -> Duration {
        writes.pause();
        let took = match self {
            Reparent::Planned => {
                let began = Instant::now();
                let (_, replica) = tablets();
                let shard = format!("{KEYSPACE}/0");
                vtctld(&["PlannedReparentShard", &shard, "--new-primary", &replica]);
                began.elapsed()
            }
            Reparent::Emergency => script(&["ers", KEYSPACE]),
        };
        writes.resume(c);
        took
    }
}

/// Writes through vtgate to `table` (keys `1..=seeded` present), paused while vtgate or the
/// primary is away (a write that fails fails the test); each resumption inserts keys of its
/// own.
pub struct Writes {
    pub table: &'static str,
    pub seeded: i64,
    writer: Option<Writer>,
    resumed: i64,
    pub rounds: u64,
}

impl Writes {
    pub fn start(c: &Cluster, table: &'static str, seeded: i64) -> Writes {
        let mut writes = Writes {
            table,
            seeded,
            writer: None,
            resumed: 0,
            rounds: 0,
        };
        writes.resume(c);
        writes
    }

    pub fn resume(&mut self, c: &Cluster) {
        let keys = 9_000_000 + 10_000_000 * self.resumed;
        let target = WriteTarget::new(KEYSPACE, self.table, ("id", "v"), 1..=self.seeded, keys);
        self.writer = Some(Writer::start(c, &[target]));
        self.resumed += 1;
    }

    pub fn pause(&mut self) {
        if let Some(writer) = self.writer.take() {
            self.rounds += writer.stop();
        }
    }

    /// Pauses the writes around a vtgate restart; returns how long vtgate was away.
    pub fn around_vtgate_restart(&mut self, c: &Cluster) -> Duration {
        self.pause();
        let took = script(&["restart-vtgate", "2"]);
        self.resume(c);
        took
    }
}

/// A mirror's sync under faults: its process, and the checks on its checkpoint.
pub struct Mirror {
    pub db: PathBuf,
    pub tablet_type: &'static str,
    pub table: &'static str,
    seen: BTreeMap<String, GtidSet>,
    pub sync: Option<KillOnDrop>,
}

impl Mirror {
    pub fn new(db: PathBuf, tablet_type: &'static str, table: &'static str) -> Mirror {
        Mirror {
            db,
            tablet_type,
            table,
            seen: BTreeMap::new(),
            sync: None,
        }
    }

    pub fn args(&self) -> [&'static str; 4] {
        ["--tablet-type", self.tablet_type, "--tables", self.table]
    }

    pub fn start(&mut self, grpc: &str) {
        let sync = sync_process(grpc, KEYSPACE, &self.db, &self.args());
        self.sync = Some(KillOnDrop(sync));
    }

    pub fn wait_for_phase(&mut self, phase: &str) {
        let db = self.db.clone();
        (self.sync.as_mut())
            .expect("the sync runs")
            .wait_for_phase(&db, phase);
    }

    /// Asserts the checkpoint contains every earlier one.
    pub fn observe(&mut self, context: &str) {
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
    pub fn converges(&mut self, fault: &str) -> Duration {
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

    pub fn sigkill(&mut self, context: &str) {
        if let Some(mut sync) = self.sync.take() {
            sync.sigkill(context);
        }
        assert_intact(&self.db, context);
        self.observe(context);
    }

    /// Catches up with a fresh sync and asserts the mirror equals the source; returns its rows.
    pub fn equals_the_source(&mut self, c: &Cluster) -> usize {
        let (ok, err) = sync_until_caught_up(&c.grpc, KEYSPACE, &self.db, &self.args());
        assert!(ok, "{} mirror final sync: {err}", self.tablet_type);
        self.observe("at the end");
        assert_same(&mut c.sql(KEYSPACE), &self.db, self.table, 1)
    }
}

/// `table (id BIGINT PRIMARY KEY, v VARCHAR(40))` made anew in the keyspace with `rows` rows,
/// known to the replica's schema engine.
pub fn fresh_table(c: &Cluster, table: &str, rows: i64) {
    let mut conn = c.sql(KEYSPACE);
    run_sql(
        &mut conn,
        &[
            &format!("DROP TABLE IF EXISTS {table}"),
            &format!(
                "CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(40) NOT NULL)"
            ),
        ],
    );
    seed_rows(&mut conn, table, ("id", "v"), 1..=rows, "fo");
    // The replica's schema engine learns of a new table on its own schedule; a VStream Copy
    // from it before that fails with "table … is not present in the database".
    vtctld(&["ReloadSchemaKeyspace", KEYSPACE]);
}
