//! `vtmirror wait` against the simulated vtgate: a row written at the source is in the mirror
//! as soon as `wait` returns (the primaries' `@@global.gtid_executed` through Execute), a
//! stopped sync makes it time out, and `--position` waits for a given VGtid.

use std::time::Duration;

use crate::support::*;
use vtmirror::commands::wait::{run, WaitFor, WaitOptions, WaitOutcome};

fn wait_options(db: &std::path::Path, wait_for: WaitFor, timeout_ms: u64) -> WaitOptions {
    WaitOptions {
        db: db.to_path_buf(),
        wait_for,
        timeout: Duration::from_millis(timeout_ms),
    }
}

fn customer_count(db: &std::path::Path, id: i64) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT count(*) FROM customer WHERE customer_id = ?1",
        [id],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_written_before_wait_is_in_the_mirror_when_it_returns() {
    let (model, server) = source(100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut opts = options(&server.endpoint(), &db);
    opts.exit_when_caught_up = false;
    let sync = sync_runner::LibrarySync::spawn(opts);
    // A missing file is an error for wait: let the sync create it first.
    while vtmirror::mirror::store::open_read_only(&db).is_err() {
        sync.assert_running("before creating the mirror");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let from_source = WaitFor::Source {
        vtgate: server.endpoint().into(),
        caller_id: None,
    };
    for i in 0..60 {
        let id = 900_000 + i;
        let row = customer_row(id, &format!("w{i}@x"));
        model.write(|m| m.insert("customer", row)).unwrap();
        let outcome = run(&wait_options(&db, from_source.clone(), 30_000))
            .await
            .unwrap();
        assert!(
            matches!(outcome, WaitOutcome::Reached { .. }),
            "{outcome:?}"
        );
        assert_eq!(customer_count(&db, id), 1, "row {id} after wait");
    }

    // --position: the source's positions now are reached; one transaction further is not.
    let now = model.positions();
    let at_now = wait_options(&db, WaitFor::Position(now.clone()), 30_000);
    assert!(matches!(
        run(&at_now).await.unwrap(),
        WaitOutcome::Reached { .. }
    ));
    let mut ahead = now.clone();
    let first = &mut ahead.shard_gtids[0];
    first.gtid = format!("{}0", first.gtid);
    let outcome = run(&wait_options(&db, WaitFor::Position(ahead), 200)).await;
    assert!(matches!(outcome.unwrap(), WaitOutcome::TimedOut { .. }));

    sync.stop().await.unwrap();
    a_write_after_the_sync_stopped_times_out(&model, &db, from_source).await;
}

/// A stopped sync: the write after it is never reached, so the wait times out, naming the
/// shard behind.
async fn a_write_after_the_sync_stopped_times_out(
    model: &vtmirror::sim::SharedModel,
    db: &std::path::Path,
    from_source: WaitFor,
) {
    let id = 990_000;
    let row = customer_row(id, "late@x");
    model.write(|m| m.insert("customer", row)).unwrap();
    let shard = model.read(|m| m.shard_of(id));
    let outcome = run(&wait_options(db, from_source, 300)).await.unwrap();
    let WaitOutcome::TimedOut { behind, .. } = &outcome else {
        panic!("a stopped sync was reached: {outcome:?}");
    };
    let shard_name = model.read(|m| m.shards[shard].name.clone());
    assert_eq!(behind.len(), 1, "{behind:?}");
    assert!(
        behind[0].starts_with(&format!("commerce/{shard_name}: at MySQL56/")),
        "{behind:?}"
    );
    assert_eq!(outcome.exit_code(), 3);
    assert_eq!(customer_count(db, id), 0);
}
