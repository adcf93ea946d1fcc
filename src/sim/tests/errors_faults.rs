use super::*;
use tonic::Code;

async fn status_of(h: &mut Harness, req: VStreamRequest) -> tonic::Status {
    match h.client.v_stream(req).await {
        Err(st) => st,
        Ok(resp) => resp
            .into_inner()
            .message()
            .await
            .expect_err("expected an error"),
    }
}

#[tokio::test]
async fn invalid_requests_get_vtgate_errors() {
    let mut h = harness(5, StreamOptions::default()).await;
    let mut vg = all_shards("");
    vg.shard_gtids[0].shard = "-40".into();
    let st = status_of(&mut h, request(vg, VStreamFlags::default())).await;
    assert_eq!(st.code(), Code::FailedPrecondition);
    assert!(st
        .message()
        .contains("shard provided in VGTID, -40, not found in the commerce keyspace"));
    let pos = h.model.positions().shard_gtids[0].gtid.clone();
    let st = status_of(&mut h, request(all_shards(&pos), VStreamFlags::default())).await;
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st
        .message()
        .contains("if shards are unspecified, the Gtid value must be 'current' or empty"));
    let mut ahead = h.model.positions();
    ahead.shard_gtids[0].gtid = format!("{}999", ahead.shard_gtids[0].gtid);
    let st = status_of(&mut h, request(ahead, VStreamFlags::default())).await;
    assert_eq!(st.code(), Code::InvalidArgument);
    assert!(st.message().contains("GTIDSet Mismatch"));
    let mut other = all_shards("current");
    other.shard_gtids[0].keyspace = "nope".into();
    assert_ne!(
        status_of(&mut h, request(other, VStreamFlags::default()))
            .await
            .code(),
        Code::Ok
    );
    let st = status_of(&mut h, request(VGtid::default(), VStreamFlags::default())).await;
    assert_eq!(st.code(), Code::InvalidArgument);
    h.server.shutdown().await;
}

#[tokio::test]
async fn fail_after_events_ends_the_stream_after_exactly_n_events() {
    let mut h = harness(100, small_batches(10)).await;
    h.server
        .faults()
        .fail_after_events(7, Code::Unavailable, "injected");
    let mut s = open(&mut h, request(all_shards(""), VStreamFlags::default())).await;
    let mut n = 0;
    let err = loop {
        match s.message().await {
            Ok(Some(r)) => n += r.events.len(),
            Ok(None) => panic!("clean end"),
            Err(e) => break e,
        }
    };
    assert_eq!(
        (n, err.code(), err.message()),
        (7, Code::Unavailable, "injected")
    );
    // One-shot: the next stream is normal.
    let mut s = open(&mut h, request(all_shards(""), VStreamFlags::default())).await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, fully_copied).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn rejected_requests_then_normal() {
    let mut h = harness(5, StreamOptions::default()).await;
    h.server
        .faults()
        .reject_next_requests(2, Code::Unavailable, "not yet");
    for _ in 0..2 {
        let st = status_of(
            &mut h,
            request(all_shards("current"), VStreamFlags::default()),
        )
        .await;
        assert_eq!(st.code(), Code::Unavailable);
    }
    let mut s = open(
        &mut h,
        request(all_shards("current"), VStreamFlags::default()),
    )
    .await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, |e| e.len() >= 4).await;
    assert_eq!(h.server.requests().len(), 3);
    h.server.shutdown().await;
}

#[tokio::test]
async fn replay_fault_resends_the_transaction_ending_at_the_resume_position() {
    let mut h = harness(5, StreamOptions::default()).await;
    h.model.apply_random_transactions(10);
    let positions = h.model.positions();
    h.server.faults().replay_last_transaction_on_reconnect();
    let mut s = open(&mut h, request(positions.clone(), VStreamFlags::default())).await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, |e| {
        e.iter().any(|x| ty(x) == VEventType::Commit)
    })
    .await;
    let v = evs.iter().find_map(|e| e.vgtid.as_ref()).unwrap();
    assert_eq!(v, &positions);
    h.server.shutdown().await;
}

#[tokio::test]
async fn throttle_limits_the_response_rate() {
    let mut h = harness(200, small_batches(10)).await;
    h.server.faults().set_max_responses_per_sec(Some(50.0));
    let start = std::time::Instant::now();
    let mut s = open(&mut h, request(all_shards(""), VStreamFlags::default())).await;
    let mut evs = Vec::new();
    let responses = read_until(&mut s, &mut evs, |e| e.len() >= 200).await;
    assert!(start.elapsed() >= Duration::from_millis(((responses.len() - 1) * 18) as u64));
    h.server.shutdown().await;
}

#[tokio::test]
async fn stall_sends_nothing_not_even_heartbeats() {
    let mut h = harness(5, StreamOptions::default()).await;
    h.server.faults().stall_for(Duration::from_millis(400));
    let start = std::time::Instant::now();
    let flags = VStreamFlags {
        heartbeat_interval: 1,
        ..Default::default()
    };
    let mut s = open(&mut h, request(all_shards("current"), flags)).await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, |e| !e.is_empty()).await;
    assert!(start.elapsed() >= Duration::from_millis(350));
    assert_eq!(ty(&evs[0]), VEventType::Vgtid);
    h.server.shutdown().await;
}
