//! The server side of TLS (`--serve-tls-cert`, `--serve-tls-key`): rustls with ring, as the
//! client side to vtgate uses, offering HTTP/1.1 only.

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::PrivateKeyDer;
use tokio_rustls::rustls::{self, ServerConfig};

use super::ServerTls;
use crate::source::transport::certificates;

/// The rustls server configuration; an error names the flag, never the key's bytes.
pub(super) fn server_config(tls: &ServerTls) -> Result<Arc<ServerConfig>> {
    let chain = certificates(&tls.cert_pem).context("reading the --serve-tls-cert certificate")?;
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem.0)
        .map_err(|_| anyhow::anyhow!("--serve-tls-key holds no PEM private key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("setting up TLS")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("--serve-tls-cert and --serve-tls-key do not form a usable certificate")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
