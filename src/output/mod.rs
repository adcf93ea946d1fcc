//! What people see: live counters (`progress`), the progress display and log writer of
//! `sync` and `demo` (`report`), and the text rendering shared by the commands (`render`).
//! Output never reaches into the mirror's write path: it reads counters and read-only
//! connections only.

pub mod progress;
pub mod render;
pub mod report;
