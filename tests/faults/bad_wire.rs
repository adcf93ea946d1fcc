//! Bad input from the wire, end to end: the simulated vtgate slips crafted responses into a
//! real stream (mostly inside a real transaction) and the sync, through the real gRPC path,
//! either stops with an error naming the problem — committing nothing of the broken
//! transaction — or, for input newer Vitess versions legitimately send, skips it and
//! converges. No case may panic (a panic hook counts them, writer thread included).

mod scene;

use std::time::Duration;

use rusqlite::types::Value;
use scene::*;
use tonic::Code;
use vtmirror::sim::AfterInjection;
use vtmirror::source::proto::binlogdata::{FieldEvent, VEvent, VEventType};
use vtmirror::source::proto::query::{Field, Row};
use vtmirror::source::proto::vtgate::VStreamResponse;

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
        (
            row(ok_lengths, &[values.clone(), b"xx".to_vec()].concat()),
            vec!["not covered by lengths"],
        ),
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
        .assert_refused(
            0,
            vec![event(VEventType::Commit)],
            &["COMMIT without BEGIN"],
        )
        .await;
    scene.assert_converges().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_without_its_vgtid_commits_nothing_of_the_transaction() {
    let scene = Scene::new().await;
    // BEGIN, FIELD, ROW of a 400-row transaction, then COMMIT with no VGTID before it.
    scene
        .assert_refused(
            INSIDE_THE_TRANSACTION,
            vec![event(VEventType::Commit)],
            &["without its VGTID", "nothing of it is applied"],
        )
        .await;
    // The same after a DDL-style end (OTHER) of a transaction with rows.
    scene
        .assert_refused(
            INSIDE_THE_TRANSACTION,
            vec![event(VEventType::Other)],
            &["without its VGTID"],
        )
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
    assert!(
        !scene.server.faults().injection_pending(),
        "it was injected"
    );
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
        run_binary(
            &endpoint,
            &db,
            &[("VTMIRROR_MAX_MESSAGE_BYTES", &limit)],
            Duration::from_secs(60),
        )
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
