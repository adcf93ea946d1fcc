//! TLS, mutual TLS and static auth against a real vtgate: two extra vtgates of the reshard
//! cluster (`scripts/vitess-local.sh secure-vtgate`), one serving TLS with static auth, one
//! requiring client certificates, with certificates made here. `sync` and `tail` work with
//! the right flags; the wrong CA, a missing client certificate and a wrong password are each
//! refused in one line, as against the simulated vtgate; the password never shows.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::vitess::{assert_same, cluster, run_sql, seed_rows, Cluster};

// The certificate maker of the simulated-vtgate security tests; not every helper is used here.
#[allow(dead_code)]
#[path = "../faults/security/pki.rs"]
mod pki;
use pki::Ca;

const USER: &str = "vtmirror";
/// The password: it must appear in no output, log or mirror file.
const CANARY: &str = "canary-7c1e-real-vtgate-password";
const KEYSPACE: &str = "onlineddl";
const TABLE: &str = "sec_rows";

/// A secure vtgate started by the cluster script, stopped when dropped.
struct SecureVtgate {
    name: &'static str,
    addr: String,
}

impl SecureVtgate {
    fn start(name: &'static str, port: u16, dir: &Path) -> SecureVtgate {
        let out = script(&[
            "secure-vtgate",
            name,
            &port.to_string(),
            dir.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "secure vtgate {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SecureVtgate {
            name,
            addr: format!("127.0.0.1:{port}"),
        }
    }
}

impl Drop for SecureVtgate {
    fn drop(&mut self) {
        let _ = script(&["secure-vtgate-stop", self.name]);
    }
}

fn script(args: &[&str]) -> Output {
    Command::new("bash")
        .arg("scripts/vitess-local.sh")
        .args(args)
        .output()
        .expect("the cluster script runs")
}

/// `vtmirror <args>`, with the password in the environment when the args name the user.
fn vtmirror(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vtmirror"));
    if args.contains(&"--auth-user") {
        cmd.env("VTMIRROR_AUTH_PASSWORD", CANARY);
    }
    cmd.args(args)
        .env("RUST_LOG", "debug")
        .output()
        .expect("vtmirror runs")
}

fn sync_args<'a>(addr: &'a str, db: &'a str, flags: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["sync", "--vtgate", addr, "--keyspace", KEYSPACE, "--db", db];
    args.extend(["--tables", TABLE, "--tablet-type", "primary"]);
    args.extend(["--exit-when-caught-up", "--max-backoff", "1"]);
    args.extend_from_slice(flags);
    args
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_no_canary(out: &Output, files: &[&Path]) {
    assert!(
        !text(out).contains(CANARY),
        "the password shows in the output"
    );
    for file in files.iter().filter(|f| f.exists()) {
        let bytes = std::fs::read(file).unwrap();
        let found = bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes());
        assert!(!found, "the password is in {}", file.display());
    }
}

/// A refusal: non-zero exit, one line on stderr containing `expected`, no file left.
fn assert_refused(out: &Output, db: &Path, expected: &str, case: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(!out.status.success(), "{case}: refused\n{}", text(out));
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert!(
        last.contains(expected),
        "{case}: {expected:?} in {last:?}\n{stderr}"
    );
    assert!(!db.exists(), "{case}: nothing is left behind");
    assert_no_canary(out, &[]);
    println!("refused ({case}): {}", last.trim());
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    pki::write(dir, name, text).to_str().unwrap().to_string()
}

fn seed(c: &Cluster) {
    let mut conn = c.sql(KEYSPACE);
    run_sql(
        &mut conn,
        &[
            &format!("DROP TABLE IF EXISTS {TABLE}"),
            &format!("CREATE TABLE {TABLE} (id BIGINT NOT NULL PRIMARY KEY, v VARCHAR(40))"),
        ],
    );
    seed_rows(&mut conn, TABLE, ("id", "v"), 1..=500, "secure");
}

#[test]
fn tls_mutual_tls_and_static_auth_work_and_refuse_against_a_real_vtgate() {
    let Some(c) = cluster("RESHARD_") else { return };
    seed(&c);
    let dir = tempfile::tempdir().unwrap();
    let (ca, client_ca, other) = (Ca::new("server CA"), Ca::new("client CA"), Ca::new("other"));
    let server = ca.leaf(&["127.0.0.1", "localhost"]);
    let files = |name: &str, with_ca: bool, users: bool| -> PathBuf {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        write(&d, "server.pem", &server.cert_pem);
        write(&d, "server.key", &server.key_pem);
        if with_ca {
            write(&d, "ca.pem", &client_ca.pem());
        }
        if users {
            let json = format!(r#"[{{"Username": "{USER}", "Password": "{CANARY}"}}]"#);
            write(&d, "users.json", &json);
        }
        d
    };
    let grpc_port: u16 = c.grpc.rsplit(':').next().unwrap().parse().unwrap();
    let auth = SecureVtgate::start("auth", grpc_port + 40, &files("auth", false, true));
    let mtls = SecureVtgate::start("mtls", grpc_port + 42, &files("mtls", true, false));
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let other_ca = write(dir.path(), "other.pem", &other.pem());
    let client = client_ca.leaf(&["vtmirror"]);
    let cert = write(dir.path(), "client.pem", &client.cert_pem);
    let key = write(dir.path(), "client.key", &client.key_pem);
    let db_path = dir.path().join("m.db");
    let db = db_path.to_str().unwrap();
    let mut conn = c.sql(KEYSPACE);

    // TLS + static auth: sync and tail work, the password never shows.
    let good = ["--tls-ca", ca_file.as_str(), "--auth-user", USER];
    let out = vtmirror(&sync_args(&auth.addr, db, &good));
    assert!(
        out.status.success(),
        "TLS + static auth sync: {}",
        text(&out)
    );
    assert_eq!(assert_same(&mut conn, &db_path, TABLE, 1), 500);
    let wal = dir.path().join("m.db-wal");
    assert_no_canary(&out, &[&db_path, &wal]);
    // tail copies every table the stream matches, online DDL shadows left by other tests first
    // (they sort before `sec_rows`): it runs a while, then it is stopped.
    let tail = [
        "tail",
        "--vtgate",
        &auth.addr,
        "--keyspace",
        KEYSPACE,
        "--pos",
        "copy",
        "--tables",
        TABLE,
        "--format",
        "json",
        "--tablet-type",
        "primary",
    ];
    let child = Command::new(env!("CARGO_BIN_EXE_vtmirror"))
        .args([&tail[..], &good[..]].concat())
        .env("VTMIRROR_AUTH_PASSWORD", CANARY)
        .env("RUST_LOG", "debug")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tail runs");
    std::thread::sleep(std::time::Duration::from_secs(10));
    // SAFETY: kill(2) on our own child's pid; no memory is touched.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().expect("tail ends");
    let rows = String::from_utf8_lossy(&out.stdout)
        .matches(&format!("\"table\":\"{TABLE}\""))
        .count();
    assert!(
        rows >= 500,
        "TLS + static auth tail printed {rows} rows of {TABLE}: {}",
        text(&out)
    );
    assert_no_canary(&out, &[]);
    std::fs::remove_file(&db_path).unwrap();
    let _ = std::fs::remove_file(&wal);
    let _ = std::fs::remove_file(dir.path().join("m.db-shm"));
    let _ = std::fs::remove_file(dir.path().join("m.db.sync-lock"));

    // Each refusal: one line, nothing written, no retry loop.
    let wrong_ca = ["--tls-ca", other_ca.as_str(), "--auth-user", USER];
    let out = vtmirror(&sync_args(&auth.addr, db, &wrong_ca));
    assert_refused(
        &out,
        &db_path,
        "--tls-ca",
        "a server certificate from another CA",
    );
    let wrong_user = ["--tls-ca", ca_file.as_str(), "--auth-user", "intruder"];
    let out = vtmirror(&sync_args(&auth.addr, db, &wrong_user));
    assert_refused(&out, &db_path, "credentials", "a wrong user or password");

    // Mutual TLS: refused without a client certificate, works with one.
    let no_cert = ["--tls-ca", ca_file.as_str()];
    let out = vtmirror(&sync_args(&mtls.addr, db, &no_cert));
    assert_refused(
        &out,
        &db_path,
        "certificate",
        "mutual TLS without a client certificate",
    );
    let with_cert = [
        "--tls-ca",
        ca_file.as_str(),
        "--tls-cert",
        cert.as_str(),
        "--tls-key",
        key.as_str(),
    ];
    let out = vtmirror(&sync_args(&mtls.addr, db, &with_cert));
    assert!(out.status.success(), "mutual TLS sync: {}", text(&out));
    assert_eq!(assert_same(&mut conn, &db_path, TABLE, 1), 500);
    run_sql(&mut conn, &[&format!("DROP TABLE {TABLE}")]);
}
