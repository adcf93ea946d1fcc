//! Bad input from the wire, end to end: the simulated vtgate slips crafted responses into a
//! real stream (mostly inside a real transaction) and the sync, through the real gRPC path,
//! either stops with an error naming the problem — committing nothing of the broken
//! transaction — or, for input newer Vitess versions legitimately send, skips it and
//! converges. No case may panic (a panic hook counts them, writer thread included).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use rusqlite::types::Value;
use support::*;
use tonic::Code;
use vtmirror::proto::binlogdata::{
    FieldEvent, RowChange, RowEvent, ShardGtid, VEvent, VEventType, VGtid,
};
use vtmirror::proto::query::{Field, Row};
use vtmirror::proto::vtgate::VStreamResponse;
use vtmirror::sim::{AfterInjection, SharedModel, SimVtgate};

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts every panic of the process (decoder, writer thread, sim) before the usual report.
fn count_panics() {
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
struct Scene {
    model: Arc<SharedModel>,
    server: SimVtgate,
    _dir: tempfile::TempDir,
    db: PathBuf,
}

/// Events of the resumed stream before the crafted ones: BEGIN, FIELD, ROW of shard -80's
/// transaction (the rest of it — VGTID, COMMIT — is still to come).
const INSIDE_THE_TRANSACTION: u64 = 3;
const SHARD: &str = "-80";

impl Scene {
    async fn new() -> Scene {
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

    async fn sync(&self) -> anyhow::Result<vtmirror::sync::Outcome> {
        sync_until_caught_up(options(&self.server.endpoint(), &self.db)).await
    }

    /// Injects `crafted` after `after` events, runs a sync, and checks that it stopped with
    /// an error containing every `expected` fragment and changed nothing in the mirror.
    async fn assert_refused(&self, after: u64, crafted: Vec<VEvent>, expected: &[&str]) {
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
    async fn assert_converges(&self) {
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
    fn stored_gtid(&self, shard: &str) -> (String, u64) {
        let gtid = positions(&stored_checkpoint(&self.db))[shard].clone();
        let set = gtid.trim_start_matches("MySQL56/");
        let (uuid, range) = set.split_once(':').unwrap();
        let n = range.rsplit('-').next().unwrap().parse().unwrap();
        (uuid.to_string(), n)
    }
}

/// Every mirrored row, the stored checkpoint, and the file's integrity.
#[derive(Debug, PartialEq)]
struct Snapshot {
    rows: BTreeMap<&'static str, BTreeMap<i64, Vec<Value>>>,
    checkpoint: VGtid,
}

impl Snapshot {
    fn of(db: &Path, model: &SharedModel) -> Snapshot {
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

fn status(db: &Path, key: &str) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT value FROM _vtmirror_status WHERE key = ?1",
        [key],
        |r| r.get(0),
    )
    .unwrap_or_default()
}

fn event(t: VEventType) -> VEvent {
    VEvent {
        r#type: t as i32,
        keyspace: "commerce".into(),
        shard: SHARD.into(),
        timestamp: 1_700_000_000,
        ..Default::default()
    }
}

fn row(lengths: Vec<i64>, values: &[u8]) -> Row {
    Row {
        lengths,
        values: values.to_vec().into(),
    }
}

fn row_event(table: &str, after: Row) -> VEvent {
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

fn vgtid_event(shards: &[(&str, &str, String)]) -> VEvent {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_before_its_field_event_stops_the_sync_naming_the_table() {
    let scene = Scene::new().await;
    // customer's FIELD event has not been sent on this stream.
    let ghost = row_event("customer", row(vec![1, 1, 1], b"123"));
    scene
        .assert_refused(
            INSIDE_THE_TRANSACTION,
            vec![ghost],
            &["table customer", "before its FIELD event"],
        )
        .await;
    scene.assert_converges().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_rows_stop_the_sync_naming_table_and_column() {
    let scene = Scene::new().await;
    let columns = scene.model.fields("corder").len();
    let ok_lengths = vec![1i64; columns];
    let values = vec![b'7'; columns];
    let mut overrun = ok_lengths.clone();
    overrun[1] = 1_000_000;
    let mut negative = ok_lengths.clone();
    negative[1] = -2;
    let cases: Vec<(Row, Vec<&str>)> = vec![
        (
            row(vec![1; columns - 1], &values[1..]),
            vec!["declared", "columns"],
        ),
        (
            row(vec![1; columns + 1], &[values.clone(), vec![b'7']].concat()),
            vec!["declared", "columns"],
        ),
        (row(overrun, &values), vec!["overruns the row buffer"]),
        (row(negative, &values), vec!["invalid length -2"]),
        (
            row(vec![i64::MIN; columns], &values),
            vec!["invalid length"],
        ),
        (row(ok_lengths, &[values.clone(), b"xx".to_vec()].concat()), vec!["not covered by lengths"]),
    ];
    for (bad, expected) in cases {
        let mut expected = expected;
        expected.push("table corder");
        scene
            .assert_refused(
                INSIDE_THE_TRANSACTION,
                vec![row_event("corder", bad)],
                &expected,
            )
            .await;
    }
    scene.assert_converges().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_without_begin_stops_the_sync() {
    let scene = Scene::new().await;
    // Between transactions by definition: before the first one of the stream.
    scene
        .assert_refused(0, vec![event(VEventType::Commit)], &["COMMIT without BEGIN"])
        .await;
    scene.assert_converges().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vgtid_of_another_keyspace_stops_the_sync() {
    let scene = Scene::new().await;
    let (uuid, n) = scene.stored_gtid(SHARD);
    let other = vgtid_event(&[("customer", SHARD, format!("MySQL56/{uuid}:1-{}", n + 1))]);
    scene
        .assert_refused(
            INSIDE_THE_TRANSACTION,
            vec![other],
            &["VGTID", "keyspace \"customer\""],
        )
        .await;
    scene.assert_converges().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vgtid_naming_shards_outside_the_stream_stops_the_sync() {
    let scene = Scene::new().await;
    let at = |shard: &str| {
        let (uuid, n) = scene.stored_gtid(shard);
        format!("MySQL56/{uuid}:1-{n}")
    };
    let (low, high) = (at("-80"), at("80-"));
    let extra = vgtid_event(&[
        ("commerce", "-80", low.clone()),
        ("commerce", "80-", high.clone()),
        ("commerce", "c0-", high.clone()),
    ]);
    scene
        .assert_refused(INSIDE_THE_TRANSACTION, vec![extra], &["c0-", "overlap"])
        .await;
    let narrower = vgtid_event(&[("commerce", "-40", low), ("commerce", "80-", high)]);
    scene
        .assert_refused(
            INSIDE_THE_TRANSACTION,
            vec![narrower],
            &["[-40, 80-]", "not a reshard"],
        )
        .await;
    scene.assert_converges().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vgtid_moving_a_shard_backwards_stops_the_sync() {
    let scene = Scene::new().await;
    let (uuid, n) = scene.stored_gtid(SHARD);
    let (uuid_high, n_high) = scene.stored_gtid("80-");
    let backwards = vgtid_event(&[
        ("commerce", SHARD, format!("MySQL56/{uuid}:1-{}", n - 1)),
        ("commerce", "80-", format!("MySQL56/{uuid_high}:1-{n_high}")),
    ]);
    scene
        .assert_refused(
            INSIDE_THE_TRANSACTION,
            vec![backwards],
            &["shard -80 backwards"],
        )
        .await;
    scene.assert_converges().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_ending_inside_a_transaction_commits_none_of_it_and_resumes() {
    let scene = Scene::new().await;
    let before = Snapshot::of(&scene.db, &scene.model);
    let faults = scene.server.faults();
    // The stream ends cleanly (status OK) mid-transaction; the reconnect is refused so the
    // sync stops and the file can be looked at.
    faults.inject_events(INSIDE_THE_TRANSACTION, vec![], AfterInjection::EndStream);
    faults.reject_next_requests(1, Code::InvalidArgument, "injected: reconnect refused");
    let err = scene.sync().await.expect_err("the reconnect is refused");
    assert!(format!("{err:#}").contains("reconnect refused"), "{err:#}");
    assert_eq!(Snapshot::of(&scene.db, &scene.model), before);
    // Without the refusal the end of the stream is transient: resumed and converged.
    faults.inject_events(INSIDE_THE_TRANSACTION, vec![], AfterInjection::EndStream);
    let requests = scene.server.requests().len();
    scene.sync().await.unwrap();
    assert_eq!(scene.server.requests().len(), requests + 2, "one reconnect");
    assert_eq!(
        status(&scene.db, "last_error"),
        "vtgate ended the stream inside a transaction"
    );
    scene.assert_converges().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_event_types_inside_a_transaction_are_skipped() {
    // Vitess adds event types as it evolves (SAVEPOINT, ROWS_QUERY, PREVIOUS_GTIDS,
    // COPY_COMPLETED came later than ROW); row data has always come as ROW, so an event type
    // this build does not know carries nothing the mirror needs.
    let scene = Scene::new().await;
    let mut newer = row_event("corder", row(vec![5], b"bogus"));
    newer.r#type = 99;
    let bare = VEvent {
        r#type: 1_000_000,
        ..Default::default()
    };
    scene.server.faults().inject_events(
        INSIDE_THE_TRANSACTION,
        vec![newer, bare],
        AfterInjection::Continue,
    );
    scene.sync().await.unwrap();
    assert!(!scene.server.faults().injection_pending(), "it was injected");
    scene.assert_converges().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_of_an_unknown_type_is_kept_as_its_wire_bytes() {
    // query.Type grows too (VECTOR came in v21): a value of a type this build does not know
    // is stored as the exact bytes vtgate sent (BLOB), so nothing is lost or invented.
    let scene = Scene::new().await;
    let field = |name: &str, t: i32, flags: u32| Field {
        name: name.into(),
        r#type: t,
        charset: 63,
        flags,
        ..Default::default()
    };
    let gadget_fields = VEvent {
        field_event: Some(FieldEvent {
            table_name: "gadget".into(),
            fields: vec![field("id", 265, 2), field("shape", 4242, 0)],
            keyspace: "commerce".into(),
            shard: SHARD.into(),
            enum_set_string_values: true,
            is_internal_table: false,
        }),
        ..event(VEventType::Field)
    };
    let gadget_row = row_event("gadget", row(vec![1, 3], b"1\x00\xff\x07"));
    scene.server.faults().inject_events(
        INSIDE_THE_TRANSACTION,
        vec![gadget_fields, gadget_row],
        AfterInjection::Continue,
    );
    scene.sync().await.unwrap();
    scene.assert_converges().await;
    let conn = rusqlite::Connection::open(&scene.db).unwrap();
    let shape: Value = conn
        .query_row("SELECT shape FROM gadget WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(shape, Value::Blob(vec![0x00, 0xff, 0x07]));
}

/// `vtmirror sync --exit-when-caught-up` against `endpoint`, with extra environment; its
/// exit status and stderr, or a failure after `limit` (a retry loop would never end).
fn run_binary(endpoint: &str, db: &Path, env: &[(&str, &str)], limit: Duration) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vtmirror"));
    cmd.args(["sync", "--vtgate", endpoint, "--keyspace", "commerce"])
        .args(["--heartbeat", "1", "--exit-when-caught-up", "--caught-up-idle", "1.5"])
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
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_a_definite_error_with_advice() {
    let scene = Scene::new().await;
    let before = Snapshot::of(&scene.db, &scene.model);
    const LIMIT: usize = 1 << 20;
    // One huge row in the transaction: a message just over the (lowered) client limit.
    let huge = row_event("corder", row(vec![LIMIT as i64], &vec![b'x'; LIMIT]));
    let response = VStreamResponse { events: vec![huge] };
    scene.server.faults().inject_after_events(
        INSIDE_THE_TRANSACTION,
        vec![response],
        AfterInjection::Continue,
    );
    let requests = scene.server.requests().len();
    let (endpoint, db) = (scene.server.endpoint(), scene.db.clone());
    let (ok, stderr) = tokio::task::spawn_blocking(move || {
        let limit = LIMIT.to_string();
        run_binary(&endpoint, &db, &[("VTMIRROR_MAX_MESSAGE_BYTES", &limit)], Duration::from_secs(60))
    })
    .await
    .unwrap();
    assert!(!ok, "the sync fails");
    assert!(stderr.contains("message length too large"), "{stderr}");
    assert!(stderr.contains("the limit is: 1048576 bytes"), "{stderr}");
    assert!(stderr.contains("raise the limit"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(scene.server.requests().len(), requests + 1, "no retry");
    assert_eq!(Snapshot::of(&scene.db, &scene.model), before);
    assert_eq!(status(&scene.db, "state"), "failed");
    scene.assert_converges().await;
}
