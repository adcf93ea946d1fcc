//! The `--serve-addr` flags `sync` and `demo` share (the change feed over HTTP), validated
//! into `ServeSettings`: files read and the address checked before anything is written.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use super::connection::read_flag_file;
use crate::commands::serve::{ServeSettings, ServerTls};
use crate::source::transport::Secret;

#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Change feed over HTTP")]
pub struct ServeArgs {
    /// Serve the change log at /changes (long-poll NDJSON; the mirror needs --changes) and
    /// read-your-writes at /wait on HOST:PORT (port 0 picks a free one). Off by default. It
    /// serves row data: use an address of its own, not --metrics-addr's; any address but
    /// loopback needs --serve-token-file.
    #[arg(long, value_name = "HOST:PORT", env = "VTMIRROR_SERVE_ADDR")]
    pub serve_addr: Option<String>,
    /// File holding the bearer token every request must send (`Authorization: Bearer
    /// TOKEN`; the file's content, trimmed). Required unless --serve-addr is loopback.
    #[arg(long, value_name = "FILE", env = "VTMIRROR_SERVE_TOKEN_FILE")]
    pub serve_token_file: Option<PathBuf>,
    /// PEM certificate (chain) to serve HTTPS with; needs --serve-tls-key.
    #[arg(long, value_name = "FILE", env = "VTMIRROR_SERVE_TLS_CERT")]
    pub serve_tls_cert: Option<PathBuf>,
    /// PEM private key of --serve-tls-cert.
    #[arg(long, value_name = "FILE", env = "VTMIRROR_SERVE_TLS_KEY")]
    pub serve_tls_key: Option<PathBuf>,
}

impl ServeArgs {
    /// The server to start, if `--serve-addr` was given.
    pub fn settings(&self) -> Result<Option<ServeSettings>> {
        let Some(addr) = self.serve_addr.as_deref().map(str::trim) else {
            if self.serve_token_file.is_some()
                || self.serve_tls_cert.is_some()
                || self.serve_tls_key.is_some()
            {
                bail!("--serve-token-file, --serve-tls-cert and --serve-tls-key need --serve-addr");
            }
            return Ok(None);
        };
        if addr.is_empty() {
            bail!("--serve-addr needs HOST:PORT, e.g. 127.0.0.1:9651");
        }
        let token = match &self.serve_token_file {
            Some(path) => Some(Secret(read_token(path)?)),
            None => None,
        };
        let tls = match (&self.serve_tls_cert, &self.serve_tls_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(ServerTls {
                cert_pem: read_flag_file("--serve-tls-cert", cert)?,
                key_pem: Secret(read_flag_file("--serve-tls-key", key)?),
            }),
            (Some(_), None) => {
                bail!("--serve-tls-cert needs --serve-tls-key (the certificate's key)")
            }
            (None, Some(_)) => {
                bail!("--serve-tls-key needs --serve-tls-cert (the key's certificate)")
            }
        };
        let settings = ServeSettings {
            addr: addr.to_string(),
            token,
            tls,
        };
        settings.check()?;
        Ok(Some(settings))
    }
}

/// The token: the file's content, trimmed; one word of visible characters (it travels in a
/// header). The error names the file, never the content.
fn read_token(path: &Path) -> Result<String> {
    let bytes = read_flag_file("--serve-token-file", path)?;
    let text = String::from_utf8(bytes).unwrap_or_default();
    let token = text.trim();
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "--serve-token-file {} must hold a token: one word of visible ASCII characters",
            path.display()
        );
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(addr: &str, token: Option<&Path>) -> ServeArgs {
        ServeArgs {
            serve_addr: Some(addr.into()),
            serve_token_file: token.map(Path::to_path_buf),
            ..ServeArgs::default()
        }
    }

    fn error(args: &ServeArgs) -> String {
        format!("{:#}", args.settings().expect_err("refused"))
    }

    #[test]
    fn a_non_loopback_address_needs_a_token_and_the_token_is_the_trimmed_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(error(&args("0.0.0.0:0", None)).contains("--serve-token-file"));
        assert!(error(&args("10.1.2.3:80", None)).contains("give a bearer token"));
        assert!(args("127.0.0.1:0", None)
            .settings()
            .unwrap()
            .unwrap()
            .token
            .is_none());
        let file = dir.path().join("token");
        std::fs::write(&file, "  tok-123\n").unwrap();
        let settings = args("0.0.0.0:0", Some(&file)).settings().unwrap().unwrap();
        assert_eq!(settings.token.unwrap().0, "tok-123");
        std::fs::write(&file, " \n").unwrap();
        let empty = error(&args("0.0.0.0:0", Some(&file)));
        assert!(empty.contains("must hold a token"), "{empty}");
        let missing = error(&args("0.0.0.0:0", Some(&dir.path().join("nope"))));
        assert!(
            missing.starts_with("cannot read --serve-token-file"),
            "{missing}"
        );
    }

    #[test]
    fn tls_needs_both_files_and_a_usable_pem() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("x.pem");
        std::fs::write(&pem, "not pem").unwrap();
        let mut half = args("127.0.0.1:0", None);
        half.serve_tls_cert = Some(pem.clone());
        assert!(error(&half).contains("--serve-tls-cert needs --serve-tls-key"));
        half.serve_tls_key = Some(pem);
        let text = error(&half);
        assert!(text.contains("--serve-tls-cert"), "{text}");
        assert!(!text.contains("not pem"), "{text}");
        let orphan = ServeArgs {
            serve_token_file: Some(dir.path().join("t")),
            ..ServeArgs::default()
        };
        assert!(error(&orphan).contains("need --serve-addr"));
    }
}
