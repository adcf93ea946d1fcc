//! The bearer token, checked on every request, and which addresses may go without one.
//!
//! The comparison takes the same time whatever the bytes given, so a client cannot find the
//! token byte by byte from response times; a refusal says only `401` and
//! `WWW-Authenticate: Bearer`.

use std::net::IpAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};

use crate::source::transport::Secret;

/// Whether the request carries `Authorization: Bearer TOKEN` (always, when no token is set).
pub(super) fn authorized(headers: &HeaderMap, token: Option<&Secret<String>>) -> bool {
    let Some(token) = token else {
        return true;
    };
    let given = headers
        .get(AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let given = match given.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => &given[7..],
        _ => return false,
    };
    constant_time_eq(given, token.0.as_bytes())
}

/// `a == b` in a time that depends on `b`'s length only.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for (i, expected) in b.iter().enumerate() {
        diff |= expected ^ a.get(i).copied().unwrap_or(0);
    }
    std::hint::black_box(diff) == 0
}

/// 401, and nothing else about the server.
pub(super) fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = super::http::error(StatusCode::UNAUTHORIZED, "a bearer token is required");
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Whether HOST:PORT names this machine only: `localhost`, 127.0.0.0/8 or ::1. Any other
/// name or address (`0.0.0.0`, a LAN address, a host name that DNS could point anywhere) is
/// reachable from elsewhere.
pub fn is_loopback(addr: &str) -> bool {
    let host = match addr.rsplit_once(':') {
        Some((host, _port)) => host,
        None => addr,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        map
    }

    #[test]
    fn only_the_exact_bearer_token_is_authorized() {
        let token = Secret("s3cret-token".to_string());
        let token = Some(&token);
        assert!(authorized(&headers("Bearer s3cret-token"), token));
        assert!(authorized(&headers("bearer s3cret-token"), token));
        assert!(!authorized(&headers("Bearer s3cret-toke"), token));
        assert!(!authorized(&headers("Bearer s3cret-tokenX"), token));
        assert!(!authorized(&headers("Basic s3cret-token"), token));
        assert!(!authorized(&headers("s3cret-token"), token));
        assert!(!authorized(&HeaderMap::new(), token));
        assert!(authorized(&HeaderMap::new(), None));
    }

    #[test]
    fn only_localhost_and_loopback_addresses_count_as_loopback() {
        for addr in ["127.0.0.1:0", "127.1.2.3:80", "[::1]:9000", "localhost:1"] {
            assert!(is_loopback(addr), "{addr}");
        }
        for addr in [
            "0.0.0.0:0",
            "[::]:1",
            "192.168.1.2:80",
            "example.com:80",
            "db:1",
        ] {
            assert!(!is_loopback(addr), "{addr}");
        }
    }
}
