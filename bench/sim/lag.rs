//! Replication lag at an offered rate: the replay server sends one transaction per response
//! on a fixed schedule and records when each left; a reader polls the mirror's committed
//! transaction count. Lag of a transaction = first time the mirror holds it − time it was sent.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use rusqlite::{Connection, OpenFlags};

use crate::arms::SyncRun;
use crate::measure::{percentile, Run};
use crate::replay::{Feed, ReplayServer};
use crate::workload::{Op, Stream, KEYSPACE};
use crate::Args;

/// One paced run: the sync's measurements and the lag of every transaction.
pub struct LagRun {
    pub run: Run,
    pub lags: Vec<Duration>,
}

fn committed_transactions(conn: &Connection) -> u64 {
    conn.query_row(
        "SELECT transactions FROM _vtmirror_checkpoint WHERE id = 1",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
    .unwrap_or(0)
}

fn open_when_ready(db: &Path, stop: &AtomicBool) -> Option<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(conn) = Connection::open_with_flags(db, flags) {
            if conn
                .query_row("SELECT 1 FROM _vtmirror_checkpoint LIMIT 1", [], |_| Ok(()))
                .is_ok()
            {
                return Some(conn);
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

/// Polls the committed transaction count every 200 µs: (time seen, count) at each change.
fn watch_commits(db: &Path, stop: &AtomicBool, until: u64) -> Vec<(Instant, u64)> {
    let mut seen = Vec::new();
    let Some(conn) = open_when_ready(db, stop) else {
        return seen;
    };
    let mut last = 0;
    while !stop.load(Ordering::Relaxed) && last < until {
        let now = committed_transactions(&conn);
        if now != last {
            seen.push((Instant::now(), now));
            last = now;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    seen
}

fn lags(sent: &[Instant], seen: &[(Instant, u64)]) -> Vec<Duration> {
    let mut lags = Vec::with_capacity(sent.len());
    let mut at = 0;
    for (i, sent_at) in sent.iter().enumerate() {
        while at < seen.len() && seen[at].1 < i as u64 + 1 {
            at += 1;
        }
        let Some((committed, _)) = seen.get(at) else {
            break;
        };
        lags.push(committed.saturating_duration_since(*sent_at));
    }
    lags.sort();
    lags
}

/// Streams `responses` (one transaction each) at `rate` per second into a fresh mirror.
pub async fn paced_replication(
    responses: Arc<Vec<Bytes>>,
    rate: f64,
    sync: SyncRun,
    payload_bytes: u64,
) -> Result<LagRun> {
    let count = responses.len() as u64;
    let feed = Feed::new(responses, Some(rate));
    let server = ReplayServer::start(Arc::clone(&feed)).await?;
    let sync = SyncRun {
        vtgate: server.endpoint(),
        ..sync
    };
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (db, stop) = (sync.db.clone(), Arc::clone(&stop));
        std::thread::spawn(move || watch_commits(&db, &stop, count))
    };
    let result = tokio::task::spawn_blocking(move || sync.run(payload_bytes)).await?;
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap_or_default();
    server.shutdown().await;
    let (run, _) = result?;
    let sent = feed.sent_at.lock().unwrap().clone();
    Ok(LagRun {
        run,
        lags: lags(&sent, &seen),
    })
}

impl LagRun {
    pub fn p50(&self) -> Duration {
        percentile(&self.lags, 0.50)
    }
    pub fn p99(&self) -> Duration {
        percentile(&self.lags, 0.99)
    }
}

/// The lag at one offered rate, `args.repetitions` runs, each checked to commit every transaction.
pub async fn workload(
    args: &Args,
    rate: f64,
    stream: &Stream,
    live_after: &[u64],
    dir: &std::path::Path,
) -> Result<crate::report::LagResult> {
    let count = ((rate * args.lag_seconds()) as usize).min(stream.responses.len());
    let responses = Arc::new(stream.responses[..count].to_vec());
    let payload = stream.payload_bytes * count as u64 / stream.responses.len() as u64;
    // --quick stays under 5 minutes: rates after the first get 2 repetitions.
    let reps = match args.lag_rates.first() {
        Some(&first) if args.quick && rate != first => args.repetitions.min(2),
        _ => args.repetitions,
    };
    let mut runs = Vec::new();
    for rep in 0..reps {
        let sync = SyncRun {
            vtgate: String::new(),
            keyspace: KEYSPACE.into(),
            db: crate::fresh_db(dir, "lag.db"),
            start: crate::workload::replication_start_json(),
            extra_args: args.sync_arg.clone(),
            scrape_every: args.scrape_every(),
            library: false,
        };
        let db = sync.db.clone();
        let run = paced_replication(Arc::clone(&responses), rate, sync, payload).await?;
        eprintln!(
            "  lag {rate:>6.0}   T   rep {rep}: p50 {:?} p99 {:?} ({} transactions)",
            run.p50(),
            run.p99(),
            run.lags.len()
        );
        anyhow::ensure!(
            run.lags.len() == count,
            "only {} of {count} transactions were seen committed",
            run.lags.len()
        );
        let held = crate::arms::mirrored_rows(&db)?;
        anyhow::ensure!(
            held == live_after[count - 1],
            "the mirror holds {held} rows, the source {}",
            live_after[count - 1]
        );
        runs.push(run);
    }
    Ok(crate::report::LagResult {
        rate,
        transactions: count,
        runs,
    })
}

/// Rows the source holds after each transaction (inserts add one, deletes remove one).
pub fn live_rows_after(txns: &[Vec<Op>]) -> Vec<u64> {
    let mut live = 0i64;
    (txns.iter())
        .map(|ops| {
            for op in ops {
                match op {
                    Op::Insert(_) => live += 1,
                    Op::Delete(_) => live -= 1,
                    Op::Update { .. } => {}
                }
            }
            live as u64
        })
        .collect()
}
