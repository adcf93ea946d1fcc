//! The network fault matrix through the real gRPC path, with live writes on the source while
//! the faults happen: streams cut in the middle of a message, black-holed connections,
//! vtgate restarts, bursts of the errors real vtgate sends around cluster events, replays.
//! Oracle every time: mirror equals source (no missing, duplicate or differing key),
//! `PRAGMA integrity_check` ok, and the stored checkpoint never moved backwards.
//!
//! Fault counts: `VTMIRROR_NET_FAULTS` (cuts, error rounds, replays, restarts per test) and
//! `VTMIRROR_NET_BLACK_HOLES`; the defaults keep the file around two minutes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::support::checkpoint_watch::{copy_completed, CheckpointWatch};
use crate::support::proxy::Proxy;
use crate::support::sync_runner::{caught_up, mirror_report, wait_until, BinarySync, LibrarySync};
use crate::support::*;
use tokio::sync::watch;
use tonic::Code;
use vtmirror::commands::sync::Outcome;
use vtmirror::sim::{spawn_live_writes, SharedModel, SimVtgate};

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: fault points replayable from the printed seed.
struct Seeded(u64);

impl Seeded {
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        lo + (z ^ (z >> 31)) % (hi - lo)
    }
}

/// Live writes until the returned sender is dropped or set.
fn live_writes(model: &std::sync::Arc<SharedModel>, per_sec: f64) -> watch::Sender<bool> {
    let (stop, stopped) = watch::channel(false);
    spawn_live_writes(model.clone(), per_sec, stopped);
    stop
}

/// The last error the sync recorded, shortened to its kind (no row data is in it).
fn last_error(db: &std::path::Path) -> String {
    rusqlite::Connection::open(db)
        .and_then(|c| {
            c.query_row(
                "SELECT value FROM _vtmirror_status WHERE key = 'last_error'",
                [],
                |r| r.get::<_, String>(0),
            )
        })
        .map(|e| e.chars().take(90).collect())
        .unwrap_or_default()
}

/// Stops writes, waits until the mirror holds every source transaction, then compares.
async fn converge(
    stop_writes: watch::Sender<bool>,
    db: &std::path::Path,
    model: &SharedModel,
) -> usize {
    stop_writes.send_replace(true);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        wait_until(Duration::from_secs(120), || caught_up(db, model)).await,
        "the mirror did not catch up within 120 s after the faults; {}",
        mirror_report(db)
    );
    assert_mirror_equals_source(db, model)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_message_during_copy_and_replication_resumes_and_converges() {
    let began = Instant::now();
    let cuts = knob("VTMIRROR_NET_FAULTS", 12);
    let mut rng = Seeded(20_261_123);
    let (model, server) = source_with_batch(6_000, 100).await;
    server.faults().set_max_responses_per_sec(Some(30.0));
    let proxy = Proxy::start(server.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cut.db");
    let mut opts = options(&proxy.endpoint(), &db);
    opts.exit_when_caught_up = false;
    let sync = LibrarySync::spawn(opts);
    let writes = live_writes(&model, 30.0);
    let mut watch = CheckpointWatch::new(&db);
    let (mut in_copy, mut in_replication, mut errors) = (0, 0, BTreeSet::new());
    for cut in 0..cuts {
        if cut == cuts / 2 {
            server.faults().set_max_responses_per_sec(None);
        }
        tokio::time::sleep(Duration::from_millis(rng.between(100, 600))).await;
        let copying = !copy_completed(&db);
        // Copy responses are tens of KB, replication ones a few hundred bytes.
        let bytes = if copying {
            rng.between(1, 60_000)
        } else {
            rng.between(1, 6_000)
        };
        let before = proxy.stats();
        // Every fourth fault resets the connection (RST) at once instead.
        let reset = cut % 4 == 3;
        if reset {
            proxy.reset_all();
        } else {
            proxy.cut_after_bytes(bytes);
        }
        let reconnected = wait_until(Duration::from_secs(30), || {
            let now = proxy.stats();
            (reset || now.cuts > before.cuts) && now.accepted > before.accepted
        })
        .await;
        assert!(
            reconnected,
            "cut {cut} ({bytes} bytes) fired and the sync reconnected"
        );
        if copying {
            in_copy += 1
        } else {
            in_replication += 1
        }
        sync.assert_running(&format!("after cut {cut}"));
        watch.observe(&format!("after cut {cut}"));
        errors.insert(last_error(&db));
    }
    let rows = converge(writes, &db, &model).await;
    watch.observe("at the end");
    assert_eq!(sync.stop().await.unwrap(), Outcome::Shutdown);
    println!(
        "network_faults cut [{:.1} s]: {cuts} faults ({} cut mid-message, {} RST; {in_copy} during copy, {in_replication} during replication), \
         {rows} rows compared, 0 missing/duplicate/differing, {} checkpoint samples, errors seen: {errors:?}",
        began.elapsed().as_secs_f64(),
        proxy.stats().cuts,
        proxy.stats().resets,
        watch.samples
    );
    assert!(
        in_copy >= 1 && in_replication >= 1,
        "cuts landed in both phases"
    );
}

/// Black-holes the connection `rounds` times after the copy; returns each detection time
/// (black hole → the client's next connection). With `hold`, the hole stays through that
/// reconnect, whose own detection time is pushed too.
async fn black_hole_rounds(
    heartbeat: &str,
    rounds: usize,
    limit: Duration,
    hold: bool,
) -> Vec<Duration> {
    let began = Instant::now();
    let (model, server) = source(2_000).await;
    let proxy = Proxy::start(server.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hole.db");
    let args = ["--heartbeat", heartbeat, "--max-backoff", "0.2"];
    let mut sync = BinarySync::spawn(&proxy.endpoint(), &db, &args);
    let writes = live_writes(&model, 20.0);
    assert!(wait_until(Duration::from_secs(60), || copy_completed(&db)).await);
    let mut watch = CheckpointWatch::new(&db);
    let mut detections = Vec::new();
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_millis(500)).await;
        proxy.black_hole();
        for _ in 0..1 + usize::from(hold) {
            let before = proxy.stats().accepted;
            let started = Instant::now();
            let detected = wait_until(limit, || proxy.stats().accepted > before).await;
            assert!(
                detected,
                "black hole {round} not detected within {limit:?}:\n{}",
                sync.log_text()
            );
            detections.push(started.elapsed());
        }
        // The partition heals a moment later; the pending connection goes through.
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.pass_through();
        sync.assert_running(&format!("after black hole {round}"));
        watch.observe(&format!("after black hole {round}"));
    }
    let rows = converge(writes, &db, &model).await;
    watch.observe("at the end");
    let log = sync.log_text();
    assert!(
        sync.terminate().success(),
        "vtmirror exits 0 on SIGTERM:\n{log}"
    );
    let reasons: BTreeSet<String> = log
        .lines()
        .filter_map(|l| l.split("error=").nth(1))
        .map(|e| e.chars().take(100).collect())
        .collect();
    println!(
        "network_faults black hole (--heartbeat {heartbeat}) [{:.1} s]: {rounds} black holes (held through the reconnect: {hold}), detected after {:?}, \
         {rows} rows compared, 0 missing/duplicate/differing, reasons logged: {reasons:?}",
        began.elapsed().as_secs_f64(),
        detections.iter().map(|d| format!("{:.1}s", d.as_secs_f64())).collect::<Vec<_>>()
    );
    detections
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_connection_is_detected_by_the_heartbeat_stall_timeout_and_resumed() {
    let rounds = knob("VTMIRROR_NET_BLACK_HOLES", 2);
    // --heartbeat 1: silent for 3 × 1 + 5 = 8 s means stalled.
    // Every other detection is of a reconnect made into the black hole (no stream headers).
    for took in black_hole_rounds("1", rounds, Duration::from_secs(20), true).await {
        assert!(
            took >= Duration::from_secs(7) && took <= Duration::from_secs(11),
            "{took:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_holed_connection_without_heartbeats_is_detected_by_keepalive_and_resumed() {
    let rounds = knob("VTMIRROR_NET_BLACK_HOLES", 1);
    let bound = vtmirror::source::vstream::KEEPALIVE_INTERVAL
        + vtmirror::source::vstream::KEEPALIVE_TIMEOUT;
    for took in black_hole_rounds("0", rounds, bound * 2, false).await {
        assert!(
            took <= bound + Duration::from_secs(3),
            "{took:?} > keepalive bound {bound:?}"
        );
    }
}

/// A new simulated vtgate on `addr` over the same model (a restarted vtgate).
async fn restart_vtgate(
    model: &std::sync::Arc<SharedModel>,
    addr: std::net::SocketAddr,
) -> SimVtgate {
    let mut opts = vtmirror::sim::StreamOptions::default();
    opts.copy_batch.rows = 100;
    opts.pack_transactions = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return SimVtgate::serve(model.clone(), listener, opts).unwrap(),
            Err(e) if Instant::now() > deadline => panic!("cannot bind {addr} again: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vtgate_restart_during_copy_and_replication_is_retried_with_backoff_and_converges() {
    let began = Instant::now();
    let restarts = knob("VTMIRROR_NET_FAULTS", 4).max(2);
    let mut rng = Seeded(777);
    let (model, mut server) = source_with_batch(6_000, 100).await;
    let addr = server.addr();
    server.faults().set_max_responses_per_sec(Some(30.0));
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("restart.db");
    let args = ["--heartbeat", "1", "--max-backoff", "0.5"];
    let mut sync = BinarySync::spawn(&addr.to_string(), &db, &args);
    let writes = live_writes(&model, 20.0);
    let mut watch = CheckpointWatch::new(&db);
    let (mut in_copy, mut in_replication, mut down_total) = (0, 0, Duration::ZERO);
    let mut slowest = Duration::ZERO;
    for restart in 0..restarts {
        tokio::time::sleep(Duration::from_millis(rng.between(800, 2_000))).await;
        let copying = !copy_completed(&db);
        server.shutdown().await;
        let down = Duration::from_millis(rng.between(500, 2_500));
        tokio::time::sleep(down).await;
        down_total += down;
        sync.assert_running(&format!("while vtgate was down ({restart})"));
        server = restart_vtgate(&model, addr).await;
        let restarted = Instant::now();
        if restart + 1 < restarts / 2 {
            server.faults().set_max_responses_per_sec(Some(30.0));
        }
        let back = wait_until(Duration::from_secs(30), || !server.requests().is_empty()).await;
        assert!(
            back,
            "no reconnect after restart {restart}:\n{}",
            sync.log_text()
        );
        slowest = slowest.max(restarted.elapsed());
        if copying {
            in_copy += 1
        } else {
            in_replication += 1
        }
        watch.observe(&format!("after restart {restart}"));
    }
    let rows = converge(writes, &db, &model).await;
    watch.observe("at the end");
    let log = sync.log_text();
    assert!(
        sync.terminate().success(),
        "vtmirror exits 0 on SIGTERM:\n{log}"
    );
    let retries = log.matches("stream interrupted").count();
    println!(
        "network_faults restart [{:.1} s]: {restarts} vtgate restarts ({in_copy} during copy, {in_replication} during replication), \
         {:.1}s down in total, {retries} retries logged, back at most {:.1}s after vtgate, {rows} rows compared, \
         0 missing/duplicate/differing",
        began.elapsed().as_secs_f64(),
        down_total.as_secs_f64(),
        slowest.as_secs_f64()
    );
    assert!(
        in_copy >= 1 && in_replication >= 1,
        "restarts landed in both phases"
    );
    // Backoff, not a hot loop: at most one attempt per 100 ms of downtime (base delay 200 ms, jittered).
    assert!(
        retries as f64 <= down_total.as_secs_f64() * 10.0 + restarts as f64 * 2.0,
        "{retries} retries"
    );
}

/// Errors real vtgate (v19–v24, `vstream_manager.go`, `tabletgateway.go`, vttablet) sends
/// around reparents, reshards and tablet restarts. CLUSTER_EVENT (vtrpc code 17) has no
/// gRPC name; tonic reads it as UNKNOWN.
const CLUSTER_ERRORS: &[(Code, &str)] = &[
    (Code::Unavailable, "target: commerce.-80.replica: no healthy tablet available for 'keyspace:\"commerce\" shard:\"-80\" tablet_type:REPLICA'"),
    (Code::Unknown, "target: commerce.-80.primary: current keyspace is being resharded"),
    (Code::Unknown, "target: commerce.80-.primary: primary is not serving, there may be a reparent operation in progress"),
    (Code::Unavailable, "inconsistent state detected, primary is serving but initially found no available tablet"),
    (Code::Unavailable, "error streaming from tablet zone1-0000000101 in commerce/-80: error streaming tablet health from zone1-0000000101: tablet zone1-0000000101 type has changed from REPLICA to PRIMARY, restarting vstream"),
    (Code::FailedPrecondition, "error starting stream from shard GTID keyspace:\"commerce\" shard:\"-80\" gtid:\"MySQL56/00000000-0000-0000-0000-000000000001:1-42\": persistent error in vstream for commerce/-80 on tablet zone1-0000000101; giving up: vttablet: rpc error: code = FailedPrecondition desc = operation not allowed in state NOT_SERVING"),
    (Code::Unknown, "vstream ended unexpectedly on tablet zone1-0000000101 in commerce/-80"),
    (Code::Unknown, "vttablet: rpc error: code = Unknown desc = VStreamer is not open"),
    (Code::Cancelled, "failed to find a REPLICA tablet for VStream in commerce/80- within the zone1 cell(s): context has expired"),
    (Code::Unavailable, "vtgate: http://vtgate:15001/: tablet zone1-0000000201 is no longer healthy: vttablet is shutting down, restarting vstream"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_unavailable_and_cluster_event_errors_are_retried_and_converge() {
    let began = Instant::now();
    let rounds = knob("VTMIRROR_NET_FAULTS", CLUSTER_ERRORS.len()).max(1);
    let mut rng = Seeded(42);
    let (model, server) = source_with_batch(3_000, 100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("burst.db");
    let mut opts = options(&server.endpoint(), &db);
    opts.exit_when_caught_up = false;
    let sync = LibrarySync::spawn(opts);
    let writes = live_writes(&model, 30.0);
    let mut watch = CheckpointWatch::new(&db);
    let (mut mid_stream, mut rejected, mut in_copy) = (0, 0, 0);
    for round in 0..rounds {
        let (code, text) = CLUSTER_ERRORS[round % CLUSTER_ERRORS.len()];
        if round == rounds / 2 {
            // The second half hits replication.
            assert!(
                wait_until(Duration::from_secs(120), || copy_completed(&db)).await,
                "round {round}: the copy did not complete; {}",
                mirror_report(&db)
            );
        }
        let burst = rng.between(1, 4) as usize;
        let before = server.requests().len();
        in_copy += usize::from(!copy_completed(&db));
        // The stream dies mid-stream with the error, then `burst` reconnects are refused with it.
        server.faults().reject_next_requests(burst, code, text);
        server
            .faults()
            .fail_after_events(rng.between(1, 400), code, text);
        let retried = wait_until(Duration::from_secs(90), || {
            server.requests().len() > before + burst
        })
        .await;
        assert!(
            retried,
            "round {round}: {text}: {} requests after {before} (sync ended: {}); {}",
            server.requests().len(),
            sync.has_ended(),
            mirror_report(&db)
        );
        sync.assert_running(&format!("after {code:?}: {text}"));
        watch.observe(&format!("after round {round}"));
        (mid_stream, rejected) = (mid_stream + 1, rejected + burst);
    }
    let rows = converge(writes, &db, &model).await;
    watch.observe("at the end");
    assert_eq!(sync.stop().await.unwrap(), Outcome::Shutdown);
    println!(
        "network_faults cluster errors [{:.1} s]: {} faults ({mid_stream} mid-stream, {rejected} requests refused; \
         {} distinct real vtgate texts; {in_copy} rounds began during copy), {rows} rows compared, 0 missing/duplicate/differing",
        began.elapsed().as_secs_f64(),
        mid_stream + rejected,
        rounds.min(CLUSTER_ERRORS.len())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_transaction_after_a_cut_mid_transaction_is_applied_once() {
    let began = Instant::now();
    let rounds = knob("VTMIRROR_NET_FAULTS", 8);
    let mut rng = Seeded(9);
    let (model, server) = source_with_batch(500, 100).await;
    let proxy = Proxy::start(server.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("replay.db");
    let mut opts = options(&proxy.endpoint(), &db);
    opts.exit_when_caught_up = false;
    let sync = LibrarySync::spawn(opts);
    assert!(
        wait_until(Duration::from_secs(120), || caught_up(&db, &model)).await,
        "no first catch-up ({} requests, sync ended: {}); {}",
        server.requests().len(),
        sync.has_ended(),
        mirror_report(&db)
    );
    let writes = live_writes(&model, 10.0);
    let mut watch = CheckpointWatch::new(&db);
    let (mut cuts, mut errors) = (0, 0);
    for round in 0..rounds {
        let before = (proxy.stats(), server.requests().len());
        // The server replays the last applied transaction on the next connect ...
        server.faults().replay_last_transaction_on_reconnect();
        // ... after the stream dies inside a 2,000-row transaction (one per shard, each
        // spanning responses): by the network or by a tablet error.
        if round % 2 == 0 {
            proxy.cut_after_bytes(rng.between(2_000, 120_000));
            cuts += 1;
        } else {
            server.faults().fail_after_events(
                rng.between(3, 1_500),
                Code::Unavailable,
                "vttablet: rpc error: code = Unavailable desc = tablet is shutting down",
            );
            errors += 1;
        }
        model.large_transaction("corder", 2_000).unwrap();
        let resumed = wait_until(Duration::from_secs(30), || {
            server.requests().len() > before.1
                && (round % 2 == 1 || proxy.stats().cuts > before.0.cuts)
        })
        .await;
        assert!(resumed, "round {round}: the stream was cut and resumed");
        sync.assert_running(&format!("after replay round {round}"));
        watch.observe(&format!("after replay round {round}"));
    }
    let rows = converge(writes, &db, &model).await;
    watch.observe("at the end");
    assert_eq!(sync.stop().await.unwrap(), Outcome::Shutdown);
    println!(
        "network_faults replay [{:.1} s]: {rounds} replays of an applied transaction after a cut inside a 2,000-row transaction \
         ({cuts} network cuts, {errors} UNAVAILABLE), {rows} rows compared, 0 missing/duplicate/differing",
        began.elapsed().as_secs_f64()
    );
}
