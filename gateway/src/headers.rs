//! What S3 reads more leniently than s3s, what it checks before anything
//! else, and what it sends differently:
//!
//! - a `Range` that is not one valid byte range (unparsable, several
//!   ranges, last before first) is ignored: the whole object, `200`
//!   (RFC 9110 14.2 lets a server ignore it; S3 does);
//! - conditional dates in the three forms RFC 9110 5.6.7 requires a
//!   recipient to accept (IMF-fixdate, RFC 850, asctime) are accepted, and
//!   an unparsable one is ignored, as S3 does. These headers are signed,
//!   so they cannot be changed before s3s checks the signature: such a
//!   request is authenticated by s3s first, then handed, relaxed, to a
//!   second service that trusts its caller (`server::Lenient`);
//! - a presigned URL's `X-Amz-Expires` outside 1..=604800 is `400
//!   AuthorizationQueryParametersError`, and an expired URL `403
//!   AccessDenied`;
//! - DeleteObjects needs `Content-MD5` or a checksum header (`400
//!   InvalidRequest`), as S3 requires;
//! - a `304 Not Modified` has no body;
//! - listings escape the control characters XML 1.0 cannot carry raw
//!   (as character references, as S3 does), so standard parsers read keys
//!   holding them.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

/// Set by a listing handler on its response: escape control characters
/// in the XML body. Never sent out.
pub const ESCAPE_CONTROL: &str = "x-cairn-escape-control";
/// Longest listing body escaped (a page of 1,000 keys of 1,024 bytes,
/// each escaped sixfold, with room).
pub const MAX_ESCAPED_BODY: usize = 16 << 20;
/// Longest presigned URL lifetime (S3's limit: a week).
pub const MAX_PRESIGNED_EXPIRES_S: u64 = 604_800;

const DATE_HEADERS: [&str; 4] = [
    "if-modified-since",
    "if-unmodified-since",
    "x-amz-copy-source-if-modified-since",
    "x-amz-copy-source-if-unmodified-since",
];

/// Whether `v` is one byte range S3 honours: `bytes=a-b` (a <= b),
/// `bytes=a-` or `bytes=-n`.
pub fn single_range(v: &str) -> bool {
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return false;
    };
    let Some((first, last)) = spec.trim().split_once('-') else {
        return false;
    };
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.trim(), last.trim()) {
        ("", l) => num(l).is_some(),
        (f, "") => num(f).is_some(),
        (f, l) => matches!((num(f), num(l)), (Some(a), Some(b)) if a <= b),
    }
}

/// An S3 error response (the request id is added by the outer layer).
pub fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (
        status,
        [(http::header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then_some(v)
    })
}

/// `20261204T193000Z` as seconds since the epoch.
fn amz_date_s(s: &str) -> Option<u64> {
    let f = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    let t = time::PrimitiveDateTime::parse(s, f).ok()?;
    u64::try_from(t.assume_utc().unix_timestamp()).ok()
}

fn presigned(query: &str, now_s: u64) -> Option<Response> {
    let expires = query_param(query, "X-Amz-Expires")?;
    // Only SigV4 presigned URLs carry both.
    query_param(query, "X-Amz-Algorithm")?;
    let seconds = match expires.parse::<i64>() {
        Ok(s) if s >= 1 && s as u64 <= MAX_PRESIGNED_EXPIRES_S => s as u64,
        Ok(s) if s > 0 => {
            return Some(error(
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "X-Amz-Expires must be less than a week (in seconds) that is 604800",
            ));
        }
        _ => {
            return Some(error(
                StatusCode::BAD_REQUEST,
                "AuthorizationQueryParametersError",
                "X-Amz-Expires must be non-negative",
            ));
        }
    };
    let signed = query_param(query, "X-Amz-Date").and_then(amz_date_s)?;
    (signed.saturating_add(seconds) < now_s)
        .then(|| error(StatusCode::FORBIDDEN, "AccessDenied", "Request has expired"))
}

fn has_checksum(headers: &HeaderMap) -> bool {
    headers.contains_key("content-md5")
        || headers.contains_key("x-amz-sdk-checksum-algorithm")
        || headers.contains_key("x-amz-trailer")
        || headers.keys().any(|k| {
            k.as_str().starts_with("x-amz-checksum-") && k.as_str() != "x-amz-checksum-type"
        })
}

/// Make `req` what s3s should see; or the answer when S3 refuses it
/// outright.
pub fn request(req: &mut Request, now_s: u64) -> Option<Response> {
    date_as_signing_time(req.headers_mut());
    let query = req.uri().query().unwrap_or("").to_owned();
    if let Some(refused) = presigned(&query, now_s) {
        return Some(refused);
    }
    if let Some(refused) = encryption_refused(req.headers()) {
        return Some(refused);
    }
    let method = req.method().clone();
    if method == Method::POST
        && query_param(&query, "delete").is_some()
        && !has_checksum(req.headers())
    {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Missing required header for this request: Content-MD5",
        ));
    }
    None
}

/// Cairn does not encrypt objects at rest (yet): a request asking for
/// server-side encryption of any kind (SSE-S3, SSE-KMS, SSE-C, or a copy
/// from an SSE-C source) is refused with `501 NotImplemented` before
/// anything is read or written, rather than stored in clear under a
/// success its client would take for encryption.
fn encryption_refused(headers: &HeaderMap) -> Option<Response> {
    let asks = headers.keys().any(|k| {
        let k = k.as_str();
        k.starts_with("x-amz-server-side-encryption")
            || k.starts_with("x-amz-copy-source-server-side-encryption")
    });
    asks.then(|| {
        error(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "Server-side encryption (SSE-S3, SSE-KMS, SSE-C) is not implemented: objects are not encrypted at rest.",
        )
    })
}

/// SigV4 takes its time from `X-Amz-Date`, or from `Date` when there is
/// no `X-Amz-Date` (clients that send `Date` sign it instead). s3s reads
/// only the first, so a header-signed request with only `Date` gets an
/// `X-Amz-Date` of the same instant in its basic ISO 8601 form: the
/// string to sign is then the client's, and the canonical headers, made
/// of the signed ones, are unchanged.
fn date_as_signing_time(headers: &mut HeaderMap) {
    let signed_v4 = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 "));
    if !signed_v4 || headers.contains_key("x-amz-date") {
        return;
    }
    // IMF-fixdate, or RFC 2822 as some clients write it (`-0000`).
    let Some(date) = headers
        .get(http::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|d| {
            httpdate::parse_http_date(d)
                .ok()
                .map(time::OffsetDateTime::from)
                .or_else(|| {
                    time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc2822)
                        .ok()
                })
        })
    else {
        return;
    };
    let basic = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    if let Ok(text) = date.to_offset(time::UtcOffset::UTC).format(&basic)
        && let Ok(v) = HeaderValue::from_str(&text)
    {
        headers.insert("x-amz-date", v);
    }
}

fn lenient_method(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::GET
        || method == Method::HEAD
        || (method == Method::PUT && headers.contains_key("x-amz-copy-source"))
}

fn imf_fixdate(v: &HeaderValue) -> bool {
    v.to_str().ok().is_some_and(|s| {
        httpdate::parse_http_date(s).is_ok_and(|t| httpdate::fmt_http_date(t) == s)
    })
}

/// Whether s3s would refuse a header that S3 reads leniently: a Range
/// that is not one valid byte range, a conditional date not in
/// IMF-fixdate.
pub fn needs_leniency(method: &Method, headers: &HeaderMap) -> bool {
    if !lenient_method(method, headers) {
        return false;
    }
    let bad_range = (method == Method::GET || method == Method::HEAD)
        && headers
            .get(http::header::RANGE)
            .is_some_and(|r| !r.to_str().is_ok_and(single_range));
    bad_range
        || DATE_HEADERS
            .iter()
            .any(|name| headers.get(*name).is_some_and(|v| !imf_fixdate(v)))
}

/// The headers as S3 reads them: an unusable Range dropped, conditional
/// dates in IMF-fixdate or dropped when unparsable.
pub fn relax(headers: &mut HeaderMap) {
    if headers
        .get(http::header::RANGE)
        .is_some_and(|r| !r.to_str().is_ok_and(single_range))
    {
        headers.remove(http::header::RANGE);
    }
    for name in DATE_HEADERS {
        let Some(v) = headers.get(name) else { continue };
        match v
            .to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
        {
            Some(t) => {
                if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(t)) {
                    headers.insert(name, v);
                }
            }
            None => {
                headers.remove(name);
            }
        }
    }
}

/// `uri` without the SigV4 query parameters of a presigned URL (the
/// trusted service has no signatures to check).
pub fn without_signature(uri: &http::Uri) -> http::Uri {
    let Some(query) = uri.query() else {
        return uri.clone();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| !kv.starts_with("X-Amz-"))
        .collect();
    let pq = if kept.is_empty() {
        uri.path().to_owned()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = pq.parse().ok();
    http::Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

/// `text` with the control characters XML 1.0 cannot carry, and CR
/// (which XML parsers turn into LF), written as character references.
pub fn escape_control(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for &b in text {
        if b < 0x20 && b != b'\t' && b != b'\n' {
            out.extend_from_slice(format!("&#x{b:X};").as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

/// Make s3s's response what S3 sends.
pub async fn response(resp: Response) -> Response {
    if resp.status() == StatusCode::NOT_MODIFIED {
        let (mut parts, _) = resp.into_parts();
        parts.headers.remove(http::header::CONTENT_TYPE);
        parts.headers.remove(http::header::CONTENT_LENGTH);
        return Response::from_parts(parts, axum::body::Body::empty());
    }
    if !resp.headers().contains_key(ESCAPE_CONTROL) {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(ESCAPE_CONTROL);
    match axum::body::to_bytes(body, MAX_ESCAPED_BODY).await {
        Ok(bytes) => {
            parts.headers.remove(http::header::CONTENT_LENGTH);
            Response::from_parts(parts, axum::body::Body::from(escape_control(&bytes)))
        }
        Err(_) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
    }
}

/// Mark a listing response for [`response`].
pub fn mark_listing(headers: &mut HeaderMap) {
    headers.insert(ESCAPE_CONTROL, HeaderValue::from_static("1"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_for_encryption_are_refused_not_ignored() {
        let mut h = HeaderMap::new();
        assert!(encryption_refused(&h).is_none());
        h.insert(
            "x-amz-server-side-encryption",
            HeaderValue::from_static("AES256"),
        );
        let r = encryption_refused(&h).expect("refused");
        assert_eq!(r.status(), StatusCode::NOT_IMPLEMENTED);
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-server-side-encryption-customer-algorithm",
            HeaderValue::from_static("AES256"),
        );
        assert!(encryption_refused(&h).is_some());
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-copy-source-server-side-encryption-customer-key",
            HeaderValue::from_static("x"),
        );
        assert!(encryption_refused(&h).is_some());
    }

    #[test]
    fn a_signed_date_header_becomes_the_signing_time() {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=k/20130524/us-east-1/s3/aws4_request, SignedHeaders=date;host, Signature=0"),
        );
        h.insert(
            http::header::DATE,
            HeaderValue::from_static("Fri, 24 May 2013 00:00:00 GMT"),
        );
        date_as_signing_time(&mut h);
        assert_eq!(h.get("x-amz-date").unwrap(), "20130524T000000Z");
        h.remove("x-amz-date");
        h.insert(
            http::header::DATE,
            HeaderValue::from_static("Fri, 24 May 2013 02:00:00 +0200"),
        );
        date_as_signing_time(&mut h);
        assert_eq!(h.get("x-amz-date").unwrap(), "20130524T000000Z");
        // An X-Amz-Date of its own is never replaced.
        h.insert("x-amz-date", HeaderValue::from_static("20130524T010203Z"));
        date_as_signing_time(&mut h);
        assert_eq!(h.get("x-amz-date").unwrap(), "20130524T010203Z");
        // Unsigned requests are left alone.
        let mut h = HeaderMap::new();
        h.insert(
            http::header::DATE,
            HeaderValue::from_static("Fri, 24 May 2013 00:00:00 GMT"),
        );
        date_as_signing_time(&mut h);
        assert!(!h.contains_key("x-amz-date"));
    }

    #[test]
    fn ranges_s3_honours() {
        for ok in [
            "bytes=0-1",
            "bytes=5-",
            "bytes=-3",
            " bytes=0-0 ",
            "bytes=100-200",
        ] {
            assert!(single_range(ok), "{ok}");
        }
        for ignored in [
            "bytes=0-1,3-4",
            "bytes=abc",
            "bytes=5-2",
            "bytes=-",
            "items=0-1",
            "bytes=0x1-2",
            "bytes=",
        ] {
            assert!(!single_range(ignored), "{ignored}");
        }
    }

    #[test]
    fn presigned_lifetimes_are_bounded_and_expire() {
        let q = |expires: &str, date: &str| {
            format!("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date={date}&X-Amz-Expires={expires}")
        };
        let signed = amz_date_s("20261204T120000Z").unwrap();
        let status = |r: Option<Response>| r.map(|r| r.status().as_u16());
        assert_eq!(
            status(presigned(&q("60", "20261204T120000Z"), signed + 60)),
            None
        );
        assert_eq!(
            status(presigned(&q("60", "20261204T120000Z"), signed + 61)),
            Some(403)
        );
        assert_eq!(
            status(presigned(&q("604801", "20261204T120000Z"), signed)),
            Some(400)
        );
        assert_eq!(
            status(presigned(&q("0", "20261204T120000Z"), signed)),
            Some(400)
        );
        assert_eq!(
            status(presigned(&q("-5", "20261204T120000Z"), signed)),
            Some(400)
        );
        assert_eq!(
            status(presigned("X-Amz-Expires=5", signed)),
            None,
            "not SigV4"
        );
    }

    #[test]
    fn lenient_headers_are_relaxed_as_s3_reads_them() {
        let mut h = HeaderMap::new();
        h.insert("range", HeaderValue::from_static("bytes=0-1,3-4"));
        h.insert(
            "if-modified-since",
            HeaderValue::from_static("Sun Nov  6 08:49:37 1994"),
        );
        h.insert("if-unmodified-since", HeaderValue::from_static("yesterday"));
        assert!(needs_leniency(&Method::GET, &h));
        assert!(!needs_leniency(&Method::PUT, &h), "a plain PUT");
        relax(&mut h);
        assert!(h.get("range").is_none());
        assert!(h.get("if-unmodified-since").is_none());
        assert_eq!(h["if-modified-since"], "Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(!needs_leniency(&Method::GET, &h));
        let uri: http::Uri = "/b/k?versionId=1&X-Amz-Signature=abc&X-Amz-Date=x"
            .parse()
            .unwrap();
        assert_eq!(without_signature(&uri), "/b/k?versionId=1");
    }

    #[test]
    fn control_characters_become_references() {
        assert_eq!(
            escape_control(b"<Key>a\x01b\0c\td\re\n</Key>"),
            b"<Key>a&#x1;b&#x0;c\td&#xD;e\n</Key>"
        );
    }
}
