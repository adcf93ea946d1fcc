//! The in-memory sharded keyspace: per-shard rows (BTreeMap by integer PK), per-shard GTID
//! position and binlog. Every mutation is a transaction that appends one binlog transaction to
//! each shard it touches (a cross-shard source transaction becomes one per shard, like Vitess).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use super::gtid::{format_position, shard_uuid};
use super::rng::{mix64, SplitMix64};
use super::schema::{ModelSpec, TableSpec};
use crate::source::proto::binlogdata::{ShardGtid, VGtid};
use crate::source::proto::query::Field;

/// A row as MySQL text values in column order; `None` = NULL.
pub type Row = Vec<Option<Vec<u8>>>;

/// GTID number of the schema-setup transactions every shard starts with.
pub const INITIAL_TXNS: u64 = 10;

/// One row change of a binlog transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChange {
    /// Bare table name.
    pub table: String,
    /// Old image (update, delete).
    pub before: Option<Row>,
    /// New image (insert, update).
    pub after: Option<Row>,
}

/// One transaction of a shard's binlog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogTxn {
    /// Its GTID sequence number: the shard position after it is `1-gtid_no`.
    pub gtid_no: u64,
    /// Commit time, seconds since the epoch.
    pub timestamp: i64,
    /// Row changes in statement order.
    pub changes: Vec<RowChange>,
}

/// One statement of a source transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert `row` (row[0] is the PK text).
    Insert { table: String, row: Row },
    /// Replace the row with the same PK by `row`.
    Update { table: String, row: Row },
    /// Delete the row with this PK.
    Delete { table: String, pk: i64 },
}

/// A source transaction: statements applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnSpec {
    /// Statements in order.
    pub ops: Vec<Op>,
}

impl TxnSpec {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds an insert.
    pub fn insert(mut self, table: &str, row: Row) -> Self {
        self.ops.push(Op::Insert {
            table: table.into(),
            row,
        });
        self
    }
    /// Adds an update (full new image, same PK).
    pub fn update(mut self, table: &str, row: Row) -> Self {
        self.ops.push(Op::Update {
            table: table.into(),
            row,
        });
        self
    }
    /// Adds a delete by PK.
    pub fn delete(mut self, table: &str, pk: i64) -> Self {
        self.ops.push(Op::Delete {
            table: table.into(),
            pk,
        });
        self
    }
}

/// Why a transaction was refused (the model is left unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelError {
    /// No such table.
    UnknownTable(String),
    /// Wrong number of values, or a PK that is not an integer.
    BadRow(String),
    /// Insert of an existing PK.
    Duplicate(String, i64),
    /// Update/delete of a missing PK.
    Missing(String, i64),
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
impl std::error::Error for ModelError {}

/// One shard: its rows, server uuid and binlog.
#[derive(Debug, Clone)]
pub struct Shard {
    /// Shard name (`0`, `-80`, …).
    pub name: String,
    /// MySQL server uuid of the shard's primary.
    pub uuid: String,
    /// Transactions up to this GTID number are purged (not in `binlog`).
    pub purged: u64,
    /// Transactions `purged+1 ..= head()`.
    pub binlog: Vec<BinlogTxn>,
    /// Table name → rows by PK.
    pub tables: BTreeMap<String, BTreeMap<i64, Row>>,
}

impl Shard {
    /// GTID number of the last transaction.
    pub fn head(&self) -> u64 {
        self.purged + self.binlog.len() as u64
    }
    /// Current position string.
    pub fn position(&self) -> String {
        self.position_at(self.head())
    }
    /// Position string after transaction number `n`.
    pub fn position_at(&self, n: u64) -> String {
        format_position(&self.uuid, n)
    }
    /// The binlog transaction with GTID number `n`, if still in the binlog.
    pub fn txn(&self, n: u64) -> Option<&BinlogTxn> {
        let idx = n.checked_sub(self.purged + 1)?;
        self.binlog.get(usize::try_from(idx).ok()?)
    }
    /// Rows of `table` on this shard (empty if unknown).
    pub fn rows(&self, table: &str) -> Option<&BTreeMap<i64, Row>> {
        self.tables.get(table)
    }
}

/// The whole keyspace.
#[derive(Debug, Clone)]
pub struct Model {
    /// The spec it was built from.
    pub spec: ModelSpec,
    /// Shards in keyrange order.
    pub shards: Vec<Shard>,
    pub(super) rng: SplitMix64,
    pub(super) next_pk: BTreeMap<String, i64>,
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Parses a PK value (MySQL integer text).
pub fn parse_pk(v: Option<&Vec<u8>>) -> Option<i64> {
    std::str::from_utf8(v?).ok()?.parse().ok()
}

impl Model {
    /// A keyspace at position `1-INITIAL_TXNS` on every shard, then `populate(spec.initial_rows)`.
    pub fn new(spec: ModelSpec) -> Self {
        let shards = spec
            .shard_names()
            .into_iter()
            .enumerate()
            .map(|(i, name)| Shard {
                name,
                uuid: shard_uuid(spec.seed, i),
                purged: INITIAL_TXNS,
                binlog: Vec::new(),
                tables: spec
                    .tables
                    .iter()
                    .map(|t| (t.name.clone(), BTreeMap::new()))
                    .collect(),
            })
            .collect();
        let next_pk = spec.tables.iter().map(|t| (t.name.clone(), 1)).collect();
        let initial_rows = spec.initial_rows;
        let mut model = Self {
            rng: SplitMix64::new(spec.seed),
            spec,
            shards,
            next_pk,
        };
        if initial_rows > 0 {
            model.populate(initial_rows);
        }
        model
    }

    /// Index of the shard owning `pk` (hash of the PK mapped onto the shards' keyranges).
    pub fn shard_of(&self, pk: i64) -> usize {
        let keyspace_id_byte = (mix64(pk as u64) >> 56) as usize;
        keyspace_id_byte * self.shards.len() / 256
    }

    /// The table spec, or `UnknownTable`.
    pub fn table_spec(&self, table: &str) -> Result<&TableSpec, ModelError> {
        self.spec
            .table(table)
            .ok_or_else(|| ModelError::UnknownTable(table.into()))
    }

    /// Applies a source transaction atomically; returns the number of binlog transactions
    /// appended (one per shard touched).
    pub fn apply(&mut self, txn: &TxnSpec) -> Result<usize, ModelError> {
        let mut per_shard: BTreeMap<usize, Vec<RowChange>> = BTreeMap::new();
        let mut undo: Vec<(usize, String, i64, Option<Row>)> = Vec::new();
        for op in &txn.ops {
            match self.apply_op(op, &mut undo) {
                Ok((shard, change)) => per_shard.entry(shard).or_default().push(change),
                Err(e) => {
                    self.rollback(undo);
                    return Err(e);
                }
            }
        }
        let ts = now_secs();
        for (&shard, changes) in per_shard.iter_mut() {
            let s = &mut self.shards[shard];
            let gtid_no = s.head() + 1;
            let changes = std::mem::take(changes);
            s.binlog.push(BinlogTxn {
                gtid_no,
                timestamp: ts,
                changes,
            });
        }
        Ok(per_shard.len())
    }

    fn rollback(&mut self, undo: Vec<(usize, String, i64, Option<Row>)>) {
        for (shard, table, pk, old) in undo.into_iter().rev() {
            if let Some(rows) = self.shards[shard].tables.get_mut(&table) {
                match old {
                    Some(r) => rows.insert(pk, r),
                    None => rows.remove(&pk),
                };
            }
        }
    }

    fn checked_row(&self, table: &str, row: &Row) -> Result<i64, ModelError> {
        let spec = self.table_spec(table)?;
        if row.len() != spec.columns.len() {
            return Err(ModelError::BadRow(format!("{table}: {} values", row.len())));
        }
        parse_pk(row.first().and_then(|v| v.as_ref()))
            .ok_or_else(|| ModelError::BadRow(format!("{table}: PK is not an integer")))
    }

    fn apply_op(
        &mut self,
        op: &Op,
        undo: &mut Vec<(usize, String, i64, Option<Row>)>,
    ) -> Result<(usize, RowChange), ModelError> {
        let (table, pk, after) = match op {
            Op::Insert { table, row } | Op::Update { table, row } => {
                (table, self.checked_row(table, row)?, Some(row.clone()))
            }
            Op::Delete { table, pk } => (table, *pk, None),
        };
        self.table_spec(table)?;
        let shard = self.shard_of(pk);
        let rows = self.shards[shard]
            .tables
            .get_mut(table)
            .ok_or_else(|| ModelError::UnknownTable(table.clone()))?;
        let before = rows.get(&pk).cloned();
        match (op, &before) {
            (Op::Insert { .. }, Some(_)) => return Err(ModelError::Duplicate(table.clone(), pk)),
            (Op::Update { .. } | Op::Delete { .. }, None) => {
                return Err(ModelError::Missing(table.clone(), pk))
            }
            _ => {}
        }
        match &after {
            Some(r) => rows.insert(pk, r.clone()),
            None => rows.remove(&pk),
        };
        undo.push((shard, table.clone(), pk, before.clone()));
        let next = self.next_pk.entry(table.clone()).or_insert(1);
        *next = (*next).max(pk.saturating_add(1));
        let change = RowChange {
            table: table.clone(),
            before,
            after,
        };
        Ok((shard, change))
    }

    /// Single-statement transaction: insert.
    pub fn insert(&mut self, table: &str, row: Row) -> Result<usize, ModelError> {
        self.apply(&TxnSpec::new().insert(table, row))
    }
    /// Single-statement transaction: update.
    pub fn update(&mut self, table: &str, row: Row) -> Result<usize, ModelError> {
        self.apply(&TxnSpec::new().update(table, row))
    }
    /// Single-statement transaction: delete.
    pub fn delete(&mut self, table: &str, pk: i64) -> Result<usize, ModelError> {
        self.apply(&TxnSpec::new().delete(table, pk))
    }

    /// Current position of every shard, as a VGtid (no table_p_ks).
    pub fn positions(&self) -> VGtid {
        let shard_gtids = self
            .shards
            .iter()
            .map(|s| ShardGtid {
                keyspace: self.spec.keyspace.clone(),
                shard: s.name.clone(),
                gtid: s.position(),
                table_p_ks: Vec::new(),
            })
            .collect();
        VGtid { shard_gtids }
    }

    /// All rows of `table`, merged over shards.
    pub fn table_rows(&self, table: &str) -> BTreeMap<i64, Row> {
        let mut out = BTreeMap::new();
        for s in &self.shards {
            if let Some(rows) = s.rows(table) {
                out.extend(rows.iter().map(|(k, v)| (*k, v.clone())));
            }
        }
        out
    }

    /// FIELD metadata of `table` (empty if unknown).
    pub fn fields(&self, table: &str) -> Vec<Field> {
        self.spec
            .table(table)
            .map(|t| t.fields(&self.spec.keyspace))
            .unwrap_or_default()
    }

    /// Number of rows over all tables and shards.
    pub fn total_rows(&self) -> usize {
        self.shards
            .iter()
            .flat_map(|s| s.tables.values())
            .map(|t| t.len())
            .sum()
    }

    /// Number of binlog transactions currently stored over all shards.
    pub fn binlog_len(&self) -> usize {
        self.shards.iter().map(|s| s.binlog.len()).sum()
    }
}
