//! Runs a sync in the background while a test breaks things: the library engine as a task,
//! or the real binary as a child process with its log in a file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use vtmirror::commands::sync::{Outcome, SyncOptions};
use vtmirror::sim::SharedModel;

/// `vtmirror::commands::sync::run` on a task, stopped by `stop()`.
pub struct LibrarySync {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<Outcome>>,
}

impl LibrarySync {
    pub fn spawn(opts: SyncOptions) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let progress = Arc::new(vtmirror::output::progress::Progress::default());
        let task = tokio::spawn(vtmirror::commands::sync::run(opts, progress, async move {
            let _ = stopped.await;
        }));
        LibrarySync {
            stop: Some(stop),
            task,
        }
    }

    /// Fails the test if the sync already ended (a fault it should have survived stopped it).
    pub fn assert_running(&self, context: &str) {
        assert!(!self.task.is_finished(), "the sync ended {context}");
    }

    /// Whether the sync already ended (for a failing wait's message).
    pub fn has_ended(&self) -> bool {
        self.task.is_finished()
    }

    /// Asks the sync to stop and returns how it ended.
    pub async fn stop(mut self) -> anyhow::Result<Outcome> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .map_err(|_| anyhow::anyhow!("the sync did not stop within 30 s"))?
            .map_err(|e| anyhow::anyhow!("the sync task panicked: {e}"))?
    }
}

/// The real `vtmirror sync` binary, logging to a file.
pub struct BinarySync {
    child: Child,
    log: PathBuf,
}

impl BinarySync {
    /// `vtmirror sync --vtgate endpoint --keyspace commerce --db db` plus `extra` flags.
    pub fn spawn(endpoint: &str, db: &Path, extra: &[&str]) -> Self {
        let level = std::env::var("VTMIRROR_NET_LOG").unwrap_or_else(|_| "warn".into());
        Self::spawn_logging(endpoint, db, extra, &level)
    }

    /// Like `spawn`, logging at `rust_log` (`RUST_LOG`).
    pub fn spawn_logging(endpoint: &str, db: &Path, extra: &[&str], rust_log: &str) -> Self {
        let log = db.with_extension("log");
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_vtmirror"))
            .args(["sync", "--vtgate", endpoint, "--keyspace", "commerce"])
            .arg("--db")
            .arg(db)
            .args(extra)
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("vtmirror binary starts");
        BinarySync { child, log }
    }

    pub fn assert_running(&mut self, context: &str) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "vtmirror exited ({status}) {context}; log:\n{}",
                self.log_text()
            );
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status (it must stop cleanly within 30 s).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid; no memory is touched.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("vtmirror ignored SIGTERM for 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for BinarySync {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` every 50 ms until it holds; false after `limit`.
pub async fn wait_until(limit: Duration, done: impl FnMut() -> bool) -> bool {
    wait_until_every(limit, Duration::from_millis(50), done).await
}

/// [`wait_until`], looking every `every`.
pub async fn wait_until_every(
    limit: Duration,
    every: Duration,
    mut done: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(every).await;
    }
    done()
}

/// Whether the mirror's stored positions equal the source's (everything applied).
pub fn caught_up(db: &Path, model: &SharedModel) -> bool {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return false;
    };
    let Ok(bytes) = conn.query_row("SELECT vgtid FROM _vtmirror_checkpoint", [], |r| {
        r.get::<_, Vec<u8>>(0)
    }) else {
        return false;
    };
    let Ok(stored) = vtmirror::source::vgtid::decode(&bytes) else {
        return false;
    };
    super::positions(&stored) == super::positions(&model.positions())
        && super::checkpoint_watch::copy_completed(db)
}

/// What a mirror says of itself, for a failing wait's message: its status rows (state,
/// phase, last error) and stored position, or why it could not be read.
pub fn mirror_report(db: &Path) -> String {
    let Ok(conn) = rusqlite::Connection::open(db) else {
        return format!("{} cannot be opened", db.display());
    };
    let status = conn
        .prepare("SELECT key || '=' || value FROM _vtmirror_status ORDER BY key")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_or_else(|e| format!("no status ({e})"), |rows| rows.join("; "));
    let position = conn
        .query_row("SELECT vgtid FROM _vtmirror_checkpoint", [], |r| {
            r.get::<_, Vec<u8>>(0)
        })
        .ok()
        .and_then(|bytes| vtmirror::source::vgtid::decode(&bytes).ok())
        .map_or("none".to_string(), |v| {
            vtmirror::source::vgtid::to_json(&v).to_string()
        });
    format!("mirror status: {status}; checkpoint: {position}")
}
