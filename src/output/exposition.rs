//! What a scrape of `/metrics` returns: the writer's counters (`output::metrics`) and the
//! readings taken at that moment (lag, timestamps, file sizes, state) in one registry,
//! rendered as Prometheus text. Readings come from `Progress` atomics and `fs::metadata`, so a
//! scrape never opens the mirror.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use prometheus::core::Collector;
use prometheus::{Encoder, Gauge, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::output::progress::{Progress, SyncState};

const VALID: &str = "constant metric options are valid";

/// Readings taken when scraped.
struct Readings {
    lag: Gauge,
    last_commit: Gauge,
    last_event: Gauge,
    last_heartbeat: Gauge,
    db_size: IntGauge,
    wal_size: IntGauge,
    state: IntGaugeVec,
}

fn gauge(name: &str, help: &str) -> Gauge {
    Gauge::new(name, help).expect(VALID)
}

fn int_gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect(VALID)
}

impl Readings {
    fn new() -> Readings {
        Readings {
            lag: gauge(
                "vtmirror_lag_seconds",
                "Seconds behind the source (now minus the newest committed event or heartbeat), as `vtmirror status` shows it; NaN while copying or before any event.",
            ),
            last_commit: gauge(
                "vtmirror_last_commit_timestamp_seconds",
                "Wall clock of this process's last SQLite commit (0 before its first).",
            ),
            last_event: gauge(
                "vtmirror_last_event_timestamp_seconds",
                "Source binlog time of the newest committed transaction (0 if unknown).",
            ),
            last_heartbeat: gauge(
                "vtmirror_last_heartbeat_timestamp_seconds",
                "vtgate time of the newest heartbeat received (0 before the first).",
            ),
            db_size: int_gauge("vtmirror_db_size_bytes", "Size of the mirror file."),
            wal_size: int_gauge("vtmirror_wal_size_bytes", "Size of the mirror's WAL file."),
            state: IntGaugeVec::new(
                Opts::new("vtmirror_state", "1 for the sync's current state, 0 for the others."),
                &["state"],
            )
            .expect(VALID),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.lag.clone()),
            Box::new(self.last_commit.clone()),
            Box::new(self.last_event.clone()),
            Box::new(self.last_heartbeat.clone()),
            Box::new(self.db_size.clone()),
            Box::new(self.wal_size.clone()),
            Box::new(self.state.clone()),
        ]
    }
}

/// A registry of every metric, rendered on each scrape.
pub struct Exposition {
    registry: Registry,
    readings: Readings,
    progress: Arc<Progress>,
    db: PathBuf,
}

impl Exposition {
    pub fn new(progress: Arc<Progress>, db: PathBuf) -> Result<Exposition> {
        let registry = Registry::new();
        let readings = Readings::new();
        let build = IntGaugeVec::new(
            Opts::new("vtmirror_build_info", "Always 1; the version of vtmirror."),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let mut collectors = progress.metrics.collectors();
        collectors.extend(readings.collectors());
        collectors.push(Box::new(build));
        #[cfg(target_os = "linux")]
        collectors.push(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ));
        for collector in collectors {
            registry
                .register(collector)
                .context("registering a metric")?;
        }
        Ok(Exposition {
            registry,
            readings,
            progress,
            db,
        })
    }

    /// The text exposition of every metric, readings taken now.
    pub fn render(&self) -> Result<String> {
        self.read_now();
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .context("encoding the metrics")?;
        String::from_utf8(out).context("the metrics text is not UTF-8")
    }

    fn read_now(&self) {
        let now = self.progress.snapshot();
        let r = &self.readings;
        let secs = now_secs();
        r.lag
            .set(now.lag_seconds(secs).map_or(f64::NAN, |l| l as f64));
        r.last_commit.set(now.committed_at_ms as f64 / 1000.0);
        r.last_event.set(now.event_time as f64);
        r.last_heartbeat.set(now.heartbeat_time as f64);
        r.db_size.set(file_len(self.db.as_os_str().to_owned()));
        let mut wal = self.db.as_os_str().to_owned();
        wal.push("-wal");
        r.wal_size.set(file_len(wal));
        for state in SyncState::ALL {
            let current = i64::from(state == now.state);
            r.state.with_label_values(&[state.name()]).set(current);
        }
    }
}

fn file_len(path: std::ffi::OsString) -> i64 {
    std::fs::metadata(path).map_or(0, |m| m.len() as i64)
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
