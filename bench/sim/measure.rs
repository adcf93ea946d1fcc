//! What one run of an arm measured, CPU and memory readings, and the summary of repetitions.

use std::time::Duration;

/// One run of one arm.
#[derive(Debug, Clone, Copy, Default)]
pub struct Run {
    pub wall: Duration,
    pub cpu: Duration,
    /// Peak RSS in bytes (None when the arm shares the benchmark process).
    pub peak_rss: Option<u64>,
    pub rows: u64,
    pub payload_bytes: u64,
    pub commits: u64,
    /// CPU of the replay server while it fed this run (end-to-end arms).
    pub server_cpu: Option<Duration>,
    /// Bytes the arm's process caused to be written to disk (/proc/…/io write_bytes).
    pub disk_written: u64,
}

impl Run {
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / self.wall.as_secs_f64()
    }
    pub fn mb_per_sec(&self) -> f64 {
        self.payload_bytes as f64 / 1e6 / self.wall.as_secs_f64()
    }
    pub fn cpu_us_per_row(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.rows as f64
    }
    pub fn commits_per_sec(&self) -> f64 {
        self.commits as f64 / self.wall.as_secs_f64()
    }
}

/// Median, min and max of a figure over the repetitions.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(mut values: Vec<f64>) -> Spread {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 {
            values[n / 2]
        } else {
            (values[n / 2 - 1] + values[n / 2]) / 2.0
        };
        Spread {
            median,
            min: values[0],
            max: values[n - 1],
        }
    }
}

/// The repetitions of one arm on one workload.
pub struct Arm {
    pub name: String,
    pub workload: String,
    pub runs: Vec<Run>,
}

impl Arm {
    pub fn spread(&self, figure: impl Fn(&Run) -> f64) -> Spread {
        Spread::of(self.runs.iter().map(figure).collect())
    }
    pub fn rows_per_sec(&self) -> f64 {
        self.spread(Run::rows_per_sec).median
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// User + system CPU of this process so far.
pub fn process_cpu() -> Duration {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// CPU of the calling thread so far.
pub fn thread_cpu() -> Duration {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes into the struct we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// How a child process ended: exit status and CPU (from wait4).
pub struct ChildUsage {
    pub success: bool,
    pub cpu: Duration,
}

/// Waits for `pid` and reads its resource usage.
pub fn wait_child(pid: u32) -> ChildUsage {
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is our own child, not yet reaped; both out-pointers are owned locals.
    unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
    ChildUsage {
        success: libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
    }
}

/// Bytes this process caused to be written to storage so far.
pub fn disk_written() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Percentile of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at]
}
