//! Vitess type + wire bytes → SQLite value, one lossless policy per type.
//!
//! The same source value must give the same SQLite value whichever phase delivered it
//! (copy sends MySQL text, the binlog path sends Vitess's own formatting, e.g. `1.5E+00`).

use anyhow::{bail, Context, Result};
use rusqlite::types::Value;

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
pub fn to_sql(col: &ColumnType, raw: Option<&[u8]>) -> Result<Value> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    match storage_for(col.vitess_type, col.collation) {
        Storage::Integer => Ok(Value::Integer(parse_i64(raw)?)),
        Storage::IntegerOrText => unsigned_value(raw),
        Storage::Real => Ok(Value::Real(parse_float(col.vitess_type, raw)?)),
        Storage::Blob => Ok(Value::Blob(raw.to_vec())),
        Storage::Text => text_value(col, raw),
    }
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
        Err(_) => Value::Text(n.to_string()),
    })
}

/// Copy sends MySQL's text (`1.1`), the binlog path Go's `%E` (`1.1E+00`). FLOAT is parsed as
/// f32 and widened through its shortest decimal form, so both phases store the same f64.
fn parse_float(vitess_type: i32, raw: &[u8]) -> Result<f64> {
    let text = ascii(raw)?;
    if vitess_type == vtype::FLOAT32 {
        let single: f32 = text.parse().context("FLOAT value does not parse")?;
        return format!("{single}")
            .parse()
            .context("FLOAT value does not widen");
    }
    text.parse().context("DOUBLE value does not parse")
}

fn text_value(col: &ColumnType, raw: &[u8]) -> Result<Value> {
    use vtype::*;
    if !col.enum_set_strings && matches!(col.vitess_type, ENUM | SET) {
        if let Some(text) = enum_set_from_index(col, raw)? {
            return Ok(Value::Text(text));
        }
    }
    Ok(Value::Text(decode_text(col.collation, raw)?))
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
mod tests {
    use super::*;

    fn col(vitess_type: i32) -> ColumnType {
        ColumnType {
            vitess_type,
            collation: 255,
            column_type: String::new(),
            enum_set_strings: true,
        }
    }

    #[test]
    fn unsigned_bigint_above_i64_is_kept_as_exact_text() {
        let v = to_sql(&col(vtype::UINT64), Some(b"18446744073709551615")).unwrap();
        assert_eq!(v, Value::Text("18446744073709551615".into()));
        let v = to_sql(&col(vtype::UINT64), Some(b"7")).unwrap();
        assert_eq!(v, Value::Integer(7));
    }

    #[test]
    fn floats_from_copy_and_binlog_phases_store_the_same_value() {
        for (copy, binlog) in [("1.1", "1.1E+00"), ("1e20", "1E+20"), ("-0.5", "-5E-01")] {
            for t in [vtype::FLOAT32, vtype::FLOAT64] {
                let a = to_sql(&col(t), Some(copy.as_bytes())).unwrap();
                let b = to_sql(&col(t), Some(binlog.as_bytes())).unwrap();
                assert_eq!(a, b, "{copy} vs {binlog}");
            }
        }
        assert_eq!(
            to_sql(&col(vtype::FLOAT32), Some(b"1.1")).unwrap(),
            Value::Real(1.1)
        );
    }

    #[test]
    fn enum_and_set_indexes_from_old_servers_become_member_strings() {
        let mut c = col(vtype::ENUM);
        c.enum_set_strings = false;
        c.column_type = "enum('small','it''s')".into();
        assert_eq!(to_sql(&c, Some(b"2")).unwrap(), Value::Text("it's".into()));
        assert_eq!(to_sql(&c, Some(b"0")).unwrap(), Value::Text(String::new()));
        c.vitess_type = vtype::SET;
        c.column_type = "set('a','b','c')".into();
        assert_eq!(to_sql(&c, Some(b"5")).unwrap(), Value::Text("a,c".into()));
    }

    #[test]
    fn latin1_text_is_transcoded_and_binary_text_stays_bytes() {
        let mut c = col(vtype::VARCHAR);
        c.collation = 8;
        assert_eq!(
            to_sql(&c, Some(b"caf\xe9 \x80")).unwrap(),
            Value::Text("café €".into())
        );
        c.collation = BINARY_COLLATION;
        assert_eq!(to_sql(&c, Some(b"\xff")).unwrap(), Value::Blob(vec![0xff]));
    }

    #[test]
    fn member_lists_with_stray_parentheses_are_read_without_panicking() {
        // Found by tests/fuzz_decoder.rs: `)` before `(` sliced backwards.
        // An unterminated quote after `(` reads as one empty member.
        assert_eq!(enum_members("')b('"), vec![String::new()]);
        assert_eq!(enum_members(")enum('a')"), vec!["a".to_string()]);
        let mut c = col(vtype::ENUM);
        c.enum_set_strings = false;
        c.column_type = ")(".into();
        assert!(to_sql(&c, Some(b"1")).is_err());
    }

    #[test]
    fn malformed_numbers_are_errors_not_panics() {
        assert!(to_sql(&col(vtype::INT64), Some(b"12x")).is_err());
        assert!(to_sql(&col(vtype::INT64), Some(b"\xff")).is_err());
        assert!(to_sql(&col(vtype::FLOAT64), Some(b"")).is_err());
        assert!(to_sql(&col(vtype::UINT64), Some(b"-1")).is_err());
    }
}
