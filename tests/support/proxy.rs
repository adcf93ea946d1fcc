//! A TCP proxy in front of the simulated vtgate that breaks the network on command: black
//! hole (sockets stay open, no byte moves), cut after N bytes towards the client (a gRPC
//! message cut in the middle), reset of every connection. Counts what it did.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProxyStats {
    pub accepted: u64,
    pub bytes_to_server: u64,
    pub bytes_to_client: u64,
    /// `cut_after_bytes` budgets that ran out (each closed the connections of the moment).
    pub cuts: u64,
    /// `reset_all` calls.
    pub resets: u64,
}

#[derive(Default)]
struct Counters {
    accepted: AtomicU64,
    to_server: AtomicU64,
    to_client: AtomicU64,
    cuts: AtomicU64,
    resets: AtomicU64,
}

struct Shared {
    upstream: SocketAddr,
    /// true while black-holed.
    hole: watch::Sender<bool>,
    /// Bumped to close every connection open at that moment; `.1` = with an RST.
    generation: watch::Sender<(u64, bool)>,
    /// Bytes still allowed towards the client before the connections are closed.
    cut_budget: Mutex<Option<u64>>,
    counters: Counters,
}

/// A running proxy; dropped = stops accepting (open connections end with their peers).
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on 127.0.0.1:0 and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            hole: watch::channel(false).0,
            generation: watch::channel((0, false)).0,
            cut_budget: Mutex::new(None),
            counters: Counters::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Proxy {
            addr,
            shared,
            accept,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `host:port` as `--vtgate` takes it.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// Forwards everything again (held bytes included, like a healed partition) and drops
    /// any pending cut.
    pub fn pass_through(&self) {
        *self.budget() = None;
        self.shared.hole.send_replace(false);
    }

    /// Keeps every socket open but moves no byte in either direction; new connections are
    /// accepted and not forwarded.
    pub fn black_hole(&self) {
        self.shared.hole.send_replace(true);
    }

    /// Closes the connections open at that moment once `n` more bytes went to the client.
    pub fn cut_after_bytes(&self, n: u64) {
        *self.budget() = Some(n);
    }

    /// Resets (RST) every open connection now.
    pub fn reset_all(&self) {
        self.shared.counters.resets.fetch_add(1, Ordering::Relaxed);
        self.shared.generation.send_modify(|g| *g = (g.0 + 1, true));
    }

    pub fn stats(&self) -> ProxyStats {
        let c = &self.shared.counters;
        ProxyStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            bytes_to_server: c.to_server.load(Ordering::Relaxed),
            bytes_to_client: c.to_client.load(Ordering::Relaxed),
            cuts: c.cuts.load(Ordering::Relaxed),
            resets: c.resets.load(Ordering::Relaxed),
        }
    }

    fn budget(&self) -> std::sync::MutexGuard<'_, Option<u64>> {
        self.shared
            .cut_budget
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.generation.send_modify(|g| *g = (g.0 + 1, true));
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while let Ok((client, _)) = listener.accept().await {
        shared.counters.accepted.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(client, Arc::clone(&shared)));
    }
}

/// One connection: wait for an open network, connect upstream, pump both ways until either
/// side ends or the generation changes (cut or reset).
async fn serve(client: TcpStream, shared: Arc<Shared>) {
    let mut generation = shared.generation.subscribe();
    generation.borrow_and_update();
    let server = tokio::select! {
        _ = wait_open(&shared) => TcpStream::connect(shared.upstream).await,
        _ = generation.changed() => return reset(client),
    };
    let Ok(server) = server else {
        return reset(client);
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let with_rst = tokio::select! {
        _ = pump(&mut client_read, &mut server_write, &shared, Direction::ToServer) => false,
        _ = pump(&mut server_read, &mut client_write, &shared, Direction::ToClient) => false,
        _ = generation.changed() => generation.borrow().1,
    };
    if with_rst {
        if let Ok(client) = client_read.reunite(client_write) {
            reset(client);
        }
        if let Ok(server) = server_read.reunite(server_write) {
            reset(server);
        }
    }
    // Otherwise the halves drop here: both sockets close with a FIN after the bytes sent.
}

/// Drops a socket with an RST instead of a FIN.
// SO_LINGER is deprecated in tokio because a non-zero linger blocks the thread on drop; a zero
// linger never blocks: the kernel drops the socket with an RST at once.
#[allow(deprecated)]
fn reset(stream: TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

async fn wait_open(shared: &Shared) {
    let mut hole = shared.hole.subscribe();
    let _ = hole.wait_for(|black_holed| !black_holed).await;
}

async fn pump(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    shared: &Shared,
    direction: Direction,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        wait_open(shared).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Bytes read just before a black hole are held, not forwarded, until it heals.
        wait_open(shared).await;
        let (allowed, cut) = match direction {
            Direction::ToServer => (n, false),
            Direction::ToClient => take_budget(shared, n),
        };
        if to.write_all(&buf[..allowed]).await.is_err() {
            return;
        }
        let counter = match direction {
            Direction::ToServer => &shared.counters.to_server,
            Direction::ToClient => &shared.counters.to_client,
        };
        counter.fetch_add(allowed as u64, Ordering::Relaxed);
        if cut {
            let _ = to.flush().await;
            shared.counters.cuts.fetch_add(1, Ordering::Relaxed);
            shared.generation.send_modify(|g| *g = (g.0 + 1, false));
            return;
        }
    }
}

/// How many of `n` bytes may go to the client, and whether the cut budget ran out.
fn take_budget(shared: &Shared, n: usize) -> (usize, bool) {
    let mut budget = shared.cut_budget.lock().unwrap_or_else(|e| e.into_inner());
    match *budget {
        Some(left) if (n as u64) >= left => {
            *budget = None;
            (left as usize, true)
        }
        Some(left) => {
            *budget = Some(left - n as u64);
            (n, false)
        }
        None => (n, false),
    }
}
