//! Running the real binary against a secured simulated vtgate, and the checks every
//! security test makes on its outcome.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::pki::{self, write, Ca};
use crate::support::assert_mirror_equals_source;
use vtmirror::sim::{ModelSpec, Security, ServerTls, SharedModel, SimVtgate, StreamOptions};

pub const CANARY: &str = "canary-7f3e-not-a-real-password";
pub const USER: &str = "mirror_reader";
pub const ROWS: usize = 100;
/// A refusal must come this fast (a retry loop would run until the process is killed).
pub const REFUSED_WITHIN: Duration = Duration::from_secs(20);

pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

/// A demo keyspace behind a simulated vtgate secured as `security` says.
pub async fn secured_source(security: Security) -> (Arc<SharedModel>, SimVtgate) {
    let model = SharedModel::new(ModelSpec::demo(ROWS));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server =
        SimVtgate::serve_secured(model.clone(), listener, StreamOptions::default(), security)
            .expect("simulated vtgate serves");
    (model, server)
}

pub fn tls(cert: &pki::Leaf, client_ca: Option<&Ca>) -> Option<ServerTls> {
    Some(ServerTls {
        cert_pem: cert.cert_pem.clone().into_bytes(),
        key_pem: cert.key_pem.clone().into_bytes(),
        client_ca_pem: client_ca.map(|ca| ca.pem().into_bytes()),
    })
}

pub fn auth(password: &str) -> Option<(String, String)> {
    Some((USER.to_string(), password.to_string()))
}

/// Runs `vtmirror sync` to caught-up (or failure) with extra flags and variables.
pub async fn sync(addr: &str, db: &Path, flags: &[&str], envs: &[(&str, &str)]) -> Run {
    let mut args = vec![
        "sync",
        "--vtgate",
        addr,
        "--keyspace",
        "commerce",
        "--db",
        db.to_str().unwrap(),
        "--exit-when-caught-up",
        "--caught-up-idle",
        "1",
        "--heartbeat",
        "1",
        "--max-backoff",
        "0.5",
    ];
    args.extend_from_slice(flags);
    run(&args, envs).await
}

pub async fn run(args: &[&str], envs: &[(&str, &str)]) -> Run {
    let logs = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (logs.path().join("out"), logs.path().join("err"));
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_vtmirror"));
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .kill_on_drop(true)
        .env("RUST_LOG", "debug");
    for (name, _) in std::env::vars() {
        if name.starts_with("VTMIRROR_") {
            command.env_remove(name);
        }
    }
    command.envs(envs.iter().copied());
    let started = Instant::now();
    let mut child = command.spawn().expect("the binary runs");
    // A run still going after this long is killed and reported as such (code None).
    let code = match tokio::time::timeout(Duration::from_secs(60), child.wait()).await {
        Ok(status) => status.expect("the binary runs").code(),
        Err(_) => {
            let _ = child.kill().await;
            None
        }
    };
    let read = |path: &Path| String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
    Run {
        code,
        stdout: read(&out_path),
        stderr: read(&err_path),
        elapsed: started.elapsed(),
    }
}

/// The canary password shows in no output and in no byte of the mirror's files.
pub fn assert_no_canary(run: &Run, db: &Path) {
    assert_nowhere(CANARY, run, db);
}

/// `secret` shows in no output and in no byte of the mirror's files.
pub fn assert_nowhere(secret: &str, run: &Run, db: &Path) {
    assert!(!run.stdout.contains(secret), "{secret} on stdout");
    let leak = run.stderr.lines().find(|l| l.contains(secret));
    assert!(leak.is_none(), "{secret} on stderr: {leak:?}");
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let path = format!("{}{suffix}", db.display());
        if let Ok(bytes) = std::fs::read(&path) {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{secret} in {path}");
        }
    }
}

/// The last lines of a run's stderr (the error), for assertion messages.
pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(4)..].join("\n")
}

pub fn assert_synced(run: &Run, db: &Path, model: &SharedModel) {
    assert_eq!(run.code, Some(0), "sync failed: {}", tail(&run.stderr));
    assert_eq!(assert_mirror_equals_source(db, model), 3 * ROWS);
}

/// Refused: non-zero exit, quickly, the cause named, and no rows or checkpoint stored.
pub fn assert_refused(run: &Run, db: &Path, cause: &str) {
    assert_eq!(run.code, Some(1), "not refused: {}", tail(&run.stderr));
    assert!(
        run.elapsed < REFUSED_WITHIN,
        "refused only after {:?}",
        run.elapsed
    );
    let last = run.stderr.lines().last().unwrap_or("");
    eprintln!("refused in {:?}: {last}", run.elapsed);
    assert!(
        last.starts_with("vtmirror: ") && last.to_lowercase().contains(cause),
        "expected {cause:?} in the final line: {}",
        tail(&run.stderr)
    );
    if db.exists() {
        let conn = rusqlite::Connection::open(db).unwrap();
        let checkpoints: i64 = conn
            .query_row("SELECT count(*) FROM _vtmirror_checkpoint", [], |r| {
                r.get(0)
            })
            .unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('customer', 'corder', 'accounts')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!((checkpoints, tables), (0, 0), "the mirror was written");
    }
}

pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    pub fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("m.db")
    }
    pub fn write(&self, name: &str, text: &str) -> String {
        write(self.dir.path(), name, text)
            .to_str()
            .unwrap()
            .to_string()
    }
}
