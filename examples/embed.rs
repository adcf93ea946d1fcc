//! An application embedding a mirror: it syncs a keyspace into a local file, waits until the
//! file holds everything the source had committed, reads it with SQL, and prints the changes
//! it follows until `--seconds` have passed.
//!
//! cargo run --release --example embed -- --vtgate 127.0.0.1:15991 --keyspace commerce \
//!     --db app.db --seconds 10

use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use vtmirror::{Mirror, Source, WaitOutcome};

#[derive(Parser)]
struct Args {
    /// vtgate's gRPC address, HOST:PORT.
    #[arg(long)]
    vtgate: String,
    #[arg(long)]
    keyspace: String,
    /// The mirror file (created on first use, resumed after).
    #[arg(long)]
    db: String,
    /// Follow the changes this long, then stop the sync and exit.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.seconds);
    let mirror = Mirror::new(&args.db);
    let source = Source::new(&args.vtgate, &args.keyspace)?;
    let sync = mirror.sync(&source)?.changes(true).start().await?;

    // Read-your-writes: everything the source committed before this line is in the file.
    match mirror
        .wait_for_source(&source, Duration::from_secs(60))
        .await?
    {
        WaitOutcome::Reached { waited } => println!("caught up in {waited:?}"),
        WaitOutcome::TimedOut { behind, .. } => anyhow::bail!("still behind: {behind:?}"),
    }
    let reader = mirror.reader()?;
    let mut tables = reader.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE '\\_vtmirror%' ESCAPE '\\' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'",
    )?;
    let names = tables.query_map([], |r| r.get::<_, String>(0))?;
    for name in names {
        let name = name?;
        let sql = format!("SELECT count(*) FROM \"{}\"", name.replace('"', "\"\""));
        let rows: i64 = reader.query_row(&sql, [], |r| r.get(0))?;
        println!("table {name}: {rows} rows");
    }

    // Every change from the first (the copy included), as the sync commits them.
    let mut changes = mirror.changes(0, &[]);
    let mut seen = 0u64;
    loop {
        tokio::select! {
            change = changes.next() => match change {
                Some(change) => {
                    let change = change?;
                    seen += 1;
                    println!("change {} {} {} {}", change.seq, change.op, change.table, change.key());
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let outcome = sync.stop().await?;
    println!("followed {seen} changes; sync ended: {outcome:?}");
    Ok(())
}
