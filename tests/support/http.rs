//! A small HTTP/1.1 client for the tests of `--serve-addr`: one request per connection over a
//! plain `TcpStream`, or over rustls trusting a given CA; the answer's status, headers and
//! body.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        (self.headers.iter())
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The status and the start of the body, for an assertion's message.
    pub fn brief(&self) -> String {
        let start: String = self.body.chars().take(300).collect();
        format!("{} {start}", self.status)
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// `METHOD path` to `addr` in plain HTTP, with `Authorization: Bearer token` when given.
pub fn request(addr: &str, method: &str, path: &str, token: Option<&str>) -> io::Result<Reply> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    exchange(&mut stream, addr, method, path, token)
}

/// `GET path` in plain HTTP.
pub fn get(addr: &str, path: &str, token: Option<&str>) -> io::Result<Reply> {
    request(addr, "GET", path, token)
}

/// `GET path` over TLS, trusting only the CA certificates in `ca_pem`.
pub fn get_tls(addr: &str, path: &str, token: Option<&str>, ca_pem: &str) -> io::Result<Reply> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("a PEM CA")).expect("a usable CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h).to_string();
    let name = ServerName::try_from(host).expect("a server name");
    let connection = ClientConnection::new(Arc::new(config), name).map_err(io::Error::other)?;
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut stream = StreamOwned::new(connection, tcp);
    exchange(&mut stream, addr, "GET", path, token)
}

fn exchange(
    stream: &mut (impl Read + Write),
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> io::Result<Reply> {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let request =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    stream.flush()?;
    let mut bytes = Vec::new();
    match stream.read_to_end(&mut bytes) {
        Ok(_) => {}
        // A TLS peer that closes without close_notify, after a whole answer.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && !bytes.is_empty() => {}
        Err(e) => return Err(e),
    }
    parse(&String::from_utf8_lossy(&bytes))
}

fn parse(text: &str) -> io::Result<Reply> {
    let invalid = || io::Error::new(io::ErrorKind::InvalidData, format!("not HTTP: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(invalid)?;
    let mut lines = head.lines();
    let status_line = lines.next().ok_or_else(invalid)?;
    if !status_line.starts_with("HTTP/1.") {
        return Err(invalid());
    }
    let status = (status_line.get(9..12).and_then(|s| s.parse().ok())).ok_or_else(invalid)?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: body.to_string(),
    })
}
