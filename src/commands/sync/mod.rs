//! `vtmirror sync`: load the checkpoint → stream → decode → writer thread, reconnecting on
//! transient errors with backoff and stopping on definite ones.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::error::{classify, render, Backoff, Class, Transient};
use crate::mirror::apply::{QueuedSteps, Writer, WriterMsg};
use crate::mirror::change_log;
use crate::mirror::metadata;
use crate::mirror::resume::{start_position, Start};
use crate::mirror::store::Mirror;
use crate::output::progress::{Progress, SyncState};
use crate::source::decode::{Decoder, Step};
use crate::source::position_check::reached;
use crate::source::proto::binlogdata::{VEventType, VGtid};
use crate::source::proto::vstream_events;
use crate::source::proto::vtgate::VStreamRequest;
use crate::source::transport::{Vtgate, VtgateGrpc};
use crate::source::vgtid;
use crate::source::vstream::open_event_stream;
use tonic::Streaming;

mod missing;
mod options;
mod reshard;
mod tables;
pub use options::{StartFrom, SyncOptions};
pub use tables::TableChanges;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    CaughtUp,
    Shutdown,
}

/// Runs until caught up (if asked), shutdown, or a definite error.
pub async fn run(
    opts: SyncOptions,
    progress: Arc<Progress>,
    shutdown: impl Future<Output = ()>,
) -> Result<Outcome> {
    // A new file that fails before its first commit is removed again: a typo in --keyspace or
    // a filter must not leave a file that then refuses the corrected flags as another mirror.
    let created = !opts.db.exists();
    let mut mirror = Mirror::open(&opts.db, &opts.identity(), opts.durability)?;
    mirror.changes = change_log::enable(&mirror.conn, opts.log_changes, opts.changes_retain)?;
    let before = tables::before(&mirror)?;
    let changed = tables::selected(&opts, &before).await;
    if let Err(err) = changed.and_then(|selected| tables::apply(&opts, &mirror, before, selected)) {
        return Err(match created {
            true => discard_new(err, Some(mirror), &opts.db),
            false => err,
        });
    }
    record_status(&mirror.conn, "state", "starting");
    progress.set_state(SyncState::Starting);
    progress.mark_file_ready();
    let mut mirror = Some(mirror);
    let mut backoff = Backoff::new(opts.backoff_base, opts.backoff_cap);
    // A re-copy that does not get the stream past the DDL would otherwise loop.
    let mut recopies_in_a_row = 0;
    tokio::pin!(shutdown);
    loop {
        let current = mirror
            .take()
            .context("mirror handle lost between attempts")?;
        let commits_before = progress.snapshot().commits;
        let (back, result) = match missing::check_copy(&opts, current).await {
            (checked, Ok(())) => attempt(&opts, checked, &progress, &mut shutdown).await?,
            (checked, Err(e)) => (checked, Err(e)),
        };
        let held = &*mirror.insert(back);
        let conn = &held.conn;
        let err = match result {
            Ok(Some(outcome)) => {
                record_status(conn, "state", "stopped");
                progress.set_state(SyncState::Stopped);
                return Ok(outcome);
            }
            // A copy ended: its tables are checked before the stream goes on.
            Ok(None) => continue,
            Err(err) => err,
        };
        // Remote errors can quote row data: only the redacted rendering is logged or stored
        // (`{err:#}` would show gRPC messages escaped, past the redaction's markers).
        if progress.snapshot().commits != commits_before {
            recopies_in_a_row = 0;
        }
        if opts.changes.recopy_on_ddl && recopies_in_a_row < 3 {
            if let Some(table) = tables::copy_instead_of_stop(held, &err)? {
                tracing::warn!(table = %table, reason = %render(&err), "copying the table again instead of stopping");
                recopies_in_a_row += 1;
                continue;
            }
        }
        let shown = render(&err);
        let class = classify(&err);
        progress.metrics.error(class);
        if class == Class::Definite {
            progress.set_state(SyncState::Failed);
            if created && progress.snapshot().commits == 0 {
                return Err(discard_new(err, mirror.take(), &opts.db));
            }
            record_status(conn, "state", "failed");
            record_status(conn, "last_error", &shown);
            return Err(err);
        }
        if progress.snapshot().commits != commits_before {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::warn!(error = %shown, retry_in_ms = delay.as_millis() as u64, "stream interrupted; resuming from the stored checkpoint");
        record_status(conn, "last_error", &shown);
        progress.set_state(SyncState::Reconnecting);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = &mut shutdown => {
                progress.set_state(SyncState::Stopped);
                return Ok(Outcome::Shutdown);
            }
        }
        progress.metrics.reconnected();
    }
}

/// Removes a file this sync created when it stops on a definite error `err` before its
/// first commit; the error to return.
fn discard_new(err: anyhow::Error, unused: Option<Mirror>, db: &std::path::Path) -> anyhow::Error {
    if let Some(unused) = unused {
        if let Err(e) = unused.discard(db) {
            return e;
        }
    }
    err.context(format!(
        "nothing was written ({} was not created)",
        db.display()
    ))
}

/// Writes a status value for `status`, best effort: a full disk or a lock held by another
/// process must neither hide the error being recorded nor stop the retries.
fn record_status(conn: &rusqlite::Connection, key: &str, value: &str) {
    if let Err(e) = metadata::set_status(conn, key, value) {
        tracing::warn!(error = %format!("{e:#}"), key, "could not record the sync status");
    }
}

type WriterThread = std::thread::JoinHandle<(Mirror, Result<()>)>;

/// Row changes one queue slot stands for: a full copy batch.
const ROWS_PER_QUEUE_SLOT: usize = 2000;
/// Messages one queue slot stands for when they are small.
const MESSAGES_PER_QUEUE_SLOT: usize = 64;

/// The sending side of the writer queue, bounded by messages and by queued row changes.
struct Queue {
    tx: mpsc::Sender<WriterMsg>,
    rows: Arc<Semaphore>,
    row_budget: usize,
}

impl Queue {
    fn new(depth: usize) -> (Queue, mpsc::Receiver<WriterMsg>) {
        let depth = depth.max(1);
        let (tx, rx) = mpsc::channel(depth * MESSAGES_PER_QUEUE_SLOT);
        let row_budget = depth * ROWS_PER_QUEUE_SLOT;
        let rows = Arc::new(Semaphore::new(row_budget));
        let queue = Queue {
            tx,
            rows,
            row_budget,
        };
        (queue, rx)
    }

    /// Waits for room for `steps`, then queues them; Err when the writer stopped.
    async fn send_steps(&self, steps: Vec<Step>) -> Result<()> {
        let rows: usize = steps
            .iter()
            .map(|s| match s {
                Step::Rows { changes, .. } => changes.len(),
                _ => 0,
            })
            .sum();
        let wanted = rows.clamp(1, self.row_budget) as u32;
        let slot = Arc::clone(&self.rows)
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| anyhow!("the mirror writer stopped"))?;
        let msg = WriterMsg::Steps(QueuedSteps { steps, slot });
        self.tx
            .send(msg)
            .await
            .map_err(|_| anyhow!("the mirror writer stopped"))
    }
}

fn spawn_writer(
    opts: &SyncOptions,
    mirror: Mirror,
    progress: &Arc<Progress>,
) -> (Queue, oneshot::Receiver<Start>, WriterThread) {
    let (queue, rx) = Queue::new(opts.queue_depth);
    let (start_tx, start_rx) = oneshot::channel();
    let fresh = opts.fresh_position();
    let policy = opts.policy;
    let progress = Arc::clone(progress);
    let handle = std::thread::spawn(move || {
        let start = match start_position(&mirror.conn, &mirror.naming, &fresh) {
            Ok(start) => start,
            Err(e) => return (mirror, Err(e)),
        };
        // A mirror that runs no first copy (started at a position, or its copy done) logs
        // from here; one whose first copy runs logs when it completes.
        let first_copy = !start.copy_completed && copy_requested(&start.vgtid);
        if let (Some(log), false) = (&mirror.changes, first_copy) {
            if let Err(e) = log.wake(&mirror.conn) {
                return (mirror, Err(e));
            }
        }
        let _ = start_tx.send(start);
        Writer::new(mirror, policy, progress).run(rx)
    });
    (queue, start_rx, handle)
}

/// One connection's life: an outcome, or None when a copy ended and the stream stopped
/// there (`missing`). Always returns the mirror (the lock stays held across attempts).
async fn attempt(
    opts: &SyncOptions,
    mirror: Mirror,
    progress: &Arc<Progress>,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Result<(Mirror, Result<Option<Outcome>>)> {
    let (queue, start_rx, handle) = spawn_writer(opts, mirror, progress);
    let result = match start_rx.await {
        Ok(start) => match reshard::follow_reshard_before_copy(opts, start).await {
            Ok(start) => {
                let copying = start.tables_to_copy.clone();
                let streamed = stream(opts, start, &queue, progress, shutdown).await;
                streamed.map_err(|e| crate::error::not_known_yet(e, &copying))
            }
            Err(e) => Err(e),
        },
        Err(_) => Err(anyhow!("the writer stopped before streaming began")),
    };
    // After a clean end or a transient fault the writer commits the source transactions it
    // holds whole (a broken one never reaches it complete) and rolls back the rest. After a
    // definite error it rolls back everything since its last commit: the mirror stays as it
    // was. If the writer itself failed, it is gone and nothing is committed.
    let keep_whole = match &result {
        Ok(_) => true,
        Err(e) => classify(e) == Class::Transient,
    };
    if keep_whole {
        let (reply, done) = oneshot::channel();
        if queue.tx.send(WriterMsg::Finish(reply)).await.is_ok() {
            let _ = done.await;
        }
    }
    drop(queue);
    let joined = tokio::task::spawn_blocking(move || handle.join()).await;
    let Ok(Ok((mirror, written))) = joined else {
        anyhow::bail!("the mirror writer thread crashed; the mirror keeps its last commit");
    };
    // The writer's own failure is the root cause of any stream-side "writer stopped".
    let result = match written {
        Err(e) => Err(e),
        Ok(()) => result,
    };
    Ok((mirror, result))
}

/// Connects and starts the VStream; the client is kept alive with its stream.
async fn open(
    vtgate: &Vtgate,
    request: VStreamRequest,
) -> Result<(VtgateGrpc, Streaming<vstream_events::Response>)> {
    let mut client = crate::source::transport::connect_grpc(vtgate).await?;
    let responses = open_event_stream(&mut client, request).await?;
    Ok((client, responses))
}

/// The index of the transaction end whose checkpoint is exactly `target`, if in `steps`.
fn stop_index(steps: &[Step], target: &VGtid) -> Result<Option<usize>> {
    for (i, step) in steps.iter().enumerate() {
        if let Step::TxEnd {
            checkpoint: Some(position),
            ..
        } = step
        {
            if reached(position, target)? {
                return Ok(Some(i));
            }
        }
    }
    Ok(None)
}

fn copy_requested(position: &VGtid) -> bool {
    position
        .shard_gtids
        .iter()
        .any(|s| s.gtid.is_empty() || !s.table_p_ks.is_empty())
}

async fn stream(
    opts: &SyncOptions,
    start: Start,
    queue: &Queue,
    progress: &Progress,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Result<Option<Outcome>> {
    // Table copies after the first copy end with a COPY_COMPLETED from each copying shard
    // (vtgate sends its final one only when every shard of the stream copied).
    let mut copying_shards = start.copying_shards.clone();
    let mut copy_done =
        (start.copy_completed && copying_shards.is_empty()) || !copy_requested(&start.vgtid);
    if let Some(target) = &opts.stop_at {
        if reached(&start.vgtid, target)? {
            return Ok(Some(Outcome::CaughtUp));
        }
    }
    if !start.resumed {
        // A new mirror: flags naming what vtgate does not serve fail here, before the first
        // commit (the file is then removed again, see `run`).
        let checked = crate::source::catalog::check(&opts.spec, !copy_done);
        tokio::select! {
            r = checked => r?,
            _ = &mut *shutdown => return Ok(Some(Outcome::Shutdown)),
        }
    }
    tracing::info!(resumed = start.resumed, copy = !copy_done, position = %vgtid::to_json(&start.vgtid), "starting VStream");
    let stall = opts
        .spec
        .stall_timeout()
        .unwrap_or(Duration::from_secs(3600));
    let mut decoder = Decoder::new(&opts.spec.selection).starting_at(&start.vgtid);
    let mut request = opts.spec.request(start.vgtid);
    if let Some(flags) = request
        .flags
        .as_mut()
        .filter(|_| !start.tables_to_copy.is_empty())
    {
        tracing::info!(tables = ?start.tables_to_copy, "copying single tables");
        flags.tables_to_copy = start.tables_to_copy;
    }
    missing::name_copied_tables(opts, &mut request);
    // The stall timeout also bounds the wait for the stream's headers: a vtgate that accepts
    // the connection and then says nothing would otherwise hold us until HTTP/2 keepalive.
    let opened = tokio::select! {
        r = tokio::time::timeout(stall, open(&opts.spec.vtgate, request)) => r,
        _ = &mut *shutdown => return Ok(Some(Outcome::Shutdown)),
    };
    let (_client, mut responses) = opened.map_err(|_| {
        Transient(format!(
            "vtgate did not answer the VStream request within {}s",
            stall.as_secs()
        ))
    })??;
    progress.set_state(if copy_done {
        SyncState::Replicating
    } else {
        SyncState::Copying
    });
    let (mut last_message, mut last_data) = (Instant::now(), Instant::now());
    loop {
        let caught_up_mode = opts.exit_when_caught_up && copy_done && !decoder.in_transaction();
        let wait = if caught_up_mode {
            opts.caught_up_idle.min(stall)
        } else {
            stall
        };
        let next = tokio::select! {
            r = tokio::time::timeout(wait, responses.message()) => r,
            _ = &mut *shutdown => return Ok(Some(Outcome::Shutdown)),
        };
        let response = match next {
            Err(_) if caught_up_mode && last_data.elapsed() >= opts.caught_up_idle => {
                return Ok(Some(Outcome::CaughtUp))
            }
            Err(_) if last_message.elapsed() >= stall => {
                return Err(
                    Transient(format!("no message from vtgate for {}s", stall.as_secs())).into(),
                )
            }
            Err(_) => continue,
            Ok(Err(status)) => {
                return Err(anyhow::Error::new(status).context("reading the VStream"))
            }
            Ok(Ok(None)) if decoder.in_transaction() => {
                return Err(Transient("vtgate ended the stream inside a transaction".into()).into())
            }
            Ok(Ok(None)) => return Err(Transient("vtgate ended the stream".into()).into()),
            Ok(Ok(Some(response))) => response,
        };
        last_message = Instant::now();
        let mut steps = Vec::with_capacity(response.events.len());
        let data = (response.events.iter()).any(|e| e.r#type != VEventType::Heartbeat as i32);
        decoder.decode_all(response.events, &mut steps)?;
        if let Some(target) = &opts.stop_at {
            if let Some(last) = stop_index(&steps, target)? {
                steps.truncate(last + 1);
                queue.send_steps(steps).await?;
                return Ok(Some(Outcome::CaughtUp));
            }
        }
        let mut copy_ended = None;
        for (i, step) in steps.iter().enumerate() {
            let copying = !copy_done;
            match step {
                Step::CopyCompleted => copy_done = true,
                Step::ShardCopyCompleted { shard } if start.copy_completed => {
                    copying_shards.remove(shard);
                    copy_done |= copying_shards.is_empty();
                }
                _ => {}
            }
            if copying && copy_done {
                copy_ended = Some(i);
                break;
            }
        }
        // The stream stops where the copy ended, so that no later event is applied before
        // the copy's tables are checked (`missing`): the next stream resumes from there.
        if let Some(last) = copy_ended {
            steps.truncate(last + 1);
            queue.send_steps(steps).await?;
            return Ok(match opts.exit_after_copy {
                true => Some(Outcome::CaughtUp),
                false => None,
            });
        }
        if data {
            last_data = Instant::now();
        }
        if !steps.is_empty() {
            queue.send_steps(steps).await?;
        }
        if opts.exit_after_copy && copy_done && !decoder.in_transaction() {
            return Ok(Some(Outcome::CaughtUp));
        }
        if opts.exit_when_caught_up
            && copy_done
            && !data
            && !decoder.in_transaction()
            && last_data.elapsed() >= opts.caught_up_idle
        {
            return Ok(Some(Outcome::CaughtUp));
        }
    }
}
