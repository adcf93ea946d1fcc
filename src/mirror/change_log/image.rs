//! Row images as the change log stores them: every column of the table at the time, in
//! column order, each a tag byte and its bytes (0 NULL; 1 integer, 8 bytes little-endian;
//! 2 real, 8 bytes; 3 text and 4 blob, a 4-byte little-endian length and the bytes). The
//! writer copies SQLite's values as they are, with no text encoding on its thread; the
//! reader (`vtmirror changes`) turns them into JSON.

use anyhow::{bail, Context, Result};
use base64::Engine;
use rusqlite::types::ValueRef;
use serde_json::Value as Json;

const NULL: u8 = 0;
const INTEGER: u8 = 1;
const REAL: u8 = 2;
const TEXT: u8 = 3;
const BLOB: u8 = 4;

/// Appends one value.
pub fn push(value: ValueRef<'_>, out: &mut Vec<u8>) {
    match value {
        ValueRef::Null => out.push(NULL),
        ValueRef::Integer(i) => {
            out.push(INTEGER);
            out.extend_from_slice(&i.to_le_bytes());
        }
        ValueRef::Real(r) => {
            out.push(REAL);
            out.extend_from_slice(&r.to_le_bytes());
        }
        ValueRef::Text(bytes) => push_bytes(TEXT, bytes, out),
        ValueRef::Blob(bytes) => push_bytes(BLOB, bytes, out),
    }
}

fn push_bytes(tag: u8, bytes: &[u8], out: &mut Vec<u8>) {
    out.push(tag);
    // SQLite's own limit on a value (SQLITE_MAX_LENGTH) is below 2^31.
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// One decoded value: its JSON form and whether it was binary (then base64).
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub json: Json,
    pub binary: bool,
}

/// The values of an image, in column order. A malformed image is an error, never a panic.
pub fn decode(mut bytes: &[u8]) -> Result<Vec<Decoded>> {
    let mut values = Vec::new();
    while let Some((&tag, rest)) = bytes.split_first() {
        let (value, rest) = match tag {
            NULL => (plain(Json::Null), rest),
            INTEGER => {
                let (raw, rest) = take::<8>(rest)?;
                (plain(Json::from(i64::from_le_bytes(raw))), rest)
            }
            REAL => {
                let (raw, rest) = take::<8>(rest)?;
                let real = f64::from_le_bytes(raw);
                let number = serde_json::Number::from_f64(real).map_or(Json::Null, Json::Number);
                (plain(number), rest)
            }
            TEXT | BLOB => {
                let (len, rest) = take::<4>(rest)?;
                let len = u32::from_le_bytes(len) as usize;
                let Some((data, rest)) = rest.split_at_checked(len) else {
                    bail!("a change log image is cut short");
                };
                (bytes_value(tag, data)?, rest)
            }
            other => bail!("a change log image holds an unknown value tag {other}"),
        };
        values.push(value);
        bytes = rest;
    }
    Ok(values)
}

fn plain(json: Json) -> Decoded {
    Decoded {
        json,
        binary: false,
    }
}

fn bytes_value(tag: u8, data: &[u8]) -> Result<Decoded> {
    if tag == TEXT {
        let text = std::str::from_utf8(data).context("a change log text value is not UTF-8")?;
        return Ok(plain(Json::String(text.to_string())));
    }
    Ok(Decoded {
        json: Json::String(base64::engine::general_purpose::STANDARD.encode(data)),
        binary: true,
    })
}

fn take<const N: usize>(bytes: &[u8]) -> Result<([u8; N], &[u8])> {
    let Some((head, rest)) = bytes.split_first_chunk::<N>() else {
        bail!("a change log image is cut short");
    };
    Ok((*head, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sqlite_value_round_trips_with_binary_as_base64() {
        let mut image = Vec::new();
        push(ValueRef::Null, &mut image);
        push(ValueRef::Integer(i64::MIN), &mut image);
        push(ValueRef::Real(2.5), &mut image);
        push(ValueRef::Text("naïve".as_bytes()), &mut image);
        push(ValueRef::Blob(&[0, 255, 1]), &mut image);
        let json: Vec<_> = decode(&image)
            .unwrap()
            .into_iter()
            .map(|d| d.json)
            .collect();
        let expected = serde_json::json!([null, i64::MIN, 2.5, "naïve", "AP8B"]);
        assert_eq!(Json::Array(json), expected);
        assert!(decode(&image).unwrap()[4].binary);
    }

    #[test]
    fn a_cut_or_unknown_image_is_an_error_not_a_panic() {
        let mut image = Vec::new();
        push(ValueRef::Text(b"abcdef"), &mut image);
        for end in 0..image.len() {
            let cut = decode(&image[..end]);
            assert!(end == 0 || cut.is_err(), "cut at {end} must fail");
        }
        assert!(decode(&[9]).is_err());
        assert!(decode(&[TEXT, 255, 255, 255, 255]).is_err());
    }
}
