use super::*;

#[tokio::test]
async fn current_start_sends_vgtid_and_other_per_shard_then_transactions() {
    let mut h = harness(20, StreamOptions::default()).await;
    let positions = h.model.positions();
    let mut s = open(
        &mut h,
        request(all_shards("current"), VStreamFlags::default()),
    )
    .await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, |e| e.len() >= 4).await;
    let kinds: Vec<VEventType> = evs[..4].iter().map(ty).collect();
    use VEventType::*;
    assert_eq!(kinds, [Vgtid, Other, Vgtid, Other]);
    assert_eq!(evs[3].vgtid, None);
    let last = evs[2].vgtid.as_ref().unwrap();
    let gtids: Vec<&str> = last.shard_gtids.iter().map(|g| g.gtid.as_str()).collect();
    let want: Vec<&str> = positions
        .shard_gtids
        .iter()
        .map(|g| g.gtid.as_str())
        .collect();
    assert_eq!(gtids, want);
    // The first shard's VGTID still shows the second as "current".
    assert_eq!(
        evs[0].vgtid.as_ref().unwrap().shard_gtids[1].gtid,
        "current"
    );
    h.model
        .apply(&TxnSpec::new().insert(
            "accounts",
            vec![Some(b"100000".to_vec()), Some(b"0".to_vec())],
        ))
        .unwrap();
    read_until(&mut s, &mut evs, |e| {
        e.iter().filter(|x| ty(x) == Commit).count() == 1
    })
    .await;
    let kinds: Vec<VEventType> = evs[4..].iter().map(ty).collect();
    assert_eq!(kinds, [Begin, Field, Row, Vgtid, Commit]);
    let f = evs[5].field_event.as_ref().unwrap();
    assert!(
        f.enum_set_string_values && f.table_name == "commerce.accounts" && f.shard == evs[5].shard
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn replication_sends_updates_deletes_and_bare_names_on_request() {
    let mut h = harness(30, StreamOptions::default()).await;
    let flags = VStreamFlags {
        exclude_keyspace_from_table_name: true,
        ..Default::default()
    };
    let req = request(h.model.positions(), flags);
    let mut s = open(&mut h, req).await;
    let row = h.model.table_rows("corder").into_iter().next().unwrap();
    let mut updated = row.1.clone();
    updated[4] = None;
    h.model
        .apply(
            &TxnSpec::new()
                .update("corder", updated.clone())
                .delete("corder", row.0),
        )
        .unwrap();
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, |e| {
        e.iter().any(|x| ty(x) == VEventType::Commit)
    })
    .await;
    let r = evs.iter().find_map(|e| e.row_event.as_ref()).unwrap();
    assert_eq!(r.table_name, "corder");
    assert_eq!(r.row_changes.len(), 2);
    let up = &r.row_changes[0];
    assert_eq!(decode_row(up.before.as_ref().unwrap()).unwrap(), row.1);
    assert_eq!(decode_row(up.after.as_ref().unwrap()).unwrap(), updated);
    assert!(r.row_changes[1].after.is_none() && r.row_changes[1].before.is_some());
    h.server.shutdown().await;
}

#[tokio::test]
async fn transaction_without_filtered_tables_is_begin_vgtid_commit() {
    let mut h = harness(10, StreamOptions::default()).await;
    let mut req = request(h.model.positions(), VStreamFlags::default());
    let rule = &mut req.filter.as_mut().unwrap().rules[0];
    rule.r#match = "customer".into();
    rule.filter = "select * from customer".into();
    let mut s = open(&mut h, req).await;
    h.model.large_transaction("corder", 1).unwrap();
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, |e| !e.is_empty()).await;
    let kinds: Vec<VEventType> = evs.iter().map(ty).collect();
    assert_eq!(
        kinds,
        [VEventType::Begin, VEventType::Vgtid, VEventType::Commit]
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn large_transaction_is_chunked_without_interleaving() {
    let mut h = harness(10, StreamOptions::default()).await;
    let flags = VStreamFlags {
        transaction_chunk_size: 20_000,
        ..Default::default()
    };
    let req = request(h.model.positions(), flags);
    let mut s = open(&mut h, req).await;
    h.model.large_transaction("corder", 3000).unwrap();
    let mut evs = Vec::new();
    let responses = read_until(&mut s, &mut evs, |e| {
        e.iter().filter(|x| ty(x) == VEventType::Commit).count() == 2
    })
    .await;
    assert!(responses.len() > 4, "only {} responses", responses.len());
    assert_no_interleaving(&evs);
    let mut m = Mirror::default();
    m.apply_all(&evs);
    assert_eq!(m.tables["corder"].len(), 3000);
    h.server.shutdown().await;
}

#[tokio::test]
async fn heartbeats_are_sent_when_idle() {
    let mut h = harness(5, StreamOptions::default()).await;
    let flags = VStreamFlags {
        heartbeat_interval: 1,
        ..Default::default()
    };
    let mut s = open(&mut h, request(all_shards("current"), flags)).await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, |e| {
        e.iter().any(|x| ty(x) == VEventType::Heartbeat)
    })
    .await;
    let hb = evs.iter().find(|x| ty(x) == VEventType::Heartbeat).unwrap();
    assert!(hb.keyspace.is_empty() && hb.shard.is_empty() && hb.vgtid.is_none());
    assert!(hb.timestamp > 0 && hb.current_time / 1_000_000_000 == hb.timestamp);
    h.server.shutdown().await;
}

#[tokio::test]
async fn live_writes_keep_the_ledger_sum_constant() {
    let h = harness(40, StreamOptions::default()).await;
    let sum = |m: &SharedModel| -> i64 {
        m.table_rows("accounts")
            .values()
            .map(|r| {
                std::str::from_utf8(r[1].as_ref().unwrap())
                    .unwrap()
                    .parse::<i64>()
                    .unwrap()
            })
            .sum()
    };
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = spawn_live_writes(h.model.clone(), 500.0, rx);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(true).unwrap();
    let n = task.await.unwrap();
    assert!(n > 20, "{n}");
    assert_eq!(sum(&h.model), 40 * INITIAL_BALANCE);
    h.server.shutdown().await;
}
