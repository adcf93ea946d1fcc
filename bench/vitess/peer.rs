//! The peer arm: the Debezium Vitess connector in its embedded engine (our harness in
//! `bench/debezium/`, built by `scripts/bench.sh --peer debezium`), run as a child process that
//! copies the same table from the same vtgate and stops by itself once it has received (discard
//! sink) or committed (SQLite sink) every row. Timed like `vtmirror sync`: the whole process,
//! JVM start and engine shutdown included.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};

/// Where `scripts/bench.sh` builds the harness: the jar and its runtime classpath.
fn harness_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/debezium/target")
}

/// Debezium's name for the tablet type (its enum predates Vitess's rename to PRIMARY).
fn debezium_tablet_type(tablet_type: &str) -> &'static str {
    match tablet_type {
        "replica" => "REPLICA",
        "rdonly" => "RDONLY",
        _ => "MASTER",
    }
}

/// One run of the harness.
pub struct PeerRun {
    pub rows: u64,
    /// Wall time of the whole `java` process.
    pub seconds: f64,
    /// From the harness's `main` to the last expected row handled (no JVM start, no shutdown).
    pub inner_seconds: f64,
    pub peak_rss_mb: f64,
}

/// Fixed parts of a run: the source, the table and the expected row count.
pub struct PeerTarget<'a> {
    pub grpc: &'a str,
    pub keyspace: &'a str,
    pub table: &'a str,
    pub rows: u64,
    pub tablet_type: &'a str,
}

/// Runs the harness with `sink` ("discard" or "sqlite", the latter into `db`) and checks its
/// exactly-once result: rows received, rows stored and distinct keys all equal the table's rows.
pub fn debezium_copy(target: &PeerTarget, sink: &str, db: &Path) -> Result<PeerRun> {
    let dir = harness_dir();
    let classpath = format!(
        "{}:{}/*",
        dir.join("debezium-peer-1.jar").display(),
        dir.join("lib").display()
    );
    let (host, port) = target
        .grpc
        .rsplit_once(':')
        .context("--grpc is HOST:PORT")?;
    let stderr_path = db.with_extension("stderr.log");
    let started = Instant::now();
    let output = Command::new("java")
        .args(["-cp", &classpath, "vtmirror.bench.PeerBench"])
        .args([
            "--host",
            host,
            "--port",
            port,
            "--keyspace",
            target.keyspace,
        ])
        .args(["--table", target.table, "--rows", &target.rows.to_string()])
        .args(["--sink", sink, "--db"])
        .arg(db)
        .args(["--tablet-type", debezium_tablet_type(target.tablet_type)])
        .stderr(Stdio::from(std::fs::File::create(&stderr_path)?))
        .output()
        .context("running java (scripts/bench.sh --peer debezium builds the harness)")?;
    let seconds = started.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let result = stdout
        .lines()
        .find_map(|line| line.strip_prefix("PEER_RESULT "))
        .map(parse_result);
    let Some(fields) = result.filter(|_| output.status.success()) else {
        let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        anyhow::bail!(
            "Debezium {sink} run failed ({}): {stdout}\n{}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    };
    check_exactly_once(&fields, target.rows)?;
    let number = |key: &str| fields.get(key).and_then(|v| v.parse::<f64>().ok());
    Ok(PeerRun {
        rows: target.rows,
        seconds,
        inner_seconds: number("seconds").unwrap_or(f64::NAN),
        peak_rss_mb: number("peak_rss_kb").unwrap_or(f64::NAN) / 1024.0,
    })
}

fn parse_result(line: &str) -> HashMap<String, String> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn check_exactly_once(fields: &HashMap<String, String>, rows: u64) -> Result<()> {
    for key in ["received", "stored", "distinct"] {
        let value: u64 = fields
            .get(key)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("PEER_RESULT lacks {key}"))?;
        anyhow::ensure!(value == rows, "Debezium: {key} = {value}, expected {rows}");
    }
    Ok(())
}
