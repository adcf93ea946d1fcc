//! A testing aid: `VTMIRROR_CRASH_AT=<point>:<n>` makes the writer SIGKILL its own process the
//! n-th time (counted over the process) it reaches a named point, so crash tests can land a
//! kill exactly before or after a SQLite COMMIT, or inside an open transaction. Points:
//! `before-commit` (checkpoint written, COMMIT not yet run), `after-commit` (COMMIT returned),
//! `mid-batch` (row changes applied in an open transaction). The variable is read once, when
//! the first writer starts; unset, the writer only tests an `Option` at those points.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use anyhow::{bail, Result};

/// The named points of the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    BeforeCommit,
    AfterCommit,
    MidBatch,
}

impl Point {
    fn name(self) -> &'static str {
        match self {
            Point::BeforeCommit => "before-commit",
            Point::AfterCommit => "after-commit",
            Point::MidBatch => "mid-batch",
        }
    }
}

/// An armed crash point: kill at the `at`-th arrival at `point`.
#[derive(Debug)]
pub struct CrashAt {
    point: Point,
    at: u64,
    arrivals: AtomicU64,
}

const VARIABLE: &str = "VTMIRROR_CRASH_AT";

/// Parses `<point>:<n>` (n ≥ 1).
fn parse(text: &str) -> Result<CrashAt> {
    let (name, count) = text.split_once(':').unwrap_or((text, ""));
    let point = [Point::BeforeCommit, Point::AfterCommit, Point::MidBatch]
        .into_iter()
        .find(|p| p.name() == name);
    let at = count.parse::<u64>().ok().filter(|n| *n >= 1);
    match (point, at) {
        (Some(point), Some(at)) => Ok(CrashAt {
            point,
            at,
            arrivals: AtomicU64::new(0),
        }),
        _ => bail!(
            "{VARIABLE}={text} is not one of before-commit:N, after-commit:N, mid-batch:N (N ≥ 1)"
        ),
    }
}

/// The crash point of this process, if the variable is set (read once; an invalid value is
/// an error so that a crash test with a typo fails instead of passing without crashes).
pub fn from_env() -> Result<Option<&'static CrashAt>> {
    static ARMED: OnceLock<std::result::Result<Option<CrashAt>, String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| match std::env::var(VARIABLE) {
        Ok(text) => parse(&text).map(Some).map_err(|e| e.to_string()),
        Err(_) => Ok(None),
    });
    match armed {
        Ok(point) => Ok(point.as_ref()),
        Err(message) => bail!("{message}"),
    }
}

impl CrashAt {
    /// Counts an arrival at `point`; at the armed one, reports it on stderr (`describe` says
    /// where the writer was) and SIGKILLs this process.
    pub fn reached(&self, point: Point, describe: impl FnOnce() -> String) {
        if point != self.point || self.arrivals.fetch_add(1, Ordering::SeqCst) + 1 != self.at {
            return;
        }
        eprintln!(
            "vtmirror: crash point {}:{} reached ({}); sending SIGKILL",
            point.name(),
            self.at,
            describe()
        );
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions. SIGKILL cannot
        // be caught, so no destructor, flush or SQLite cleanup runs: a real crash.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        // Not reached: SIGKILL to oneself is delivered before kill() returns.
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_parse_with_a_positive_count_and_typos_are_errors() {
        let at = parse("after-commit:3").unwrap();
        assert_eq!((at.point, at.at), (Point::AfterCommit, 3));
        assert_eq!(parse("mid-batch:1").unwrap().point, Point::MidBatch);
        for bad in [
            "before-commit",
            "before-commit:0",
            "after_commit:2",
            "mid-batch:x",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn other_points_and_earlier_arrivals_do_not_fire() {
        let at = parse("before-commit:3").unwrap();
        at.reached(Point::AfterCommit, || unreachable!());
        at.reached(Point::BeforeCommit, || unreachable!());
        at.reached(Point::BeforeCommit, || unreachable!());
        assert_eq!(at.arrivals.load(Ordering::SeqCst), 2);
    }
}
