//! `--serve-addr`: the change feed over HTTP for consumers that are not written in Rust.
//! `GET /changes?after=SEQ&wait=SECS&limit=N&tables=a,b` answers the entries `vtmirror
//! changes` prints (NDJSON), long-polling when there are none yet; `GET /wait` is
//! read-your-writes (`commands::wait`).
//!
//! Why it is safe: it serves row data, so it has an address of its own (never the metrics
//! port, which scrapers reach), is off by default, refuses a non-loopback address without a
//! bearer token (`ServeSettings::check`), checks the token on every request before anything
//! else, in constant time (`auth`), and speaks TLS with a given certificate (`tls`). Errors
//! are one redacted line; nothing but a 401 answers a request without the token.
//!
//! Why it is correct: every read goes through `mirror::store::open_read_only` and
//! `mirror::change_log::feed`, the reader `vtmirror changes` uses. A read-only connection
//! never takes the write lock, so the writer never waits for a reader (invariant 5), and a
//! read sees committed transactions only, so no entry it sends can vanish later; `seq` has
//! no gap (invariant 8), so a consumer resuming `after` its last seq skips and repeats
//! nothing, wherever a page ended. Long polls run on blocking threads (SQLite calls block),
//! never on the runtime's workers, which also drive the sync; the connection cap bounds
//! those threads, and a poll ends with its request (`changes::SetOnDrop`).
//!
//! The server is `output::http_server`'s, as `--metrics-addr`'s: hyper 1, a connection cap,
//! a time limit on the TLS handshake and headers, the address bound at startup so a taken
//! port is one error before the sync runs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio_rustls::TlsAcceptor;

use crate::commands::wait::WaitFor;
use crate::output::http_server::{BoxedResponse, HttpServer};
use crate::source::transport::Secret;

mod auth;
mod changes;
mod http;
mod tls;
mod wait;

pub use auth::is_loopback;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// HOST:PORT (port 0: any free port).
    pub addr: String,
    /// The bearer token every request must carry; `None` only on a loopback address.
    pub token: Option<Secret<String>>,
    pub tls: Option<ServerTls>,
}

/// The server's certificate chain and key, PEM, read when the flags are validated.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Secret<Vec<u8>>,
}

impl ServeSettings {
    /// Refuses what would expose rows: a non-loopback address without a token, and a
    /// certificate and key rustls cannot use.
    pub fn check(&self) -> Result<()> {
        if self.token.is_none() && !is_loopback(&self.addr) {
            bail!(
                "--serve-addr {} is reachable from other machines: give a bearer token with \
                 --serve-token-file FILE (or serve on 127.0.0.1)",
                self.addr
            );
        }
        if let Some(tls) = &self.tls {
            tls::server_config(tls)?;
        }
        Ok(())
    }
}

/// Connections served at once; more are closed at once. Each long poll holds one blocking
/// thread, so this also bounds those.
const MAX_CONNECTIONS: usize = 64;

/// A running server; dropping it stops accepting.
pub struct Server {
    server: HttpServer,
}

struct Shared {
    db: PathBuf,
    token: Option<Secret<String>>,
    /// What `/wait` without a position waits for: the sync's own source.
    source: WaitFor,
}

impl Server {
    /// Binds `settings.addr` and serves the mirror `db`; `/wait` asks `source` (a
    /// `WaitFor::Source`) when no position is given.
    pub async fn start(settings: &ServeSettings, db: PathBuf, source: WaitFor) -> Result<Server> {
        settings.check()?;
        let acceptor = match &settings.tls {
            Some(tls) => Some(TlsAcceptor::from(tls::server_config(tls)?)),
            None => None,
        };
        let scheme = if acceptor.is_some() { "https" } else { "http" };
        let shared = Arc::new(Shared {
            db,
            token: settings.token.clone(),
            source,
        });
        let handler = Arc::new(move |req: Request<Incoming>| {
            let shared = Arc::clone(&shared);
            Box::pin(async move { route(req, &shared).await }) as BoxedResponse
        });
        let server = HttpServer::start(
            &settings.addr,
            "--serve-addr",
            MAX_CONNECTIONS,
            acceptor,
            handler,
        )
        .await?;
        let addr = server.local_addr();
        tracing::info!("serving the change feed at {scheme}://{addr} (/changes, /wait)");
        Ok(Server { server })
    }

    /// Starts a server when settings are given.
    pub async fn start_if(
        settings: Option<&ServeSettings>,
        db: &std::path::Path,
        source: WaitFor,
    ) -> Result<Option<Server>> {
        match settings {
            Some(s) => Ok(Some(Server::start(s, db.to_path_buf(), source).await?)),
            None => Ok(None),
        }
    }

    /// The bound address (the chosen port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

/// The token first: a request without it learns nothing, not even which paths exist.
async fn route(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    if !auth::authorized(req.headers(), shared.token.as_ref()) {
        return auth::unauthorized();
    }
    if req.method() != Method::GET {
        let mut response = http::error(StatusCode::METHOD_NOT_ALLOWED, "only GET is served");
        response.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET"),
        );
        return response;
    }
    let query = req.uri().query().unwrap_or("");
    match req.uri().path() {
        "/changes" => changes::handle(query, &shared.db).await,
        "/wait" => wait::handle(query, &shared.db, &shared.source).await,
        _ => http::error(StatusCode::NOT_FOUND, "not found: try /changes or /wait"),
    }
}
