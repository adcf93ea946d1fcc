//! `GET /wait?timeout=SECS[&position=VGTID_JSON]`: read-your-writes over HTTP, through
//! `commands::wait::run`. Without a position it waits for every transaction the sync's
//! source committed before the request; with one, for that position. 200 when reached, 504
//! with the shards still behind on timeout, 502 when vtgate could not be asked, 500 on any
//! other error (one line, row values redacted).

use std::path::Path;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use serde_json::json;

use super::http;
use crate::commands::wait::{run, WaitFor, WaitOptions, WaitOutcome};
use crate::error::{classify, render, Class};
use crate::source::vgtid;

/// Seconds waited when the request names no timeout, and at most.
const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
const MAX_TIMEOUT_SECS: f64 = 300.0;

pub(super) async fn handle(query: &str, db: &Path, source: &WaitFor) -> Response<Full<Bytes>> {
    let params = match http::params(query, &["timeout", "position"]) {
        Ok(params) => params,
        Err(bad) => return bad.response(),
    };
    let timeout = match http::seconds(&params, "timeout", DEFAULT_TIMEOUT_SECS, MAX_TIMEOUT_SECS) {
        Ok(timeout) => timeout,
        Err(bad) => return bad.response(),
    };
    let wait_for = match params.get("position") {
        None => source.clone(),
        Some(text) => match vgtid::from_json(text, None) {
            Ok(position) => WaitFor::Position(position),
            Err(_) => {
                let why = "a VGTID as JSON: [{\"keyspace\":…,\"shard\":…,\"gtid\":…}]";
                return http::bad("position", why).response();
            }
        },
    };
    let opts = WaitOptions {
        db: db.to_path_buf(),
        wait_for,
        timeout,
    };
    match run(&opts).await {
        Ok(WaitOutcome::Reached { waited }) => http::json(
            StatusCode::OK,
            &json!({ "reached": true, "waited_ms": waited.as_millis() as u64 }),
        ),
        Ok(WaitOutcome::TimedOut { waited, behind }) => http::json(
            StatusCode::GATEWAY_TIMEOUT,
            &json!({ "reached": false, "waited_ms": waited.as_millis() as u64, "behind": behind }),
        ),
        Err(e) => {
            let status = match (classify(&e), &opts.wait_for) {
                (Class::Transient, WaitFor::Source { .. }) => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let line = render(&e).split_whitespace().collect::<Vec<_>>().join(" ");
            http::error(status, &line)
        }
    }
}
