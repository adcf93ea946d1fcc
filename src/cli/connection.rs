//! The connection-security flags `sync`, `tail`, `verify` and `wait` share (TLS, Vitess static auth) and their
//! validation into `transport::Vtgate`, reading the files they name.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use crate::source::transport::{Secret, StaticAuth, Tls, Vtgate};

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
pub(super) fn read_flag_file(flag: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("cannot read {flag} {}: {e}", path.display()))
}

/// The first line of the password file, its line ending trimmed.
fn read_password_file(path: &Path) -> Result<String> {
    let bytes = read_flag_file("--auth-password-file", path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!("--auth-password-file {} is not UTF-8 text", path.display())
    })?;
    let first = text.lines().next().unwrap_or("");
    Ok(first.to_string())
}

/// Vitess's client credentials file: `{"Username": "...", "Password": "..."}`.
fn read_client_creds(path: &Path) -> Result<StaticAuth> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "canary-unit-pw";

    fn file(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("test file written");
        path
    }

    fn error(args: &ConnectionArgs, address: &str, variable: Option<&str>) -> String {
        let err = args
            .vtgate_with(address, variable.map(str::to_string))
            .expect_err("refused");
        format!("{err:#}")
    }

    #[test]
    fn the_password_file_gives_its_first_line_without_the_line_ending() {
        let dir = tempfile::tempdir().expect("temp dir");
        let args = ConnectionArgs {
            auth_user: Some("mirror".into()),
            auth_password_file: Some(file(&dir, "pw", &format!("{PASSWORD}\r\nignored\n"))),
            insecure: true,
            ..Default::default()
        };
        let vtgate = args.vtgate_with("h:1", None).expect("valid");
        let auth = vtgate.auth.expect("static auth");
        assert_eq!(
            (auth.username.as_str(), auth.password.0.as_str()),
            ("mirror", PASSWORD)
        );
        assert!(vtgate.tls.is_none());
    }

    #[test]
    fn the_password_variable_is_used_only_with_a_user() {
        let with_user = ConnectionArgs {
            auth_user: Some("mirror".into()),
            insecure: true,
            ..Default::default()
        };
        let vtgate = with_user
            .vtgate_with("h:1", Some(PASSWORD.into()))
            .expect("valid");
        assert_eq!(vtgate.auth.expect("auth").password.0, PASSWORD);
        let alone = error(&ConnectionArgs::default(), "h:1", Some(PASSWORD));
        assert!(alone.contains("without --auth-user"), "{alone}");
        assert!(!alone.contains(PASSWORD));
    }

    #[test]
    fn static_auth_without_tls_needs_insecure() {
        let args = ConnectionArgs {
            auth_user: Some("mirror".into()),
            ..Default::default()
        };
        let refused = error(&args, "h:1", Some(PASSWORD));
        assert!(refused.contains("--insecure"), "{refused}");
        let https = args.vtgate_with("https://h:1", Some(PASSWORD.into()));
        assert!(
            https.is_ok_and(|v| v.tls.is_some()),
            "an https:// address is TLS"
        );
    }

    #[test]
    fn the_vitess_client_creds_file_is_read_and_its_errors_never_quote_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let good = file(
            &dir,
            "c.json",
            &format!(r#"{{"Username": "u1", "Password": "{PASSWORD}"}}"#),
        );
        let args = ConnectionArgs {
            auth_static_client_creds: Some(good),
            insecure: true,
            ..Default::default()
        };
        let auth = args
            .vtgate_with("h:1", None)
            .expect("valid")
            .auth
            .expect("auth");
        assert_eq!(
            (auth.username.as_str(), auth.password.0.as_str()),
            ("u1", PASSWORD)
        );
        let typo = file(
            &dir,
            "bad.json",
            &format!(r#"{{"Username": "u1", "Password": ["{PASSWORD}"]}}"#),
        );
        let args = ConnectionArgs {
            auth_static_client_creds: Some(typo),
            insecure: true,
            ..Default::default()
        };
        let message = error(&args, "h:1", None);
        assert!(message.contains("line 1 column"), "{message}");
        assert!(!message.contains(PASSWORD), "{message}");
    }

    #[test]
    fn incomplete_or_contradictory_flags_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let pem = file(&dir, "x.pem", "not pem");
        let key_only = ConnectionArgs {
            tls_key: Some(pem.clone()),
            ..Default::default()
        };
        assert!(error(&key_only, "h:1", None).contains("--tls-key needs --tls-cert"));
        let plaintext_scheme = ConnectionArgs {
            tls: true,
            ..Default::default()
        };
        assert!(error(&plaintext_scheme, "http://h:1", None).contains("http://"));
        let both = ConnectionArgs {
            auth_user: Some("u".into()),
            auth_static_client_creds: Some(pem.clone()),
            ..Default::default()
        };
        assert!(error(&both, "h:1", None).contains("give one or the other"));
        let garbage_ca = ConnectionArgs {
            tls_ca: Some(pem),
            ..Default::default()
        };
        let message = error(&garbage_ca, "h:1", None);
        assert!(message.contains("--tls-ca"), "{message}");
        assert!(!message.contains("not pem"), "{message}");
    }

    #[test]
    fn a_missing_file_names_the_flag_and_path() {
        let args = ConnectionArgs {
            auth_user: Some("u".into()),
            auth_password_file: Some("/nonexistent/pw".into()),
            ..Default::default()
        };
        let message = error(&args, "h:1", None);
        assert!(
            message.starts_with("cannot read --auth-password-file /nonexistent/pw"),
            "{message}"
        );
    }
}
