//! How source tables and shards are named in the mirror file.
//!
//! A mirror of one keyspace keeps bare table names (`customer`), as it always has. A mirror
//! of several keyspaces names every table `keyspace.table` (`"commerce.customer"`): keyspace
//! names cannot contain a dot (Vitess allows letters, digits, `-` and `_`), so the first dot
//! splits the name without ambiguity, two keyspaces may both have a table of the same name,
//! and the name reads like vtgate's own `keyspace.table`. One file keeps one checkpoint
//! committed with the rows (invariant 1), so `sqlite3` alone queries and joins everything.
//!
//! The mirror's metadata keys copy state and table schemas by shard; shard names repeat
//! across keyspaces (`-80`), so in a several-keyspace mirror the shard key is
//! `keyspace/shard`. A single-keyspace mirror's keys are the bare shard names, so files made
//! before several keyspaces existed read unchanged.

use std::borrow::Cow;

/// The naming rule of one mirror file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Naming {
    /// One keyspace: bare table names and shard keys.
    Bare(String),
    /// Several keyspaces: `keyspace.table` and `keyspace/shard`.
    Qualified,
}

impl Naming {
    /// The naming of a mirror whose source label (`Selection::label`) is `label`:
    /// `commerce` or `things/-80` → bare; `a,b` or `*` → qualified.
    pub fn of_label(label: &str) -> Naming {
        let keyspaces = label.split_once('/').map_or(label, |(k, _)| k);
        if keyspaces == "*" || keyspaces.contains(',') {
            Naming::Qualified
        } else {
            Naming::Bare(keyspaces.to_string())
        }
    }

    /// The mirror table of `table` in `keyspace`.
    pub fn table<'a>(&self, keyspace: &str, table: &'a str) -> Cow<'a, str> {
        match self {
            Naming::Bare(_) => Cow::Borrowed(table),
            Naming::Qualified => Cow::Owned(format!("{keyspace}.{table}")),
        }
    }

    /// The metadata key of `shard` in `keyspace`.
    pub fn shard<'a>(&self, keyspace: &str, shard: &'a str) -> Cow<'a, str> {
        match self {
            Naming::Bare(_) => Cow::Borrowed(shard),
            Naming::Qualified => Cow::Owned(format!("{keyspace}/{shard}")),
        }
    }

    /// (keyspace, bare shard) of a metadata shard key; None when a qualified key has no `/`.
    pub fn split_shard<'a>(&'a self, key: &'a str) -> Option<(&'a str, &'a str)> {
        match self {
            Naming::Bare(keyspace) => Some((keyspace.as_str(), key)),
            Naming::Qualified => key.split_once('/'),
        }
    }

    /// (keyspace, bare table) of a mirror table name; None when a qualified name has no dot.
    pub fn split_table<'a>(&'a self, table: &'a str) -> Option<(&'a str, &'a str)> {
        match self {
            Naming::Bare(keyspace) => Some((keyspace.as_str(), table)),
            Naming::Qualified => table.split_once('.'),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_keyspace_keeps_bare_names_and_several_qualify_them() {
        let bare = Naming::Bare("commerce".into());
        assert_eq!(bare.table("commerce", "customer"), "customer");
        assert_eq!(bare.shard("commerce", "-80"), "-80");
        assert_eq!(bare.split_table("a.b"), Some(("commerce", "a.b")));
        let q = Naming::Qualified;
        assert_eq!(q.table("customer", "customer"), "customer.customer");
        assert_eq!(q.shard("customer", "-80"), "customer/-80");
        assert_eq!(
            q.split_table("ks.a.b"),
            Some(("ks", "a.b")),
            "first dot splits"
        );
        assert_eq!(q.split_table("nodot"), None);
        assert_eq!(bare.split_shard("-80"), Some(("commerce", "-80")));
        assert_eq!(q.split_shard("customer/-80"), Some(("customer", "-80")));
        assert_eq!(q.split_shard("-80"), None);
        assert_eq!(
            Naming::of_label("things/-80,80-"),
            Naming::Bare("things".into())
        );
        assert_eq!(Naming::of_label("a,b"), Naming::Qualified);
        assert_eq!(Naming::of_label("*"), Naming::Qualified);
    }
}
