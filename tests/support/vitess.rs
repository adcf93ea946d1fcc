//! Real Vitess for end-to-end tests: the cluster started by `scripts/vitess-local.sh`, read
//! through vtgate's MySQL port, and comparison of its tables with a mirror.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mysql::prelude::Queryable;
use rusqlite::types::Value;
use vtmirror::mirror::schema::quote;

/// Ports of a running cluster, from the env file the cluster script writes. Holding one is
/// this test's turn on the clusters: the real-Vitess tests share keyspaces and two cores, so
/// they run one at a time (as they did when each file was its own test binary).
pub struct Cluster {
    pub grpc: String,
    pub mysql: String,
    _turn: std::sync::MutexGuard<'static, ()>,
}

static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn env_file() -> BTreeMap<String, String> {
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
    /// A MySQL-protocol session on vtgate, using `keyspace`.
    pub fn sql(&self, keyspace: &str) -> mysql::Conn {
        let (host, port) = self.mysql.rsplit_once(':').expect("HOST:PORT");
        let opts = mysql::OptsBuilder::new()
            .ip_or_hostname(Some(host))
            .tcp_port(port.parse().expect("port"))
            .user(Some("root"))
            .db_name(Some(keyspace));
        mysql::Conn::new(opts).expect("vtgate MySQL port answers")
    }
}

pub type Rows = BTreeMap<Vec<Option<Vec<u8>>>, Vec<Option<Vec<u8>>>>;

/// A source table through vtgate: key columns → all values, as MySQL text.
pub fn source_rows(conn: &mut mysql::Conn, table: &str, key_columns: usize) -> Rows {
    let rows: Vec<mysql::Row> = conn
        .query(format!("SELECT * FROM `{}`", table.replace('`', "``")))
        .expect("source table reads");
    rows.into_iter()
        .map(|row| {
            let values: Vec<Option<Vec<u8>>> = row
                .unwrap()
                .into_iter()
                .map(|v| match v {
                    mysql::Value::NULL => None,
                    mysql::Value::Bytes(b) => Some(b),
                    other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
                })
                .collect();
            (values[..key_columns].to_vec(), values)
        })
        .collect()
}

/// The same table in the mirror, values rendered as MySQL's text would be.
pub fn mirror_rows(db: &Path, table: &str, key_columns: usize) -> Rows {
    let conn = rusqlite::Connection::open(db).expect("mirror opens");
    let mut stmt = conn
        .prepare(&format!("SELECT * FROM {}", quote(table)))
        .expect("mirrored table exists");
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get::<_, Value>(i)? {
                        Value::Null => None,
                        Value::Integer(v) => Some(v.to_string().into_bytes()),
                        Value::Real(v) => Some(v.to_string().into_bytes()),
                        Value::Text(t) => Some(t.into_bytes()),
                        Value::Blob(b) => Some(b),
                    })
                })
                .collect::<rusqlite::Result<Vec<_>>>()
        })
        .expect("mirror reads");
    rows.map(|r| {
        let values = r.expect("row reads");
        (values[..key_columns].to_vec(), values)
    })
    .collect()
}

/// Asserts the mirror holds exactly the source's rows; returns how many.
pub fn assert_same(conn: &mut mysql::Conn, db: &Path, table: &str, key_columns: usize) -> usize {
    let want = source_rows(conn, table, key_columns);
    let have = mirror_rows(db, table, key_columns);
    let missing = want.keys().filter(|k| !have.contains_key(*k)).count();
    let extra = have.keys().filter(|k| !want.contains_key(*k)).count();
    let differing = want
        .iter()
        .filter(|(k, v)| have.get(*k).is_some_and(|h| h != *v))
        .count();
    assert_eq!(
        (missing, extra, differing),
        (0, 0, 0),
        "table {table}: missing, extra, differing rows"
    );
    want.len()
}

/// `vtmirror sync` as a child process.
pub fn sync_process(grpc: &str, keyspace: &str, db: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args([
            "sync",
            "--vtgate",
            grpc,
            "--keyspace",
            keyspace,
            "--heartbeat",
            "1",
        ])
        .arg("--db")
        .arg(db)
        .args(["--max-backoff", "1", "--caught-up-idle", "3"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vtmirror binary starts")
}

/// Runs a sync to caught-up; returns its exit success and stderr. A sync still running after
/// five minutes is killed and counts as a failure.
pub fn sync_until_caught_up(
    grpc: &str,
    keyspace: &str,
    db: &Path,
    extra: &[&str],
) -> (bool, String) {
    let mut args = vec!["--exit-when-caught-up"];
    args.extend_from_slice(extra);
    let mut child = sync_process(grpc, keyspace, db, &args);
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(status) = child.try_wait().expect("sync is waitable") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = reader.join().unwrap_or_default();
    match status {
        Some(status) => (status.success(), text),
        None => (false, format!("sync did not catch up within 300 s: {text}")),
    }
}
