//! Value fidelity against real Vitess, on both clusters: FLOAT and JSON land in SQLite as
//! MySQL shows them in `SELECT`, identically whether the copy or the binlog delivered the row;
//! vttestserver's copy of large rows delivers every row; an unknown keyspace stops at once with
//! nothing written; `tail` prints a printable VARBINARY as text, as the seed's client does.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::vitess::{assert_same, cluster, sync_until_caught_up, Cluster};
use mysql::prelude::Queryable;
use rusqlite::types::Value;

/// Offset between a copied row and its binlog twin.
const TWIN: i64 = 100_000;

/// FLOAT values that MySQL prints with fewer digits than the float32 holds, subnormals,
/// extremes, a rounding tie and negative zero, each as SQL text.
const FLOATS: &[&str] = &[
    "16777216",
    "123456.79",
    "1.4e-45",
    "1e-40",
    "1.17549435e-38",
    "3.40282346e38",
    "-3.40282346e38",
    "-0.0",
    "0.1",
    "0.333333343",
    "2.71828175",
    "1234565",
    "-98765.4321",
    "7e-10",
];

/// JSON documents: keys of several lengths (MySQL orders them by length, then bytes),
/// nesting, big integers, doubles at the formatting thresholds, escapes and unicode.
const DOCUMENTS: &[&str] = &[
    r#"'{"bb": 1, "a": 2, "ccc": 3, "Z": 4, "": 5, "é": 6, "zz": 7}'"#,
    r#"'{"outer": {"yy": [1, {"b": 2, "aa": 3}], "x": null}, "k": true, "longer_key": false}'"#,
    r#"'[18446744073709551615, -9223372036854775808, 9223372036854775807, 0, -1]'"#,
    r#"'[1e15, 1e14, 123456789012345.6, 1e-15, 1e-16, 0.1, 3.0, -0.0, 1.5e300, 5e-324, 1E2]'"#,
    r#"'{"esc\\"aped": "tab\\there \\u0001 \\u001f \\\\ /", "uni": "日本 😀 \\u00e9"}'"#,
    r#"'"just a string"'"#,
    "'123'",
    "'[]'",
    "'{}'",
    "'[[], {}, [[{}]]]'",
    "JSON_OBJECT('dec', CAST(1.50 AS DECIMAL(5,2)), 'day', CAST('2024-02-29' AS DATE), 'at', CAST('2024-01-02 03:04:05.5' AS DATETIME(6)))",
];

/// Values for a `FLOAT(12,4)` column, which MySQL prints with 4 decimals.
const DECIMALS_SHOWN: &[&str] = &[
    "123456.7891",
    "-0.00005",
    "0.015",
    "99999.99995",
    "1.2345678",
    "-7654321.1234",
    "NULL",
];

/// A few hundred more float32 values, spread over every exponent, as 9-digit text (which
/// reads back as exactly that float32).
fn spread_floats() -> Vec<String> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..300)
        .filter_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = f32::from_bits(state as u32);
            // Nine digits of a value near FLT_MAX can lie above it: MySQL refuses those.
            (value.is_finite() && value.abs() < 1e38).then(|| format!("{value:.8e}"))
        })
        .collect()
}

fn create_table(conn: &mut mysql::Conn) {
    conn.query_drop("DROP TABLE IF EXISTS fidelity").unwrap();
    conn.query_drop(
        "CREATE TABLE fidelity (id BIGINT NOT NULL PRIMARY KEY, f FLOAT, fd FLOAT(12,4), \
         d DOUBLE, j JSON, vb VARBINARY(64))",
    )
    .expect("fidelity table created through vtgate");
}

/// One row per FLOAT value and per document; `offset` makes the binlog twins.
fn insert_rows(conn: &mut mysql::Conn, offset: i64) -> i64 {
    let mut floats: Vec<String> = FLOATS.iter().map(|f| f.to_string()).collect();
    floats.extend(spread_floats());
    let rows = floats.len().max(DOCUMENTS.len());
    for i in 0..rows {
        let f = floats.get(i).map_or("NULL", String::as_str);
        let j = DOCUMENTS.get(i).copied().unwrap_or("NULL");
        let fd = DECIMALS_SHOWN[i % DECIMALS_SHOWN.len()];
        let id = i as i64 + 1 + offset;
        conn.query_drop(format!(
            "INSERT INTO fidelity VALUES ({id}, {f}, {fd}, {f}, {j}, 'sku-{id}')"
        ))
        .unwrap_or_else(|e| panic!("inserting fidelity row {id}: {e}"));
    }
    rows as i64
}

fn mirror_row(conn: &rusqlite::Connection, id: i64) -> Vec<Value> {
    conn.query_row(
        "SELECT f, fd, d, j, vb FROM fidelity WHERE id = ?1",
        [id],
        |r| (0..5).map(|i| r.get::<_, Value>(i)).collect(),
    )
    .unwrap_or_else(|e| panic!("fidelity row {id} is mirrored: {e}"))
}

/// What `SELECT` through vtgate shows: FLOAT and DOUBLE as text, JSON as MySQL's text.
fn source_row(conn: &mut mysql::Conn, id: i64) -> (Option<String>, Option<String>, Option<String>) {
    let row: Option<(Option<String>, Option<String>, Option<String>)> = conn
        .query_first(format!("SELECT f, fd, j FROM fidelity WHERE id = {id}"))
        .unwrap();
    row.unwrap_or_else(|| panic!("source row {id} exists"))
}

fn check_cluster(c: &Cluster, keyspace: &str) {
    let mut conn = c.sql(keyspace);
    create_table(&mut conn);
    let rows = insert_rows(&mut conn, 0);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fidelity.db");
    let args = ["--tables", "fidelity", "--tablet-type", "primary"];
    let (ok, err) = sync_until_caught_up(&c.grpc, keyspace, &db, &args);
    assert!(ok, "{keyspace}: copy failed: {err}");
    insert_rows(&mut conn, TWIN);
    let (ok, err) = sync_until_caught_up(&c.grpc, keyspace, &db, &args);
    assert!(ok, "{keyspace}: replication failed: {err}");
    let mirror = rusqlite::Connection::open(&db).unwrap();
    for id in 1..=rows {
        let copied = mirror_row(&mirror, id);
        let streamed = mirror_row(&mirror, id + TWIN);
        assert_eq!(
            copied[..4],
            streamed[..4],
            "{keyspace} row {id}: copy phase vs binlog phase"
        );
        let (f, fd, j) = source_row(&mut conn, id);
        let shown = |text: Option<String>| {
            text.map_or(Value::Null, |t| {
                Value::Real(t.parse::<f64>().unwrap() + 0.0)
            })
        };
        assert_eq!(
            copied[0],
            shown(f.clone()),
            "{keyspace} row {id}: FLOAT {f:?}"
        );
        assert_eq!(copied[1], shown(fd), "{keyspace} row {id}: FLOAT(12,4)");
        assert_eq!(
            copied[3],
            j.clone().map_or(Value::Null, Value::Text),
            "{keyspace} row {id}: JSON is MySQL's text"
        );
    }
    let mirrored: i64 = mirror
        .query_row("SELECT count(*) FROM fidelity", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mirrored, 2 * rows, "{keyspace}: every row and its twin");
    conn.query_drop("DROP TABLE fidelity").unwrap();
}

#[test]
fn float_and_json_equal_select_by_copy_and_by_binlog_on_vttestserver() {
    let Some(c) = cluster("") else { return };
    check_cluster(&c, "commerce");
}

#[test]
fn float_and_json_equal_select_by_copy_and_by_binlog_on_real_tablets() {
    let Some(c) = cluster("RESHARD_") else { return };
    check_cluster(&c, "onlineddl");
}

/// A row of `len` bytes that differs from every other row (so a duplicate shows).
fn large_payload(id: i64, len: usize) -> Vec<u8> {
    let mut state = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// With `exclude_keyspace_from_table_name`, vttestserver v24 sometimes delivered one large
/// row twice in place of another (4 copies of 6). vtmirror no longer sends the flag: every
/// copy must hold every row, byte for byte.
#[test]
fn vttestserver_copies_every_large_row_every_time() {
    let Some(c) = cluster("") else { return };
    let mut conn = c.sql("commerce");
    conn.query_drop("DROP TABLE IF EXISTS bigrows").unwrap();
    conn.query_drop("CREATE TABLE bigrows (id BIGINT NOT NULL PRIMARY KEY, payload LONGBLOB)")
        .unwrap();
    for id in 1..=40 {
        conn.exec_drop(
            "INSERT INTO bigrows VALUES (?, ?)",
            (id, large_payload(id, 250 * 1024)),
        )
        .unwrap();
    }
    for copy in 1..=6 {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("big.db");
        let args = ["--tables", "bigrows", "--tablet-type", "primary"];
        let (ok, err) = sync_until_caught_up(&c.grpc, "commerce", &db, &args);
        assert!(ok, "copy {copy} failed: {err}");
        assert_eq!(assert_same(&mut conn, &db, "bigrows", 1), 40, "copy {copy}");
    }
    conn.query_drop("DROP TABLE bigrows").unwrap();
}

#[test]
fn an_unknown_keyspace_stops_at_once_and_writes_nothing() {
    let Some(c) = cluster("") else { return };
    // ('*' is every keyspace since several keyspaces share one mirror: tests/e2e/keyspaces.rs.)
    for keyspace in ["nosuchks", "comm erce"] {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("typo.db");
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_vtmirror"))
            .args(["sync", "--vtgate", &c.grpc, "--keyspace", keyspace, "--db"])
            .arg(&db)
            .args(["--quiet", "--max-backoff", "1"])
            .env("RUST_LOG", "off")
            .output()
            .expect("vtmirror runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{keyspace}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{keyspace}: not retried"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(&format!("{keyspace:?}")) || stderr.contains(keyspace));
        assert!(stderr.contains("keyspace"), "{stderr}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(
            leftovers.is_empty(),
            "{keyspace}: nothing written, found {leftovers:?}"
        );
    }
}

/// Seed 000's client prints `corder.sku` (VARBINARY) `123` as `123`; so does `tail`.
#[test]
fn tail_prints_a_printable_varbinary_as_text_and_other_bytes_as_hex() {
    let Some(c) = cluster("") else { return };
    let mut conn = c.sql("commerce");
    let dir = tempfile::tempdir().unwrap();
    let printed = dir.path().join("tail.txt");
    let mut tail = Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args(["tail", "--vtgate", &c.grpc, "--keyspace", "commerce"])
        .args(["--tablet-type", "primary", "--tables", "corder"])
        .args(["--pos", r#"[ {"shard":"", "gtid":"current"} ]"#])
        .stdout(std::fs::File::create(&printed).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("vtmirror tail starts");
    std::thread::sleep(Duration::from_secs(3));
    conn.query_drop(
        "INSERT INTO corder (order_id, customer_id, sku, price) VALUES \
         (990001, 1, '123', 10), (990002, 1, X'00FF0A', 20)",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    let ended = |t: &str| {
        t.find("990002")
            .is_some_and(|at| t[at..].contains("VGTID after"))
    };
    while !ended(&text) {
        assert!(Instant::now() < deadline, "tail printed the insert: {text}");
        std::thread::sleep(Duration::from_millis(200));
        text = std::fs::read_to_string(&printed).unwrap();
    }
    let _ = tail.kill();
    let _ = tail.wait();
    conn.query_drop("DELETE FROM corder WHERE order_id IN (990001, 990002)")
        .unwrap();
    assert!(
        text.contains("| 123 "),
        "printable VARBINARY as text: {text}"
    );
    assert!(text.contains("| 0x00ff0a "), "other bytes as hex: {text}");
}
