//! Wire-level mutations of a valid event sequence: lengths, value bytes, length counts,
//! field types / collations / flags, event order and types, table names, VGTID contents.

use proptest::collection::vec;
use proptest::prelude::*;
use vtmirror::source::proto::binlogdata::{ShardGtid, VEvent};
use vtmirror::source::proto::query::{Field, Row};

use super::cases::{collation, column_type_text, vitess_type};

const UUID: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

/// A wire-level change to a valid sequence.
#[derive(Debug, Clone)]
pub enum Mutation {
    Length {
        row: usize,
        col: usize,
        len: i64,
    },
    Values {
        row: usize,
        bytes: Vec<u8>,
    },
    LengthCount {
        row: usize,
        extra: Vec<i64>,
        drop: usize,
    },
    FieldType {
        col: usize,
        t: i32,
    },
    FieldCollation {
        col: usize,
        c: u32,
    },
    FieldFlags {
        col: usize,
        flags: u32,
    },
    FieldColumnType {
        col: usize,
        text: String,
    },
    EnumStrings(bool),
    DropEvent(usize),
    DuplicateEvent(usize),
    SwapEvents(usize, usize),
    EventType {
        at: usize,
        t: i32,
    },
    TableName {
        at: usize,
        name: String,
    },
    Gtid(String),
    GtidShard(String),
}

fn length() -> impl Strategy<Value = i64> {
    prop_oneof![
        -3i64..=40,
        Just(i64::MAX),
        Just(i64::MIN),
        Just(i64::from(u32::MAX)),
        any::<i64>()
    ]
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let i = || 0usize..64;
    prop_oneof![
        (i(), i(), length()).prop_map(|(row, col, len)| Mutation::Length { row, col, len }),
        (i(), vec(any::<u8>(), 0..48)).prop_map(|(row, bytes)| Mutation::Values { row, bytes }),
        (i(), vec(length(), 0..3), 0usize..3)
            .prop_map(|(row, extra, drop)| Mutation::LengthCount { row, extra, drop }),
        (i(), vitess_type()).prop_map(|(col, t)| Mutation::FieldType { col, t }),
        (i(), collation()).prop_map(|(col, c)| Mutation::FieldCollation { col, c }),
        (i(), any::<u32>()).prop_map(|(col, flags)| Mutation::FieldFlags { col, flags }),
        (i(), column_type_text()).prop_map(|(col, text)| Mutation::FieldColumnType { col, text }),
        any::<bool>().prop_map(Mutation::EnumStrings),
        i().prop_map(Mutation::DropEvent),
        i().prop_map(Mutation::DuplicateEvent),
        (i(), i()).prop_map(|(a, b)| Mutation::SwapEvents(a, b)),
        (i(), prop_oneof![0i32..=30, any::<i32>()])
            .prop_map(|(at, t)| Mutation::EventType { at, t }),
        (i(), prop_oneof![Just("ks.t".to_string()), "\\PC{0,8}"])
            .prop_map(|(at, name)| Mutation::TableName { at, name }),
        prop_oneof![
            Just(format!("MySQL56/{UUID}:1-3")),
            Just("current".to_string()),
            "MySQL56/[0-9a-f:,-]{0,48}",
            "\\PC{0,40}",
        ]
        .prop_map(Mutation::Gtid),
        prop_oneof![
            Just("80-".to_string()),
            Just("-40".to_string()),
            "[0-9a-f-]{0,6}"
        ]
        .prop_map(Mutation::GtidShard),
    ]
}

fn rows_of(events: &mut [VEvent]) -> Vec<&mut Row> {
    events
        .iter_mut()
        .filter_map(|e| e.row_event.as_mut())
        .flat_map(|re| re.row_changes.iter_mut())
        .flat_map(|rc| rc.before.iter_mut().chain(rc.after.iter_mut()))
        .collect()
}

fn fields_of(events: &mut [VEvent]) -> Vec<&mut Field> {
    events
        .iter_mut()
        .filter_map(|e| e.field_event.as_mut())
        .flat_map(|fe| fe.fields.iter_mut())
        .collect()
}

fn nth<T>(mut items: Vec<T>, i: usize) -> Option<T> {
    let n = items.len();
    (n > 0).then(|| items.swap_remove(i % n))
}

pub fn apply(m: &Mutation, events: &mut Vec<VEvent>) {
    let n = events.len();
    match m.clone() {
        Mutation::Length { row, col, len } => {
            if let Some(r) = nth(rows_of(events), row) {
                let k = r.lengths.len();
                if k > 0 {
                    r.lengths[col % k] = len;
                }
            }
        }
        Mutation::Values { row, bytes } => {
            if let Some(r) = nth(rows_of(events), row) {
                r.values = bytes.into();
            }
        }
        Mutation::LengthCount { row, extra, drop } => {
            if let Some(r) = nth(rows_of(events), row) {
                let keep = r.lengths.len().saturating_sub(drop);
                r.lengths.truncate(keep);
                r.lengths.extend(extra);
            }
        }
        Mutation::FieldType { col, t } => nth(fields_of(events), col)
            .into_iter()
            .for_each(|f| f.r#type = t),
        Mutation::FieldCollation { col, c } => nth(fields_of(events), col)
            .into_iter()
            .for_each(|f| f.charset = c),
        Mutation::FieldFlags { col, flags } => nth(fields_of(events), col)
            .into_iter()
            .for_each(|f| f.flags = flags),
        Mutation::FieldColumnType { col, text } => nth(fields_of(events), col)
            .into_iter()
            .for_each(|f| f.column_type = text.clone()),
        Mutation::EnumStrings(on) => events
            .iter_mut()
            .filter_map(|e| e.field_event.as_mut())
            .for_each(|fe| fe.enum_set_string_values = on),
        Mutation::DropEvent(i) if n > 0 => {
            events.remove(i % n);
        }
        Mutation::DuplicateEvent(i) if n > 0 => {
            let copy = events[i % n].clone();
            events.insert(i % n, copy);
        }
        Mutation::SwapEvents(a, b) if n > 0 => events.swap(a % n, b % n),
        Mutation::EventType { at, t } if n > 0 => events[at % n].r#type = t,
        Mutation::TableName { at, name } if n > 0 => {
            let e = &mut events[at % n];
            if let Some(fe) = e.field_event.as_mut() {
                fe.table_name = name;
            } else if let Some(re) = e.row_event.as_mut() {
                re.table_name = name;
            }
        }
        Mutation::Gtid(text) => vgtids(events).for_each(|s| s.gtid = text.clone()),
        Mutation::GtidShard(shard) => vgtids(events).take(1).for_each(|s| s.shard = shard.clone()),
        _ => {}
    }
}

fn vgtids(events: &mut [VEvent]) -> impl Iterator<Item = &mut ShardGtid> {
    events
        .iter_mut()
        .filter_map(|e| e.vgtid.as_mut())
        .flat_map(|v| v.shard_gtids.iter_mut())
}
