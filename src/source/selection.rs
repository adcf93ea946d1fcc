//! What one mirror holds: one keyspace, several, or every keyspace vtgate serves; optionally
//! only some shards of a single keyspace (a key-range mirror); and which tables.
//!
//! Why one VStream for several keyspaces is still exactly once: every source transaction
//! belongs to one shard of one keyspace, and the VGtid vtgate sends after it names every
//! shard of every keyspace in the stream. Committing that VGtid with the transaction's rows
//! (invariant 1) therefore covers all keyspaces at once, exactly as it covers several shards of
//! one keyspace; there is no cross-keyspace atomicity to keep because the source has none.
//!
//! Key-range mirrors use Vitess's own sharding: a VGtid naming only some shards makes vtgate
//! stream (and copy) only those, and a later reshard replaces them by shards covering the same
//! key range (checked by `position_check`). Several mirrors whose shard lists partition the key
//! space together hold the whole keyspace, each row in exactly one of them.

use std::collections::BTreeSet;

use anyhow::{bail, Result};

use crate::source::naming::Naming;
use crate::source::proto::binlogdata::{ShardGtid, VGtid};

/// The `--keyspace` value that means every keyspace vtgate serves.
pub const EVERY: &str = "*";

/// The keyspaces of one mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keyspaces {
    /// Sorted and distinct, at least one.
    Named(Vec<String>),
    /// Every keyspace vtgate serves when the mirror starts (vtgate's `/.*` keyspace pattern).
    Every,
}

impl Keyspaces {
    /// From `--keyspace` values (repeatable, comma-separated, `*` alone for every keyspace).
    pub fn parse(args: &[String]) -> Result<Self> {
        let names: Vec<&str> = args
            .iter()
            .flat_map(|a| a.split(','))
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect();
        if names.contains(&EVERY) {
            if names.len() > 1 {
                bail!("--keyspace '*' means every keyspace; it cannot be combined with names");
            }
            return Ok(Keyspaces::Every);
        }
        if names.is_empty() {
            bail!("--keyspace is empty: name a keyspace, several (a,b), or '*' for every keyspace");
        }
        for name in &names {
            check_keyspace_name(name)?;
        }
        let set: BTreeSet<String> = names.iter().map(|n| n.to_string()).collect();
        Ok(Keyspaces::Named(set.into_iter().collect()))
    }

    /// The keyspace of a single-keyspace mirror.
    pub fn single(&self) -> Option<&str> {
        match self {
            Keyspaces::Named(names) if names.len() == 1 => Some(&names[0]),
            _ => None,
        }
    }

    /// Bare table names for one keyspace, `keyspace.table` for several.
    pub fn naming(&self) -> Naming {
        match self.single() {
            Some(keyspace) => Naming::Bare(keyspace.to_string()),
            None => Naming::Qualified,
        }
    }

    pub fn contains(&self, keyspace: &str) -> bool {
        match self {
            Keyspaces::Named(names) => names.iter().any(|n| n == keyspace),
            Keyspaces::Every => true,
        }
    }

    /// `commerce`, `commerce,customer` or `*`.
    pub fn label(&self) -> String {
        match self {
            Keyspaces::Named(names) => names.join(","),
            Keyspaces::Every => EVERY.to_string(),
        }
    }
}

/// Keyspaces, shards and the tables chosen by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub keyspaces: Keyspaces,
    /// Shards of the single keyspace to mirror (empty = all of them).
    pub shards: Vec<String>,
    /// Mirror table names chosen with `--tables` (empty = every table the rules match).
    pub tables: Vec<String>,
}

impl Selection {
    /// Validates `--keyspace`, `--shards` and `--tables`.
    pub fn parse(keyspaces: &[String], shards: &[String], tables: &[String]) -> Result<Self> {
        let keyspaces = Keyspaces::parse(keyspaces)?;
        let shards: Vec<String> = shards
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if !shards.is_empty() {
            if keyspaces.single().is_none() {
                bail!(
                    "--shards selects shards of one keyspace; give exactly one --keyspace with it"
                );
            }
            crate::source::key_range::check_disjoint_shards(&shards)?;
        }
        let naming = keyspaces.naming();
        let mut chosen = Vec::new();
        for table in tables.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            if naming == Naming::Qualified {
                let Some((keyspace, _)) = table.split_once('.') else {
                    bail!("table {table:?}: with several keyspaces, name tables as keyspace.table");
                };
                if !keyspaces.contains(keyspace) {
                    bail!("table {table:?} names keyspace {keyspace:?}, which --keyspace does not select");
                }
            }
            if !chosen.iter().any(|c| c == table) {
                chosen.push(table.to_string());
            }
        }
        Ok(Selection {
            keyspaces,
            shards,
            tables: chosen,
        })
    }

    /// A single keyspace, all shards, every table the rules match.
    pub fn keyspace(name: &str) -> Self {
        Selection {
            keyspaces: Keyspaces::Named(vec![name.to_string()]),
            shards: Vec::new(),
            tables: Vec::new(),
        }
    }

    pub fn naming(&self) -> Naming {
        self.keyspaces.naming()
    }

    /// What the mirror file records as its source: `commerce`, `a,b`, `*`, or
    /// `things/-80,80-` for a key-range mirror.
    pub fn label(&self) -> String {
        match self.shards.is_empty() {
            true => self.keyspaces.label(),
            false => format!("{}/{}", self.keyspaces.label(), self.shards.join(",")),
        }
    }

    /// The position of a fresh mirror: copy (`""`) or `current`, for every selected keyspace
    /// or the selected shards.
    pub fn fresh(&self, gtid: &str) -> VGtid {
        let entry = |keyspace: &str, shard: &str| ShardGtid {
            keyspace: keyspace.to_string(),
            shard: shard.to_string(),
            gtid: gtid.to_string(),
            table_p_ks: Vec::new(),
        };
        let shard_gtids = match &self.keyspaces {
            // vtgate expands a `/regex` keyspace only in a one-entry VGtid (resolveParams).
            Keyspaces::Every => vec![entry("/.*", "")],
            Keyspaces::Named(names) if self.shards.is_empty() => {
                names.iter().map(|k| entry(k, "")).collect()
            }
            Keyspaces::Named(names) => self.shards.iter().map(|s| entry(&names[0], s)).collect(),
        };
        VGtid { shard_gtids }
    }

    /// Mirror table names the decoder keeps when `--tables` names tables of several
    /// keyspaces (a filter rule applies in every keyspace, so it may match more).
    pub fn kept_tables(&self) -> Option<BTreeSet<String>> {
        (self.naming() == Naming::Qualified && !self.tables.is_empty())
            .then(|| self.tables.iter().cloned().collect())
    }

    /// The bare table names `--tables` asks vtgate for.
    pub fn bare_tables(&self) -> Vec<String> {
        let naming = self.naming();
        let mut bare: Vec<String> = Vec::new();
        for table in &self.tables {
            let name = naming.split_table(table).map_or(table.as_str(), |(_, t)| t);
            if !bare.iter().any(|b| b == name) {
                bare.push(name.to_string());
            }
        }
        bare
    }
}

/// The `sync` flags that select what a mirror with source label `label` holds.
pub fn source_flags(label: &str) -> String {
    let quoted = |text: &str| match text.contains('*') {
        true => format!("'{text}'"),
        false => text.to_string(),
    };
    match label.split_once('/') {
        Some((keyspace, shards)) => format!("--keyspace {keyspace} --shards {shards}"),
        None => format!("--keyspace {}", quoted(label)),
    }
}

/// A keyspace name as Vitess allows it (`topo.ValidateKeyspaceName`): 1–64 letters, digits,
/// `-` and `_`. Other patterns (`/.*`) would reach vtgate as a regex or a name it cannot find.
pub fn check_keyspace_name(name: &str) -> Result<()> {
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        bail!(
            "--keyspace {name:?} is not a keyspace name: give keyspace names (letters, digits, \
             '-' and '_'), comma-separated, or '*' for every keyspace"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keyspaces_are_repeatable_comma_separated_sorted_and_distinct() {
        let k = Keyspaces::parse(&args(&["customer,commerce", "commerce"])).unwrap();
        assert_eq!(k, Keyspaces::Named(args(&["commerce", "customer"])));
        assert_eq!(k.naming(), Naming::Qualified);
        assert_eq!(k.label(), "commerce,customer");
        let one = Keyspaces::parse(&args(&["commerce"])).unwrap();
        assert_eq!(one.naming(), Naming::Bare("commerce".into()));
    }

    #[test]
    fn a_star_means_every_keyspace_and_stands_alone() {
        assert_eq!(Keyspaces::parse(&args(&["*"])).unwrap(), Keyspaces::Every);
        assert!(Keyspaces::parse(&args(&["*", "commerce"])).is_err());
        let every = Selection::parse(&args(&["*"]), &[], &[]).unwrap();
        let fresh = every.fresh("");
        assert_eq!(fresh.shard_gtids.len(), 1);
        assert_eq!(fresh.shard_gtids[0].keyspace, "/.*");
    }

    #[test]
    fn a_keyspace_pattern_or_odd_name_is_refused_before_connecting() {
        for bad in ["", "/.*", "comm erce", "a.b", &"k".repeat(65)] {
            let err = Keyspaces::parse(&args(&[bad])).unwrap_err().to_string();
            assert!(
                err.contains("is not a keyspace name") || err.contains("is empty"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn several_keyspaces_need_qualified_table_names_of_selected_keyspaces() {
        let ks = args(&["commerce,customer"]);
        assert!(Selection::parse(&ks, &[], &args(&["customer"])).is_err());
        assert!(Selection::parse(&ks, &[], &args(&["lookup.t"])).is_err());
        let s =
            Selection::parse(&ks, &[], &args(&["commerce.customer", "customer.customer"])).unwrap();
        assert_eq!(s.bare_tables(), args(&["customer"]));
        assert_eq!(s.kept_tables().unwrap().len(), 2);
    }

    #[test]
    fn shards_select_a_key_range_of_one_keyspace() {
        let s = Selection::parse(&args(&["things"]), &args(&["80-", "-80"]), &[]).unwrap();
        assert_eq!(s.label(), "things/80-,-80");
        assert_eq!(
            source_flags(&s.label()),
            "--keyspace things --shards 80-,-80"
        );
        assert_eq!(source_flags("*"), "--keyspace '*'");
        let fresh = s.fresh("");
        assert_eq!(fresh.shard_gtids.len(), 2);
        assert!(fresh.shard_gtids.iter().all(|g| g.keyspace == "things"));
        assert!(Selection::parse(&args(&["a,b"]), &args(&["-80"]), &[]).is_err());
        let overlap = Selection::parse(&args(&["things"]), &args(&["-80", "-40"]), &[]);
        assert!(overlap.unwrap_err().to_string().contains("overlap"));
        let bad = Selection::parse(&args(&["things"]), &args(&["zz-"]), &[]);
        assert!(bad.unwrap_err().to_string().contains("not a key range"));
    }
}
