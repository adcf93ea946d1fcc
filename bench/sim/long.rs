//! Cost growth (`--long`): a copy of 50M rows through `vtmirror sync`, with its rows/s per
//! tenth of the copy and its peak RSS next to 1M-row runs of the same invocation.
//!
//! 50M pre-encoded rows are ~8 GB, too much to hold in memory, and generating them on the fly
//! would take a core from the mirror on this 2-core machine. So the responses are generated
//! once into a file on disk (length-prefixed `VStreamResponse` bytes, kept for the next run)
//! and the replay server streams the file: its cost is a read per response.

use std::fmt::Write as _;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

use crate::arms::SyncRun;
use crate::measure::{Arm, Run};
use crate::replay::{Feed, ReplayServer};
use crate::workload::{copy_batch, copy_end, Rng, COPY_BATCH_ROWS, KEYSPACE};
use crate::{report, Args};

pub struct LongResult {
    pub rows: usize,
    pub dir: PathBuf,
    pub file_bytes: u64,
    /// The 1M-row runs of the same invocation (the peak RSS reference).
    pub reference: Arm,
    pub run: Run,
    /// rows/s of each tenth of the copy, first to last.
    pub tenths: Vec<f64>,
    pub db_bytes: u64,
}

/// Writes the copy of `rows` rows as length-prefixed responses (unless a complete file from a
/// previous run is there); returns the file and the row value bytes it carries.
fn stream_file(dir: &Path, rows: usize) -> Result<(PathBuf, u64)> {
    let path = dir.join(format!("copy-{rows}.vstream"));
    let done = path.with_extension("payload");
    if let Ok(text) = std::fs::read_to_string(&done) {
        if let Ok(payload) = text.trim().parse() {
            eprintln!("long: reusing {}", path.display());
            return Ok((path, payload));
        }
    }
    let started = Instant::now();
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
    let (mut rng, mut payload, mut next) = (Rng::new(7), 0u64, 1i64);
    let mut put = |bytes: &[u8]| -> Result<()> {
        out.write_all(&(bytes.len() as u32).to_le_bytes())?;
        Ok(out.write_all(bytes)?)
    };
    while next as usize <= rows {
        let end = (next + COPY_BATCH_ROWS as i64 - 1).min(rows as i64);
        put(&copy_batch(next, end, &mut rng, &mut payload))?;
        next = end + 1;
    }
    put(&copy_end())?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    // Written last: a file without it was cut short and is rewritten.
    std::fs::write(&done, payload.to_string())?;
    eprintln!(
        "long: wrote {} in {:.0} s",
        path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok((path, payload))
}

fn copied_rows(conn: &Connection) -> Option<u64> {
    conn.query_row(
        "SELECT coalesce(sum(rows_copied), 0) FROM _vtmirror_copy_state",
        [],
        |r| r.get::<_, i64>(0),
    )
    .ok()
    .map(|n| n.max(0) as u64)
}

/// Polls the mirror's committed copy progress (`_vtmirror_copy_state`, written in the same
/// transaction as the rows; a few rows, so a read costs microseconds) every 200 ms.
fn watch_progress(db: &Path, stop: &AtomicBool) -> Vec<(Instant, u64)> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut seen = Vec::new();
    let mut conn = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            conn = Connection::open_with_flags(db, flags).ok();
        }
        if let Some(rows) = conn.as_ref().and_then(copied_rows) {
            if seen.last().is_none_or(|&(_, last)| rows != last) {
                seen.push((Instant::now(), rows));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    seen
}

/// When the mirror crossed `target` rows, interpolated between the polls around it.
fn crossing(seen: &[(Instant, u64)], target: u64) -> Option<Instant> {
    let at = seen.iter().position(|&(_, r)| r >= target)?;
    let (t1, r1) = seen[at];
    let Some(&(t0, r0)) = at.checked_sub(1).map(|i| &seen[i]) else {
        return Some(t1);
    };
    let part = (target - r0) as f64 / (r1 - r0) as f64;
    Some(t0 + (t1 - t0).mul_f64(part))
}

/// rows/s of each tenth; the first tenth starts at the first poll that saw rows.
fn tenths(seen: &[(Instant, u64)], rows: u64) -> Vec<f64> {
    let Some(&(mut from_t, mut from_r)) = seen.iter().find(|&&(_, r)| r > 0) else {
        return Vec::new();
    };
    let mut rates = Vec::new();
    for k in 1..=10 {
        let target = rows * k / 10;
        let Some(to) = crossing(seen, target) else {
            break;
        };
        let secs = (to - from_t).as_secs_f64().max(1e-3);
        rates.push(target.saturating_sub(from_r) as f64 / secs);
        (from_t, from_r) = (to, target);
    }
    rates
}

/// One T run of the whole file, with the progress poller beside it.
async fn long_run(
    args: &Args,
    file: PathBuf,
    payload: u64,
    rows: u64,
    dir: &Path,
) -> Result<(Run, Vec<f64>)> {
    let server = ReplayServer::start(Feed::from_file(file)).await?;
    let sync = SyncRun {
        vtgate: server.endpoint(),
        keyspace: KEYSPACE.into(),
        db: crate::fresh_db(dir, "long.db"),
        start: "copy".into(),
        extra_args: args.sync_arg.clone(),
        scrape_every: None,
        library: false,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (db, stop) = (sync.db.clone(), Arc::clone(&stop));
        std::thread::spawn(move || watch_progress(&db, &stop))
    };
    let db = sync.db.clone();
    let result = tokio::task::spawn_blocking(move || sync.run(payload)).await?;
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap_or_default();
    server.shutdown().await;
    let (run, _) = result?;
    crate::shards::exact_rows(&db, rows)?;
    Ok((run, tenths(&seen, rows)))
}

pub async fn workload(args: &Args, dir: &Path) -> Result<LongResult> {
    let rows = args.long_rows;
    let long_dir = args.long_dir.clone();
    std::fs::create_dir_all(&long_dir)
        .with_context(|| format!("creating {}", long_dir.display()))?;
    let one = crate::workload::copy_stream(1_000_000);
    let reference = crate::repeat_async(args, "T", "copy-1M (ref)", || {
        crate::end_to_end(args, &one, "copy", 1_000_000, dir, crate::SyncArm::Cli)
    })
    .await?;
    drop(one);
    let (file, payload) = stream_file(&long_dir, rows)?;
    let file_bytes = std::fs::metadata(&file)?.len();
    eprintln!("long: copying {rows} rows into {}", long_dir.display());
    let (run, tenths) = long_run(args, file, payload, rows as u64, &long_dir).await?;
    let db = long_dir.join("long.db");
    let db_bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    crate::fresh_db(&long_dir, "long.db");
    eprintln!(
        "  long         T   {:>10.0} rows/s, tenths {tenths:.0?}",
        run.rows_per_sec()
    );
    Ok(LongResult {
        rows,
        dir: long_dir,
        file_bytes,
        reference,
        run,
        tenths,
        db_bytes,
    })
}

pub fn render(out: &mut String, r: &LongResult) {
    let _ = writeln!(
        out,
        "\ncopy of {}M rows (file {:.1} GB and mirror {:.1} GB in {}): {:.0} rows/s overall, \
         CPU {:.2} µs/row, peak RSS {:.0} MB, replay server (file reader) CPU {:.2} µs/row.\n",
        r.rows / 1_000_000,
        r.file_bytes as f64 / 1e9,
        r.db_bytes as f64 / 1e9,
        r.dir.display(),
        r.run.rows_per_sec(),
        r.run.cpu_us_per_row(),
        r.run.peak_rss.unwrap_or_default() as f64 / 1e6,
        r.run.server_cpu.unwrap_or_default().as_secs_f64() * 1e6 / r.run.rows as f64,
    );
    let _ = writeln!(out, "| tenth | rows/s |\n|---|---|");
    for (k, rate) in r.tenths.iter().enumerate() {
        let _ = writeln!(out, "| {} | {rate:.0} |", k + 1);
    }
    let _ = writeln!(out, "\n| ratio | value | target | |\n|---|---|---|---|");
    if let (Some(first), Some(last)) = (r.tenths.first(), r.tenths.get(9)) {
        let ratio = last / first;
        report::ratio_row(
            out,
            "rows/s last tenth / first tenth",
            ratio,
            "≥ 0.90",
            ratio >= 0.9,
        );
    }
    let rss = r.run.peak_rss.unwrap_or_default() as f64 / 1e6;
    let reference = r
        .reference
        .spread(|r| r.peak_rss.unwrap_or_default() as f64 / 1e6);
    let growth = rss / reference.median;
    report::ratio_row(
        out,
        "peak RSS long / 1M (median of 1M runs)",
        growth,
        "≤ 1.10",
        growth <= 1.10,
    );
    report::ratio_row(out, "peak RSS long (MB)", rss, "< 150", rss < 150.0);
}
