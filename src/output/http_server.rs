//! The HTTP/1.1 server under `--metrics-addr` (`output::endpoint`) and `--serve-addr`
//! (`commands::serve`): hyper 1 directly (it already serves tonic in this tree, and a few
//! fixed paths need no router), the address bound before anything else starts (a taken port
//! is one error at startup), a cap on connections (more are closed at once), a time limit on
//! the TLS handshake and the request headers, and TLS when an acceptor is given.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

/// A client must finish the TLS handshake and send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What answers each request.
pub type Handler = Arc<dyn Fn(Request<Incoming>) -> BoxedResponse + Send + Sync + 'static>;
pub type BoxedResponse =
    std::pin::Pin<Box<dyn Future<Output = Response<Full<Bytes>>> + Send + 'static>>;

/// A running server; dropping it stops accepting.
pub struct HttpServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpServer {
    /// Binds `addr` (`flag` names it in the error) and serves up to `max_connections` at
    /// once with `handler`, over TLS when `tls` is given.
    pub async fn start(
        addr: &str,
        flag: &str,
        max_connections: usize,
        tls: Option<TlsAcceptor>,
        handler: Handler,
    ) -> Result<HttpServer> {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {flag} {addr}"))?;
        let addr = listener
            .local_addr()
            .with_context(|| format!("reading the address of {flag}"))?;
        let slots = Arc::new(Semaphore::new(max_connections));
        let task = tokio::spawn(accept_loop(listener, slots, tls, handler));
        Ok(HttpServer { addr, task })
    }

    /// The bound address (the chosen port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }
}

async fn accept_loop(
    listener: TcpListener,
    slots: Arc<Semaphore>,
    tls: Option<TlsAcceptor>,
    handler: Handler,
) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(error = %e, "an HTTP endpoint could not accept a connection");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue; // dropping the stream closes it
        };
        let (tls, handler) = (tls.clone(), Arc::clone(&handler));
        tokio::spawn(async move {
            match tls {
                None => serve_connection(stream, handler).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => serve_connection(stream, handler).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "a TLS handshake failed"),
                        Err(_) => tracing::debug!("a TLS handshake timed out"),
                    }
                }
            }
            drop(slot);
        });
    }
}

async fn serve_connection<S>(stream: S, handler: Handler)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let answer = handler(req);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let served = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, "an HTTP connection ended with an error");
    }
}
