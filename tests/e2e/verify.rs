//! `vtmirror verify` against real Vitess (vttestserver, keyspace `commerce`) sees what the
//! mirror lacks, through vtgate's own catalog: a table the mirror's filter selects and a
//! source column are named differences (exit 1), and a mirror behind its source that no sync
//! moves is said so within a minute (exit 2) instead of waiting `--wait` out.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::vitess::{cluster, run_sql, seed_rows, sync_until_caught_up, Cleanup, Cluster};

/// `vtmirror verify` of `db` with the JSON verdict.
fn verify(c: &Cluster, db: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args(["verify", "--vtgate", &c.grpc, "--tablet-type", "primary"])
        .args(["--format", "json", "--quiet", "--db"])
        .arg(db)
        .env("RUST_LOG", "warn")
        .output()
        .expect("vtmirror verify runs")
}

fn verdict(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verify printed no verdict ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn verify_names_a_missing_table_and_column_and_says_when_no_sync_moves_the_mirror() {
    let Some(c) = cluster("") else { return };
    let _cleanup = Cleanup::new(&c).then("commerce", "DROP TABLE IF EXISTS vfy_items, vfy_notes");
    let mut conn = c.sql("commerce");
    run_sql(
        &mut conn,
        &[
            "DROP TABLE IF EXISTS vfy_items, vfy_notes",
            "CREATE TABLE vfy_items (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64), \
             note VARCHAR(64))",
            "CREATE TABLE vfy_notes (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(64))",
        ],
    );
    seed_rows(&mut conn, "vfy_items", ("id", "name"), 1..=300, "item-");
    seed_rows(&mut conn, "vfy_notes", ("id", "name"), 1..=50, "note-");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("verify.db");
    let args = [
        "--tablet-type",
        "primary",
        "--tables",
        "vfy_items,vfy_notes",
    ];
    let (ok, err) = sync_until_caught_up(&c.grpc, "commerce", &db, &args);
    assert!(ok, "sync failed: {err}");
    let out = verify(&c, &db);
    assert_eq!(out.status.code(), Some(0), "equal first: {}", verdict(&out));

    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("DROP TABLE vfy_notes; ALTER TABLE vfy_items DROP COLUMN note;")
        .unwrap();
    let out = verify(&c, &db);
    let found = verdict(&out);
    assert_eq!(out.status.code(), Some(1), "{found}");
    assert_eq!(
        found["missing_tables"],
        serde_json::json!(["vfy_notes"]),
        "{found}"
    );
    let items = &found["tables"][0];
    assert_eq!(items["table"], "vfy_items", "{found}");
    assert_eq!(
        items["missing_columns"],
        serde_json::json!(["note"]),
        "{found}"
    );
    assert_eq!(items["compared"], 300, "rows still compared: {found}");

    // The source moves on and no sync runs on the mirror.
    run_sql(
        &mut conn,
        &["INSERT INTO vfy_items (id, name) VALUES (1000, 'late')"],
    );
    let started = Instant::now();
    let out = verify(&c, &db);
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no `vtmirror sync` runs on it"), "{stderr}");
    assert!(took < Duration::from_secs(60), "said so after {took:?}");
    println!(
        "verify on real Vitess: a missing table and column named (exit 1); no sync said in \
         {:.0} s (exit 2)",
        took.as_secs_f64()
    );
}
