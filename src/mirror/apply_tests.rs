//! The writer on its own thread, fed steps through its queue, watched by a second connection
//! as a reader of the mirror would be.

use std::time::Duration;

use tokio::sync::Semaphore;

use super::*;
use crate::mirror::store::{Durability, Identity};
use crate::source::decode::{Change, EndKind, ShardSchema};
use crate::source::proto::binlogdata::{ShardGtid, VGtid};
use crate::source::proto::query::Field;
use crate::source::table_schema::TableSchema;
use crate::source::value::Value;

struct Harness {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    tx: mpsc::Sender<WriterMsg>,
    room: Arc<Semaphore>,
    writer: std::thread::JoinHandle<(Mirror, Result<()>)>,
    schema: Arc<ShardSchema>,
}

fn start(policy: CommitPolicy) -> Harness {
    start_on(policy, |_| {})
}

/// As `start`, with `prepare` run on the mirror before the writer takes it.
fn start_on(policy: CommitPolicy, prepare: impl FnOnce(&Mirror)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let identity = Identity {
        keyspace: "ks".into(),
        filter: "[]".into(),
    };
    let mirror = Mirror::open(&db, &identity, Durability::Normal).unwrap();
    prepare(&mirror);
    let (tx, rx) = mpsc::channel(64);
    let progress = Arc::new(Progress::default());
    let writer = std::thread::spawn(move || Writer::new(mirror, policy, progress).run(rx));
    let fields = [("id", 265, 2), ("v", 6165, 0)].map(|(name, t, flags)| Field {
        name: name.into(),
        r#type: t,
        flags,
        charset: 255,
        ..Default::default()
    });
    let schema = Arc::new(ShardSchema {
        keyspace: "ks".into(),
        shard: "0".into(),
        schema: TableSchema::from_fields("t", &fields, true).unwrap(),
    });
    Harness {
        _dir: dir,
        db,
        tx,
        room: Arc::new(Semaphore::new(1_000_000)),
        writer,
        schema,
    }
}

impl Harness {
    fn send(&self, steps: Vec<Step>) {
        let slot = Arc::clone(&self.room).try_acquire_owned().unwrap();
        self.tx
            .blocking_send(WriterMsg::Steps(QueuedSteps { steps, slot }))
            .unwrap();
    }

    fn rows(&self, ids: std::ops::Range<i64>, copied: bool) -> Step {
        let changes = ids
            .map(|id| Change::Upsert(vec![Value::Integer(id), Value::text("x")]))
            .collect();
        Step::Rows {
            schema: Arc::clone(&self.schema),
            changes,
            copied,
        }
    }

    /// A transaction end whose checkpoint names `gtid` (and, while copying, the last key).
    fn end(&self, gtid: &str, copying: bool) -> Step {
        let table_p_ks = if copying {
            vec![crate::source::proto::binlogdata::TableLastPk {
                table_name: "t".into(),
                lastpk: None,
            }]
        } else {
            vec![]
        };
        Step::TxEnd {
            checkpoint: Some(VGtid {
                shard_gtids: vec![ShardGtid {
                    keyspace: "ks".into(),
                    shard: "0".into(),
                    gtid: gtid.into(),
                    table_p_ks,
                }],
            }),
            kind: EndKind::Commit,
            event_time: 0,
        }
    }

    /// Rows a reader sees in `t` (0 while the table is not committed yet).
    fn visible_rows(&self) -> i64 {
        std::thread::sleep(Duration::from_millis(100));
        let reader = crate::mirror::store::open_read_only(&self.db).unwrap();
        reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap_or(0)
    }

    /// A FIELD event's step for `t`, from the copy or from the binlog.
    fn schema_step(&self, copied: bool) -> Step {
        Step::Schema {
            schema: Arc::clone(&self.schema),
            copied,
        }
    }

    /// Committed copy states (`_vtmirror_copy_state` rows).
    fn copy_states(&self) -> i64 {
        let reader = crate::mirror::store::open_read_only(&self.db).unwrap();
        reader
            .query_row("SELECT count(*) FROM _vtmirror_copy_state", [], |r| {
                r.get(0)
            })
            .unwrap()
    }

    /// Finishes the writer; returns how it ended, and the file's directory (kept).
    fn end_writer(self) -> (Result<()>, tempfile::TempDir) {
        let (reply, done) = oneshot::channel();
        self.tx.blocking_send(WriterMsg::Finish(reply)).unwrap();
        let _ = done.blocking_recv();
        let (mirror, result) = self.writer.join().unwrap();
        drop(mirror);
        (result, self._dir)
    }

    /// Finishes the writer; returns what a reader then sees in `t`.
    fn finish(self) -> i64 {
        let db = self.db.clone();
        let (result, _dir) = self.end_writer();
        result.unwrap();
        let reader = crate::mirror::store::open_read_only(&db).unwrap();
        reader
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap_or(0)
    }
}

#[test]
fn copied_rows_wait_for_size_or_age_and_a_heartbeat_commits_old_ones() {
    let policy = CommitPolicy {
        max_rows: 1_000,
        max_delay: Duration::from_millis(300),
    };
    let h = start(policy);
    h.send(vec![
        Step::Schema {
            schema: Arc::clone(&h.schema),
            copied: true,
        },
        h.rows(0..10, true),
        h.end("MySQL56/u:1-5", true),
    ]);
    assert_eq!(
        h.visible_rows(),
        0,
        "an idle queue alone commits copied rows"
    );
    std::thread::sleep(Duration::from_millis(300));
    h.send(vec![Step::Heartbeat { event_time: 0 }]);
    assert_eq!(
        h.visible_rows(),
        10,
        "a heartbeat commits copied rows past max_delay"
    );
    h.send(vec![h.rows(10..1_010, true), h.end("MySQL56/u:1-5", true)]);
    assert_eq!(h.visible_rows(), 1_010, "max_rows commits at once");
    assert_eq!(h.finish(), 1_010);
}

#[test]
fn replicated_transactions_commit_as_soon_as_the_queue_is_idle() {
    let h = start(CommitPolicy::default());
    h.send(vec![
        Step::Schema {
            schema: Arc::clone(&h.schema),
            copied: true,
        },
        h.rows(0..3, false),
        h.end("MySQL56/u:1-6", false),
    ]);
    assert_eq!(h.visible_rows(), 3);
    assert_eq!(h.finish(), 3);
}

#[test]
fn finish_commits_the_whole_transactions_and_never_a_partial_one() {
    let h = start(CommitPolicy::default());
    h.send(vec![
        Step::Schema {
            schema: Arc::clone(&h.schema),
            copied: true,
        },
        h.rows(0..10, true),
        h.end("MySQL56/u:1-5", true),
    ]);
    assert_eq!(
        h.finish(),
        10,
        "the complete copy transaction is committed at Finish"
    );

    let h = start(CommitPolicy::default());
    h.send(vec![
        Step::Schema {
            schema: Arc::clone(&h.schema),
            copied: true,
        },
        h.rows(0..10, true),
        h.end("MySQL56/u:1-5", true),
        h.rows(10..15, true),
    ]);
    assert_eq!(
        h.finish(),
        0,
        "a transaction still open at Finish rolls back the batch it is in"
    );
}

#[test]
fn a_table_streamed_from_the_binlog_during_the_copy_is_not_taken_for_a_copied_one() {
    // A tablet that did not know table t when it planned its copy streams t's binlog
    // events during the copy: its FIELD event carries a time. Such a table must get no copy
    // state, or a resumed copy would start t from the largest key those events wrote.
    let h = start(CommitPolicy::default());
    h.send(vec![
        h.schema_step(false),
        h.rows(500..510, false),
        h.end("MySQL56/u:1-6", false),
    ]);
    assert_eq!(h.visible_rows(), 10, "committed");
    assert_eq!(
        h.copy_states(),
        0,
        "binlog FIELD events start no copy state"
    );
    assert_eq!(h.finish(), 10);

    let h = start(CommitPolicy {
        max_rows: 5,
        max_delay: Duration::ZERO,
    });
    h.send(vec![
        h.schema_step(true),
        h.rows(0..10, true),
        h.end("MySQL56/u:1-5", true),
    ]);
    assert_eq!(h.visible_rows(), 10, "committed");
    assert_eq!(h.copy_states(), 1, "the copy's FIELD event starts one");
    assert_eq!(h.finish(), 10);
}

#[test]
fn a_table_copy_whose_shard_streams_the_table_before_copying_it_is_retried() {
    // A mirror whose first copy completed, copying table t again: a shard whose tablet does
    // not know t sends its binlog FIELD event instead of the copy's. Applied, the shadow
    // would look delivered while holding none of t's older rows.
    let copying_t = |mirror: &Mirror| {
        let vgtid = VGtid {
            shard_gtids: vec![ShardGtid {
                keyspace: "ks".into(),
                shard: "0".into(),
                gtid: "MySQL56/u:1-5".into(),
                table_p_ks: vec![],
            }],
        };
        let tx = mirror.conn.unchecked_transaction().unwrap();
        crate::mirror::metadata::save_checkpoint(&tx, &vgtid, 1, 0).unwrap();
        crate::mirror::metadata::mark_copy_completed(&tx).unwrap();
        let tables = ["t".to_string()];
        let reason = crate::mirror::table_copy::Reason::Added;
        crate::mirror::table_copy::request(&tx, &mirror.naming, &vgtid, &tables, reason).unwrap();
        tx.commit().unwrap();
    };
    let h = start_on(CommitPolicy::default(), copying_t);
    h.send(vec![
        h.schema_step(false),
        h.rows(500..510, false),
        h.end("MySQL56/u:1-6", false),
    ]);
    let (result, _) = h.end_writer();
    let err = result.expect_err("a binlog FIELD event before the copy's is refused");
    assert_eq!(crate::error::classify(&err), crate::error::Class::Transient);
    assert!(
        err.to_string().contains("without copying it first"),
        "{err}"
    );

    // The copy's own FIELD event first: its later binlog FIELD events are applied.
    let h = start_on(CommitPolicy::default(), copying_t);
    h.send(vec![
        h.schema_step(true),
        h.rows(0..10, true),
        h.end("MySQL56/u:1-5", true),
        h.schema_step(false),
        h.rows(500..510, false),
        h.end("MySQL56/u:1-6", false),
    ]);
    // t is still the copy's shadow (no COPY_COMPLETED yet): the writer ending well is the check.
    let (result, _) = h.end_writer();
    result.unwrap();
}
