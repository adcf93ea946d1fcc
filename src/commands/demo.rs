//! `vtmirror demo`: the simulated vtgate with two sample keyspaces (as in Vitess's local
//! example: `commerce` unsharded, `customer` with two shards) and live writes, synced into one
//! local file.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::commands::serve::{ServeSettings, Server};
use crate::commands::sync::SyncOptions;
use crate::commands::wait::WaitFor;
use crate::library::SyncBuilder;
use crate::output::endpoint::{Endpoint, EndpointSettings};
use crate::output::report::{Mode, Reporter};
use crate::sim::{spawn_live_writes, ModelSpec, SharedModel, SimVtgate};
use crate::source::proto::topodata::TabletType;
use crate::source::selection::Selection;
use crate::source::vstream::{rules, StreamSpec};

/// The keyspaces of `ModelSpec::local_example`.
const DEMO_KEYSPACES: &str = "commerce,customer";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Mirror file to create or resume.
    pub db: PathBuf,
    /// Rows per table loaded before the copy starts.
    pub rows_per_table: usize,
    /// Source transactions per second written while syncing.
    pub writes_per_sec: u32,
    /// Stop after this many seconds (0 = run until Ctrl-C).
    pub seconds: u64,
    /// The `--metrics-addr` endpoint, if asked for.
    pub endpoint: Option<EndpointSettings>,
    /// Record the change log (`sync --changes`).
    pub log_changes: bool,
    pub changes_retain: crate::mirror::change_log::retention::Retention,
    /// The `--serve-addr` change feed server, if asked for.
    pub serve: Option<ServeSettings>,
}

/// Runs the simulated keyspace and syncs it into `args.db` until Ctrl-C (or `--seconds`).
pub async fn run(
    args: DemoOptions,
    mode: Mode,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let models: Vec<_> = (ModelSpec::local_example(args.rows_per_table).into_iter())
        .map(SharedModel::new)
        .collect();
    let server = SimVtgate::start_keyspaces(models.clone(), "127.0.0.1:0", Default::default())
        .await
        .context("starting the simulated vtgate")?;
    // `/wait` waits for the simulated source's commits.
    let source = WaitFor::Source {
        vtgate: server.endpoint().into(),
        caller_id: None,
    };
    let serve = Server::start_if(args.serve.as_ref(), &args.db, source).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The write rate is shared by the keyspaces.
    let rate = f64::from(args.writes_per_sec) / models.len() as f64;
    let writes: Vec<_> = (models.iter())
        .map(|model| spawn_live_writes(model.clone(), rate, stop_rx.clone()))
        .collect();
    let sync = SyncBuilder::from_options(demo_options(&args, &server.endpoint()));
    let progress = sync.progress();
    let endpoint = Endpoint::start_if(args.endpoint.as_ref(), &progress, &args.db).await?;
    print_intro(&args, &server, endpoint.as_ref().map(Endpoint::local_addr));
    if let (Some(serve), Some(settings)) = (&serve, &args.serve) {
        let scheme = if settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let addr = serve.local_addr();
        println!(
            "Change feed: curl '{scheme}://{addr}/changes?after=0&wait=30'   (and /wait; with \
             --serve-token-file, add -H \"Authorization: Bearer TOKEN\")\n"
        );
    }
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
    let mut sync = sync.start().await?;
    let outcome = tokio::select! {
        outcome = sync.finished() => outcome,
        _ = stop => sync.stop().await,
    };
    reporter.stop();
    let _ = stop_tx.send(true);
    let mut written = 0;
    for keyspace_writes in writes {
        written += keyspace_writes.await.unwrap_or(0);
    }
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

fn demo_options(args: &DemoOptions, endpoint: &str) -> SyncOptions {
    let spec = StreamSpec {
        vtgate: endpoint.into(),
        selection: Selection::parse(&[DEMO_KEYSPACES.into()], &[], &[])
            .expect("the demo's keyspaces are valid names"),
        rules: rules(&[], &[]),
        tablet_type: TabletType::Replica,
        heartbeat_secs: 1,
        caller_id: None,
        tables_to_copy: Vec::new(),
        exclude_keyspace_from_table_name: false,
    };
    let mut opts = SyncOptions::new(spec, args.db.clone());
    opts.backoff_cap = Duration::from_secs(5);
    opts.log_changes = args.log_changes;
    opts.changes_retain = args.changes_retain;
    opts
}

fn print_intro(args: &DemoOptions, server: &SimVtgate, metrics: Option<std::net::SocketAddr>) {
    let db = args.db.display();
    let follow = match args.log_changes {
        true => {
            format!("  vtmirror changes --db {db} --follow   # every row change, as it commits\n")
        }
        false => String::new(),
    };
    println!(
        "vtmirror demo: two simulated keyspaces, as in Vitess's local example: `commerce` (unsharded:\n\
         customer, corder, accounts) and `customer` (shards -80 and 80-: customer, corder), {} rows per\n\
         table, served by a simulated vtgate at {}, with {} live transactions/s, mirrored into one\n\
         file, {db}, whose tables are named keyspace.table. While it runs, try from another terminal:\n  \
         sqlite3 {db} 'SELECT count(*) FROM \"customer.customer\"'\n  \
         sqlite3 {db} 'SELECT sum(balance) FROM \"commerce.accounts\"'   # constant: transfers are atomic\n  \
         sqlite3 {db} 'SELECT count(*) FROM \"commerce.customer\" c JOIN \"customer.customer\" o USING (customer_id)'\n  \
         sqlite3 {db} 'SELECT vgtid_json, copy_completed FROM _vtmirror_checkpoint'\n{follow}\
         Stop with Ctrl-C; running the demo again resumes from the stored checkpoint.\n",
        args.rows_per_table,
        server.endpoint(),
        args.writes_per_sec
    );
    if let Some(addr) = metrics {
        println!(
            "Metrics: curl http://{addr}/metrics   (also /healthz, and /readyz: 503 until the \
             copy is done)\n"
        );
    }
}
