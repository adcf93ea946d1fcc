//! Progress of `sync` and `demo`: a live line on a terminal (rows copied, rows/s, per-table
//! copy progress, then transactions and lag), plain periodic log lines otherwise, nothing with
//! `--quiet`. Also the log writer that keeps log lines from tearing the live line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

use crate::mirror::store::open_read_only;
use crate::output::progress::{Progress, Snapshot};
use crate::output::render::count;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Quiet,
    /// A live line on stderr, redrawn every second.
    Terminal,
    /// An `info` log line every few seconds.
    Log,
}

impl Mode {
    /// Terminal when stderr is one, unless `quiet`.
    pub fn choose(quiet: bool) -> Mode {
        use std::io::IsTerminal;
        match (quiet, std::io::stderr().is_terminal()) {
            (true, _) => Mode::Quiet,
            (false, true) => Mode::Terminal,
            (false, false) => Mode::Log,
        }
    }
}

/// A running progress display; `stop` ends it and clears the live line.
pub struct Reporter {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Reporter {
    /// Starts showing `progress`; per-table copy counts are read from the mirror at `db`.
    pub fn start(progress: Arc<Progress>, db: PathBuf, mode: Mode) -> Reporter {
        let task = match mode {
            Mode::Quiet => None,
            Mode::Log => Some(spawn_progress_log(progress, Some(db))),
            Mode::Terminal => Some(spawn_live_line(progress, db)),
        };
        Reporter { task }
    }

    pub fn stop(mut self) {
        self.end();
    }

    fn end(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(bar) = active_bar().take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.end();
    }
}

/// Logs a progress line every 5 seconds until aborted.
pub fn spawn_progress_log(
    progress: Arc<Progress>,
    db: Option<PathBuf>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rate = Rate::new(progress.snapshot());
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = progress.snapshot();
            let rows_per_sec = rate.update(now);
            // Per-table copy progress while copying; the field is left out afterwards (an
            // Option field that is None is not recorded).
            let tables = match (&db, now.copy_completed) {
                (Some(db), false) => Some(tables_text(&copy_tables(db.clone()).await)),
                _ => None,
            };
            tracing::info!(
                copied_rows = now.copied_rows,
                transactions = now.transactions,
                rows_per_sec,
                commits = now.commits,
                copy_completed = now.copy_completed,
                lag_seconds = lag_seconds(&now),
                tables = tables.as_deref(),
                "progress"
            );
        }
    })
}

fn spawn_live_line(progress: Arc<Progress>, db: PathBuf) -> tokio::task::JoinHandle<()> {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}") {
        bar.set_style(style);
    }
    bar.set_message("connecting…");
    *active_bar() = Some(bar.clone());
    tokio::spawn(async move {
        let mut rate = Rate::new(progress.snapshot());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let now = progress.snapshot();
            let rows_per_sec = rate.update(now);
            let tables = if now.copy_completed {
                Vec::new()
            } else {
                copy_tables(db.clone()).await
            };
            bar.set_message(line(&now, rows_per_sec, &tables));
            bar.tick();
        }
    })
}

/// The live line's text.
pub fn line(now: &Snapshot, rows_per_sec: u64, tables: &[TableCount]) -> String {
    if now.copy_completed {
        let lag = lag_seconds(now).map_or_else(|| "-".into(), |s| format!("{s} s"));
        return format!(
            "replicating  {} transactions  {} rows/s  lag {lag}",
            count(now.transactions),
            count(rows_per_sec)
        );
    }
    let mut text = format!(
        "copying  {} rows  {} rows/s",
        count(now.copied_rows),
        count(rows_per_sec)
    );
    if !tables.is_empty() {
        text.push_str("  |  ");
        text.push_str(&tables_text(tables));
    }
    text
}

fn lag_seconds(now: &Snapshot) -> Option<i64> {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs() as i64;
    now.lag_seconds(wall)
}

/// Rows per second between two readings.
struct Rate {
    last: Snapshot,
    at: Instant,
}

impl Rate {
    fn new(first: Snapshot) -> Rate {
        Rate {
            last: first,
            at: Instant::now(),
        }
    }

    fn update(&mut self, now: Snapshot) -> u64 {
        let secs = self.at.elapsed().as_secs_f64().max(0.001);
        let rows = now.rows.saturating_sub(self.last.rows);
        (self.last, self.at) = (now, Instant::now());
        (rows as f64 / secs) as u64
    }
}

/// One table's copy progress, summed over shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub rows: u64,
    pub done: bool,
}

fn tables_text(tables: &[TableCount]) -> String {
    let parts: Vec<String> = tables
        .iter()
        .map(|t| {
            format!(
                "{} {}{}",
                t.table,
                count(t.rows),
                if t.done { " ✓" } else { "" }
            )
        })
        .collect();
    parts.join("  ")
}

/// Per-table copy counts from the mirror (empty while it has none or cannot be read).
async fn copy_tables(db: PathBuf) -> Vec<TableCount> {
    tokio::task::spawn_blocking(move || read_copy_tables(&db).unwrap_or_default())
        .await
        .unwrap_or_default()
}

fn read_copy_tables(db: &Path) -> anyhow::Result<Vec<TableCount>> {
    let conn = open_read_only(db)?;
    let mut stmt = conn.prepare(
        "SELECT table_name, sum(rows_copied), min(completed) FROM _vtmirror_copy_state
         GROUP BY table_name ORDER BY table_name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TableCount {
            table: r.get(0)?,
            rows: r.get::<_, i64>(1)?.max(0) as u64,
            done: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The live line, if one is shown: log lines are written around it.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn active_bar() -> MutexGuard<'static, Option<ProgressBar>> {
    ACTIVE_BAR.lock().unwrap_or_else(|e| e.into_inner())
}

/// A `tracing` writer to stderr that hides the live line while a log line is written.
pub struct LogWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = SuspendingStderr;
    fn make_writer(&'a self) -> SuspendingStderr {
        SuspendingStderr
    }
}

pub struct SuspendingStderr;

impl Write for SuspendingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = active_bar().clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write_all(buf).map(|()| buf.len())),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(copied: u64, done: bool) -> Snapshot {
        Snapshot {
            transactions: 12,
            rows: 0,
            copied_rows: copied,
            commits: 3,
            event_time: 0,
            committed_at_ms: 0,
            heartbeat_time: 0,
            copy_completed: done,
            state: crate::output::progress::SyncState::Copying,
            writer_busy_ms: None,
        }
    }

    #[test]
    fn the_copy_line_shows_rows_rate_and_each_table() {
        let tables = vec![
            TableCount {
                table: "customer".into(),
                rows: 5_000,
                done: true,
            },
            TableCount {
                table: "corder".into(),
                rows: 1_200,
                done: false,
            },
        ];
        assert_eq!(
            line(&snapshot(6_200, false), 3_100, &tables),
            "copying  6,200 rows  3,100 rows/s  |  customer 5,000 ✓  corder 1,200"
        );
    }

    #[test]
    fn the_replication_line_shows_transactions_and_lag() {
        let text = line(&snapshot(0, true), 40, &[]);
        assert_eq!(text, "replicating  12 transactions  40 rows/s  lag -");
    }
}
