//! VEvents → what `tail` prints. Unlike the sync decoder this never converts values for
//! SQLite: every value is shown as the text MySQL sent (hex for binary columns), so no value,
//! table without a primary key or unknown column type can stop a tail.

use std::collections::HashMap;

use anyhow::{bail, Result};

use crate::output::render::hex;
use crate::source::proto::binlogdata::{RowChange, VEvent, VEventType, VGtid};
use crate::source::proto::query::{Field, Row};
use crate::source::table_schema::bare_table_name;
use crate::source::value::{decode_text, storage_for, vtype, Storage};

/// One printable thing, in stream order.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// The row changes of one ROW event.
    Rows(RowsEvent),
    /// A transaction (or DDL / OTHER event) ended; `vgtid` is the position after it.
    End(TxEnd),
    /// COPY_COMPLETED for one shard, or for the whole stream (`shard` None).
    CopyCompleted { shard: Option<String> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// Numbers are right-aligned in text output.
    pub numeric: bool,
    /// Binary column: values arrive here as `0x…` hex (unambiguous, as `--format json`
    /// prints them); text output shows printable UTF-8 ones as text, like the seed client.
    pub binary: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RowsEvent {
    /// Binlog time of the transaction (0 during the copy phase).
    pub timestamp: i64,
    pub keyspace: String,
    pub shard: String,
    pub table: String,
    pub columns: Vec<Column>,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Insert => "INSERT",
            Op::Update => "UPDATE",
            Op::Delete => "DELETE",
        }
    }
}

/// A value as text; None is SQL NULL.
pub type Text = Option<String>;

#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub op: Op,
    pub before: Option<Vec<Text>>,
    pub after: Option<Vec<Text>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndKind {
    Commit,
    Ddl,
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TxEnd {
    pub timestamp: i64,
    pub kind: EndKind,
    /// The DDL statement, for `EndKind::Ddl`.
    pub statement: Option<String>,
    pub vgtid: Option<VGtid>,
}

/// Stream state: column lists per (keyspace, shard, table), the open transaction's time, the
/// VGtid.
#[derive(Default)]
pub struct Follower {
    /// The keyspace of events that name none (a one-keyspace stream); empty otherwise.
    keyspace: String,
    fields: HashMap<(String, String, String), Vec<Field>>,
    tx_time: i64,
    pending: Option<VGtid>,
}

impl Follower {
    pub fn new(keyspace: &str) -> Self {
        Follower {
            keyspace: keyspace.to_string(),
            ..Default::default()
        }
    }

    /// The items `event` produces (most events produce none).
    pub fn follow(&mut self, event: VEvent, out: &mut Vec<Item>) {
        if self.tx_time == 0 && event.timestamp > 0 {
            self.tx_time = event.timestamp;
        }
        let Ok(kind) = VEventType::try_from(event.r#type) else {
            return;
        };
        match kind {
            VEventType::Begin => self.tx_time = event.timestamp,
            VEventType::Vgtid => self.pending = event.vgtid,
            VEventType::Field => self.field(&event),
            VEventType::Row => out.extend(self.rows(event).map(Item::Rows)),
            VEventType::Commit | VEventType::Rollback => out.push(self.end(EndKind::Commit, None)),
            VEventType::Ddl => out.push(self.end(EndKind::Ddl, Some(event.statement))),
            VEventType::Other => out.push(self.end(EndKind::Other, None)),
            VEventType::CopyCompleted => out.push(Item::CopyCompleted {
                shard: (!event.shard.is_empty()).then_some(event.shard),
            }),
            _ => {}
        }
    }

    fn end(&mut self, kind: EndKind, statement: Option<String>) -> Item {
        let timestamp = std::mem::take(&mut self.tx_time);
        Item::End(TxEnd {
            timestamp,
            kind,
            statement,
            vgtid: self.pending.take(),
        })
    }

    fn field(&mut self, event: &VEvent) {
        let Some(fe) = &event.field_event else { return };
        if fe.is_internal_table {
            return;
        }
        let shard = if fe.shard.is_empty() {
            &event.shard
        } else {
            &fe.shard
        };
        let keyspace = [&fe.keyspace, &event.keyspace]
            .into_iter()
            .find(|k| !k.is_empty())
            .unwrap_or(&self.keyspace);
        let table = bare_table_name(&fe.table_name, keyspace).to_string();
        self.fields
            .insert((keyspace.clone(), shard.clone(), table), fe.fields.clone());
    }

    fn rows(&mut self, event: VEvent) -> Option<RowsEvent> {
        let re = event.row_event?;
        if re.is_internal_table {
            return None;
        }
        let shard = if re.shard.is_empty() {
            event.shard
        } else {
            re.shard
        };
        let keyspace = [re.keyspace, event.keyspace]
            .into_iter()
            .find(|k| !k.is_empty())
            .unwrap_or_else(|| self.keyspace.clone());
        let table = bare_table_name(&re.table_name, &keyspace).to_string();
        // Vitess's own tables (an online DDL's `_vt_vrp_…` shadow, which the rule that brings
        // online DDL events also copies) are not the user's data.
        if crate::source::ddl_statement::is_internal(&table) {
            return None;
        }
        let empty = Vec::new();
        let key = (keyspace, shard, table);
        let fields = self.fields.get(&key).unwrap_or(&empty);
        let (keyspace, shard, table) = key.clone();
        let mut width = fields.len();
        let mut changes = Vec::with_capacity(re.row_changes.len());
        for change in &re.row_changes {
            match render_change(fields, change) {
                Ok(c) => {
                    width = width.max(row_width(&c));
                    changes.push(c);
                }
                Err(e) => {
                    tracing::warn!(table = %table, error = %format!("{e:#}"), "skipping a malformed row change")
                }
            }
        }
        Some(RowsEvent {
            timestamp: self.tx_time,
            keyspace,
            shard,
            table,
            columns: columns(fields, width),
            changes,
        })
    }
}

fn row_width(change: &Change) -> usize {
    let len = |r: &Option<Vec<Text>>| r.as_ref().map_or(0, Vec::len);
    len(&change.before).max(len(&change.after))
}

/// Column names from the FIELD event; `@1`, `@2` … where no FIELD event named them.
fn columns(fields: &[Field], width: usize) -> Vec<Column> {
    (0..width)
        .map(|i| match fields.get(i) {
            Some(f) => Column {
                name: f.name.clone(),
                numeric: is_numeric(f.r#type),
                binary: storage_for(f.r#type, f.charset) == Storage::Blob,
            },
            None => Column {
                name: format!("@{}", i + 1),
                numeric: false,
                binary: false,
            },
        })
        .collect()
}

fn is_numeric(vitess_type: i32) -> bool {
    vitess_type == vtype::DECIMAL
        || matches!(
            storage_for(vitess_type, 63),
            Storage::Integer | Storage::IntegerOrText | Storage::Real
        )
}

fn render_change(fields: &[Field], change: &RowChange) -> Result<Change> {
    let before = change
        .before
        .as_ref()
        .map(|r| render_row(fields, r))
        .transpose()?;
    let after = change
        .after
        .as_ref()
        .map(|r| render_row(fields, r))
        .transpose()?;
    let op = match (&before, &after) {
        (None, Some(_)) => Op::Insert,
        (Some(_), Some(_)) => Op::Update,
        (Some(_), None) => Op::Delete,
        (None, None) => bail!("row change has neither before nor after image"),
    };
    Ok(Change { op, before, after })
}

/// Splits `Row.values` by `Row.lengths` (-1 = NULL), checking every length.
pub fn render_row(fields: &[Field], row: &Row) -> Result<Vec<Text>> {
    let mut offset = 0usize;
    let mut out = Vec::with_capacity(row.lengths.len());
    for (i, &len) in row.lengths.iter().enumerate() {
        if len == -1 {
            out.push(None);
            continue;
        }
        let end = usize::try_from(len)
            .ok()
            .and_then(|l| offset.checked_add(l))
            .filter(|&end| end <= row.values.len());
        let Some(end) = end else {
            bail!("value {} has length {len}, beyond the row buffer", i + 1);
        };
        out.push(Some(render_value(fields.get(i), &row.values[offset..end])));
        offset = end;
    }
    Ok(out)
}

/// Text columns as text (latin1 transcoded, invalid UTF-8 replaced), binary ones as hex.
fn render_value(field: Option<&Field>, raw: &[u8]) -> String {
    let Some(field) = field else {
        return String::from_utf8_lossy(raw).into_owned();
    };
    if storage_for(field.r#type, field.charset) == Storage::Blob {
        return hex(raw);
    }
    decode_text(field.charset, raw).unwrap_or_else(|_| String::from_utf8_lossy(raw).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, ty: i32, charset: u32) -> Field {
        Field {
            name: name.into(),
            r#type: ty,
            charset,
            ..Default::default()
        }
    }

    fn row(values: &[Option<&[u8]>]) -> Row {
        let mut r = Row::default();
        let mut bytes = Vec::new();
        for v in values {
            match v {
                None => r.lengths.push(-1),
                Some(b) => {
                    r.lengths.push(b.len() as i64);
                    bytes.extend_from_slice(b);
                }
            }
        }
        r.values = bytes.into();
        r
    }

    #[test]
    fn values_render_as_text_with_binary_columns_in_hex_and_nulls_kept() {
        let fields = [
            field("id", vtype::INT64, 63),
            field("sku", vtype::VARBINARY, 63),
            field("name", vtype::VARCHAR, 255),
            field("note", vtype::TEXT, 255),
        ];
        let r = row(&[Some(b"23"), Some(b"\x00\x01"), Some("é".as_bytes()), None]);
        let got = render_row(&fields, &r).unwrap();
        assert_eq!(
            got,
            vec![
                Some("23".to_string()),
                Some("0x0001".into()),
                Some("é".into()),
                None
            ]
        );
    }

    #[test]
    fn invalid_text_and_a_length_past_the_buffer_never_panic() {
        let fields = [field("name", vtype::VARCHAR, 255)];
        let got = render_row(&fields, &row(&[Some(b"\xff")])).unwrap();
        assert_eq!(got, vec![Some("\u{fffd}".to_string())]);
        let mut bad = row(&[Some(b"ab")]);
        bad.lengths = vec![5];
        assert!(render_row(&fields, &bad).is_err());
        bad.lengths = vec![-7];
        assert!(render_row(&fields, &bad).is_err());
    }

    #[test]
    fn rows_without_a_field_event_get_positional_column_names() {
        let mut f = Follower::new("ks");
        let mut out = Vec::new();
        f.follow(event(VEventType::Begin, 7), &mut out);
        let mut ev = event(VEventType::Row, 7);
        ev.row_event = Some(crate::source::proto::binlogdata::RowEvent {
            table_name: "t".into(),
            row_changes: vec![RowChange {
                after: Some(row(&[Some(b"1"), Some(b"x")])),
                ..Default::default()
            }],
            ..Default::default()
        });
        f.follow(ev, &mut out);
        let Item::Rows(rows) = &out[0] else {
            panic!("a rows item")
        };
        let names: Vec<_> = rows.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["@1", "@2"]);
        assert_eq!(rows.changes[0].op, Op::Insert);
    }

    fn event(ty: VEventType, ts: i64) -> VEvent {
        VEvent {
            r#type: ty as i32,
            timestamp: ts,
            keyspace: "ks".into(),
            shard: "0".into(),
            ..Default::default()
        }
    }
}
