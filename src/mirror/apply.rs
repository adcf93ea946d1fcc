//! The writer thread: the only code that touches the mirror while a sync runs.
//!
//! It keeps one SQLite transaction open across steps and commits only at a source
//! transaction end, together with that transaction's checkpoint (invariants 1 and 4).
//! If the stream breaks mid-transaction, everything uncommitted is rolled back and the next
//! stream resumes from the stored checkpoint; replays converge because every change is an
//! upsert or delete by primary key (invariant 2).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use crate::output::metrics::Applied;

use anyhow::{Context, Result};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use crate::mirror::batch::CommitPolicy;
use crate::mirror::metadata;
use crate::mirror::store::Mirror;
use crate::mirror::table_copy;
use crate::output::progress::Progress;
use crate::source::decode::Step;
use crate::source::proto::binlogdata::VGtid;
use crate::source::vgtid::is_positioned;

mod crash_point;
mod measure;
mod phase;
mod rows;
pub use crate::source::phase::Phase;
use crash_point::{CrashAt, Point};
use phase::describe_commit;
use rows::MirrorTable;

/// The steps decoded from one VStream response, holding their room in the writer queue
/// until they are applied and freed.
pub struct QueuedSteps {
    pub steps: Vec<Step>,
    pub slot: OwnedSemaphorePermit,
}

/// Messages to the writer thread, in stream order.
pub enum WriterMsg {
    Steps(QueuedSteps),
    /// Commit what is complete, roll back any partial transaction, stop, then reply.
    Finish(oneshot::Sender<()>),
}

/// What the open SQLite transaction holds beyond row changes.
#[derive(Default)]
struct Uncommitted {
    checkpoint: Option<VGtid>,
    transactions: i64,
    rows: usize,
    event_time: i64,
    since: Option<Instant>,
    copied: HashMap<(String, String), i64>,
    shards_copied: Vec<String>,
    copy_completed: bool,
    /// The phase of the last source transaction that carried rows.
    phase: Option<Phase>,
    /// Transactions and rows by `Phase::index`, for `/metrics`.
    applied: [Applied; 3],
    /// `rows` already filed in `applied`.
    rows_counted: usize,
    /// Whether the copy state changed (copied rows, a finished shard or copy, a DDL).
    copy_changed: bool,
}

pub struct Writer {
    mirror: Mirror,
    policy: CommitPolicy,
    progress: Arc<Progress>,
    tables: HashMap<String, MirrorTable>,
    copy_completed: bool,
    shards_copied: HashSet<String>,
    in_sqlite_tx: bool,
    at_boundary: bool,
    pending: Uncommitted,
    last_heartbeat_write: Option<Instant>,
    /// The `state` last written to `_vtmirror_status` (copying / replicating).
    state_written: Option<&'static str>,
    /// Applied steps go to another thread to be freed (freeing millions of decoded values
    /// would otherwise take a tenth of this thread's time), a group at a time.
    retiring: Vec<QueuedSteps>,
    retired: std::sync::mpsc::Sender<Vec<QueuedSteps>>,
    /// Whether the open source transaction carried copy rows (Some) or replicated ones.
    txn_copied: Option<bool>,
    /// The `phase` last written to `_vtmirror_status`.
    phase_written: Option<Phase>,
    /// The armed `VTMIRROR_CRASH_AT` point (crash tests only).
    crash: Option<&'static CrashAt>,
    /// Tables being copied on their own → the shadow their rows go to (`table_copy`).
    copying: HashMap<String, String>,
    /// Source transactions the file holds (the checkpoint's count), for the debug log of
    /// each commit that power-cut tests compare with the file after a cut.
    transactions: i64,
    /// Whether row versions wait aside (`mirror::versions`), read when a SQLite
    /// transaction begins: while none does, deletes skip looking for one.
    versions_aside: bool,
    /// The shard whose rows the open source transaction carried.
    txn_shard: Option<String>,
    /// Each shard's latest transaction time in this run (`versions::held_twice`).
    shard_times: HashMap<String, i64>,
}

/// Applied messages handed to the retirement thread at once (fewer thread wake-ups) …
const RETIRE_MESSAGES: usize = 64;
/// … unless they hold this many rows of queue room (a full copy batch): the stream must not
/// wait for room that only applied steps take.
const RETIRE_ROWS: usize = 2000;

/// A thread that drops applied steps (and so releases their queue room).
fn spawn_retirement() -> std::sync::mpsc::Sender<Vec<QueuedSteps>> {
    let (tx, rx) = std::sync::mpsc::channel::<Vec<QueuedSteps>>();
    std::thread::spawn(move || rx.into_iter().for_each(drop));
    tx
}

impl Writer {
    pub fn new(mirror: Mirror, policy: CommitPolicy, progress: Arc<Progress>) -> Self {
        Writer {
            mirror,
            policy,
            progress,
            tables: HashMap::new(),
            copy_completed: false,
            shards_copied: HashSet::new(),
            in_sqlite_tx: false,
            at_boundary: true,
            pending: Uncommitted::default(),
            last_heartbeat_write: None,
            state_written: None,
            retiring: Vec::with_capacity(RETIRE_MESSAGES),
            retired: spawn_retirement(),
            txn_copied: None,
            phase_written: None,
            crash: None,
            copying: HashMap::new(),
            transactions: 0,
            versions_aside: true,
            txn_shard: None,
            shard_times: HashMap::new(),
        }
    }

    /// Loads what earlier runs stored: shard schemas and whether the copy finished.
    fn load(&mut self) -> Result<()> {
        let stored = metadata::load_checkpoint(&self.mirror.conn)?;
        for (table, shards) in metadata::load_fields(&self.mirror.conn)? {
            self.tables.entry(table).or_default().shards = shards;
        }
        self.copy_completed = stored.copy_completed;
        self.transactions = stored.transactions;
        let copies = table_copy::pending(&self.mirror.conn)?;
        let labels = copies.iter().map(|c| format!("{} ({})", c.table, c.reason));
        self.progress.set_table_copies(labels.collect());
        self.copying = (copies.into_iter()).map(|c| (c.table, c.shadow)).collect();
        self.progress
            .stored(stored.copy_completed, stored.event_time);
        Ok(())
    }

    /// Runs until `Finish` or until the sender side is dropped (a broken stream: roll back).
    /// Always gives the mirror back so the next attempt keeps the single-writer lock.
    pub fn run(mut self, mut rx: mpsc::Receiver<WriterMsg>) -> (Mirror, Result<()>) {
        let result = crash_point::from_env()
            .map(|armed| self.crash = armed)
            .and_then(|()| self.load())
            .map(|()| self.publish_copy_state())
            .and_then(|()| self.run_loop(&mut rx));
        self.progress.writer_busy(false);
        if result.is_err() || self.in_sqlite_tx {
            self.rollback();
        }
        (self.mirror, result)
    }

    fn run_loop(&mut self, rx: &mut mpsc::Receiver<WriterMsg>) -> Result<()> {
        while let Some(msg) = rx.blocking_recv() {
            self.progress.writer_busy(true);
            match msg {
                WriterMsg::Steps(mut queued) => {
                    for step in &mut queued.steps {
                        self.apply(step, rx.is_empty())?;
                    }
                    self.retire(queued, rx.is_empty());
                }
                WriterMsg::Finish(reply) => {
                    let resumable = self.pending.checkpoint.as_ref().is_none_or(is_positioned);
                    if self.at_boundary && resumable {
                        self.commit()?;
                    }
                    self.rollback();
                    let _ = reply.send(());
                    return Ok(());
                }
            }
            self.progress.writer_busy(false);
        }
        Ok(())
    }

    /// Queues applied steps for freeing; hands them over in groups, or at once when the
    /// writer is about to wait (their queue room must not stay taken while it idles).
    fn retire(&mut self, applied: QueuedSteps, queue_empty: bool) {
        self.retiring.push(applied);
        let rows: usize = self.retiring.iter().map(|q| q.slot.num_permits()).sum();
        if queue_empty || rows >= RETIRE_ROWS || self.retiring.len() >= RETIRE_MESSAGES {
            let group = std::mem::replace(&mut self.retiring, Vec::with_capacity(RETIRE_MESSAGES));
            // The retirement thread lives as long as `self`; were it gone, the group is
            // simply dropped here.
            let _ = self.retired.send(group);
        }
    }

    fn begin(&mut self) -> Result<()> {
        if !self.in_sqlite_tx {
            self.mirror
                .conn
                .execute_batch("BEGIN IMMEDIATE")
                .context("starting a mirror transaction")?;
            self.in_sqlite_tx = true;
            self.versions_aside = crate::mirror::versions::any(&self.mirror.conn)?;
            self.pending.since = Some(Instant::now());
        }
        Ok(())
    }

    fn rollback(&mut self) {
        // A failed COMMIT (disk full) may already have rolled back: SQLite is in autocommit.
        if self.in_sqlite_tx && !self.mirror.conn.is_autocommit() {
            if let Err(e) = self.mirror.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back the open mirror transaction failed");
            }
        }
        self.in_sqlite_tx = false;
        if let Some(log) = &self.mirror.changes {
            log.discard(&self.mirror.conn);
        }
        self.pending = Uncommitted::default();
        self.at_boundary = true;
        self.state_written = None;
        self.phase_written = None;
        self.txn_copied = None;
    }

    /// Applies one step; what it hands over (checkpoint, shard name) is taken out of it.
    fn apply(&mut self, step: &mut Step, queue_empty: bool) -> Result<()> {
        self.apply_step(step, queue_empty)?;
        if let Some(log) = &self.mirror.changes {
            log.step_done();
        }
        Ok(())
    }

    fn apply_step(&mut self, step: &mut Step, queue_empty: bool) -> Result<()> {
        match step {
            Step::Schema { schema, copied } => {
                self.at_boundary = false;
                self.apply_schema(schema, *copied)?;
            }
            Step::Rows {
                schema,
                changes,
                copied,
            } => {
                self.at_boundary = false;
                self.apply_rows(schema, changes)?;
                if self.txn_shard.as_deref() != Some(schema.shard.as_str()) {
                    self.txn_shard = Some(schema.shard.clone());
                }
                self.txn_copied = Some(*copied || self.txn_copied == Some(true));
                if let Some(crash) = self.crash {
                    crash.reached(Point::MidBatch, || self.describe());
                }
                if *copied {
                    self.pending.copy_changed = true;
                    let table = self.target(&schema.schema.table).to_string();
                    *self
                        .pending
                        .copied
                        .entry((schema.shard.clone(), table))
                        .or_default() += changes.len() as i64;
                }
            }
            Step::TxEnd {
                checkpoint,
                event_time,
                ..
            } => {
                self.at_boundary = true;
                self.begin()?;
                if let Some(cp) = checkpoint.take() {
                    self.pending.checkpoint = Some(cp);
                }
                self.pending.transactions += 1;
                if let Some(log) = &self.mirror.changes {
                    let position = self.pending.checkpoint.as_ref();
                    log.end_transaction(&self.mirror.conn, position, *event_time)?;
                }
                self.end_phase();
                self.count_transaction();
                self.pending.event_time = self.pending.event_time.max(*event_time);
                self.shard_passed(*event_time)?;
                self.maybe_commit(queue_empty)?;
            }
            Step::ShardCopyCompleted { shard } => {
                self.begin()?;
                self.shards_copied.insert(shard.clone());
                self.pending.copy_changed = true;
                self.pending.shards_copied.push(std::mem::take(shard));
            }
            Step::CopyCompleted => {
                self.begin()?;
                self.pending.copy_completed = true;
                self.pending.copy_changed = true;
                self.pending.phase = Some(Phase::Replication);
                self.commit()?;
            }
            Step::Heartbeat { event_time } => self.record_heartbeat(*event_time)?,
            Step::Ddl {
                keyspace,
                shard,
                ddl,
            } => {
                self.at_boundary = false;
                self.begin()?;
                let scope = crate::mirror::ddl::DdlScope {
                    keyspace,
                    shard,
                    naming: &self.mirror.naming,
                    copying: &self.copying,
                };
                crate::mirror::ddl::apply_source_ddl(&self.mirror.conn, &scope, ddl)?;
                self.pending.copy_changed = true;
                // Table names or columns may have moved: reload the schema cache.
                self.tables.clear();
                self.load()?;
            }
        }
        Ok(())
    }

    /// Records how far the transaction's shard has come; while row versions wait aside,
    /// checks that none outlived a move (`versions::held_twice`).
    fn shard_passed(&mut self, event_time: i64) -> Result<()> {
        let Some(shard) = self.txn_shard.take() else {
            return Ok(());
        };
        if let (Some(owner), true) = (crate::mirror::owner::owner_of(&shard), event_time > 0) {
            let latest = self.shard_times.entry(owner.to_string()).or_default();
            *latest = (*latest).max(event_time);
        }
        if self.versions_aside {
            crate::mirror::versions::held_twice::check(&self.mirror.conn, &self.shard_times)?;
        }
        Ok(())
    }

    /// Persists the newest heartbeat for `status` (lag when the source is idle); written only
    /// between transactions and at most once a second.
    fn record_heartbeat(&mut self, event_time: i64) -> Result<()> {
        self.progress.heartbeat(event_time);
        // A copy that pauses (vttablet between tables) still commits its rows within a
        // heartbeat of `max_delay`.
        if self.in_sqlite_tx && self.at_boundary {
            self.maybe_commit(false)?;
        }
        let due = self
            .last_heartbeat_write
            .is_none_or(|t| t.elapsed().as_secs() >= 1);
        if !self.in_sqlite_tx && due {
            metadata::set_status(&self.mirror.conn, "heartbeat_time", &event_time.to_string())?;
            self.last_heartbeat_write = Some(Instant::now());
        }
        Ok(())
    }

    fn maybe_commit(&mut self, queue_empty: bool) -> Result<()> {
        // A position still "current" for some shard is not resumable: hold the commit until
        // every shard reported (each does so at once with VGTID + OTHER).
        if let Some(cp) = &self.pending.checkpoint {
            if !is_positioned(cp) {
                return Ok(());
            }
        }
        let copying = self.pending.phase == Some(Phase::Copy);
        if self
            .policy
            .should_commit(self.pending.rows, self.pending.since, queue_empty, copying)
        {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if !self.in_sqlite_tx {
            return Ok(());
        }
        let started = Instant::now();
        let pending = std::mem::take(&mut self.pending);
        let conn = &self.mirror.conn;
        if let Some(cp) = &pending.checkpoint {
            metadata::save_checkpoint(conn, cp, pending.transactions, pending.event_time)?;
        }
        for ((shard, table), rows) in &pending.copied {
            metadata::add_copy_progress(conn, shard, table, *rows)?;
        }
        for shard in &pending.shards_copied {
            metadata::mark_shard_copied(conn, shard)?;
        }
        if pending.copy_completed {
            metadata::mark_copy_completed(conn)?;
            // Tables the copy did not deliver whole are copied on their own, first.
            for dropped in crate::mirror::copy_check::on_copy_completed(conn)? {
                self.tables.remove(&dropped);
            }
            if let Some(log) = &self.mirror.changes {
                log.copy_completed(conn)?;
            }
            self.copy_completed = true;
        }
        let copies_ended = !pending.shards_copied.is_empty() || pending.copy_completed;
        let finished = match copies_ended && !self.copying.is_empty() {
            true => table_copy::finish_completed(conn)?,
            false => Vec::new(),
        };
        let state = if self.copy_completed {
            "replicating"
        } else {
            "copying"
        };
        if self.state_written != Some(state) {
            metadata::set_status(conn, "state", state)?;
            self.state_written = Some(state);
        }
        if let Some(phase) = pending.phase.filter(|p| self.phase_written != Some(*p)) {
            metadata::set_status(conn, "phase", phase.name())?;
            self.phase_written = Some(phase);
        }
        if let Some(log) = &self.mirror.changes {
            log.before_commit(conn)?;
        }
        if let Some(crash) = self.crash {
            let phase = self.current_phase(pending.phase);
            crash.reached(Point::BeforeCommit, || describe_commit(phase, &pending));
        }
        conn.execute_batch("COMMIT")
            .context("committing a mirror transaction")?;
        self.in_sqlite_tx = false;
        self.mirror.committed();
        if pending.checkpoint.is_some() {
            // The count `save_checkpoint` added to the file.
            self.transactions += pending.transactions;
        }
        tracing::debug!(transactions = self.transactions, "committed");
        if let Some(crash) = self.crash {
            let phase = self.current_phase(pending.phase);
            crash.reached(Point::AfterCommit, || describe_commit(phase, &pending));
        }
        self.progress.committed(
            pending.transactions,
            pending.rows,
            pending.event_time,
            pending.copied.values().sum(),
            self.copy_completed,
        );
        self.measure_commit(&pending, started.elapsed());
        if !finished.is_empty() {
            tracing::info!(tables = ?finished, "table copies finished; readers now see the new copies");
            self.tables.clear();
            self.load()?;
        }
        Ok(())
    }

    /// The SQLite table a source table's rows go to: its shadow while it is being copied.
    fn target<'a>(&'a self, table: &'a str) -> &'a str {
        self.copying.get(table).map_or(table, String::as_str)
    }
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "apply/shard_tests.rs"]
mod shard_tests;
