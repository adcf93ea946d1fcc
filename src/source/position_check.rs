//! Checks every VGTID event before it can become the checkpoint: it names only mirrored
//! keyspaces, the same ones throughout; each keyspace's shards cover the same key range as its
//! shards so far, without overlap; and each shard's GTID set contains the one it had before.
//!
//! The shard set may change: after a reshard vtgate swaps the old shards for the new ones
//! in the next VGTID without telling the client (it does not forward JOURNAL events), and
//! the new shards cover exactly the key range of the ones they replace. A shard outside
//! that range, or one overlapping another, is never legitimate.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::source::gtid_set::GtidSet;
use crate::source::key_range::coverage;
use crate::source::proto::binlogdata::{ShardGtid, VGtid};
use crate::source::selection::Keyspaces;

/// The stream's position as the VGTID events so far told it.
#[derive(Debug)]
pub struct PositionCheck {
    keyspaces: Keyspaces,
    /// Keyspace → shard → GTID of the last accepted VGTID (or of the start position).
    shards: BTreeMap<String, BTreeMap<String, String>>,
}

impl PositionCheck {
    pub fn new(keyspaces: &Keyspaces) -> Self {
        PositionCheck {
            keyspaces: keyspaces.clone(),
            shards: BTreeMap::new(),
        }
    }

    /// Takes the start position as the baseline when it names concrete shards (a fresh
    /// start names none: vtgate resolves the keyspaces' shards itself).
    pub fn starting_at(&mut self, start: &VGtid) {
        let concrete = |s: &ShardGtid| !s.shard.is_empty() && !s.keyspace.starts_with('/');
        if !start.shard_gtids.is_empty() && start.shard_gtids.iter().all(concrete) {
            self.shards.clear();
            for s in &start.shard_gtids {
                (self.shards.entry(s.keyspace.clone()).or_default())
                    .insert(s.shard.clone(), s.gtid.clone());
            }
        }
    }

    /// Like `accept`, after one repair: a copy's position may fall behind the one before it.
    ///
    /// vttablet copies a table from a consistent snapshot whose GTID set is read while the
    /// table is locked, so transactions still committing on other tables can be missing from
    /// it although catch-up already streamed them (uvstreamer's `copyTable` then keeps its own,
    /// later position and does not fast-forward). The copied rows cannot depend on those
    /// transactions (the lock held them off the table), so the stream's true position is the
    /// union of both sets; storing it keeps the checkpoint from ever moving backwards. Only a
    /// shard entry with last PKs (a copy) is repaired; any other step back is still refused.
    pub fn settle(&mut self, next: &mut VGtid) -> Result<()> {
        for s in next
            .shard_gtids
            .iter_mut()
            .filter(|s| !s.table_p_ks.is_empty())
        {
            let before = (self.shards.get(&s.keyspace)).and_then(|shards| shards.get(&s.shard));
            let (Some(Ok(Some(old))), Ok(Some(new))) = (
                before.map(|b| GtidSet::from_position(b)),
                GtidSet::from_position(&s.gtid),
            ) else {
                continue;
            };
            if !new.contains(&old) {
                let union = new.union(&old).to_position();
                tracing::debug!(keyspace = %s.keyspace, shard = %s.shard, copy = %s.gtid, kept = %union, "a copy's snapshot position is behind the stream's");
                s.gtid = union;
            }
        }
        self.accept(next)
    }

    /// Accepts `next` as the stream's position, or says what is wrong with it.
    pub fn accept(&mut self, next: &VGtid) -> Result<()> {
        if next.shard_gtids.is_empty() {
            bail!("VGTID event names no shard");
        }
        let mut keyspaces: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for s in &next.shard_gtids {
            if !self.keyspaces.contains(&s.keyspace) {
                bail!(
                    "VGTID event names keyspace {:?}, but this mirror streams keyspace {}",
                    s.keyspace,
                    self.keyspaces.label()
                );
            }
            let shards = keyspaces.entry(s.keyspace.clone()).or_default();
            if shards.insert(s.shard.clone(), s.gtid.clone()).is_some() {
                bail!(
                    "VGTID event names shard {:?} of keyspace {} twice",
                    s.shard,
                    s.keyspace
                );
            }
        }
        if !self.shards.is_empty() && !keyspaces.keys().eq(self.shards.keys()) {
            bail!(
                "VGTID event names keyspaces [{}] where the stream had [{}]",
                list(keyspaces.keys()),
                list(self.shards.keys())
            );
        }
        for (keyspace, shards) in &keyspaces {
            let before = self.shards.get(keyspace);
            check_keyspace(keyspace, before, shards)?;
        }
        self.shards = keyspaces;
        Ok(())
    }
}

/// One keyspace's shards in a VGTID event against the ones the stream had.
fn check_keyspace(
    keyspace: &str,
    before: Option<&BTreeMap<String, String>>,
    shards: &BTreeMap<String, String>,
) -> Result<()> {
    let before = before.filter(|b| !b.is_empty());
    // Nearly every VGTID (one per transaction) names the same shards as the one before:
    // their key ranges were checked then.
    if before.is_none_or(|b| !shards.keys().eq(b.keys())) {
        let covered = coverage(shards.keys()).context("VGTID event")?;
        if let Some(before) = before {
            if covered != coverage(before.keys())? {
                bail!(
                    "VGTID event names shards [{}] of keyspace {keyspace} where the stream had [{}]: not the same key range, so not a reshard",
                    list(shards.keys()),
                    list(before.keys())
                );
            }
        }
    }
    for (shard, gtid) in shards {
        if let Some(old) = before.and_then(|b| b.get(shard)) {
            check_forwards(shard, old, gtid)?;
        }
    }
    Ok(())
}

/// Whether `position` has reached `target` on every shard `target` names: Ok(true) exactly at
/// it, Ok(false) before it, an error once past it (a stream stopped at a position must stop on
/// it, never after; positions only grow).
pub fn reached(position: &VGtid, target: &VGtid) -> Result<bool> {
    let mut all = true;
    for want in &target.shard_gtids {
        let have = (position.shard_gtids.iter())
            .find(|s| s.keyspace == want.keyspace && s.shard == want.shard);
        let (Some(have), Ok(Some(wanted))) = (have, GtidSet::from_position(&want.gtid)) else {
            bail!(
                "cannot stop at shard {}/{}: no comparable position",
                want.keyspace,
                want.shard
            );
        };
        let Ok(Some(got)) = GtidSet::from_position(&have.gtid) else {
            all = false; // copy not started on this shard yet
            continue;
        };
        match (got.contains(&wanted), wanted.contains(&got)) {
            (true, true) => {}
            (false, _) => all = false,
            (true, false) => bail!(
                "shard {}/{} moved past the position to stop at ({} beyond {})",
                want.keyspace,
                want.shard,
                have.gtid,
                want.gtid
            ),
        }
    }
    Ok(all)
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.map(String::as_str).collect::<Vec<_>>().join(", ")
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

#[cfg(test)]
#[path = "position_check_tests.rs"]
mod tests;
