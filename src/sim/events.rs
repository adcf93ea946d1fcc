//! Builders for the VEvents a vtgate client receives, and the `query::Row` wire encoding.

use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message;

use super::model::{Row, RowChange};
use crate::source::proto::binlogdata::{FieldEvent, RowEvent, VEvent, VEventType, VGtid};
use crate::source::proto::query::{self, Field, QueryResult};

/// Rows_event flag STMT_END_F, as set on the binlog row events vttablet forwards.
const ROWS_EVENT_STMT_END: u32 = 1;

/// Nanoseconds since the epoch.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Where tablet-originated events come from, and how table names are spelled.
#[derive(Debug, Clone)]
pub struct Source {
    /// Keyspace.
    pub keyspace: String,
    /// Shard.
    pub shard: String,
    /// `exclude_keyspace_from_table_name`: bare table names in FIELD/ROW.
    pub bare_names: bool,
}

impl Source {
    /// The table name as sent in FIELD/ROW events.
    pub fn table_name(&self, table: &str) -> String {
        if self.bare_names {
            table.to_string()
        } else {
            format!("{}.{}", self.keyspace, table)
        }
    }

    /// A plain event of `ty` with keyspace/shard and the given times.
    pub fn event(&self, ty: VEventType, timestamp: i64, current_time: i64) -> VEvent {
        VEvent {
            r#type: ty as i32,
            timestamp,
            current_time,
            keyspace: self.keyspace.clone(),
            shard: self.shard.clone(),
            ..VEvent::default()
        }
    }

    /// FIELD for `table`.
    pub fn field(&self, table: &str, fields: Vec<Field>, ts: i64, ct: i64) -> VEvent {
        let mut ev = self.event(VEventType::Field, ts, ct);
        ev.field_event = Some(FieldEvent {
            table_name: self.table_name(table),
            fields,
            keyspace: self.keyspace.clone(),
            shard: self.shard.clone(),
            enum_set_string_values: true,
            is_internal_table: false,
        });
        ev
    }

    /// ROW for `table` with the given changes (binlog = true sets the STMT_END flag).
    pub fn row(
        &self,
        table: &str,
        changes: &[&RowChange],
        ts: i64,
        ct: i64,
        binlog: bool,
    ) -> VEvent {
        let mut ev = self.event(VEventType::Row, ts, ct);
        let row_changes = changes
            .iter()
            .map(|c| crate::source::proto::binlogdata::RowChange {
                before: c.before.as_ref().map(encode_row),
                after: c.after.as_ref().map(encode_row),
                ..Default::default()
            })
            .collect();
        ev.row_event = Some(RowEvent {
            table_name: self.table_name(table),
            row_changes,
            keyspace: self.keyspace.clone(),
            shard: self.shard.clone(),
            flags: if binlog { ROWS_EVENT_STMT_END } else { 0 },
            is_internal_table: false,
        });
        ev
    }

    /// VGTID carrying the stream's whole VGtid (as vtgate builds it: no times).
    pub fn vgtid(&self, vgtid: VGtid) -> VEvent {
        let mut ev = self.event(VEventType::Vgtid, 0, 0);
        ev.vgtid = Some(vgtid);
        ev
    }
}

/// vtgate's own heartbeat: times only, no keyspace/shard/vgtid.
pub fn heartbeat() -> VEvent {
    let now = now_ns();
    VEvent {
        r#type: VEventType::Heartbeat as i32,
        timestamp: now / 1_000_000_000,
        current_time: now,
        ..VEvent::default()
    }
}

/// The final COPY_COMPLETED vtgate appends once every shard completed (no keyspace/shard).
pub fn copy_fully_completed() -> VEvent {
    VEvent {
        r#type: VEventType::CopyCompleted as i32,
        ..VEvent::default()
    }
}

/// `query::Row`: lengths (-1 = NULL) and concatenated values.
pub fn encode_row(row: &Row) -> query::Row {
    let mut lengths = Vec::with_capacity(row.len());
    let mut values = Vec::new();
    for v in row {
        match v {
            Some(b) => {
                lengths.push(b.len() as i64);
                values.extend_from_slice(b);
            }
            None => lengths.push(-1),
        }
    }
    query::Row {
        lengths,
        values: values.into(),
    }
}

/// Decodes a `query::Row` back into values (None when malformed).
pub fn decode_row(row: &query::Row) -> Option<Row> {
    let mut out = Vec::with_capacity(row.lengths.len());
    let mut off = 0usize;
    for &len in &row.lengths {
        if len < 0 {
            out.push(None);
            continue;
        }
        let end = off.checked_add(usize::try_from(len).ok()?)?;
        out.push(Some(row.values.get(off..end)?.to_vec()));
        off = end;
    }
    Some(out)
}

/// The lastpk QueryResult: PK fields and one row holding `pk`.
pub fn lastpk_result(pk_fields: Vec<Field>, pk: i64) -> QueryResult {
    QueryResult {
        fields: pk_fields,
        rows: vec![encode_row(&vec![Some(pk.to_string().into_bytes())])],
        ..QueryResult::default()
    }
}

/// The single integer PK held by a lastpk QueryResult.
pub fn lastpk_value(qr: &QueryResult) -> Option<i64> {
    let row = decode_row(qr.rows.first()?)?;
    super::model::parse_pk(row.first()?.as_ref())
}

/// Encoded size of an event (for packet and chunk budgets).
pub fn size(ev: &VEvent) -> usize {
    ev.encoded_len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_round_trip_with_null() {
        let row: Row = vec![
            Some(b"5".to_vec()),
            None,
            Some(Vec::new()),
            Some(vec![0xff, 0]),
        ];
        let enc = encode_row(&row);
        assert_eq!(enc.lengths, vec![1, -1, 0, 2]);
        assert_eq!(decode_row(&enc), Some(row));
        let qr = lastpk_result(vec![], 42);
        assert_eq!(lastpk_value(&qr), Some(42));
    }
}
