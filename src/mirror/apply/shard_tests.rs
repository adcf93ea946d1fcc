//! The writer fed two shards' streams interleaved in every order vtgate may deliver them:
//! rows moving between shards and per-shard TRUNCATE / DROP / RENAME end as at the source.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::mirror::store::{Durability, Identity};
use crate::sim::rng::SplitMix64;
use crate::source::ddl_statement::SourceDdl;
use crate::source::decode::{Change, EndKind, ShardSchema};
use crate::source::proto::binlogdata::{ShardGtid, VGtid};
use crate::source::proto::query::Field;
use crate::source::table_schema::TableSchema;
use crate::source::value::Value;

const SHARDS: [&str; 2] = ["-80", "80-"];

struct Mirrored {
    _dir: tempfile::TempDir,
    writer: Writer,
    gtid: u64,
    /// Binlog time of the next transactions (0: copy-like, no time).
    time: i64,
}

fn mirror() -> Mirrored {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity {
        keyspace: "ks".into(),
        filter: "[]".into(),
    };
    let mirror = Mirror::open(&dir.path().join("m.db"), &identity, Durability::Normal).unwrap();
    let mut writer = Writer::new(mirror, CommitPolicy::default(), Arc::default());
    writer.load().unwrap();
    Mirrored {
        _dir: dir,
        writer,
        gtid: 0,
        time: 0,
    }
}

fn schema(shard: &str, table: &str) -> Arc<ShardSchema> {
    let fields = [("id", 265, 2), ("v", 6165, 0)].map(|(name, t, flags)| Field {
        name: name.into(),
        r#type: t,
        flags,
        charset: 255,
        ..Default::default()
    });
    Arc::new(ShardSchema {
        keyspace: "ks".into(),
        shard: shard.into(),
        schema: TableSchema::from_fields(table, &fields, true).unwrap(),
    })
}

/// One shard's source transaction or statement.
#[derive(Clone, Debug)]
enum Event {
    Upsert(i64, String),
    Delete(i64),
    /// Partial images in one transaction: (key, new key, `v` if the image carries it).
    Merge(Vec<(i64, i64, Option<&'static str>)>),
    Truncate,
    Drop,
    Create,
    Rename(&'static str, &'static str),
}

impl Mirrored {
    /// Applies one shard's event as its own source transaction and commits it.
    fn apply(&mut self, shard: &str, table: &str, event: Event) {
        self.try_apply(shard, table, event).unwrap();
    }

    fn try_apply(&mut self, shard: &str, table: &str, event: Event) -> Result<()> {
        let rows = |changes| Step::Rows {
            schema: schema(shard, table),
            changes,
            copied: false,
        };
        let ddl = |ddl| Step::Ddl {
            keyspace: "ks".into(),
            shard: shard.into(),
            ddl,
        };
        let step = match event {
            Event::Upsert(id, v) => rows(vec![Change::Upsert(vec![
                Value::Integer(id),
                Value::text(v),
            ])]),
            Event::Delete(id) => rows(vec![Change::Delete(vec![Value::Integer(id)])]),
            Event::Merge(merges) => rows(
                (merges.into_iter())
                    .map(|(key, id, v)| Change::Merge {
                        key: vec![Value::Integer(key)],
                        values: vec![Value::Integer(id), v.map_or(Value::Null, Value::text)],
                        present: vec![true, v.is_some()],
                    })
                    .collect(),
            ),
            Event::Truncate => ddl(SourceDdl::Truncate(table.into())),
            Event::Drop => ddl(SourceDdl::DropTables(vec![table.into()])),
            Event::Rename(from, to) => ddl(SourceDdl::RenameTables(vec![(from.into(), to.into())])),
            Event::Create => Step::Schema {
                schema: schema(shard, table),
                copied: false,
            },
        };
        self.gtid += 1;
        let end = Step::TxEnd {
            checkpoint: Some(VGtid {
                shard_gtids: SHARDS
                    .iter()
                    .map(|s| ShardGtid {
                        keyspace: "ks".into(),
                        shard: s.to_string(),
                        gtid: format!("MySQL56/x:1-{}", self.gtid),
                        table_p_ks: vec![],
                    })
                    .collect(),
            }),
            kind: EndKind::Commit,
            event_time: self.time,
        };
        for mut step in [step, end] {
            if let Err(e) = self.writer.apply(&mut step, true) {
                self.writer.rollback();
                return Err(e);
            }
        }
        self.writer.commit()
    }

    fn rows(&self, table: &str) -> BTreeMap<i64, String> {
        let sql = format!("SELECT id, v FROM \"{table}\"");
        let Ok(mut stmt) = self.writer.mirror.conn.prepare(&sql) else {
            return BTreeMap::new();
        };
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }
}

fn upsert(id: i64, v: &str) -> Event {
    Event::Upsert(id, v.into())
}

#[test]
fn a_row_moved_between_shards_survives_its_delete_arriving_after_its_insert() {
    let mut m = mirror();
    m.apply("-80", "t", upsert(1, "on -80"));
    m.apply("80-", "t", upsert(1, "moved to 80-"));
    m.apply("-80", "t", Event::Delete(1));
    assert_eq!(m.rows("t"), BTreeMap::from([(1, "moved to 80-".into())]));
}

#[test]
fn a_lagging_shard_replaying_an_older_insert_does_not_lose_the_row_another_shard_holds() {
    // At the source: 80- inserted 1 and moved it to -80 (its DELETE), where it was updated.
    // The stream brings -80's insert before 80-'s older insert and delete.
    let mut m = mirror();
    m.apply("-80", "t", upsert(1, "moved to -80"));
    m.apply("80-", "t", upsert(1, "old on 80-"));
    m.apply("-80", "t", upsert(1, "updated on -80"));
    m.apply("80-", "t", Event::Delete(1));
    assert_eq!(m.rows("t"), BTreeMap::from([(1, "updated on -80".into())]));
    let aside: i64 = (m.writer.mirror.conn)
        .query_row("SELECT count(*) FROM _vtmirror_displaced", [], |r| r.get(0))
        .unwrap();
    assert_eq!(aside, 0, "no version is left aside once the move completed");
}

#[test]
fn a_shard_truncate_empties_only_the_rows_that_shard_holds() {
    let mut m = mirror();
    m.apply("-80", "t", upsert(1, "a"));
    m.apply("80-", "t", upsert(2, "b"));
    m.apply("-80", "t", Event::Truncate);
    m.apply("-80", "t", upsert(3, "after -80's truncate"));
    assert_eq!(m.rows("t").keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    m.apply("80-", "t", Event::Truncate);
    assert_eq!(m.rows("t").keys().copied().collect::<Vec<_>>(), vec![3]);
}

#[test]
fn a_shard_drop_removes_its_rows_and_the_table_goes_with_the_last_shard() {
    let mut m = mirror();
    m.apply("-80", "t", upsert(1, "a"));
    m.apply("80-", "t", upsert(2, "b"));
    m.apply("-80", "t", Event::Drop);
    assert_eq!(m.rows("t"), BTreeMap::from([(2, "b".into())]));
    m.apply("80-", "t", upsert(4, "80- still had the table"));
    m.apply("80-", "t", Event::Drop);
    let exists = crate::mirror::ddl::exists(&m.writer.mirror.conn, "t").unwrap();
    assert!(!exists, "the table goes once every shard dropped it");
    m.apply("-80", "t", Event::Create);
    m.apply("-80", "t", upsert(5, "recreated"));
    assert_eq!(m.rows("t"), BTreeMap::from([(5, "recreated".into())]));
}

#[test]
fn a_shard_rename_moves_only_its_rows_and_the_other_shard_follows() {
    let mut m = mirror();
    m.apply("-80", "t", upsert(1, "a"));
    m.apply("80-", "t", upsert(2, "b"));
    m.apply("-80", "t", Event::Rename("t", "u"));
    m.apply("80-", "t", upsert(3, "80- before its rename"));
    assert_eq!(m.rows("u").keys().copied().collect::<Vec<_>>(), vec![1]);
    assert_eq!(m.rows("t").keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    m.apply("80-", "t", Event::Rename("t", "u"));
    assert_eq!(
        m.rows("u").keys().copied().collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert!(!crate::mirror::ddl::exists(&m.writer.mirror.conn, "t").unwrap());
}

#[test]
fn rows_a_parent_shard_wrote_belong_to_its_children_after_a_reshard() {
    let mut m = mirror();
    m.apply("-80", "t", upsert(1, "a"));
    m.apply("-80", "t", upsert(2, "b"));
    m.apply("-40", "t", Event::Delete(1));
    m.apply("40-80", "t", upsert(2, "updated by 40-80"));
    m.apply("80-", "t", Event::Delete(2));
    assert_eq!(
        m.rows("t"),
        BTreeMap::from([(2, "updated by 40-80".into())])
    );
}

fn merge(key: i64, id: i64, v: Option<&'static str>) -> Event {
    Event::Merge(vec![(key, id, v)])
}

#[test]
fn a_partial_image_sets_its_columns_and_keeps_the_absent_ones_of_the_held_row() {
    let mut m = mirror();
    m.apply("-80", "t", upsert(1, "a"));
    m.apply("-80", "t", merge(1, 1, None));
    assert_eq!(m.rows("t"), BTreeMap::from([(1, "a".into())]));
    m.apply("-80", "t", merge(1, 1, Some("b")));
    assert_eq!(m.rows("t"), BTreeMap::from([(1, "b".into())]));
    // Applied again (a replay): the same row.
    m.apply("-80", "t", merge(1, 1, Some("b")));
    assert_eq!(m.rows("t"), BTreeMap::from([(1, "b".into())]));
    // A key change in a partial image moves the completed row to its new key.
    m.apply("-80", "t", merge(1, 2, None));
    assert_eq!(m.rows("t"), BTreeMap::from([(2, "b".into())]));
}

#[test]
fn a_partial_image_of_a_row_the_mirror_does_not_hold_stops_with_nothing_of_it_applied() {
    let mut m = mirror();
    m.apply("-80", "t", upsert(1, "secret"));
    let err = (m.try_apply("-80", "t", Event::Merge(vec![(1, 1, Some("b")), (9, 9, None)])))
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("table t") && msg.contains("key id"), "{msg}");
    assert!(!msg.contains("secret") && !msg.contains('9'), "no row value: {msg}");
    assert_eq!(crate::error::classify(&err), crate::error::Class::Definite);
    assert_eq!(m.rows("t"), BTreeMap::from([(1, "secret".into())]));
    // Another shard's row is not this shard's to complete.
    assert!(m.try_apply("80-", "t", merge(1, 1, Some("b"))).is_err());
    assert_eq!(m.rows("t"), BTreeMap::from([(1, "secret".into())]));
}

#[test]
fn a_partial_image_completes_its_shards_version_of_a_row_in_mid_move() {
    let mut m = mirror();
    m.apply("-80", "t", upsert(1, "on -80"));
    m.apply("80-", "t", upsert(1, "moved to 80-"));
    // -80's later changes (before its DELETE of the move) reach the stream after 80-'s
    // insert: they complete -80's version kept aside, never 80-'s row.
    m.apply("-80", "t", merge(1, 1, None));
    assert_eq!(m.rows("t"), BTreeMap::from([(1, "on -80".into())]));
    m.apply("-80", "t", merge(1, 1, Some("updated on -80")));
    m.apply("-80", "t", Event::Delete(1));
    assert_eq!(m.rows("t"), BTreeMap::from([(1, "moved to 80-".into())]));
    // A child shard completes the row its parent wrote before a reshard.
    m.apply("80-", "t", upsert(2, "by 80-"));
    m.apply("c0-", "t", merge(2, 2, None));
    m.apply("c0-", "t", merge(2, 2, Some("by c0-")));
    assert_eq!(m.rows("t")[&2], "by c0-");
}

/// Source transactions of two shards: rows moving between shards as DELETE on one and
/// INSERT on the other, updates, and a TRUNCATE on every shard; the expected table.
fn moving_workload(seed: u64) -> ([Vec<Event>; 2], BTreeMap<i64, String>) {
    let mut rng = SplitMix64::new(seed);
    let mut holder: BTreeMap<i64, usize> = BTreeMap::new();
    let mut state: BTreeMap<i64, String> = BTreeMap::new();
    let mut streams: [Vec<Event>; 2] = [vec![], vec![]];
    for step in 0..300 {
        let id = rng.range(1, 12);
        let v = format!("v{step}");
        match (holder.get(&id).copied(), rng.below(10)) {
            (_, 0) if step % 97 == 96 => {
                streams.iter_mut().for_each(|s| s.push(Event::Truncate));
                holder.clear();
                state.clear();
            }
            (None, _) => {
                let shard = rng.below(2) as usize;
                streams[shard].push(Event::Upsert(id, v.clone()));
                holder.insert(id, shard);
                state.insert(id, v);
            }
            (Some(shard), 0..=5) => {
                streams[shard].push(Event::Delete(id));
                streams[1 - shard].push(Event::Upsert(id, v.clone()));
                holder.insert(id, 1 - shard);
                state.insert(id, v);
            }
            (Some(shard), 6..=7) => {
                streams[shard].push(Event::Upsert(id, v.clone()));
                state.insert(id, v);
            }
            (Some(shard), _) => {
                streams[shard].push(Event::Delete(id));
                holder.remove(&id);
                state.remove(&id);
            }
        }
    }
    (streams, state)
}

#[test]
fn rows_moving_between_shards_end_as_at_the_source_in_every_interleaving() {
    for seed in 0..40 {
        let (streams, expected) = moving_workload(seed);
        let mut order = SplitMix64::new(seed ^ 0x5eed);
        let mut m = mirror();
        let mut next = [0, 0];
        while next[0] < streams[0].len() || next[1] < streams[1].len() {
            // Bursts: one shard's stream runs ahead of the other's by up to 30 transactions.
            let shard = order.below(2) as usize;
            for _ in 0..order.range(1, 30) {
                if let Some(event) = streams[shard].get(next[shard]) {
                    m.apply(SHARDS[shard], "t", event.clone());
                    next[shard] += 1;
                }
            }
        }
        assert_eq!(m.rows("t"), expected, "seed {seed}");
    }
}

#[test]
fn a_batch_of_rows_moving_in_one_transaction_keeps_every_row() {
    let mut m = mirror();
    let batch = |shard: &str, changes: Vec<Change>| Step::Rows {
        schema: schema(shard, "t"),
        changes,
        copied: false,
    };
    let upserts = |ids: std::ops::Range<i64>, v: &str| {
        ids.map(|id| Change::Upsert(vec![Value::Integer(id), Value::text(v)]))
            .collect::<Vec<_>>()
    };
    m.writer
        .apply(&mut batch("-80", upserts(1..101, "a")), true)
        .unwrap();
    // 80- takes rows 50..=100 (and adds 101..150) before -80's deletes arrive: the
    // multi-row statements meet -80's rows and resolve them row by row.
    m.writer
        .apply(&mut batch("80-", upserts(50..151, "b")), true)
        .unwrap();
    let deletes = (50..101)
        .map(|id| Change::Delete(vec![Value::Integer(id)]))
        .collect();
    m.writer.apply(&mut batch("-80", deletes), true).unwrap();
    let rows = m.rows("t");
    assert_eq!(rows.len(), 150);
    assert!(rows.iter().all(|(id, v)| (*id < 50) == (v == "a")));
}

#[test]
fn a_key_two_shards_hold_at_once_beyond_a_move_stops_the_sync_naming_table_and_key() {
    let mut m = mirror();
    m.time = 1_000;
    m.apply("-80", "t", upsert(1, "-80's own row 1"));
    m.apply("80-", "t", upsert(1, "80-'s own row 1"));
    m.time = 1_000 + crate::mirror::versions::held_twice::MOVE_WINDOW;
    m.apply("80-", "t", upsert(2, "80- goes on"));
    let err = m
        .try_apply("-80", "t", upsert(3, "-80 goes on"))
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("table t: key"), "{text}");
    assert!(text.contains("-80") && text.contains("80-"), "{text}");
    let committed: i64 = (m.writer.mirror.conn)
        .query_row("SELECT count(*) FROM t WHERE id = 3", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        committed, 0,
        "the transaction that found it is not committed"
    );
}

#[test]
fn a_move_whose_delete_lags_behind_the_other_shard_is_not_taken_for_a_key_held_twice() {
    let mut m = mirror();
    m.time = 1_000;
    m.apply("-80", "t", upsert(1, "on -80"));
    m.apply("80-", "t", upsert(1, "moved to 80-"));
    // 80- runs far ahead; -80 (whose DELETE is still to come) does not.
    m.time = 1_000 + 10 * crate::mirror::versions::held_twice::MOVE_WINDOW;
    for id in 2..10 {
        m.apply("80-", "t", upsert(id, "80- goes on"));
    }
    m.time = 1_001;
    m.apply("-80", "t", Event::Delete(1));
    m.time = 1_000 + 10 * crate::mirror::versions::held_twice::MOVE_WINDOW;
    m.apply("-80", "t", upsert(20, "-80 catches up"));
    assert_eq!(m.rows("t")[&1], "moved to 80-");
}
