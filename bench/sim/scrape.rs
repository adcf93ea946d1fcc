//! The metrics endpoint under load: the T arm's child serves `--metrics-addr` and a thread of
//! the benchmark scrapes `/metrics` on a fixed period while it syncs (`--metrics-scrape-ms`).

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

/// A free loopback port for the child's endpoint.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// GETs `/metrics` from the sync child every `every` until stopped (as Prometheus would,
/// only far more often); counts the complete answers.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl Scraper {
    pub fn start(addr: String, every: Duration) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut scrapes = 0;
            while !flag.load(Ordering::Relaxed) {
                if scrape(&addr).is_some_and(|text| text.contains("vtmirror_rows_applied_total")) {
                    scrapes += 1;
                }
                std::thread::sleep(every);
            }
            scrapes
        });
        Scraper { stop, thread }
    }

    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

fn scrape(addr: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let ok = text.lines().next().is_some_and(|l| l.contains(" 200 "));
    ok.then_some(text)
}
