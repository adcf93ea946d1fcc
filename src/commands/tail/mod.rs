//! `vtmirror tail`: print a keyspace's changes as they happen, like the Vitess example VStream
//! client. It writes no file; after a transient error it reconnects from the VGtid of the last
//! transaction it printed. A transaction is printed when it ends, so a reconnect neither skips
//! nor repeats one; only a transaction larger than `MAX_BUFFERED_CHANGES` row changes is
//! printed as it arrives, and printed again from its start if the stream breaks inside it.

mod follow;
mod output;

use std::future::Future;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::{classify, Backoff, Class, Transient};
use crate::output::render::output_error;
use crate::source::proto::binlogdata::VGtid;
use crate::source::transport::VtgateClient;
use crate::source::vstream::{open_stream, StreamSpec};

pub use follow::{Follower, Item};

/// Row changes of one transaction held back before it ends (bounds memory).
pub const MAX_BUFFERED_CHANGES: usize = 20_000;
pub use output::{vgtid_text, Format, Printer};

/// Everything a tail needs, validated.
#[derive(Debug, Clone)]
pub struct TailOptions {
    pub spec: StreamSpec,
    pub position: VGtid,
    pub format: Format,
    pub count: Option<u64>,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

/// Where printed output and retry notices go.
pub struct Sinks<'a> {
    pub out: &'a mut (dyn Write + Send),
    pub notices: &'a mut (dyn Write + Send),
}

/// Prints until `--count` transactions were printed, `shutdown` resolves, or a definite error.
pub async fn run(
    opts: &TailOptions,
    sinks: Sinks<'_>,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let Sinks { out, notices } = sinks;
    let spec = &opts.spec;
    let client = crate::source::transport::connect_first(&spec.vtgate).await?;
    writeln!(
        notices,
        "vtgate connected: {}\nvgtid: {}\ntablet_type: {}\n",
        spec.vtgate,
        vgtid_text(&opts.position),
        spec.tablet_type.as_str_name()
    )
    .map_err(output_error)?;
    let mut state = State {
        position: opts.position.clone(),
        printed: 0,
        printer: Printer::new(opts.format, out),
        progressed: false,
        buffer: Vec::new(),
        buffered_changes: 0,
        partly_printed: false,
    };
    let mut backoff = Backoff::new(opts.backoff_base, opts.backoff_cap);
    tokio::pin!(shutdown);
    loop {
        state.progressed = false;
        state.buffer.clear();
        state.buffered_changes = 0;
        state.printer.restart();
        let err = tokio::select! {
            result = session(opts, client.clone(), &mut state) => match result {
                Ok(()) => return Ok(()),
                Err(err) => err,
            },
            _ = &mut shutdown => return Ok(()),
        };
        if classify(&err) == Class::Definite {
            return Err(err);
        }
        if state.progressed {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        writeln!(
            notices,
            "remote error: {}\n at {}, retrying in {:.1}s",
            describe(&err),
            vgtid_text(&state.position),
            delay.as_secs_f64()
        )
        .map_err(output_error)?;
        if std::mem::take(&mut state.partly_printed) {
            writeln!(
                notices,
                "the interrupted transaction will be printed again from its start"
            )
            .map_err(output_error)?;
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = &mut shutdown => return Ok(()),
        }
    }
}

struct State<'a> {
    /// The VGtid after the last printed transaction: where a reconnect resumes.
    position: VGtid,
    printed: u64,
    printer: Printer<'a>,
    progressed: bool,
    /// Items of the open transaction, printed when it ends.
    buffer: Vec<Item>,
    buffered_changes: usize,
    /// Part of the open transaction was printed already (it was too large to hold).
    partly_printed: bool,
}

impl State<'_> {
    /// Holds row items until their transaction ends; returns true once `--count` is reached.
    fn take(&mut self, item: Item, count: Option<u64>) -> Result<bool> {
        if let Item::Rows(rows) = &item {
            self.buffered_changes += rows.changes.len();
            self.buffer.push(item);
            if self.buffered_changes > MAX_BUFFERED_CHANGES {
                self.flush()?;
                self.partly_printed = true;
            }
            return Ok(false);
        }
        self.flush()?;
        self.printer.print(&item).map_err(output_error)?;
        let Item::End(end) = item else {
            return Ok(false);
        };
        self.progressed = true;
        self.partly_printed = false;
        if let Some(vgtid) = end.vgtid {
            self.position = vgtid;
        }
        self.printed += 1;
        Ok(count.is_some_and(|n| self.printed >= n))
    }

    fn flush(&mut self) -> Result<()> {
        for item in self.buffer.drain(..) {
            self.printer.print(&item).map_err(output_error)?;
        }
        self.buffered_changes = 0;
        Ok(())
    }
}

/// One stream's life; Ok only when `--count` is reached.
async fn session(
    opts: &TailOptions,
    mut client: VtgateClient,
    state: &mut State<'_>,
) -> Result<()> {
    let request = opts.spec.request(state.position.clone());
    let mut responses = open_stream(&mut client, request).await?;
    let keyspaces = &opts.spec.selection.keyspaces;
    let mut follower = Follower::new(keyspaces.single().unwrap_or_default());
    let stall = opts
        .spec
        .stall_timeout()
        .unwrap_or(Duration::from_secs(3600));
    let mut items = Vec::new();
    let mut last_message = Instant::now();
    loop {
        let response = match tokio::time::timeout(stall, responses.message()).await {
            Err(_) => {
                let secs = last_message.elapsed().as_secs();
                return Err(Transient(format!("no message from vtgate for {secs}s")).into());
            }
            Ok(Err(status)) => {
                return Err(anyhow::Error::new(status).context("reading the VStream"))
            }
            Ok(Ok(None)) => return Err(Transient("vtgate ended the stream".into()).into()),
            Ok(Ok(Some(response))) => response,
        };
        last_message = Instant::now();
        for event in response.events {
            follower.follow(event, &mut items);
        }
        for item in items.drain(..) {
            if state.take(item, opts.count)? {
                return Ok(());
            }
        }
    }
}

/// `Code: UNAVAILABLE: message` for gRPC errors, the whole chain otherwise; row values
/// redacted.
fn describe(err: &anyhow::Error) -> String {
    let text = match err.chain().find_map(|c| c.downcast_ref::<tonic::Status>()) {
        Some(status) => format!("Code: {:?}: {}", status.code(), status.message()),
        None => format!("{err:#}"),
    };
    crate::error::redact::redact(&text)
}
