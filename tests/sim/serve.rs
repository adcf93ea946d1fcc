//! `vtmirror sync --serve-addr` against the simulated vtgate, through the real binary and a
//! plain HTTP client: the bearer token on every request, the refusal of an exposed address
//! without one, `/changes` long polls (latency, the empty answer at the deadline, a full
//! replay, pruned entries), `/wait`, and TLS.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::feed_consumer;
use crate::support::http::{self, Reply};
use crate::support::prometheus::{encode, free_port};
use crate::support::sync_runner::{caught_up, mirror_report, wait_until, BinarySync};
use crate::support::*;
use vtmirror::mirror::change_log::retention::Retention;
use vtmirror::sim::{SharedModel, SimVtgate};

#[allow(dead_code)]
#[path = "../faults/security/pki.rs"]
mod pki;

const TOKEN: &str = "serve-test-token-81d2";

/// A sync binary serving its mirror on a free loopback port.
struct Served {
    sync: BinarySync,
    addr: String,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

impl Served {
    /// `GET path` with the token, off the runtime's workers.
    async fn get(&self, path: &str) -> Reply {
        let (addr, path) = (self.addr.clone(), path.to_string());
        tokio::task::spawn_blocking(move || http::get(&addr, &path, Some(TOKEN)))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("GET failed: {e}"))
    }
}

/// Starts `vtmirror sync --serve-addr` (token required) with `extra` flags, and waits until
/// it answers and its mirror has caught up with `model`.
async fn serve(model: &SharedModel, server: &SimVtgate, extra: &[&str]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    serve_file(model, server, dir, db, extra).await
}

async fn serve_file(
    model: &SharedModel,
    server: &SimVtgate,
    dir: tempfile::TempDir,
    db: PathBuf,
    extra: &[&str],
) -> Served {
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let token_path = token_file.to_str().unwrap();
    let mut flags = vec!["--serve-addr", &addr, "--serve-token-file", token_path];
    flags.extend_from_slice(&["--heartbeat", "1", "--quiet"]);
    flags.extend_from_slice(extra);
    let mut sync = BinarySync::spawn(&server.endpoint(), &db, &flags);
    let up = wait_until(Duration::from_secs(60), || {
        caught_up(&db, model) && std::net::TcpStream::connect(&addr).is_ok()
    })
    .await;
    sync.assert_running("while starting");
    assert!(
        up,
        "never served a caught-up mirror: {}",
        mirror_report(&db)
    );
    Served {
        sync,
        addr,
        db,
        _dir: dir,
    }
}

/// The seqs of an NDJSON body.
fn seqs(reply: &Reply) -> Vec<i64> {
    (reply.body.lines())
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_token_or_with_a_wrong_one_get_401_and_with_it_200() {
    let (model, server) = source(50).await;
    let served = serve(&model, &server, &["--changes"]).await;
    let addr = served.addr.clone();
    let refused = tokio::task::spawn_blocking(move || {
        let none = http::get(&addr, "/changes?after=0", None).unwrap();
        let wrong = http::get(&addr, "/changes?after=0", Some("serve-test-token-81d")).unwrap();
        let unknown_path = http::get(&addr, "/nothing-here", None).unwrap();
        let post = http::request(&addr, "POST", "/changes", Some(TOKEN)).unwrap();
        (none, wrong, unknown_path, post)
    })
    .await
    .unwrap();
    let (none, wrong, unknown_path, post) = refused;
    for reply in [&none, &wrong, &unknown_path] {
        assert_eq!(reply.status, 401, "{}", reply.brief());
        assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
        assert!(!reply.body.contains("seq"), "{}", reply.brief());
    }
    assert_eq!((post.status, post.header("allow")), (405, Some("GET")));
    let ok = served.get("/changes?after=0&limit=5").await;
    assert_eq!(ok.status, 200, "{}", ok.brief());
    assert_eq!(ok.header("content-type"), Some("application/x-ndjson"));
    assert_eq!(seqs(&ok), [1, 2, 3, 4, 5]);
    assert_eq!(ok.header("vtmirror-last-seq"), Some("5"));
    assert_eq!(served.get("/nothing-here").await.status, 404);
    let bad = served.get("/changes?after=-3").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"].as_str().unwrap().contains("after"),
        "{}",
        bad.brief()
    );
}

#[test]
fn an_exposed_serve_addr_without_a_token_is_refused_in_one_line_before_any_file_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    for addr in ["0.0.0.0:0", "192.168.7.7:9651", "mirror.example.com:9651"] {
        let out = Command::new(env!("CARGO_BIN_EXE_vtmirror"))
            .args(["sync", "--vtgate", "127.0.0.1:1", "--keyspace", "commerce"])
            .arg("--db")
            .arg(&db)
            .args(["--changes", "--serve-addr", addr])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{addr} accepted");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(addr) && err.contains("--serve-token-file"),
            "{err}"
        );
        let written: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(written.is_empty(), "{addr}: files written: {written:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_returns_a_new_commit_well_under_a_second_and_an_empty_200_at_its_deadline() {
    let (model, server) = source(50).await;
    let served = serve(&model, &server, &["--changes", "--max-batch-delay-ms", "5"]).await;
    let newest = newest_seq(&served.db);
    let started = Instant::now();
    let empty = served.get(&format!("/changes?after={newest}&wait=1")).await;
    let waited = started.elapsed();
    assert_eq!((empty.status, empty.body.as_str()), (200, ""));
    assert_eq!(
        empty.header("vtmirror-last-seq"),
        Some(newest.to_string().as_str())
    );
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let mut after_write = Vec::new();
    let mut after_commit = Vec::new();
    for _ in 0..20 {
        let before = newest_seq(&served.db);
        let (addr, path) = (
            served.addr.clone(),
            format!("/changes?after={before}&wait=30"),
        );
        let poll = tokio::task::spawn_blocking(move || {
            let reply = http::get(&addr, &path, Some(TOKEN));
            (reply, Instant::now())
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let written = Instant::now();
        model.apply_random_transactions(1);
        let mut committed = None;
        while !poll.is_finished() {
            if committed.is_none() && newest_seq(&served.db) > before {
                committed = Some(Instant::now());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (reply, answered) = poll.await.unwrap();
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(
            seqs(&reply).first(),
            Some(&(before + 1)),
            "{}",
            reply.brief()
        );
        after_write.push(answered - written);
        after_commit.push(answered - committed.unwrap_or(answered));
    }
    after_write.sort();
    after_commit.sort();
    eprintln!(
        "/changes long poll: write → answer p50 {:?} max {:?}; commit → answer p50 {:?} max {:?}",
        after_write[10], after_write[19], after_commit[10], after_commit[19]
    );
    assert!(
        after_write[19] < Duration::from_millis(500),
        "{after_write:?}"
    );
    assert!(
        after_commit[19] < Duration::from_millis(100),
        "{after_commit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_changes_from_seq_0_to_the_end_replays_exactly_the_mirrors_tables() {
    let (model, server) = source(300).await;
    let served = serve(&model, &server, &["--changes"]).await;
    model.apply_random_transactions(200);
    let synced = wait_until(Duration::from_secs(60), || caught_up(&served.db, &model)).await;
    assert!(synced, "{}", mirror_report(&served.db));
    let consumer_dir = tempfile::tempdir().unwrap();
    let consumer_db = consumer_dir.path().join("consumer.db");
    let consumer = rusqlite::Connection::open(&consumer_db).unwrap();
    let mut last = 0;
    loop {
        let page = served
            .get(&format!("/changes?after={last}&limit=400"))
            .await;
        assert_eq!(page.status, 200, "{}", page.brief());
        if page.body.is_empty() {
            break;
        }
        let tx = consumer.unchecked_transaction().unwrap();
        for line in page.body.lines() {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(entry["seq"].as_i64(), Some(last + 1), "a gap or a repeat");
            feed_consumer::apply(&tx, &entry);
            last += 1;
        }
        tx.commit().unwrap();
        assert_eq!(
            page.header("vtmirror-last-seq"),
            Some(last.to_string().as_str())
        );
    }
    assert_eq!(last, newest_seq(&served.db));
    let mirror = feed_consumer::tables(&served.db);
    assert_eq!(mirror.len(), 3);
    assert!(
        mirror.iter().all(|(_, rows)| rows.len() >= 300),
        "{}",
        mirror.len()
    );
    assert!(
        mirror == feed_consumer::tables(&consumer_db),
        "the replay differs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_the_retention_pruned_answer_410_with_advice_to_resync() {
    let (model, server) = source(100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut opts = options(&server.endpoint(), &db);
    opts.log_changes = true;
    opts.changes_retain = Retention::parse("10").unwrap();
    sync_until_caught_up(opts).await.unwrap();
    // Retention applies when a sync starts (and every 5 s while it runs).
    let served = serve_file(&model, &server, dir, db, &["--changes-retain", "10"]).await;
    let gone = served.get("/changes?after=0").await;
    assert_eq!(gone.status, 410, "{}", gone.brief());
    let error = gone.json();
    let text = error["error"].as_str().unwrap();
    assert!(text.contains("pruned") && text.contains("Resync"), "{text}");
    assert_eq!(error["resync"], true);
    let newest = newest_seq(&served.db);
    let kept = served.get(&format!("/changes?after={}", newest - 1)).await;
    assert_eq!((kept.status, seqs(&kept)), (200, vec![newest]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_answers_reached_after_a_write_to_the_source_and_504_for_a_position_not_reached() {
    let (model, server) = source(50).await;
    let served = serve(&model, &server, &[]).await;
    let conn = rusqlite::Connection::open(&served.db).unwrap();
    let count = |id: i64| -> i64 {
        let sql = "SELECT count(*) FROM customer WHERE customer_id = ?1";
        conn.query_row(sql, [id], |r| r.get(0)).unwrap()
    };
    for id in 700_000..700_010 {
        let row = customer_row(id, "wait@x");
        model.write(|m| m.insert("customer", row)).unwrap();
        let reached = served.get("/wait?timeout=30").await;
        assert_eq!(reached.status, 200, "{}", reached.brief());
        assert_eq!(reached.json()["reached"], true);
        assert_eq!(count(id), 1, "row {id} after /wait");
    }
    let mut ahead = model.positions();
    ahead.shard_gtids[0].gtid.push('0');
    let position = encode(&vtmirror::source::vgtid::to_json(&ahead).to_string());
    let behind = served
        .get(&format!("/wait?timeout=0.3&position={position}"))
        .await;
    assert_eq!(behind.status, 504, "{}", behind.brief());
    let body = behind.json();
    assert_eq!(body["reached"], false);
    assert_eq!(body["behind"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(served.get("/wait?position=nonsense").await.status, 400);
    // No --changes: /changes says so, /wait still works.
    let no_log = served.get("/changes").await;
    assert_eq!(no_log.status, 409, "{}", no_log.brief());
    assert!(no_log.body.contains("--changes"), "{}", no_log.brief());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_works_with_the_ca_trusted_and_plain_http_to_the_tls_port_gets_no_answer() {
    let (model, server) = source(50).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("serve test CA");
    let leaf = ca.leaf(&["127.0.0.1", "localhost"]);
    let cert = pki::write(dir.path(), "server.pem", &leaf.cert_pem);
    let key = pki::write(dir.path(), "server.key", &leaf.key_pem);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let tls = [
        "--changes",
        "--serve-tls-cert",
        cert,
        "--serve-tls-key",
        key,
    ];
    let db = dir.path().join("m.db");
    let served = serve_file(&model, &server, dir, db, &tls).await;
    let (addr, ca_pem) = (served.addr.clone(), ca.pem());
    let other_ca = pki::Ca::new("another CA").pem();
    let (https, plain, untrusted) = tokio::task::spawn_blocking(move || {
        let https = http::get_tls(&addr, "/changes?after=0&limit=3", Some(TOKEN), &ca_pem);
        let plain = http::get(&addr, "/changes?after=0&limit=3", Some(TOKEN));
        let untrusted = http::get_tls(&addr, "/changes", Some(TOKEN), &other_ca);
        (https, plain, untrusted)
    })
    .await
    .unwrap();
    let https = https.unwrap();
    assert_eq!(
        (https.status, seqs(&https)),
        (200, vec![1, 2, 3]),
        "{}",
        https.brief()
    );
    let answered = plain.as_ref().map(Reply::brief);
    assert!(plain.is_err(), "plain HTTP was answered: {answered:?}");
    assert!(
        untrusted.is_err(),
        "a client not trusting the CA was answered"
    );
    drop(served.sync);
}
