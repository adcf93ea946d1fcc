//! The real-Vitess arm of the benchmark: VStream Copy of one table from a real vtgate, by a
//! discard client (receive + protobuf decode, rows counted and dropped) and by `vtmirror sync`
//! (the release binary next to this example), alternating, on the same machine.
//! Run it through `scripts/bench.sh --vitess` (see BENCHMARKS.md). The table is loaded once
//! through vtgate's MySQL port and kept while its row count matches `--rows`.
//! `--peer debezium` adds the Debezium Vitess connector (peer.rs) with two sinks to the rotation.

mod peer;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use mysql::prelude::Queryable;
use vtmirror::source::proto::binlogdata::{Filter, Rule, ShardGtid, VEventType, VGtid};
use vtmirror::source::proto::topodata::TabletType;
use vtmirror::source::proto::vtgate::{VStreamFlags, VStreamRequest};

const TABLE: &str = "bench_copy";

#[derive(Parser, Debug)]
struct Args {
    /// vtgate gRPC address.
    #[arg(long, default_value = "127.0.0.1:33571")]
    grpc: String,
    /// vtgate MySQL address (loads the table).
    #[arg(long, default_value = "127.0.0.1:33573")]
    mysql: String,
    #[arg(long, default_value = "commerce")]
    keyspace: String,
    /// Rows in the table (8 columns, ≈ 120 bytes each).
    #[arg(long, default_value_t = 200_000)]
    rows: u64,
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Tablet type every client streams from: primary, replica or rdonly.
    #[arg(long, default_value = "primary")]
    tablet_type: String,
    /// Also run a peer (only `debezium`), with a discard sink and a SQLite sink, instead of the
    /// discard client with `exclude_keyspace_from_table_name`.
    #[arg(long)]
    peer: Option<String>,
}

fn tablet_type(args: &Args) -> Result<TabletType> {
    match args.tablet_type.as_str() {
        "primary" => Ok(TabletType::Primary),
        "replica" => Ok(TabletType::Replica),
        "rdonly" => Ok(TabletType::Rdonly),
        other => anyhow::bail!("--tablet-type {other}: expected primary, replica or rdonly"),
    }
}

fn load_table(args: &Args) -> Result<()> {
    let (host, port) = args
        .mysql
        .rsplit_once(':')
        .context("--mysql is HOST:PORT")?;
    let opts = mysql::OptsBuilder::new()
        .ip_or_hostname(Some(host))
        .tcp_port(port.parse()?)
        .user(Some("root"))
        .db_name(Some(&args.keyspace));
    let mut conn = mysql::Conn::new(opts).context("connecting to vtgate's MySQL port")?;
    let count: Option<u64> = conn
        .query_first(format!("SELECT count(*) FROM {TABLE}"))
        .unwrap_or(None);
    if count == Some(args.rows) {
        return Ok(());
    }
    conn.query_drop(format!("DROP TABLE IF EXISTS {TABLE}"))?;
    conn.query_drop(format!(
        "CREATE TABLE {TABLE} (id BIGINT PRIMARY KEY, account BIGINT, qty INT, \
         email VARCHAR(40), amount DECIMAL(12,2), created DATETIME(3), state VARCHAR(20), \
         version BIGINT)"
    ))?;
    let started = Instant::now();
    for chunk in (0..args.rows).collect::<Vec<_>>().chunks(2000) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "({i},{},{},'user{i}@example.com',{}.{:02},'2026-11-{:02} 10:{:02}:{:02}.{:03}','state-{}',{})",
                    i * 7919 % 100_000,
                    i % 1000,
                    i % 100_000,
                    i % 100,
                    1 + i % 28,
                    i % 60,
                    (i / 60) % 60,
                    i % 1000,
                    i % 5,
                    i
                )
            })
            .collect();
        conn.query_drop(format!("INSERT INTO {TABLE} VALUES {}", values.join(",")))?;
    }
    println!(
        "loaded {} rows in {:.1}s",
        args.rows,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Copies the table through VStream and drops every row; returns (rows, seconds).
/// `exclude_keyspace` sets `exclude_keyspace_from_table_name`, which vtmirror no longer sends
/// (vttestserver lost rows with it): the arm measures what the flag saved vtgate.
async fn discard_copy(args: &Args, exclude_keyspace: bool) -> Result<(u64, f64)> {
    let started = Instant::now();
    // The same connection and the same (cheapest) view of the events as vtmirror's, so the
    // client costs the source's cores as little as possible: the strictest ceiling.
    let mut client = vtmirror::source::transport::connect_grpc(&args.grpc.as_str().into()).await?;
    let request = VStreamRequest {
        tablet_type: tablet_type(args)? as i32,
        vgtid: Some(VGtid {
            shard_gtids: vec![ShardGtid {
                keyspace: args.keyspace.clone(),
                ..Default::default()
            }],
        }),
        filter: Some(Filter {
            rules: vec![Rule {
                r#match: TABLE.into(),
                filter: format!("select * from {TABLE}"),
            }],
            field_event_mode: 0,
        }),
        flags: Some(VStreamFlags {
            exclude_keyspace_from_table_name: exclude_keyspace,
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut stream = vtmirror::source::vstream::open_event_stream(&mut client, request).await?;
    let mut rows = 0u64;
    let (mut responses, mut events, mut row_events) = (0u64, 0u64, 0u64);
    while let Some(response) = stream.message().await? {
        responses += 1;
        for event in response.events {
            events += 1;
            if let Some(row_event) = &event.row_event {
                row_events += 1;
                rows += row_event.row_changes.len() as u64;
            }
            let final_copy_completed = event.r#type == VEventType::CopyCompleted as i32
                && event.keyspace.is_empty()
                && event.shard.is_empty();
            let single_shard_done = event.r#type == VEventType::CopyCompleted as i32;
            if final_copy_completed || (single_shard_done && rows >= args.rows) {
                println!(
                    "discard client: {responses} responses, {events} events, \
                     {row_events} ROW events, {:.0} rows per ROW event",
                    rows as f64 / row_events.max(1) as f64
                );
                return Ok((rows, started.elapsed().as_secs_f64()));
            }
        }
    }
    anyhow::bail!("the stream ended before COPY_COMPLETED")
}

/// `vtmirror sync` to caught-up into a fresh file; returns (rows, seconds without the
/// caught-up idle wait).
fn mirror_copy(args: &Args, dir: &std::path::Path, rep: usize) -> Result<(u64, f64)> {
    let binary = std::env::current_exe()?
        .parent()
        .and_then(|examples| examples.parent())
        .map(|release| release.join("vtmirror"))
        .context("locating the vtmirror binary")?;
    let db: PathBuf = dir.join(format!("t{rep}.db"));
    let idle = 0.5;
    let started = Instant::now();
    let status = Command::new(binary)
        .args(["sync", "--vtgate", &args.grpc, "--keyspace", &args.keyspace])
        .args([
            "--tables",
            TABLE,
            "--tablet-type",
            &args.tablet_type,
            "--exit-when-caught-up",
        ])
        .args(["--caught-up-idle", &idle.to_string(), "-q"])
        .arg("--db")
        .arg(&db)
        .env("RUST_LOG", "warn")
        .status()?;
    let seconds = started.elapsed().as_secs_f64() - idle;
    anyhow::ensure!(status.success(), "vtmirror sync failed");
    let conn = rusqlite::Connection::open(&db)?;
    let rows: i64 = conn.query_row(&format!("SELECT count(*) FROM {TABLE}"), [], |r| r.get(0))?;
    Ok((rows as u64, seconds))
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        matches!(args.peer.as_deref(), None | Some("debezium")),
        "--peer: only debezium is known"
    );
    load_table(&args)?;
    if args.peer.is_some() {
        return peer_rotation(&args);
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let (mut discard, mut bare, mut mirror) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..args.reps {
        discard.push(discard_rate(&runtime, &args, false)?);
        bare.push(discard_rate(&runtime, &args, true)?);
        mirror.push(mirror_rate(&args, dir.path(), rep)?);
        println!(
            "rep {rep}: discard {:.0} rows/s, discard with exclude_keyspace_from_table_name {:.0} rows/s, vtmirror {:.0} rows/s",
            discard[rep], bare[rep], mirror[rep]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let (d, dmin, dmax) = median(discard);
    let (b, bmin, bmax) = median(bare);
    let (t, tmin, tmax) = median(mirror);
    println!(
        "real Vitess copy of {} rows, {} reps: discard client {d:.0} rows/s ({dmin:.0}–{dmax:.0}), \
         vtmirror {t:.0} rows/s ({tmin:.0}–{tmax:.0}), ratio T/discard {:.2}; discard with \
         exclude_keyspace_from_table_name {b:.0} rows/s ({bmin:.0}–{bmax:.0}), flag gain {:.2}",
        args.rows,
        args.reps,
        t / d,
        b / d
    );
    Ok(())
}

fn discard_rate(runtime: &tokio::runtime::Runtime, args: &Args, exclude: bool) -> Result<f64> {
    let (rows, secs) = runtime.block_on(discard_copy(args, exclude))?;
    anyhow::ensure!(rows == args.rows, "discard client saw {rows} rows");
    Ok(rows as f64 / secs)
}

fn mirror_rate(args: &Args, dir: &std::path::Path, rep: usize) -> Result<f64> {
    let (rows, secs) = mirror_copy(args, dir, rep)?;
    anyhow::ensure!(rows == args.rows, "mirror holds {rows} rows");
    Ok(rows as f64 / secs)
}

/// Per repetition, in turn: the discard client, vtmirror, Debezium with a discard sink and
/// Debezium with a SQLite sink; then the medians and the ratios vtmirror / Debezium.
fn peer_rotation(args: &Args) -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let dir = tempfile::tempdir()?;
    let target = peer::PeerTarget {
        grpc: &args.grpc,
        keyspace: &args.keyspace,
        table: TABLE,
        rows: args.rows,
        tablet_type: &args.tablet_type,
    };
    let mut rates: [Vec<f64>; 4] = Default::default();
    for rep in 0..args.reps {
        rates[0].push(discard_rate(&runtime, args, false)?);
        rates[1].push(mirror_rate(args, dir.path(), rep)?);
        for (i, sink) in [(2, "discard"), (3, "sqlite")] {
            let db = dir.path().join(format!("debezium-{sink}-{rep}.db"));
            let run = peer::debezium_copy(&target, sink, &db)?;
            println!(
                "rep {rep}: Debezium {sink}: {} rows in {:.1} s (process), {:.1} s (main to \
                 last row), peak RSS {:.0} MB",
                run.rows, run.seconds, run.inner_seconds, run.peak_rss_mb
            );
            rates[i].push(run.rows as f64 / run.seconds);
        }
        println!(
            "rep {rep}: discard client {:.0}, vtmirror {:.0}, Debezium discard {:.0}, Debezium \
             SQLite {:.0} rows/s",
            rates[0][rep], rates[1][rep], rates[2][rep], rates[3][rep]
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    print_peer_table(args, rates);
    Ok(())
}

fn print_peer_table(args: &Args, rates: [Vec<f64>; 4]) {
    let names = [
        "discard client",
        "vtmirror sync",
        "Debezium, discard sink",
        "Debezium, SQLite sink",
    ];
    println!(
        "real Vitess copy of {} rows, {} reps, tablet type {}:",
        args.rows, args.reps, args.tablet_type
    );
    println!("| client | rows/s, median (min–max) |\n|---|---|");
    let medians: Vec<f64> = names
        .iter()
        .zip(rates)
        .map(|(name, r)| {
            let (m, lo, hi) = median(r);
            println!("| {name} | {m:.0} ({lo:.0}–{hi:.0}) |");
            m
        })
        .collect();
    println!(
        "ratios: vtmirror / Debezium SQLite {:.1}, vtmirror / Debezium discard {:.1}, \
         vtmirror / discard client {:.2}",
        medians[1] / medians[3],
        medians[1] / medians[2],
        medians[1] / medians[0]
    );
}
