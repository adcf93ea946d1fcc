//! The `--metrics-addr` flags `sync` and `demo` share, validated into endpoint settings.

use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::output::endpoint::EndpointSettings;
use crate::output::health::HealthLimits;

#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Metrics and health endpoint")]
pub struct EndpointArgs {
    /// Serve Prometheus metrics at /metrics, liveness at /healthz and readiness at /readyz on
    /// HOST:PORT (e.g. 127.0.0.1:9650; port 0 picks a free one). Off by default.
    #[arg(long, value_name = "HOST:PORT", env = "VTMIRROR_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// /readyz answers 503 while the mirror is more than this many seconds behind the source.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 60.0,
        env = "VTMIRROR_READY_MAX_LAG"
    )]
    pub ready_max_lag: f64,
    /// /healthz answers 503 once the writer has spent this many seconds on one batch (a stuck
    /// disk or lock); keep it above your slowest schema change.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 300.0,
        env = "VTMIRROR_HEALTHZ_MAX_BUSY"
    )]
    pub healthz_max_busy: f64,
}

impl EndpointArgs {
    /// The endpoint to start, if `--metrics-addr` was given.
    pub fn settings(&self) -> Result<Option<EndpointSettings>> {
        let valid = |secs: f64| secs.is_finite() && secs >= 0.0;
        if !valid(self.ready_max_lag) || !valid(self.healthz_max_busy) {
            anyhow::bail!("--ready-max-lag and --healthz-max-busy must be numbers of seconds");
        }
        let Some(addr) = &self.metrics_addr else {
            return Ok(None);
        };
        if addr.trim().is_empty() {
            anyhow::bail!("--metrics-addr needs HOST:PORT, e.g. 127.0.0.1:9650");
        }
        Ok(Some(EndpointSettings {
            addr: addr.trim().to_string(),
            limits: HealthLimits {
                ready_max_lag: Duration::from_secs_f64(self.ready_max_lag),
                max_busy: Duration::from_secs_f64(self.healthz_max_busy),
            },
        }))
    }
}
