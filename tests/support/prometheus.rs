//! A real Prometheus server (Debian's `prometheus` package) run by a test: its own config and
//! storage in a temporary directory, a free loopback port, read back through its HTTP API.
//! Also a minimal HTTP GET for the endpoints of `vtmirror sync --metrics-addr`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `prometheus` and `promtool` binaries.
pub struct Binaries {
    pub prometheus: PathBuf,
    pub promtool: PathBuf,
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// The binaries, or None after printing why the test is skipped. With `VTMIRROR_E2E=1`
/// (scripts/test.sh, which installs the package) a missing binary fails the test.
pub fn binaries_or_skip(test: &str) -> Option<Binaries> {
    match (on_path("prometheus"), on_path("promtool")) {
        (Some(prometheus), Some(promtool)) => Some(Binaries {
            prometheus,
            promtool,
        }),
        _ if std::env::var("VTMIRROR_E2E").as_deref() == Ok("1") => panic!(
            "VTMIRROR_E2E=1 but prometheus/promtool are not installed: scripts/test.sh installs \
             them (apt-get install prometheus)"
        ),
        _ => {
            eprintln!(
                "skipped {test}: prometheus is not installed (apt-get install prometheus, or \
                 run scripts/test.sh; VTMIRROR_E2E=1 makes this a failure)"
            );
            None
        }
    }
}

/// A free loopback port (bound, then released for the server about to take it).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// GET `path` from `addr` (HTTP/1.0): (status, body); None when the connection fails.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1.to_string();
    Some((status, body))
}

/// Percent-encodes a query parameter.
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A running Prometheus scraping one target every second; killed on drop.
pub struct Prometheus {
    child: Child,
    pub addr: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `bin` scraping `target` (HOST:PORT, path /metrics) and waits until it is ready.
    pub fn start(bin: &Path, target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: vtmirror\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("config written");
        let addr = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let mut server = Prometheus { child, addr, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while http_get(&server.addr, "/-/ready").map(|r| r.0) != Some(200) {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("prometheus exited ({status}); log:\n{}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 20 s:\n{}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query through `/api/v1/query`: each series' labels (JSON) and value.
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Value, f64)> {
        let path = format!("/api/v1/query?query={}", encode(promql));
        let Some((200, body)) = http_get(&self.addr, &path) else {
            return Vec::new();
        };
        let json: serde_json::Value = serde_json::from_str(&body).expect("the API answers JSON");
        assert_eq!(json["status"], "success", "{promql}: {body}");
        let results = json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        results
            .into_iter()
            .map(|r| {
                let value = r["value"][1].as_str().and_then(|v| v.parse().ok());
                (r["metric"].clone(), value.unwrap_or(f64::NAN))
            })
            .collect()
    }

    /// The single value of `promql` (None while it has no result).
    pub fn value(&self, promql: &str) -> Option<f64> {
        self.query(promql).first().map(|(_, v)| *v)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
