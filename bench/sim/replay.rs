//! The replay server: a vtgate `VStream` endpoint on loopback that streams pre-encoded
//! responses from memory (no per-request encoding), optionally paced at an offered rate,
//! then keeps the stream open like an idle vtgate.

use std::convert::Infallible;
use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType};
use tokio::sync::oneshot;
use tokio_stream::{Stream, StreamExt};
use tonic::body::Body;
use tonic::codegen::{http, Body as HttpBody, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::Status;
use tonic_prost::ProstCodec;
use vtmirror::source::proto::vtgate::VStreamRequest;

/// An already encoded `VStreamResponse`: "encoding" it copies the bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PreEncoded(Bytes);

impl prost::Message for PreEncoded {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }
    fn encoded_len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0 = Bytes::new();
    }
}

/// What every stream opened on the server sends.
pub struct Feed {
    pub responses: Arc<Vec<Bytes>>,
    /// Responses per second; None = as fast as the client reads.
    pub offered_rate: Option<f64>,
    /// When each response was handed to the transport (paced feeds only).
    pub sent_at: Mutex<Vec<Instant>>,
    /// Stream this file of length-prefixed responses instead (`--long`).
    pub file: Option<PathBuf>,
}

impl Feed {
    pub fn new(responses: Arc<Vec<Bytes>>, offered_rate: Option<f64>) -> Arc<Self> {
        Arc::new(Feed {
            responses,
            offered_rate,
            sent_at: Mutex::new(Vec::new()),
            file: None,
        })
    }

    pub fn from_file(file: PathBuf) -> Arc<Self> {
        Arc::new(Feed {
            responses: Arc::new(Vec::new()),
            offered_rate: None,
            sent_at: Mutex::new(Vec::new()),
            file: Some(file),
        })
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<PreEncoded, Status>> + Send>>;

fn unpaced(feed: Arc<Feed>) -> ResponseStream {
    let responses = Arc::clone(&feed.responses);
    let items = (0..responses.len()).map(move |i| Ok(PreEncoded(responses[i].clone())));
    Box::pin(tokio_stream::iter(items).chain(tokio_stream::pending()))
}

fn paced(feed: Arc<Feed>, rate: f64) -> ResponseStream {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        for (i, response) in feed.responses.iter().enumerate() {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
            feed.sent_at.lock().unwrap().push(Instant::now());
            if tx.send(Ok(PreEncoded(response.clone()))).await.is_err() {
                return;
            }
        }
        std::future::pending::<()>().await;
    });
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// Reads the file on its own thread, a few responses ahead of the client (bounded memory).
fn from_file(path: PathBuf) -> ResponseStream {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let send = |item| tx.blocking_send(item).is_ok();
        let read = || -> std::io::Result<()> {
            let mut file = BufReader::with_capacity(1 << 20, File::open(&path)?);
            let mut len = [0u8; 4];
            loop {
                match file.read_exact(&mut len) {
                    Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
                    other => other?,
                }
                let mut buf = vec![0; u32::from_le_bytes(len) as usize];
                file.read_exact(&mut buf)?;
                if !send(Ok(PreEncoded(Bytes::from(buf)))) {
                    return Ok(());
                }
            }
        };
        if let Err(e) = read() {
            send(Err(Status::internal(format!(
                "reading {}: {e}",
                path.display()
            ))));
        }
    });
    let responses = tokio_stream::wrappers::ReceiverStream::new(rx);
    Box::pin(responses.chain(tokio_stream::pending()))
}

struct VStreamMethod(Arc<Feed>);

impl ServerStreamingService<VStreamRequest> for VStreamMethod {
    type Response = PreEncoded;
    type ResponseStream = ResponseStream;
    type Future = BoxFuture<tonic::Response<ResponseStream>, Status>;

    fn call(&mut self, _request: tonic::Request<VStreamRequest>) -> Self::Future {
        let feed = Arc::clone(&self.0);
        Box::pin(async move {
            let stream = match (&feed.file, feed.offered_rate) {
                (Some(path), _) => from_file(path.clone()),
                (None, Some(rate)) => paced(feed, rate),
                (None, None) => unpaced(feed),
            };
            Ok(tonic::Response::new(stream))
        })
    }
}

/// `vtgateservice.Vitess`, answering VStream calls with the feed (other methods: UNIMPLEMENTED).
#[derive(Clone)]
struct ReplayService(Arc<Feed>);

impl NamedService for ReplayService {
    const NAME: &'static str = "vtgateservice.Vitess";
}

impl<B> Service<http::Request<B>> for ReplayService
where
    B: HttpBody + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = VStreamMethod(Arc::clone(&self.0));
        if req.uri().path() != "/vtgateservice.Vitess/VStream" {
            // Execute (a new mirror's catalog check): UNIMPLEMENTED, as from a vtgate that does
            // not serve it to this user; the sync then skips the check with a warning.
            let status = tonic::Status::unimplemented("the replay server serves VStream only");
            return Box::pin(async move { Ok(status.into_http()) });
        }
        Box::pin(async move {
            let codec = ProstCodec::<PreEncoded, VStreamRequest>::default();
            let mut grpc = Grpc::new(codec).apply_max_message_size_config(None, Some(usize::MAX));
            Ok(grpc.server_streaming(method, req).await)
        })
    }
}

/// A running replay server.
pub struct ReplayServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplayServer {
    pub async fn start(feed: Arc<Feed>) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(ReplayService(feed))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(ReplayServer {
            addr,
            stop: Some(stop),
            task,
        })
    }

    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
        let _ = self.task.await;
    }
}
