//! Shared test support: start the simulated vtgate, run a sync, compare mirror and source.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::Connection;
use vtmirror::commands::sync::{Outcome, SyncOptions};
use vtmirror::mirror::schema::quote;
use vtmirror::sim::{ModelSpec, SharedModel, SimVtgate, StreamOptions};
use vtmirror::source::proto::query::Field;
use vtmirror::source::proto::topodata::TabletType;
use vtmirror::source::value::{to_sql_bytes, ColumnType};
use vtmirror::source::vstream::{rules, StreamSpec};

pub const TABLES: [&str; 3] = ["accounts", "corder", "customer"];

/// A populated demo keyspace behind a running simulated vtgate.
pub async fn source(rows_per_table: usize) -> (Arc<SharedModel>, SimVtgate) {
    let model = SharedModel::new(ModelSpec::demo(rows_per_table));
    let server = SimVtgate::start(model.clone(), "127.0.0.1:0")
        .await
        .expect("simulated vtgate starts");
    (model, server)
}

/// Vitess's local example (`commerce` unsharded, `customer` on two shards; both have a
/// `customer` table) behind one simulated vtgate, with copy batches of `batch_rows` rows.
pub async fn two_keyspaces(
    rows_per_table: usize,
    batch_rows: usize,
) -> (Vec<Arc<SharedModel>>, SimVtgate) {
    let models: Vec<_> = ModelSpec::local_example(rows_per_table)
        .into_iter()
        .map(SharedModel::new)
        .collect();
    let mut opts = StreamOptions::default();
    opts.copy_batch.rows = batch_rows;
    opts.pack_transactions = false;
    let server = SimVtgate::start_keyspaces(models.clone(), "127.0.0.1:0", opts)
        .await
        .expect("simulated vtgate starts");
    (models, server)
}

/// Like `source`, with copy batches of `batch_rows` rows.
pub async fn source_with_batch(
    rows_per_table: usize,
    batch_rows: usize,
) -> (Arc<SharedModel>, SimVtgate) {
    let model = SharedModel::new(ModelSpec::demo(rows_per_table));
    let mut opts = StreamOptions::default();
    opts.copy_batch.rows = batch_rows;
    // One response per transaction, as real vtgate sends them.
    opts.pack_transactions = false;
    let server = SimVtgate::start_with(model.clone(), "127.0.0.1:0", opts)
        .await
        .expect("simulated vtgate starts");
    (model, server)
}

pub fn options(endpoint: &str, db: &Path) -> SyncOptions {
    let spec = StreamSpec {
        vtgate: endpoint.into(),
        selection: vtmirror::source::selection::Selection::keyspace("commerce"),
        rules: rules(&[], &[]),
        tablet_type: TabletType::Replica,
        heartbeat_secs: 1,
        caller_id: None,
        tables_to_copy: vec![],
        exclude_keyspace_from_table_name: false,
    };
    let mut opts = SyncOptions::new(spec, db.to_path_buf());
    opts.exit_when_caught_up = true;
    opts.caught_up_idle = Duration::from_millis(1500);
    opts.backoff_base = Duration::from_millis(20);
    opts.backoff_cap = Duration::from_millis(200);
    opts
}

/// Runs a sync until it reports caught up (bounded by a generous timeout).
pub async fn sync_until_caught_up(opts: SyncOptions) -> anyhow::Result<Outcome> {
    let progress = Arc::new(vtmirror::output::progress::Progress::default());
    tokio::time::timeout(
        Duration::from_secs(120),
        vtmirror::commands::sync::run(opts, progress, std::future::pending()),
    )
    .await
    .map_err(|_| anyhow::anyhow!("sync did not catch up within 120 s"))?
}

fn column_types(fields: &[Field]) -> Vec<ColumnType> {
    fields
        .iter()
        .map(|f| ColumnType {
            vitess_type: f.r#type,
            collation: f.charset,
            column_type: f.column_type.clone(),
            enum_set_strings: true,
        })
        .collect()
}

/// The source table as the mirror should hold it: pk → converted values.
pub fn expected(model: &SharedModel, table: &str) -> BTreeMap<i64, Vec<Value>> {
    let types = column_types(&model.fields(table));
    model
        .table_rows(table)
        .into_iter()
        .map(|(pk, row)| {
            let values = row
                .iter()
                .zip(&types)
                .map(|(v, t)| {
                    to_sql_bytes(t, v.as_deref())
                        .expect("model values convert")
                        .into()
                })
                .collect();
            (pk, values)
        })
        .collect()
}

/// The mirrored table: pk (first column) → values, in the source's column order.
pub fn mirrored(conn: &Connection, model: &SharedModel, table: &str) -> BTreeMap<i64, Vec<Value>> {
    mirrored_as(conn, model, table, table)
}

/// Like `mirrored`, for source table `table` stored in the mirror as `mirror_table`.
pub fn mirrored_as(
    conn: &Connection,
    model: &SharedModel,
    table: &str,
    mirror_table: &str,
) -> BTreeMap<i64, Vec<Value>> {
    let fields = model.fields(table);
    let cols: Vec<String> = fields.iter().map(|f| quote(&f.name)).collect();
    let sql = format!("SELECT {} FROM {}", cols.join(", "), quote(mirror_table));
    let mut stmt = conn.prepare(&sql).expect("mirrored table exists");
    let rows = stmt
        .query_map([], |r| {
            (0..cols.len())
                .map(|i| r.get::<_, Value>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("mirror reads");
    let mut out = BTreeMap::new();
    for row in rows {
        let row = row.expect("row reads");
        let Value::Integer(pk) = row[0] else {
            panic!("pk is an integer")
        };
        assert!(
            out.insert(pk, row).is_none(),
            "duplicate key {pk} in {table}"
        );
    }
    out
}

/// Asserts every table equals the source; returns the number of rows compared.
pub fn assert_mirror_equals_source(db: &Path, model: &SharedModel) -> usize {
    let conn = Connection::open(db).expect("mirror opens");
    let tables = TABLES.map(|t| (t.to_string(), t.to_string()));
    let total = assert_tables_equal(&conn, model, &tables);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    total
}

/// Asserts every table of every keyspace equals the source, in a several-keyspace mirror
/// (tables named `keyspace.table`); returns the number of rows compared.
pub fn assert_keyspaces_equal_source(db: &Path, models: &[Arc<SharedModel>]) -> usize {
    let conn = Connection::open(db).expect("mirror opens");
    let mut total = 0;
    for model in models {
        let keyspace = &model.read(|m| m.spec.keyspace.clone());
        let tables: Vec<(String, String)> = model
            .read(|m| {
                m.spec
                    .tables
                    .iter()
                    .map(|t| t.name.clone())
                    .collect::<Vec<_>>()
            })
            .into_iter()
            .map(|t| (t.clone(), format!("{keyspace}.{t}")))
            .collect();
        total += assert_tables_equal(&conn, model, &tables);
    }
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    total
}

/// Compares (source table, mirror table) pairs: no missing, extra or differing row.
fn assert_tables_equal(
    conn: &Connection,
    model: &SharedModel,
    tables: &[(String, String)],
) -> usize {
    let mut total = 0;
    for (table, mirror_table) in tables {
        let want = expected(model, table);
        let have = mirrored_as(conn, model, table, mirror_table);
        let missing = want.keys().filter(|k| !have.contains_key(k)).count();
        let extra = have.keys().filter(|k| !want.contains_key(k)).count();
        let differing = want
            .iter()
            .filter(|(k, v)| have.get(k).is_some_and(|h| h != *v))
            .count();
        assert_eq!(
            (missing, extra, differing),
            (0, 0, 0),
            "table {mirror_table}: missing, extra, differing rows"
        );
        total += want.len();
    }
    total
}

/// The stored checkpoint's VGtid.
pub fn stored_checkpoint(db: &Path) -> vtmirror::source::proto::binlogdata::VGtid {
    let conn = Connection::open(db).unwrap();
    let bytes: Vec<u8> = conn
        .query_row("SELECT vgtid FROM _vtmirror_checkpoint", [], |r| r.get(0))
        .unwrap();
    vtmirror::source::vgtid::decode(&bytes).unwrap()
}

/// Shard → gtid of a VGtid, for comparing positions.
pub fn positions(v: &vtmirror::source::proto::binlogdata::VGtid) -> BTreeMap<String, String> {
    v.shard_gtids
        .iter()
        .map(|s| (s.shard.clone(), s.gtid.clone()))
        .collect()
}

/// The change log's newest seq (0 when it is empty or cannot be read yet).
pub fn newest_seq(db: &Path) -> i64 {
    Connection::open(db)
        .and_then(|c| {
            c.query_row(
                "SELECT coalesce(max(seq), 0) FROM _vtmirror_changes",
                [],
                |r| r.get(0),
            )
        })
        .unwrap_or(0)
}

pub fn copied_rows(db: &Path) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.query_row(
        "SELECT coalesce(sum(rows_copied), 0) FROM _vtmirror_copy_state",
        [],
        |r| r.get(0),
    )
    .unwrap()
}
pub mod checkpoint_watch;
pub mod feed_consumer;
pub mod http;
pub mod prometheus;
pub mod proxy;
pub mod sync_runner;
pub mod vitess;

/// `vtmirror tail` options against the simulated keyspace, with fast retries.
pub fn tail_options(
    endpoint: &str,
    position: vtmirror::source::proto::binlogdata::VGtid,
    format: vtmirror::commands::tail::Format,
    count: Option<u64>,
) -> vtmirror::commands::tail::TailOptions {
    vtmirror::commands::tail::TailOptions {
        spec: options(endpoint, Path::new("unused.db")).spec,
        position,
        format,
        count,
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(100),
    }
}

/// Runs a tail until its count or `limit` elapses; returns its result, stdout and stderr text.
pub async fn run_tail(
    opts: vtmirror::commands::tail::TailOptions,
    limit: Duration,
) -> (anyhow::Result<()>, String, String) {
    let (mut out, mut notices) = (Vec::new(), Vec::new());
    let sinks = vtmirror::commands::tail::Sinks {
        out: &mut out,
        notices: &mut notices,
    };
    let result = vtmirror::commands::tail::run(&opts, sinks, tokio::time::sleep(limit)).await;
    let text = |b: Vec<u8>| String::from_utf8(b).expect("tail prints UTF-8");
    (result, text(out), text(notices))
}

/// A customer row of the demo schema: id, email, created.
pub fn customer_row(id: i64, email: &str) -> vtmirror::sim::Row {
    vec![
        Some(id.to_string().into_bytes()),
        Some(email.as_bytes().to_vec()),
        Some(b"2024-01-02 03:04:05.000000".to_vec()),
    ]
}
