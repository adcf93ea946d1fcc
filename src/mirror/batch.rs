//! Group commit: when the writer commits. Several back-to-back source transactions share one
//! SQLite commit; a commit only ever happens at a transaction end (never inside one).

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct CommitPolicy {
    /// Commit once this many row changes are uncommitted.
    pub max_rows: usize,
    /// Commit once the oldest uncommitted change is this old.
    pub max_delay: Duration,
}

impl Default for CommitPolicy {
    fn default() -> Self {
        CommitPolicy {
            max_rows: 20_000,
            max_delay: Duration::from_millis(250),
        }
    }
}

impl CommitPolicy {
    /// Called at a transaction end. `queue_empty`: nothing more is waiting, so committing now
    /// costs no throughput and keeps lag low. `copying`: the batch holds copied rows, which
    /// nobody waits on, so an idle queue is no reason to commit them (against a source slower
    /// than the mirror that made a commit per response); size and age still are.
    pub fn should_commit(
        &self,
        rows: usize,
        oldest: Option<Instant>,
        queue_empty: bool,
        copying: bool,
    ) -> bool {
        (queue_empty && !copying)
            || rows >= self.max_rows
            || oldest.is_some_and(|t| t.elapsed() >= self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_when_idle_full_or_old_and_otherwise_keeps_grouping() {
        let p = CommitPolicy {
            max_rows: 10,
            max_delay: Duration::from_secs(60),
        };
        let now = Some(Instant::now());
        assert!(p.should_commit(1, now, true, false));
        assert!(p.should_commit(10, now, false, false));
        assert!(!p.should_commit(9, now, false, false));
        let old = Some(Instant::now() - Duration::from_secs(61));
        assert!(p.should_commit(1, old, false, false));
    }

    #[test]
    fn copied_rows_commit_by_size_or_age_but_not_because_the_queue_is_idle() {
        let p = CommitPolicy {
            max_rows: 10,
            max_delay: Duration::from_secs(60),
        };
        let now = Some(Instant::now());
        assert!(!p.should_commit(1, now, true, true));
        assert!(p.should_commit(10, now, true, true));
        let old = Some(Instant::now() - Duration::from_secs(61));
        assert!(p.should_commit(1, old, false, true));
    }
}
