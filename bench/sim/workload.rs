//! The benchmark data: one 8-column table (~120 B/row of mixed ints, varchar, decimal and
//! datetime), a copy stream of it, and a replication stream of small transactions, each
//! pre-encoded as the VStream responses vtgate would send.

use bytes::Bytes;
use prost::Message;
use vtmirror::sim::{encode_row, lastpk_result, ColKind, ColumnSpec, Row, TableSpec};
use vtmirror::source::decode::row_values;
use vtmirror::source::proto::binlogdata::{
    FieldEvent, RowChange, RowEvent, ShardGtid, TableLastPk, VEvent, VEventType, VGtid,
};
use vtmirror::source::proto::query::Field;
use vtmirror::source::proto::vtgate::VStreamResponse;
use vtmirror::source::table_schema::TableSchema;
use vtmirror::source::value::Value;

pub const KEYSPACE: &str = "bench";
pub const SHARD: &str = "0";
pub const TABLE: &str = "item";
const SOURCE_UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
/// Rows per copy batch: ~240 KB, under vttablet's 250 KB packet size.
pub const COPY_BATCH_ROWS: usize = 2000;
/// Binlog time of the replication transactions (seconds).
const EVENT_TIME: i64 = 1_767_225_600;

/// The benchmark table as the source declares it.
pub fn table_spec() -> TableSpec {
    TableSpec {
        name: TABLE.into(),
        columns: vec![
            ColumnSpec::new("id", ColKind::BigInt),
            ColumnSpec::new("account_id", ColKind::BigInt),
            ColumnSpec::new("qty", ColKind::Int),
            ColumnSpec::new("name", ColKind::VarChar(64)),
            ColumnSpec::new("email", ColKind::VarChar(128)),
            ColumnSpec::new("price", ColKind::Decimal(12, 2)),
            ColumnSpec::new("created", ColKind::DateTime(6)),
            ColumnSpec::nullable("note", ColKind::VarChar(64)),
        ],
        ledger_column: None,
    }
}

pub fn fields() -> Vec<Field> {
    table_spec().fields(KEYSPACE)
}

/// The schema vtmirror derives from the FIELD event (for the SQLite-only arms).
pub fn table_schema() -> TableSchema {
    TableSchema::from_fields(TABLE, &fields(), true).expect("benchmark schema is mirrorable")
}

/// A small deterministic generator (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One source row with primary key `id`, in wire text form.
pub fn source_row(id: i64, rng: &mut Rng) -> Row {
    let h = rng.next();
    let text = |s: String| Some(s.into_bytes());
    let note = (!h.is_multiple_of(10)).then(|| format!("note {:x}", h >> 20).into_bytes());
    vec![
        text(id.to_string()),
        text((h % 1_000_000).to_string()),
        text((h % 500).to_string()),
        text(format!("customer name {:08}", h % 100_000_000)),
        text(format!("user{id}@example{}.com", h % 100)),
        text(format!("{}.{:02}", h % 100_000, h % 100)),
        text(format!(
            "2025-{:02}-{:02} {:02}:{:02}:{:02}.{:06}",
            h % 12 + 1,
            h % 28 + 1,
            h % 24,
            h % 60,
            (h >> 8) % 60,
            h % 1_000_000
        )),
        note,
    ]
}

pub fn row_bytes(row: &Row) -> usize {
    row.iter().flatten().map(Vec::len).sum()
}

pub fn event(kind: VEventType, timestamp: i64) -> VEvent {
    VEvent {
        r#type: kind as i32,
        timestamp,
        current_time: timestamp * 1_000_000_000,
        keyspace: KEYSPACE.into(),
        shard: SHARD.into(),
        ..VEvent::default()
    }
}

pub fn field_event(timestamp: i64) -> VEvent {
    VEvent {
        field_event: Some(FieldEvent {
            table_name: TABLE.into(),
            fields: fields(),
            keyspace: KEYSPACE.into(),
            shard: SHARD.into(),
            enum_set_string_values: true,
            is_internal_table: false,
        }),
        ..event(VEventType::Field, timestamp)
    }
}

pub fn row_event(changes: Vec<RowChange>, timestamp: i64) -> VEvent {
    VEvent {
        row_event: Some(RowEvent {
            table_name: TABLE.into(),
            row_changes: changes,
            keyspace: KEYSPACE.into(),
            shard: SHARD.into(),
            flags: 1,
            is_internal_table: false,
        }),
        ..event(VEventType::Row, timestamp)
    }
}

/// `MySQL56/uuid:1-n`.
pub fn gtid(n: u64) -> String {
    format!("MySQL56/{SOURCE_UUID}:1-{n}")
}

fn vgtid_event(gtid_no: u64, lastpk: Option<i64>) -> VEvent {
    let table_p_ks = lastpk
        .map(|pk| TableLastPk {
            table_name: TABLE.into(),
            lastpk: Some(lastpk_result(table_spec().pk_fields(KEYSPACE), pk)),
        })
        .into_iter()
        .collect();
    VEvent {
        vgtid: Some(VGtid {
            shard_gtids: vec![ShardGtid {
                keyspace: KEYSPACE.into(),
                shard: SHARD.into(),
                gtid: gtid(gtid_no),
                table_p_ks,
            }],
        }),
        ..event(VEventType::Vgtid, 0)
    }
}

pub fn encode(events: Vec<VEvent>) -> Bytes {
    Bytes::from(VStreamResponse { events }.encode_to_vec())
}

/// A workload: its pre-encoded responses and what they carry.
pub struct Stream {
    pub responses: Vec<Bytes>,
    pub row_changes: u64,
    pub transactions: u64,
    /// Row value bytes carried (the "MB" of MB/s).
    pub payload_bytes: u64,
}

impl Stream {
    pub fn wire_bytes(&self) -> u64 {
        self.responses.iter().map(|r| r.len() as u64).sum()
    }
}

/// The GTID position the copy snapshot is taken at.
pub const COPY_GTID: u64 = 100;

/// VStream Copy of `rows` rows on one shard, in vtgate's event order: per batch BEGIN, one ROW
/// event per row, VGTID (with the table's last PK), COMMIT; then the table's completion and
/// COPY_COMPLETED.
pub fn copy_stream(rows: usize) -> Stream {
    let mut rng = Rng::new(7);
    let mut responses = Vec::with_capacity(rows / COPY_BATCH_ROWS + 2);
    let mut payload_bytes = 0u64;
    let mut next_id = 1i64;
    while (next_id as usize) <= rows {
        let end = (next_id + COPY_BATCH_ROWS as i64 - 1).min(rows as i64);
        responses.push(copy_batch(next_id, end, &mut rng, &mut payload_bytes));
        next_id = end + 1;
    }
    responses.push(copy_end());
    Stream {
        transactions: responses.len() as u64,
        responses,
        row_changes: rows as u64,
        payload_bytes,
    }
}

/// One copy response holding rows `first..=end` (the first one also carries FIELD and the
/// snapshot VGTID); adds their value bytes to `payload_bytes`.
pub fn copy_batch(first: i64, end: i64, rng: &mut Rng, payload_bytes: &mut u64) -> Bytes {
    let mut events = vec![event(VEventType::Begin, 0)];
    if first == 1 {
        events.push(field_event(0));
        events.push(vgtid_event(COPY_GTID, None));
    }
    // vttablet's copy sends one ROW event per row (measured on v24: 1M ROW events for
    // 1M rows), so the replay does too.
    events.extend((first..=end).map(|id| {
        let row = source_row(id, rng);
        *payload_bytes += row_bytes(&row) as u64;
        let change = RowChange {
            after: Some(encode_row(&row)),
            ..RowChange::default()
        };
        row_event(vec![change], 0)
    }));
    events.push(vgtid_event(COPY_GTID, Some(end)));
    events.push(event(VEventType::Commit, 0));
    encode(events)
}

/// The table's completion, the shard's COPY_COMPLETED and vtgate's final one.
pub fn copy_end() -> Bytes {
    encode(vec![
        event(VEventType::Begin, 0),
        vgtid_event(COPY_GTID, None),
        event(VEventType::Commit, 0),
        event(VEventType::CopyCompleted, 0),
        VEvent {
            r#type: VEventType::CopyCompleted as i32,
            ..VEvent::default()
        },
    ])
}

/// One row change of a replication transaction.
pub enum Op {
    Insert(Row),
    Update { before: Row, after: Row },
    Delete(Row),
}

impl Op {
    fn to_wire(&self) -> RowChange {
        let (before, after) = match self {
            Op::Insert(row) => (None, Some(row)),
            Op::Update { before, after } => (Some(before), Some(after)),
            Op::Delete(row) => (Some(row), None),
        };
        RowChange {
            before: before.map(encode_row),
            after: after.map(encode_row),
            ..RowChange::default()
        }
    }

    fn payload_bytes(&self) -> usize {
        match self {
            Op::Insert(row) | Op::Delete(row) => row_bytes(row),
            Op::Update { after, .. } => row_bytes(after),
        }
    }
}

/// Random transactions of 1–10 row changes: 70% insert, 25% update, 5% delete.
pub fn replication_transactions(count: usize) -> Vec<Vec<Op>> {
    let mut rng = Rng::new(11);
    let mut live: Vec<Row> = Vec::new();
    let mut next_id = 1i64;
    (0..count)
        .map(|_| {
            let size = 1 + rng.below(10) as usize;
            (0..size)
                .map(|_| random_op(&mut rng, &mut live, &mut next_id))
                .collect()
        })
        .collect()
}

fn random_op(rng: &mut Rng, live: &mut Vec<Row>, next_id: &mut i64) -> Op {
    let dice = rng.below(100);
    if live.is_empty() || dice < 70 {
        let row = source_row(*next_id, rng);
        *next_id += 1;
        live.push(row.clone());
        return Op::Insert(row);
    }
    let at = rng.below(live.len() as u64) as usize;
    if dice < 95 {
        let id: i64 = String::from_utf8_lossy(live[at][0].as_deref().unwrap_or_default())
            .parse()
            .unwrap_or_default();
        let after = source_row(id, rng);
        let before = std::mem::replace(&mut live[at], after.clone());
        Op::Update { before, after }
    } else {
        Op::Delete(live.swap_remove(at))
    }
}

/// The GTID position replication starts after.
pub const REPLICATION_START_GTID: u64 = 1000;

/// The position to start a fresh mirror at for the replication stream.
pub fn replication_start_json() -> String {
    format!(
        r#"[{{"keyspace":"{KEYSPACE}","shard":"{SHARD}","gtid":"{}"}}]"#,
        gtid(REPLICATION_START_GTID)
    )
}

/// One response per transaction, as vtgate sends them: BEGIN, [FIELD], ROW, VGTID, COMMIT.
pub fn replication_stream(txns: &[Vec<Op>]) -> Stream {
    let mut payload_bytes = 0u64;
    let mut row_changes = 0u64;
    let responses = txns
        .iter()
        .enumerate()
        .map(|(i, ops)| {
            let mut events = vec![event(VEventType::Begin, EVENT_TIME)];
            if i == 0 {
                events.push(field_event(EVENT_TIME));
            }
            // One ROW event per row change: each op is a single-row statement in the binlog.
            events.extend(
                ops.iter()
                    .map(|op| row_event(vec![op.to_wire()], EVENT_TIME)),
            );
            events.push(vgtid_event(REPLICATION_START_GTID + 1 + i as u64, None));
            events.push(event(VEventType::Commit, EVENT_TIME));
            payload_bytes += ops.iter().map(|op| op.payload_bytes() as u64).sum::<u64>();
            row_changes += ops.len() as u64;
            encode(events)
        })
        .collect();
    Stream {
        responses,
        row_changes,
        transactions: txns.len() as u64,
        payload_bytes,
    }
}

/// A row converted to SQLite values exactly as vtmirror converts it.
pub fn decoded(schema: &TableSchema, row: &Row) -> Vec<Value> {
    row_values(schema, &encode_row(row)).expect("benchmark rows decode")
}

/// A replication change already decoded, for the SQLite-only arms.
pub enum DecodedOp {
    Insert(Vec<Value>),
    Update(Vec<Value>),
    Delete(Value),
}

pub fn decode_transactions(schema: &TableSchema, txns: &[Vec<Op>]) -> Vec<Vec<DecodedOp>> {
    txns.iter()
        .map(|ops| {
            ops.iter()
                .map(|op| match op {
                    Op::Insert(row) => DecodedOp::Insert(decoded(schema, row)),
                    Op::Update { after, .. } => DecodedOp::Update(decoded(schema, after)),
                    Op::Delete(row) => DecodedOp::Delete(decoded(schema, row).swap_remove(0)),
                })
                .collect()
        })
        .collect()
}

/// The copy rows decoded, regenerated with the same seed as `copy_stream`.
pub fn copy_rows_decoded(schema: &TableSchema, rows: usize) -> Vec<Vec<Value>> {
    let mut rng = Rng::new(7);
    (1..=rows as i64)
        .map(|id| decoded(schema, &source_row(id, &mut rng)))
        .collect()
}
