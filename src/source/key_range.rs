//! Shard names as key ranges (`-80`, `80-`, `0`): a set of shards either covers a key range
//! without overlap or is refused. The position check uses it to accept a reshard's new shards
//! only when they cover exactly what the old ones did; the selection uses it for `--shards`.

use anyhow::{bail, Context, Result};

/// One bound of a key range: hex keyspace-id bytes without trailing zero bytes.
type Bound = Vec<u8>;

/// `[start, end)`; `end == None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyRange {
    start: Bound,
    end: Option<Bound>,
}

/// Refuses a `--shards` list whose key ranges overlap or are not key ranges.
pub fn check_disjoint_shards(shards: &[String]) -> Result<()> {
    coverage(shards.iter()).map_err(|e| anyhow::anyhow!("--shards {}: {e:#}", shards.join(",")))?;
    Ok(())
}

/// The key ranges the shards cover, merged; an error if two overlap.
pub fn coverage<'a>(shards: impl Iterator<Item = &'a String>) -> Result<Vec<KeyRange>> {
    let mut ranges: Vec<(KeyRange, &str)> = shards
        .map(|s| Ok((key_range(s)?, s.as_str())))
        .collect::<Result<_>>()?;
    ranges.sort();
    let mut merged: Vec<KeyRange> = Vec::new();
    let mut last_name = "";
    for (range, name) in ranges {
        match merged.last_mut() {
            Some(last) if last.end.as_ref().is_none_or(|end| range.start < *end) => {
                bail!("shards {last_name} and {name} have overlapping key ranges")
            }
            Some(last) if last.end.as_ref() == Some(&range.start) => last.end = range.end,
            _ => merged.push(range),
        }
        last_name = name;
    }
    Ok(merged)
}

/// Whether two shards' key ranges share a key (`wait` asks the serving shards that hold any
/// of a key-range mirror's keys, whatever reshards happened since).
pub fn overlaps(a: &str, b: &str) -> Result<bool> {
    let (a, b) = (key_range(a)?, key_range(b)?);
    let below = |start: &Bound, end: &Option<Bound>| end.as_ref().is_none_or(|end| start < end);
    Ok(below(&a.start, &b.end) && below(&b.start, &a.end))
}

/// `-80` → [min, 0x80); `80-` → [0x80, max); a name without `-` (`0`) is the whole range.
fn key_range(shard: &str) -> Result<KeyRange> {
    if shard.is_empty() {
        bail!("an empty shard name is not a key range");
    }
    let Some((start, end)) = shard.split_once('-') else {
        return Ok(KeyRange {
            start: Vec::new(),
            end: None,
        });
    };
    let start = bound(start).with_context(|| format!("shard name {shard:?} is not a key range"))?;
    let end = match end {
        "" => None,
        hex => {
            Some(bound(hex).with_context(|| format!("shard name {shard:?} is not a key range"))?)
        }
    };
    if end.as_ref().is_some_and(|e| *e <= start) {
        bail!("shard name {shard:?} is an empty key range");
    }
    Ok(KeyRange { start, end })
}

/// Hex bytes; trailing zero bytes do not change a bound (`80` = `8000`).
fn bound(hex: &str) -> Result<Bound> {
    if !hex.len().is_multiple_of(2) {
        bail!("odd number of hex digits");
    }
    let mut bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .context("not hex")
        })
        .collect::<Result<Vec<u8>>>()?;
    while bytes.last() == Some(&0) {
        bytes.pop();
    }
    Ok(bytes)
}
