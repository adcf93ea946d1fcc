//! Checks every VGTID event before it can become the checkpoint: it names only the mirrored
//! keyspace; its shards cover the same key range as the stream's shards so far, without
//! overlap; and each shard's GTID set contains the one it had before.
//!
//! The shard set may change: after a reshard vtgate swaps the old shards for the new ones
//! in the next VGTID without telling the client (it does not forward JOURNAL events), and
//! the new shards cover exactly the key range of the ones they replace. A shard outside
//! that range, or one overlapping another, is never legitimate.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::source::gtid_set::GtidSet;
use crate::source::proto::binlogdata::VGtid;

/// One bound of a key range: hex keyspace-id bytes without trailing zero bytes.
type Bound = Vec<u8>;

/// `[start, end)`; `end == None` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct KeyRange {
    start: Bound,
    end: Option<Bound>,
}

/// The stream's position as the VGTID events so far told it.
#[derive(Debug, Default)]
pub struct PositionCheck {
    keyspace: String,
    /// Shard → GTID of the last accepted VGTID (or of the start position).
    shards: BTreeMap<String, String>,
}

impl PositionCheck {
    pub fn new(keyspace: &str) -> Self {
        PositionCheck {
            keyspace: keyspace.to_string(),
            shards: BTreeMap::new(),
        }
    }

    /// Takes the start position as the baseline when it names concrete shards (a fresh
    /// start names none: vtgate resolves the keyspace's shards itself).
    pub fn starting_at(&mut self, start: &VGtid) {
        if start.shard_gtids.iter().all(|s| !s.shard.is_empty()) {
            self.shards = start
                .shard_gtids
                .iter()
                .map(|s| (s.shard.clone(), s.gtid.clone()))
                .collect();
        }
    }

    /// Accepts `next` as the stream's position, or says what is wrong with it.
    pub fn accept(&mut self, next: &VGtid) -> Result<()> {
        if next.shard_gtids.is_empty() {
            bail!("VGTID event names no shard");
        }
        let mut shards = BTreeMap::new();
        for s in &next.shard_gtids {
            if s.keyspace != self.keyspace {
                bail!(
                    "VGTID event names keyspace {:?}, but this mirror streams keyspace {:?}",
                    s.keyspace,
                    self.keyspace
                );
            }
            if shards.insert(s.shard.clone(), s.gtid.clone()).is_some() {
                bail!("VGTID event names shard {:?} twice", s.shard);
            }
        }
        // Nearly every VGTID (one per transaction) names the same shards as the one before:
        // their key ranges were checked then.
        if !shards.keys().eq(self.shards.keys()) {
            let covered = coverage(shards.keys())?;
            if !self.shards.is_empty() && covered != coverage(self.shards.keys())? {
                bail!(
                    "VGTID event names shards {} where the stream had {}: not the same key range, so not a reshard",
                    names(&shards),
                    names(&self.shards)
                );
            }
        }
        for (shard, gtid) in &shards {
            if let Some(before) = self.shards.get(shard) {
                check_forwards(shard, before, gtid)?;
            }
        }
        self.shards = shards;
        Ok(())
    }
}

fn names(shards: &BTreeMap<String, String>) -> String {
    let list: Vec<&str> = shards.keys().map(String::as_str).collect();
    format!("[{}]", list.join(", "))
}

/// A shard's new GTID set must contain its previous one (other flavors are not compared).
fn check_forwards(shard: &str, before: &str, after: &str) -> Result<()> {
    let Ok(Some(old)) = GtidSet::from_position(before) else {
        return Ok(());
    };
    let new = GtidSet::from_position(after)
        .with_context(|| format!("VGTID event has an unreadable position for shard {shard}"))?;
    match new {
        Some(new) if new.contains(&old) => Ok(()),
        Some(_) => bail!(
            "VGTID event moves shard {shard} backwards: its GTID set {after:?} does not contain the previous {before:?}"
        ),
        None => bail!(
            "VGTID event replaces the GTID set of shard {shard} by {after:?}, which is not a MySQL GTID set"
        ),
    }
}

/// The key ranges the shards cover, merged; an error if two overlap.
fn coverage<'a>(shards: impl Iterator<Item = &'a String>) -> Result<Vec<KeyRange>> {
    let mut ranges: Vec<(KeyRange, &str)> = shards
        .map(|s| Ok((key_range(s)?, s.as_str())))
        .collect::<Result<_>>()?;
    ranges.sort();
    let mut merged: Vec<KeyRange> = Vec::new();
    let mut last_name = "";
    for (range, name) in ranges {
        match merged.last_mut() {
            Some(last) if last.end.as_ref().is_none_or(|end| range.start < *end) => {
                bail!("VGTID event names shards {last_name} and {name}, whose key ranges overlap")
            }
            Some(last) if last.end.as_ref() == Some(&range.start) => last.end = range.end,
            _ => merged.push(range),
        }
        last_name = name;
    }
    Ok(merged)
}

/// `-80` → [min, 0x80); `80-` → [0x80, max); a name without `-` (`0`) is the whole range.
fn key_range(shard: &str) -> Result<KeyRange> {
    if shard.is_empty() {
        bail!("VGTID event names an empty shard");
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

#[cfg(test)]
#[path = "position_check_tests.rs"]
mod tests;
