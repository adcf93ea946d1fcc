//! What people and machines see: live counters (`progress`), the progress display and log
//! writer of `sync` and `demo` (`report`), the text rendering shared by the commands
//! (`render`), and the HTTP endpoint (`endpoint`) serving Prometheus `metrics` and the
//! `health` verdicts. Output never reaches into the mirror's write path: it reads counters,
//! file sizes and read-only connections only.

pub mod endpoint;
pub mod exposition;
pub mod health;
pub mod http_server;
pub mod metrics;
pub mod progress;
pub mod render;
pub mod report;
