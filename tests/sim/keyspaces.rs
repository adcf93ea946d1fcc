//! Several keyspaces in one mirror, and key-range mirrors, through the real gRPC path: the
//! simulated vtgate serves Vitess's local example (`commerce` unsharded, `customer` on two
//! shards, both with a `customer` table).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rusqlite::Connection;
use vtmirror::mirror::schema::quote;
use vtmirror::sim::SharedModel;
use vtmirror::source::selection::Selection;

use super::cli::{stderr, vtmirror};
use crate::support::*;

fn selection(keyspaces: &str, shards: &[&str], tables: &[&str]) -> Selection {
    let list = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Selection::parse(&[keyspaces.to_string()], &list(shards), &list(tables)).unwrap()
}

fn mirror_tables(db: &Path) -> Vec<String> {
    let conn = Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_vtmirror%' ESCAPE '\\' ORDER BY name")
        .unwrap();
    let names = stmt.query_map([], |r| r.get(0)).unwrap();
    names.collect::<Result<_, _>>().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_keyspaces_mirror_into_one_file_with_tables_named_keyspace_dot_table() {
    let (models, server) = two_keyspaces(400, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let mut opts = options(&server.endpoint(), &db);
    opts.spec.selection = selection("commerce,customer", &[], &[]);
    let sync = sync_runner::LibrarySync::spawn(opts.clone());
    for model in &models {
        model.apply_random_transactions(60);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    for model in &models {
        model.apply_random_transactions(60);
    }
    sync.stop().await.unwrap();
    sync_until_caught_up(opts).await.unwrap();
    let rows = assert_keyspaces_equal_source(&db, &models);
    assert!(rows > 1500, "{rows} rows compared");
    assert_eq!(
        mirror_tables(&db),
        [
            "commerce.accounts",
            "commerce.corder",
            "commerce.customer",
            "customer.corder",
            "customer.customer"
        ]
    );
    // Plain SQL joins across keyspaces; the two `customer` tables stay apart.
    let conn = Connection::open(&db).unwrap();
    let joined: i64 = conn
        .query_row(
            r#"SELECT count(*) FROM "commerce.customer" a JOIN "customer.customer" b USING (customer_id)"#,
            [],
            |r| r.get(0),
        )
        .unwrap();
    let (a, b) = (
        expected(&models[0], "customer"),
        expected(&models[1], "customer"),
    );
    let both = a.keys().filter(|k| b.contains_key(k)).count() as i64;
    assert!(both > 0 && both < (a.len() + b.len()) as i64);
    assert_eq!(joined, both);
    // The checkpoint holds every shard of both keyspaces.
    let checkpoint = stored_checkpoint(&db);
    let mut shards: Vec<String> = (checkpoint.shard_gtids.iter())
        .map(|s| format!("{}/{}", s.keyspace, s.shard))
        .collect();
    shards.sort();
    assert_eq!(shards, ["commerce/0", "customer/-80", "customer/80-"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_keyspace_is_mirrored_with_a_star_and_status_says_how_tables_are_named() {
    let (models, server) = two_keyspaces(300, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("all.db");
    let (endpoint, path) = (server.endpoint(), db.to_str().unwrap().to_string());
    let out = tokio::task::spawn_blocking(move || {
        let sync = vtmirror(&[
            "sync",
            "--vtgate",
            &endpoint,
            "--keyspace",
            "*",
            "--db",
            &path,
            "--exit-when-caught-up",
            "--caught-up-idle",
            "1",
            "--quiet",
        ]);
        let status = vtmirror(&["status", "--db", &path]);
        (sync, status)
    })
    .await
    .unwrap();
    assert!(out.0.status.success(), "{}", stderr(&out.0));
    assert_keyspaces_equal_source(&db, &models);
    let status = String::from_utf8_lossy(&out.1.stdout).into_owned();
    assert!(
        status.contains("* (tables named keyspace.table)"),
        "{status}"
    );
    assert!(status.contains("customer/-80"), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_of_several_keyspaces_are_chosen_by_qualified_name() {
    let (models, server) = two_keyspaces(200, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("some.db");
    let mut opts = options(&server.endpoint(), &db);
    opts.spec.selection = selection(
        "commerce,customer",
        &[],
        &["commerce.customer", "customer.corder"],
    );
    opts.spec.rules = vtmirror::source::vstream::selection_rules(&opts.spec.selection, &[]);
    sync_until_caught_up(opts).await.unwrap();
    assert_eq!(mirror_tables(&db), ["commerce.customer", "customer.corder"]);
    let conn = Connection::open(&db).unwrap();
    for (model, table) in [(&models[0], "customer"), (&models[1], "corder")] {
        let name = format!("{}.{table}", model.read(|m| m.spec.keyspace.clone()));
        assert_eq!(
            mirrored_as(&conn, model, table, &name),
            expected(model, table)
        );
    }
}

/// Rows of `table` held by the shards named in `shards`, keyed by primary key.
fn shard_rows(model: &Arc<SharedModel>, table: &str, shards: &[&str]) -> Vec<i64> {
    model.read(|m| {
        let names = m.spec.shard_names();
        (m.shards.iter().zip(names))
            .filter(|(_, name)| shards.contains(&name.as_str()))
            .flat_map(|(shard, _)| {
                shard
                    .rows(table)
                    .into_iter()
                    .flat_map(|r| r.keys().copied())
            })
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_range_mirrors_of_each_shard_together_equal_the_source() {
    let (models, server) = two_keyspaces(500, 100).await;
    let customer = &models[1];
    let dir = tempfile::tempdir().unwrap();
    let mut halves = BTreeMap::new();
    for shard in ["-80", "80-"] {
        let db = dir.path().join(format!("{shard}.db"));
        let mut opts = options(&server.endpoint(), &db);
        opts.spec.selection = selection("customer", &[shard], &[]);
        customer.apply_random_transactions(40);
        sync_until_caught_up(opts).await.unwrap();
        halves.insert(shard, db);
    }
    customer.apply_random_transactions(40);
    for (shard, db) in &halves {
        let mut opts = options(&server.endpoint(), db);
        opts.spec.selection = selection("customer", &[shard], &[]);
        sync_until_caught_up(opts).await.unwrap();
    }
    for table in ["customer", "corder"] {
        let want = expected(customer, table);
        let mut union = BTreeMap::new();
        for (shard, db) in &halves {
            let conn = Connection::open(db).unwrap();
            let half = mirrored(&conn, customer, table);
            let mut keys: Vec<i64> = half.keys().copied().collect();
            let mut on_shard = shard_rows(customer, table, &[shard]);
            keys.sort();
            on_shard.sort();
            assert_eq!(
                keys, on_shard,
                "{table} on {shard}: exactly that shard's rows"
            );
            for (pk, row) in half {
                assert!(
                    union.insert(pk, row).is_none(),
                    "{table}: key {pk} in both halves"
                );
            }
        }
        assert_eq!(union, want, "{table}: the halves together equal the source");
        let conn = Connection::open(&halves["-80"]).unwrap();
        let count: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {}", quote(table)), [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(count > 0 && (count as usize) < want.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_keyspace_table_and_shard_flags_fail_in_one_line_and_write_nothing() {
    let (_models, server) = two_keyspaces(20, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bad.db");
    let cases: [(&[&str], &str); 7] = [
        (
            &["--keyspace", "commerce,nosuchks"],
            "keyspace \"nosuchks\" does not exist (vtgate serves: commerce, customer)",
        ),
        (
            &[
                "--keyspace",
                "commerce,customer",
                "--tables",
                "customer.nosuch",
            ],
            "table \"nosuch\" does not exist in keyspace customer",
        ),
        (
            &["--keyspace", "commerce,customer", "--tables", "customer"],
            "name tables as keyspace.table",
        ),
        (
            &["--keyspace", "customer", "--shards", "40-"],
            "\"40-\" is not a shard of keyspace customer (its shards: -80, 80-)",
        ),
        (
            &["--keyspace", "customer", "--shards", "-80,-40"],
            "--shards -80,-40: shards -40 and -80 have overlapping key ranges",
        ),
        (
            &["--keyspace", "commerce,customer", "--shards", "-80"],
            "give exactly one --keyspace",
        ),
        (
            &["--keyspace", "*", "--rule", "/^accounts$"],
            "matches no table of keyspace customer",
        ),
    ];
    for (flags, needle) in cases {
        let (endpoint, path) = (server.endpoint(), db.to_str().unwrap().to_string());
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        let out = tokio::task::spawn_blocking(move || {
            let mut args = vec![
                "sync",
                "--vtgate",
                &endpoint,
                "--db",
                &path,
                "--max-backoff",
                "1",
            ];
            args.extend(flags.iter().map(String::as_str));
            vtmirror(&args)
        })
        .await
        .unwrap();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{needle}: {err}");
        let errors: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("vtmirror: "))
            .collect();
        assert_eq!(errors.len(), 1, "{needle}: one error line: {err}");
        assert!(errors[0].contains(needle), "{needle}: {err}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(left.is_empty(), "{needle}: nothing written: {left:?}");
    }
}
