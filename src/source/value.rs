//! Vitess type + wire bytes → SQLite value, one lossless policy per type.
//!
//! The same source value must give the same SQLite value whichever phase delivered it
//! (copy sends MySQL text, the binlog path sends Vitess's own formatting, e.g. `1.5E+00`).

use std::ops::Range;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use rusqlite::types::{ToSql, ToSqlOutput, ValueRef};

pub mod chunk;
pub mod json;

pub use chunk::Chunk;

/// A value as stored in SQLite. Text and blobs are taken from the response's receive buffer
/// without an allocation (`Chunk`), and bound to SQLite as borrowed slices.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    /// Always valid UTF-8 (checked or transcoded when built).
    Text(Chunk),
    Blob(Chunk),
}

impl Value {
    pub fn text(text: impl Into<String>) -> Value {
        Value::Text(Chunk::from(text.into()))
    }

    pub fn blob(bytes: impl Into<Vec<u8>>) -> Value {
        Value::Blob(Chunk::from(bytes.into()))
    }
}

/// One wire value: `range` of the row buffer `owner`.
#[derive(Clone, Copy)]
pub struct Raw<'a> {
    owner: &'a Bytes,
    start: usize,
    end: usize,
}

impl<'a> Raw<'a> {
    /// The whole of `owner`.
    pub fn whole(owner: &'a Bytes) -> Raw<'a> {
        Raw {
            owner,
            start: 0,
            end: owner.len(),
        }
    }

    /// `owner[range]`; None if the range is not inside it.
    pub fn within(owner: &'a Bytes, range: Range<usize>) -> Option<Raw<'a>> {
        owner.get(range.clone())?;
        Some(Raw {
            owner,
            start: range.start,
            end: range.end,
        })
    }

    fn bytes(&self) -> &'a [u8] {
        self.owner.get(self.start..self.end).unwrap_or_default()
    }

    fn chunk(&self) -> Chunk {
        Chunk::within(self.owner, self.start..self.end).unwrap_or_else(|| Chunk::from(Vec::new()))
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(text) => ValueRef::Text(text),
            Value::Blob(blob) => ValueRef::Blob(blob),
        }))
    }
}

/// The owned SQLite value, as a read from the mirror returns it.
impl From<Value> for rusqlite::types::Value {
    fn from(value: Value) -> Self {
        match value {
            Value::Null => rusqlite::types::Value::Null,
            Value::Integer(i) => rusqlite::types::Value::Integer(i),
            Value::Real(f) => rusqlite::types::Value::Real(f),
            Value::Text(text) => {
                rusqlite::types::Value::Text(String::from_utf8_lossy(&text).into_owned())
            }
            Value::Blob(blob) => rusqlite::types::Value::Blob(blob.to_vec()),
        }
    }
}

/// `query.Type` values (ordinal | flag bits), as sent on the wire.
pub mod vtype {
    pub const NULL_TYPE: i32 = 0;
    pub const INT8: i32 = 257;
    pub const UINT8: i32 = 770;
    pub const INT16: i32 = 259;
    pub const UINT16: i32 = 772;
    pub const INT24: i32 = 261;
    pub const UINT24: i32 = 774;
    pub const INT32: i32 = 263;
    pub const UINT32: i32 = 776;
    pub const INT64: i32 = 265;
    pub const UINT64: i32 = 778;
    pub const FLOAT32: i32 = 1035;
    pub const FLOAT64: i32 = 1036;
    pub const TIMESTAMP: i32 = 2061;
    pub const DATE: i32 = 2062;
    pub const TIME: i32 = 2063;
    pub const DATETIME: i32 = 2064;
    pub const YEAR: i32 = 785;
    pub const DECIMAL: i32 = 18;
    pub const TEXT: i32 = 6163;
    pub const BLOB: i32 = 10260;
    pub const VARCHAR: i32 = 6165;
    pub const VARBINARY: i32 = 10262;
    pub const CHAR: i32 = 6167;
    pub const BINARY: i32 = 10264;
    pub const BIT: i32 = 2073;
    pub const ENUM: i32 = 2074;
    pub const SET: i32 = 2075;
    pub const GEOMETRY: i32 = 2077;
    pub const JSON: i32 = 2078;
    pub const VECTOR: i32 = 2083;
}

/// MySQL collation id of the `binary` pseudo-charset.
pub const BINARY_COLLATION: u32 = 63;

/// How a column is stored in SQLite (the declared type of a STRICT table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    Integer,
    /// BIGINT UNSIGNED: INTEGER while it fits in i64, exact decimal TEXT above.
    IntegerOrText,
    Real,
    Text,
    Blob,
}

impl Storage {
    pub fn declared_type(self) -> &'static str {
        match self {
            Storage::Integer => "INTEGER",
            Storage::IntegerOrText => "ANY",
            Storage::Real => "REAL",
            Storage::Text => "TEXT",
            Storage::Blob => "BLOB",
        }
    }
}

/// The storage class chosen for a Vitess type and collation.
pub fn storage_for(vitess_type: i32, collation: u32) -> Storage {
    use vtype::*;
    match vitess_type {
        INT8 | UINT8 | INT16 | UINT16 | INT24 | UINT24 | INT32 | UINT32 | INT64 | YEAR => {
            Storage::Integer
        }
        UINT64 => Storage::IntegerOrText,
        FLOAT32 | FLOAT64 => Storage::Real,
        TEXT | VARCHAR | CHAR if collation == BINARY_COLLATION => Storage::Blob,
        DECIMAL | TIMESTAMP | DATE | TIME | DATETIME | TEXT | VARCHAR | CHAR | ENUM | SET
        | JSON => Storage::Text,
        _ => Storage::Blob,
    }
}

/// Column facts needed to convert its values.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnType {
    pub vitess_type: i32,
    pub collation: u32,
    /// Full SQL type (`enum('a','b')`), used to map ENUM/SET indexes from old servers.
    pub column_type: String,
    /// FieldEvent.enum_set_string_values: ENUM/SET already arrive as strings.
    pub enum_set_strings: bool,
}

/// Converts one wire value (`None` = NULL) to the SQLite value stored for it.
pub fn to_sql(col: &ColumnType, raw: Option<Raw<'_>>) -> Result<Value> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    let bytes = raw.bytes();
    match storage_for(col.vitess_type, col.collation) {
        Storage::Integer => Ok(Value::Integer(parse_i64(bytes)?)),
        Storage::IntegerOrText => unsigned_value(bytes),
        Storage::Real => Ok(Value::Real(parse_float(col, bytes)?)),
        Storage::Blob => Ok(Value::Blob(raw.chunk())),
        Storage::Text => text_value(col, raw),
    }
}

/// `to_sql` of a value held on its own (tests, the simulated source).
pub fn to_sql_bytes(col: &ColumnType, raw: Option<&[u8]>) -> Result<Value> {
    let owner = raw.map(Bytes::copy_from_slice);
    to_sql(col, owner.as_ref().map(Raw::whole))
}

fn ascii(raw: &[u8]) -> Result<&str> {
    std::str::from_utf8(raw).context("numeric value is not ASCII text")
}

fn parse_i64(raw: &[u8]) -> Result<i64> {
    ascii(raw)?
        .parse::<i64>()
        .context("integer value does not parse as a 64-bit integer")
}

fn unsigned_value(raw: &[u8]) -> Result<Value> {
    let n: u64 = ascii(raw)?
        .parse()
        .context("BIGINT UNSIGNED value does not parse")?;
    Ok(match i64::try_from(n) {
        Ok(small) => Value::Integer(small),
        Err(_) => Value::text(n.to_string()),
    })
}

/// Copy sends MySQL's text (`1.1`), the binlog path Go's `%E` of the exact value (`1.1E+00`).
/// DOUBLE text round-trips exactly in both. FLOAT does not: MySQL prints a FLOAT with 6
/// significant digits (or `D` decimals for `FLOAT(M,D)`), so the copy of 16777216 reads
/// `16777200` while the binlog sends the exact float32. Both phases therefore store the value
/// MySQL shows in `SELECT`: the float32, printed as MySQL prints it, read back as a double.
/// (Checked against MySQL 9.7's `SELECT` for 3,000 random float32 bit patterns, subnormals and
/// extremes included, while designing it; `tests/e2e/fidelity.rs` checks 300 of them and the
/// hard cases by copy and by binlog on every CI run.) Negative zero is stored as zero, as MySQL
/// prints it.
fn parse_float(col: &ColumnType, raw: &[u8]) -> Result<f64> {
    let text = ascii(raw)?;
    if col.vitess_type != vtype::FLOAT32 {
        let double: f64 = text.parse().context("DOUBLE value does not parse")?;
        return Ok(double);
    }
    let single: f32 = text.parse().context("FLOAT value does not parse")?;
    let wide = f64::from(single);
    let shown = match float_decimals(&col.column_type) {
        Some(decimals) => format!("{wide:.decimals$}"),
        None => format!("{wide:.5e}"),
    };
    let value: f64 = shown.parse().context("FLOAT value does not widen")?;
    Ok(if value == 0.0 { 0.0 } else { value })
}

/// `D` of `float(M,D)` (MySQL then prints D decimals); None for a plain `float`.
fn float_decimals(column_type: &str) -> Option<usize> {
    let (_, rest) = column_type.split_once('(')?;
    let (_, decimals) = rest.split_once(',')?;
    let decimals = decimals.split(')').next()?.trim().parse::<usize>().ok()?;
    // MySQL allows at most 30 decimals; anything else is not a column type we know.
    (decimals <= 30).then_some(decimals)
}

fn text_value(col: &ColumnType, raw: Raw<'_>) -> Result<Value> {
    use vtype::*;
    let bytes = raw.bytes();
    if !col.enum_set_strings && matches!(col.vitess_type, ENUM | SET) {
        if let Some(text) = enum_set_from_index(col, bytes)? {
            return Ok(Value::text(text));
        }
    }
    if col.vitess_type == JSON {
        return Ok(Value::text(json::mysql_text(bytes)?));
    }
    // UTF-8 (and ASCII in a Latin-1 column) is stored as it arrived: checked, not transcoded.
    if bytes.is_ascii() || (!is_latin1(col.collation) && std::str::from_utf8(bytes).is_ok()) {
        return Ok(Value::Text(raw.chunk()));
    }
    Ok(Value::text(decode_text(col.collation, bytes)?))
}

/// Latin-1 collations: MySQL's "latin1" is Windows-1252.
fn is_latin1(collation: u32) -> bool {
    matches!(collation, 5 | 8 | 15 | 31 | 47 | 48 | 49 | 94)
}

/// Text in the column's charset, as UTF-8.
pub fn decode_text(collation: u32, raw: &[u8]) -> Result<String> {
    if is_latin1(collation) {
        return Ok(raw.iter().map(|&b| cp1252_char(b)).collect());
    }
    String::from_utf8(raw.to_vec())
        .map_err(|_| anyhow::anyhow!("text value is not valid UTF-8 for collation {collation}"))
}

fn cp1252_char(b: u8) -> char {
    const HIGH: [u16; 32] = [
        0x20AC, 0x81, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
        0x2039, 0x0152, 0x8D, 0x017D, 0x8F, 0x90, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013,
        0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x9D, 0x017E, 0x0178,
    ];
    match b {
        0x80..=0x9F => char::from_u32(u32::from(HIGH[usize::from(b - 0x80)])).unwrap_or('\u{FFFD}'),
        _ => char::from(b),
    }
}

/// Old servers (≤ v19) send ENUM as a 1-based index and SET as a bitmask during replication.
fn enum_set_from_index(col: &ColumnType, raw: &[u8]) -> Result<Option<String>> {
    let Ok(number) = ascii(raw)?.parse::<u64>() else {
        return Ok(None);
    };
    let members = enum_members(&col.column_type);
    if members.is_empty() {
        bail!("ENUM/SET index without a member list in the column type");
    }
    if col.vitess_type == vtype::ENUM {
        let index = usize::try_from(number).unwrap_or(usize::MAX);
        return Ok(Some(match index {
            0 => String::new(),
            i => members
                .get(i - 1)
                .cloned()
                .context("ENUM index out of range")?,
        }));
    }
    let chosen: Vec<&str> = (0..members.len().min(64))
        .filter(|bit| number & (1u64 << bit) != 0)
        .map(|bit| members[bit].as_str())
        .collect();
    Ok(Some(chosen.join(",")))
}

/// Members of `enum('a','b''c')` / `set(...)`.
pub fn enum_members(column_type: &str) -> Vec<String> {
    let Some(open) = column_type.find('(') else {
        return Vec::new();
    };
    // The closing parenthesis is searched after the opening one: `)(` must not slice backwards.
    let rest = &column_type[open + 1..];
    let body = &rest[..rest.rfind(')').unwrap_or(rest.len())];
    let mut members = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut member = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    member.push('\'');
                    continue;
                }
                break;
            }
            member.push(c);
        }
        members.push(member);
    }
    members
}

#[cfg(test)]
#[path = "value_tests.rs"]
mod tests;
