//! The HTTP endpoint of `sync` and `demo` (`--metrics-addr`): `/metrics` (Prometheus text
//! format), `/healthz` and `/readyz` (200 or 503 with the reason).
//!
//! The server itself is `output::http_server`'s (hyper 1, a connection cap, a header
//! timeout). The endpoint runs on the sync's tokio runtime and reads only atomics and file
//! sizes, so a scrape never waits on, or makes wait, the writer thread. The address is bound
//! before the sync starts, so a taken port is one clear error at startup.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::output::exposition::Exposition;
use crate::output::health::{healthz, readyz, HealthLimits, Verdict};
use crate::output::http_server::HttpServer;
use crate::output::progress::Progress;

/// Where and with which limits to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointSettings {
    /// HOST:PORT (port 0: any free port).
    pub addr: String,
    pub limits: HealthLimits,
}

/// Connections served at once; more are closed at once (scrapers and probes need a few).
const MAX_CONNECTIONS: usize = 32;

/// A running endpoint; dropping it stops serving.
pub struct Endpoint {
    server: HttpServer,
}

struct Shared {
    exposition: Exposition,
    progress: Arc<Progress>,
    limits: HealthLimits,
}

impl Endpoint {
    /// Binds `settings.addr` and serves `progress` (and the sizes of the mirror at `db`).
    pub async fn start(
        settings: &EndpointSettings,
        progress: Arc<Progress>,
        db: PathBuf,
    ) -> Result<Endpoint> {
        let shared = Arc::new(Shared {
            exposition: Exposition::new(Arc::clone(&progress), db)?,
            progress,
            limits: settings.limits,
        });
        let handler = Arc::new(move |req: Request<Incoming>| {
            let answer = route(&req, &shared);
            Box::pin(async move { answer }) as crate::output::http_server::BoxedResponse
        });
        let server = HttpServer::start(
            &settings.addr,
            "--metrics-addr",
            MAX_CONNECTIONS,
            None,
            handler,
        )
        .await?;
        let addr = server.local_addr();
        tracing::info!(
            "serving http://{addr}/metrics, http://{addr}/healthz and http://{addr}/readyz"
        );
        Ok(Endpoint { server })
    }

    /// Starts an endpoint when settings are given.
    pub async fn start_if(
        settings: Option<&EndpointSettings>,
        progress: &Arc<Progress>,
        db: &std::path::Path,
    ) -> Result<Option<Endpoint>> {
        match settings {
            Some(s) => Ok(Some(
                Endpoint::start(s, Arc::clone(progress), db.to_path_buf()).await?,
            )),
            None => Ok(None),
        }
    }

    /// The bound address (the chosen port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }
}

fn route(req: &Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let now = shared.progress.snapshot();
    match req.uri().path() {
        "/metrics" => match shared.exposition.render() {
            Ok(text) => reply(StatusCode::OK, prometheus::TEXT_FORMAT, text),
            Err(e) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("{e:#}\n"),
            ),
        },
        "/healthz" => verdict(healthz(&now, &shared.limits)),
        "/readyz" => {
            let copies = shared.progress.table_copies();
            verdict(readyz(&now, &copies, now_secs(), &shared.limits))
        }
        "/" => reply(
            StatusCode::OK,
            "text/plain; charset=utf-8",
            "vtmirror: /metrics /healthz /readyz\n".into(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

fn verdict(v: Verdict) -> Response<Full<Bytes>> {
    let status = if v.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    reply(status, "text/plain; charset=utf-8", v.reason + "\n")
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).await.unwrap();
        let status = text[9..12].parse().unwrap();
        let body = text.split_once("\r\n\r\n").unwrap().1.to_string();
        (status, body)
    }

    fn settings(addr: &str) -> EndpointSettings {
        EndpointSettings {
            addr: addr.into(),
            limits: HealthLimits::default(),
        }
    }

    #[tokio::test]
    async fn the_endpoint_serves_metrics_health_and_readiness_with_reasons() {
        let progress = Arc::new(Progress::default());
        let db = PathBuf::from("/nonexistent/m.db");
        let endpoint = Endpoint::start(&settings("127.0.0.1:0"), progress, db)
            .await
            .unwrap();
        let addr = endpoint.local_addr();
        let (status, metrics) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(metrics.contains("vtmirror_rows_applied_total{phase=\"copy\"} 0"));
        assert_eq!(get(addr, "/healthz").await.0, 200);
        let (status, reason) = get(addr, "/readyz").await;
        assert_eq!(status, 503);
        assert!(
            reason.starts_with("not ready: copy in progress"),
            "{reason}"
        );
        assert_eq!(get(addr, "/nope").await.0, 404);
    }

    #[tokio::test]
    async fn a_taken_address_is_one_clear_error_at_startup() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let progress = Arc::new(Progress::default());
        let err = Endpoint::start(&settings(&addr), progress, PathBuf::from("m.db"))
            .await
            .err()
            .expect("the port is taken");
        let text = format!("{err:#}");
        assert!(text.starts_with(&format!("cannot listen on --metrics-addr {addr}: ")));
        assert!(text.to_lowercase().contains("in use"), "{text}");
    }
}
