//! What `wait` waits for, and whether a mirror's stored checkpoint has reached it.
//!
//! The target is one GTID set per shard: asked of each serving shard's primary, or read from a
//! given VGtid. A mirror has reached it when, for every one of those shards, its checkpoint
//! names that shard with a GTID set containing the target's, and no copy is under way that
//! could still owe rows older than that position.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use crate::mirror::metadata::Stored;
use crate::source::gtid_set::GtidSet;
use crate::source::key_range;
use crate::source::primary_position::ShardName;
use crate::source::proto::binlogdata::VGtid;

/// Shard → the GTID set the mirror must contain for it.
pub type Target = BTreeMap<ShardName, GtidSet>;

/// The target of a user-given position (`--position`): each entry names its shard and a
/// MySQL GTID set.
pub fn target_of_position(position: &VGtid) -> Result<Target> {
    let mut target = Target::new();
    for entry in &position.shard_gtids {
        if entry.shard.is_empty() {
            bail!(
                "position entry of keyspace {} names no shard (wait needs one entry per shard)",
                entry.keyspace
            );
        }
        let set = GtidSet::from_position(&entry.gtid)
            .with_context(|| format!("position of shard {}/{}", entry.keyspace, entry.shard))?
            .with_context(|| {
                format!(
                    "position of shard {}/{} is not a MySQL56/ GTID set: {:?}",
                    entry.keyspace, entry.shard, entry.gtid
                )
            })?;
        let shard = ShardName {
            keyspace: entry.keyspace.clone(),
            shard: entry.shard.clone(),
        };
        target.insert(shard, set);
    }
    Ok(target)
}

/// The serving shards (keyspace → shards, as `SHOW VITESS_SHARDS` lists them) that hold keys
/// of the mirror whose checkpoint is `checkpoint`: every serving shard of its keyspaces whose
/// key range meets one of the checkpoint's shards. After a reshard these are the new shards;
/// for a key-range mirror only those of its range.
pub fn shards_to_ask(
    checkpoint: &VGtid,
    serving: &BTreeMap<String, Vec<String>>,
) -> Result<Vec<ShardName>> {
    let mut out = Vec::new();
    let mut keyspaces: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for entry in &checkpoint.shard_gtids {
        let shards = keyspaces.entry(entry.keyspace.as_str()).or_default();
        shards.push(entry.shard.as_str());
    }
    for (keyspace, mirrored) in keyspaces {
        let Some(shards) = serving.get(keyspace) else {
            bail!("keyspace {keyspace} of the mirror is not served by vtgate (SHOW VITESS_SHARDS)");
        };
        for shard in shards {
            if holds_mirrored_keys(shard, &mirrored)? {
                out.push(ShardName {
                    keyspace: keyspace.to_string(),
                    shard: shard.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// An empty shard name in a checkpoint (a copy not yet positioned) means every shard.
fn holds_mirrored_keys(shard: &str, mirrored: &[&str]) -> Result<bool> {
    for m in mirrored {
        if m.is_empty() || key_range::overlaps(shard, m)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Why the mirror has not reached `target` yet, one reason per shard behind (empty: reached).
/// `copying`: the mirror's first copy has begun and not completed, so rows older than any
/// position may still be missing.
pub fn behind(stored: &Stored, copying: bool, target: &Target) -> Vec<String> {
    let Some(checkpoint) = stored.vgtid.as_ref() else {
        return vec!["the mirror has no checkpoint yet".into()];
    };
    if copying {
        return vec!["the mirror's first copy has not completed".into()];
    }
    let mut reasons = Vec::new();
    for (shard, wanted) in target {
        let entry = (checkpoint.shard_gtids.iter())
            .find(|e| e.keyspace == shard.keyspace && e.shard == shard.shard);
        let Some(entry) = entry else {
            reasons.push(format!("{shard}: not in the mirror's checkpoint yet"));
            continue;
        };
        if !entry.table_p_ks.is_empty() {
            reasons.push(format!("{shard}: a table copy is under way"));
            continue;
        }
        match GtidSet::from_position(&entry.gtid) {
            Ok(Some(have)) if have.contains(wanted) => {}
            Ok(Some(_)) => reasons.push(format!("{shard}: at {}", entry.gtid)),
            Ok(None) | Err(_) => {
                reasons.push(format!("{shard}: not positioned ({:?})", entry.gtid))
            }
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::proto::binlogdata::ShardGtid;
    use crate::source::vgtid::test_values::lastpk;

    const U1: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const U2: &str = "4f11fa47-71ca-11e1-9e33-c80aa9429562";

    fn entry(keyspace: &str, shard: &str, gtid: &str) -> ShardGtid {
        ShardGtid {
            keyspace: keyspace.into(),
            shard: shard.into(),
            gtid: gtid.into(),
            table_p_ks: Vec::new(),
        }
    }

    fn stored(entries: Vec<ShardGtid>) -> Stored {
        Stored {
            vgtid: Some(VGtid {
                shard_gtids: entries,
            }),
            copy_completed: true,
            ..Stored::default()
        }
    }

    fn target(shards: &[(&str, &str)]) -> Target {
        (shards.iter())
            .map(|(shard, set)| {
                let name = ShardName {
                    keyspace: "ks".into(),
                    shard: shard.to_string(),
                };
                (name, GtidSet::parse(set).unwrap())
            })
            .collect()
    }

    #[test]
    fn a_checkpoint_containing_every_shards_set_has_reached_it() {
        let at = |n: u32| format!("MySQL56/{U1}:1-{n},{U2}:1-5");
        let checkpoint = stored(vec![
            entry("ks", "-80", &at(36)),
            entry("ks", "80-", &at(40)),
        ]);
        let wanted = target(&[
            ("-80", &format!("{U1}:1-36,\n{U2}:1-5")),
            ("80-", &format!("{U1}:1-36")),
        ]);
        assert!(behind(&checkpoint, false, &wanted).is_empty());
        let ahead = target(&[("-80", &format!("{U1}:1-37"))]);
        let reasons = behind(&checkpoint, false, &ahead);
        assert_eq!(reasons.len(), 1);
        assert!(reasons[0].starts_with("ks/-80: at MySQL56/"), "{reasons:?}");
        let other_server = target(&[("80-", &format!("{U2}:1-6"))]);
        assert_eq!(behind(&checkpoint, false, &other_server).len(), 1);
    }

    #[test]
    fn a_shard_missing_from_the_checkpoint_or_mid_copy_is_not_reached() {
        let checkpoint = stored(vec![entry("ks", "0", &format!("MySQL56/{U1}:1-9"))]);
        let resharded = target(&[("-80", &format!("{U1}:1-2")), ("80-", &format!("{U1}:1-2"))]);
        let reasons = behind(&checkpoint, false, &resharded);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(reasons[0].contains("not in the mirror's checkpoint"));
        let mut copying = checkpoint.clone();
        let first = &mut copying.vgtid.as_mut().unwrap().shard_gtids[0];
        first.table_p_ks.push(lastpk("t", "5"));
        let zero = target(&[("0", &format!("{U1}:1-2"))]);
        assert!(behind(&checkpoint, false, &zero).is_empty());
        assert!(behind(&copying, false, &zero)[0].contains("table copy"));
        assert!(behind(&checkpoint, true, &zero)[0].contains("first copy"));
        assert!(!behind(&Stored::default(), false, &zero).is_empty());
        let unpositioned = stored(vec![entry("ks", "0", "current")]);
        assert!(behind(&unpositioned, false, &zero)[0].contains("not positioned"));
    }

    #[test]
    fn a_given_position_is_a_target_per_shard() {
        let position = VGtid {
            shard_gtids: vec![entry("ks", "-80", &format!("MySQL56/{U1}:1-4"))],
        };
        let wanted = target_of_position(&position).unwrap();
        assert_eq!(wanted, target(&[("-80", &format!("{U1}:1-4"))]));
        let checkpoint = stored(vec![entry("ks", "-80", &format!("MySQL56/{U1}:1-3"))]);
        assert_eq!(behind(&checkpoint, false, &wanted).len(), 1);
        for bad in [
            entry("ks", "", &format!("MySQL56/{U1}:1-4")),
            entry("ks", "-80", "current"),
        ] {
            let position = VGtid {
                shard_gtids: vec![bad],
            };
            assert!(target_of_position(&position).is_err());
        }
    }

    #[test]
    fn the_shards_to_ask_are_the_serving_shards_holding_the_mirrors_keys() {
        let serving: BTreeMap<String, Vec<String>> = [
            (
                "ks".to_string(),
                vec!["-40".into(), "40-80".into(), "80-".into()],
            ),
            ("other".to_string(), vec!["0".into()]),
        ]
        .into();
        let names = |v: Vec<ShardName>| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let key_range_mirror = VGtid {
            shard_gtids: vec![entry("ks", "-80", "MySQL56/")],
        };
        let asked = shards_to_ask(&key_range_mirror, &serving).unwrap();
        assert_eq!(names(asked), ["ks/-40", "ks/40-80"]);
        let whole = VGtid {
            shard_gtids: vec![entry("ks", "0", "MySQL56/"), entry("other", "0", "")],
        };
        let asked = shards_to_ask(&whole, &serving).unwrap();
        assert_eq!(names(asked), ["ks/-40", "ks/40-80", "ks/80-", "other/0"]);
        let gone = VGtid {
            shard_gtids: vec![entry("nosuch", "0", "")],
        };
        assert!(shards_to_ask(&gone, &serving).is_err());
    }
}
