//! `GET /changes?after=SEQ&wait=SECS&limit=N&tables=a,b`: the change log entries after
//! `after`, as NDJSON lines exactly as `vtmirror changes` prints them; with none yet and
//! `wait` > 0, the answer waits until one commits or `wait` ends (then it is empty).
//! `Vtmirror-Last-Seq` holds the last seq sent (`after` when none): the next `after`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use serde_json::json;

use super::http;
use crate::mirror::change_log::feed::{Entry, Feed, FeedError};
use crate::mirror::store::{data_version, open_read_only};

/// How often a long poll looks whether another connection committed (`changes --follow`'s
/// interval): a commit reaches a waiting client within a few milliseconds.
const POLL: Duration = Duration::from_millis(5);
/// Entries per answer by default, and at most.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;
/// The longest long poll, in seconds (a larger `wait` is taken as this).
const MAX_WAIT_SECS: f64 = 60.0;

/// The response header naming the last seq sent.
pub const LAST_SEQ_HEADER: &str = "vtmirror-last-seq";

/// One request's parameters.
struct Ask {
    after: i64,
    wait: Duration,
    limit: usize,
    tables: Vec<String>,
}

pub(super) async fn handle(query: &str, db: &Path) -> Response<Full<Bytes>> {
    let ask = match ask(query) {
        Ok(ask) => ask,
        Err(bad) => return bad.response(),
    };
    if !db.exists() {
        let message = "the mirror file does not exist yet (the sync has not created it)";
        return http::error(StatusCode::SERVICE_UNAVAILABLE, message);
    }
    let db = db.to_path_buf();
    let after = ask.after;
    // Set when this request goes away (its client disconnected, the server stopped), so the
    // blocking thread stops polling too.
    let gone = Arc::new(AtomicBool::new(false));
    let _guard = SetOnDrop(Arc::clone(&gone));
    let read = tokio::task::spawn_blocking(move || long_poll(&db, &ask, &gone)).await;
    match read.context("reading the change log") {
        Ok(Ok(entries)) => page(after, &entries),
        Ok(Err(e)) | Err(e) => failure(&e),
    }
}

fn ask(query: &str) -> Result<Ask, http::BadParam> {
    let params = http::params(query, &["after", "wait", "limit", "tables"])?;
    let after = match params.get("after").map(|t| t.parse::<i64>()) {
        None => 0,
        Some(Ok(seq)) if seq >= 0 => seq,
        Some(_) => return Err(http::bad("after", "a seq, 0 or more")),
    };
    let wait = http::seconds(&params, "wait", 0.0, MAX_WAIT_SECS)?;
    let limit = match params.get("limit").map(|t| t.parse::<usize>()) {
        None => DEFAULT_LIMIT,
        Some(Ok(n)) if n > 0 => n.min(MAX_LIMIT),
        Some(_) => return Err(http::bad("limit", "a number of entries, 1 or more")),
    };
    Ok(Ask {
        after,
        wait,
        limit,
        tables: tables(&params),
    })
}

fn tables(params: &HashMap<String, String>) -> Vec<String> {
    let list = params.get("tables").map(String::as_str).unwrap_or("");
    (list.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Reads the entries after `ask.after`; when there are none, reads again each time another
/// connection has committed (`PRAGMA data_version`), until some come, the wait ends or the
/// request is gone.
fn long_poll(db: &Path, ask: &Ask, gone: &AtomicBool) -> Result<Vec<Entry>> {
    let deadline = Instant::now() + ask.wait;
    let conn = open_read_only(db)?;
    let mut feed = Feed::open(&conn)?;
    let mut seen = None;
    loop {
        let version = data_version(&conn)?;
        if seen != Some(version) {
            seen = Some(version);
            let entries = feed.read(ask.after, ask.limit, &ask.tables)?;
            if !entries.is_empty() {
                return Ok(entries);
            }
        }
        if Instant::now() >= deadline || gone.load(Ordering::Relaxed) {
            return Ok(Vec::new());
        }
        std::thread::sleep(POLL);
    }
}

/// 200 with one JSON line per entry, and the last seq in `Vtmirror-Last-Seq`.
fn page(after: i64, entries: &[Entry]) -> Response<Full<Bytes>> {
    let mut body = String::new();
    for entry in entries {
        body.push_str(&entry.json.to_string());
        body.push('\n');
    }
    let last = entries.last().map_or(after, |e| e.seq);
    let mut response = http::reply(StatusCode::OK, "application/x-ndjson", Bytes::from(body));
    response
        .headers_mut()
        .insert(LAST_SEQ_HEADER, HeaderValue::from(last));
    response
}

/// 410 for pruned entries (resync), 409 for a mirror without a change log, 500 otherwise.
fn failure(err: &anyhow::Error) -> Response<Full<Bytes>> {
    let line = crate::error::render(err);
    match err.downcast_ref::<FeedError>() {
        Some(FeedError::Pruned { pruned, .. }) => http::json(
            StatusCode::GONE,
            &json!({ "error": line, "resync": true, "pruned_through": pruned }),
        ),
        Some(FeedError::NoChangeLog) => http::error(StatusCode::CONFLICT, &line),
        None => http::error(StatusCode::INTERNAL_SERVER_ERROR, &line),
    }
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_have_defaults_caps_and_errors_that_name_them() {
        let default = ask("").unwrap_or_else(|_| panic!("no parameters are fine"));
        assert_eq!((default.after, default.limit), (0, DEFAULT_LIMIT));
        assert_eq!(default.wait, Duration::ZERO);
        let capped = ask("after=7&wait=3600&limit=999999&tables=a,,b")
            .unwrap_or_else(|_| panic!("valid parameters"));
        assert_eq!((capped.after, capped.limit), (7, MAX_LIMIT));
        assert_eq!(capped.wait, Duration::from_secs(60));
        assert_eq!(capped.tables, ["a", "b"]);
        for bad in [
            "after=-1",
            "after=x",
            "wait=-2",
            "wait=soon",
            "limit=0",
            "from=3",
        ] {
            let Err(refused) = ask(bad) else {
                panic!("{bad} accepted")
            };
            let status = refused.response().status();
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
