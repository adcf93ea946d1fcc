//! Fault injection for the simulated vtgate. Every knob can be set at any time; it applies to
//! whichever stream (current or next) reaches the corresponding point first.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tonic::{Code, Status};

#[derive(Debug, Default)]
struct FaultState {
    /// Events still allowed before the stream ends with this status.
    fail_after: Option<(u64, Code, String)>,
    /// Statuses returned immediately to the next requests, one per request.
    rejects: VecDeque<(Code, String)>,
    /// No response (not even a heartbeat) leaves before this instant.
    stall_until: Option<Instant>,
    /// The next stream that starts at a position re-sends the transaction ending there.
    replay_last_txn: bool,
    /// Minimum spacing of responses.
    min_interval: Option<Duration>,
}

/// Shared fault switchboard (see `SimVtgate::faults`).
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stream ends with `code`/`message` after `events` more events have been sent
    /// (counted over responses, so it may cut inside a transaction). One-shot.
    pub fn fail_after_events(&self, events: u64, code: Code, message: &str) {
        self.lock().fail_after = Some((events, code, message.to_string()));
    }

    /// The next `count` requests are refused at once with `code`/`message`.
    pub fn reject_next_requests(&self, count: usize, code: Code, message: &str) {
        let mut st = self.lock();
        for _ in 0..count {
            st.rejects.push_back((code, message.to_string()));
        }
    }

    /// Streams send nothing (no heartbeats either) for `duration` from now.
    pub fn stall_for(&self, duration: Duration) {
        self.lock().stall_until = Some(Instant::now() + duration);
    }

    /// The next request that starts a shard at a position re-sends the transaction that
    /// ends at that position (like a server replaying an already-applied transaction). One-shot.
    pub fn replay_last_transaction_on_reconnect(&self) {
        self.lock().replay_last_txn = true;
    }

    /// Throttles every stream to at most `rate` responses per second (None = unlimited).
    pub fn set_max_responses_per_sec(&self, rate: Option<f64>) {
        self.lock().min_interval = rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r));
    }

    /// Clears every fault.
    pub fn clear(&self) {
        *self.lock() = FaultState::default();
    }

    pub(super) fn take_reject(&self) -> Option<Status> {
        self.lock()
            .rejects
            .pop_front()
            .map(|(c, m)| Status::new(c, m))
    }

    pub(super) fn take_replay(&self) -> bool {
        std::mem::take(&mut self.lock().replay_last_txn)
    }

    pub(super) fn stall_until(&self) -> Option<Instant> {
        self.lock().stall_until.filter(|t| *t > Instant::now())
    }

    pub(super) fn min_interval(&self) -> Option<Duration> {
        self.lock().min_interval
    }

    /// How many of `n` events may be sent, and the status to end with afterwards (if the
    /// budget of `fail_after_events` is exhausted by this response).
    pub(super) fn consume(&self, n: usize) -> (usize, Option<Status>) {
        let mut st = self.lock();
        let Some((left, code, msg)) = st.fail_after.take() else {
            return (n, None);
        };
        let n64 = n as u64;
        if n64 < left {
            st.fail_after = Some((left - n64, code, msg));
            return (n, None);
        }
        (left as usize, Some(Status::new(code, msg)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_budget_cuts_and_fires_once() {
        let f = Faults::default();
        f.fail_after_events(5, Code::Unavailable, "boom");
        assert_eq!(f.consume(3).0, 3);
        let (n, st) = f.consume(4);
        assert_eq!(n, 2);
        assert_eq!(st.map(|s| s.code()), Some(Code::Unavailable));
        let (n, st) = f.consume(10);
        assert_eq!(n, 10);
        assert!(st.is_none());
    }
}
