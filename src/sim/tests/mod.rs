//! End-to-end tests of the simulated vtgate through the generated tonic client.

mod copy;
mod errors_faults;
mod execute;
mod keyspaces;
mod replication;
mod row_filters;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tonic::transport::Channel;
use tonic::Streaming;

use super::*;
use crate::source::proto::binlogdata::{Filter, Rule, ShardGtid, VEvent, VEventType, VGtid};
use crate::source::proto::vtgate::{VStreamFlags, VStreamRequest, VStreamResponse};
use crate::source::proto::vtgateservice::vitess_client::VitessClient;

pub(super) struct Harness {
    pub model: Arc<SharedModel>,
    pub server: SimVtgate,
    pub client: VitessClient<Channel>,
}

pub(super) async fn harness(rows: usize, opts: StreamOptions) -> Harness {
    let model = SharedModel::new(ModelSpec::demo(rows));
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

pub(super) fn small_batches(rows: usize) -> StreamOptions {
    StreamOptions {
        copy_batch: BatchLimits {
            rows,
            bytes: 1 << 20,
        },
        ..StreamOptions::default()
    }
}

pub(super) fn all_shards(gtid: &str) -> VGtid {
    VGtid {
        shard_gtids: vec![ShardGtid {
            keyspace: "commerce".into(),
            gtid: gtid.into(),
            ..Default::default()
        }],
    }
}

pub(super) fn request(vgtid: VGtid, flags: VStreamFlags) -> VStreamRequest {
    VStreamRequest {
        vgtid: Some(vgtid),
        filter: Some(Filter {
            rules: vec![Rule {
                r#match: "/.*".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        flags: Some(flags),
        ..Default::default()
    }
}

pub(super) async fn open(h: &mut Harness, req: VStreamRequest) -> Streaming<VStreamResponse> {
    h.client.v_stream(req).await.unwrap().into_inner()
}

pub(super) fn ty(ev: &VEvent) -> VEventType {
    VEventType::try_from(ev.r#type).unwrap_or(VEventType::Unknown)
}

/// Reads responses until `done(all events so far)`; panics after 10 s.
pub(super) async fn read_until(
    s: &mut Streaming<VStreamResponse>,
    events: &mut Vec<VEvent>,
    mut done: impl FnMut(&[VEvent]) -> bool,
) -> Vec<VStreamResponse> {
    let mut responses = Vec::new();
    while !done(events) {
        let r = tokio::time::timeout(Duration::from_secs(10), s.message()).await;
        let resp = r
            .expect("timed out")
            .expect("stream error")
            .expect("stream ended");
        events.extend(resp.events.iter().cloned());
        responses.push(resp);
    }
    responses
}

/// Reads until the events so far, applied to a fresh mirror, reach the model's positions;
/// returns that mirror.
pub(super) async fn read_until_caught_up(
    s: &mut Streaming<VStreamResponse>,
    events: &mut Vec<VEvent>,
    model: &SharedModel,
) -> Mirror {
    read_until(s, events, |e| {
        let mut m = Mirror::default();
        m.apply_all(e);
        m.caught_up(model)
    })
    .await;
    let mut m = Mirror::default();
    m.apply_all(events);
    m
}

pub(super) fn fully_copied(evs: &[VEvent]) -> bool {
    evs.iter()
        .any(|e| ty(e) == VEventType::CopyCompleted && e.keyspace.is_empty())
}

/// An idempotent mirror of the stream, as a client would keep it.
#[derive(Default)]
pub(super) struct Mirror {
    pub tables: BTreeMap<String, BTreeMap<i64, Row>>,
    pub committed: Option<VGtid>,
    pending: Option<VGtid>,
    pub fields: HashMap<(String, String), usize>,
}

impl Mirror {
    pub fn apply_all(&mut self, evs: &[VEvent]) {
        evs.iter().for_each(|e| self.apply(e));
    }

    pub fn apply(&mut self, ev: &VEvent) {
        match ty(ev) {
            VEventType::Field => {
                let f = ev.field_event.as_ref().unwrap();
                self.fields
                    .insert((f.shard.clone(), bare(&f.table_name)), f.fields.len());
            }
            VEventType::Row => {
                let r = ev.row_event.as_ref().unwrap();
                let table = bare(&r.table_name);
                let ncols = self.fields[&(r.shard.clone(), table.clone())];
                let rows = self.tables.entry(table).or_default();
                for rc in &r.row_changes {
                    if let Some(b) = rc.before.as_ref().and_then(decode_row) {
                        rows.remove(&pk(&b));
                    }
                    if let Some(a) = rc.after.as_ref().and_then(decode_row) {
                        assert_eq!(a.len(), ncols);
                        rows.insert(pk(&a), a);
                    }
                }
            }
            VEventType::Vgtid => self.pending = ev.vgtid.clone(),
            VEventType::Commit | VEventType::Other => self.committed = self.pending.clone(),
            _ => {}
        }
    }

    /// Whether the committed VGtid has reached the model's positions on every shard.
    pub fn caught_up(&self, model: &SharedModel) -> bool {
        let Some(c) = &self.committed else {
            return false;
        };
        let want = model.positions();
        want.shard_gtids.iter().all(|w| {
            c.shard_gtids
                .iter()
                .any(|g| g.shard == w.shard && g.gtid == w.gtid)
        })
    }

    pub fn assert_equals_model(&self, model: &SharedModel) {
        for t in ["customer", "corder", "accounts"] {
            let empty = BTreeMap::new();
            let got = self.tables.get(t).unwrap_or(&empty);
            assert_eq!(got, &model.table_rows(t), "table {t} differs");
        }
    }
}

pub(super) fn bare(name: &str) -> String {
    name.rsplit('.').next().unwrap_or(name).to_string()
}

pub(super) fn pk(row: &Row) -> i64 {
    std::str::from_utf8(row[0].as_ref().unwrap())
        .unwrap()
        .parse()
        .unwrap()
}

/// Asserts per-shard transactions are never interleaved with another shard's events.
pub(super) fn assert_no_interleaving(evs: &[VEvent]) {
    let mut open: Option<String> = None;
    for e in evs {
        match ty(e) {
            VEventType::Heartbeat => continue,
            VEventType::Begin => {
                if let Some(s) = &open {
                    assert_eq!(s, &e.shard, "BEGIN of another shard inside a transaction");
                }
                open = Some(e.shard.clone());
            }
            VEventType::Commit => {
                assert_eq!(open.as_deref(), Some(e.shard.as_str()));
                open = None;
            }
            _ => {
                if let Some(s) = &open {
                    assert_eq!(
                        s, &e.shard,
                        "event of another shard inside a transaction: {e:?}"
                    );
                }
            }
        }
    }
}
