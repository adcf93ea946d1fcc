//! A change feed consumer as the README tells users to write one: it applies each entry of
//! `vtmirror changes --follow` to its own SQLite file and stores the entry's `seq` in the
//! same transaction; restarted, it asks for the entries after the `seq` it stored. Tests run
//! it as a child process (the test binary itself, `consumer_process`) and kill it with
//! SIGKILL; at the end its tables must equal the mirror's.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use base64::Engine;
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};
use serde_json::Value as Json;
use vtmirror::mirror::schema::quote;

/// The environment variable that turns the test binary into the consumer:
/// `MIRROR_DB|CONSUMER_DB`.
pub const CONSUMER_ENV: &str = "VTMIRROR_FEED_CONSUMER";

/// Starts the test binary `test_binary` as the consumer (its test `test_name` runs `run`).
pub fn spawn(test_name: &str, mirror: &Path, consumer: &Path) -> Child {
    Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
        .env(
            CONSUMER_ENV,
            format!("{}|{}", mirror.display(), consumer.display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the consumer starts")
}

/// The consumer's main loop (never returns normally while the feed follows).
pub fn run(spec: &str) {
    let (mirror, consumer) = spec.split_once('|').expect("MIRROR|CONSUMER");
    let conn = Connection::open(consumer).expect("consumer file");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE IF NOT EXISTS consumer_seq (id INTEGER PRIMARY KEY CHECK (id = 1), seq INTEGER NOT NULL);
         INSERT OR IGNORE INTO consumer_seq VALUES (1, 0);",
    )
    .expect("consumer schema");
    let stored: i64 = conn
        .query_row("SELECT seq FROM consumer_seq", [], |r| r.get(0))
        .expect("stored seq");
    let mut command = Command::new(env!("CARGO_BIN_EXE_vtmirror"));
    let after = stored.to_string();
    command
        .args(["changes", "--follow", "--after", &after, "--db", mirror])
        .stdout(Stdio::piped());
    // SAFETY: prctl in the child before exec touches no memory of ours. The feed dies with
    // its consumer (a SIGKILLed consumer cannot stop it).
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut feed = command.spawn().expect("vtmirror changes starts");
    let lines = BufReader::new(feed.stdout.take().expect("stdout")).lines();
    let mut last = stored;
    for line in lines {
        let entry: Json = serde_json::from_str(&line.expect("a feed line")).expect("JSON");
        let seq = entry["seq"].as_i64().expect("seq");
        assert_eq!(
            seq,
            last + 1,
            "the feed skipped or repeated an entry after seq {last}"
        );
        let tx = conn.unchecked_transaction().expect("begin");
        apply(&tx, &entry);
        tx.execute("UPDATE consumer_seq SET seq = ?1", [seq])
            .expect("seq");
        tx.commit().expect("commit");
        last = seq;
    }
    panic!("the feed ended: {:?}", feed.wait());
}

fn value(json: &Json, binary: bool) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Number(n) => n
            .as_i64()
            .map_or_else(|| Value::Real(n.as_f64().unwrap_or(0.0)), Value::Integer),
        Json::String(s) if binary => Value::Blob(
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .expect("base64"),
        ),
        Json::String(s) => Value::Text(s.clone()),
        other => panic!("a value the feed never sends: {other}"),
    }
}

/// One entry's effect, as a consumer applies it.
pub fn apply(conn: &Connection, entry: &Json) {
    let table = quote(entry["table"].as_str().expect("table"));
    let binary: Vec<&str> = (entry["binary"].as_array().into_iter().flatten())
        .filter_map(Json::as_str)
        .collect();
    let exec = |sql: &str, values: Vec<Value>| {
        conn.execute(sql, params_from_iter(values))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    };
    match entry["op"].as_str().expect("op") {
        "insert" | "update" => {
            let after = entry["after"].as_object().expect("after");
            let names: Vec<String> = after.keys().map(|k| quote(k)).collect();
            let values = after
                .iter()
                .map(|(k, v)| value(v, binary.contains(&k.as_str())));
            let marks = vec!["?"; names.len()].join(", ");
            let sql = format!(
                "INSERT OR REPLACE INTO {table} ({}) VALUES ({marks})",
                names.join(", ")
            );
            exec(&sql, values.collect());
        }
        "delete" => {
            let key = entry["key"].as_object().expect("key");
            let wheres: Vec<String> = key.keys().map(|k| format!("{} IS ?", quote(k))).collect();
            let values = key
                .iter()
                .map(|(k, v)| value(v, binary.contains(&k.as_str())));
            exec(
                &format!("DELETE FROM {table} WHERE {}", wheres.join(" AND ")),
                values.collect(),
            );
        }
        "truncate" if entry.get("shard").is_none() => exec(&format!("DELETE FROM {table}"), vec![]),
        "truncate" => {}
        "schema" | "resync" => {
            let columns = entry["columns"].as_array().expect("columns");
            let names: Vec<String> = (columns.iter())
                .map(|c| quote(c["name"].as_str().expect("name")))
                .collect();
            let mut key: Vec<(i64, String)> = (columns.iter())
                .filter(|c| c["pk"].as_i64().unwrap_or(0) > 0)
                .map(|c| {
                    (
                        c["pk"].as_i64().unwrap_or(0),
                        quote(c["name"].as_str().unwrap_or("")),
                    )
                })
                .collect();
            key.sort();
            let key: Vec<String> = key.into_iter().map(|(_, n)| n).collect();
            let staging = quote("consumer_staging");
            // A schema change keeps the rows of columns that stay; a resync starts empty.
            let keep = entry["op"] == "schema";
            exec(
                &format!("CREATE TABLE IF NOT EXISTS {table} ({})", names.join(", ")),
                vec![],
            );
            exec(&format!("DROP TABLE IF EXISTS {staging}"), vec![]);
            exec(
                &format!(
                    "CREATE TABLE {staging} ({}, PRIMARY KEY ({}))",
                    names.join(", "),
                    key.join(", ")
                ),
                vec![],
            );
            if keep {
                let old: Vec<String> = conn
                    .prepare(&format!(
                        "SELECT name FROM pragma_table_info('{}')",
                        entry["table"].as_str().unwrap_or("").replace('\'', "''")
                    ))
                    .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
                    .expect("columns");
                let shared: Vec<&String> = names
                    .iter()
                    .filter(|n| old.iter().any(|o| quote(o) == **n))
                    .collect();
                let list = shared
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ");
                if !list.is_empty() {
                    exec(
                        &format!("INSERT INTO {staging} ({list}) SELECT {list} FROM {table}"),
                        vec![],
                    );
                }
            }
            exec(&format!("DROP TABLE {table}"), vec![]);
            exec(&format!("ALTER TABLE {staging} RENAME TO {table}"), vec![]);
        }
        "drop" => exec(&format!("DROP TABLE IF EXISTS {table}"), vec![]),
        "rename" => {
            let to = quote(entry["to"].as_str().expect("to"));
            exec(&format!("DROP TABLE IF EXISTS {to}"), vec![]);
            exec(&format!("ALTER TABLE {table} RENAME TO {to}"), vec![]);
        }
        other => panic!("unknown op {other}"),
    }
}

/// The consumer's stored seq (0 before its first entry).
pub fn stored_seq(consumer: &Path) -> i64 {
    Connection::open(consumer)
        .and_then(|c| c.query_row("SELECT seq FROM consumer_seq", [], |r| r.get(0)))
        .unwrap_or(0)
}

/// Every row of every table, sorted, vtmirror's own tables and columns left out.
pub fn tables(db: &Path) -> Vec<(String, Vec<Vec<Value>>)> {
    let conn = Connection::open(db).expect("open");
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
        .expect("tables");
    let mut out = Vec::new();
    for name in names
        .into_iter()
        .filter(|n| !n.starts_with("_vtmirror_") && !n.starts_with("consumer_"))
    {
        let columns: Vec<String> = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{}') ORDER BY name",
                name.replace('\'', "''")
            ))
            .and_then(|mut s| s.query_map([], |r| r.get::<_, String>(0))?.collect())
            .expect("columns");
        let list: Vec<String> = columns
            .iter()
            .filter(|c| !c.starts_with("_vtmirror_"))
            .map(|c| quote(c))
            .collect();
        let sql = format!("SELECT {} FROM {}", list.join(", "), quote(&name));
        let mut rows: Vec<Vec<Value>> = conn
            .prepare(&sql)
            .and_then(|mut s| {
                s.query_map([], |r| {
                    (0..list.len()).map(|i| r.get::<_, Value>(i)).collect()
                })?
                .collect()
            })
            .expect("rows");
        rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        out.push((name, rows));
    }
    out
}
