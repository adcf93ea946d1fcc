//! One simulated vtgate serving several keyspaces (Vitess's local example): one VStream over
//! several keyspaces.

use super::*;
use crate::source::proto::query::BoundQuery;
use crate::source::proto::vtgate::{ExecuteRequest, ExecuteResponse};
use tonic::Code;

pub(super) struct Local {
    pub server: SimVtgate,
    pub client: VitessClient<Channel>,
}

impl Local {
    fn commerce(&self) -> Arc<SharedModel> {
        self.server.keyspace("commerce").unwrap()
    }
    fn customer(&self) -> Arc<SharedModel> {
        self.server.keyspace("customer").unwrap()
    }
    async fn open(&mut self, req: VStreamRequest) -> Streaming<VStreamResponse> {
        self.client.v_stream(req).await.unwrap().into_inner()
    }
    async fn refused(&mut self, req: VStreamRequest) -> tonic::Status {
        match self.client.v_stream(req).await {
            Err(st) => st,
            Ok(resp) => resp.into_inner().message().await.expect_err("an error"),
        }
    }
    pub async fn execute(&mut self, sql: &str) -> ExecuteResponse {
        let req = ExecuteRequest {
            query: Some(BoundQuery { sql: sql.into() }),
            ..Default::default()
        };
        self.client.execute(req).await.unwrap().into_inner()
    }
}

pub(super) async fn local(rows: usize) -> Local {
    let models = ModelSpec::local_example(rows)
        .into_iter()
        .map(SharedModel::new)
        .collect();
    let server = SimVtgate::start_keyspaces(models, "127.0.0.1:0", small_batches(40))
        .await
        .unwrap();
    let client = VitessClient::connect(server.endpoint()).await.unwrap();
    Local { server, client }
}

fn entry(keyspace: &str, shard: &str, gtid: &str) -> ShardGtid {
    ShardGtid {
        keyspace: keyspace.into(),
        shard: shard.into(),
        gtid: gtid.into(),
        ..Default::default()
    }
}

fn vgtid(entries: Vec<ShardGtid>) -> VGtid {
    VGtid {
        shard_gtids: entries,
    }
}

fn both_keyspaces(gtid: &str) -> VGtid {
    vgtid(vec![
        entry("commerce", "", gtid),
        entry("customer", "", gtid),
    ])
}

/// Rows by `keyspace.table` (FIELD/ROW names are checked to match the event's keyspace).
#[derive(Default)]
struct KsMirror {
    tables: BTreeMap<String, BTreeMap<i64, Row>>,
}

impl KsMirror {
    fn of(evs: &[VEvent]) -> Self {
        let mut m = Self::default();
        for ev in evs {
            let Some(r) = &ev.row_event else { continue };
            assert_eq!((&r.keyspace, &r.shard), (&ev.keyspace, &ev.shard));
            assert!(r.table_name.starts_with(&format!("{}.", ev.keyspace)));
            let rows = m.tables.entry(r.table_name.clone()).or_default();
            for rc in &r.row_changes {
                if let Some(b) = rc.before.as_ref().and_then(decode_row) {
                    rows.remove(&pk(&b));
                }
                if let Some(a) = rc.after.as_ref().and_then(decode_row) {
                    rows.insert(pk(&a), a);
                }
            }
        }
        m
    }

    fn assert_has(&self, model: &SharedModel) {
        let (ks, tables) = model.read(|m| {
            let names: Vec<String> = m.spec.tables.iter().map(|t| t.name.clone()).collect();
            (m.spec.keyspace.clone(), names)
        });
        for t in tables.iter() {
            let got = self.tables.get(&format!("{ks}.{t}")).cloned();
            assert_eq!(got.unwrap_or_default(), model.table_rows(t), "{ks}.{t}");
        }
    }
}

fn copy_completed(evs: &[VEvent]) -> Vec<(String, String)> {
    evs.iter()
        .filter(|e| ty(e) == VEventType::CopyCompleted)
        .map(|e| (e.keyspace.clone(), e.shard.clone()))
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, s)| (k.to_string(), s.to_string()))
        .collect()
}

/// Every tablet event names its keyspace and shard; heartbeats and the final COPY_COMPLETED none.
fn assert_sources(evs: &[VEvent]) {
    for e in evs {
        let vtgate_own = ty(e) == VEventType::Heartbeat
            || (ty(e) == VEventType::CopyCompleted && e.shard.is_empty());
        assert_eq!(e.keyspace.is_empty(), vtgate_own, "{e:?}");
        assert_eq!(e.shard.is_empty(), vtgate_own, "{e:?}");
    }
}

#[tokio::test]
async fn a_stream_over_two_keyspaces_copies_both_and_ends_with_one_final_copy_completed() {
    let mut l = local(120).await;
    let mut s = l
        .open(request(both_keyspaces(""), Default::default()))
        .await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, fully_copied).await;
    let m = KsMirror::of(&evs);
    m.assert_has(&l.commerce());
    m.assert_has(&l.customer());
    assert!(
        m.tables.contains_key("commerce.customer") && m.tables.contains_key("customer.customer")
    );
    assert!(!m.tables.contains_key("customer.accounts"));
    let mut done = copy_completed(&evs);
    assert_eq!(done.pop(), Some((String::new(), String::new())));
    assert_eq!(ty(evs.last().unwrap()), VEventType::CopyCompleted);
    done.sort();
    let want = [("commerce", "0"), ("customer", "-80"), ("customer", "80-")];
    assert_eq!(done, pairs(&want));
    assert_sources(&evs);
    assert_no_interleaving(&evs);
    l.server.shutdown().await;
}

#[tokio::test]
async fn a_keyspace_regex_copies_every_keyspace() {
    let mut l = local(60).await;
    let req = request(vgtid(vec![entry("/.*", "", "")]), Default::default());
    let mut s = l.open(req).await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, fully_copied).await;
    let m = KsMirror::of(&evs);
    m.assert_has(&l.commerce());
    m.assert_has(&l.customer());
    // Only names matching the regex: "/^cu" is customer alone.
    let req = request(vgtid(vec![entry("/^cu", "", "")]), Default::default());
    let mut s = l.open(req).await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, fully_copied).await;
    assert!(evs
        .iter()
        .all(|e| e.keyspace.is_empty() || e.keyspace == "customer"));
    l.server.shutdown().await;
}

#[tokio::test]
async fn an_empty_keyspace_with_current_streams_every_keyspace() {
    let mut l = local(10).await;
    let req = request(vgtid(vec![entry("", "", "current")]), Default::default());
    let mut s = l.open(req).await;
    let mut evs = Vec::new();
    let others = |e: &[VEvent]| e.iter().filter(|x| ty(x) == VEventType::Other).count();
    read_until(&mut s, &mut evs, |e| others(e) == 3).await;
    let first = evs[0].vgtid.clone().expect("a VGTID first");
    assert_eq!(first.shard_gtids.len(), 3);
    assert!(first
        .shard_gtids
        .iter()
        .all(|g| g.gtid == "current" || g.gtid.starts_with("MySQL56/")));
    l.commerce().apply_random_transactions(5);
    l.customer().apply_random_transactions(5);
    let (commerce, customer) = (l.commerce(), l.customer());
    read_until(&mut s, &mut evs, |e| {
        let mut m = Mirror::default();
        m.apply_all(e);
        m.caught_up(&commerce) && m.caught_up(&customer)
    })
    .await;
    let rows_of = |ks: &str| {
        evs.iter()
            .any(|e| e.row_event.is_some() && e.keyspace == ks)
    };
    assert!(rows_of("commerce") && rows_of("customer"));
    assert_sources(&evs);
    assert_no_interleaving(&evs);
    l.server.shutdown().await;
}

#[tokio::test]
async fn an_explicit_shard_subset_copies_only_that_shards_rows() {
    let mut l = local(80).await;
    let req = request(
        vgtid(vec![entry("customer", "-80", "")]),
        Default::default(),
    );
    let mut s = l.open(req).await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, fully_copied).await;
    assert!(evs
        .iter()
        .all(|e| e.keyspace.is_empty() || (e.keyspace == "customer" && e.shard == "-80")));
    let want: BTreeMap<i64, Row> = l
        .customer()
        .read(|m| m.shards[0].tables["customer"].clone());
    assert!(!want.is_empty() && want.len() < 80);
    let m = KsMirror::of(&evs);
    assert_eq!(m.tables["customer.customer"], want);
    let want = [("customer", "-80"), ("", "")];
    assert_eq!(copy_completed(&evs), pairs(&want));
    for v in evs.iter().filter_map(|e| e.vgtid.as_ref()) {
        assert_eq!(v.shard_gtids.len(), 1);
    }
    l.server.shutdown().await;
}

#[tokio::test]
async fn vgtid_events_list_every_keyspaces_shards() {
    let mut l = local(50).await;
    let mut s = l
        .open(request(both_keyspaces(""), Default::default()))
        .await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, fully_copied).await;
    let want = [("commerce", "0"), ("customer", "-80"), ("customer", "80-")];
    let mut seen = 0;
    for v in evs.iter().filter_map(|e| e.vgtid.as_ref()) {
        let got: Vec<(String, String)> = v
            .shard_gtids
            .iter()
            .map(|g| (g.keyspace.clone(), g.shard.clone()))
            .collect();
        assert_eq!(got, pairs(&want));
        seen += 1;
    }
    assert!(seen > 3);
    // The last VGTID holds every shard's position once the copy is done.
    let last = evs.iter().rev().find_map(|e| e.vgtid.clone()).unwrap();
    let mut positions = l.commerce().positions().shard_gtids;
    positions.extend(l.customer().positions().shard_gtids);
    assert_eq!(last.shard_gtids, positions);
    l.server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_keyspace_among_several_is_refused() {
    let mut l = local(5).await;
    let req = vgtid(vec![entry("commerce", "", ""), entry("nope", "", "")]);
    let st = l.refused(request(req, Default::default())).await;
    assert_eq!(st.code(), Code::Unknown);
    assert!(
        st.message().contains("keyspaces/nope/SrvKeyspace"),
        "{st:?}"
    );
    let req = vgtid(vec![entry("commerce", "", ""), entry("customer", "0", "")]);
    let st = l.refused(request(req, Default::default())).await;
    assert_eq!(st.code(), Code::FailedPrecondition);
    assert!(st
        .message()
        .contains("shard provided in VGTID, 0, not found in the customer keyspace"));
    // A table-name rule needs the table in every streamed keyspace.
    let mut req = request(both_keyspaces(""), Default::default());
    req.filter = Some(Filter {
        rules: vec![Rule {
            r#match: "accounts".into(),
            filter: "select * from accounts".into(),
        }],
        ..Default::default()
    });
    let st = l.refused(req).await;
    assert!(st
        .message()
        .contains("table accounts is not present in the database"));
    assert_eq!(l.server.requests().len(), 3);
    l.server.shutdown().await;
}

#[tokio::test]
async fn keyspace_names_must_be_distinct() {
    let twice = vec![
        SharedModel::new(ModelSpec::demo(0)),
        SharedModel::new(ModelSpec::demo(0)),
    ];
    let err = SimVtgate::start_keyspaces(twice, "127.0.0.1:0", StreamOptions::default()).await;
    assert!(err.is_err());
    let one = SimVtgate::start(SharedModel::new(ModelSpec::demo(0)), "127.0.0.1:0")
        .await
        .unwrap();
    assert_eq!(one.models().len(), 1);
    assert!(one.keyspace("commerce").is_some() && one.keyspace("customer").is_none());
    one.shutdown().await;
}

#[tokio::test]
async fn tables_to_copy_and_regex_rules_apply_in_every_keyspace() {
    let mut l = local(30).await;
    let flags = VStreamFlags {
        tables_to_copy: vec!["corder".into()],
        ..Default::default()
    };
    let mut req = request(both_keyspaces(""), flags);
    req.filter = Some(Filter {
        rules: vec![Rule {
            r#match: "/^c".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    let mut s = l.open(req).await;
    let mut evs = Vec::new();
    read_until(&mut s, &mut evs, fully_copied).await;
    let mut copied: Vec<String> = KsMirror::of(&evs).tables.into_keys().collect();
    copied.sort();
    assert_eq!(copied, ["commerce.corder", "customer.corder"]);
    // Only `accounts` to copy: the `customer` keyspace has nothing to copy and no position.
    let flags = VStreamFlags {
        tables_to_copy: vec!["accounts".into()],
        ..Default::default()
    };
    let st = l.refused(request(both_keyspaces(""), flags)).await;
    assert!(st
        .message()
        .contains("stream needs a position or a table to copy"));
    l.server.shutdown().await;
}

#[tokio::test]
async fn faults_apply_to_the_whole_stream_over_several_keyspaces() {
    let mut l = local(50).await;
    let faults = l.server.faults();
    faults.fail_after_events(25, Code::Unavailable, "injected");
    let mut s = l
        .open(request(both_keyspaces(""), Default::default()))
        .await;
    let mut n = 0;
    let err = loop {
        match s.message().await {
            Ok(Some(r)) => n += r.events.len(),
            Ok(None) => panic!("clean end"),
            Err(e) => break e,
        }
    };
    assert_eq!((n, err.code()), (25, Code::Unavailable));
    l.server.shutdown().await;
}
