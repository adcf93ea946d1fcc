//! The tonic server: `vtgateservice.Vitess/VStream` and `Execute` over the served keyspaces.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};

use super::execute::execute;
use super::faults::Faults;
use super::keyspaces::{refs, Keyspaces};
use super::request::resolve;
use super::security::{Security, StaticAuthCheck};
use super::shared::SharedModel;
use super::stream::{Stream, StreamEnv, StreamOptions};
use crate::source::proto::topodata::TabletType;
use crate::source::proto::vtgate::{
    ExecuteRequest, ExecuteResponse, VStreamRequest, VStreamResponse,
};
use crate::source::proto::vtgateservice::vitess_server::{Vitess, VitessServer};

/// The VStream and Execute service (usable with any tonic `Server`).
#[derive(Clone)]
pub struct SimService {
    keyspaces: Keyspaces,
    faults: Arc<Faults>,
    opts: StreamOptions,
    requests: Arc<Mutex<Vec<VStreamRequest>>>,
    shutdown: watch::Receiver<bool>,
}

#[tonic::async_trait]
impl Vitess for SimService {
    type VStreamStream = ReceiverStream<Result<VStreamResponse, Status>>;

    async fn v_stream(
        &self,
        request: Request<VStreamRequest>,
    ) -> Result<Response<Self::VStreamStream>, Status> {
        let mut req = request.into_inner();
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(req.clone());
        if let Some(status) = self.faults.take_reject() {
            return Err(status);
        }
        if req.tablet_type == TabletType::Unknown as i32 {
            req.tablet_type = TabletType::Primary as i32;
        }
        let (tx, rx) = mpsc::channel(4);
        let env = StreamEnv {
            keyspaces: self.keyspaces.clone(),
            faults: self.faults.clone(),
            opts: self.opts,
            shutdown: self.shutdown.clone(),
        };
        let stream = {
            let guards = self.keyspaces.lock_all();
            let models = refs(&guards);
            let mut setup = resolve(&req, &models)?;
            let shard_names: Vec<String> = (setup.vgtid.shard_gtids.iter())
                .map(|s| s.shard.clone())
                .collect();
            self.faults.omit(&mut setup, &shard_names)?;
            Stream::new(setup, &models, env, tx)
        };
        tokio::spawn(stream.run());
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    /// SHOW VITESS_SHARDS and SHOW TABLES FROM; errors in-band. Not recorded in `requests()`.
    async fn execute(
        &self,
        request: Request<ExecuteRequest>,
    ) -> Result<Response<ExecuteResponse>, Status> {
        let req = request.into_inner();
        let response = {
            let guards = self.keyspaces.lock_all();
            execute(&req, &refs(&guards))
        };
        Ok(Response::new(response))
    }
}

/// A running simulated vtgate.
pub struct SimVtgate {
    addr: SocketAddr,
    keyspaces: Keyspaces,
    faults: Arc<Faults>,
    requests: Arc<Mutex<Vec<VStreamRequest>>>,
    stop_streams: watch::Sender<bool>,
    stop_server: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), tonic::transport::Error>>,
    tls: bool,
    auth_refusals: Arc<AtomicUsize>,
}

impl SimVtgate {
    /// Binds `addr` (e.g. "127.0.0.1:0") and serves one keyspace with default stream options.
    pub async fn start(model: Arc<SharedModel>, addr: &str) -> anyhow::Result<Self> {
        Self::start_with(model, addr, StreamOptions::default()).await
    }

    /// Binds `addr` and serves one keyspace with the given stream options.
    pub async fn start_with(
        model: Arc<SharedModel>,
        addr: &str,
        opts: StreamOptions,
    ) -> anyhow::Result<Self> {
        Self::start_keyspaces(vec![model], addr, opts).await
    }

    /// Binds `addr` and serves several keyspaces (one model each, distinct keyspace names)
    /// in one server and one VStream.
    pub async fn start_keyspaces(
        models: Vec<Arc<SharedModel>>,
        addr: &str,
        opts: StreamOptions,
    ) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Self::serve_keyspaces(models, listener, opts, Security::default())
    }

    /// Serves one keyspace on an already bound listener.
    pub fn serve(
        model: Arc<SharedModel>,
        listener: TcpListener,
        opts: StreamOptions,
    ) -> anyhow::Result<Self> {
        Self::serve_secured(model, listener, opts, Security::default())
    }

    /// Serves one keyspace on an already bound listener with TLS and/or static auth.
    pub fn serve_secured(
        model: Arc<SharedModel>,
        listener: TcpListener,
        opts: StreamOptions,
        security: Security,
    ) -> anyhow::Result<Self> {
        Self::serve_keyspaces(vec![model], listener, opts, security)
    }

    /// Serves several keyspaces (one model each, distinct keyspace names, at least one) on an
    /// already bound listener, with TLS and/or static auth (which covers every RPC).
    pub fn serve_keyspaces(
        models: Vec<Arc<SharedModel>>,
        listener: TcpListener,
        opts: StreamOptions,
        security: Security,
    ) -> anyhow::Result<Self> {
        let keyspaces = Keyspaces::new(models)?;
        let addr = listener.local_addr()?;
        let faults = Arc::new(Faults::default());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (stop_streams, shutdown) = watch::channel(false);
        let service = SimService {
            keyspaces: keyspaces.clone(),
            faults: faults.clone(),
            opts,
            requests: requests.clone(),
            shutdown,
        };
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let svc = VitessServer::new(service)
            .max_decoding_message_size(64 << 20)
            .max_encoding_message_size(usize::MAX);
        let auth_refusals = Arc::new(AtomicUsize::new(0));
        let check = StaticAuthCheck {
            accepted: security.static_auth,
            refused: auth_refusals.clone(),
        };
        let svc = InterceptedService::new(svc, check);
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &security.tls {
            builder = builder.tls_config(tls.config())?;
        }
        let server = tokio::spawn(builder.add_service(svc).serve_with_incoming_shutdown(
            TcpListenerStream::new(listener),
            async {
                let _ = stop_rx.await;
            },
        ));
        Ok(Self {
            addr,
            keyspaces,
            faults,
            requests,
            stop_streams,
            stop_server: Some(stop_tx),
            server,
            tls: security.tls.is_some(),
            auth_refusals,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>` (`https://` when serving TLS), for `VitessClient::connect`.
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The model of the first keyspace served.
    pub fn model(&self) -> Arc<SharedModel> {
        self.keyspaces.first().clone()
    }

    /// The model of keyspace `name`, if served.
    pub fn keyspace(&self, name: &str) -> Option<Arc<SharedModel>> {
        self.keyspaces.get(name).cloned()
    }

    /// Every keyspace's model, in the order given.
    pub fn models(&self) -> Vec<Arc<SharedModel>> {
        self.keyspaces.all().to_vec()
    }

    /// Every VStreamRequest received so far, in order (as received: tablet_type not mapped).
    pub fn requests(&self) -> Vec<VStreamRequest> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Calls refused by static auth so far.
    pub fn auth_refusals(&self) -> usize {
        self.auth_refusals.load(Ordering::Relaxed)
    }

    /// The fault switchboard.
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }

    /// Ends every stream with UNAVAILABLE and stops the server (aborted after 2 s).
    pub async fn shutdown(mut self) {
        let _ = self.stop_streams.send(true);
        if let Some(tx) = self.stop_server.take() {
            let _ = tx.send(());
        }
        let abort = self.server.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), &mut self.server)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

impl Drop for SimVtgate {
    fn drop(&mut self) {
        let _ = self.stop_streams.send(true);
        self.server.abort();
    }
}
