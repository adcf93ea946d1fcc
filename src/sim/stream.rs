//! One VStream: merges the shard streams of every keyspace it serves (round robin between
//! units, never inside one), packs units into VStreamResponses, sends heartbeats when idle,
//! and applies faults, throttling and shutdown.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tonic::Status;

use super::events::{heartbeat, size, Source};
use super::faults::{AfterInjection, Faults};
use super::keyspaces::{any_changed, mark_seen, refs, Keyspaces};
use super::model::Model;
use super::request::StreamSetup;
use super::shard_stream::{BatchLimits, ShardStream, StreamState};
use crate::source::proto::binlogdata::VEvent;
use crate::source::proto::vtgate::VStreamResponse;

/// Server-side streaming knobs.
#[derive(Debug, Clone, Copy)]
pub struct StreamOptions {
    /// Copy batch limits (default 1000 rows / 250 KB).
    pub copy_batch: BatchLimits,
    /// Max bytes of events per response (vttablet's packet size, default 250 KB).
    pub packet_bytes: usize,
    /// Pack several whole transactions into one response when several are ready
    /// (default true). Real vtgate sends one response per transaction.
    pub pack_transactions: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        Self {
            copy_batch: BatchLimits {
                rows: 1000,
                bytes: 250_000,
            },
            packet_bytes: 250_000,
            pack_transactions: true,
        }
    }
}

/// How a stream ends.
enum End {
    ClientGone,
    Fail(Status),
    /// Ended cleanly (status OK) by an injection.
    Closed,
}

type Tx = mpsc::Sender<Result<VStreamResponse, Status>>;

/// A running VStream.
pub struct Stream {
    keyspaces: Keyspaces,
    faults: Arc<Faults>,
    opts: StreamOptions,
    state: StreamState,
    shards: Vec<ShardStream>,
    rr: usize,
    max_bytes: usize,
    heartbeat: Option<Duration>,
    deadline: Option<(Instant, u32)>,
    tx: Tx,
    shutdown: watch::Receiver<bool>,
    last_send: Instant,
}

/// Everything a stream needs besides its request.
pub struct StreamEnv {
    /// The served keyspaces (the stream reads those its request names).
    pub keyspaces: Keyspaces,
    /// Faults.
    pub faults: Arc<Faults>,
    /// Knobs.
    pub opts: StreamOptions,
    /// Becomes true when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

impl Stream {
    /// Builds the shard cursors for a resolved request (call with every keyspace locked:
    /// `models` as in `env.keyspaces`).
    pub fn new(setup: StreamSetup, models: &[&Model], env: StreamEnv, tx: Tx) -> Self {
        let replay_at = setup
            .shards
            .iter()
            .position(|s| {
                let purged = models[s.keyspace].shards[s.model_index].purged;
                ShardStream::can_replay(s, purged)
            })
            .filter(|_| env.faults.take_replay());
        let bare = setup.flags.exclude_keyspace_from_table_name;
        let shards = setup
            .shards
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let model = models[s.keyspace];
                let src = Source {
                    keyspace: model.spec.keyspace.clone(),
                    shard: model.shards[s.model_index].name.clone(),
                    bare_names: bare,
                };
                ShardStream::new(s, i, src, replay_at == Some(i))
            })
            .collect();
        let flags = &setup.flags;
        let chunk = usize::try_from(flags.transaction_chunk_size).unwrap_or(0);
        let max_bytes = match chunk {
            c if c > 0 && !flags.minimize_skew => c.min(env.opts.packet_bytes),
            _ => env.opts.packet_bytes,
        };
        let secs = flags.max_stream_age_seconds;
        let deadline =
            (secs > 0).then(|| (Instant::now() + Duration::from_secs(u64::from(secs)), secs));
        let heartbeat = (flags.heartbeat_interval > 0)
            .then(|| Duration::from_secs(u64::from(flags.heartbeat_interval)));
        let state = StreamState {
            vgtid: setup.vgtid,
            filter: setup.filter,
            limits: env.opts.copy_batch,
            copy_completed: BTreeSet::new(),
        };
        Self {
            keyspaces: env.keyspaces,
            faults: env.faults,
            opts: env.opts,
            state,
            shards,
            rr: 0,
            max_bytes: max_bytes.max(1),
            heartbeat,
            deadline,
            tx,
            shutdown: env.shutdown,
            last_send: Instant::now(),
        }
    }

    /// Runs until the client goes away or the stream fails (the failure is sent as status).
    pub async fn run(mut self) {
        if let Err(End::Fail(status)) = self.run_inner().await {
            let _ = self.tx.send(Err(status)).await;
        }
    }

    async fn run_inner(&mut self) -> Result<(), End> {
        let mut changes = self.keyspaces.subscribe_all();
        loop {
            self.check_alive()?;
            mark_seen(&mut changes);
            let units = self.produce().map_err(End::Fail)?;
            if units.is_empty() {
                self.wait_idle(&mut changes).await?;
                continue;
            }
            for response in to_responses(units, self.opts.pack_transactions, self.max_bytes) {
                self.send(response).await?;
            }
        }
    }

    fn check_alive(&self) -> Result<(), End> {
        if *self.shutdown.borrow() {
            return Err(End::Fail(Status::unavailable("vtgate is shutting down")));
        }
        match self.deadline {
            Some((t, secs)) if Instant::now() >= t => Err(End::Fail(Status::unavailable(format!(
                "vstream exceeded maximum age of {secs}s (jitter: 0s)"
            )))),
            _ => Ok(()),
        }
    }

    /// Round robin over the shards of every keyspace, one unit per shard per turn, up to one
    /// packet of bytes (all keyspaces locked: each unit reads one consistent state).
    fn produce(&mut self) -> Result<Vec<Vec<VEvent>>, Status> {
        let guards = self.keyspaces.lock_all();
        let models = refs(&guards);
        let n = self.shards.len();
        let (mut out, mut bytes, mut idle) = (Vec::new(), 0usize, 0usize);
        while n > 0 && idle < n && bytes < self.opts.packet_bytes {
            let i = self.rr % n;
            self.rr = self.rr.wrapping_add(1);
            let model = models[self.shards[i].keyspace()];
            match self.shards[i].next_unit(model, &mut self.state)? {
                Some(unit) => {
                    bytes += unit.iter().map(size).sum::<usize>();
                    out.push(unit);
                    idle = 0;
                }
                None => idle += 1,
            }
        }
        Ok(out)
    }

    async fn wait_idle(&mut self, changes: &mut [watch::Receiver<u64>]) -> Result<(), End> {
        enum Woke {
            Change,
            Heartbeat,
            Tick,
            Shutdown,
            Gone,
        }
        let hb_at = self.heartbeat.map(|d| self.last_send + d);
        let age_at = self.deadline.map(|(t, _)| t);
        let woke = tokio::select! {
            alive = any_changed(changes) => if alive { Woke::Change } else { Woke::Gone },
            _ = sleep_until(hb_at) => Woke::Heartbeat,
            _ = sleep_until(age_at) => Woke::Tick,
            r = self.shutdown.changed() => if r.is_ok() { Woke::Tick } else { Woke::Shutdown },
            _ = self.tx.closed() => Woke::Gone,
        };
        match woke {
            Woke::Change | Woke::Tick => Ok(()),
            Woke::Heartbeat => self.send(vec![heartbeat()]).await,
            Woke::Shutdown => Err(End::Fail(Status::unavailable("vtgate is shutting down"))),
            Woke::Gone => Err(End::ClientGone),
        }
    }

    /// Sends one response, honouring stall, throttle, the event budget and injections.
    async fn send(&mut self, mut events: Vec<VEvent>) -> Result<(), End> {
        while let Some(until) = self.faults.stall_until() {
            self.sleep_or_gone(until).await?;
        }
        if let Some(interval) = self.faults.min_interval() {
            self.sleep_or_gone(self.last_send + interval).await?;
        }
        let (allowed, fail) = self.faults.consume(events.len());
        events.truncate(allowed);
        if let Some(fired) = self.faults.take_injection(events.len()) {
            let rest = events.split_off(fired.at.min(events.len()));
            self.emit(events).await?;
            for response in fired.responses {
                self.tx
                    .send(Ok(response))
                    .await
                    .map_err(|_| End::ClientGone)?;
            }
            if fired.then == AfterInjection::EndStream {
                return Err(End::Closed);
            }
            events = rest;
        }
        self.emit(events).await?;
        self.last_send = Instant::now();
        match fail {
            Some(status) => Err(End::Fail(status)),
            None => Ok(()),
        }
    }

    /// Sends `events` as one response (nothing when empty).
    async fn emit(&self, events: Vec<VEvent>) -> Result<(), End> {
        if events.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Ok(VStreamResponse { events }))
            .await
            .map_err(|_| End::ClientGone)
    }

    async fn sleep_or_gone(&self, until: Instant) -> Result<(), End> {
        tokio::select! {
            _ = tokio::time::sleep_until(until.into()) => Ok(()),
            _ = self.tx.closed() => Err(End::ClientGone),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

/// Splits units into responses of at most `max_bytes` (a unit may span several responses;
/// with `pack`, several whole units share one response).
fn to_responses(units: Vec<Vec<VEvent>>, pack: bool, max_bytes: usize) -> Vec<Vec<VEvent>> {
    let mut out = Vec::new();
    let (mut cur, mut cur_bytes) = (Vec::new(), 0usize);
    for unit in units {
        for ev in unit {
            let s = size(&ev);
            if !cur.is_empty() && cur_bytes + s > max_bytes {
                out.push(std::mem::take(&mut cur));
                cur_bytes = 0;
            }
            cur.push(ev);
            cur_bytes += s;
        }
        if !pack && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}
