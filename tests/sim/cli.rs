//! The real binary: help with examples, one-line errors with a non-zero exit, progress output,
//! and `tail` / `status` end to end against the simulated vtgate.

use std::process::{Command, Output, Stdio};

use crate::support::*;

pub(crate) fn vtmirror(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A failure is exactly one `vtmirror: …` line, with no panic or backtrace.
fn assert_one_line_error(out: &Output, code: i32, needle: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("vtmirror: ") && err.contains(needle),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );
}

/// A port on which nothing listens.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    addr
}

#[test]
fn every_command_has_help_with_examples() {
    for command in ["sync", "tail", "status", "query", "snapshot", "demo"] {
        let out = vtmirror(&[command, "--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{command}");
        assert!(text.contains("Examples:"), "{command} --help:\n{text}");
        assert!(
            text.contains(&format!("vtmirror {command}")),
            "{command} --help:\n{text}"
        );
    }
}

#[test]
fn bad_flags_are_one_line_and_exit_code_2() {
    assert_one_line_error(&vtmirror(&["status", "--bogus"]), 2, "--bogus");
    assert_one_line_error(&vtmirror(&["query", "--db", "x.db"]), 2, "required");
    assert_one_line_error(&vtmirror(&["frobnicate"]), 2, "frobnicate");
    assert_one_line_error(
        &vtmirror(&["tail", "--vtgate", "h:1", "--keyspace", "k", "--pos", "[1]"]),
        1,
        "--pos",
    );
}

#[test]
fn missing_and_foreign_files_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let missing = missing.to_str().unwrap();
    for args in [
        vec!["status", "--db", missing],
        vec!["query", "--db", missing, "SELECT 1"],
        vec!["snapshot", "--db", missing, "/dev/null/x"],
    ] {
        assert_one_line_error(&vtmirror(&args), 1, "does not exist");
    }
    let foreign = dir.path().join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE x (a)")
        .unwrap();
    let out = vtmirror(&["status", "--db", foreign.to_str().unwrap()]);
    assert_one_line_error(&out, 1, "not a vtmirror mirror");
    let text = dir.path().join("text.db");
    std::fs::write(&text, "hello, not a database at all, just text ......").unwrap();
    let out = vtmirror(&["query", "--db", text.to_str().unwrap(), "SELECT 1"]);
    assert_one_line_error(&out, 1, "not a SQLite database");
}

#[test]
fn an_unreachable_vtgate_is_a_one_line_error_for_tail_and_sync() {
    let port = closed_port();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let out = vtmirror(&["tail", "--vtgate", &port, "--keyspace", "commerce"]);
    assert_one_line_error(&out, 1, "vtgate is unreachable");
    let out = vtmirror(&[
        "sync",
        "--vtgate",
        &port,
        "--keyspace",
        "commerce",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_one_line_error(&out, 1, "vtgate is unreachable");
}

#[test]
fn a_taken_metrics_address_is_a_one_line_error_before_anything_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let (vtgate, db_arg) = (closed_port(), db.to_str().unwrap());
    let sync = [
        "sync",
        "--vtgate",
        &vtgate,
        "--keyspace",
        "commerce",
        "--db",
        db_arg,
    ];
    let out = vtmirror(&[&sync[..], &["--metrics-addr", &taken]].concat());
    let needle = format!("cannot listen on --metrics-addr {taken}: Address already in use");
    assert_one_line_error(&out, 1, &needle);
    assert!(!db.exists(), "nothing was created");
    let out = vtmirror(&["demo", "--db", db_arg, "--metrics-addr", &taken]);
    assert_one_line_error(&out, 1, &needle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_keyspace_stops_sync_and_tail_at_once_and_writes_no_file() {
    let (_model, server) = source(10).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    let endpoint = server.endpoint();
    let dbs = db.to_str().unwrap().to_string();
    let (sync, tail, pattern) = tokio::task::spawn_blocking(move || {
        let sync = vtmirror(&[
            "sync",
            "--vtgate",
            &endpoint,
            "--keyspace",
            "nosuchks",
            "--db",
            &dbs,
        ]);
        let tail = vtmirror(&["tail", "--vtgate", &endpoint, "--keyspace", "nosuchks"]);
        let pattern = vtmirror(&[
            "sync",
            "--vtgate",
            &endpoint,
            "--keyspace",
            "/.*",
            "--db",
            &dbs,
        ]);
        (sync, tail, pattern)
    })
    .await
    .unwrap();
    // `sync` logs its start at info level first; the error is its last line.
    let failure = |out: &Output| {
        let err = stderr(out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        err.lines().last().unwrap_or_default().to_string()
    };
    let last = failure(&sync);
    assert!(last.starts_with("vtmirror: "), "{last}");
    // Asked before streaming (`source::catalog`); `tail` hears it from the stream.
    for needle in [
        "keyspace \"nosuchks\" does not exist (vtgate serves: commerce)",
        "nothing was written",
    ] {
        assert!(last.contains(needle), "{needle}: {last}");
    }
    assert!(failure(&tail).contains("check --keyspace"));
    assert_one_line_error(&pattern, 1, "is not a keyspace name");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "no file is left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_and_status_work_end_to_end_and_a_closed_pipe_is_not_an_error() {
    let (model, server) = source(100).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("m.db");
    sync_until_caught_up(options(&server.endpoint(), &db))
        .await
        .unwrap();
    let start = vtmirror::source::vgtid::to_json(&model.positions()).to_string();
    model.apply_random_transactions(3);
    let endpoint = server.endpoint();
    let dbs = db.to_str().unwrap().to_string();
    let (tail, status, query) = tokio::task::spawn_blocking(move || {
        let tail = vtmirror(&[
            "tail",
            "--vtgate",
            &endpoint,
            "--keyspace",
            "commerce",
            "--pos",
            &start,
            "--count",
            "2",
        ]);
        let status = vtmirror(&["status", "--db", &dbs, "--json"]);
        // `query | head -c 10`: the reader goes away after a few bytes.
        let mut child = Command::new(env!("CARGO_BIN_EXE_vtmirror"))
            .args(["query", "--db", &dbs, "--format", "csv"])
            .arg("SELECT a.id, b.id FROM accounts a, accounts b, accounts c")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 10];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut head).unwrap();
        drop(child.stdout.take());
        (tail, status, child.wait_with_output().unwrap())
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&tail.stdout);
    assert!(tail.status.success(), "{}", stderr(&tail));
    assert_eq!(
        text.matches("VGTID after event:  shard_gtids:<keyspace:\"commerce\"")
            .count(),
        2,
        "{text}"
    );
    assert!(text.starts_with("Event log timestamp: "), "{text}");
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["state"], "stopped");
    assert_eq!(status["copy_completed"], true);
    assert_eq!(status["keyspace"], "commerce");
    assert!(
        query.status.success(),
        "a closed pipe ends quietly: {}",
        stderr(&query)
    );
    assert_eq!(stderr(&query), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_logged_when_not_on_a_terminal_and_quiet_silences_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |quiet: bool, name: &str| {
        let db = dir.path().join(name);
        let mut args = vec![
            "--log-format".to_string(),
            "json".into(),
            "demo".into(),
            "--seconds".into(),
            "6".into(),
            "--rows-per-table".into(),
            "300".into(),
            "--db".into(),
            db.to_str().unwrap().into(),
        ];
        if quiet {
            args.insert(0, "--quiet".into());
        }
        std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_vtmirror"))
                .args(&args)
                .env("RUST_LOG", "info")
                .output()
                .unwrap()
        })
    };
    let (loud, quiet) = (run(false, "loud.db"), run(true, "quiet.db"));
    let (loud, quiet) = (loud.join().unwrap(), quiet.join().unwrap());
    assert!(loud.status.success() && quiet.status.success());
    let progress_lines = |out: &Output| {
        stderr(out)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON log lines"))
            .filter(|l| l["fields"]["message"] == "progress")
            .count()
    };
    assert!(progress_lines(&loud) >= 1, "{}", stderr(&loud));
    assert_eq!(progress_lines(&quiet), 0, "{}", stderr(&quiet));
}
