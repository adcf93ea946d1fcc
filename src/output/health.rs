//! `/healthz` and `/readyz` verdicts for load balancers and Kubernetes probes, from the live
//! counters alone (never the mirror file), with the reason as text.
//!
//! Liveness asks "should this process be restarted?": only a writer stuck on one message
//! (a disk that stopped answering, a lock held forever) or a sync that failed says yes. A lost
//! vtgate does not: the sync reconnects by itself and a restart would not help. Readiness
//! asks "may readers rely on this mirror now?": the copy finished and the mirror is at most
//! `--ready-max-lag` behind the source (the lag `status` shows, kept fresh by heartbeats).

use std::time::Duration;

use crate::output::progress::{Snapshot, SyncState};

/// The limits of the two verdicts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthLimits {
    /// Readiness: the largest lag still ready.
    pub ready_max_lag: Duration,
    /// Liveness: the longest time the writer may spend on one queued message.
    pub max_busy: Duration,
}

impl Default for HealthLimits {
    fn default() -> Self {
        HealthLimits {
            ready_max_lag: Duration::from_secs(60),
            max_busy: Duration::from_secs(300),
        }
    }
}

/// An HTTP answer: 200 when `ok`, else 503, with `reason` as the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub reason: String,
}

impl Verdict {
    fn ok(reason: String) -> Verdict {
        Verdict { ok: true, reason }
    }
    fn fail(reason: String) -> Verdict {
        Verdict { ok: false, reason }
    }
}

/// Liveness: alive, and the writer is making progress or idle by choice.
pub fn healthz(now: &Snapshot, limits: &HealthLimits) -> Verdict {
    let state = now.state.name();
    if now.state == SyncState::Failed {
        return Verdict::fail("the sync failed on a definite error (see the log)".into());
    }
    match now.writer_busy_ms {
        Some(ms) if ms as u128 > limits.max_busy.as_millis() => Verdict::fail(format!(
            "the writer has been applying one batch for {} s (limit {} s): is the disk or the \
             mirror file's lock stuck?",
            ms / 1000,
            limits.max_busy.as_secs()
        )),
        Some(ms) => Verdict::ok(format!("ok: {state}, writer applying for {ms} ms")),
        None => Verdict::ok(format!("ok: {state}, writer idle (waiting for the stream)")),
    }
}

/// Readiness at `now_secs`: copy completed, no table copy unfinished (`copies`, as
/// `table (reason)`), and lag within the limit.
pub fn readyz(now: &Snapshot, copies: &[String], now_secs: i64, limits: &HealthLimits) -> Verdict {
    let max = limits.ready_max_lag.as_secs();
    if !now.copy_completed {
        return Verdict::fail(format!(
            "not ready: copy in progress ({} rows copied by this process)",
            now.copied_rows
        ));
    }
    if !copies.is_empty() {
        // An added table is absent and a re-copied one frozen where its copy began, until
        // the commit that swaps the finished copy in.
        return Verdict::fail(format!(
            "not ready: table copy in progress: {}; until it completes such a table is absent \
             (added) or as it was when the copy began (re-copy)",
            copies.join(", ")
        ));
    }
    match now.lag_seconds(now_secs) {
        None => Verdict::fail("not ready: no transaction or heartbeat received yet".into()),
        Some(lag) if lag as u64 > max => Verdict::fail(format!(
            "not ready: {lag} s behind the source (limit {max} s); state {}",
            now.state.name()
        )),
        Some(lag) => Verdict::ok(format!(
            "ready: {} s behind the source (limit {max} s); state {}",
            lag,
            now.state.name()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(state: SyncState, copy_completed: bool, event_time: i64) -> Snapshot {
        Snapshot {
            transactions: 0,
            rows: 0,
            copied_rows: 1234,
            commits: 0,
            event_time,
            committed_at_ms: 0,
            heartbeat_time: 0,
            copy_completed,
            state,
            writer_busy_ms: None,
        }
    }

    #[test]
    fn a_mirror_is_ready_only_once_copied_and_within_the_lag_limit() {
        let limits = HealthLimits::default();
        let copying = readyz(&snapshot(SyncState::Copying, false, 0), &[], 1000, &limits);
        assert!(!copying.ok);
        assert!(
            copying.reason.contains("copy in progress (1234 rows"),
            "{copying:?}"
        );
        let unknown = readyz(
            &snapshot(SyncState::Replicating, true, 0),
            &[],
            1000,
            &limits,
        );
        assert!(!unknown.ok && unknown.reason.contains("no transaction or heartbeat"));
        let behind = readyz(
            &snapshot(SyncState::Replicating, true, 900),
            &[],
            1000,
            &limits,
        );
        assert!(!behind.ok);
        assert!(behind
            .reason
            .contains("100 s behind the source (limit 60 s)"));
        let ready = readyz(
            &snapshot(SyncState::Replicating, true, 990),
            &[],
            1000,
            &limits,
        );
        assert_eq!(
            ready,
            Verdict::ok("ready: 10 s behind the source (limit 60 s); state replicating".into())
        );
    }

    #[test]
    fn a_mirror_with_an_unfinished_table_copy_is_not_ready_and_names_the_table() {
        let limits = HealthLimits::default();
        let now = snapshot(SyncState::Replicating, true, 990);
        let copies = [
            "corder (re-copy)".to_string(),
            "product (added)".to_string(),
        ];
        let copying = readyz(&now, &copies, 1000, &limits);
        assert!(!copying.ok, "{copying:?}");
        assert!(
            (copying.reason).contains("table copy in progress: corder (re-copy), product (added)"),
            "{copying:?}"
        );
        assert!(readyz(&now, &[], 1000, &limits).ok);
    }

    #[test]
    fn liveness_fails_only_for_a_stuck_writer_or_a_failed_sync() {
        let limits = HealthLimits::default();
        let mut now = snapshot(SyncState::Reconnecting, true, 0);
        assert!(
            healthz(&now, &limits).ok,
            "reconnecting is no reason to restart"
        );
        now.writer_busy_ms = Some(1_500);
        assert!(healthz(&now, &limits).ok);
        now.writer_busy_ms = Some(301_000);
        let stuck = healthz(&now, &limits);
        assert!(
            !stuck.ok && stuck.reason.contains("301 s (limit 300 s)"),
            "{stuck:?}"
        );
        let failed = healthz(&snapshot(SyncState::Failed, false, 0), &limits);
        assert!(!failed.ok);
    }
}
