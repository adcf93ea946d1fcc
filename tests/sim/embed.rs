//! The library as an application embeds it (`vtmirror::{Mirror, Source, …}`, nothing else),
//! against the simulated vtgate through the real gRPC path: a sync started and stopped by its
//! handle, read-your-writes, read connections, and the change feed as a stream that rebuilds
//! the mirror's tables exactly; and `examples/embed.rs` run as its README line says.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::feed_consumer::{apply, tables};
use crate::support::*;
use vtmirror::{Mirror, Source, SyncOutcome, WaitOutcome};

/// Writes a customer row every `every` until told to stop; the task ends after its last write.
fn keep_writing(
    model: std::sync::Arc<vtmirror::sim::SharedModel>,
    first_id: i64,
    every: Duration,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        for id in first_id.. {
            if stopped.try_recv() != Err(tokio::sync::oneshot::error::TryRecvError::Empty) {
                break;
            }
            let row = customer_row(id, &format!("live{id}@x"));
            model.write(|m| m.insert("customer", row)).unwrap();
            tokio::time::sleep(every).await;
        }
    });
    (stop, task)
}

fn count(db: &Path, table: &str) -> i64 {
    let reader = Mirror::open(db).unwrap().reader().unwrap();
    let sql = format!("SELECT count(*) FROM {table}");
    reader.query_row(&sql, [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_sync_waits_reads_and_follows_every_change_exactly_once() {
    let (model, server) = source(500).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let mirror = Mirror::new(&db);
    let source = Source::new(&server.endpoint(), "commerce").unwrap();
    let sync = mirror.sync(&source).unwrap().changes(true);
    let sync = sync.start().await.unwrap();
    let (stop_writes, writes) = keep_writing(model.clone(), 800_000, Duration::from_millis(5));

    // Read-your-writes, several times while the source keeps writing.
    for round in 0..5 {
        let id = 700_000 + round;
        model
            .write(|m| m.insert("customer", customer_row(id, "mine@x")))
            .unwrap();
        let waited = mirror
            .wait_for_source(&source, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(matches!(waited, WaitOutcome::Reached { .. }), "{waited:?}");
        let reader = mirror.reader().unwrap();
        let mine: i64 = reader
            .query_row(
                "SELECT count(*) FROM customer WHERE customer_id = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            mine, 1,
            "round {round}: the write is in the mirror once wait returned"
        );
    }
    let _ = stop_writes.send(());
    writes.await.unwrap();
    let waited = mirror
        .wait_for_source(&source, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(matches!(waited, WaitOutcome::Reached { .. }), "{waited:?}");
    let expected = model.table_rows("customer").len() as i64;
    assert_eq!(count(&db, "customer"), expected, "every source row, once");

    let status = sync.status();
    assert!(status.copied_rows >= 1500, "{status:?}");
    assert!(status.copy_completed, "{status:?}");
    assert_eq!(sync.stop().await.unwrap(), SyncOutcome::Shutdown);

    // The feed, from its first entry, rebuilds every table exactly; seq has no gap.
    let newest: i64 = mirror
        .reader()
        .unwrap()
        .query_row("SELECT max(seq) FROM _vtmirror_changes", [], |r| r.get(0))
        .unwrap();
    let consumer = dir.path().join("consumer.db");
    let conn = rusqlite::Connection::open(&consumer).unwrap();
    let mut changes = mirror.changes(0, &[]);
    let mut last = 0;
    while last < newest {
        let change = tokio::time::timeout(Duration::from_secs(10), changes.next())
            .await
            .expect("the stream delivers committed entries")
            .expect("the stream does not end")
            .expect("an entry");
        assert_eq!(change.seq, last + 1, "no gap, no repeat");
        apply(&conn, &change.entry);
        last = change.seq;
    }
    assert_eq!(tables(&consumer), tables(&db));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sync_of_the_same_file_is_refused_when_it_starts() {
    let (_model, server) = source(200).await;
    let dir = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(dir.path().join("m.db"));
    let source = Source::new(&server.endpoint(), "commerce").unwrap();
    let first = mirror.sync(&source).unwrap().start().await.unwrap();
    let second = mirror.sync(&source).unwrap().start().await;
    let err = format!("{:#}", second.err().expect("the second sync is refused"));
    assert!(err.contains("another"), "{err}");
    assert_eq!(first.stop().await.unwrap(), SyncOutcome::Shutdown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_address_fails_the_start_and_a_wrong_keyspace_the_sync_leaving_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mirror = Mirror::new(&db);
    let nowhere = Source::new("127.0.0.1:1", "commerce").unwrap();
    assert!(mirror.sync(&nowhere).unwrap().start().await.is_err());
    assert!(Source::new("127.0.0.1:1", "bad keyspace!").is_err());
    let (_model, server) = source(10).await;
    let missing = Source::new(&server.endpoint(), "nosuchkeyspace").unwrap();
    // vtgate refuses the stream, not the connection: the sync ends on the definite error.
    let mut sync = mirror.sync(&missing).unwrap().start().await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(20), sync.finished()).await;
    let err = format!("{:#}", ended.expect("ends").expect_err("a definite error"));
    assert!(err.contains("nosuchkeyspace"), "{err}");
    assert!(
        !db.exists(),
        "a sync refused before its first commit leaves no file"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_sync_resumes_from_its_checkpoint_without_duplicates() {
    let (model, server) = source(300).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mirror = Mirror::new(&db);
    let source = Source::new(&server.endpoint(), "commerce").unwrap();
    for round in 0..3 {
        let sync = mirror.sync(&source).unwrap().start().await.unwrap();
        let (stop_writes, writes) = keep_writing(
            model.clone(),
            600_000 + round * 1000,
            Duration::from_millis(2),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        sync.stop().await.unwrap();
        let _ = stop_writes.send(());
        writes.await.unwrap();
    }
    let sync = mirror.sync(&source).unwrap();
    let mut sync = sync
        .exit_when_caught_up(Duration::from_millis(500))
        .start()
        .await
        .unwrap();
    assert_eq!(sync.finished().await.unwrap(), SyncOutcome::CaughtUp);
    for table in TABLES {
        assert_eq!(
            count(&db, table),
            model.table_rows(table).len() as i64,
            "{table}"
        );
    }
    let position = mirror.position().unwrap().expect("a checkpoint");
    let reached = mirror
        .wait_for_position(&position, Duration::from_secs(1))
        .await
        .unwrap();
    assert!(
        matches!(reached, WaitOutcome::Reached { .. }),
        "{reached:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_a_mirror_without_a_change_log_is_an_error_that_says_how_to_start_one() {
    let (_model, server) = source(10).await;
    let dir = tempfile::tempdir().unwrap();
    let mirror = Mirror::new(dir.path().join("m.db"));
    let source = Source::new(&server.endpoint(), "commerce").unwrap();
    let sync = mirror.sync(&source).unwrap();
    let mut sync = sync
        .exit_when_caught_up(Duration::from_millis(300))
        .start()
        .await
        .unwrap();
    sync.finished().await.unwrap();
    let first = mirror.changes(0, &[]).next().await.expect("one item");
    let err = format!("{:#}", first.expect_err("no change log"));
    assert!(err.contains("--changes"), "{err}");
}

/// The example's binary: `target/<profile>/examples/embed` after `cargo build --example
/// embed`, or the newest `embed-<hash>` that `cargo test --all-targets` builds beside it (not
/// the test harness it also builds).
fn embed_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let examples = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("examples");
    let built = std::fs::read_dir(&examples).into_iter().flatten().flatten();
    let newest = built
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let hashed = name
                .strip_prefix("embed-")
                .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()));
            name == "embed" || hashed
        })
        // `cargo test --all-targets` also builds the example as a test harness: keep the
        // binary whose help names the example's flags.
        .filter(|e| {
            let help = Command::new(e.path()).arg("--help").output();
            help.is_ok_and(|h| String::from_utf8_lossy(&h.stdout).contains("--vtgate"))
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max();
    let Some((_, example)) = newest else {
        panic!(
            "no embed example under {}: build it with `cargo build --release --example embed`",
            examples.display()
        );
    };
    example
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embed_example_mirrors_waits_reads_and_prints_the_changes_it_follows() {
    let (model, server) = source(400).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("app.db");
    let (stop_writes, writes) = keep_writing(model.clone(), 9_100_000, Duration::from_millis(20));
    let run = Command::new(embed_example())
        .args(["--vtgate", &server.endpoint(), "--keyspace", "commerce"])
        .args([
            "--db".as_ref(),
            db.as_os_str(),
            "--seconds".as_ref(),
            "4".as_ref(),
        ])
        .env("RUST_LOG", "warn")
        .output();
    let _ = stop_writes.send(());
    writes.await.unwrap();
    let out = run.expect("the example runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("caught up in"), "{stdout}");
    for table in TABLES {
        assert!(
            stdout.contains(&format!("table {table}: ")),
            "{table}: {stdout}"
        );
    }
    let seqs: Vec<i64> = (stdout.lines())
        .filter_map(|l| l.strip_prefix("change "))
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "every change in order"
    );
    assert!(
        seqs.len() >= 3 * 400,
        "the copy's rows at least: {}",
        seqs.len()
    );
    let live = stdout
        .lines()
        .filter(|l| l.starts_with("change") && l.contains("\"customer_id\":91000"))
        .count();
    assert!(live > 0, "changes written while it followed: {stdout}");
    assert!(
        stdout.contains(&format!("followed {} changes", seqs.len())),
        "{stdout}"
    );
}
