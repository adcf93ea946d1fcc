//! Running a sync from code: a builder with `sync`'s defaults and a handle that reports
//! progress and stops the sync gracefully (the open batch is committed, never split).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use tokio::sync::oneshot;

use super::{Source, SyncOutcome};
use crate::commands::sync::{run, StartFrom, SyncOptions};
use crate::mirror::change_log::retention::Retention;
use crate::output::progress::Progress;
use crate::source::transport::connect_first;

/// How often `start` looks whether the sync has opened the file.
const FILE_READY_POLL: Duration = Duration::from_millis(5);

/// A sync to start: `Mirror::sync`, then any of the settings below, then `start`.
pub struct SyncBuilder {
    opts: SyncOptions,
    progress: Arc<Progress>,
}

impl SyncBuilder {
    pub(crate) fn new(source: &Source, db: std::path::PathBuf) -> Result<SyncBuilder> {
        Ok(SyncBuilder::from_options(SyncOptions::new(
            source.spec()?,
            db,
        )))
    }

    /// The command line's way in: options it validated from flags.
    pub(crate) fn from_options(opts: SyncOptions) -> SyncBuilder {
        SyncBuilder {
            opts,
            progress: Arc::new(Progress::default()),
        }
    }

    /// The counters the sync will update (the command line's progress display and endpoints).
    pub(crate) fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// Record every change in the mirror's change log (`sync --changes`); once on, it stays
    /// on for the file.
    pub fn changes(mut self, on: bool) -> SyncBuilder {
        self.opts.log_changes = on;
        self
    }

    /// What the change log keeps, as `--changes-retain` takes it (`7d`, `1000000`, `7d,1000000`).
    pub fn changes_retain(mut self, retain: &str) -> Result<SyncBuilder> {
        self.opts.changes_retain = Retention::parse(retain)?;
        Ok(self)
    }

    /// A fresh mirror starts from the source's current position instead of copying its rows.
    pub fn skip_copy(mut self) -> SyncBuilder {
        self.opts.start = StartFrom::Current;
        self
    }

    /// A fresh mirror starts at `position` (VGtid JSON, as `sync --start` takes it) without
    /// copying.
    pub fn start_from_position(mut self, position: &str) -> Result<SyncBuilder> {
        let single = self
            .opts
            .spec
            .selection
            .keyspaces
            .single()
            .map(str::to_string);
        let vgtid = crate::source::vgtid::from_json(position, single.as_deref())?;
        self.opts.start = StartFrom::Position(vgtid);
        Ok(self)
    }

    /// End on its own once the copy is done and the stream has been idle `idle`.
    pub fn exit_when_caught_up(mut self, idle: Duration) -> SyncBuilder {
        self.opts.exit_when_caught_up = true;
        self.opts.caught_up_idle = idle;
        self
    }

    /// Starts the sync. vtgate is reached once first, so a wrong address is this call's
    /// error; later losses are retried from the stored checkpoint. Returns once the sync has
    /// opened the file (readers and waits can open it from then on).
    ///
    /// The sync runs on a runtime of its own, blocked on by a thread of its own, as the
    /// binary runs it: the stream is decoded on that thread while two workers carry gRPC.
    /// Spawned onto a shared two-worker runtime instead, a 1M-row copy ran at 0.56 of the
    /// command line's speed (decode and HTTP/2 queued behind each other); and an
    /// application's own load does not slow the mirror, nor the mirror the application.
    pub async fn start(self) -> Result<SyncHandle> {
        connect_first(&self.opts.spec.vtgate).await?;
        let (stop, stopped) = oneshot::channel::<()>();
        let (ended_tx, ended) = oneshot::channel();
        let (opts, progress) = (self.opts, Arc::clone(&self.progress));
        std::thread::Builder::new()
            .name("vtmirror-sync".into())
            .spawn(move || {
                // A dropped handle stops the sync too (the sender is gone).
                let shutdown = async move {
                    let _ = stopped.await;
                };
                let outcome =
                    sync_runtime().and_then(|rt| rt.block_on(run(opts, progress, shutdown)));
                let _ = ended_tx.send(outcome);
            })
            .context("starting the sync's thread")?;
        let mut handle = SyncHandle {
            stop: Some(stop),
            ended: Some(ended),
            progress: self.progress,
        };
        handle.file_ready().await?;
        Ok(handle)
    }
}

fn sync_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("vtmirror-stream")
        .enable_all()
        .build()
        .context("starting the sync's runtime")
}

/// A running sync. `stop` ends it after the open batch commits; dropping the handle asks the
/// same without waiting.
pub struct SyncHandle {
    stop: Option<oneshot::Sender<()>>,
    /// How the sync ended, once it has; None once that was handed out.
    ended: Option<oneshot::Receiver<Result<SyncOutcome>>>,
    progress: Arc<Progress>,
}

/// What a sync has done so far (counters of this run, not of the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    /// Rows written by the copy.
    pub copied_rows: u64,
    /// Source transactions applied after the copy.
    pub transactions: u64,
    /// Row changes applied (copied rows included).
    pub rows: u64,
    /// SQLite commits.
    pub commits: u64,
    /// When the newest commit landed (None before the first of this run).
    pub last_commit: Option<SystemTime>,
    /// Every table's copy has completed (on this run or an earlier one).
    pub copy_completed: bool,
    /// `starting`, `copying`, `replicating`, `reconnecting`, `stopped` or `failed`.
    pub state: &'static str,
}

impl SyncHandle {
    pub fn status(&self) -> SyncStatus {
        let p = self.progress.snapshot();
        SyncStatus {
            copied_rows: p.copied_rows,
            transactions: p.transactions,
            rows: p.rows,
            commits: p.commits,
            last_commit: (p.committed_at_ms > 0)
                .then(|| UNIX_EPOCH + Duration::from_millis(p.committed_at_ms as u64)),
            copy_completed: p.copy_completed,
            state: p.state.name(),
        }
    }

    /// Waits until the sync ends on its own: caught up (`exit_when_caught_up`) or a definite
    /// error. Cancel-safe: dropping this future leaves the sync running.
    pub async fn finished(&mut self) -> Result<SyncOutcome> {
        let ended = self.ended.as_mut().context("the sync has already ended")?;
        let outcome = ended.await;
        self.ended = None;
        outcome.context("the sync's thread ended without an outcome")?
    }

    /// Returns once the sync has opened the file (readers and waits can open it from then
    /// on), or with the error that ended it before.
    async fn file_ready(&mut self) -> Result<()> {
        while !self.progress.file_ready() {
            tokio::select! {
                outcome = self.finished() => {
                    outcome?;
                    anyhow::bail!("the sync ended before opening the mirror");
                }
                _ = tokio::time::sleep(FILE_READY_POLL) => {}
            }
        }
        Ok(())
    }

    /// Stops the sync gracefully and waits for it: the open batch commits, the file is left
    /// at a transaction boundary.
    pub async fn stop(mut self) -> Result<SyncOutcome> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.finished().await
    }
}

impl Drop for SyncHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
