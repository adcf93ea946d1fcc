//! TLS to vtgate with rustls: what to trust (a CA file or the system's roots), the name the
//! certificate must carry, an optional client certificate, and a connector that waits briefly
//! for the server's first bytes. With TLS 1.3 a server refusing the client certificate says
//! so only after the handshake; reading first turns that into a connect error naming the
//! cause, instead of a bare "connection closed" on the first call.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::{Context as _, Result};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};
use tonic::codegen::http::Uri;
use tonic::codegen::Service;

use super::Tls;

/// How long to wait for the server's first bytes after the handshake; servers that stay
/// silent until spoken to simply go on after this.
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(3);

/// The rustls client configuration for `tls` (HTTP/2 offered through ALPN, as gRPC needs).
pub(super) fn client_config(tls: &Tls) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_root_certificates(roots(tls.ca_pem.as_deref())?);
    let mut config = match &tls.client_identity {
        Some((cert, key)) => {
            let chain = certificates(cert).context("reading the --tls-cert certificate")?;
            let key = PrivateKeyDer::from_pem_slice(&key.0)
                .map_err(|_| anyhow::anyhow!("--tls-key holds no PEM private key"))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("--tls-cert and --tls-key do not form a usable client certificate")?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

pub(crate) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| anyhow::anyhow!("not a PEM certificate file"))?;
    if certs.is_empty() {
        anyhow::bail!("no PEM certificate found");
    }
    Ok(certs)
}

fn roots(ca_pem: Option<&[u8]>) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let certs = match ca_pem {
        Some(pem) => certificates(pem).context("reading the --tls-ca certificates")?,
        None => rustls_native_certs::load_native_certs().certs,
    };
    let (added, _) = roots.add_parsable_certificates(certs);
    if added == 0 {
        anyhow::bail!("no usable CA certificate to verify vtgate with (--tls-ca FILE)");
    }
    Ok(roots)
}

/// Opens TCP, runs the TLS handshake and waits for the server's first bytes.
#[derive(Clone)]
pub(super) struct TlsConnector {
    pub(super) config: Arc<ClientConfig>,
    pub(super) server_name: Option<String>,
}

type Connecting = Pin<Box<dyn std::future::Future<Output = io::Result<TokioIo<Primed>>> + Send>>;

impl Service<Uri> for TlsConnector {
    type Response = TokioIo<Primed>;
    type Error = io::Error;
    type Future = Connecting;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { this.connect(uri).await.map(TokioIo::new) })
    }
}

impl TlsConnector {
    async fn connect(self, uri: Uri) -> io::Result<Primed> {
        let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_string());
        let host = uri
            .host()
            .ok_or_else(|| invalid("the vtgate address has no host"))?;
        let port = uri
            .port_u16()
            .ok_or_else(|| invalid("the vtgate address has no port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = self.server_name.as_deref().unwrap_or(host).to_string();
        let name = ServerName::try_from(name)
            .map_err(|_| invalid("the TLS server name is not a valid host name"))?;
        let tcp = TcpStream::connect((host, port)).await?;
        tcp.set_nodelay(true)?;
        let mut stream = tokio_rustls::TlsConnector::from(self.config)
            .connect(name, tcp)
            .await?;
        let mut first = vec![0u8; 16 * 1024];
        let read = match tokio::time::timeout(FIRST_BYTES_WAIT, stream.read(&mut first)).await {
            Ok(read) => read?,
            Err(_) => 0,
        };
        first.truncate(read);
        Ok(Primed {
            first,
            offset: 0,
            stream,
        })
    }
}

/// The TLS stream with the bytes read while connecting put back in front.
pub(super) struct Primed {
    first: Vec<u8>,
    offset: usize,
    stream: TlsStream<TcpStream>,
}

impl AsyncRead for Primed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.offset < self.first.len() {
            let n = buf.remaining().min(self.first.len() - self.offset);
            let start = self.offset;
            buf.put_slice(&self.first[start..start + n]);
            self.offset += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Primed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Whether an error (anywhere in its chain) is a TLS failure: a certificate refused by
/// either side, a protocol mismatch. Retrying cannot fix those.
pub fn is_tls_failure(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.is::<rustls::Error>()
            || cause
                .downcast_ref::<io::Error>()
                .and_then(|e| e.get_ref())
                .is_some_and(|inner| inner.is::<rustls::Error>())
    })
}
