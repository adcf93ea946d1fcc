//! The real binary against the simulated vtgate over real gRPC with TLS, mTLS and Vitess static
//! auth, certificates made at test time: what must work works, every misconfiguration is
//! refused quickly with its cause named, and the password never shows in any output or file.

mod harness;
mod pki;

use std::path::Path;

use harness::*;
use pki::Ca;
use vtmirror::sim::Security;

/// Used as the password (right or wrong) in every auth test, and searched for everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_custom_ca_syncs_and_the_mirror_equals_the_source() {
    let ca = Ca::new("test CA");
    let server_cert = ca.leaf(&["127.0.0.1"]);
    let (model, server) = secured_source(Security {
        tls: tls(&server_cert, None),
        static_auth: None,
    })
    .await;
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca.pem());
    let addr = server.addr().to_string();
    let run = sync(&addr, &files.db(), &["--tls-ca", &ca_file], &[]).await;
    assert_synced(&run, &files.db(), &model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_name_override_accepts_a_certificate_for_another_name() {
    let ca = Ca::new("test CA");
    let server_cert = ca.leaf(&["vtgate.internal"]);
    let (model, server) = secured_source(Security {
        tls: tls(&server_cert, None),
        static_auth: None,
    })
    .await;
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca.pem());
    let addr = server.addr().to_string();
    let flags = ["--tls-ca", &ca_file, "--tls-server-name", "vtgate.internal"];
    let run = sync(&addr, &files.db(), &flags, &[]).await;
    assert_synced(&run, &files.db(), &model);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_syncs_with_a_client_certificate_and_is_refused_without_one() {
    let ca = Ca::new("test CA");
    let client_ca = Ca::new("client CA");
    let (model, server) = secured_source(Security {
        tls: tls(&ca.leaf(&["127.0.0.1"]), Some(&client_ca)),
        static_auth: None,
    })
    .await;
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca.pem());
    let addr = server.addr().to_string();

    let refused = sync(&addr, &files.db(), &["--tls-ca", &ca_file], &[]).await;
    assert_refused(&refused, &files.db(), "client certificate");

    let stranger = ca.leaf(&["mirror"]);
    let flags = [
        "--tls-ca",
        &ca_file,
        "--tls-cert",
        &files.write("stranger.pem", &stranger.cert_pem),
        "--tls-key",
        &files.write("stranger.key", &stranger.key_pem),
    ];
    let refused = sync(&addr, &files.db(), &flags, &[]).await;
    assert_refused(&refused, &files.db(), "client certificate");

    let client = client_ca.leaf(&["mirror"]);
    let flags = [
        "--tls-ca",
        &ca_file,
        "--tls-cert",
        &files.write("client.pem", &client.cert_pem),
        "--tls-key",
        &files.write("client.key", &client.key_pem),
    ];
    let run = sync(&addr, &files.db(), &flags, &[]).await;
    assert_synced(&run, &files.db(), &model);
}

/// A TLS vtgate whose certificate is `server_cert`, and a sync trusting `trusted`.
async fn sync_against(server_cert: pki::Leaf, trusted: &Ca, extra: &[&str]) -> (Run, Files) {
    let (_model, server) = secured_source(Security {
        tls: tls(&server_cert, None),
        static_auth: None,
    })
    .await;
    let files = Files::new();
    let ca_file = files.write("ca.pem", &trusted.pem());
    let mut flags = vec!["--tls-ca", ca_file.as_str()];
    flags.extend_from_slice(extra);
    let run = sync(&server.addr().to_string(), &files.db(), &flags, &[]).await;
    (run, files)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_from_another_ca_is_refused() {
    let (ca, other) = (Ca::new("test CA"), Ca::new("another CA"));
    let (run, files) = sync_against(ca.leaf(&["127.0.0.1"]), &other, &[]).await;
    assert_refused(&run, &files.db(), "unknownissuer");
    assert!(run.stderr.contains("--tls-ca"), "{}", tail(&run.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_host_is_refused() {
    let ca = Ca::new("test CA");
    let (run, files) = sync_against(ca.leaf(&["other.example"]), &ca, &[]).await;
    assert_refused(&run, &files.db(), "not valid for name");
    assert!(
        run.stderr.contains("--tls-server-name"),
        "{}",
        tail(&run.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_server_certificate_is_refused() {
    let ca = Ca::new("test CA");
    let (run, files) = sync_against(ca.expired_leaf(&["127.0.0.1"]), &ca, &[]).await;
    assert_refused(&run, &files.db(), "expired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_is_refused_by_a_tls_vtgate() {
    let ca = Ca::new("test CA");
    let (_model, server) = secured_source(Security {
        tls: tls(&ca.leaf(&["127.0.0.1"]), None),
        static_auth: None,
    })
    .await;
    let files = Files::new();
    let run = sync(&server.addr().to_string(), &files.db(), &[], &[]).await;
    assert_refused(&run, &files.db(), "tls");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_auth_with_the_password_from_a_file_syncs_and_never_shows_it() {
    let ca = Ca::new("test CA");
    let (model, server) = secured_source(Security {
        tls: tls(&ca.leaf(&["127.0.0.1"]), None),
        static_auth: auth(CANARY),
    })
    .await;
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca.pem());
    let password_file = files.write("password", &format!("{CANARY}\n"));
    let flags = [
        "--tls-ca",
        &ca_file,
        "--auth-user",
        USER,
        "--auth-password-file",
        &password_file,
    ];
    // Everything logged, down to h2 frames and TLS records, must stay free of the password.
    let run = sync(
        &server.addr().to_string(),
        &files.db(),
        &flags,
        &[("RUST_LOG", "trace")],
    )
    .await;
    assert_synced(&run, &files.db(), &model);
    assert!(run.stderr.len() > 10_000, "trace logs were written");
    assert_no_canary(&run, &files.db());
    let sent = server.requests();
    assert!(!sent.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_auth_with_the_password_from_the_environment_or_a_creds_file_syncs() {
    let ca = Ca::new("test CA");
    let (model, server) = secured_source(Security {
        tls: tls(&ca.leaf(&["127.0.0.1"]), None),
        static_auth: auth(CANARY),
    })
    .await;
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca.pem());
    let addr = server.addr().to_string();
    let flags = ["--tls-ca", &ca_file, "--auth-user", USER];
    let env = [("VTMIRROR_AUTH_PASSWORD", CANARY)];
    let run = sync(&addr, &files.db(), &flags, &env).await;
    assert_synced(&run, &files.db(), &model);
    assert_no_canary(&run, &files.db());

    let creds = serde_json::json!({"Username": USER, "Password": CANARY}).to_string();
    let creds_file = files.write("creds.json", &creds);
    let other = files.dir.path().join("other.db");
    let flags = [
        "--tls-ca",
        &ca_file,
        "--auth-static-client-creds",
        &creds_file,
    ];
    let run = sync(&addr, &other, &flags, &[]).await;
    assert_synced(&run, &other, &model);
    assert_no_canary(&run, &other);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_password_is_refused_quickly_and_not_retried() {
    let ca = Ca::new("test CA");
    let (_model, server) = secured_source(Security {
        tls: tls(&ca.leaf(&["127.0.0.1"]), None),
        static_auth: auth("the-right-password"),
    })
    .await;
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca.pem());
    let addr = server.addr().to_string();
    let flags = ["--tls-ca", &ca_file, "--auth-user", USER];
    let env = [("VTMIRROR_AUTH_PASSWORD", CANARY), ("RUST_LOG", "trace")];
    let run = sync(&addr, &files.db(), &flags, &env).await;
    assert_refused(&run, &files.db(), "permissiondenied");
    assert!(run.stderr.contains("credentials"), "{}", tail(&run.stderr));
    assert_eq!(server.auth_refusals(), 1, "one attempt, no retries");
    assert_no_canary(&run, &files.db());

    let run = sync(&addr, &files.db(), &["--tls-ca", &ca_file], &[]).await;
    assert_refused(&run, &files.db(), "unauthenticated");
    assert_eq!(server.auth_refusals(), 2, "one attempt, no retries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_auth_over_plaintext_is_refused_unless_insecure_is_given() {
    let (model, server) = secured_source(Security {
        tls: None,
        static_auth: auth(CANARY),
    })
    .await;
    let files = Files::new();
    let addr = server.addr().to_string();
    let flags = ["--auth-user", USER];
    let env = [("VTMIRROR_AUTH_PASSWORD", CANARY)];
    let run = sync(&addr, &files.db(), &flags, &env).await;
    assert_refused(&run, &files.db(), "--insecure");
    assert!(!files.db().exists(), "refused before opening the mirror");
    assert!(server.requests().is_empty(), "nothing was sent");
    assert_no_canary(&run, &files.db());

    let flags = ["--auth-user", USER, "--insecure"];
    let run = sync(&addr, &files.db(), &flags, &env).await;
    assert_synced(&run, &files.db(), &model);
    assert_no_canary(&run, &files.db());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_connects_with_tls_and_static_auth() {
    let ca = Ca::new("test CA");
    let (_model, server) = secured_source(Security {
        tls: tls(&ca.leaf(&["127.0.0.1"]), None),
        static_auth: auth(CANARY),
    })
    .await;
    let files = Files::new();
    let ca_file = files.write("ca.pem", &ca.pem());
    let addr = server.addr().to_string();
    let args = [
        "tail",
        "--vtgate",
        &addr,
        "--keyspace",
        "commerce",
        "--pos",
        "copy",
        "--tables",
        "customer",
        "--count",
        "1",
        "--format",
        "json",
        "--tls-ca",
        &ca_file,
        "--auth-user",
        USER,
    ];
    let run = run(&args, &[("VTMIRROR_AUTH_PASSWORD", CANARY)]).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("\"customer\""), "{}", run.stdout);
    assert_no_canary(&run, &files.db());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_or_incomplete_security_flags_are_refused_naming_the_flag() {
    let files = Files::new();
    let db = files.db();
    let missing = files.dir.path().join("no-such-ca.pem");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--tls-ca", missing.to_str().unwrap()],
            "cannot read --tls-ca",
        ),
        (
            vec!["--tls-cert", "/dev/null"],
            "--tls-cert needs --tls-key",
        ),
        (vec!["--auth-user", USER], "--auth-user needs a password"),
    ];
    for (flags, cause) in cases {
        let run = sync("127.0.0.1:1", &db, &flags, &[]).await;
        assert_refused(&run, &db, &cause.to_lowercase());
        assert!(!db.exists());
    }
}

/// vttablet's wording for a duplicate key, relayed by vtgate, quoting a row's value.
const RELAYED_ROW_VALUE: &str = "secret-row-value@example.com";

fn relayed_duplicate_key_error() -> String {
    format!(
        "target: commerce.-80.primary: vttablet: rpc error: code = AlreadyExists desc = Duplicate entry '{RELAYED_ROW_VALUE}' for key 'customer.email_idx' (errno 1062) (sqlstate 23000) (CallerID: userData1): Sql: \"insert into customer(customer_id, email) values (:vtg1, :vtg2)\", BindVars: {{vtg1: \"type:INT64 value:\\\"7\\\"\"vtg2: \"type:VARCHAR value:\\\"{RELAYED_ROW_VALUE}\\\"\"}}"
    )
}

fn stored_last_error(db: &Path) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT value FROM _vtmirror_status WHERE key = 'last_error'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_values_in_relayed_errors_are_redacted_in_logs_output_and_the_mirror() {
    let (model, server) = secured_source(Security::default()).await;
    let files = Files::new();
    let addr = server.addr().to_string();
    // Transient (retried): logged as a warning and stored as last_error, then caught up.
    let message = relayed_duplicate_key_error();
    server
        .faults()
        .fail_after_events(50, tonic::Code::Unknown, &message);
    let run = sync(&addr, &files.db(), &[], &[]).await;
    assert_synced(&run, &files.db(), &model);
    let stored = stored_last_error(&files.db());
    assert!(stored.contains("Duplicate entry '<redacted>'"), "{stored}");
    assert!(
        run.stderr.contains("BindVars: {<redacted>}"),
        "the warning was logged"
    );
    // Definite: the final line and the stored error.
    server
        .faults()
        .reject_next_requests(1, tonic::Code::AlreadyExists, &message);
    let failed = sync(&addr, &files.db(), &[], &[]).await;
    assert_eq!(failed.code, Some(1), "{}", tail(&failed.stderr));
    assert!(failed
        .stderr
        .contains("AlreadyExists: target: commerce.-80.primary"));
    let stored = stored_last_error(&files.db());
    assert!(stored.contains("Sql: \"<redacted>\""), "{stored}");
    assert_nowhere(RELAYED_ROW_VALUE, &run, &files.db());
    assert_nowhere(RELAYED_ROW_VALUE, &failed, &files.db());
}
