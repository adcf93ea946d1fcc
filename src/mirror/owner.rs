//! Which source shard holds each mirrored row, and why the mirror must know.
//!
//! In a sharded keyspace every shard streams on its own and vtgate interleaves the shards'
//! transactions in whatever order they arrive. Two things then break a mirror that applies
//! each change to "the row with this key" regardless of where it came from:
//! - **A row moving between shards.** Vitess cannot UPDATE a primary vindex column, so an
//!   application moves a row to another owner as DELETE + INSERT of the same key; the two
//!   shards' commits reach the stream independently. Applied INSERT first, the DELETE would
//!   remove the moved row.
//! - **Table-level statements run once per shard.** vtgate runs TRUNCATE (DROP, RENAME) on
//!   every shard; each shard's statement affects only the rows that shard holds, but a mirror
//!   that empties the whole table on the first one loses rows another shard wrote after its
//!   own statement.
//!
//! So every mirrored row records its owner, the shard whose stream wrote it last (column
//! `_vtmirror_shard`: the shard's name, NULL for a shard that spans every key, such as an
//! unsharded keyspace's `0`). A shard's change applies to the row it holds; a change that
//! meets a row another shard holds is resolved by `mirror::versions`, which keeps each
//! shard's version of the key until one of them is deleted. A shard's TRUNCATE or DROP
//! affects only rows whose owner's key range overlaps the shard's.
//!
//! Key ranges, not names, decide: after a reshard the new shards (`-40`, `40-80`) inherit the
//! rows their parent (`-80`) wrote, and rows written before a keyspace was sharded (NULL)
//! belong to whichever shard streams them next. That is exact as long as a key lives on one
//! shard at a time, which Vitess's globally unique keys give outside the moves above.

/// The bookkeeping column every mirrored table has; never a source column (the `_vtmirror_`
/// prefix is refused for source names).
pub const OWNER_COLUMN: &str = "_vtmirror_shard";

/// A shard's key range `[start, end)` as bytes; an empty `end` is unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyRange {
    start: Vec<u8>,
    end: Vec<u8>,
}

impl KeyRange {
    /// `-80`, `80-`, `40-80`; None for a range of every key (`-`, `0`, a name without `-`
    /// or with a part that is not hex, which Vitess does not create).
    fn parse(shard: &str) -> Option<KeyRange> {
        let (start, end) = shard.split_once('-')?;
        let range = KeyRange {
            start: hex(start)?,
            end: hex(end)?,
        };
        (!range.start.is_empty() || !range.end.is_empty()).then_some(range)
    }

    fn overlaps(&self, other: &KeyRange) -> bool {
        let below = |start: &[u8], end: &[u8]| end.is_empty() || compare(start, end).is_lt();
        below(&self.start, &other.end) && below(&other.start, &self.end)
    }
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Key bytes compared as Vitess pads them: `80` and `8000` are the same bound.
fn compare(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let trim = |x: &[u8]| x.len() - x.iter().rev().take_while(|&&b| b == 0).count();
    a[..trim(a)].cmp(&b[..trim(b)])
}

/// The owner stored for rows a shard writes: its name, or None (NULL) for a shard spanning
/// every key. `shard_key` is the metadata key (`shard`, or `keyspace/shard`).
pub fn owner_of(shard_key: &str) -> Option<&str> {
    let shard = shard_key.rsplit_once('/').map_or(shard_key, |(_, s)| s);
    KeyRange::parse(shard).map(|_| shard)
}

/// Whether two owners' key ranges share a key (None spans every key).
pub fn overlaps(a: Option<&str>, b: Option<&str>) -> bool {
    match (a.and_then(KeyRange::parse), b.and_then(KeyRange::parse)) {
        (Some(a), Some(b)) => a.overlaps(&b),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_of_one_split_do_not_overlap_and_parents_overlap_their_children() {
        assert!(!overlaps(Some("-80"), Some("80-")));
        assert!(overlaps(Some("-80"), Some("40-80")));
        assert!(overlaps(Some("-40"), Some("-80")));
        assert!(!overlaps(Some("40-80"), Some("80-c0")));
        assert!(overlaps(Some("80-"), Some("c0-")));
    }

    #[test]
    fn a_shard_spanning_every_key_overlaps_every_shard() {
        for whole in [None, Some("0"), Some("-"), Some("main"), Some("zz-yy")] {
            assert!(overlaps(whole, Some("-80")));
            assert!(overlaps(Some("80-"), whole));
        }
        assert_eq!(owner_of("0"), None);
        assert_eq!(owner_of("-"), None);
        assert_eq!(owner_of("commerce/0"), None);
        assert_eq!(owner_of("customer/-80"), Some("-80"));
        assert_eq!(owner_of("80-"), Some("80-"));
    }

    #[test]
    fn key_bounds_compare_as_vitess_pads_them() {
        assert!(!overlaps(Some("-80"), Some("8000-")));
        assert!(overlaps(Some("-8001"), Some("8000-")));
        assert!(!overlaps(Some("-80"), Some("80-80")));
    }
}
