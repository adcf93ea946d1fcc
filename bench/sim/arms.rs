//! The arms: L0 (plain rusqlite, rows already decoded), N (naive row-at-a-time autocommit),
//! D0 (receive + decode from loopback, discard) and T (`vtmirror sync` end to end, in its own
//! process against the replay server).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rusqlite::{params_from_iter, Connection};
use vtmirror::mirror::schema::{quote, Layout};
use vtmirror::mirror::store::{Durability, Identity, Mirror};
use vtmirror::source::decode::{Decoder, Step};
use vtmirror::source::proto::topodata::TabletType;
use vtmirror::source::selection::Selection;
use vtmirror::source::value::Value;
use vtmirror::source::vstream::{open_event_stream, rules, StreamSpec};

use crate::measure::{disk_written, process_cpu, thread_cpu, wait_child, Run};
use crate::replay::{Feed, ReplayServer};
use crate::scrape::{free_port, Scraper};
use crate::workload::{table_schema, DecodedOp, KEYSPACE, TABLE};

/// Rows per transaction of the L0 arm: large enough that commits cost nothing.
const L0_BATCH_ROWS: usize = 100_000;

fn column_names() -> Vec<String> {
    table_schema().column_names()
}

/// `INSERT INTO item (…) VALUES (?, …)` with `rows` value tuples.
fn insert_sql_rows(rows: usize) -> String {
    let columns = column_names();
    let tuple = format!("({})", vec!["?"; columns.len()].join(", "));
    let quoted: Vec<String> = columns.iter().map(|c| quote(c)).collect();
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        quote(TABLE),
        quoted.join(", "),
        vec![tuple; rows].join(", ")
    )
}

fn insert_sql() -> String {
    insert_sql_rows(1)
}

fn update_sql() -> String {
    let columns = column_names();
    let sets: Vec<String> = columns
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, c)| format!("{} = ?{}", quote(c), i + 1))
        .collect();
    format!(
        "UPDATE {} SET {} WHERE {} = ?1",
        quote(TABLE),
        sets.join(", "),
        quote(&columns[0])
    )
}

fn delete_sql() -> String {
    format!(
        "DELETE FROM {} WHERE {} = ?1",
        quote(TABLE),
        quote(&column_names()[0])
    )
}

/// A fresh file with the mirror's pragmas (opened by vtmirror's own code) and table layout.
fn mirror_like(db: &Path) -> Result<Mirror> {
    let identity = Identity {
        keyspace: KEYSPACE.into(),
        filter: "[]".into(),
    };
    let mirror = Mirror::open(db, &identity, Durability::Normal)?;
    let layout = Layout::merge(&table_schema(), std::iter::empty());
    mirror.conn.execute_batch(&layout.create_sql(TABLE))?;
    Ok(mirror)
}

fn timed(rows: u64, payload_bytes: u64, work: impl FnOnce() -> Result<u64>) -> Result<Run> {
    let (cpu0, written0, start) = (process_cpu(), disk_written(), Instant::now());
    let commits = work()?;
    Ok(Run {
        wall: start.elapsed(),
        cpu: process_cpu() - cpu0,
        disk_written: disk_written() - written0,
        rows,
        payload_bytes,
        commits,
        ..Run::default()
    })
}

/// L0 for the copy: prepared INSERT of `rows_per_statement` rows (1: the classic form),
/// one transaction per 100k rows.
pub fn l0_copy(
    db: &Path,
    rows: &[Vec<Value>],
    payload_bytes: u64,
    rows_per_statement: usize,
) -> Result<Run> {
    l0_copy_into(&mirror_like(db)?, rows, payload_bytes, rows_per_statement)
}

/// L0 with a page cache of `cache_mb` MB instead of the mirror's 32 MB (a diagnostic: how
/// much of the cost of inserting keys out of order is cache misses).
pub fn l0_copy_cache(
    db: &Path,
    rows: &[Vec<Value>],
    payload_bytes: u64,
    rows_per_statement: usize,
    cache_mb: u64,
) -> Result<Run> {
    let mirror = mirror_like(db)?;
    let kib = cache_mb * 1024;
    mirror
        .conn
        .execute_batch(&format!("PRAGMA cache_size = -{kib}"))?;
    l0_copy_into(&mirror, rows, payload_bytes, rows_per_statement)
}

fn l0_copy_into(
    mirror: &Mirror,
    rows: &[Vec<Value>],
    payload_bytes: u64,
    rows_per_statement: usize,
) -> Result<Run> {
    let conn = &mirror.conn;
    let (single, multi) = (insert_sql(), insert_sql_rows(rows_per_statement));
    timed(rows.len() as u64, payload_bytes, || {
        let mut commits = 0;
        for batch in rows.chunks(L0_BATCH_ROWS) {
            let tx = conn.unchecked_transaction()?;
            let mut insert = tx.prepare_cached(&single)?;
            let mut insert_many = tx.prepare_cached(&multi)?;
            let mut groups = batch.chunks_exact(rows_per_statement);
            for group in &mut groups {
                insert_many.execute(params_from_iter(group.iter().flatten()))?;
            }
            for row in groups.remainder() {
                insert.execute(params_from_iter(row))?;
            }
            drop((insert, insert_many));
            tx.commit()?;
            commits += 1;
        }
        Ok(commits)
    })
}

/// L0 for replication: prepared INSERT / UPDATE / DELETE by key, one transaction per
/// ~100k row changes (at transaction ends).
pub fn l0_replication(db: &Path, txns: &[Vec<DecodedOp>], payload_bytes: u64) -> Result<Run> {
    let mirror = mirror_like(db)?;
    let conn = &mirror.conn;
    let (insert_sql, update_sql, delete_sql) = (insert_sql(), update_sql(), delete_sql());
    let changes: u64 = txns.iter().map(|t| t.len() as u64).sum();
    timed(changes, payload_bytes, || {
        let mut insert = conn.prepare_cached(&insert_sql)?;
        let mut update = conn.prepare_cached(&update_sql)?;
        let mut delete = conn.prepare_cached(&delete_sql)?;
        let (mut commits, mut in_batch) = (0, 0);
        conn.execute_batch("BEGIN")?;
        for ops in txns {
            for op in ops {
                match op {
                    DecodedOp::Insert(row) => insert.execute(params_from_iter(row))?,
                    DecodedOp::Update(row) => update.execute(params_from_iter(row))?,
                    DecodedOp::Delete(key) => delete.execute([key])?,
                };
            }
            in_batch += ops.len();
            if in_batch >= L0_BATCH_ROWS {
                conn.execute_batch("COMMIT; BEGIN")?;
                commits += 1;
                in_batch = 0;
            }
        }
        conn.execute_batch("COMMIT")?;
        Ok(commits + 1)
    })
}

/// N: a hand-written consumer: default SQLite settings, one autocommit INSERT per row, the
/// statement prepared on every call.
pub fn naive_copy(db: &Path, rows: &[Vec<Value>], payload_bytes: u64) -> Result<Run> {
    let conn = Connection::open(db)?;
    let layout = Layout::merge(&table_schema(), std::iter::empty());
    conn.execute_batch(&layout.create_sql(TABLE))?;
    let sql = insert_sql();
    timed(rows.len() as u64, payload_bytes, || {
        for row in rows {
            conn.execute(&sql, params_from_iter(row))?;
        }
        Ok(rows.len() as u64)
    })
}

fn stream_spec(endpoint: &str) -> StreamSpec {
    StreamSpec {
        vtgate: endpoint.into(),
        selection: Selection::keyspace(KEYSPACE),
        rules: rules(&[], &[]),
        tablet_type: TabletType::Replica,
        heartbeat_secs: 0,
        caller_id: None,
        tables_to_copy: Vec::new(),
        exclude_keyspace_from_table_name: false,
    }
}

/// Receives `responses` responses and decodes them into writer steps, which it drops.
/// Returns (wall, client CPU, row changes decoded).
async fn receive_and_decode(
    endpoint: String,
    responses: usize,
) -> Result<(Duration, Duration, u64)> {
    let (start, cpu0) = (Instant::now(), thread_cpu());
    let mut client = vtmirror::source::transport::connect_grpc(&endpoint.as_str().into()).await?;
    let position = vtmirror::source::vgtid::fresh(KEYSPACE, "");
    let request = stream_spec(&endpoint).request(position);
    let mut stream = open_event_stream(&mut client, request).await?;
    let mut decoder = Decoder::new(&Selection::keyspace(KEYSPACE));
    let mut rows = 0u64;
    let mut steps = Vec::new();
    for _ in 0..responses {
        let response = stream
            .message()
            .await?
            .context("the replay stream ended early")?;
        decoder.decode_all(response.events, &mut steps)?;
        for step in steps.drain(..) {
            if let Step::Rows { changes, .. } = step {
                rows += changes.len() as u64;
            }
        }
    }
    Ok((start.elapsed(), thread_cpu() - cpu0, rows))
}

/// D0: the decode limit. The client runs on its own thread (one core), the replay server on
/// the benchmark's runtime; the server's CPU is reported apart.
pub async fn d0(responses: Arc<Vec<bytes::Bytes>>, payload_bytes: u64) -> Result<Run> {
    let count = responses.len();
    let server = ReplayServer::start(Feed::new(responses, None)).await?;
    let endpoint = server.endpoint();
    let cpu0 = process_cpu();
    let client = std::thread::spawn(move || -> Result<(Duration, Duration, u64)> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(receive_and_decode(endpoint, count))
    });
    let (wall, cpu, rows) = tokio::task::spawn_blocking(move || client.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the D0 client panicked"))??;
    let server_cpu = (process_cpu() - cpu0).saturating_sub(cpu);
    server.shutdown().await;
    Ok(Run {
        wall,
        cpu,
        rows,
        payload_bytes,
        server_cpu: Some(server_cpu),
        ..Run::default()
    })
}

/// What the sync child reports on stdout when it finishes.
#[derive(Debug, Default)]
pub struct ChildReport {
    pub commits: u64,
    pub rows: u64,
    pub committed_at_ms: i64,
    pub peak_rss_kb: u64,
    pub disk_written: u64,
}

impl ChildReport {
    pub fn parse(text: &str) -> Result<Self> {
        let json: serde_json::Value = serde_json::from_str(text.trim())
            .with_context(|| format!("sync child printed {text:?}"))?;
        let int = |k: &str| json.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
        Ok(ChildReport {
            commits: int("commits") as u64,
            rows: int("rows") as u64,
            committed_at_ms: int("committed_at_ms"),
            peak_rss_kb: int("peak_rss_kb") as u64,
            disk_written: int("disk_written") as u64,
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// How to run `vtmirror sync` in a child process.
pub struct SyncRun {
    pub vtgate: String,
    pub keyspace: String,
    pub db: PathBuf,
    /// `--start` (copy or a position).
    pub start: String,
    pub extra_args: Vec<String>,
    /// With the metrics endpoint on, scraped this often while the sync runs.
    pub scrape_every: Option<Duration>,
    /// Through the public library API (`vtmirror::Mirror::sync`) instead of the command
    /// line's flags.
    pub library: bool,
}

impl SyncRun {
    fn command(&self, metrics_addr: Option<&str>) -> Result<Command> {
        let mut cmd = Command::new(std::env::current_exe()?);
        if self.library {
            anyhow::ensure!(
                self.extra_args.is_empty() && metrics_addr.is_none(),
                "the library arm takes no sync flags"
            );
            cmd.arg(crate::SYNC_LIBRARY_CHILD)
                .args([&self.vtgate, &self.keyspace])
                .arg(&self.db)
                .arg(&self.start)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::piped());
            return Ok(cmd);
        }
        cmd.arg(crate::SYNC_CHILD)
            .args(["--vtgate", &self.vtgate, "--keyspace", &self.keyspace])
            .arg("--db")
            .arg(&self.db)
            .args(["--start", &self.start, "--exit-when-caught-up"])
            .args(["--caught-up-idle", "0.5", "--heartbeat", "0", "--quiet"])
            .args(&self.extra_args)
            .args(
                metrics_addr
                    .map(|addr| ["--metrics-addr", addr])
                    .into_iter()
                    .flatten(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped());
        Ok(cmd)
    }

    /// Runs the sync to caught-up. Wall time is spawn → the last commit (the idle wait that
    /// detects "caught up" is not counted); CPU is the child's (wait4), peak RSS its own VmHWM.
    pub fn run(&self, payload_bytes: u64) -> Result<(Run, ChildReport)> {
        let metrics_addr = match self.scrape_every {
            Some(_) => Some(format!("127.0.0.1:{}", free_port()?)),
            None => None,
        };
        let (spawned_ms, server_cpu0) = (now_ms(), process_cpu());
        let mut child = self.command(metrics_addr.as_deref())?.spawn()?;
        let scraper =
            (metrics_addr.zip(self.scrape_every)).map(|(a, every)| Scraper::start(a, every));
        let usage = wait_child(child.id());
        if let Some(scraper) = scraper {
            let scrapes = scraper.stop();
            anyhow::ensure!(scrapes > 0, "the metrics endpoint was never scraped");
            eprintln!("    ({scrapes} scrapes of /metrics)");
        }
        let mut out = String::new();
        if let Some(mut stdout) = child.stdout.take() {
            stdout.read_to_string(&mut out)?;
        }
        if !usage.success {
            bail!("the sync child failed (stdout {out:?})");
        }
        let report = ChildReport::parse(&out)?;
        let run = Run {
            wall: Duration::from_millis((report.committed_at_ms - spawned_ms).max(1) as u64),
            cpu: usage.cpu,
            peak_rss: Some(report.peak_rss_kb * 1024),
            rows: report.rows,
            payload_bytes,
            commits: report.commits,
            server_cpu: Some(process_cpu() - server_cpu0),
            disk_written: report.disk_written,
        };
        Ok((run, report))
    }
}

/// Rows in the mirrored table (a check that T did all the work).
pub fn mirrored_rows(db: &Path) -> Result<u64> {
    let conn = Connection::open(db)?;
    let n: i64 = conn.query_row(&format!("SELECT count(*) FROM {}", quote(TABLE)), [], |r| {
        r.get(0)
    })?;
    Ok(n as u64)
}
