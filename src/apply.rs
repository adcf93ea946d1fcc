//! The writer thread: the only code that touches the mirror while a sync runs.
//!
//! It keeps one SQLite transaction open across steps and commits only at a source
//! transaction end, together with that transaction's checkpoint (invariants 1 and 4).
//! If the stream breaks mid-transaction, everything uncommitted is rolled back and the next
//! stream resumes from the stored checkpoint; replays converge because every change is an
//! upsert or delete by primary key (invariant 2).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use rusqlite::params_from_iter;
use tokio::sync::{mpsc, oneshot};

use crate::batch::CommitPolicy;
use crate::checkpoint::is_positioned;
use crate::ddl::ensure_layout;
use crate::decode::{Change, ShardSchema, Step};
use crate::metadata;
use crate::progress::Progress;
use crate::proto::binlogdata::VGtid;
use crate::schema::{Layout, RowSql, TableSchema};
use crate::store::Mirror;

/// Messages to the writer thread, in stream order.
pub enum WriterMsg {
    /// The steps decoded from one VStream response.
    Steps(Vec<Step>),
    /// Commit what is complete, roll back any partial transaction, stop, then reply.
    Finish(oneshot::Sender<()>),
}

/// Per mirrored table: each shard's schema and the statements per column list.
#[derive(Default)]
struct MirrorTable {
    shards: BTreeMap<String, TableSchema>,
    statements: HashMap<String, (Arc<ShardSchema>, Arc<RowSql>)>,
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
        }
    }

    /// Loads what earlier runs stored: shard schemas and whether the copy finished.
    fn load(&mut self) -> Result<()> {
        let stored = metadata::load_checkpoint(&self.mirror.conn)?;
        for (table, shards) in metadata::load_fields(&self.mirror.conn)? {
            self.tables.entry(table).or_default().shards = shards;
        }
        self.copy_completed = stored.copy_completed;
        self.progress.set_copy_completed(stored.copy_completed);
        Ok(())
    }

    /// Runs until `Finish` or until the sender side is dropped (a broken stream: roll back).
    /// Always gives the mirror back so the next attempt keeps the single-writer lock.
    pub fn run(mut self, mut rx: mpsc::Receiver<WriterMsg>) -> (Mirror, Result<()>) {
        let result = self.load().and_then(|()| self.run_loop(&mut rx));
        if result.is_err() || self.in_sqlite_tx {
            self.rollback();
        }
        (self.mirror, result)
    }

    fn run_loop(&mut self, rx: &mut mpsc::Receiver<WriterMsg>) -> Result<()> {
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                WriterMsg::Steps(steps) => {
                    for step in steps {
                        self.apply(step, rx.is_empty())?;
                    }
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
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<()> {
        if !self.in_sqlite_tx {
            self.mirror
                .conn
                .execute_batch("BEGIN IMMEDIATE")
                .context("starting a mirror transaction")?;
            self.in_sqlite_tx = true;
            self.pending.since = Some(Instant::now());
        }
        Ok(())
    }

    fn rollback(&mut self) {
        if self.in_sqlite_tx {
            if let Err(e) = self.mirror.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back the open mirror transaction failed");
            }
            self.in_sqlite_tx = false;
        }
        self.pending = Uncommitted::default();
        self.at_boundary = true;
        self.state_written = None;
    }

    fn apply(&mut self, step: Step, queue_empty: bool) -> Result<()> {
        match step {
            Step::Schema(schema) => {
                self.at_boundary = false;
                self.apply_schema(&schema)?;
            }
            Step::Rows {
                schema,
                changes,
                copied,
            } => {
                self.at_boundary = false;
                self.apply_rows(&schema, &changes)?;
                if copied {
                    *self
                        .pending
                        .copied
                        .entry((schema.shard.clone(), schema.schema.table.clone()))
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
                if let Some(cp) = checkpoint {
                    self.pending.checkpoint = Some(cp);
                }
                self.pending.transactions += 1;
                self.pending.event_time = self.pending.event_time.max(event_time);
                self.maybe_commit(queue_empty)?;
            }
            Step::ShardCopyCompleted { shard } => {
                self.begin()?;
                self.shards_copied.insert(shard.clone());
                self.pending.shards_copied.push(shard);
            }
            Step::CopyCompleted => {
                self.begin()?;
                self.pending.copy_completed = true;
                self.commit()?;
            }
            Step::Heartbeat { event_time } => self.record_heartbeat(event_time)?,
        }
        Ok(())
    }

    /// Persists the newest heartbeat for `status` (lag when the source is idle); written only
    /// between transactions and at most once a second.
    fn record_heartbeat(&mut self, event_time: i64) -> Result<()> {
        self.progress.heartbeat(event_time);
        let due = self.last_heartbeat_write.is_none_or(|t| t.elapsed().as_secs() >= 1);
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
        if self
            .policy
            .should_commit(self.pending.rows, self.pending.since, queue_empty)
        {
            self.commit()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<()> {
        if !self.in_sqlite_tx {
            return Ok(());
        }
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
            self.copy_completed = true;
        }
        let state = if self.copy_completed { "replicating" } else { "copying" };
        if self.state_written != Some(state) {
            metadata::set_status(conn, "state", state)?;
            self.state_written = Some(state);
        }
        conn.execute_batch("COMMIT")
            .context("committing a mirror transaction")?;
        self.in_sqlite_tx = false;
        self.progress.committed(
            pending.transactions,
            pending.rows,
            pending.event_time,
            pending.copied.values().sum(),
            self.copy_completed,
        );
        Ok(())
    }

    fn apply_schema(&mut self, incoming: &Arc<ShardSchema>) -> Result<()> {
        self.begin()?;
        let table_name = incoming.schema.table.clone();
        let table = self.tables.entry(table_name.clone()).or_default();
        table.statements.remove(&incoming.shard);
        let conn = &self.mirror.conn;
        if !self.copy_completed && !self.shards_copied.contains(&incoming.shard) {
            metadata::add_copy_progress(conn, &incoming.shard, &table_name, 0)?;
        }
        if table.shards.get(&incoming.shard) == Some(&incoming.schema) {
            return Ok(());
        }
        metadata::save_fields(conn, incoming)?;
        table
            .shards
            .insert(incoming.shard.clone(), incoming.schema.clone());
        let others = table
            .shards
            .iter()
            .filter(|(s, _)| *s != &incoming.shard)
            .map(|(_, schema)| schema);
        let layout = Layout::merge(&incoming.schema, others);
        ensure_layout(conn, &table_name, &layout)?;
        Ok(())
    }

    fn statements(&mut self, schema: &Arc<ShardSchema>) -> Arc<RowSql> {
        let table = self.tables.entry(schema.schema.table.clone()).or_default();
        if let Some((known, sql)) = table.statements.get(&schema.shard) {
            if Arc::ptr_eq(known, schema) {
                return Arc::clone(sql);
            }
        }
        let sql = RowSql::new(
            &schema.schema.table,
            &schema.schema.column_names(),
            &schema.schema.pk_names(),
        );
        table
            .statements
            .insert(schema.shard.clone(), (Arc::clone(schema), Arc::clone(&sql)));
        sql
    }

    fn apply_rows(&mut self, schema: &Arc<ShardSchema>, changes: &[Change]) -> Result<()> {
        self.begin()?;
        let sql = self.statements(schema);
        let table = &schema.schema.table;
        let conn = &self.mirror.conn;
        let mut upsert = conn
            .prepare_cached(&sql.upsert)
            .with_context(|| format!("preparing upsert for table {table}"))?;
        let mut delete = conn
            .prepare_cached(&sql.delete)
            .with_context(|| format!("preparing delete for table {table}"))?;
        for change in changes {
            match change {
                Change::Upsert(values) => upsert.execute(params_from_iter(values.iter())),
                Change::Delete(key) => delete.execute(params_from_iter(key.iter())),
            }
            .with_context(|| format!("applying a row change to table {table}"))?;
        }
        self.pending.rows += changes.len();
        Ok(())
    }
}
