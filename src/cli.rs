//! Command-line interface: flags (each also readable from a `VTMIRROR_*` variable) and their
//! validation into options.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::batch::CommitPolicy;
use crate::checkpoint;
use crate::store::Durability;
use crate::sync::{StartFrom, SyncOptions};
use crate::transport::{Secret, StaticAuth, Tls, Vtgate};
use crate::vstream::{StreamFlags, StreamSpec};

#[derive(Parser, Debug)]
#[command(
    name = "vtmirror",
    version,
    about = "Keep a local SQLite copy of a Vitess keyspace, exactly once"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format (logs go to stderr; filter them with RUST_LOG, e.g. RUST_LOG=debug).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text, env = "VTMIRROR_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// No progress display (sync, demo); logs still go to stderr.
    #[arg(long, short, global = true, env = "VTMIRROR_QUIET")]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Mirror a keyspace into a SQLite file: VStream Copy on a fresh mirror, then replication,
    /// resuming from the stored checkpoint after any stop.
    #[command(
        after_help = "Examples:\n  vtmirror sync --vtgate 127.0.0.1:15991 --keyspace commerce --db commerce.db\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace things --db t.db --tables things,things_name_lookup --exit-when-caught-up\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace ks --db ks.db --rule '/.*'"
    )]
    Sync(SyncArgs),
    /// Print a keyspace's changes as they happen (writes no file), like the Vitess example
    /// VStream client: each transaction's time, its row changes, and the VGTID after it.
    #[command(after_help = TAIL_EXAMPLES)]
    Tail(crate::tail::TailArgs),
    /// Show a mirror's state, checkpoint, copy progress and lag (safe while sync runs).
    #[command(after_help = "Examples:\n  vtmirror status --db commerce.db\n  \
        vtmirror status --db commerce.db --json | jq .lag_seconds")]
    Status(crate::status::StatusArgs),
    /// Run one read-only SQL statement on a mirror (never blocks the sync writer).
    #[command(
        after_help = "Examples:\n  vtmirror query --db commerce.db 'SELECT count(*) FROM customer'\n  \
        vtmirror query --db commerce.db --format csv 'SELECT * FROM corder WHERE customer_id = 7' > orders.csv\n  \
        vtmirror query --db commerce.db --format json 'SELECT * FROM customer LIMIT 10' | jq .email"
    )]
    Query(crate::query::QueryArgs),
    /// Write a consistent copy of a mirror (safe while sync runs); a sync of the copy resumes
    /// from the checkpoint it holds.
    #[command(
        after_help = "Examples:\n  vtmirror snapshot --db commerce.db /backups/commerce-$(date +%F).db\n  \
        vtmirror sync --vtgate vtgate:15991 --keyspace commerce --db /backups/commerce-2026-01-02.db"
    )]
    Snapshot(crate::snapshot::SnapshotArgs),
    /// Run the simulated 2-shard keyspace with live writes and sync it into a local file.
    #[command(
        after_help = "Examples:\n  vtmirror demo\n  vtmirror demo --seconds 30 --db /tmp/demo.db"
    )]
    Demo(crate::demo::DemoArgs),
}

const TAIL_EXAMPLES: &str = r#"Examples:
  vtmirror tail --vtgate localhost:15991 --keyspace customer --tablet-type replica --pos '[ {"shard":"", "gtid":"current"} ]'
  vtmirror tail --vtgate localhost:15991 --keyspace customer --pos '[ {"shard":"0", "gtid":"MySQL56/d714417e-b8ee-11ea-ad61-001e677affd5:1-36"} ]'
  vtmirror tail --vtgate localhost:15991 --keyspace customer --pos copy --tables customer --format json | jq .after

Output (text):
  Event log timestamp: 1593314922 --> 2020-06-28 03:28:42 +0000 UTC
  +-----------------+--------+----------+------+
  |      table      |   op   | order_id |  sku |
  +-----------------+--------+----------+------+
  | customer.corder | INSERT |       23 | NULL |
  +-----------------+--------+----------+------+
  VGTID after event:  shard_gtids:<keyspace:"customer" shard:"0" gtid:"MySQL56/d714…:1-36" >

Binary columns print in hex; an update prints its before and after images. --format json prints
one object per row change, transaction end (with the VGTID) and copy completion. Connection
notices and "remote error: …, retrying in Ns" lines go to stderr."#;

#[derive(Args, Debug, Clone)]
pub struct SyncArgs {
    /// vtgate gRPC address, HOST:PORT.
    #[arg(long, env = "VTMIRROR_VTGATE")]
    pub vtgate: String,
    /// Keyspace to mirror.
    #[arg(long, env = "VTMIRROR_KEYSPACE")]
    pub keyspace: String,
    /// Mirror file (created if missing; the path is taken literally).
    #[arg(long, env = "VTMIRROR_DB")]
    pub db: PathBuf,
    /// Tables to mirror, comma-separated (default: every table of the keyspace).
    #[arg(long, value_delimiter = ',', env = "VTMIRROR_TABLES")]
    pub tables: Vec<String>,
    /// A Vitess filter rule MATCH[=FILTER], e.g. '/.*' or 't=select id, name from t'; repeatable.
    #[arg(long = "rule", env = "VTMIRROR_RULE", value_delimiter = ';')]
    pub rules: Vec<String>,
    /// Tablet type to stream from: primary, replica or rdonly.
    #[arg(long, default_value = "replica", env = "VTMIRROR_TABLET_TYPE")]
    pub tablet_type: String,
    /// Where a fresh mirror starts: copy, current, or a position as JSON
    /// ('[{"shard":"-80","gtid":"MySQL56/..."}]'). Ignored once the mirror has a checkpoint.
    #[arg(long, default_value = "copy", env = "VTMIRROR_START")]
    pub start: String,
    /// Finish the copy, catch up, then exit 0.
    #[arg(long, env = "VTMIRROR_EXIT_WHEN_CAUGHT_UP")]
    pub exit_when_caught_up: bool,
    /// Seconds without data after which the stream counts as caught up (with --exit-when-caught-up).
    #[arg(long, default_value_t = 2.0, env = "VTMIRROR_CAUGHT_UP_IDLE")]
    pub caught_up_idle: f64,
    /// Ask vtgate for a heartbeat after this many idle seconds (0 = off); a silent stream is
    /// reconnected after 3 × this + 5 s.
    #[arg(long, default_value_t = 10, env = "VTMIRROR_HEARTBEAT")]
    pub heartbeat: u32,
    /// Principal sent as the VStream's effective caller id.
    #[arg(long, env = "VTMIRROR_CALLER_ID")]
    pub caller_id: Option<String>,
    /// Commit durability: normal (crash-safe) or full (also power-loss-safe).
    #[arg(long, value_enum, default_value_t = Durability::Normal, env = "VTMIRROR_DURABILITY")]
    pub durability: Durability,
    /// Row changes per SQLite commit at most (transactions are never split).
    #[arg(long, default_value_t = 20_000, env = "VTMIRROR_MAX_BATCH_ROWS")]
    pub max_batch_rows: usize,
    /// Milliseconds an uncommitted batch may wait at most.
    #[arg(long, default_value_t = 250, env = "VTMIRROR_MAX_BATCH_DELAY_MS")]
    pub max_batch_delay_ms: u64,
    /// Longest wait between reconnect attempts, in seconds.
    #[arg(long, default_value_t = 30.0, env = "VTMIRROR_MAX_BACKOFF")]
    pub max_backoff: f64,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

impl SyncArgs {
    pub fn options(&self) -> Result<SyncOptions> {
        if self.keyspace.is_empty() {
            anyhow::bail!("--keyspace must name a keyspace");
        }
        let start = match self.start.as_str() {
            "copy" => StartFrom::Copy,
            "current" => StartFrom::Current,
            json => StartFrom::Position(checkpoint::from_json(json, &self.keyspace)?),
        };
        let positive = |secs: f64| secs.is_finite() && secs > 0.0;
        if !positive(self.caught_up_idle) || !positive(self.max_backoff) {
            anyhow::bail!("--caught-up-idle and --max-backoff must be positive numbers of seconds");
        }
        Ok(SyncOptions {
            spec: StreamSpec::from_flags(StreamFlags {
                vtgate: self.connection.vtgate(&self.vtgate)?,
                keyspace: &self.keyspace,
                tables: &self.tables,
                rules: &self.rules,
                tablet_type: &self.tablet_type,
                heartbeat_secs: self.heartbeat,
                caller_id: self.caller_id.as_deref(),
            })?,
            db: self.db.clone(),
            start,
            exit_when_caught_up: self.exit_when_caught_up,
            caught_up_idle: Duration::from_secs_f64(self.caught_up_idle),
            durability: self.durability,
            policy: CommitPolicy {
                max_rows: self.max_batch_rows.max(1),
                max_delay: Duration::from_millis(self.max_batch_delay_ms),
            },
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs_f64(self.max_backoff),
            queue_depth: 16,
        })
    }
}

/// How `sync` and `tail` reach vtgate securely: TLS and Vitess static auth. The password is
/// read from a file or `VTMIRROR_AUTH_PASSWORD`, never from a flag (shell history, `ps`).
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Connection security")]
pub struct ConnectionArgs {
    /// Connect with TLS (implied by any --tls-* flag or an https:// address).
    #[arg(long, env = "VTMIRROR_TLS")]
    pub tls: bool,
    /// PEM CA certificate(s) to verify vtgate with (default: the system's roots).
    #[arg(long, value_name = "FILE", env = "VTMIRROR_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Name vtgate's certificate must be valid for, when it differs from the --vtgate host.
    #[arg(long, value_name = "NAME", env = "VTMIRROR_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// PEM client certificate, for vtgates requiring one (mTLS); needs --tls-key.
    #[arg(long, value_name = "FILE", env = "VTMIRROR_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "FILE", env = "VTMIRROR_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Vitess static auth user (vtgate --grpc_auth_mode static); the password comes from
    /// --auth-password-file or the VTMIRROR_AUTH_PASSWORD variable.
    #[arg(long, value_name = "NAME", env = "VTMIRROR_AUTH_USER")]
    pub auth_user: Option<String>,
    /// File whose first line is the static auth password.
    #[arg(long, value_name = "FILE", env = "VTMIRROR_AUTH_PASSWORD_FILE")]
    pub auth_password_file: Option<PathBuf>,
    /// Vitess client credentials JSON file, {"Username": "...", "Password": "..."} (the
    /// format of vtctl's --grpc_auth_static_client_creds).
    #[arg(long, value_name = "FILE", env = "VTMIRROR_AUTH_STATIC_CLIENT_CREDS")]
    pub auth_static_client_creds: Option<PathBuf>,
    /// Allow static auth without TLS (the password then crosses the network in clear).
    #[arg(long, env = "VTMIRROR_INSECURE")]
    pub insecure: bool,
}

/// The only place the password variable is read.
const PASSWORD_VARIABLE: &str = "VTMIRROR_AUTH_PASSWORD";

impl ConnectionArgs {
    /// Validates the flags into connection settings for `address`, reading the files they name.
    pub fn vtgate(&self, address: &str) -> Result<Vtgate> {
        let password_variable = std::env::var(PASSWORD_VARIABLE).ok();
        self.vtgate_with(address, password_variable)
    }

    fn vtgate_with(&self, address: &str, password_variable: Option<String>) -> Result<Vtgate> {
        let tls = self.tls_settings(address)?;
        let auth = self.static_auth(password_variable)?;
        if auth.is_some() && tls.is_none() && !self.insecure {
            anyhow::bail!(
                "static auth over plaintext would send the password unencrypted: connect with TLS \
                 (--tls, --tls-ca FILE) or pass --insecure to allow it"
            );
        }
        let vtgate = Vtgate {
            address: address.to_string(),
            tls,
            auth,
        };
        vtgate.check()?;
        Ok(vtgate)
    }

    fn tls_settings(&self, address: &str) -> Result<Option<Tls>> {
        let wanted = self.tls
            || self.tls_ca.is_some()
            || self.tls_server_name.is_some()
            || self.tls_cert.is_some()
            || self.tls_key.is_some()
            || address.starts_with("https://");
        if !wanted {
            return Ok(None);
        }
        if address.starts_with("http://") {
            anyhow::bail!("--vtgate {address} says plaintext (http://) but TLS flags were given");
        }
        let client_identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((
                read_flag_file("--tls-cert", cert)?,
                Secret(read_flag_file("--tls-key", key)?),
            )),
            (None, None) => None,
            (Some(_), None) => anyhow::bail!("--tls-cert needs --tls-key (the certificate's key)"),
            (None, Some(_)) => anyhow::bail!("--tls-key needs --tls-cert (the key's certificate)"),
        };
        let ca_pem = match &self.tls_ca {
            Some(path) => Some(read_flag_file("--tls-ca", path)?),
            None => None,
        };
        Ok(Some(Tls {
            ca_pem,
            server_name: self.tls_server_name.clone(),
            client_identity,
        }))
    }

    fn static_auth(&self, password_variable: Option<String>) -> Result<Option<StaticAuth>> {
        if let Some(path) = &self.auth_static_client_creds {
            if self.auth_user.is_some() || self.auth_password_file.is_some() {
                anyhow::bail!("--auth-static-client-creds replaces --auth-user and --auth-password-file; give one or the other");
            }
            return read_client_creds(path).map(Some);
        }
        let password = match (&self.auth_password_file, password_variable) {
            (Some(path), _) => Some(read_password_file(path)?),
            (None, Some(text)) => Some(text),
            (None, None) => None,
        };
        match (&self.auth_user, password) {
            (None, None) => Ok(None),
            (Some(username), Some(password)) if !password.is_empty() => Ok(Some(StaticAuth {
                username: username.clone(),
                password: Secret(password),
            })),
            (Some(_), _) => anyhow::bail!(
                "--auth-user needs a password: --auth-password-file FILE or the {PASSWORD_VARIABLE} variable (not empty)"
            ),
            (None, Some(_)) => anyhow::bail!(
                "a static auth password was given (--auth-password-file or {PASSWORD_VARIABLE}) without --auth-user"
            ),
        }
    }
}

/// Reads a file named by a flag; the error names the flag and path, never the content.
fn read_flag_file(flag: &str, path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {flag} {}: {e}", path.display()))
}

/// The first line of the password file, its line ending trimmed.
fn read_password_file(path: &std::path::Path) -> Result<String> {
    let bytes = read_flag_file("--auth-password-file", path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!("--auth-password-file {} is not UTF-8 text", path.display())
    })?;
    let first = text.lines().next().unwrap_or("");
    Ok(first.to_string())
}

/// Vitess's client credentials file: `{"Username": "...", "Password": "..."}`.
fn read_client_creds(path: &std::path::Path) -> Result<StaticAuth> {
    #[derive(serde::Deserialize)]
    struct ClientCreds {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Password")]
        password: String,
    }
    let bytes = read_flag_file("--auth-static-client-creds", path)?;
    // serde's messages can quote the offending value: report only where the problem is.
    let creds: ClientCreds = serde_json::from_slice(&bytes).map_err(|e| {
        anyhow::anyhow!(
            "--auth-static-client-creds {} is not {{\"Username\": \"...\", \"Password\": \"...\"}} JSON (line {} column {})",
            path.display(),
            e.line(),
            e.column()
        )
    })?;
    if creds.username.is_empty() || creds.password.is_empty() {
        anyhow::bail!(
            "--auth-static-client-creds {} needs a non-empty Username and Password",
            path.display()
        );
    }
    Ok(StaticAuth {
        username: creds.username,
        password: Secret(creds.password),
    })
}
