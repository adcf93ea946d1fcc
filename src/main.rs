//! The `vtmirror` binary: parse flags, set up logging, dispatch. Errors end as one line on
//! stderr and a non-zero exit.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use vtmirror::cli::{Cli, Command, LogFormat};
use vtmirror::progress::Progress;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut int), Ok(mut term)) => {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
        }
        _ => std::future::pending::<()>().await,
    }
    tracing::info!("shutdown requested; finishing the open batch");
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Sync(args) => {
            let opts = args.options()?;
            let progress = Arc::new(Progress::default());
            let reporter = vtmirror::demo::spawn_progress_log(Arc::clone(&progress));
            let outcome = vtmirror::sync::run(opts, progress, shutdown_signal()).await;
            reporter.abort();
            tracing::info!(?outcome, "sync finished");
            outcome.map(|_| ())
        }
        Command::Demo(args) => vtmirror::demo::run(args, shutdown_signal()).await,
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("vtmirror: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vtmirror: {e:#}");
            ExitCode::FAILURE
        }
    }
}
