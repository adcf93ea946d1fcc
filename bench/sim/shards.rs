//! Many shards: the copy workload as vtgate delivers it from a keyspace of 8 shards. Keys are
//! hash-sharded (each shard holds an interleaved subset of the ids), every shard copies its
//! subset in PK order in its own stream, and vtgate multiplexes those streams into one: each
//! shard's transactions arrive whole, in an arbitrary order between shards, and every VGTID
//! names all 8 shards (vstream_manager.go `sendEventsLocked`). Each shard ends with its table's
//! completion and its own COPY_COMPLETED; the last one is followed by vtgate's final one.

use std::collections::VecDeque;
use std::fmt::Write;
use std::path::Path;

use anyhow::Result;
use bytes::Bytes;
use vtmirror::mirror::schema::quote;
use vtmirror::sim::{encode_row, lastpk_result, Row};
use vtmirror::source::proto::binlogdata::{
    RowChange, ShardGtid, TableLastPk, VEvent, VEventType, VGtid,
};
use vtmirror::source::value::Value;

use crate::measure::{Arm, Run};
use crate::workload::{
    self, encode, event, field_event, row_bytes, row_event, source_row, table_spec, Rng, Stream,
    COPY_BATCH_ROWS, COPY_GTID, KEYSPACE, TABLE,
};
use crate::{arms, report, Args};

/// The 8 equal key ranges of a keyspace split in 8.
pub const SHARDS: [&str; 8] = [
    "-20", "20-40", "40-60", "60-80", "80-a0", "a0-c0", "c0-e0", "e0-",
];

/// The shard holding `id`: the top 3 bits of a hash of the key, as a `hash` vindex places rows
/// by keyspace id (Vitess hashes with 3DES; any good mix spreads the ids the same way).
pub fn shard_of(id: i64) -> usize {
    let mut z = (id as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    ((z ^ (z >> 31)) >> 61) as usize
}

/// Each shard is its own MySQL server, so its GTID set names its own server uuid.
fn shard_gtid(shard: usize) -> String {
    format!("MySQL56/3e11fa47-71ca-11e1-9e33-c80aa94295{shard:02x}:1-{COPY_GTID}")
}

/// `event` moved to `shard` (the event and the FIELD/ROW inside it name their shard).
fn on_shard(mut e: VEvent, shard: usize) -> VEvent {
    e.shard = SHARDS[shard].into();
    if let Some(f) = e.field_event.as_mut() {
        f.shard = SHARDS[shard].into();
    }
    if let Some(r) = e.row_event.as_mut() {
        r.shard = SHARDS[shard].into();
    }
    e
}

/// One copy batch of one shard: its ROW events already encoded as `VStreamResponse.events`
/// entries (repeated fields concatenate, so a response is head ++ rows ++ tail).
#[derive(Default)]
struct Batch {
    rows: Vec<u8>,
    ids: Vec<i64>,
}

/// Splits ids 1..=rows (the same rows, same seed, as the 1-shard copy) into per-shard batches
/// of up to 2000 rows in PK order. Returns the batches and the row value bytes.
fn shard_batches(rows: usize) -> (Vec<VecDeque<Batch>>, u64) {
    let mut rng = Rng::new(7);
    let mut queues: Vec<VecDeque<Batch>> = (0..SHARDS.len()).map(|_| VecDeque::new()).collect();
    let mut open: Vec<Batch> = (0..SHARDS.len()).map(|_| Batch::default()).collect();
    let mut payload = 0u64;
    for id in 1..=rows as i64 {
        let row: Row = source_row(id, &mut rng);
        payload += row_bytes(&row) as u64;
        let s = shard_of(id);
        let change = RowChange {
            after: Some(encode_row(&row)),
            ..RowChange::default()
        };
        let encoded = encode(vec![on_shard(row_event(vec![change], 0), s)]);
        open[s].rows.extend_from_slice(&encoded);
        open[s].ids.push(id);
        if open[s].ids.len() == COPY_BATCH_ROWS {
            queues[s].push_back(std::mem::take(&mut open[s]));
        }
    }
    for (s, batch) in open.into_iter().enumerate() {
        if !batch.ids.is_empty() {
            queues[s].push_back(batch);
        }
    }
    (queues, payload)
}

/// vtgate's one VGtid for the stream, updated as each shard's events are queued.
struct Multiplexer {
    vgtid: VGtid,
    started: Vec<bool>,
    completed: usize,
    responses: Vec<Bytes>,
}

impl Multiplexer {
    fn new() -> Self {
        // Shards that have not sent their first VGTID yet keep the request's empty position.
        let shard_gtids = SHARDS
            .iter()
            .map(|s| ShardGtid {
                keyspace: KEYSPACE.into(),
                shard: (*s).into(),
                ..ShardGtid::default()
            })
            .collect();
        Multiplexer {
            vgtid: VGtid { shard_gtids },
            started: vec![false; SHARDS.len()],
            completed: 0,
            responses: Vec::new(),
        }
    }

    fn vgtid_event(&self, shard: usize) -> VEvent {
        VEvent {
            vgtid: Some(self.vgtid.clone()),
            ..on_shard(event(VEventType::Vgtid, 0), shard)
        }
    }

    fn set_lastpk(&mut self, shard: usize, lastpk: Option<i64>) {
        let pks = &mut self.vgtid.shard_gtids[shard].table_p_ks;
        pks.clear();
        if let Some(pk) = lastpk {
            pks.push(TableLastPk {
                table_name: TABLE.into(),
                lastpk: Some(lastpk_result(table_spec().pk_fields(KEYSPACE), pk)),
            });
        }
    }

    /// `BEGIN, [FIELD, VGTID(snapshot)], ROW…, VGTID(last pk), COMMIT` of one shard.
    fn batch(&mut self, shard: usize, batch: &Batch) {
        let mut head = vec![on_shard(event(VEventType::Begin, 0), shard)];
        if !self.started[shard] {
            self.started[shard] = true;
            head.push(on_shard(field_event(0), shard));
            self.vgtid.shard_gtids[shard].gtid = shard_gtid(shard);
            head.push(self.vgtid_event(shard));
        }
        self.set_lastpk(shard, batch.ids.last().copied());
        let tail = vec![
            self.vgtid_event(shard),
            on_shard(event(VEventType::Commit, 0), shard),
        ];
        let mut bytes = encode(head).to_vec();
        bytes.extend_from_slice(&batch.rows);
        bytes.extend_from_slice(&encode(tail));
        self.responses.push(Bytes::from(bytes));
    }

    /// The shard's table is done (`BEGIN, VGTID, COMMIT`), then its COPY_COMPLETED, sent
    /// apart; vtgate appends the final one to the last shard's.
    fn shard_done(&mut self, shard: usize) {
        self.set_lastpk(shard, None);
        self.responses.push(encode(vec![
            on_shard(event(VEventType::Begin, 0), shard),
            self.vgtid_event(shard),
            on_shard(event(VEventType::Commit, 0), shard),
        ]));
        self.completed += 1;
        let mut done = vec![on_shard(event(VEventType::CopyCompleted, 0), shard)];
        if self.completed == SHARDS.len() {
            done.push(VEvent {
                r#type: VEventType::CopyCompleted as i32,
                ..VEvent::default()
            });
        }
        self.responses.push(encode(done));
    }
}

/// The copy of ids 1..=rows from 8 shards as one vtgate stream, and the ids in the order
/// they are delivered (for an L0 that inserts in the same order).
pub fn copy_stream(rows: usize) -> (Stream, Vec<i64>) {
    let (mut queues, payload_bytes) = shard_batches(rows);
    assert!(
        queues.iter().all(|q| !q.is_empty()),
        "every shard holds rows"
    );
    let mut mux = Multiplexer::new();
    let mut order = Vec::with_capacity(rows);
    // The tablets stream in parallel and vtgate forwards whichever shard's transaction is
    // ready first: a random shard among those with batches left.
    let mut rng = Rng::new(13);
    loop {
        let active: Vec<usize> = (0..SHARDS.len())
            .filter(|&s| !queues[s].is_empty())
            .collect();
        if active.is_empty() {
            break;
        }
        let shard = active[rng.below(active.len() as u64) as usize];
        let batch = queues[shard]
            .pop_front()
            .expect("an active shard has a batch");
        mux.batch(shard, &batch);
        order.extend_from_slice(&batch.ids);
        if queues[shard].is_empty() {
            mux.shard_done(shard);
        }
    }
    let stream = Stream {
        transactions: mux.responses.len() as u64,
        responses: mux.responses,
        row_changes: rows as u64,
        payload_bytes,
    };
    (stream, order)
}

/// The copy from 8 shards next to the same rows from 1 shard, in one run.
pub struct ShardsResult {
    pub rows: usize,
    pub wire_bytes: u64,
    /// L0 / L0m insert the rows in the 8-shard delivery order (8 interleaved key runs).
    pub l0: Option<Arm>,
    pub l0m: Arm,
    /// L0m with a 256 MB page cache (not with --quick).
    pub l0c: Option<Arm>,
    /// L0m with each commit's rows sorted by key (not with --quick): the limit of a writer
    /// that orders the copied rows of one commit across shards before inserting them.
    pub l0s: Option<Arm>,
    pub t1: Arm,
    pub t8: Arm,
}

/// The mirrored table holds exactly ids 1..=rows: with a unique key, count = rows and every id
/// inside 1..=rows leave no room for a duplicate or a missing row.
pub fn exact_rows(db: &Path, rows: u64) -> Result<()> {
    let conn = rusqlite::Connection::open(db)?;
    let (count, min, max): (i64, i64, i64) = conn.query_row(
        &format!("SELECT count(*), min(id), max(id) FROM {}", quote(TABLE)),
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )?;
    anyhow::ensure!(
        (count, min, max) == (rows as i64, 1, rows as i64),
        "mirror holds {count} rows, ids {min}..={max}; expected exactly 1..={rows}"
    );
    Ok(())
}

/// The decoded rows in the order the 8-shard stream delivers them (for L0 / L0m).
fn in_delivery_order(rows: usize, order: &[i64]) -> Vec<Vec<Value>> {
    let decoded = workload::copy_rows_decoded(&workload::table_schema(), rows);
    let mut by_id: Vec<Option<Vec<Value>>> = decoded.into_iter().map(Some).collect();
    (order.iter())
        .map(|id| {
            by_id[*id as usize - 1]
                .take()
                .expect("each id is delivered once")
        })
        .collect()
}

/// Sorts each run of the mirror's default commit size (20,000 row changes) of the rows
/// by id, the first column: what the 8-shard order costs once a commit inserts its rows in
/// key order.
fn sort_per_commit(rows: &mut [Vec<Value>]) {
    let id = |row: &Vec<Value>| match row.first() {
        Some(Value::Integer(id)) => *id,
        _ => i64::MAX,
    };
    let commit_rows = vtmirror::mirror::batch::CommitPolicy::default().max_rows;
    for commit in rows.chunks_mut(commit_rows) {
        commit.sort_by_key(id);
    }
}

/// T from 1 shard and from 8 shards, alternating so both see the same load of this shared
/// machine; every run checked to hold exactly the copied ids.
async fn alternate(
    args: &Args,
    one: &Stream,
    eight: &Stream,
    rows: usize,
    dir: &Path,
) -> Result<(Vec<Run>, Vec<Run>)> {
    let (mut t1, mut t8) = (Vec::new(), Vec::new());
    for rep in 0..args.repetitions {
        for (label, stream, runs) in [("T1", one, &mut t1), ("T8", eight, &mut t8)] {
            let run =
                crate::end_to_end(args, stream, "copy", rows as u64, dir, crate::SyncArm::Cli)
                    .await?;
            exact_rows(&dir.join("t.db"), rows as u64)?;
            eprintln!(
                "  copy-8shards {label:<3} rep {rep}: {:>10.0} rows/s",
                run.rows_per_sec()
            );
            runs.push(run);
        }
    }
    Ok((t1, t8))
}

pub async fn workload(args: &Args, rows: usize, dir: &Path) -> Result<ShardsResult> {
    let name = "copy-8shards";
    eprintln!("{name}: generating {rows} rows from 1 and from 8 shards");
    let one = workload::copy_stream(rows);
    let (eight, order) = copy_stream(rows);
    let mut decoded = in_delivery_order(rows, &order);
    let payload = eight.payload_bytes;
    // --quick stays under 5 minutes on a busy machine: 2 repetitions here.
    let reps = if args.quick {
        args.repetitions.min(2)
    } else {
        args.repetitions
    };
    let args = &Args {
        repetitions: reps,
        ..args.clone()
    };
    // --quick keeps only L0m (the better limit; the ratio target is T 8 / T 1).
    let full = !args.quick;
    let l0 = full
        .then(|| {
            crate::repeat(args, "L0", name, || {
                arms::l0_copy(&crate::fresh_db(dir, "l0.db"), &decoded, payload, 1)
            })
        })
        .transpose()?;
    let l0m = crate::repeat(args, "L0m", name, || {
        arms::l0_copy(&crate::fresh_db(dir, "l0.db"), &decoded, payload, 32)
    })?;
    let l0c = full
        .then(|| {
            crate::repeat(args, "L0m c256", name, || {
                let db = crate::fresh_db(dir, "l0.db");
                arms::l0_copy_cache(&db, &decoded, payload, 32, 256)
            })
        })
        .transpose()?;
    let l0s = full
        .then(|| {
            // The last arm on these rows: sorted in place, then dropped.
            sort_per_commit(&mut decoded);
            crate::repeat(args, "L0m sorted", name, || {
                arms::l0_copy(&crate::fresh_db(dir, "l0.db"), &decoded, payload, 32)
            })
        })
        .transpose()?;
    drop(decoded);
    let (t1, t8) = alternate(args, &one, &eight, rows, dir).await?;
    let arm = |name: &str, runs| Arm {
        name: name.into(),
        workload: "copy-8shards".into(),
        runs,
    };
    Ok(ShardsResult {
        rows,
        wire_bytes: eight.wire_bytes(),
        l0,
        l0m,
        l0c,
        l0s,
        t1: arm("T 1 shard", t1),
        t8: arm("T 8 shards", t8),
    })
}

pub fn render(out: &mut String, r: &ShardsResult) {
    let _ = writeln!(
        out,
        "\ncopy {}M from 8 shards: {:.0} MB on the wire; T 1 shard and T 8 shards alternate; \
         L0/L0m insert in the 8-shard delivery order.\n",
        r.rows / 1_000_000,
        r.wire_bytes as f64 / 1e6
    );
    let arms = [
        r.l0.as_ref(),
        Some(&r.l0m),
        r.l0c.as_ref(),
        r.l0s.as_ref(),
        Some(&r.t1),
        Some(&r.t8),
    ];
    report::arms_table(out, arms.into_iter().flatten());
    let ratio = r.t8.rows_per_sec() / r.t1.rows_per_sec();
    let l0 = (r.l0.iter().chain([&r.l0m]))
        .map(Arm::rows_per_sec)
        .fold(0.0, f64::max);
    let _ = writeln!(out, "\n| ratio | value | target | |\n|---|---|---|---|");
    report::ratio_row(out, "T 8 shards / T 1 shard", ratio, "≥ 0.90", ratio >= 0.9);
    let t8 = r.t8.rows_per_sec() / l0;
    report::ratio_row(out, "T 8 shards / max(L0, L0m)", t8, "–", true);
}
