//! VEvents → steps for the writer: schema changes, row changes, transaction ends.
//!
//! Pure and total: every wire fact is validated (event order, value counts, lengths) and a
//! violation is an error naming the table, never a panic. Values are converted to SQLite
//! values here, on the async side, so the writer thread only binds and executes.
//!
//! # Partial row images
//! What vttablet sends when the source's `binlog_row_image` is not FULL, as its vstreamer
//! (`go/vt/vttablet/tabletserver/vstreamer/vstreamer.go`, `processRowEvent` and `getValues`)
//! builds it:
//! - Every image carries a value for every column of the FIELD event; a column the binlog
//!   left out comes as NULL. Only the *after* image says which columns are real: its
//!   `RowChange.data_columns` is the binlog's column bitmap (`count` = the table's column
//!   count, `cols` one bit per column in table order, least significant bit first within each
//!   byte, as MySQL writes it; Vitess's own applier reads it the same way, `isBitSet` in
//!   `vreplication/table_plan_partial.go`). It is set only when that image is partial (or
//!   when partial JSON values are present), and only while the tablet allows NOBLOB images
//!   (`--vreplication-experimental-flags` bit 2, on by default); otherwise vttablet itself
//!   stops the stream with "partial row image encountered".
//! - The *before* image has no bitmap: its missing columns are indistinguishable from NULLs.
//!   MySQL always logs the primary key in it (NOBLOB leaves out only BLOB/TEXT columns that
//!   are not needed to find the row; MINIMAL keeps only the key), so the before image is
//!   used for the key and nothing else.
//! - An insert's image is partial too when the INSERT did not name every column: MySQL logs
//!   the columns in the statement's write set (under NOBLOB every non-BLOB/TEXT column plus the
//!   BLOB/TEXT columns it named; under MINIMAL only the named ones), and the bitmap says so.
//!   The absent columns hold their defaults, which no event carries (Vitess's own applier can
//!   insert only the present columns because its target table has the same defaults), so a
//!   partial insert is a definite error naming the absent columns.
//! - `json_partial_values` marks JSON columns logged as a diff
//!   (`binlog_row_value_options=PARTIAL_JSON`); Vitess's applier rebuilds them by running the
//!   diff in MySQL (`replicator_plan.go`, `applyChange`).
//!
//! So: a partial update becomes [`Change::Merge`], the present columns set on the row the
//! mirror holds for the before image's key. That is exact, not a guess, because the mirror
//! holds every column of that row as of the change before (the stream is applied in order
//! from a consistent copy), and a column the binlog left out is one the statement did not
//! change. An update with no bitmap, or one whose bitmap marks every column, is a full image.
//! A partial delete deletes by key. What the mirror cannot complete exactly is a definite
//! error naming the table and its key columns: a partial insert, partial JSON values, a
//! bitmap that does not fit the FIELD event, a before image without its key (and, in the
//! writer, a merge for a row the mirror does not hold).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::{bail, Context, Result};

use crate::source::ddl_statement::is_internal;
use crate::source::naming::Naming;
use crate::source::position_check::PositionCheck;
use crate::source::proto::binlogdata::row_change::Bitmap;
use crate::source::proto::binlogdata::{FieldEvent, VEventType, VGtid};
use crate::source::proto::query::Row;
use crate::source::proto::vstream_events::{Event, RowChange, RowEvent};
use crate::source::selection::Selection;
use crate::source::table_schema::{bare_table_name, TableSchema};
use crate::source::value::{to_sql, Raw, Value};

/// A table schema as one shard streams it.
#[derive(Debug, PartialEq)]
pub struct ShardSchema {
    pub keyspace: String,
    /// The shard's key in the mirror's metadata (`mirror::naming`: the shard name, or
    /// `keyspace/shard` in a several-keyspace mirror).
    pub shard: String,
    /// `table` is the mirror table name (`keyspace.table` in a several-keyspace mirror).
    pub schema: TableSchema,
}

/// One row change, keyed by primary key (so every apply is idempotent).
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Full after image, in the shard schema's column order.
    Upsert(Vec<Value>),
    /// Primary key values, in key order.
    Delete(Vec<Value>),
    /// A partial after image (`binlog_row_image` NOBLOB or MINIMAL at the source): the
    /// `present` columns of `values` (shard schema order; absent ones are NULL placeholders)
    /// set on the row held for `key` (the before image's key, in key order). A key column
    /// among them moves the merged row to its new key (`mirror::versions::merge`).
    Merge {
        key: Vec<Value>,
        values: Vec<Value>,
        present: Vec<bool>,
    },
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    Commit,
    Ddl,
    Other,
}

/// What the writer is asked to do, in stream order.
#[derive(Debug)]
pub enum Step {
    /// A table schema from a FIELD event; `copied` when the copy sent it (timestamp 0): a
    /// FIELD event from the binlog means the shard streams a table, not that it copies it.
    Schema {
        schema: Arc<ShardSchema>,
        copied: bool,
    },
    Rows {
        schema: Arc<ShardSchema>,
        changes: Vec<Change>,
        /// Copy-phase rows (timestamp 0), counted for progress.
        copied: bool,
    },
    /// The source transaction is complete; `checkpoint` covers it.
    TxEnd {
        checkpoint: Option<VGtid>,
        kind: EndKind,
        /// Binlog time of the transaction in seconds (0 during copy).
        event_time: i64,
    },
    /// A source DDL statement's table-level effect (column changes come as FIELD events);
    /// the statement names bare tables of `keyspace`.
    Ddl {
        keyspace: String,
        /// Shard key, as in `ShardSchema`.
        shard: String,
        ddl: crate::source::ddl_statement::SourceDdl,
    },
    ShardCopyCompleted {
        /// Shard key, as in `ShardSchema`.
        shard: String,
    },
    CopyCompleted,
    Heartbeat {
        event_time: i64,
    },
}

/// Decoder state for one stream (a reconnect starts a new one: FIELDs are re-sent).
pub struct Decoder {
    naming: Naming,
    /// Mirror tables to keep when `--tables` chose tables of several keyspaces.
    kept: Option<BTreeSet<String>>,
    /// keyspace → shard → bare table → schema (nested so a lookup borrows the event's names,
    /// no allocation).
    schemas: HashMap<String, HashMap<String, HashMap<String, Arc<ShardSchema>>>>,
    in_transaction: bool,
    /// Whether the open transaction carried row changes that no VGTID followed yet: it may
    /// only end once its own VGTID came after its last row change. A VGTID seen before the
    /// rows (a stray one between transactions, or the previous transaction's) does not count,
    /// or the transaction would be committed with a position that does not include it.
    rows_since_vgtid: bool,
    pending: Option<VGtid>,
    last_event_time: i64,
    position: PositionCheck,
    /// Events after the current one in its response (`decode_all`): room to reserve.
    events_left: usize,
}

impl Decoder {
    pub fn new(selection: &Selection) -> Self {
        Decoder {
            naming: selection.naming(),
            kept: selection.kept_tables(),
            schemas: HashMap::new(),
            in_transaction: false,
            rows_since_vgtid: false,
            pending: None,
            last_event_time: 0,
            position: PositionCheck::new(&selection.keyspaces),
            events_left: 0,
        }
    }

    /// The keyspace an event belongs to: vtgate names it on every event; a one-keyspace
    /// mirror also accepts events that do not.
    fn keyspace_of<'a>(&'a self, named: &'a [u8]) -> Result<&'a str> {
        match (name(named, "keyspace")?, &self.naming) {
            ("", Naming::Bare(keyspace)) => Ok(keyspace),
            ("", Naming::Qualified) => {
                bail!("an event of a several-keyspace stream names no keyspace")
            }
            (keyspace, _) => Ok(keyspace),
        }
    }

    /// True when `--tables` chose tables of several keyspaces and not this one.
    fn left_out(&self, keyspace: &str, table: &str) -> bool {
        self.kept
            .as_ref()
            .is_some_and(|kept| !kept.contains(self.naming.table(keyspace, table).as_ref()))
    }

    /// Checks the stream's VGTIDs against the position it was started from.
    pub fn starting_at(mut self, start: &VGtid) -> Self {
        self.position.starting_at(start);
        self
    }

    /// True while a source transaction is open (its rows must not be committed yet).
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// Decodes a response's events in order.
    pub fn decode_all(&mut self, events: Vec<Event>, out: &mut Vec<Step>) -> Result<()> {
        self.events_left = events.len();
        for event in events {
            self.events_left -= 1;
            self.decode(event, out)?;
        }
        Ok(())
    }

    pub fn decode(&mut self, mut event: Event, out: &mut Vec<Step>) -> Result<()> {
        if event.timestamp > 0 {
            self.last_event_time = event.timestamp;
        }
        let Ok(kind) = VEventType::try_from(event.r#type) else {
            // Enums are open: newer servers add event types we can safely skip.
            tracing::warn!(event_type = event.r#type, "skipping unknown VEvent type");
            return Ok(());
        };
        match kind {
            VEventType::Begin => self.in_transaction = true,
            VEventType::Vgtid => {
                let mut vgtid = *event.vgtid.context("VGTID event carries no VGtid")?;
                self.position.settle(&mut vgtid)?;
                self.pending = Some(vgtid);
                self.rows_since_vgtid = false;
            }
            VEventType::Field => {
                let fe =
                    (event.field_event.take()).context("FIELD event carries no field_event")?;
                if let Some(schema) = self.field(&event, *fe)? {
                    let copied = event.timestamp == 0;
                    out.push(Step::Schema { schema, copied });
                }
            }
            VEventType::Row => {
                let re = (event.row_event.take()).context("ROW event carries no row_event")?;
                if !self.in_transaction {
                    bail!(
                        "ROW event for table {} outside a transaction",
                        String::from_utf8_lossy(&re.table_name)
                    );
                }
                self.rows_since_vgtid = true;
                self.rows(&event, re, out)?;
            }
            VEventType::Commit | VEventType::Rollback => {
                if !self.in_transaction {
                    bail!("COMMIT without BEGIN");
                }
                self.end(EndKind::Commit, out)?;
            }
            VEventType::Ddl => {
                let keyspace = self.keyspace_of(&event.keyspace)?;
                let shard = self.naming.shard(keyspace, name(&event.shard, "shard")?);
                out.push(Step::Ddl {
                    shard: shard.into_owned(),
                    keyspace: keyspace.to_string(),
                    ddl: crate::source::ddl_statement::parse(&event.statement),
                });
                self.end(EndKind::Ddl, out)?;
            }
            VEventType::Other => self.end(EndKind::Other, out)?,
            VEventType::CopyCompleted => self.copy_completed(&event, out)?,
            VEventType::Heartbeat => out.push(Step::Heartbeat {
                event_time: event.timestamp,
            }),
            VEventType::Insert
            | VEventType::Replace
            | VEventType::Update
            | VEventType::Delete
            | VEventType::Set => {
                bail!("statement-based DML events are not supported (the source must use row-based binlogs)")
            }
            // Position-only or informational events; vtgate switches shards on JOURNAL itself.
            VEventType::Unknown
            | VEventType::Gtid
            | VEventType::Journal
            | VEventType::Version
            | VEventType::Lastpk
            | VEventType::Savepoint
            | VEventType::PreviousGtids
            | VEventType::RowsQuery => {}
        }
        Ok(())
    }

    /// Ends the open transaction. One that carried row changes must have had its own VGTID
    /// after its last row change: committed with an older checkpoint, a restart would replay
    /// part of it after the rest (invariant 1). vtgate always sends one (from the GTID or
    /// LASTPK event before COMMIT), so its absence is a definite error and the writer commits
    /// nothing of the transaction.
    fn end(&mut self, kind: EndKind, out: &mut Vec<Step>) -> Result<()> {
        if std::mem::take(&mut self.rows_since_vgtid) {
            bail!(
                "a transaction with row changes ended ({kind:?}) without its VGTID, so its \
                 position is unknown; nothing of it is applied"
            );
        }
        self.in_transaction = false;
        out.push(Step::TxEnd {
            checkpoint: self.pending.take(),
            kind,
            event_time: self.last_event_time,
        });
        Ok(())
    }

    fn copy_completed(&mut self, event: &Event, out: &mut Vec<Step>) -> Result<()> {
        if self.in_transaction {
            bail!("COPY_COMPLETED inside an open transaction");
        }
        if event.keyspace.is_empty() && event.shard.is_empty() {
            out.push(Step::CopyCompleted);
        } else {
            let keyspace = self.keyspace_of(&event.keyspace)?;
            let shard = self.naming.shard(keyspace, name(&event.shard, "shard")?);
            out.push(Step::ShardCopyCompleted {
                shard: shard.into_owned(),
            });
        }
        Ok(())
    }

    fn field(&mut self, event: &Event, fe: FieldEvent) -> Result<Option<Arc<ShardSchema>>> {
        let keyspace = if fe.keyspace.is_empty() {
            self.keyspace_of(&event.keyspace)?
        } else {
            &fe.keyspace
        };
        let bare = bare_table_name(&fe.table_name, keyspace);
        if fe.is_internal_table || is_internal(bare) || self.left_out(keyspace, bare) {
            return Ok(None);
        }
        let shard = if fe.shard.is_empty() {
            name(&event.shard, "shard")?
        } else {
            &fe.shard
        };
        let table = self.naming.table(keyspace, bare);
        let schema = TableSchema::from_fields(&table, &fe.fields, fe.enum_set_string_values)
            .with_context(|| format!("reading FIELD event of table {table}"))?;
        let schema = Arc::new(ShardSchema {
            keyspace: keyspace.to_string(),
            shard: self.naming.shard(keyspace, shard).into_owned(),
            schema,
        });
        let (keyspace, shard, bare) = (keyspace.to_string(), shard.to_string(), bare.to_string());
        (self.schemas.entry(keyspace).or_default())
            .entry(shard)
            .or_default()
            .insert(bare, Arc::clone(&schema));
        Ok(Some(schema))
    }

    /// Decodes a ROW event's changes, appended to the previous step when that step holds rows
    /// of the same shard schema and phase: vttablet sends one ROW event per copied row (and
    /// per binlog rows event), so this turns ~2000 events into one step the writer applies
    /// with one statement lookup. Order is kept: only consecutive events merge.
    fn rows(&mut self, event: &Event, re: RowEvent, out: &mut Vec<Step>) -> Result<()> {
        if re.is_internal_table {
            return Ok(());
        }
        let copied = event.timestamp == 0;
        // The row event names its shard (vtgate fills it in); the event's is the fallback.
        let shard = if re.shard.is_empty() {
            &event.shard
        } else {
            &re.shard
        };
        let shard = name(shard, "shard")?;
        let keyspace = self.keyspace_of(&event.keyspace)?;
        let table = bare_table_name(name(&re.table_name, "table name")?, keyspace);
        let found = (self.schemas.get(keyspace))
            .and_then(|shards| shards.get(shard))
            .and_then(|tables| tables.get(table));
        let Some(schema) = found else {
            // Internal and left-out tables' FIELD events were skipped (`field`); asked only
            // here, off the path every mirrored row takes.
            if is_internal(table) || self.left_out(keyspace, table) {
                return Ok(());
            }
            bail!("ROW event for table {table} on shard {shard} arrived before its FIELD event");
        };
        let continues = matches!(
            out.last(),
            Some(Step::Rows { schema: last, copied: last_copied, .. })
                if Arc::ptr_eq(last, schema) && *last_copied == copied
        );
        if !continues {
            // Room for the rest of the response's events, which are usually its rows.
            let room = re.row_changes.len().max(self.events_left);
            out.push(Step::Rows {
                schema: Arc::clone(schema),
                changes: Vec::with_capacity(room),
                copied,
            });
        }
        let Some(Step::Rows { changes, .. }) = out.last_mut() else {
            bail!("decoder lost its row step for table {table}");
        };
        for change in re.row_changes {
            decode_change(&schema.schema, change, changes)
                .with_context(|| format!("decoding a row change of table {table}"))?;
        }
        Ok(())
    }
}

/// A name the stream carries as bytes (`vstream_events`), as text.
fn name<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str> {
    std::str::from_utf8(bytes).with_context(|| format!("event {what} is not UTF-8"))
}

fn decode_change(schema: &TableSchema, change: RowChange, out: &mut Vec<Change>) -> Result<()> {
    if change.json_partial_values.as_ref().is_some_and(|b| b.count != 0) {
        bail!(
            "partial JSON values (binlog_row_value_options=PARTIAL_JSON on the source) carry JSON \
             diffs the mirror cannot apply exactly; leave binlog_row_value_options empty on the \
             source"
        );
    }
    let present = (change.data_columns.as_ref())
        .map(|bitmap| present_columns(schema, bitmap))
        .transpose()?
        // A bitmap marking every column describes a full image.
        .filter(|present| present.contains(&false));
    let before = change.before.map(|r| row_values(schema, &r)).transpose()?;
    let after = change.after.map(|r| row_values(schema, &r)).transpose()?;
    match (before, after, present) {
        (_, Some(_), Some(present)) if present.iter().all(|p| !p) => {
            bail!("a partial row image of the key's row carries no column at all")
        }
        (None, Some(_), Some(present)) => {
            let absent = (schema.columns.iter().zip(&present))
                .filter(|(_, &p)| !p)
                .map(|(c, _)| c.name.as_str());
            bail!(
                "an insert's row image leaves out columns {} (binlog_row_image NOBLOB logs an \
                 INSERT's BLOB and TEXT columns only when it names them, MINIMAL only the named \
                 columns): they hold their defaults, which the stream does not carry, so the row \
                 of key ({}) cannot be completed; name every column in INSERTs or set \
                 binlog_row_image=FULL on the source",
                absent.collect::<Vec<_>>().join(", "),
                schema.pk_names().join(", ")
            )
        }
        (Some(before), Some(values), Some(present)) => {
            let key = pk_of(schema, before);
            if key.iter().any(|v| matches!(v, Value::Null)) {
                bail!(
                    "the before image of a partial update lacks the key ({}), so the key's row \
                     cannot be found",
                    schema.pk_names().join(", ")
                );
            }
            out.push(Change::Merge {
                key,
                values,
                present,
            });
        }
        (None, Some(after), None) => out.push(Change::Upsert(after)),
        (Some(before), None, _) => out.push(Change::Delete(pk_of(schema, before))),
        (Some(before), Some(after), None) => {
            let old_pk = pk_of(schema, before);
            if old_pk != pk_of_ref(schema, &after) {
                out.push(Change::Delete(old_pk));
            }
            out.push(Change::Upsert(after));
        }
        (None, None, _) => bail!("row change has neither before nor after image"),
    }
    Ok(())
}

/// Which columns a partial image carries: `data_columns` read as MySQL writes a column
/// bitmap (bit `i % 8` of byte `i / 8` for column `i`). A bitmap that does not fit the FIELD
/// event is an error, never a guess.
fn present_columns(schema: &TableSchema, bitmap: &Bitmap) -> Result<Vec<bool>> {
    let columns = schema.columns.len();
    if usize::try_from(bitmap.count).ok() != Some(columns) {
        bail!(
            "a partial row image's column bitmap counts {} columns but the FIELD event declared \
             {columns}",
            bitmap.count
        );
    }
    if bitmap.cols.len() < columns.div_ceil(8) {
        bail!(
            "a partial row image's column bitmap holds {} bytes, too few for {columns} columns",
            bitmap.cols.len()
        );
    }
    Ok((0..columns)
        .map(|i| bitmap.cols[i / 8] & (1 << (i % 8)) != 0)
        .collect())
}

fn pk_of(schema: &TableSchema, mut row: Vec<Value>) -> Vec<Value> {
    schema
        .pk
        .iter()
        .map(|&i| std::mem::replace(&mut row[i], Value::Null))
        .collect()
}

fn pk_of_ref(schema: &TableSchema, row: &[Value]) -> Vec<Value> {
    schema.pk.iter().map(|&i| row[i].clone()).collect()
}

/// Walks `Row.lengths` over `Row.values`, checking every length against the buffer.
pub fn row_values(schema: &TableSchema, row: &Row) -> Result<Vec<Value>> {
    if row.lengths.len() != schema.columns.len() {
        bail!(
            "row has {} values but the FIELD event declared {} columns",
            row.lengths.len(),
            schema.columns.len()
        );
    }
    let mut offset = 0usize;
    let mut values = Vec::with_capacity(row.lengths.len());
    for (column, &len) in schema.columns.iter().zip(&row.lengths) {
        let raw = match len {
            -1 => None,
            len if len < -1 => bail!("column {} has invalid length {len}", column.name),
            len => {
                let raw = usize::try_from(len)
                    .ok()
                    .and_then(|l| offset.checked_add(l))
                    .and_then(|end| Raw::within(&row.values, offset..end).map(|raw| (raw, end)));
                let (raw, end) =
                    raw.with_context(|| format!("column {} overruns the row buffer", column.name))?;
                offset = end;
                Some(raw)
            }
        };
        values.push(to_sql(&column.ctype, raw).with_context(|| format!("column {}", column.name))?);
    }
    if offset != row.values.len() {
        bail!(
            "row buffer has {} bytes not covered by lengths",
            row.values.len() - offset
        );
    }
    Ok(values)
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
