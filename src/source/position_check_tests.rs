use super::*;
use crate::source::proto::binlogdata::ShardGtid;

const U: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

fn vgtid(keyspace: &str, shards: &[(&str, &str)]) -> VGtid {
    VGtid {
        shard_gtids: shards
            .iter()
            .map(|(shard, gtid)| ShardGtid {
                keyspace: keyspace.into(),
                shard: (*shard).into(),
                gtid: (*gtid).into(),
                table_p_ks: vec![],
            })
            .collect(),
    }
}

fn at(n: u64) -> String {
    format!("MySQL56/{U}:1-{n}")
}

fn check_after(first: &VGtid, next: &VGtid) -> Result<()> {
    let mut check = PositionCheck::new(&Keyspaces::Named(vec!["ks".into()]));
    check.accept(first)?;
    check.accept(next)
}

#[test]
fn positions_moving_forwards_on_the_same_shards_are_accepted() {
    let a = vgtid("ks", &[("-80", &at(5)), ("80-", &at(3))]);
    let b = vgtid("ks", &[("80-", &at(4)), ("-80", &at(5))]);
    check_after(&a, &b).unwrap();
}

#[test]
fn a_reshard_may_replace_shards_by_ones_covering_the_same_range() {
    let before = vgtid("ks", &[("0", &at(9))]);
    let after = vgtid("ks", &[("-80", &at(1)), ("80-", &at(1))]);
    check_after(&before, &after).unwrap();
    let split = vgtid(
        "ks",
        &[
            ("-40", "MySQL56/"),
            ("4000-80", "MySQL56/"),
            ("80-", &at(1)),
        ],
    );
    check_after(&after, &split).unwrap();
}

#[test]
fn another_keyspace_is_refused() {
    let e = check_after(
        &vgtid("ks", &[("0", &at(1))]),
        &vgtid("other", &[("0", &at(2))]),
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("keyspace \"other\""), "{e:#}");
}

#[test]
fn a_shard_outside_or_overlapping_the_stream_is_refused() {
    let two = vgtid("ks", &[("-80", &at(1)), ("80-", &at(1))]);
    let extra = vgtid("ks", &[("-80", &at(1)), ("80-", &at(1)), ("c0-", &at(1))]);
    let e = format!("{:#}", check_after(&two, &extra).unwrap_err());
    assert!(e.contains("overlap"), "{e}");
    let shrunk = vgtid("ks", &[("-40", &at(1)), ("80-", &at(1))]);
    let e = format!("{:#}", check_after(&two, &shrunk).unwrap_err());
    assert!(
        e.contains("[-40, 80-]") && e.contains("not a reshard"),
        "{e}"
    );
    let named = vgtid("ks", &[("-80", &at(1)), ("x0-", &at(1))]);
    assert!(check_after(&two, &named).is_err());
}

#[test]
fn a_gtid_set_going_backwards_is_refused() {
    let a = vgtid("ks", &[("-80", &at(5)), ("80-", &at(3))]);
    let b = vgtid("ks", &[("-80", &at(4)), ("80-", &at(3))]);
    let e = format!("{:#}", check_after(&a, &b).unwrap_err());
    assert!(e.contains("shard -80 backwards"), "{e}");
}

#[test]
fn the_start_position_is_the_baseline_unless_it_names_no_shard() {
    let mut check = PositionCheck::new(&Keyspaces::Named(vec!["ks".into()]));
    check.starting_at(&vgtid("ks", &[("-80", &at(5)), ("80-", &at(5))]));
    assert!(check
        .accept(&vgtid("ks", &[("-80", &at(4)), ("80-", &at(6))]))
        .is_err());
    let mut fresh = PositionCheck::new(&Keyspaces::Named(vec!["ks".into()]));
    fresh.starting_at(&vgtid("ks", &[("", "")]));
    fresh
        .accept(&vgtid("ks", &[("-80", ""), ("80-", "")]))
        .unwrap();
    fresh
        .accept(&vgtid("ks", &[("-80", &at(2)), ("80-", "")]))
        .unwrap();
}

#[test]
fn a_copy_snapshot_behind_the_stream_keeps_the_later_position_and_other_steps_back_fail() {
    let mut check = PositionCheck::new(&Keyspaces::Named(vec!["ks".into()]));
    check.accept(&vgtid("ks", &[("0", &at(9))])).unwrap();
    let mut copy = vgtid("ks", &[("0", &at(8))]);
    copy.shard_gtids[0].table_p_ks = vec![crate::source::proto::binlogdata::TableLastPk {
        table_name: "t".into(),
        lastpk: None,
    }];
    check.settle(&mut copy).unwrap();
    assert_eq!(copy.shard_gtids[0].gtid, at(9), "the union of 1-8 and 1-9");
    let mut replicated = vgtid("ks", &[("0", &at(7))]);
    let err = check.settle(&mut replicated).unwrap_err();
    assert!(err.to_string().contains("backwards"), "{err}");
}
