//! The scene of the bad-wire-input tests: a caught-up mirror of the simulated vtgate with a
//! transaction waiting, crafted events, and what "nothing changed" means (rows, checkpoint,
//! integrity).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use vtmirror::sim::{AfterInjection, SharedModel, SimVtgate};
use vtmirror::source::proto::binlogdata::{
    RowChange, RowEvent, ShardGtid, VEvent, VEventType, VGtid,
};
use vtmirror::source::proto::query::Row;

use crate::support::*;

pub static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic of the process (decoder, writer thread, sim) before the usual report.
pub fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

/// A mirror caught up with a 2-shard source, and a large transaction waiting on both shards.
pub struct Scene {
    pub model: Arc<SharedModel>,
    pub server: SimVtgate,
    _dir: tempfile::TempDir,
    pub db: PathBuf,
}

/// Events of the resumed stream before the crafted ones: BEGIN, FIELD, ROW of shard -80's
/// transaction (the rest of it — VGTID, COMMIT — is still to come).
pub const INSIDE_THE_TRANSACTION: u64 = 3;
pub const SHARD: &str = "-80";

impl Scene {
    pub async fn new() -> Scene {
        count_panics();
        let (model, server) = source(200).await;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("m.db");
        sync_until_caught_up(options(&server.endpoint(), &db))
            .await
            .unwrap();
        model.large_transaction("corder", 400).unwrap();
        Scene {
            model,
            server,
            _dir: dir,
            db,
        }
    }

    pub async fn sync(&self) -> anyhow::Result<vtmirror::commands::sync::Outcome> {
        sync_until_caught_up(options(&self.server.endpoint(), &self.db)).await
    }

    /// Injects `crafted` after `after` events, runs a sync, and checks that it stopped with
    /// an error containing every `expected` fragment and changed nothing in the mirror.
    pub async fn assert_refused(&self, after: u64, crafted: Vec<VEvent>, expected: &[&str]) {
        let before = Snapshot::of(&self.db, &self.model);
        let requests = self.server.requests().len();
        self.server
            .faults()
            .inject_events(after, crafted, AfterInjection::Continue);
        let err = self.sync().await.expect_err("the sync stops");
        let text = format!("{err:#}");
        for fragment in expected {
            assert!(text.contains(fragment), "error {text:?} lacks {fragment:?}");
        }
        assert!(!self.server.faults().injection_pending(), "it was injected");
        assert_eq!(
            self.server.requests().len(),
            requests + 1,
            "definite: no retry"
        );
        assert_eq!(Snapshot::of(&self.db, &self.model), before, "{text}");
        assert_eq!(status(&self.db, "state"), "failed");
        assert_eq!(PANICS.load(Ordering::SeqCst), 0);
    }

    /// With the faults cleared, the mirror converges on the source.
    pub async fn assert_converges(&self) {
        self.server.faults().clear();
        self.sync().await.unwrap();
        assert_mirror_equals_source(&self.db, &self.model);
        assert_eq!(
            positions(&stored_checkpoint(&self.db)),
            positions(&self.model.positions())
        );
        assert_eq!(PANICS.load(Ordering::SeqCst), 0);
    }

    /// The stored position of `shard` as `(uuid, n)` of `MySQL56/uuid:1-n`.
    pub fn stored_gtid(&self, shard: &str) -> (String, u64) {
        let gtid = positions(&stored_checkpoint(&self.db))[shard].clone();
        let set = gtid.trim_start_matches("MySQL56/");
        let (uuid, range) = set.split_once(':').unwrap();
        let n = range.rsplit('-').next().unwrap().parse().unwrap();
        (uuid.to_string(), n)
    }
}

/// Every mirrored row, the stored checkpoint, and the file's integrity.
#[derive(Debug, PartialEq)]
pub struct Snapshot {
    pub rows: BTreeMap<&'static str, BTreeMap<i64, Vec<Value>>>,
    pub checkpoint: VGtid,
}

impl Snapshot {
    pub fn of(db: &Path, model: &SharedModel) -> Snapshot {
        let conn = rusqlite::Connection::open(db).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let rows = TABLES
            .iter()
            .map(|t| (*t, mirrored(&conn, model, t)))
            .collect();
        Snapshot {
            rows,
            checkpoint: stored_checkpoint(db),
        }
    }
}

pub fn status(db: &Path, key: &str) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT value FROM _vtmirror_status WHERE key = ?1",
        [key],
        |r| r.get(0),
    )
    .unwrap_or_default()
}

pub fn event(t: VEventType) -> VEvent {
    VEvent {
        r#type: t as i32,
        keyspace: "commerce".into(),
        shard: SHARD.into(),
        timestamp: 1_700_000_000,
        ..Default::default()
    }
}

pub fn row(lengths: Vec<i64>, values: &[u8]) -> Row {
    Row {
        lengths,
        values: values.to_vec().into(),
    }
}

pub fn row_event(table: &str, after: Row) -> VEvent {
    VEvent {
        row_event: Some(RowEvent {
            table_name: table.into(),
            row_changes: vec![RowChange {
                after: Some(after),
                ..Default::default()
            }],
            keyspace: "commerce".into(),
            shard: SHARD.into(),
            ..Default::default()
        }),
        ..event(VEventType::Row)
    }
}

pub fn vgtid_event(shards: &[(&str, &str, String)]) -> VEvent {
    let shard_gtids = shards
        .iter()
        .map(|(keyspace, shard, gtid)| ShardGtid {
            keyspace: (*keyspace).into(),
            shard: (*shard).into(),
            gtid: gtid.clone(),
            table_p_ks: vec![],
        })
        .collect();
    VEvent {
        vgtid: Some(VGtid { shard_gtids }),
        ..event(VEventType::Vgtid)
    }
}

/// `vtmirror sync --exit-when-caught-up` against `endpoint`, with extra environment; its
/// exit status and stderr, or a failure after `limit` (a retry loop would never end).
pub fn run_binary(
    endpoint: &str,
    db: &Path,
    env: &[(&str, &str)],
    limit: Duration,
) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vtmirror"));
    cmd.args(["sync", "--vtgate", endpoint, "--keyspace", "commerce"])
        .args([
            "--heartbeat",
            "1",
            "--exit-when-caught-up",
            "--caught-up-idle",
            "1.5",
        ])
        .arg("--db")
        .arg(db)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("vtmirror binary starts");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("vtmirror sync still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
