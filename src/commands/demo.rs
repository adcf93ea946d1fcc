//! `vtmirror demo`: the simulated vtgate with a sample 2-shard keyspace and live writes,
//! synced into a local file.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::commands::sync::{StartFrom, SyncOptions};
use crate::mirror::batch::CommitPolicy;
use crate::mirror::store::Durability;
use crate::output::progress::Progress;
use crate::output::report::{Mode, Reporter};
use crate::sim::{spawn_live_writes, ModelSpec, SharedModel, SimVtgate};
use crate::source::proto::topodata::TabletType;
use crate::source::vstream::{rules, StreamSpec};

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Mirror file to create or resume.
    #[arg(long, default_value = "demo.db")]
    pub db: PathBuf,
    /// Rows per table loaded before the copy starts.
    #[arg(long, default_value_t = 35_000)]
    pub rows_per_table: usize,
    /// Source transactions per second written while syncing.
    #[arg(long, default_value_t = 200)]
    pub writes_per_sec: u32,
    /// Stop after this many seconds (0 = run until Ctrl-C).
    #[arg(long, default_value_t = 0)]
    pub seconds: u64,
}

/// Runs the simulated keyspace and syncs it into `args.db` until Ctrl-C (or `--seconds`).
pub async fn run(
    args: DemoArgs,
    mode: Mode,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let model = SharedModel::new(ModelSpec::demo(args.rows_per_table));
    let server = SimVtgate::start(model.clone(), "127.0.0.1:0")
        .await
        .context("starting the simulated vtgate")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let writes = spawn_live_writes(model.clone(), f64::from(args.writes_per_sec), stop_rx);
    print_intro(&args, &server);
    let opts = demo_options(&args, &server.endpoint());
    let progress = Arc::new(Progress::default());
    let reporter = Reporter::start(Arc::clone(&progress), args.db.clone(), mode);
    let seconds = args.seconds;
    let stop = async move {
        if seconds == 0 {
            shutdown.await
        } else {
            tokio::select! {
                _ = shutdown => {}
                _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
            }
        }
    };
    let outcome = crate::commands::sync::run(opts, Arc::clone(&progress), stop).await;
    reporter.stop();
    let _ = stop_tx.send(true);
    let written = writes.await.unwrap_or(0);
    server.shutdown().await;
    outcome?;
    let p = progress.snapshot();
    println!(
        "\ndemo stopped: {} rows copied, {} source transactions applied ({written} written by the \
         simulated workload), {} SQLite commits. Run it again to resume from the checkpoint.",
        p.copied_rows, p.transactions, p.commits
    );
    Ok(())
}

fn demo_options(args: &DemoArgs, endpoint: &str) -> SyncOptions {
    SyncOptions {
        spec: StreamSpec {
            vtgate: endpoint.into(),
            keyspace: "commerce".into(),
            rules: rules(&[], &[]),
            tablet_type: TabletType::Replica,
            heartbeat_secs: 1,
            caller_id: None,
            tables_to_copy: Vec::new(),
            exclude_keyspace_from_table_name: false,
        },
        db: args.db.clone(),
        start: StartFrom::Copy,
        exit_when_caught_up: false,
        caught_up_idle: Duration::from_secs(2),
        durability: Durability::Normal,
        policy: CommitPolicy::default(),
        backoff_base: Duration::from_millis(200),
        backoff_cap: Duration::from_secs(5),
        queue_depth: 16,
    }
}

fn print_intro(args: &DemoArgs, server: &SimVtgate) {
    let db = args.db.display();
    println!(
        "vtmirror demo: a simulated 2-shard keyspace `commerce` ({} rows in each of customer, corder, accounts)\n\
         served by a simulated vtgate at {}, with {} live transactions/s, mirrored into {db}.\n\
         While it runs, try from another terminal:\n  \
         sqlite3 {db} 'SELECT count(*) FROM customer'\n  \
         sqlite3 {db} 'SELECT sum(balance) FROM accounts'   # constant: transfers are atomic\n  \
         sqlite3 {db} 'SELECT vgtid_json, copy_completed FROM _vtmirror_checkpoint'\n\
         Stop with Ctrl-C; running the demo again resumes from the stored checkpoint.\n",
        args.rows_per_table,
        server.endpoint(),
        args.writes_per_sec
    );
}
