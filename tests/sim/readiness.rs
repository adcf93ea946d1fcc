//! `/readyz` of the real binary while tables are copied on their own: an added table is
//! absent and a re-copied one frozen until its copy is swapped in, so the mirror is not ready
//! then, and the body names them.

use std::time::Duration;

use vtmirror::source::vstream::rules;

use crate::support::prometheus::{free_port, http_get};
use crate::support::sync_runner::{wait_until, BinarySync};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_naming_the_tables_while_an_added_and_a_recopied_table_are_copied() {
    let (_model, server) = source_with_batch(3000, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut opts = options(&server.endpoint(), &db);
    opts.spec.rules = rules(&["customer".into()], &[]);
    sync_until_caught_up(opts).await.unwrap();
    // About 6 s for the two copies (60 responses), long enough to be seen.
    server.faults().set_max_responses_per_sec(Some(10.0));
    let addr = format!("127.0.0.1:{}", free_port());
    let flags = [
        "--tables",
        "customer,corder",
        "--recopy",
        "customer",
        "--metrics-addr",
        &addr,
        "--heartbeat",
        "1",
        "--quiet",
    ];
    let mut sync = BinarySync::spawn(&server.endpoint(), &db, &flags);
    let mut seen = Vec::new();
    let named = wait_until(Duration::from_secs(30), || {
        let Some((status, body)) = http_get(&addr, "/readyz") else {
            return false;
        };
        let hit = status == 503
            && body.contains("table copy in progress")
            && body.contains("corder (added)")
            && body.contains("customer (re-copy)");
        seen.push(format!("{status} {body}"));
        hit
    })
    .await;
    assert!(
        named,
        "readyz during the copies: {seen:?}\n{}",
        sync.log_text()
    );
    sync.assert_running("while the tables were copied");
    server.faults().set_max_responses_per_sec(None);
    let ready = wait_until(Duration::from_secs(60), || {
        http_get(&addr, "/readyz").is_some_and(|(s, body)| s == 200 && body.starts_with("ready:"))
    })
    .await;
    assert!(
        ready,
        "ready once both copies were swapped in\n{}",
        sync.log_text()
    );
    let left: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT count(*) FROM _vtmirror_table_copy", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(left, 0, "no table copy left unfinished once ready");
    assert!(sync.terminate().success());
}
