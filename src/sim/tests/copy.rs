use super::*;
use crate::source::proto::binlogdata::TableLastPk;

#[tokio::test]
async fn full_copy_of_two_shards_delivers_every_row_in_vitess_order() {
    let mut h = harness(250, small_batches(100)).await;
    let mut s = open(&mut h, request(all_shards(""), VStreamFlags::default())).await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, fully_copied).await;
    let mut m = Mirror::default();
    m.apply_all(&evs);
    m.assert_equals_model(&h.model);
    assert_no_interleaving(&evs);
    assert!(
        ty(evs.last().unwrap()) == VEventType::CopyCompleted
            && evs.last().unwrap().shard.is_empty()
    );
    for shard in ["-80", "80-"] {
        let mine: Vec<&VEvent> = evs.iter().filter(|e| e.shard == shard).collect();
        // FIELD order = tables sorted by name.
        let fields: Vec<String> = mine
            .iter()
            .filter_map(|e| e.field_event.as_ref().map(|f| f.table_name.clone()))
            .collect();
        assert_eq!(
            fields,
            ["commerce.accounts", "commerce.corder", "commerce.customer"]
        );
        // First batch: BEGIN, FIELD, VGTID(snapshot, no table_p_ks), ROW...
        assert_eq!(ty(mine[0]), VEventType::Begin);
        assert_eq!(ty(mine[1]), VEventType::Field);
        assert_eq!(ty(mine[2]), VEventType::Vgtid);
        let first = mine[2].vgtid.as_ref().unwrap();
        assert_eq!(first.shard_gtids.len(), 2);
        let me = first.shard_gtids.iter().find(|g| g.shard == shard).unwrap();
        assert!(me.gtid.starts_with("MySQL56/") && me.table_p_ks.is_empty());
        assert_eq!(ty(mine[3]), VEventType::Row);
        let completed = mine
            .iter()
            .filter(|e| ty(e) == VEventType::CopyCompleted)
            .count();
        assert_eq!(completed, 1);
        for e in &mine {
            assert_eq!(e.keyspace, "commerce");
            if ty(e) == VEventType::Row {
                let r = e.row_event.as_ref().unwrap();
                assert_eq!(
                    (e.timestamp, e.current_time, r.row_changes.len()),
                    (0, 0, 1)
                );
                assert!(r.row_changes[0].before.is_none() && r.shard == shard);
            }
            if let Some(v) = &e.vgtid {
                assert_eq!(v.shard_gtids.len(), 2);
            }
        }
    }
    // A batch VGTID carries the lastpk with PK fields.
    let with_pk = evs
        .iter()
        .filter_map(|e| e.vgtid.as_ref())
        .flat_map(|v| v.shard_gtids.iter())
        .flat_map(|g| g.table_p_ks.iter())
        .next()
        .unwrap();
    let qr = with_pk.lastpk.as_ref().unwrap();
    assert_eq!(qr.fields[0].flags, 53251);
    assert_eq!(qr.rows.len(), 1);
    // The final VGtid has no table_p_ks left.
    let last_vgtid = evs.iter().rev().find_map(|e| e.vgtid.as_ref()).unwrap();
    assert!(last_vgtid
        .shard_gtids
        .iter()
        .all(|g| g.table_p_ks.is_empty()));
    h.server.shutdown().await;
}

#[tokio::test]
async fn copy_with_concurrent_writes_converges_and_replication_follows() {
    let mut h = harness(300, small_batches(40)).await;
    let mut s = open(&mut h, request(all_shards(""), VStreamFlags::default())).await;
    let mut evs = Vec::new();
    while !fully_copied(&evs) {
        let resp = tokio::time::timeout(Duration::from_secs(10), s.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        evs.extend(resp.events);
        h.model.apply_random_transactions(3);
    }
    h.model.apply_random_transactions(100);
    let m = read_until_caught_up(&mut s, &mut evs, &h.model).await;
    m.assert_equals_model(&h.model);
    assert_no_interleaving(&evs);
    // Replication events carry binlog timestamps and FIELD before the first ROW of a table.
    let after_copy: Vec<&VEvent> = evs
        .iter()
        .skip_while(|e| !(ty(e) == VEventType::CopyCompleted && e.shard.is_empty()))
        .collect();
    assert!(after_copy
        .iter()
        .any(|e| ty(e) == VEventType::Row && e.timestamp > 0 && e.current_time > 0));
    h.server.shutdown().await;
}

fn lastpk_entry(h: &Harness, table: &str, pk: Option<i64>) -> TableLastPk {
    let pk_fields = h
        .model
        .read(|m| m.spec.table(table).unwrap().pk_fields("commerce"));
    TableLastPk {
        table_name: table.into(),
        lastpk: pk.map(|p| lastpk_result(pk_fields, p)),
    }
}

#[tokio::test]
async fn resume_with_table_p_ks_copies_rows_above_lastpk_of_the_plan_tables() {
    let mut h = harness(200, small_batches(1000)).await;
    let model = h.model.clone();
    let shard_rows = |shard: usize, table: &str| -> Vec<i64> {
        model.read(|m| {
            m.shards[shard]
                .rows(table)
                .unwrap()
                .keys()
                .copied()
                .collect()
        })
    };
    let (lo_orders, hi_orders) = (shard_rows(0, "corder"), shard_rows(1, "corder"));
    let (l0, l1) = (
        lo_orders[lo_orders.len() / 2],
        hi_orders[hi_orders.len() / 3],
    );
    let mut vgtid = h.model.positions();
    vgtid.shard_gtids[0].table_p_ks = vec![lastpk_entry(&h, "corder", Some(l0))];
    vgtid.shard_gtids[1].table_p_ks = vec![
        lastpk_entry(&h, "corder", Some(l1)),
        lastpk_entry(&h, "customer", None),
    ];
    let flags = VStreamFlags {
        tables_to_copy: vec!["corder".into(), "customer".into()],
        ..Default::default()
    };
    let mut s = open(&mut h, request(vgtid, flags)).await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, fully_copied).await;
    let copied = |shard: &str, table: &str| -> Vec<i64> {
        evs.iter()
            .filter(|e| e.shard == shard && ty(e) == VEventType::Row)
            .map(|e| e.row_event.as_ref().unwrap())
            .filter(|r| bare(&r.table_name) == table)
            .map(|r| pk(&decode_row(r.row_changes[0].after.as_ref().unwrap()).unwrap()))
            .collect()
    };
    let above = |v: &[i64], l: i64| v.iter().copied().filter(|&p| p > l).collect::<Vec<_>>();
    assert_eq!(copied("-80", "corder"), above(&lo_orders, l0));
    assert_eq!(copied("80-", "corder"), above(&hi_orders, l1));
    assert_eq!(copied("-80", "customer"), shard_rows(0, "customer"));
    assert_eq!(copied("80-", "customer"), shard_rows(1, "customer"));
    assert!(copied("-80", "accounts").is_empty() && copied("80-", "accounts").is_empty());
    // Resumed at the current position: no VGTID right after the copy FIELD (nothing to fast-forward).
    let i = evs.iter().position(|e| ty(e) == VEventType::Field).unwrap();
    assert_eq!(ty(&evs[i + 1]), VEventType::Row);
    let req = &h.server.requests()[0];
    assert_eq!(
        req.vgtid.as_ref().unwrap().shard_gtids[1].table_p_ks.len(),
        2
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn resume_with_gtid_and_no_table_p_ks_does_not_copy() {
    let mut h = harness(50, StreamOptions::default()).await;
    let vgtid = h.model.positions();
    let flags = VStreamFlags {
        tables_to_copy: vec!["corder".into()],
        ..Default::default()
    };
    let mut s = open(&mut h, request(vgtid, flags)).await;
    h.model.apply_random_transactions(5);
    let mut evs = Vec::new();
    read_until_caught_up(&mut s, &mut evs, &h.model).await;
    assert!(evs.iter().all(|e| ty(e) != VEventType::CopyCompleted));
    assert!(evs
        .iter()
        .filter(|e| ty(e) == VEventType::Row)
        .all(|e| e.timestamp > 0));
    h.server.shutdown().await;
}

#[tokio::test]
async fn empty_table_copy_sends_begin_field_then_completion() {
    let model = SharedModel::new(ModelSpec::demo(0));
    let server = SimVtgate::start(model.clone(), "127.0.0.1:0")
        .await
        .unwrap();
    let mut client = VitessClient::connect(server.endpoint()).await.unwrap();
    let mut vg = all_shards("");
    vg.shard_gtids[0].shard = "-80".into();
    let req = request(
        vg,
        VStreamFlags {
            tables_to_copy: vec!["accounts".into()],
            ..Default::default()
        },
    );
    let mut s = client.v_stream(req).await.unwrap().into_inner();
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, fully_copied).await;
    let kinds: Vec<VEventType> = evs.iter().map(ty).collect();
    use VEventType::*;
    assert_eq!(
        kinds,
        [
            Begin,
            Field,
            Vgtid,
            Begin,
            Vgtid,
            Commit,
            CopyCompleted,
            CopyCompleted
        ]
    );
    server.shutdown().await;
}

async fn harness_with(spec: ModelSpec, opts: StreamOptions) -> Harness {
    let model = SharedModel::new(spec);
    let server = SimVtgate::start_with(model.clone(), "127.0.0.1:0", opts)
        .await
        .unwrap();
    let client = VitessClient::connect(server.endpoint()).await.unwrap();
    Harness {
        model,
        server,
        client,
    }
}

/// Index just past the first COMMIT whose VGtid has table_p_ks on every shard.
fn resumable_cut(evs: &[VEvent]) -> Option<(usize, VGtid)> {
    let mut pending = None;
    for (i, e) in evs.iter().enumerate() {
        match ty(e) {
            VEventType::Vgtid => pending = e.vgtid.clone(),
            VEventType::Commit => {
                let v: &VGtid = pending.as_ref()?;
                if v.shard_gtids
                    .iter()
                    .all(|g| !g.table_p_ks.is_empty() && g.gtid.starts_with("MySQL56/"))
                {
                    return Some((i + 1, v.clone()));
                }
            }
            _ => {}
        }
    }
    None
}

#[tokio::test]
async fn interrupted_copy_resumed_from_a_committed_vgtid_converges_with_live_writes() {
    for (seed, shards) in [(1u64, 2usize), (7, 4), (9, 1)] {
        let spec = ModelSpec {
            seed,
            shards,
            ..ModelSpec::demo(300)
        };
        let mut h = harness_with(spec, small_batches(25)).await;
        let mut s = open(&mut h, request(all_shards(""), VStreamFlags::default())).await;
        let mut evs = Vec::new();
        let mut cut = None;
        while cut.is_none() {
            let resp = s.message().await.unwrap().unwrap();
            evs.extend(resp.events);
            h.model.apply_random_transactions(2);
            cut = resumable_cut(&evs);
        }
        drop(s);
        let (at, vgtid) = cut.unwrap();
        let mut m = Mirror::default();
        m.apply_all(&evs[..at]);
        h.model.apply_random_transactions(30);
        let mut s = open(&mut h, request(vgtid, VStreamFlags::default())).await;
        let mut evs2 = Vec::new();
        while !fully_copied(&evs2) {
            let resp = s.message().await.unwrap().unwrap();
            evs2.extend(resp.events);
            h.model.apply_random_transactions(2);
        }
        let model = h.model.clone();
        let fields = m.fields.clone();
        read_until(&mut s, &mut evs2, |e| {
            let mut probe = Mirror {
                fields: fields.clone(),
                ..Mirror::default()
            };
            probe.apply_all(e);
            probe.caught_up(&model)
        })
        .await;
        m.apply_all(&evs2);
        m.assert_equals_model(&h.model);
        assert_no_interleaving(&evs2);
        h.server.shutdown().await;
    }
}
