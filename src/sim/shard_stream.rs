//! One shard's stream: a state machine that, under the model lock, yields the next *unit*
//! (a complete group of events vtgate would forward contiguously: one transaction, one copy
//! batch, a position announcement, COPY_COMPLETED).
//!
//! Copy follows uvstreamer: tables one at a time sorted by name; before every batch a
//! catch-up of the binlog since the last sent position, filtered so that events for tables
//! whose copy has not started are dropped and, for the table being copied, only row changes
//! with PK <= lastpk are sent (rows above lastpk are read later from the then-current state,
//! so the mirror stays exact). Each batch is read at the position already sent.

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::ops::Bound;

use tonic::Status;

use super::events::{copy_fully_completed, lastpk_result, now_ns, size, Source};
use super::filter::TableFilter;
use super::model::{parse_pk, BinlogTxn, Model, RowChange, Shard};
use super::request::{ShardStart, StartMode};
use super::row_filter::RowFilter;
use crate::source::proto::binlogdata::{TableLastPk, VEvent, VEventType, VGtid};
use crate::source::proto::query::Field;

/// Size limits of one copy batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Max rows per batch.
    pub rows: usize,
    /// Max encoded bytes of ROW events per batch (at least one row is always sent).
    pub bytes: usize,
}

#[derive(Debug)]
struct CopyTable {
    name: String,
    lastpk: Option<i64>,
}

#[derive(Debug)]
enum Phase {
    AnnounceCurrent,
    Copy {
        tables: VecDeque<CopyTable>,
        field_sent: bool,
    },
    Replicate,
}

/// What every shard cursor shares: vtgate's VGtid for the stream, the filter, copy progress.
#[derive(Debug)]
pub struct StreamState {
    /// The stream's VGtid (all shards of all keyspaces, updated as events are produced).
    pub vgtid: VGtid,
    /// Table filter.
    pub filter: TableFilter,
    /// Copy batch limits.
    pub limits: BatchLimits,
    /// Indexes (in `vgtid`) of shards that sent COPY_COMPLETED.
    pub copy_completed: BTreeSet<usize>,
}

/// The per-shard cursor.
#[derive(Debug)]
pub struct ShardStream {
    keyspace: usize,
    model_index: usize,
    vgtid_index: usize,
    src: Source,
    pos: Option<u64>,
    phase: Phase,
    fields_sent: HashSet<String>,
}

impl ShardStream {
    /// A cursor for `start`, the `vgtid_index`-th shard of the stream.
    pub fn new(start: &ShardStart, vgtid_index: usize, src: Source, replay: bool) -> Self {
        let back = |n: u64| if replay { n.saturating_sub(1) } else { n };
        let (pos, phase) = match &start.mode {
            StartMode::Current => (None, Phase::AnnounceCurrent),
            StartMode::Replicate(n) => (Some(back(*n)), Phase::Replicate),
            StartMode::Copy { pos, plan } => {
                let tables = plan
                    .iter()
                    .map(|(name, lastpk)| CopyTable {
                        name: name.clone(),
                        lastpk: *lastpk,
                    })
                    .collect();
                (
                    pos.map(back),
                    Phase::Copy {
                        tables,
                        field_sent: false,
                    },
                )
            }
        };
        Self {
            keyspace: start.keyspace,
            model_index: start.model_index,
            vgtid_index,
            src,
            pos,
            phase,
            fields_sent: HashSet::new(),
        }
    }

    /// Index of this shard's keyspace: `next_unit` must be given that keyspace's model.
    pub fn keyspace(&self) -> usize {
        self.keyspace
    }

    /// Whether `replay` can move this cursor back one transaction (it starts at a position).
    pub fn can_replay(start: &ShardStart, purged: u64) -> bool {
        match &start.mode {
            StartMode::Replicate(n) | StartMode::Copy { pos: Some(n), .. } => *n > purged,
            _ => false,
        }
    }

    /// The next unit of events, or None when this shard has nothing to send now (`model` is
    /// this shard's keyspace).
    pub fn next_unit(
        &mut self,
        model: &Model,
        st: &mut StreamState,
    ) -> Result<Option<Vec<VEvent>>, Status> {
        let shard = &model.shards[self.model_index];
        let head = shard.head();
        if matches!(self.phase, Phase::AnnounceCurrent) {
            self.phase = Phase::Replicate;
            let vgtid = self.set_pos(head, shard, st);
            let other = self.src.event(VEventType::Other, 0, 0);
            return Ok(Some(vec![vgtid, other]));
        }
        if let Some(p) = self.pos.filter(|&p| p < head) {
            let txn = shard.txn(p + 1).ok_or_else(|| purged_error(&self.src, p))?;
            return Ok(Some(self.render_txn(txn, model, st)));
        }
        match &self.phase {
            Phase::Copy { tables, .. } if tables.is_empty() => Ok(Some(self.finish_copy(st))),
            Phase::Copy { .. } => Ok(Some(self.copy_batch(model, st))),
            _ => Ok(None),
        }
    }

    /// Moves the position to `n` and returns the VGTID event announcing it.
    fn set_pos(&mut self, n: u64, shard: &Shard, st: &mut StreamState) -> VEvent {
        self.pos = Some(n);
        st.vgtid.shard_gtids[self.vgtid_index].gtid = shard.position_at(n);
        self.src.vgtid(st.vgtid.clone())
    }

    /// Whether the catch-up filter keeps `change` (tables not in the copy plan always pass).
    fn keeps(&self, change: &RowChange, table_pk: &[(String, Option<i64>)]) -> bool {
        let Some((_, lastpk)) = table_pk.iter().find(|(t, _)| *t == change.table) else {
            return true;
        };
        let Some(l) = lastpk else { return false };
        let at_or_below = |r: &Option<Vec<Option<Vec<u8>>>>| {
            r.as_ref()
                .and_then(|r| parse_pk(r.first()?.as_ref()))
                .is_some_and(|pk| pk <= *l)
        };
        at_or_below(&change.before) || at_or_below(&change.after)
    }

    fn copy_plan_snapshot(&self) -> Vec<(String, Option<i64>)> {
        match &self.phase {
            Phase::Copy { tables, .. } => {
                tables.iter().map(|t| (t.name.clone(), t.lastpk)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// A binlog transaction as BEGIN, [FIELD], ROW…, VGTID, COMMIT.
    fn render_txn(&mut self, txn: &BinlogTxn, model: &Model, st: &mut StreamState) -> Vec<VEvent> {
        let (ts, ct) = (txn.timestamp, now_ns());
        let plan = self.copy_plan_snapshot();
        let mut events = vec![self.src.event(VEventType::Begin, ts, ct)];
        let mut i = 0;
        while i < txn.changes.len() {
            let table = &txn.changes[i].table;
            let run = txn.changes[i..]
                .iter()
                .take_while(|c| c.table == *table)
                .count();
            // A rule's WHERE clause decides which images are sent (`row_filter`).
            let row_filter = (st.filter.row_filter(table)).map(|f| (f, model.fields(table)));
            let kept: Vec<std::borrow::Cow<RowChange>> = txn.changes[i..i + run]
                .iter()
                .filter(|c| st.filter.matches(&c.table) && self.keeps(c, &plan))
                .filter_map(|c| match &row_filter {
                    Some((f, fields)) => f.images(fields, c).map(std::borrow::Cow::Owned),
                    None => Some(std::borrow::Cow::Borrowed(c)),
                })
                .collect();
            i += run;
            if kept.is_empty() {
                continue;
            }
            if self.fields_sent.insert(table.clone()) {
                events.push(self.src.field(table, model.fields(table), ts, ct));
            }
            let kept: Vec<&RowChange> = kept.iter().map(|c| c.as_ref()).collect();
            events.push(self.src.row(table, &kept, ts, ct, true));
        }
        let shard = &model.shards[self.model_index];
        events.push(self.set_pos(txn.gtid_no, shard, st));
        events.push(self.src.event(VEventType::Commit, ts, ct));
        events
    }

    /// One copy batch of the first table of the plan (plus its completion when it is done).
    fn copy_batch(&mut self, model: &Model, st: &mut StreamState) -> Vec<VEvent> {
        let shard = &model.shards[self.model_index];
        let Phase::Copy { tables, field_sent } = &mut self.phase else {
            return Vec::new();
        };
        let Some(front) = tables.front() else {
            return Vec::new();
        };
        let (name, lastpk, first) = (front.name.clone(), front.lastpk, !*field_sent);
        *field_sent = true;
        let mut events = Vec::new();
        if first {
            events.push(self.src.event(VEventType::Begin, 0, 0));
            events.push(self.src.field(&name, model.fields(&name), 0, 0));
            // A new catch-up vstreamer follows: it re-sends FIELD events.
            self.fields_sent.clear();
            if self.pos != Some(shard.head()) {
                events.push(self.set_pos(shard.head(), shard, st));
            }
        }
        let fields = model.fields(&name);
        let row_filter = st.filter.row_filter(&name).map(|f| (f, fields.as_slice()));
        let (rows, scanned) = batch_rows(shard, &name, lastpk, st.limits, &self.src, row_filter);
        if let Some(last) = scanned {
            if !first {
                events.push(self.src.event(VEventType::Begin, 0, 0));
            }
            events.extend(rows.into_iter().map(|(_, ev)| ev));
            self.set_lastpk(&name, Some(last), model, st);
            events.push(self.src.vgtid(st.vgtid.clone()));
            events.push(self.src.event(VEventType::Commit, 0, 0));
        }
        let done_from = self.current_lastpk();
        if next_row(shard, &name, done_from).is_none() {
            events.push(self.src.event(VEventType::Begin, 0, 0));
            self.set_lastpk(&name, None, model, st);
            events.push(self.src.vgtid(st.vgtid.clone()));
            events.push(self.src.event(VEventType::Commit, 0, 0));
            if let Phase::Copy { tables, field_sent } = &mut self.phase {
                tables.pop_front();
                *field_sent = false;
            }
        }
        events
    }

    fn current_lastpk(&self) -> Option<i64> {
        match &self.phase {
            Phase::Copy { tables, .. } => tables.front().and_then(|t| t.lastpk),
            _ => None,
        }
    }

    /// Records a table's progress (None = completed) in the cursor and in the stream's VGtid,
    /// with vtgate's LASTPK → VGTID semantics.
    fn set_lastpk(
        &mut self,
        table: &str,
        lastpk: Option<i64>,
        model: &Model,
        st: &mut StreamState,
    ) {
        if let (Phase::Copy { tables, .. }, Some(l)) = (&mut self.phase, lastpk) {
            if let Some(t) = tables.front_mut() {
                t.lastpk = Some(l);
            }
        }
        let pks = &mut st.vgtid.shard_gtids[self.vgtid_index].table_p_ks;
        let found = pks.iter().position(|p| p.table_name == table);
        match (found, lastpk) {
            (None, None) => {}
            (Some(i), None) => {
                pks.swap_remove(i);
            }
            (found, Some(l)) => {
                let pk_fields = model
                    .spec
                    .table(table)
                    .map(|t| t.pk_fields(&model.spec.keyspace));
                let entry = TableLastPk {
                    table_name: table.to_string(),
                    lastpk: Some(lastpk_result(pk_fields.unwrap_or_default(), l)),
                };
                match found {
                    Some(i) => pks[i] = entry,
                    None => pks.push(entry),
                }
            }
        }
    }

    /// COPY_COMPLETED for this shard (and vtgate's final one when every shard is done).
    fn finish_copy(&mut self, st: &mut StreamState) -> Vec<VEvent> {
        self.phase = Phase::Replicate;
        self.fields_sent.clear();
        let mut events = vec![self.src.event(VEventType::CopyCompleted, 0, 0)];
        st.copy_completed.insert(self.vgtid_index);
        let all: BTreeSet<usize> = (0..st.vgtid.shard_gtids.len()).collect();
        if st.copy_completed == all {
            events.push(copy_fully_completed());
        }
        events
    }
}

fn purged_error(src: &Source, pos: u64) -> Status {
    Status::unknown(format!(
        "error in vstream for {}/{}: stream (at source tablet) error @ {pos}: Cannot replicate because the source purged required binary logs (errno 1236)",
        src.keyspace, src.shard
    ))
}

fn after(lastpk: Option<i64>) -> (Bound<i64>, Bound<i64>) {
    (
        lastpk.map_or(Bound::Unbounded, Bound::Excluded),
        Bound::Unbounded,
    )
}

fn next_row(shard: &Shard, table: &str, lastpk: Option<i64>) -> Option<i64> {
    shard
        .rows(table)?
        .range(after(lastpk))
        .next()
        .map(|(k, _)| *k)
}

/// Up to one batch of copy ROW events (one RowEvent per row, insert images, times 0).
/// One copy batch after `lastpk`: the rows that pass the rule's WHERE clause, if any, and the
/// last key scanned (the copy's progress, also when no scanned row passed).
fn batch_rows(
    shard: &Shard,
    table: &str,
    lastpk: Option<i64>,
    lim: BatchLimits,
    src: &Source,
    row_filter: Option<(&RowFilter, &[Field])>,
) -> (Vec<(i64, VEvent)>, Option<i64>) {
    let Some(rows) = shard.rows(table) else {
        return (Vec::new(), None);
    };
    let mut out = Vec::new();
    let (mut bytes, mut scanned) = (0, None);
    for (pk, row) in rows.range(after(lastpk)) {
        if out.len() >= lim.rows.max(1) || (bytes >= lim.bytes && !out.is_empty()) {
            break;
        }
        scanned = Some(*pk);
        if row_filter.is_some_and(|(f, fields)| !f.passes(fields, row)) {
            continue;
        }
        let change = RowChange {
            table: table.to_string(),
            before: None,
            after: Some(row.clone()),
        };
        let ev = src.row(table, &[&change], 0, 0, false);
        bytes += size(&ev);
        out.push((*pk, ev));
    }
    (out, scanned)
}
