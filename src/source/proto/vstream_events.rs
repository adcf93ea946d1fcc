//! The sync's own view of `vtgate.VStreamResponse`: wire-compatible (Vitess's field numbers,
//! binlogdata.proto), holding only what `vtmirror sync` reads. Written by hand rather than
//! generated because of how names are held.
//!
//! Why: vttablet sends one ROW event per copied row, each naming its keyspace, shard and
//! table. Decoded as `String`s that is four allocations and copies per row; as `Bytes` slices
//! of the receive buffer, four atomic reference-count updates. A `Name` keeps a short name
//! inline instead: no allocation, no shared counter. Fields the sync never reads (gtid,
//! current_time, keyspace names, flags, …) are skipped while decoding; the rare, large payloads
//! are boxed so the array of a response's events (grown event by event) stays small.

use std::fmt;
use std::ops::Deref;

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, message, DecodeContext, WireType};
use prost::{DecodeError, Message};

use super::binlogdata::{row_change::Bitmap, FieldEvent, VEvent, VGtid};
use super::query::Row;

/// Names up to this many bytes are held inline (MySQL identifiers are ≤ 64 characters; most
/// are far shorter).
const INLINE_NAME: usize = 46;

/// A keyspace, shard or table name as it arrived (UTF-8 is checked where it is used).
#[derive(Clone)]
pub enum Name {
    Inline { len: u8, bytes: [u8; INLINE_NAME] },
    Long(Bytes),
}

impl Default for Name {
    fn default() -> Self {
        Name::Inline {
            len: 0,
            bytes: [0; INLINE_NAME],
        }
    }
}

impl Deref for Name {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..usize::from(*len).min(INLINE_NAME)],
            Name::Long(long) => long,
        }
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&String::from_utf8_lossy(self), f)
    }
}

impl Name {
    fn merge(&mut self, wire_type: WireType, buf: &mut impl Buf) -> Result<(), DecodeError> {
        encoding::check_wire_type(WireType::LengthDelimited, wire_type)?;
        let len = encoding::decode_varint(buf)?;
        let len = usize::try_from(len)
            .ok()
            .filter(|&len| len <= buf.remaining())
            .ok_or_else(overrun)?;
        *self = match u8::try_from(len)
            .ok()
            .filter(|&l| usize::from(l) <= INLINE_NAME)
        {
            Some(short) => {
                let mut bytes = [0u8; INLINE_NAME];
                buf.copy_to_slice(&mut bytes[..len]);
                Name::Inline { len: short, bytes }
            }
            None => Name::Long(buf.copy_to_bytes(len)),
        };
        Ok(())
    }

    fn encoded_len(&self, tag: u32) -> usize {
        if self.is_empty() {
            return 0;
        }
        encoding::key_len(tag) + encoding::encoded_len_varint(self.len() as u64) + self.len()
    }

    fn encode(&self, tag: u32, buf: &mut impl BufMut) {
        if !self.is_empty() {
            encoding::encode_key(tag, WireType::LengthDelimited, buf);
            encoding::encode_varint(self.len() as u64, buf);
            buf.put_slice(self);
        }
    }
}

/// prost offers no other way for a hand-written field to report a malformed length.
#[allow(deprecated)]
fn overrun() -> DecodeError {
    DecodeError::new("name longer than its message")
}

/// The most events a response reserves room for up front (a 16 MiB response of small events
/// grows past it as usual).
const MAX_EVENTS_RESERVED: usize = 8192;

/// `vtgate.VStreamResponse`.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct Response {
    pub events: Vec<Event>,
}

impl Message for Response {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        message::encode_repeated(1, &self.events, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => {
                if self.events.is_empty() {
                    // One growth instead of ~11 doublings (each a copy of every event so far)
                    // for a copy response of ~1600 single-row events of ≥ 64 bytes.
                    self.events
                        .reserve((buf.remaining() / 64).min(MAX_EVENTS_RESERVED));
                }
                message::merge_repeated(wire_type, &mut self.events, buf, ctx)
            }
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        message::encoded_len_repeated(1, &self.events)
    }

    fn clear(&mut self) {
        self.events.clear();
    }
}

/// The sync's view of a full event, through its encoding (tests and tools build full events;
/// the wire decides what the view holds).
impl TryFrom<VEvent> for Event {
    type Error = DecodeError;

    fn try_from(event: VEvent) -> Result<Self, Self::Error> {
        Self::decode(event.encode_to_vec().as_slice())
    }
}

/// `binlogdata.VEvent`: what the sync reads of it.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct Event {
    /// `binlogdata.VEventType`.
    pub r#type: i32,
    pub timestamp: i64,
    /// DDL text.
    pub statement: String,
    pub row_event: Option<RowEvent>,
    pub field_event: Option<Box<FieldEvent>>,
    pub vgtid: Option<Box<VGtid>>,
    pub keyspace: Name,
    pub shard: Name,
}

impl Message for Event {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if self.r#type != 0 {
            encoding::int32::encode(1, &self.r#type, buf);
        }
        if self.timestamp != 0 {
            encoding::int64::encode(2, &self.timestamp, buf);
        }
        if !self.statement.is_empty() {
            encoding::string::encode(4, &self.statement, buf);
        }
        if let Some(row_event) = &self.row_event {
            message::encode(5, row_event, buf);
        }
        if let Some(field_event) = &self.field_event {
            message::encode(6, field_event.as_ref(), buf);
        }
        if let Some(vgtid) = &self.vgtid {
            message::encode(7, vgtid.as_ref(), buf);
        }
        self.keyspace.encode(22, buf);
        self.shard.encode(23, buf);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => encoding::int32::merge(wire_type, &mut self.r#type, buf, ctx),
            2 => encoding::int64::merge(wire_type, &mut self.timestamp, buf, ctx),
            4 => encoding::string::merge(wire_type, &mut self.statement, buf, ctx),
            5 => message::merge(wire_type, self.row_event.get_or_insert_default(), buf, ctx),
            6 => {
                let field_event = self.field_event.get_or_insert_default();
                message::merge(wire_type, field_event.as_mut(), buf, ctx)
            }
            7 => message::merge(
                wire_type,
                self.vgtid.get_or_insert_default().as_mut(),
                buf,
                ctx,
            ),
            22 => self.keyspace.merge(wire_type, buf),
            23 => self.shard.merge(wire_type, buf),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let mut len = 0;
        if self.r#type != 0 {
            len += encoding::int32::encoded_len(1, &self.r#type);
        }
        if self.timestamp != 0 {
            len += encoding::int64::encoded_len(2, &self.timestamp);
        }
        if !self.statement.is_empty() {
            len += encoding::string::encoded_len(4, &self.statement);
        }
        len += self
            .row_event
            .as_ref()
            .map_or(0, |e| message::encoded_len(5, e));
        len += self
            .field_event
            .as_ref()
            .map_or(0, |e| message::encoded_len(6, e.as_ref()));
        len += self
            .vgtid
            .as_ref()
            .map_or(0, |v| message::encoded_len(7, v.as_ref()));
        len + self.keyspace.encoded_len(22) + self.shard.encoded_len(23)
    }

    fn clear(&mut self) {
        *self = Event::default();
    }
}

/// `binlogdata.RowEvent`.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct RowEvent {
    pub table_name: Name,
    pub row_changes: Vec<RowChange>,
    pub shard: Name,
    pub is_internal_table: bool,
}

impl Message for RowEvent {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        self.table_name.encode(1, buf);
        message::encode_repeated(2, &self.row_changes, buf);
        self.shard.encode(4, buf);
        if self.is_internal_table {
            encoding::bool::encode(6, &self.is_internal_table, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => self.table_name.merge(wire_type, buf),
            2 => message::merge_repeated(wire_type, &mut self.row_changes, buf, ctx),
            4 => self.shard.merge(wire_type, buf),
            6 => encoding::bool::merge(wire_type, &mut self.is_internal_table, buf, ctx),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let internal = if self.is_internal_table {
            encoding::bool::encoded_len(6, &true)
        } else {
            0
        };
        self.table_name.encoded_len(1)
            + message::encoded_len_repeated(2, &self.row_changes)
            + self.shard.encoded_len(4)
            + internal
    }

    fn clear(&mut self) {
        *self = RowEvent::default();
    }
}

/// `binlogdata.RowChange`.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct RowChange {
    pub before: Option<Row>,
    pub after: Option<Row>,
    pub data_columns: Option<Bitmap>,
    pub json_partial_values: Option<Bitmap>,
}

impl Message for RowChange {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        if let Some(row) = &self.before {
            message::encode(1, row, buf);
        }
        if let Some(row) = &self.after {
            message::encode(2, row, buf);
        }
        if let Some(bitmap) = &self.data_columns {
            message::encode(3, bitmap, buf);
        }
        if let Some(bitmap) = &self.json_partial_values {
            message::encode(4, bitmap, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        match tag {
            1 => message::merge(wire_type, self.before.get_or_insert_default(), buf, ctx),
            2 => message::merge(wire_type, self.after.get_or_insert_default(), buf, ctx),
            3 => message::merge(
                wire_type,
                self.data_columns.get_or_insert_default(),
                buf,
                ctx,
            ),
            4 => {
                let partial = self.json_partial_values.get_or_insert_default();
                message::merge(wire_type, partial, buf, ctx)
            }
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let rows = [(1, &self.before), (2, &self.after)];
        let bitmaps = [(3, &self.data_columns), (4, &self.json_partial_values)];
        let rows: usize = rows
            .iter()
            .filter_map(|(tag, row)| row.as_ref().map(|row| message::encoded_len(*tag, row)))
            .sum();
        let bitmaps: usize = bitmaps
            .iter()
            .filter_map(|(tag, b)| b.as_ref().map(|b| message::encoded_len(*tag, b)))
            .sum();
        rows + bitmaps
    }

    fn clear(&mut self) {
        *self = RowChange::default();
    }
}

#[cfg(test)]
#[path = "vstream_events_tests.rs"]
mod tests;
