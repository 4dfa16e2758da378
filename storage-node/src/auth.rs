//! Node RPC authentication: every request is SigV4-signed with the cluster
//! secret (service [`RPC_SIGNING_SERVICE`]).
//!
//! Only the method, the URI, `host`, `x-amz-date` and the `x-cairn-*` headers
//! are signed, so the proxies and HTTP stacks in between may add headers of
//! their own. Bodies are not signed (`UNSIGNED-PAYLOAD`): shard bodies carry
//! their own BLAKE3, checked by the receiver, and control bodies are small.

use crate::error::{Error, Result};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use cairn::rpc::{RPC_SIGNING_REGION, RPC_SIGNING_SERVICE};
use http::HeaderMap;
use std::time::{Duration, SystemTime};

/// The access key id node RPC requests are signed as.
pub const RPC_ACCESS_KEY: &str = "cairn-cluster";
/// Largest accepted difference between a request's `x-amz-date` and the
/// receiver's clock (the same window S3 allows).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

fn identity(secret: &str) -> Identity {
    Credentials::new(RPC_ACCESS_KEY, secret, None, None, "cairn-cluster-secret").into()
}

fn signed_header_names(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = headers
        .iter()
        .filter(|(name, _)| name.as_str() == "host" || name.as_str().starts_with("x-cairn-"))
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    out.sort();
    out
}

/// The signature of a request at `time`, and the headers to add to it.
fn signature(
    secret: &str,
    method: &str,
    url: &str,
    headers: &[(String, String)],
    time: SystemTime,
) -> Result<(Vec<(String, String)>, String)> {
    let identity = identity(secret);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(RPC_SIGNING_REGION)
        .name(RPC_SIGNING_SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| Error::Unauthenticated(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SignableBody::UnsignedPayload,
    )
    .map_err(|e| Error::Unauthenticated(e.to_string()))?;
    let (instructions, signature) = sign(signable, &params)
        .map_err(|e| Error::Unauthenticated(e.to_string()))?
        .into_parts();
    let add = instructions
        .headers()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    Ok((add, signature))
}

/// Sign an outgoing request in place. Adds `host` when missing.
pub fn sign_request(secret: &str, req: &mut reqwest::Request) -> Result<()> {
    let url = req.url().clone();
    if !req.headers().contains_key(http::header::HOST) {
        let host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        req.headers_mut().insert(
            http::header::HOST,
            host.parse().map_err(|_| Error::BadRequest("host".into()))?,
        );
    }
    let headers = signed_header_names(req.headers());
    let (add, _) = signature(
        secret,
        req.method().as_str(),
        url.as_str(),
        &headers,
        SystemTime::now(),
    )?;
    for (name, value) in add {
        let name: http::HeaderName = name.parse().map_err(|_| Error::BadRequest(name.clone()))?;
        let value = value
            .parse()
            .map_err(|_| Error::BadRequest("header".into()))?;
        req.headers_mut().insert(name, value);
    }
    Ok(())
}

/// Check an incoming request's signature against the cluster secret.
pub fn verify_request(
    secret: &str,
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
) -> Result<()> {
    let fail = |why: &str| Error::Unauthenticated(why.to_owned());
    let auth = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| fail("no authorization header"))?;
    let given = auth
        .rsplit_once("Signature=")
        .map(|(_, s)| s.trim())
        .ok_or_else(|| fail("no signature"))?;
    if !auth.contains(&format!("Credential={RPC_ACCESS_KEY}/")) {
        return Err(fail("not signed with the cluster secret"));
    }
    let date = headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| fail("no x-amz-date"))?;
    let time = parse_amz_date(date).ok_or_else(|| fail("bad x-amz-date"))?;
    let now = SystemTime::now();
    let skew = now
        .duration_since(time)
        .or_else(|_| time.duration_since(now))
        .unwrap_or_default();
    if skew > MAX_CLOCK_SKEW {
        return Err(fail("request time too far from the node's clock"));
    }
    let host = headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| fail("no host"))?;
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!("http://{host}{path}");
    let signed = signed_header_names(headers);
    let (_, expected) = signature(secret, method.as_str(), &url, &signed, time)?;
    if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        return Err(fail("signature does not match"));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parse `YYYYMMDDTHHMMSSZ`.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    u64::try_from(secs)
        .ok()
        .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_amz_dates() {
        let t = parse_amz_date("20240229T010203Z").unwrap();
        let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_709_168_523);
        assert!(parse_amz_date("20241301T000000Z").is_none());
        assert!(parse_amz_date("garbage").is_none());
    }

    fn signed(secret: &str) -> reqwest::Request {
        let client = reqwest::Client::new();
        let mut req = client
            .put("http://127.0.0.1:7000/v1/shards/ab/1")
            .header("x-cairn-shard-checksum", "00ff")
            .build()
            .unwrap();
        sign_request(secret, &mut req).unwrap();
        req
    }

    fn check(secret: &str, req: &reqwest::Request) -> Result<()> {
        let uri: http::Uri = req.url().as_str().parse().unwrap();
        verify_request(secret, req.method(), &uri, req.headers())
    }

    #[test]
    fn a_signed_request_verifies_and_a_tampered_one_does_not() {
        let secret = "s".repeat(40);
        let req = signed(&secret);
        check(&secret, &req).unwrap();
        assert!(check(&"t".repeat(40), &req).is_err());
        let mut tampered = signed(&secret);
        tampered
            .headers_mut()
            .insert("x-cairn-shard-checksum", "00fe".parse().unwrap());
        assert!(check(&secret, &tampered).is_err());
        let mut other_path = signed(&secret);
        *other_path.url_mut() = "http://127.0.0.1:7000/v1/shards/ab/2".parse().unwrap();
        assert!(check(&secret, &other_path).is_err());
    }
}
