//! `vtmirror verify` through the real gRPC path: equal under load while `sync` runs, planted
//! differences found by key and kind, an unfinished copy and bad input refused.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use vtmirror::commands::verify::{run, Verdict, VerifyOptions};
use vtmirror::sim::{spawn_live_writes, SharedModel};
use vtmirror::source::selection::Selection;

use super::cli::{stderr, vtmirror};
use crate::support::*;

fn verify_options(endpoint: &str, db: &Path) -> VerifyOptions {
    VerifyOptions {
        db: db.to_path_buf(),
        spec: options(endpoint, db).spec,
        tables: Vec::new(),
        wait: Duration::from_secs(60),
        quiet: true,
    }
}

fn two_keyspace_options(endpoint: &str, db: &Path) -> vtmirror::commands::sync::SyncOptions {
    let mut opts = options(endpoint, db);
    opts.spec.selection = Selection::parse(&["commerce,customer".to_string()], &[], &[]).unwrap();
    opts
}

async fn copy_completed(db: &Path) {
    let started = Instant::now();
    loop {
        let done = Connection::open(db)
            .and_then(|c| {
                c.query_row("SELECT copy_completed FROM _vtmirror_checkpoint", [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .unwrap_or(0);
        if done == 1 {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "copy completes"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn differences(verdict: &Verdict) -> Vec<String> {
    (verdict.tables.iter())
        .filter(|t| !t.equal())
        .map(|t| format!("{}: {:?}", t.table, t))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_mirror_verifies_equal_every_time_while_writes_and_sync_run() {
    let runs: usize = std::env::var("VTMIRROR_VERIFY_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let (models, server) = two_keyspaces(300, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut opts = two_keyspace_options(&server.endpoint(), &db);
    opts.exit_when_caught_up = false;
    let sync = sync_runner::LibrarySync::spawn(opts);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let writers: Vec<_> = (models.iter())
        .map(|m: &Arc<SharedModel>| spawn_live_writes(m.clone(), 100.0, stopped.clone()))
        .collect();
    copy_completed(&db).await;
    let started = Instant::now();
    let mut compared = 0;
    for run_index in 0..runs {
        let verdict = run(&verify_options(&server.endpoint(), &db)).await.unwrap();
        assert!(
            verdict.equal,
            "run {run_index}: {:?}",
            differences(&verdict)
        );
        assert_eq!(verdict.tables.len(), 5);
        compared += verdict.tables.iter().map(|t| t.compared).sum::<u64>();
        sync.assert_running("while verify ran");
    }
    let _ = stop.send(true);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    sync.stop().await.unwrap();
    assert!(written > 100, "writes ran during the verifies: {written}");
    println!(
        "verify under load: {runs} verifies, {compared} rows compared, 0 false differences, \
         {written} source transactions written meanwhile, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_differences_are_reported_with_their_key_and_kind() {
    let (_models, server) = two_keyspaces(200, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    sync_until_caught_up(two_keyspace_options(&server.endpoint(), &db))
        .await
        .unwrap();
    let conn = Connection::open(&db).unwrap();
    let pick = |table: &str, offset: i64| -> i64 {
        let sql = format!(
            "SELECT customer_id FROM \"{table}\" ORDER BY customer_id LIMIT 1 OFFSET {offset}"
        );
        conn.query_row(&sql, [], |r| r.get(0)).unwrap()
    };
    let (gone, changed) = (pick("commerce.customer", 3), pick("customer.customer", 7));
    let low_and_high = [pick("customer.customer", 1), pick("customer.customer", 150)];
    conn.execute(
        "DELETE FROM \"commerce.customer\" WHERE customer_id = ?1",
        [gone],
    )
    .unwrap();
    conn.execute(
        "UPDATE \"customer.customer\" SET email = 'edited@example.com' WHERE customer_id = ?1",
        [changed],
    )
    .unwrap();
    for id in low_and_high {
        conn.execute(
            "DELETE FROM \"customer.customer\" WHERE customer_id = ?1",
            [id],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO \"commerce.accounts\" (id, balance) VALUES (987654321, 1)",
        [],
    )
    .unwrap();
    drop(conn);
    let verdict = run(&verify_options(&server.endpoint(), &db)).await.unwrap();
    assert!(!verdict.equal);
    let table = |name: &str| verdict.tables.iter().find(|t| t.table == name).unwrap();
    let commerce = table("commerce.customer");
    assert_eq!(
        (commerce.missing, commerce.extra, commerce.differing),
        (1, 0, 0)
    );
    assert_eq!(commerce.missing_keys, [format!("customer_id={gone}")]);
    let customer = table("customer.customer");
    assert_eq!(
        (customer.missing, customer.extra, customer.differing),
        (2, 0, 1)
    );
    assert_eq!(customer.differing_keys, [format!("customer_id={changed}")]);
    let mut missing = customer.missing_keys.clone();
    missing.sort();
    let mut want: Vec<String> = low_and_high
        .iter()
        .map(|id| format!("customer_id={id}"))
        .collect();
    want.sort();
    assert_eq!(missing, want);
    let accounts = table("commerce.accounts");
    assert_eq!((accounts.missing, accounts.extra), (0, 1));
    assert_eq!(accounts.extra_keys, ["id=987654321"]);
    assert!(table("commerce.corder").equal() && table("customer.corder").equal());
    let text = vtmirror::commands::verify::text(&verdict);
    assert!(
        text.contains("DIFFERENT") && text.contains("Remedy"),
        "{text}"
    );
    assert!(
        !text.contains("edited@example.com"),
        "keys only, never values: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_during_an_unfinished_copy_says_so_and_bad_input_exits_2() {
    let (models, server) = two_keyspaces(3000, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    server.faults().set_max_responses_per_sec(Some(10.0));
    let sync = sync_runner::LibrarySync::spawn(two_keyspace_options(&server.endpoint(), &db));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sync.stop().await.unwrap();
    server.faults().set_max_responses_per_sec(None);
    let err = run(&verify_options(&server.endpoint(), &db))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("copy has not finished"),
        "{err:#}"
    );
    drop(models);
    sync_until_caught_up(two_keyspace_options(&server.endpoint(), &db))
        .await
        .unwrap();
    let not_mirror = dir.path().join("plain.db");
    Connection::open(&not_mirror)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    let (endpoint, plain, mirror) = (
        server.endpoint(),
        not_mirror.to_str().unwrap().to_string(),
        db.to_str().unwrap().to_string(),
    );
    let outs = tokio::task::spawn_blocking(move || {
        [
            vtmirror(&["verify", "--db", &plain, "--vtgate", &endpoint]),
            vtmirror(&[
                "verify", "--db", &mirror, "--vtgate", &endpoint, "--tables", "nosuch",
            ]),
            vtmirror(&["verify", "--db", &mirror, "--vtgate", "127.0.0.1:1"]),
        ]
    })
    .await
    .unwrap();
    let needles = [
        "not a vtmirror mirror file",
        "\"nosuch\" is not mirrored",
        "127.0.0.1:1",
    ];
    for (out, needle) in outs.iter().zip(needles) {
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(needle), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_and_columns_the_mirror_lacks_or_adds_are_named_differences_and_exit_1() {
    let (_models, server) = two_keyspaces(50, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    sync_until_caught_up(two_keyspace_options(&server.endpoint(), &db))
        .await
        .unwrap();
    Connection::open(&db)
        .unwrap()
        .execute_batch(
            "DROP TABLE \"customer.corder\";
             ALTER TABLE \"commerce.customer\" DROP COLUMN email;
             ALTER TABLE \"commerce.accounts\" ADD COLUMN nickname TEXT;
             ALTER TABLE \"customer.customer\" ADD COLUMN _vtmirror_note TEXT;
             CREATE TABLE \"commerce.leftover\" (id INTEGER PRIMARY KEY);",
        )
        .unwrap();
    let verdict = run(&verify_options(&server.endpoint(), &db)).await.unwrap();
    assert!(!verdict.equal);
    assert_eq!(verdict.missing_tables, ["customer.corder"]);
    assert_eq!(verdict.extra_tables, ["commerce.leftover"]);
    let table = |name: &str| verdict.tables.iter().find(|t| t.table == name).unwrap();
    let customer = table("commerce.customer");
    assert_eq!(customer.missing_columns, ["email"]);
    assert!(customer.extra_columns.is_empty() && customer.compared == 50);
    assert_eq!(
        (customer.missing, customer.extra, customer.differing),
        (0, 0, 0),
        "rows compare over the columns both sides have"
    );
    assert_eq!(table("commerce.accounts").extra_columns, ["nickname"]);
    assert!(
        table("customer.customer").equal(),
        "a bookkeeping column is no difference: {:?}",
        table("customer.customer")
    );
    let (endpoint, mirror) = (server.endpoint(), db.to_str().unwrap().to_string());
    let out = tokio::task::spawn_blocking(move || {
        vtmirror(&["verify", "--db", &mirror, "--vtgate", &endpoint])
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    for needle in [
        "customer.corder",
        "MISSING",
        "commerce.leftover",
        "columns missing in the mirror: email",
        "columns extra in the mirror: nickname",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_behind_its_source_with_no_sync_running_is_reported_within_a_minute() {
    let (models, server) = two_keyspaces(50, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    sync_until_caught_up(two_keyspace_options(&server.endpoint(), &db))
        .await
        .unwrap();
    for model in &models {
        model.apply_random_transactions(20);
    }
    let mut opts = verify_options(&server.endpoint(), &db);
    opts.wait = Duration::from_secs(3600);
    let started = Instant::now();
    let err = run(&opts).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        format!("{err:#}").contains("no `vtmirror sync` runs on it"),
        "{err:#}"
    );
    assert!(took < Duration::from_secs(60), "said so after {took:?}");
}
