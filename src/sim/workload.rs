//! Seeded workloads: initial population, random OLTP-like transactions (with same-shard
//! transfers on ledger tables), large transactions, and a live writer task.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::model::{Model, ModelError, Row, TxnSpec};
use super::schema::TableSpec;
use super::shared::SharedModel;

/// Transactions the bulk load of `populate` counts for, per this many rows.
const ROWS_PER_LOAD_TXN: usize = 100;
/// Initial value of a ledger column.
pub const INITIAL_BALANCE: i64 = 1000;

/// Per-transaction scratch state: PKs allocated or deleted so far in the transaction.
#[derive(Default)]
struct TxnScratch {
    deleted: HashSet<(String, i64)>,
    touched: HashSet<(String, i64)>,
}

impl Model {
    /// Loads `rows_per_table` rows into every table as pre-existing data: each shard's
    /// position advances past the load and its binlog is purged up to there, so only a copy
    /// delivers these rows (positions before the load are refused as purged).
    pub fn populate(&mut self, rows_per_table: usize) {
        let specs = self.spec.tables.clone();
        for spec in &specs {
            for _ in 0..rows_per_table {
                let pk = self.alloc_pk(&spec.name);
                let row = self.random_row(spec, pk, true);
                let shard = self.shard_of(pk);
                if let Some(rows) = self.shards[shard].tables.get_mut(&spec.name) {
                    rows.insert(pk, row);
                }
            }
        }
        for s in &mut self.shards {
            let loaded: usize = s.tables.values().map(|t| t.len()).sum();
            s.purged = s.head() + 1 + (loaded / ROWS_PER_LOAD_TXN) as u64;
            s.binlog.clear();
        }
    }

    /// Applies `n` random source transactions; returns the binlog transactions appended.
    pub fn apply_random_transactions(&mut self, n: usize) -> usize {
        let mut appended = 0;
        for _ in 0..n {
            let txn = self.random_txn();
            appended += self.apply(&txn).unwrap_or(0);
        }
        appended
    }

    /// One transaction inserting `rows` new rows into `table` (ledger rows start at 0).
    pub fn large_transaction(&mut self, table: &str, rows: usize) -> Result<usize, ModelError> {
        let spec = self.table_spec(table)?.clone();
        let mut txn = TxnSpec::new();
        for _ in 0..rows {
            let pk = self.alloc_pk(table);
            txn = txn.insert(table, self.random_row(&spec, pk, false));
        }
        self.apply(&txn)
    }

    /// Allocates the next PK of `table` (gaps are fine: PKs only need to be unique).
    fn alloc_pk(&mut self, table: &str) -> i64 {
        let next = self.next_pk.entry(table.to_string()).or_insert(1);
        let pk = *next;
        *next += 1;
        pk
    }

    /// A random full row for `spec` with primary key `pk`.
    fn random_row(&mut self, spec: &TableSpec, pk: i64, initial: bool) -> Row {
        let mut row: Row = Vec::with_capacity(spec.columns.len());
        row.push(Some(pk.to_string().into_bytes()));
        for (i, col) in spec.columns.iter().enumerate().skip(1) {
            if spec.ledger_column == Some(i) {
                let v = if initial { INITIAL_BALANCE } else { 0 };
                row.push(Some(v.to_string().into_bytes()));
            } else {
                row.push(self.rng.value(col, pk));
            }
        }
        row
    }

    fn random_txn(&mut self) -> TxnSpec {
        let ledgers: Vec<TableSpec> = self
            .spec
            .tables
            .iter()
            .filter(|t| t.ledger_column.is_some())
            .cloned()
            .collect();
        let plain: Vec<TableSpec> = self
            .spec
            .tables
            .iter()
            .filter(|t| t.ledger_column.is_none())
            .cloned()
            .collect();
        if !ledgers.is_empty() && (plain.is_empty() || self.rng.chance(20)) {
            let t = &ledgers[self.rng.below(ledgers.len() as u64) as usize];
            if let Some(txn) = self.transfer(t) {
                return txn;
            }
        }
        let mut txn = TxnSpec::new();
        if plain.is_empty() {
            return txn;
        }
        let mut scratch = TxnScratch::default();
        for _ in 0..self.rng.range(1, 10) {
            let t = &plain[self.rng.below(plain.len() as u64) as usize];
            txn = self.random_op(txn, t, &mut scratch);
        }
        txn
    }

    fn random_op(&mut self, txn: TxnSpec, t: &TableSpec, scratch: &mut TxnScratch) -> TxnSpec {
        let roll = self.rng.below(100);
        if roll >= 70 {
            if let Some(pk) = self.pick_existing(&t.name, scratch) {
                if roll < 95 {
                    scratch.touched.insert((t.name.clone(), pk));
                    return txn.update(&t.name, self.random_row(t, pk, false));
                }
                scratch.deleted.insert((t.name.clone(), pk));
                return txn.delete(&t.name, pk);
            }
        }
        let pk = self.alloc_pk(&t.name);
        scratch.touched.insert((t.name.clone(), pk));
        txn.insert(&t.name, self.random_row(t, pk, false))
    }

    /// A random existing PK of `table` not deleted in this transaction.
    fn pick_existing(&mut self, table: &str, scratch: &TxnScratch) -> Option<i64> {
        let max = self.next_pk.get(table).copied().unwrap_or(1) - 1;
        for _ in 0..8 {
            let pk = self.rng.range(1, max.max(1));
            let key = (table.to_string(), pk);
            if scratch.deleted.contains(&key) {
                continue;
            }
            let exists = self.shards[self.shard_of(pk)]
                .rows(table)
                .is_some_and(|r| r.contains_key(&pk));
            if exists || scratch.touched.contains(&key) {
                return Some(pk);
            }
        }
        None
    }

    /// Moves a random amount between two rows of the same shard of a ledger table.
    fn transfer(&mut self, t: &TableSpec) -> Option<TxnSpec> {
        let col = t.ledger_column?;
        let a = self.pick_existing(&t.name, &TxnScratch::default())?;
        let shard = self.shard_of(a);
        let rows = self.shards[shard].rows(&t.name)?;
        let max = self.next_pk.get(&t.name).copied().unwrap_or(1) - 1;
        let mut b = None;
        for _ in 0..20 {
            let cand = self.rng.range(1, max.max(1));
            if cand != a && rows.contains_key(&cand) {
                b = Some(cand);
                break;
            }
        }
        let b = b.or_else(|| rows.keys().copied().find(|&k| k != a))?;
        let (mut ra, mut rb) = (rows.get(&a)?.clone(), rows.get(&b)?.clone());
        let amount = self.rng.range(1, 100);
        shift_balance(&mut ra, col, -amount)?;
        shift_balance(&mut rb, col, amount)?;
        Some(TxnSpec::new().update(&t.name, ra).update(&t.name, rb))
    }
}

fn shift_balance(row: &mut Row, col: usize, delta: i64) -> Option<()> {
    let cell = row.get_mut(col)?;
    let cur: i64 = std::str::from_utf8(cell.as_ref()?).ok()?.parse().ok()?;
    *cell = Some((cur + delta).to_string().into_bytes());
    Some(())
}

impl SharedModel {
    /// `Model::populate` + wake-up.
    pub fn populate(&self, rows_per_table: usize) {
        self.write(|m| m.populate(rows_per_table))
    }
    /// `Model::apply_random_transactions` + wake-up.
    pub fn apply_random_transactions(&self, n: usize) -> usize {
        self.write(|m| m.apply_random_transactions(n))
    }
    /// `Model::large_transaction` + wake-up.
    pub fn large_transaction(&self, table: &str, rows: usize) -> Result<usize, ModelError> {
        self.write(|m| m.large_transaction(table, rows))
    }
}

/// Applies random transactions at about `txns_per_sec` until `stop` becomes true (or its
/// sender is dropped); the task returns the number of source transactions applied.
pub fn spawn_live_writes(
    model: Arc<SharedModel>,
    txns_per_sec: f64,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<u64> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut done: u64 = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            if *stop.borrow() {
                return done;
            }
            tokio::select! {
                _ = tick.tick() => {}
                changed = stop.changed() => if changed.is_err() { return done },
            }
            let due = (start.elapsed().as_secs_f64() * txns_per_sec.max(0.0)) as u64;
            if due > done {
                let n = (due - done).min(10_000);
                model.apply_random_transactions(n as usize);
                done += n;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::schema::ModelSpec;
    use super::*;

    fn ledger_sum(m: &Model) -> i64 {
        m.table_rows("accounts")
            .values()
            .map(|r| {
                std::str::from_utf8(r[1].as_ref().unwrap())
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
            })
            .sum()
    }

    #[test]
    fn random_transactions_are_deterministic_and_keep_ledger_sum() {
        let run = || {
            let mut m = Model::new(ModelSpec::demo(50));
            m.apply_random_transactions(300);
            m
        };
        let (a, b) = (run(), run());
        assert_eq!(a.table_rows("corder"), b.table_rows("corder"));
        assert_eq!(a.positions(), b.positions());
        assert_eq!(ledger_sum(&a), 50 * INITIAL_BALANCE);
        assert!(a.binlog_len() >= 300);
        for s in &a.shards {
            assert_eq!(s.head(), s.purged + s.binlog.len() as u64);
        }
    }

    #[test]
    fn large_transaction_is_one_binlog_txn_per_shard() {
        let mut m = Model::new(ModelSpec::demo(0));
        assert_eq!(m.large_transaction("corder", 500), Ok(2));
        assert_eq!(m.table_rows("corder").len(), 500);
    }
}
