//! Fault injection for the simulated vtgate. Every knob can be set at any time; it applies to
//! whichever stream (current or next) reaches the corresponding point first.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tonic::{Code, Status};

use crate::source::proto::binlogdata::VEvent;
use crate::source::proto::vtgate::VStreamResponse;

/// What a stream does once it has sent injected responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterInjection {
    /// Goes on with its real events (the injected ones sit in the middle of the stream).
    Continue,
    /// Ends cleanly (gRPC status OK), as if vtgate closed the stream there.
    EndStream,
}

/// Crafted responses sent once `left` more real events have gone out.
#[derive(Debug)]
struct Injection {
    left: u64,
    responses: Vec<VStreamResponse>,
    then: AfterInjection,
}

/// An injection that fires in the response being sent: the real events before `at` go
/// first, then `responses`, then (with `Continue`) the rest.
#[derive(Debug)]
pub(super) struct Fired {
    pub at: usize,
    pub responses: Vec<VStreamResponse>,
    pub then: AfterInjection,
}

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
    /// Crafted responses to slip into the stream (bad wire input).
    injection: Option<Injection>,
    /// A table the copies of the next streams leave out (a tablet whose schema engine has
    /// not loaded it yet): (table, only this shard or every shard, streams left).
    omitted: Option<(String, Option<String>, u32)>,
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

    /// After `events` more real events, the stream sends `responses` exactly as given (any
    /// content, any size: the wire input a broken or newer vtgate could send), then goes on
    /// or ends as `then` says. One-shot; counted like `fail_after_events`, so it may land
    /// inside a transaction.
    pub fn inject_after_events(
        &self,
        events: u64,
        responses: Vec<VStreamResponse>,
        then: AfterInjection,
    ) {
        self.lock().injection = Some(Injection {
            left: events,
            responses,
            then,
        });
    }

    /// `inject_after_events` with the crafted events in one response.
    pub fn inject_events(&self, events: u64, crafted: Vec<VEvent>, then: AfterInjection) {
        let response = VStreamResponse { events: crafted };
        self.inject_after_events(events, vec![response], then);
    }

    /// The next `streams` streams that copy `table` leave it out of the copy on `shard` (every
    /// shard when None), as a tablet does whose schema engine has not loaded a new table yet
    /// (vttablet plans a copy from the tables its schema engine knows). Its binlog events
    /// still flow, as vttablet's catch-up sends those of tables outside the copy plan.
    pub fn omit_from_copies(&self, table: &str, shard: Option<&str>, streams: u32) {
        let omitted = (table.to_string(), shard.map(str::to_string), streams);
        self.lock().omitted = Some(omitted).filter(|o| o.2 > 0);
    }

    /// Streams that will still leave the table out of their copies.
    pub fn omissions_left(&self) -> u32 {
        self.lock().omitted.as_ref().map_or(0, |o| o.2)
    }

    /// Applies `omit_from_copies` to a resolved stream that copies, counting it; a filter
    /// naming the table is refused as vttablet refuses it.
    pub(super) fn omit(
        &self,
        setup: &mut super::request::StreamSetup,
        shard_names: &[String],
    ) -> Result<(), Status> {
        let mut st = self.lock();
        let Some((table, only, left)) = st.omitted.as_mut() else {
            return Ok(());
        };
        let copying = |m: &super::request::StartMode| matches!(m, super::request::StartMode::Copy { plan, .. } if plan.iter().any(|(t, _)| t == table));
        let named = setup.filter.named_tables().any(|t| t == table.as_str());
        if named && setup.shards.iter().any(|s| copying(&s.mode)) {
            let status = Status::unknown(format!("table {table} is not present in the database"));
            *left -= 1;
            if *left == 0 {
                st.omitted = None;
            }
            return Err(status);
        }
        let mut hit = false;
        for (start, name) in setup.shards.iter_mut().zip(shard_names) {
            let super::request::StartMode::Copy { plan, .. } = &mut start.mode else {
                continue;
            };
            if only.as_ref().is_none_or(|s| s == name) && plan.iter().any(|(t, _)| t == table) {
                plan.retain(|(t, _)| t != table);
                hit = true;
            }
        }
        if hit {
            *left -= 1;
            if *left == 0 {
                st.omitted = None;
            }
        }
        Ok(())
    }

    /// Whether an injection is still waiting to fire.
    pub fn injection_pending(&self) -> bool {
        self.lock().injection.is_some()
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

    /// The injection that fires within a response of `n` events, if its count is reached.
    pub(super) fn take_injection(&self, n: usize) -> Option<Fired> {
        let mut st = self.lock();
        let inj = st.injection.as_mut()?;
        let n64 = n as u64;
        if n64 < inj.left {
            inj.left -= n64;
            return None;
        }
        let inj = st.injection.take()?;
        Some(Fired {
            at: usize::try_from(inj.left).unwrap_or(n),
            responses: inj.responses,
            then: inj.then,
        })
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

    #[test]
    fn an_injection_fires_once_at_its_event_count() {
        let f = Faults::default();
        let crafted = VEvent::default();
        f.inject_events(5, vec![crafted], AfterInjection::EndStream);
        assert!(f.take_injection(3).is_none());
        let fired = f.take_injection(4).expect("fires in the second response");
        assert_eq!(fired.at, 2);
        assert_eq!(fired.responses.len(), 1);
        assert_eq!(fired.then, AfterInjection::EndStream);
        assert!(f.take_injection(10).is_none());
        assert!(!f.injection_pending());
    }
}
