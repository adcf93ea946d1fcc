//! Generators for the decoder fuzz tests: valid BEGIN, FIELD, ROW, VGTID, COMMIT sequences
//! of random tables and rows, and the wire-level mutations applied to them.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

use super::mutations::{apply, mutation, Mutation};
use vtmirror::source::proto::binlogdata::{
    FieldEvent, RowChange, RowEvent, ShardGtid, VEvent, VEventType, VGtid,
};
use vtmirror::source::proto::query::{Field, Row};
use vtmirror::source::value::vtype::*;

pub const KEYSPACE: &str = "ks";
const UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

/// Every Vitess type the decoder knows.
pub const TYPES: &[i32] = &[
    NULL_TYPE, INT8, UINT8, INT16, UINT16, INT24, UINT24, INT32, UINT32, INT64, UINT64, FLOAT32,
    FLOAT64, TIMESTAMP, DATE, TIME, DATETIME, YEAR, DECIMAL, TEXT, BLOB, VARCHAR, VARBINARY, CHAR,
    BINARY, BIT, ENUM, SET, GEOMETRY, JSON, VECTOR,
];

/// A known type most of the time, any number sometimes (what a newer server could send).
pub fn vitess_type() -> impl Strategy<Value = i32> {
    prop_oneof![8 => select(TYPES), 1 => any::<i32>()]
}

/// utf8mb4, binary, latin1, or anything.
pub fn collation() -> impl Strategy<Value = u32> {
    prop_oneof![3 => Just(255u32), 2 => Just(63), 1 => Just(8), 1 => any::<u32>()]
}

/// A column's SQL type text, as FIELD events carry it (member lists matter for ENUM/SET).
pub fn column_type_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("enum('a','b''c','')".to_string()),
        Just("set('x','y','z')".to_string()),
        "\\PC{0,24}",
        "[()',a-z]{0,12}",
    ]
}

/// One cell's raw material; the column's type picks the valid text for it.
#[derive(Debug, Clone)]
pub struct Cell {
    int: i64,
    float: f64,
    text: String,
    null: bool,
}

fn cell() -> impl Strategy<Value = Cell> {
    (
        any::<i64>(),
        any::<f64>(),
        "\\PC{0,16}",
        prop::bool::weighted(0.1),
    )
        .prop_map(|(int, float, text, null)| Cell {
            int,
            float,
            text,
            null,
        })
}

/// The value a real server would send for `cell` in a column of type `t`.
fn valid_bytes(t: i32, cell: &Cell) -> Option<Vec<u8>> {
    if cell.null {
        return None;
    }
    Some(match t {
        INT8 | INT16 | INT24 | INT32 | INT64 | YEAR => cell.int.to_string().into_bytes(),
        UINT8 | UINT16 | UINT24 | UINT32 => (cell.int as u32).to_string().into_bytes(),
        UINT64 => (cell.int as u64).to_string().into_bytes(),
        FLOAT32 | FLOAT64 => format!("{:E}", cell.float).into_bytes(),
        ENUM => b"a".to_vec(),
        SET => b"x,z".to_vec(),
        // A JSON column always carries a document (keys of several lengths, any text).
        JSON => serde_json::json!({ cell.text.as_str(): cell.int, "k": [cell.float, &cell.text] })
            .to_string()
            .into_bytes(),
        _ => cell.text.clone().into_bytes(),
    })
}

/// A valid transaction, and the mutations to apply to it (none: it must decode cleanly).
#[derive(Debug, Clone)]
pub struct Case {
    pub columns: Vec<(i32, u32, String)>,
    pub rows: Vec<Vec<Cell>>,
    pub updates: bool,
    pub mutations: Vec<Mutation>,
}

pub fn case(max_mutations: usize) -> impl Strategy<Value = Case> {
    (1usize..7).prop_flat_map(move |ncols| {
        (
            vec((vitess_type(), collation(), column_type_text()), ncols),
            vec(vec(cell(), ncols), 0..5),
            any::<bool>(),
            vec(mutation(), 0..=max_mutations),
        )
            .prop_map(|(columns, rows, updates, mutations)| Case {
                columns,
                rows,
                updates,
                mutations,
            })
    })
}

fn event(t: VEventType) -> VEvent {
    VEvent {
        r#type: t as i32,
        keyspace: KEYSPACE.into(),
        shard: "-80".into(),
        timestamp: 1_700_000_000,
        ..Default::default()
    }
}

fn encode(values: &[Option<Vec<u8>>]) -> Row {
    let mut row = Row::default();
    let mut bytes = Vec::new();
    for v in values {
        match v {
            Some(b) => {
                row.lengths.push(b.len() as i64);
                bytes.extend_from_slice(b);
            }
            None => row.lengths.push(-1),
        }
    }
    row.values = bytes.into();
    row
}

impl Case {
    /// The type a column is really sent with: the valid sequence keeps text types readable
    /// and the first column (the key) not NULL.
    fn fields(&self) -> Vec<Field> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, (t, c, ct))| Field {
                name: format!("c{i}"),
                r#type: *t,
                charset: if matches!(*t, TEXT | VARCHAR | CHAR) && ![63, 8].contains(c) {
                    255
                } else {
                    *c
                },
                flags: if i == 0 { 2 } else { 0 },
                column_type: ct.clone(),
                ..Default::default()
            })
            .collect()
    }

    fn row_images(&self) -> Vec<Row> {
        self.rows
            .iter()
            .map(|cells| {
                let values: Vec<Option<Vec<u8>>> = cells
                    .iter()
                    .zip(&self.columns)
                    .enumerate()
                    .map(|(i, (cell, (t, _, _)))| {
                        let mut cell = cell.clone();
                        cell.null &= i > 0;
                        valid_bytes(*t, &cell)
                    })
                    .collect();
                encode(&values)
            })
            .collect()
    }

    /// BEGIN, FIELD, ROW, VGTID, COMMIT as vtgate sends them.
    pub fn valid_events(&self) -> Vec<VEvent> {
        let images = self.row_images();
        let row_changes = images
            .iter()
            .map(|r| RowChange {
                before: self.updates.then(|| r.clone()),
                after: Some(r.clone()),
                ..Default::default()
            })
            .collect();
        let field = VEvent {
            field_event: Some(FieldEvent {
                table_name: "ks.t".into(),
                fields: self.fields(),
                keyspace: KEYSPACE.into(),
                shard: "-80".into(),
                enum_set_string_values: true,
                is_internal_table: false,
            }),
            ..event(VEventType::Field)
        };
        let row = VEvent {
            row_event: Some(RowEvent {
                table_name: "ks.t".into(),
                row_changes,
                keyspace: KEYSPACE.into(),
                shard: "-80".into(),
                ..Default::default()
            }),
            ..event(VEventType::Row)
        };
        let vgtid = VEvent {
            vgtid: Some(VGtid {
                shard_gtids: ["-80", "80-"]
                    .iter()
                    .map(|s| ShardGtid {
                        keyspace: KEYSPACE.into(),
                        shard: (*s).into(),
                        gtid: format!("MySQL56/{UUID}:1-7"),
                        table_p_ks: vec![],
                    })
                    .collect(),
            }),
            ..event(VEventType::Vgtid)
        };
        vec![
            event(VEventType::Begin),
            field,
            row,
            vgtid,
            event(VEventType::Commit),
        ]
    }

    /// The valid sequence with every mutation applied.
    pub fn events(&self) -> Vec<VEvent> {
        let mut events = self.valid_events();
        for m in &self.mutations {
            apply(m, &mut events);
        }
        events
    }
}
