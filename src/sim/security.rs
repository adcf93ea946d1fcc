//! Optional security of the simulated vtgate: TLS (server identity, optionally requiring
//! client certificates signed by a CA) and Vitess static auth, answered as vtgate answers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Status};

/// How the simulated vtgate is secured; the default is plaintext without auth.
#[derive(Clone, Default)]
pub struct Security {
    pub tls: Option<ServerTls>,
    /// The one accepted (username, password) pair, like vtgate's `--grpc_auth_mode static`.
    pub static_auth: Option<(String, String)>,
}

/// The server's TLS identity (PEM), and the CA its clients' certificates must chain to, if
/// client certificates are required.
#[derive(Clone)]
pub struct ServerTls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub client_ca_pem: Option<Vec<u8>>,
}

impl ServerTls {
    pub(super) fn config(&self) -> ServerTlsConfig {
        let config =
            ServerTlsConfig::new().identity(Identity::from_pem(&self.cert_pem, &self.key_pem));
        match &self.client_ca_pem {
            Some(ca) => config.client_ca_root(Certificate::from_pem(ca)),
            None => config,
        }
    }
}

/// Checks the `username`/`password` metadata of each call when static auth is on, counting
/// the calls it refuses.
#[derive(Clone)]
pub struct StaticAuthCheck {
    pub(super) accepted: Option<(String, String)>,
    pub(super) refused: Arc<AtomicUsize>,
}

impl Interceptor for StaticAuthCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let result = self.check(request);
        if result.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

impl StaticAuthCheck {
    fn check(&self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some((user, password)) = &self.accepted else {
            return Ok(request);
        };
        let metadata = request.metadata();
        let given = |key: &str| metadata.get(key).and_then(|v| v.to_str().ok());
        let (Some(given_user), Some(given_password)) = (given("username"), given("password"))
        else {
            // vtgate's own wording (servenv's static auth plugin).
            return Err(Status::unauthenticated(
                "username and password must be provided",
            ));
        };
        if given_user == user && given_password == password {
            return Ok(request);
        }
        Err(Status::permission_denied(format!(
            "auth failure: caller {given_user:?} provided invalid credentials"
        )))
    }
}
