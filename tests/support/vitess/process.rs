//! `vtmirror sync` as a child process: run until caught up, killed with SIGKILL, refused.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::*;

/// `vtmirror sync` as a child process.
pub fn sync_process(grpc: &str, keyspace: &str, db: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args([
            "sync",
            "--vtgate",
            grpc,
            "--keyspace",
            keyspace,
            "--heartbeat",
            "1",
        ])
        .arg("--db")
        .arg(db)
        .args(["--max-backoff", "1", "--caught-up-idle", "3"])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vtmirror binary starts")
}

/// Runs a sync to caught-up; returns its exit success and stderr. A sync still running after
/// five minutes is killed and counts as a failure.
pub fn sync_until_caught_up(
    grpc: &str,
    keyspace: &str,
    db: &Path,
    extra: &[&str],
) -> (bool, String) {
    let mut args = vec!["--exit-when-caught-up"];
    args.extend_from_slice(extra);
    let child = sync_process(grpc, keyspace, db, &args);
    match wait_with_stderr(child, Duration::from_secs(300)) {
        (Some(status), text) => (status.success(), text),
        (None, text) => (false, format!("sync did not catch up within 300 s: {text}")),
    }
}

/// Waits for a child with piped stderr to end; after `limit` it is killed (status None).
/// Returns its exit status and stderr.
fn wait_with_stderr(
    mut child: Child,
    limit: Duration,
) -> (Option<std::process::ExitStatus>, String) {
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("child is waitable") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, reader.join().unwrap_or_default())
}

// ---------------------------------------------------------------------------------------
// Mirrors of several keyspaces or of some shards: whole-mirror comparison, a background
// writer, SIGKILLs and refused flags.
// ---------------------------------------------------------------------------------------

/// A child process that is SIGKILLed and reaped when dropped, also when the test fails.
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Waits (at most two minutes) until the sync of `db` stored `phase` with a commit.
    pub fn wait_for_phase(&mut self, db: &Path, phase: &str) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while stored_phase(db).as_deref() != Some(phase) {
            self.assert_running(&format!("before reaching {phase}"));
            assert!(Instant::now() < deadline, "{phase} not reached in 120 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILLs the process, which must still be running.
    pub fn sigkill(&mut self, context: &str) {
        self.assert_running(context);
        self.0.kill().expect("SIGKILL");
        self.0.wait().unwrap();
    }

    /// Fails the test, showing the process's stderr, if it has ended.
    pub fn assert_running(&mut self, context: &str) {
        if let Some(status) = self.0.try_wait().expect("child is waitable") {
            let mut text = String::new();
            if let Some(mut stderr) = self.0.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
            }
            panic!(
                "the sync ended by itself ({status}) {context}: {}",
                text.trim()
            );
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `vtmirror sync` for `delay`, then SIGKILLs it (it must still be running); checks the
/// file's integrity and returns the phase stored with its last commit.
pub fn sync_then_sigkill(
    grpc: &str,
    keyspace: &str,
    db: &Path,
    extra: &[&str],
    delay: Duration,
) -> Option<String> {
    let mut child = KillOnDrop(sync_process(grpc, keyspace, db, extra));
    std::thread::sleep(delay);
    let context = format!("within {delay:?} (keyspace {keyspace} {extra:?})");
    child.sigkill(&context);
    assert_intact(db, &format!("after a SIGKILL {context}"));
    stored_phase(db)
}

/// Runs `vtmirror sync` until it commits in `phase`, lets it run `more`, then SIGKILLs it;
/// checks the file's integrity.
pub fn sync_in_phase_then_sigkill(
    grpc: &str,
    keyspace: &str,
    db: &Path,
    extra: &[&str],
    phase: &str,
    more: Duration,
) {
    let mut child = KillOnDrop(sync_process(grpc, keyspace, db, extra));
    child.wait_for_phase(db, phase);
    std::thread::sleep(more);
    let context = format!("in {phase} (keyspace {keyspace} {extra:?})");
    child.sigkill(&context);
    assert_intact(db, &format!("after a SIGKILL {context}"));
}

/// Runs `vtmirror <args>` expecting a refusal: a non-zero exit within 20 s (no retries), one
/// line on stderr, and nothing left in `dir`. Returns that line.
pub fn refused_in_one_line(args: &[&str], dir: &Path) -> String {
    let child = Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args(args)
        .args(["--quiet", "--max-backoff", "1"])
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vtmirror runs");
    let (status, text) = wait_with_stderr(child, Duration::from_secs(20));
    let status = status.unwrap_or_else(|| panic!("{args:?}: still running after 20 s: {text}"));
    assert!(!status.success(), "{args:?} must fail: {text}");
    assert_eq!(
        text.trim().lines().count(),
        1,
        "{args:?}: one line on stderr: {text}"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers.is_empty(),
        "{args:?}: nothing written, found {leftovers:?}"
    );
    text.trim().to_string()
}
