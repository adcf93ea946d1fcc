//! vtmirror's benchmark harness: the same data through the physical limits (L0 plain SQLite,
//! D0 receive + decode), vtmirror end to end (T) and a naive consumer (N), with ratios.
//! Run it through `scripts/bench.sh` (see BENCHMARKS.md); `cargo test` only compiles it.

mod arms;
mod lag;
mod long;
mod measure;
mod replay;
mod report;
mod scrape;
mod shards;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;

use arms::SyncRun;
use measure::{Arm, Run};
use workload::{Stream, KEYSPACE};

/// argv[1] that turns this binary into `vtmirror sync` (the T arm's child process).
pub const SYNC_CHILD: &str = "__sync";
/// The first argument that makes this binary the T lib arm's child (`library_child`).
pub const SYNC_LIBRARY_CHILD: &str = "__sync_library";

#[derive(Parser, Debug, Clone)]
#[command(about = "vtmirror benchmark: L0 / D0 / T / N arms with ratios")]
struct Args {
    /// 1M-row copy and replication only, naive arm on a short prefix (< 5 minutes).
    #[arg(long)]
    quick: bool,
    /// Repetitions per arm (the median is reported); default 5, or 3 with --quick.
    #[arg(long)]
    reps: Option<usize>,
    /// `reps` resolved (set in `main`).
    #[arg(skip)]
    repetitions: usize,
    /// Replication transactions.
    #[arg(long, default_value_t = 200_000)]
    transactions: usize,
    /// Offered rates of the lag measurement (transactions per second), comma-separated; the
    /// report names the highest one whose p99 stays under 50 ms.
    #[arg(long, alias = "lag-rate", value_delimiter = ',', default_values_t = [5000.0, 20000.0])]
    lag_rates: Vec<f64>,
    /// Only these workloads (copy-1M, copy-5M, copy-8shards, replication, lag, long),
    /// comma-separated.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Adds the long copy (`--long-rows` rows, streamed from a file in `--long-dir`).
    #[arg(long)]
    long: bool,
    /// Rows of the long copy.
    #[arg(long, default_value_t = 50_000_000)]
    long_rows: usize,
    /// Where the long copy's stream file (kept for the next run) and mirror (removed) go.
    #[arg(long, default_value = "/tmp/vtmirror-bench-long")]
    long_dir: PathBuf,
    /// Write the results into this markdown file between the bench markers.
    #[arg(long)]
    update_doc: Option<PathBuf>,
    /// Extra `vtmirror sync` flags for the T arm (e.g. "--max-batch-rows=50000").
    #[arg(long, allow_hyphen_values = true)]
    sync_arg: Vec<String>,
    /// T with the metrics endpoint on (`--metrics-addr`), scraped every this many ms by
    /// the benchmark while it syncs (0: endpoint off).
    #[arg(long, default_value_t = 0)]
    metrics_scrape_ms: u64,
}

impl Args {
    fn wants(&self, workload: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|w| w == workload)
    }
    /// The long copy is opt-in: `--long`, or `--only long`.
    fn wants_long(&self) -> bool {
        (self.long && self.only.is_empty()) || self.only.iter().any(|w| w == "long")
    }
    fn naive_rows(&self) -> usize {
        if self.quick {
            2_000
        } else {
            10_000
        }
    }
    fn scrape_every(&self) -> Option<std::time::Duration> {
        (self.metrics_scrape_ms > 0)
            .then(|| std::time::Duration::from_millis(self.metrics_scrape_ms))
    }
    fn lag_seconds(&self) -> f64 {
        if self.quick {
            4.0
        } else {
            10.0
        }
    }
}

fn main() -> Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(SYNC_CHILD) {
        return sync_child(&argv[2..]);
    }
    if argv.get(1).map(String::as_str) == Some(SYNC_LIBRARY_CHILD) {
        return library_child(&argv[2..]);
    }
    let mut args = Args::parse();
    // --quick stays under 5 minutes even on a slow hour of a 2-core VM (342 s with 5).
    args.repetitions = args.reps.unwrap_or(if args.quick { 3 } else { 5 });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

/// The T arm's child: `vtmirror sync` from the library with the binary's own flag parsing,
/// printing its final counters as JSON.
fn sync_child(flags: &[String]) -> Result<()> {
    let argv = ["vtmirror", "sync"]
        .into_iter()
        .map(String::from)
        .chain(flags.iter().cloned());
    let cli = vtmirror::cli::Cli::parse_from(argv);
    let vtmirror::cli::Command::Sync(sync) = cli.command else {
        anyhow::bail!("the sync child only runs sync");
    };
    let opts = sync.options()?;
    let endpoint = sync.endpoint.settings()?;
    let progress = Arc::new(vtmirror::output::progress::Progress::default());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let db = opts.db.clone();
        let started =
            vtmirror::output::endpoint::Endpoint::start_if(endpoint.as_ref(), &progress, &db);
        let _endpoint = started.await?;
        let pending = std::future::pending();
        vtmirror::commands::sync::run(opts, Arc::clone(&progress), pending).await
    })?;
    let s = progress.snapshot();
    print_child_report(s.commits, s.rows, s.committed_at_ms);
    Ok(())
}

/// The T lib arm's child: the same sync through the public API only (`VTGATE KEYSPACE DB
/// START`, START `copy` or a position), printing the same counters.
fn library_child(argv: &[String]) -> Result<()> {
    let [vtgate, keyspace, db, start] = argv else {
        anyhow::bail!("usage: {SYNC_LIBRARY_CHILD} VTGATE KEYSPACE DB START");
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        let mirror = vtmirror::Mirror::new(db);
        let mut sync = mirror.sync(&vtmirror::Source::new(vtgate, keyspace)?)?;
        if start != "copy" {
            sync = sync.start_from_position(start)?;
        }
        let mut sync = (sync.exit_when_caught_up(std::time::Duration::from_millis(500)))
            .start()
            .await?;
        sync.finished().await?;
        anyhow::Ok(sync.status())
    })?;
    let committed_at_ms = (status.last_commit)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    print_child_report(status.commits, status.rows, committed_at_ms);
    Ok(())
}

/// A sync child's counters on stdout (`arms::ChildReport::parse` reads them).
fn print_child_report(commits: u64, rows: u64, committed_at_ms: i64) {
    println!(
        r#"{{"commits":{commits},"rows":{rows},"committed_at_ms":{committed_at_ms},"peak_rss_kb":{},"disk_written":{}}}"#,
        peak_rss_kb(),
        measure::disk_written()
    );
}

/// This process's peak RSS (VmHWM). wait4's ru_maxrss would also count the parent's pages
/// the child shared between fork and exec.
fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn run(args: Args) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut results = report::Results::default();
    if args.wants("copy-1M") {
        results
            .copies
            .push(copy_workload(&args, 1_000_000, dir.path()).await?);
    }
    if !args.quick && args.wants("copy-5M") {
        results
            .copies
            .push(copy_workload(&args, 5_000_000, dir.path()).await?);
    }
    if args.wants("replication") || args.wants("lag") {
        let txns = workload::replication_transactions(args.transactions);
        let stream = workload::replication_stream(&txns);
        if args.wants("replication") {
            results.replication =
                Some(replication_workload(&args, &txns, &stream, dir.path()).await?);
        }
        if args.wants("lag") {
            let live_after = lag::live_rows_after(&txns);
            for &rate in &args.lag_rates {
                let lag = lag::workload(&args, rate, &stream, &live_after, dir.path()).await?;
                results.lags.push(lag);
            }
        }
    }
    if args.wants("copy-8shards") {
        results.shards = Some(shards::workload(&args, 1_000_000, dir.path()).await?);
    }
    if args.wants_long() {
        results.long = Some(long::workload(&args, dir.path()).await?);
    }
    let text = report::render(&args_line(&args), &results);
    println!("{text}");
    if let Some(doc) = &args.update_doc {
        report::update_doc(doc, &text)?;
    }
    Ok(())
}

fn args_line(args: &Args) -> String {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "`scripts/bench.sh {}` ({} reps)",
        argv.join(" "),
        args.repetitions
    )
}

fn fresh_db(dir: &std::path::Path, name: &str) -> PathBuf {
    let db = dir.join(name);
    for suffix in ["", "-wal", "-shm", ".sync-lock"] {
        let mut path = db.as_os_str().to_owned();
        path.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(path));
    }
    db
}

fn repeat(
    args: &Args,
    name: &str,
    workload: &str,
    mut once: impl FnMut() -> Result<Run>,
) -> Result<Arm> {
    let mut runs = Vec::new();
    for rep in 0..args.repetitions {
        let run = once().with_context(|| format!("{workload} {name} repetition {rep}"))?;
        eprintln!(
            "  {workload:<12} {name:<3} rep {rep}: {:>10.0} rows/s",
            run.rows_per_sec()
        );
        runs.push(run);
    }
    Ok(Arm {
        name: name.into(),
        workload: workload.into(),
        runs,
    })
}

async fn repeat_async<F, Fut>(args: &Args, name: &str, workload: &str, mut once: F) -> Result<Arm>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Run>>,
{
    let mut runs = Vec::new();
    for rep in 0..args.repetitions {
        let run = once()
            .await
            .with_context(|| format!("{workload} {name} repetition {rep}"))?;
        eprintln!(
            "  {workload:<12} {name:<3} rep {rep}: {:>10.0} rows/s",
            run.rows_per_sec()
        );
        runs.push(run);
    }
    Ok(Arm {
        name: name.into(),
        workload: workload.into(),
        runs,
    })
}

/// T, T+changes and T lib, their repetitions interleaved (T, T+changes, T lib, T, …) so
/// that a slow minute of the machine weighs on every arm alike, not on one: their ratios are
/// the figures that matter.
async fn end_to_end_arms(
    args: &Args,
    stream: &Stream,
    start: &str,
    expected_rows: u64,
    dir: &std::path::Path,
    workload: &str,
) -> Result<[Arm; 3]> {
    let arms = [
        ("T", SyncArm::Cli),
        ("T+changes", SyncArm::WithChanges),
        ("T lib", SyncArm::Library),
    ];
    let mut runs: [Vec<Run>; 3] = Default::default();
    for rep in 0..args.repetitions {
        for ((name, arm), runs) in arms.iter().zip(runs.iter_mut()) {
            let run = end_to_end(args, stream, start, expected_rows, dir, *arm)
                .await
                .with_context(|| format!("{workload} {name} repetition {rep}"))?;
            eprintln!(
                "  {workload:<12} {name:<3} rep {rep}: {:>10.0} rows/s",
                run.rows_per_sec()
            );
            runs.push(run);
        }
    }
    let [t, tc, tl] = runs;
    let arm = |name: &str, runs: Vec<Run>| Arm {
        name: name.into(),
        workload: workload.into(),
        runs,
    };
    Ok([arm("T", t), arm("T+changes", tc), arm("T lib", tl)])
}

/// Which way the end-to-end sync runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncArm {
    /// T: the command line's flags and sync.
    Cli,
    /// T+changes: the same with `--changes`.
    WithChanges,
    /// T lib: the public library API (`vtmirror::Mirror::sync`).
    Library,
}

/// T: `vtmirror sync` against the replay server, checked to hold `expected_rows` rows.
async fn end_to_end(
    args: &Args,
    stream: &Stream,
    start: &str,
    expected_rows: u64,
    dir: &std::path::Path,
    arm: SyncArm,
) -> Result<Run> {
    let feed = replay::Feed::new(Arc::new(stream.responses.clone()), None);
    let server = replay::ReplayServer::start(feed).await?;
    let sync = SyncRun {
        vtgate: server.endpoint(),
        keyspace: KEYSPACE.into(),
        db: fresh_db(dir, "t.db"),
        start: start.into(),
        extra_args: match arm {
            SyncArm::Library => Vec::new(),
            _ => (args.sync_arg.iter().cloned())
                .chain((arm == SyncArm::WithChanges).then(|| "--changes".to_string()))
                .collect(),
        },
        scrape_every: args.scrape_every().filter(|_| arm != SyncArm::Library),
        library: arm == SyncArm::Library,
    };
    let payload = stream.payload_bytes;
    let db = sync.db.clone();
    let result = tokio::task::spawn_blocking(move || sync.run(payload)).await?;
    server.shutdown().await;
    let (run, _) = result?;
    let held = arms::mirrored_rows(&db)?;
    anyhow::ensure!(
        held == expected_rows,
        "T mirrored {held} rows, expected {expected_rows}"
    );
    Ok(run)
}

async fn copy_workload(
    args: &Args,
    rows: usize,
    dir: &std::path::Path,
) -> Result<report::CopyResult> {
    let name = format!("copy-{}M", rows / 1_000_000);
    eprintln!("{name}: generating {rows} rows");
    let stream = workload::copy_stream(rows);
    let decoded = workload::copy_rows_decoded(&workload::table_schema(), rows);
    let payload = stream.payload_bytes;
    let l0 = repeat(args, "L0", &name, || {
        arms::l0_copy(&fresh_db(dir, "l0.db"), &decoded, payload, 1)
    })?;
    let l0m = repeat(args, "L0m", &name, || {
        arms::l0_copy(&fresh_db(dir, "l0.db"), &decoded, payload, 32)
    })?;
    let responses = Arc::new(stream.responses.clone());
    let d0 = repeat_async(args, "D0", &name, || {
        arms::d0(Arc::clone(&responses), payload)
    })
    .await?;
    let [t, tc, tl] = end_to_end_arms(args, &stream, "copy", rows as u64, dir, &name).await?;
    let prefix = &decoded[..args.naive_rows()];
    let prefix_payload = payload * prefix.len() as u64 / rows as u64;
    let n = repeat(args, "N", &name, || {
        arms::naive_copy(&fresh_db(dir, "n.db"), prefix, prefix_payload)
    })?;
    Ok(report::CopyResult {
        rows,
        wire_bytes: stream.wire_bytes(),
        l0,
        l0m,
        d0,
        t,
        tc,
        tl,
        n,
    })
}

async fn replication_workload(
    args: &Args,
    txns: &[Vec<workload::Op>],
    stream: &Stream,
    dir: &std::path::Path,
) -> Result<report::ReplicationResult> {
    let name = "replication";
    let decoded = workload::decode_transactions(&workload::table_schema(), txns);
    let payload = stream.payload_bytes;
    let live = decoded.iter().flatten().fold(0i64, |n, op| match op {
        workload::DecodedOp::Insert(_) => n + 1,
        workload::DecodedOp::Delete(_) => n - 1,
        workload::DecodedOp::Update(_) => n,
    }) as u64;
    let l0 = repeat(args, "L0", name, || {
        arms::l0_replication(&fresh_db(dir, "l0.db"), &decoded, payload)
    })?;
    let responses = Arc::new(stream.responses.clone());
    let d0 = repeat_async(args, "D0", name, || {
        arms::d0(Arc::clone(&responses), payload)
    })
    .await?;
    let start = workload::replication_start_json();
    let [t, tc, tl] = end_to_end_arms(args, stream, &start, live, dir, name).await?;
    Ok(report::ReplicationResult {
        transactions: stream.transactions,
        row_changes: stream.row_changes,
        l0,
        d0,
        t,
        tc,
        tl,
    })
}
