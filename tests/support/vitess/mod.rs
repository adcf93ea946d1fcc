//! Real Vitess for end-to-end tests: the cluster started by `scripts/vitess-local.sh`, read
//! through vtgate's MySQL port (`mod.rs`); comparison of its tables with a mirror (`compare`);
//! `vtmirror sync` processes started, killed and awaited (`process`); a background writer of
//! source changes (`writer`).

use std::collections::BTreeMap;

use mysql::prelude::Queryable;

mod compare;
mod process;
mod writer;

#[allow(unused_imports)] // each test binary uses a different part
pub use compare::*;
#[allow(unused_imports)]
pub use process::*;
#[allow(unused_imports)]
pub use writer::*;

/// Ports of a running cluster, from the env file the cluster script writes. Holding one is
/// this test's turn on the clusters: the real-Vitess tests share keyspaces and two cores, so
/// they run one at a time (as they did when each file was its own test binary).
pub struct Cluster {
    pub grpc: String,
    pub mysql: String,
    _turn: std::sync::MutexGuard<'static, ()>,
}

static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn env_file() -> BTreeMap<String, String> {
    let path =
        std::env::var("VTMIRROR_VITESS_ENV").unwrap_or_else(|_| "/tmp/vtmirror-vitess/env".into());
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The cluster named by `prefix` ("" = vttestserver, "RESHARD_" = the reshard cluster).
/// Only with `VTMIRROR_E2E=1` (set by scripts/test.sh); a missing cluster is then a failure.
pub fn cluster(prefix: &str) -> Option<Cluster> {
    if std::env::var("VTMIRROR_E2E").as_deref() != Ok("1") {
        eprintln!("skipped: real-Vitess tests run with VTMIRROR_E2E=1 (scripts/test.sh sets it)");
        return None;
    }
    let env = env_file();
    let grpc = env.get(&format!("{prefix}VTGATE_GRPC")).cloned();
    let mysql = env.get(&format!("{prefix}VTGATE_MYSQL")).cloned();
    match (grpc, mysql) {
        (Some(grpc), Some(mysql)) => Some(Cluster {
            grpc,
            mysql,
            // A test that failed while holding its turn poisons the lock; the next one runs.
            _turn: TURN.lock().unwrap_or_else(|e| e.into_inner()),
        }),
        _ => panic!(
            "VTMIRROR_E2E=1 but no {prefix}vtgate is running: run scripts/vitess-local.sh first"
        ),
    }
}

impl Cluster {
    /// A MySQL-protocol session on vtgate, using `keyspace` (or a target such as `ks:-80`).
    pub fn sql(&self, keyspace: &str) -> mysql::Conn {
        self.try_sql(keyspace).expect("vtgate MySQL port answers")
    }

    fn try_sql(&self, keyspace: &str) -> mysql::Result<mysql::Conn> {
        let (host, port) = self.mysql.rsplit_once(':').expect("HOST:PORT");
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some(host))
            .tcp_port(port.parse().expect("port"))
            .user(Some("root"))
            .db_name(Some(keyspace));
        mysql::Conn::new(opts)
    }
}

/// Statements run when dropped, also when the test fails (errors ignored): a test's own
/// tables do not outlive it into the other tests' mirrors. Declare it before the writers and
/// syncs that use the tables, so that they stop first.
pub struct Cleanup<'a> {
    cluster: &'a Cluster,
    steps: Vec<(String, String)>,
}

impl<'a> Cleanup<'a> {
    pub fn new(cluster: &'a Cluster) -> Self {
        Cleanup {
            cluster,
            steps: Vec::new(),
        }
    }

    /// Adds `sql`, run through vtgate target `target`.
    pub fn then(mut self, target: &str, sql: &str) -> Self {
        self.steps.push((target.into(), sql.into()));
        self
    }
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for (target, sql) in &self.steps {
            if let Ok(mut conn) = self.cluster.try_sql(target) {
                let _ = conn.query_drop(sql);
            }
        }
    }
}

pub type Rows = BTreeMap<Vec<Option<Vec<u8>>>, Vec<Option<Vec<u8>>>>;

/// Runs each statement; a failing one fails the test, naming it.
pub fn run_sql(conn: &mut mysql::Conn, statements: &[&str]) {
    for sql in statements {
        conn.query_drop(*sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// Inserts `(key, value)` rows `ids` into `table`, the value `{label}{id}`, 200 rows a statement.
pub fn seed_rows(
    conn: &mut mysql::Conn,
    table: &str,
    (key, value): (&str, &str),
    ids: std::ops::RangeInclusive<i64>,
    label: &str,
) {
    let ids: Vec<i64> = ids.collect();
    for chunk in ids.chunks(200) {
        let rows: Vec<String> = chunk
            .iter()
            .map(|i| format!("({i}, '{label}{i}')"))
            .collect();
        conn.query_drop(format!(
            "INSERT INTO {table} ({key}, {value}) VALUES {}",
            rows.join(", ")
        ))
        .unwrap_or_else(|e| panic!("seeding {table}: {e}"));
    }
}

/// Whether Vitess made `table` for its own work (online DDL, table GC): names such as
/// `_vt_hld_<uuid>_<time>_`, `_vt_HOLD_<uuid>_<time>` or `_<uuid>_<time>_vrepl`, which
/// VStreams and vtmirror leave out.
pub fn is_vitess_internal(table: &str) -> bool {
    let parts: Vec<&str> = table.split('_').collect();
    let has = |n: usize, digit: fn(&u8) -> bool| {
        parts
            .iter()
            .any(|p| p.len() == n && p.as_bytes().iter().all(digit))
    };
    let stamped = has(14, u8::is_ascii_digit);
    let kinds = ["gho", "ghc", "del", "new", "vrepl"];
    (table.starts_with("_vt_") && stamped && has(32, u8::is_ascii_hexdigit))
        || (table.starts_with('_') && stamped && kinds.contains(parts.last().unwrap()))
}

/// The shards vtgate serves for `keyspace`, as `SHOW VITESS_SHARDS` lists them.
pub fn serving_shards(c: &Cluster, keyspace: &str) -> Vec<String> {
    let listed: Vec<String> = c
        .sql(keyspace)
        .query("SHOW VITESS_SHARDS")
        .expect("SHOW VITESS_SHARDS");
    listed
        .iter()
        .filter_map(|s| s.split_once('/'))
        .filter(|(k, _)| *k == keyspace)
        .map(|(_, shard)| shard.to_string())
        .collect()
}

/// The tables of a vtgate target (`ks`, or `ks:shard`), Vitess's internal ones left out.
pub fn source_tables(conn: &mut mysql::Conn) -> Vec<String> {
    let mut tables: Vec<String> = conn.query("SHOW TABLES").expect("SHOW TABLES");
    tables.retain(|t| !is_vitess_internal(t));
    tables.sort();
    tables
}
