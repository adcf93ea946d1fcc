//! MySQL 5.6+ GTID sets as Vitess writes positions (`MySQL56/uuid:1-5:7,uuid2:1-9`), parsed
//! only to tell whether a shard's position moved forwards: a later position of the same
//! shard contains the earlier one (a server's executed set only grows, and a replica
//! promoted by a reparent carries its primary's set).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

/// Flavor prefix of MySQL GTID-set positions.
pub const MYSQL56_FLAVOR: &str = "MySQL56/";

/// A GTID set: source id (uuid, or `uuid:tag` on MySQL 8.4) → sorted, merged, inclusive
/// transaction number intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    sources: BTreeMap<String, Vec<(u64, u64)>>,
}

impl GtidSet {
    /// The set of a Vitess position; `None` for positions that are not MySQL GTID sets
    /// (another flavor, `current`, or empty: nothing to compare).
    pub fn from_position(position: &str) -> Result<Option<GtidSet>> {
        match position.strip_prefix(MYSQL56_FLAVOR) {
            Some(set) => GtidSet::parse(set).map(Some),
            None => Ok(None),
        }
    }

    /// Parses `uuid:1-5:7,uuid2:1-9` (whitespace around elements is ignored, as MySQL
    /// prints newlines after the commas).
    pub fn parse(text: &str) -> Result<GtidSet> {
        let mut set = GtidSet::default();
        for element in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = element.split(':').map(str::trim);
            let uuid = normalized_uuid(parts.next().unwrap_or_default())
                .with_context(|| format!("GTID set element {element:?} has no valid uuid"))?;
            let mut source = uuid.clone();
            let mut intervals = 0;
            for part in parts {
                if part.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                    // A MySQL 8.4 tag: the intervals after it belong to `uuid:tag`.
                    source = format!("{uuid}:{}", part.to_ascii_lowercase());
                    continue;
                }
                let range = interval(part).with_context(|| {
                    format!("GTID set element {element:?} has an invalid interval")
                })?;
                set.sources.entry(source.clone()).or_default().push(range);
                intervals += 1;
            }
            if intervals == 0 {
                bail!("GTID set element {element:?} has no interval");
            }
        }
        set.sources.retain(|_, v| !v.is_empty());
        for intervals in set.sources.values_mut() {
            merge(intervals);
        }
        Ok(set)
    }

    /// True when every transaction of `other` is in `self`.
    pub fn contains(&self, other: &GtidSet) -> bool {
        other.sources.iter().all(|(source, wanted)| {
            let Some(have) = self.sources.get(source) else {
                return false;
            };
            wanted.iter().all(|&(lo, hi)| {
                // Merged intervals: the one starting at or before `lo` is the only candidate.
                let i = have.partition_point(|&(start, _)| start <= lo);
                i > 0 && have[i - 1].1 >= hi
            })
        })
    }
}

impl GtidSet {
    /// Every transaction of `self` or `other`.
    pub fn union(&self, other: &GtidSet) -> GtidSet {
        let mut out = self.clone();
        for (source, intervals) in &other.sources {
            let mine = out.sources.entry(source.clone()).or_default();
            mine.extend_from_slice(intervals);
            merge(mine);
        }
        out
    }

    /// The set as a Vitess position: `MySQL56/uuid:1-5:7,uuid2:1-9`.
    pub fn to_position(&self) -> String {
        let elements: Vec<String> = (self.sources.iter())
            .map(|(source, intervals)| {
                let ranges: Vec<String> = (intervals.iter())
                    .map(|&(lo, hi)| match lo == hi {
                        true => lo.to_string(),
                        false => format!("{lo}-{hi}"),
                    })
                    .collect();
                format!("{source}:{}", ranges.join(":"))
            })
            .collect();
        format!("{MYSQL56_FLAVOR}{}", elements.join(","))
    }
}

/// A uuid as 32 lowercase hex digits in the canonical 8-4-4-4-12 form.
fn normalized_uuid(text: &str) -> Option<String> {
    let hex: String = text.chars().filter(|&c| c != '-').collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// `a-b` or `a` (1 ≤ a ≤ b).
fn interval(text: &str) -> Result<(u64, u64)> {
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let lo: u64 = lo.trim().parse().context("not a transaction number")?;
    let hi: u64 = hi.trim().parse().context("not a transaction number")?;
    if lo == 0 || hi < lo {
        bail!("interval bounds out of order or zero");
    }
    Ok((lo, hi))
}

/// Sorts intervals and merges overlapping or adjacent ones.
fn merge(intervals: &mut Vec<(u64, u64)>) {
    intervals.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(intervals.len());
    for &(lo, hi) in intervals.iter() {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    *intervals = merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_union_is_written_back_as_a_position_that_parses_to_itself() {
        let a = GtidSet::from_position(&format!("MySQL56/{A}:1-5:9"))
            .unwrap()
            .unwrap();
        let b = GtidSet::from_position(&format!("MySQL56/{A}:6-7,{B}:3"))
            .unwrap()
            .unwrap();
        let both = a.union(&b);
        assert_eq!(both.to_position(), format!("MySQL56/{A}:1-7:9,{B}:3"));
        assert_eq!(
            GtidSet::from_position(&both.to_position()).unwrap(),
            Some(both.clone())
        );
        assert!(both.contains(&a) && both.contains(&b));
    }

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "9f7c1b2a-0000-4000-8000-00000000beef";

    fn set(text: &str) -> GtidSet {
        GtidSet::parse(text).unwrap()
    }

    #[test]
    fn a_later_position_contains_the_earlier_one() {
        assert!(set(&format!("{A}:1-9")).contains(&set(&format!("{A}:1-5"))));
        assert!(set(&format!("{A}:1-5:6-9,{B}:1")).contains(&set(&format!("{A}:2-8"))));
        assert!(set(&format!("{A}:1-5")).contains(&GtidSet::default()));
    }

    #[test]
    fn a_smaller_or_different_set_does_not_contain_the_earlier_one() {
        assert!(!set(&format!("{A}:1-4")).contains(&set(&format!("{A}:1-5"))));
        assert!(!set(&format!("{A}:1-3:5-9")).contains(&set(&format!("{A}:1-9"))));
        assert!(!set(&format!("{B}:1-99")).contains(&set(&format!("{A}:1"))));
    }

    #[test]
    fn mysql_formatting_variants_parse_alike() {
        let plain = set(&format!("{A}:1-5:6-7,{B}:3"));
        let spaced = set(&format!(
            " {},\n{B}:3-3:1-7:2 ",
            format!("{A}:1-7").to_uppercase()
        ));
        assert!(plain.contains(&set(&format!("{A}:1-7"))));
        assert!(spaced.contains(&plain));
        let tagged = set(&format!("{A}:1-3:batch:1-2"));
        assert!(!tagged.contains(&set(&format!("{A}:4"))));
        assert!(tagged.contains(&set(&format!("{A}:batch:2"))));
    }

    #[test]
    fn positions_of_other_flavors_are_not_compared_and_garbage_is_an_error() {
        assert_eq!(GtidSet::from_position("current").unwrap(), None);
        assert_eq!(GtidSet::from_position("MariaDB/0-1-5").unwrap(), None);
        assert_eq!(
            GtidSet::from_position("MySQL56/").unwrap(),
            Some(GtidSet::default())
        );
        for bad in [
            "nouuid:1-5",
            &format!("{A}:5-1"),
            &format!("{A}:0"),
            A,
            &format!("{A}:x-"),
        ] {
            assert!(GtidSet::parse(bad).is_err(), "{bad}");
        }
    }
}
