//! How to reach vtgate: its address, optional TLS (CA, server name override, client
//! certificate for mTLS) and optional Vitess static auth, built into a tonic channel plus an
//! interceptor that adds the credentials to every call.
//!
//! Vitess's static auth (`--grpc_auth_mode static` on vtgate) reads the `username` and
//! `password` request metadata; its own clients take them from a JSON file
//! (`--grpc_auth_static_client_creds`, `{"Username": "...", "Password": "..."}`).

use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::source::proto::vtgateservice::vitess_client::VitessClient;

mod tls;

pub(crate) use tls::certificates;
pub use tls::is_tls_failure;

/// vtgate's own limit is 16 MiB by default; a single huge row is sent alone and may exceed
/// any packet size, so accept up to this much.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// A VStream client whose calls carry the configured credentials.
pub type VtgateClient = VitessClient<InterceptedService<Channel, Credentials>>;

/// The gRPC client under `VtgateClient`, for calls decoded into vtmirror's own message types
/// (`proto::vstream_events`).
pub type VtgateGrpc = tonic::client::Grpc<InterceptedService<Channel, Credentials>>;

/// Text or bytes that must never be printed: `Debug` shows `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(pub T);

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// TLS settings; certificate and key files are read once, when the flags are validated.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    /// PEM CA certificates to trust instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The name the server's certificate must be valid for, when not the address's host.
    pub server_name: Option<String>,
    /// PEM client certificate and key, for vtgates that require client certificates.
    pub client_identity: Option<(Vec<u8>, Secret<Vec<u8>>)>,
}

/// Vitess static auth credentials.
#[derive(Debug, Clone)]
pub struct StaticAuth {
    pub username: String,
    pub password: Secret<String>,
}

/// Everything about reaching vtgate.
#[derive(Debug, Clone)]
pub struct Vtgate {
    /// HOST:PORT, as given (a leading `http://` or `https://` is accepted).
    pub address: String,
    pub tls: Option<Tls>,
    pub auth: Option<StaticAuth>,
}

impl From<&str> for Vtgate {
    /// An address without credentials; `https://` means TLS with the system's CA roots.
    fn from(address: &str) -> Self {
        Vtgate {
            address: address.to_string(),
            tls: address.starts_with("https://").then(Tls::default),
            auth: None,
        }
    }
}

impl From<String> for Vtgate {
    fn from(address: String) -> Self {
        Vtgate::from(address.as_str())
    }
}

impl fmt::Display for Vtgate {
    /// The address only: what a log line or notice may show.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

impl Vtgate {
    /// The address without any scheme.
    fn host_port(&self) -> &str {
        let a = self.address.as_str();
        a.strip_prefix("https://")
            .or_else(|| a.strip_prefix("http://"))
            .unwrap_or(a)
    }

    /// The HTTP/2 endpoint. Its URI stays `http://` with TLS too: TLS is our connector's
    /// (see `tls`), below HTTP/2.
    fn endpoint(&self) -> Result<Endpoint> {
        let uri = format!("http://{}", self.host_port());
        Ok(Endpoint::from_shared(uri)
            .with_context(|| format!("invalid vtgate address {}", self.address))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true))
    }

    fn tls_connector(&self) -> Result<Option<tls::TlsConnector>> {
        let Some(settings) = &self.tls else {
            return Ok(None);
        };
        Ok(Some(tls::TlsConnector {
            config: tls::client_config(settings)?,
            server_name: settings.server_name.clone(),
        }))
    }

    /// Validates what can be checked before connecting: the address, the PEM files, the
    /// credentials' characters.
    pub fn check(&self) -> Result<()> {
        self.endpoint()?;
        self.tls_connector()?;
        self.credentials()?;
        Ok(())
    }

    /// The interceptor adding this connection's credentials to each call.
    pub fn credentials(&self) -> Result<Credentials> {
        let Some(auth) = &self.auth else {
            return Ok(Credentials(None));
        };
        // gRPC metadata values are printable ASCII; anything else would be mangled on the way.
        let printable = |text: &str| text.chars().all(|c| c == ' ' || c.is_ascii_graphic());
        if !printable(&auth.username) || !printable(&auth.password.0) {
            anyhow::bail!("the static auth user name and password must be printable ASCII");
        }
        let username = MetadataValue::try_from(auth.username.as_str())
            .context("the static auth user name is not a valid gRPC metadata value")?;
        let mut password = MetadataValue::try_from(auth.password.0.as_str()).map_err(|_| {
            anyhow::anyhow!("the static auth password is not a valid gRPC metadata value")
        })?;
        // Kept out of HTTP/2 header compression tables (HPACK "never indexed").
        password.set_sensitive(true);
        Ok(Credentials(Some((username, password))))
    }
}

/// Adds Vitess static auth metadata (`username`, `password`) to each call, if configured.
#[derive(Clone)]
pub struct Credentials(Option<(MetadataValue<Ascii>, MetadataValue<Ascii>)>);

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Credentials(static auth, <redacted>)"
        } else {
            "Credentials(none)"
        })
    }
}

impl Interceptor for Credentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some((username, password)) = &self.0 {
            let metadata = request.metadata_mut();
            metadata.insert("username", username.clone());
            metadata.insert("password", password.clone());
        }
        Ok(request)
    }
}

/// Connects (TCP, and the TLS handshake when configured) and returns a client whose calls
/// carry the credentials.
pub async fn connect(vtgate: &Vtgate) -> Result<VtgateClient> {
    let (channel, credentials) = connect_channel(vtgate).await?;
    let limit = max_message_bytes();
    Ok(VitessClient::with_interceptor(channel, credentials)
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit))
}

/// `connect`, as the plain gRPC client (same channel, credentials and limits).
pub async fn connect_grpc(vtgate: &Vtgate) -> Result<VtgateGrpc> {
    let (channel, credentials) = connect_channel(vtgate).await?;
    let limit = max_message_bytes();
    Ok(
        tonic::client::Grpc::new(InterceptedService::new(channel, credentials))
            .max_decoding_message_size(limit)
            .max_encoding_message_size(limit),
    )
}

async fn connect_channel(vtgate: &Vtgate) -> Result<(Channel, Credentials)> {
    let credentials = vtgate.credentials()?;
    let endpoint = vtgate.endpoint()?;
    let connected = match vtgate.tls_connector()? {
        Some(connector) => endpoint.connect_with_connector(connector).await,
        None => endpoint.connect().await,
    };
    let channel = connected.with_context(|| format!("connecting to vtgate at {vtgate}"))?;
    Ok((channel, credentials))
}

/// HTTP/2 keepalive, the only liveness check with `--heartbeat 0` and before a stream's first
/// message: a PING after this long without a byte from vtgate (so never while it streams
/// events or heartbeats). Not lower: vtgate's gRPC server (grpc-go) counts PINGs closer than
/// `--grpc_server_keepalive_enforcement_policy_min_time` (default 10 s) as abuse and answers
/// them with GOAWAY `too_many_pings`; 15 s keeps a margin over that.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// ... and the connection counts as dead if the PONG takes longer than this. The PONG queues
/// behind up to an HTTP/2 window of data already in flight, so a slow link needs seconds.
/// A black-holed connection is detected after interval + timeout = 25 s (measured in
/// `tests/faults/network.rs`; 30 s with the former 20 s interval).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// `VTMIRROR_MAX_MESSAGE_BYTES` overrides `MAX_MESSAGE_BYTES` (tests lower it to send a
/// message just over the limit without hundreds of MiB).
pub fn max_message_bytes() -> usize {
    std::env::var("VTMIRROR_MAX_MESSAGE_BYTES")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(MAX_MESSAGE_BYTES)
}

/// The first connection of a command, failing at once: a wrong address and a TLS refusal
/// are told apart in the message.
pub async fn connect_first(vtgate: &Vtgate) -> Result<VtgateClient> {
    if vtgate.tls.is_none() {
        refuse_a_tls_port(vtgate.host_port()).await?;
    }
    connect(vtgate).await.map_err(|err| {
        let what = if is_tls_failure(&err) {
            "TLS with vtgate failed"
        } else {
            "vtgate is unreachable; check --vtgate"
        };
        err.context(what)
    })
}

/// A plaintext HTTP/2 client on a TLS port sees only "connection closed" (the server's TLS
/// alert is an invalid HTTP/2 frame), which reads like a network fault and would be retried
/// forever. The server's first reply to the HTTP/2 preface tells them apart: a TLS record
/// (alert 0x15, handshake 0x16) instead of a SETTINGS frame. Silence or an error here is left
/// to the real connection to report.
async fn refuse_a_tls_port(host_port: &str) -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const PREFACE_AND_SETTINGS: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
    let probe = async {
        let mut tcp = tokio::net::TcpStream::connect(host_port).await.ok()?;
        tcp.write_all(PREFACE_AND_SETTINGS).await.ok()?;
        let mut first = [0u8; 1];
        (tcp.read(&mut first).await.ok()? == 1).then_some(first[0])
    };
    let first = tokio::time::timeout(Duration::from_secs(3), probe).await;
    if let Ok(Some(0x15 | 0x16)) = first {
        anyhow::bail!(
            "vtgate at {host_port} answered with TLS: connect with --tls (and --tls-ca FILE)"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(password: &str) -> Vtgate {
        Vtgate {
            address: "127.0.0.1:1".into(),
            tls: None,
            auth: Some(StaticAuth {
                username: "mirror".into(),
                password: Secret(password.into()),
            }),
        }
    }

    #[test]
    fn every_call_carries_the_static_auth_metadata() {
        let mut credentials = with_auth("pw-1").credentials().expect("ascii credentials");
        let request = credentials
            .call(Request::new(()))
            .expect("interceptor passes");
        let metadata = request.metadata();
        assert_eq!(
            metadata.get("username").map(|v| v.to_str().ok()),
            Some(Some("mirror"))
        );
        assert_eq!(
            metadata.get("password").map(|v| v.to_str().ok()),
            Some(Some("pw-1"))
        );
    }

    #[test]
    fn no_credentials_add_no_metadata() {
        let mut credentials = Vtgate::from("x:1").credentials().expect("no credentials");
        let request = credentials
            .call(Request::new(()))
            .expect("interceptor passes");
        assert!(request.metadata().get("password").is_none());
    }

    #[test]
    fn debug_output_never_shows_the_password() {
        let vtgate = with_auth("canary-debug-pw");
        let shown = format!("{vtgate:?} {:?}", vtgate.credentials().expect("ascii"));
        assert!(!shown.contains("canary-debug-pw"), "{shown}");
        assert!(shown.contains("mirror"));
    }

    #[test]
    fn a_password_that_is_not_ascii_is_refused_without_echoing_it() {
        let err = with_auth("pässwort").credentials().unwrap_err();
        assert!(!format!("{err:#}").contains("pässwort"));
    }

    #[test]
    fn an_https_address_means_tls() {
        let vtgate = Vtgate::from("https://vtgate:15991");
        assert_eq!(vtgate.host_port(), "vtgate:15991");
        assert!(vtgate.tls.is_some());
        assert!(Vtgate::from("vtgate:15991").tls.is_none());
    }
}
