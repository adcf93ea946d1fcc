//! A background writer of inserts, updates and deletes on real Vitess while a test runs.

use std::time::Duration;

use mysql::prelude::Queryable;

use super::*;

/// A table a `Writer` changes through vtgate target `target` (`ks`, or `ks:shard` for a table
/// without a vindex): integer key column `key`, unique text column `value`.
#[derive(Debug, Clone)]
pub struct WriteTarget {
    pub target: &'static str,
    pub table: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    /// Keys present at the start, which updates and deletes pick from.
    pub seeded: std::ops::RangeInclusive<i64>,
    /// New keys: `new_keys + round`; a transaction's `new_keys + 1_000_000 + 2 * round` and
    /// the next.
    pub new_keys: i64,
    /// Whether `value` is updated. Not for a consistent lookup vindex column (`things.name`):
    /// vtgate inserts the new lookup row and deletes the old one on two connections committed
    /// together, and when they lock neighbouring rows the UPDATE waits on itself until the
    /// lock wait timeout.
    pub update: bool,
}

impl WriteTarget {
    pub fn new(
        target: &'static str,
        table: &'static str,
        (key, value): (&'static str, &'static str),
        seeded: std::ops::RangeInclusive<i64>,
        new_keys: i64,
    ) -> WriteTarget {
        WriteTarget {
            target,
            table,
            key,
            value,
            seeded,
            new_keys,
            update: true,
        }
    }

    /// Inserts and deletes only (see `update`).
    pub fn without_updates(self) -> WriteTarget {
        WriteTarget {
            update: false,
            ..self
        }
    }
}

/// Inserts, updates and deletes in its targets on a thread until stopped (or dropped); every
/// fourth round also a transaction of two inserts.
pub struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u64>>,
}

impl Writer {
    pub fn start(c: &Cluster, targets: &[WriteTarget]) -> Writer {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let mut work: Vec<(WriteTarget, mysql::Conn)> = targets
            .iter()
            .map(|t| (t.clone(), c.sql(t.target)))
            .collect();
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut round = 0i64;
            while !stopped.load(Ordering::Relaxed) {
                for (t, conn) in &mut work {
                    write_round(conn, t, round);
                }
                round += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            round as u64
        });
        Writer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the writes; returns how many rounds ran (a failed write fails the test here).
    pub fn stop(mut self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let thread = self.thread.take().expect("running");
        thread
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_round(conn: &mut mysql::Conn, t: &WriteTarget, round: i64) {
    let WriteTarget {
        table, key, value, ..
    } = t;
    let id = t.new_keys + round;
    let (first, count) = (*t.seeded.start(), t.seeded.clone().count().max(1) as i64);
    let old = |step: i64, offset: i64| first + (round * step + offset) % count;
    let mut statements = vec![
        format!("INSERT INTO {table} ({key}, {value}) VALUES ({id}, 'w{id}')"),
        format!("DELETE FROM {table} WHERE {key} = {}", old(13, 2)),
    ];
    if t.update {
        statements.push(format!(
            "UPDATE {table} SET {value} = 'u{round}-{k}' WHERE {key} = {k}",
            k = old(7, 0)
        ));
        if round > 0 {
            let k = id - 1;
            statements.push(format!(
                "UPDATE {table} SET {value} = 'v{k}' WHERE {key} = {k}"
            ));
        }
    }
    if round % 4 == 0 {
        let tx = t.new_keys + 1_000_000 + 2 * round;
        statements.extend([
            "BEGIN".to_string(),
            format!("INSERT INTO {table} ({key}, {value}) VALUES ({tx}, 't{tx}')"),
            format!(
                "INSERT INTO {table} ({key}, {value}) VALUES ({}, 't{}')",
                tx + 1,
                tx + 1
            ),
            "COMMIT".to_string(),
        ]);
    }
    for sql in &statements {
        conn.query_drop(sql)
            .unwrap_or_else(|e| panic!("writer, {}: {sql}: {e}", t.target));
    }
}
