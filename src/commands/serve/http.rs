//! Responses and query parameters, shared by the endpoints: JSON bodies, one-line errors,
//! percent-decoded parameters checked against the names an endpoint knows.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value as Json};

/// A response with `body` of `content_type`.
pub(super) fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON object, on one line.
pub(super) fn json(status: StatusCode, value: &Json) -> Response<Full<Bytes>> {
    let mut text = value.to_string();
    text.push('\n');
    reply(status, "application/json", Bytes::from(text))
}

/// `{"error": message}`.
pub(super) fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &json!({ "error": message }))
}

/// A parameter refused: a 400 that names it.
#[derive(Debug)]
pub(super) struct BadParam {
    name: String,
    why: String,
}

impl BadParam {
    pub(super) fn response(&self) -> Response<Full<Bytes>> {
        let message = format!("parameter {}: {}", self.name, self.why);
        error(StatusCode::BAD_REQUEST, &message)
    }
}

/// The query string's parameters by name; refused when one is unknown, given twice or not
/// percent-encoded properly.
pub(super) fn params(query: &str, known: &[&str]) -> Result<HashMap<String, String>, BadParam> {
    let mut out = HashMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name).unwrap_or_else(|| name.to_string());
        if !known.contains(&name.as_str()) {
            let expected = known.join(", ");
            return Err(bad(
                &name,
                &format!("unknown parameter (expected {expected})"),
            ));
        }
        let Some(value) = decode(value) else {
            return Err(bad(&name, "not valid percent-encoded UTF-8"));
        };
        if out.insert(name.clone(), value).is_some() {
            return Err(bad(&name, "given more than once"));
        }
    }
    Ok(out)
}

/// Parameter `name` refused, for `why`.
pub(super) fn bad(name: &str, why: &str) -> BadParam {
    BadParam {
        name: name.to_string(),
        why: why.to_string(),
    }
}

/// Seconds in `[0, cap]` (more is taken as `cap`), `default` when absent.
pub(super) fn seconds(
    params: &HashMap<String, String>,
    name: &str,
    default: f64,
    cap: f64,
) -> Result<std::time::Duration, BadParam> {
    let Some(text) = params.get(name) else {
        return Ok(std::time::Duration::from_secs_f64(default));
    };
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => {
            Ok(std::time::Duration::from_secs_f64(secs.min(cap)))
        }
        _ => Err(bad(name, "a number of seconds, 0 or more")),
    }
}

/// Percent-decoding (`+` is a space, as forms send it); `None` when not UTF-8 or malformed.
fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_percent_decoded_and_unknown_or_repeated_ones_refused() {
        let got = params("after=5&tables=a%2Cb+c&wait=", &["after", "tables", "wait"]).unwrap();
        assert_eq!(got["after"], "5");
        assert_eq!(got["tables"], "a,b c");
        assert_eq!(got["wait"], "");
        for refused in ["aftr=1", "after=1&after=2", "after=%G1", "after=%ff"] {
            let bad = params(refused, &["after"]).expect_err(refused);
            assert_eq!(bad.response().status(), 400, "{refused}");
        }
        assert!(params("", &["after"]).unwrap().is_empty());
    }
}
