//! The command line as the `vtmirror` binary runs it: parse flags, set up logging, dispatch.
//! Errors end as one line on stderr and a non-zero exit (2 for bad flags); a closed output
//! pipe is a normal end.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use crate::cli::{Cli, Command, LogFormat, VerifyArgs, VerifyFormat, WaitArgs};
use crate::commands::serve::Server;
use crate::commands::wait::{WaitFor, WaitOutcome};
use crate::library::SyncBuilder;
use crate::output::endpoint::Endpoint;
use crate::output::render::is_broken_pipe;
use crate::output::report::{LogWriter, Mode, Reporter};

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(LogWriter);
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

async fn sync(args: crate::cli::SyncArgs, mode: Mode) -> anyhow::Result<()> {
    let opts = args.options()?;
    let endpoint = args.endpoint.settings()?;
    let serve = args.serve.settings()?;
    let db = opts.db.clone();
    let source = WaitFor::Source {
        vtgate: opts.spec.vtgate.clone(),
        caller_id: opts.spec.caller_id.clone(),
    };
    let builder = SyncBuilder::from_options(opts);
    let progress = builder.progress();
    // A taken --metrics-addr or --serve-addr port fails before anything else starts.
    let _endpoint = Endpoint::start_if(endpoint.as_ref(), &progress, &db).await?;
    let _serve = Server::start_if(serve.as_ref(), &db, source).await?;
    // A typo in --vtgate shows at once (`start`); later connection losses are retried forever.
    let mut sync = builder.start().await?;
    let reporter = Reporter::start(progress, db, mode);
    let outcome = tokio::select! {
        outcome = sync.finished() => outcome,
        _ = shutdown_signal() => sync.stop().await,
    };
    reporter.stop();
    // The error itself is printed once, rendered and redacted, by `main`.
    tracing::info!(outcome = ?outcome.as_ref().ok(), "sync finished");
    outcome.map(|_| ())
}

async fn tail(args: crate::cli::TailArgs) -> anyhow::Result<()> {
    let opts = args.options()?;
    let (mut out, mut notices) = (std::io::stdout(), std::io::stderr());
    let sinks = crate::commands::tail::Sinks {
        out: &mut out,
        notices: &mut notices,
    };
    crate::commands::tail::run(&opts, sinks, shutdown_signal()).await
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mode = Mode::choose(cli.quiet);
    let mut stdout = std::io::stdout();
    match cli.command {
        Command::Sync(args) => sync(args, mode).await,
        Command::Tail(args) => tail(args).await,
        Command::Status(args) => crate::commands::status::run(&args.options(), &mut stdout),
        Command::Query(args) => crate::commands::query::run(&args.options(), &mut stdout),
        Command::Snapshot(args) => crate::commands::snapshot::run(&args.options(), &mut stdout),
        Command::Demo(args) => {
            crate::commands::demo::run(args.options()?, mode, shutdown_signal()).await
        }
        Command::Changes(args) => {
            crate::commands::changes::run(&args.options(), &mut stdout, shutdown_signal()).await
        }
        Command::Verify(_) | Command::Wait(_) => {
            unreachable!("verify and wait have their own exit codes (main)")
        }
    }
}

/// `verify`: exit 0 when the mirror equals its source, 1 when it differs, 2 on an error.
fn verify(runtime: &tokio::runtime::Runtime, args: &VerifyArgs, quiet: bool) -> ExitCode {
    let verdict = args
        .options(quiet)
        .map(|opts| runtime.block_on(crate::commands::verify::run(&opts)));
    let verdict = match verdict {
        Ok(Ok(verdict)) => verdict,
        Ok(Err(e)) | Err(e) => {
            eprintln!("vtmirror: {}", one_line(&crate::error::render(&e)));
            return ExitCode::from(2);
        }
    };
    let shown = match args.format {
        VerifyFormat::Text => crate::commands::verify::text(&verdict),
        VerifyFormat::Json => serde_json::to_string(&verdict).unwrap_or_default(),
    };
    println!("{shown}");
    if verdict.equal {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `wait`: exit 0 when the mirror reached the source's position, 3 when it timed out, 2 on an
/// error.
fn wait(runtime: &tokio::runtime::Runtime, args: &WaitArgs) -> ExitCode {
    let outcome = args
        .options()
        .map(|opts| runtime.block_on(crate::commands::wait::run(&opts)));
    match outcome {
        Ok(Ok(outcome)) => {
            if let WaitOutcome::TimedOut { waited, behind } = &outcome {
                let secs = waited.as_secs_f64();
                eprintln!(
                    "vtmirror: timed out after {secs:.1} s; behind: {}",
                    behind.join("; ")
                );
            }
            ExitCode::from(outcome.exit_code())
        }
        Ok(Err(e)) | Err(e) => {
            eprintln!("vtmirror: {}", one_line(&crate::error::render(&e)));
            ExitCode::from(2)
        }
    }
}

/// Help and version print as clap prints them; any other flag error is one line.
fn parse() -> Result<Cli, ExitCode> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("vtmirror: {first} (see vtmirror --help)");
            Err(ExitCode::from(2))
        }
    }
}

/// Runs the command line of this process's arguments to its end.
pub fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
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
    if let Command::Verify(args) = &cli.command {
        return verify(&runtime, args, cli.quiet);
    }
    if let Command::Wait(args) = &cli.command {
        return wait(&runtime, args);
    }
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vtmirror: {}", one_line(&crate::error::render(&e)));
            ExitCode::FAILURE
        }
    }
}

/// Error chains can carry server text with newlines; the exit message stays on one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
