//! Node RPC authentication: every request is SigV4-signed with the cluster
//! secret (service [`RPC_SIGNING_SERVICE`]).
//!
//! Signed are the method, the URI, `host`, `x-amz-date` and the `x-cairn-*`
//! headers, among them:
//!
//! - `x-cairn-content-blake3`: the BLAKE3 of the body, which the receiver
//!   checks, so a captured request cannot carry another body;
//! - `x-cairn-nonce`: `SENDER-COUNTER`, a random id of the sending client
//!   ([`Signer`]) and a counter it increments per request. Each receiver
//!   remembers, per sender, the highest counter seen and which of the
//!   [`REPLAY_WINDOW`] before it were used ([`ReplayGuard`]), so a captured request is
//!   accepted once. Requests dated more than [`MAX_CLOCK_SKEW`] away, or
//!   from before the receiver started (it remembers nothing older), are
//!   refused.
//!
//! Proxies and HTTP stacks in between may add headers of their own.

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
/// receiver's clock. Cluster nodes keep their clocks in step (NTP); the
/// window bounds how long a captured request could be replayed to a node
/// that forgot it (one restarted, or one that dropped the sender).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(60);
/// Header: BLAKE3 of the request body, hex.
pub const CONTENT_HASH_HEADER: &str = "x-cairn-content-blake3";
/// Header: `SENDER-COUNTER`, both hex.
pub const NONCE_HEADER: &str = "x-cairn-nonce";
/// Counters below a sender's highest by more than this are refused; within
/// it, each is accepted once. Covers requests overtaking each other in flight.
pub const REPLAY_WINDOW: u64 = 4096;
/// Senders remembered at once (processes that talked to this node within
/// [`MAX_CLOCK_SKEW`]); beyond, the least recently heard is forgotten and
/// requests dated before that moment are refused.
pub const MAX_REPLAY_SENDERS: usize = 4096;

/// Signs outgoing requests as one sender: a random sender id and the
/// counter of its requests.
#[derive(Debug)]
pub struct Signer {
    secret: String,
    sender: u64,
    counter: std::sync::atomic::AtomicU64,
}

impl Signer {
    /// A new sender signing with `secret`.
    pub fn new(secret: &str) -> Self {
        Self {
            secret: secret.to_owned(),
            sender: crate::random::random(),
            counter: std::sync::atomic::AtomicU64::new(1),
        }
    }

    /// Sign an outgoing request in place: adds `host` when missing, the
    /// body's hash and a fresh nonce.
    pub fn sign(&self, parts: &mut http::request::Parts, body: &[u8]) -> Result<()> {
        let counter = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nonce = format!("{:016x}-{counter:x}", self.sender);
        sign_request(&self.secret, &nonce, parts, body)
    }
}

/// The BLAKE3 of a body, hex.
pub fn content_hash(body: &[u8]) -> String {
    blake3::hash(body).to_hex().to_string()
}

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

fn sign_request(
    secret: &str,
    nonce: &str,
    parts: &mut http::request::Parts,
    body: &[u8],
) -> Result<()> {
    let headers = &mut parts.headers;
    let mut set = |name: http::HeaderName, value: &str| -> Result<()> {
        let value = value
            .parse()
            .map_err(|_| Error::BadRequest(name.to_string()))?;
        headers.insert(name, value);
        Ok(())
    };
    set(
        http::HeaderName::from_static(CONTENT_HASH_HEADER),
        &content_hash(body),
    )?;
    set(http::HeaderName::from_static(NONCE_HEADER), nonce)?;
    let host = parts
        .uri
        .authority()
        .ok_or_else(|| Error::BadRequest("no host in the request URI".into()))?
        .as_str()
        .to_owned();
    if !parts.headers.contains_key(http::header::HOST) {
        let value = host.parse().map_err(|_| Error::BadRequest("host".into()))?;
        parts.headers.insert(http::header::HOST, value);
    }
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let url = format!("http://{host}{path}");
    let signed = signed_header_names(&parts.headers);
    let (add, _) = signature(
        secret,
        parts.method.as_str(),
        &url,
        &signed,
        cairn::clock::now(),
    )?;
    for (name, value) in add {
        let name: http::HeaderName = name.parse().map_err(|_| Error::BadRequest(name.clone()))?;
        let value = value
            .parse()
            .map_err(|_| Error::BadRequest("header".into()))?;
        parts.headers.insert(name, value);
    }
    Ok(())
}

/// Check an incoming request: its signature against the cluster secret,
/// its body against the signed hash, its nonce against `guard`.
pub fn verify_request(
    secret: &str,
    guard: &ReplayGuard,
    method: &http::Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    body: &[u8],
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
    let now = cairn::clock::now();
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
    let signed_hash = headers
        .get(CONTENT_HASH_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| fail("no body hash"))?;
    if !constant_time_eq(signed_hash.as_bytes(), content_hash(body).as_bytes()) {
        return Err(fail("body does not match its signed hash"));
    }
    let (sender, counter) = headers
        .get(NONCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once('-'))
        .and_then(|(s, c)| {
            Some((
                u64::from_str_radix(s, 16).ok()?,
                u64::from_str_radix(c, 16).ok()?,
            ))
        })
        .ok_or_else(|| fail("no nonce"))?;
    guard.admit(sender, counter, time)
}

/// What one sender's requests used.
struct Window {
    // The highest counter seen, and a bit per counter below it.
    highest: u64,
    seen: Vec<u64>,
    heard: tokio::time::Instant,
}

impl Window {
    fn new(counter: u64) -> Self {
        let mut w = Self {
            highest: counter,
            seen: vec![0; (REPLAY_WINDOW / 64) as usize],
            heard: tokio::time::Instant::now(),
        };
        w.mark(counter);
        w
    }

    fn bit(counter: u64) -> (usize, u64) {
        let slot = counter % REPLAY_WINDOW;
        ((slot / 64) as usize, 1 << (slot % 64))
    }

    fn mark(&mut self, counter: u64) {
        let (i, b) = Self::bit(counter);
        self.seen[i] |= b;
    }

    /// Whether `counter` is new; records it.
    fn admit(&mut self, counter: u64) -> bool {
        self.heard = tokio::time::Instant::now();
        if counter > self.highest {
            // Slots between the old and the new highest now stand for
            // counters never seen: clear them.
            let steps = (counter - self.highest).min(REPLAY_WINDOW);
            for c in self.highest + 1..=self.highest + steps {
                let (i, b) = Self::bit(c);
                self.seen[i] &= !b;
            }
            self.highest = counter;
            self.mark(counter);
            return true;
        }
        if self.highest - counter >= REPLAY_WINDOW {
            return false;
        }
        let (i, b) = Self::bit(counter);
        if self.seen[i] & b != 0 {
            return false;
        }
        self.seen[i] |= b;
        true
    }
}

/// The nonces a node has accepted: each request once.
pub struct ReplayGuard {
    senders: std::sync::Mutex<std::collections::BTreeMap<u64, Window>>,
    // Requests dated before this are refused: the guard remembers nothing
    // of them (it started later, or forgot their sender).
    forgotten_before: std::sync::Mutex<SystemTime>,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayGuard {
    /// A guard that knows nothing before now.
    pub fn new() -> Self {
        // Dates have one-second resolution: requests signed in the second
        // before a restart may still arrive.
        Self {
            senders: Default::default(),
            forgotten_before: std::sync::Mutex::new(cairn::clock::now() - Duration::from_secs(1)),
        }
    }

    fn admit(&self, sender: u64, counter: u64, dated: SystemTime) -> Result<()> {
        let refuse = |why: &str| Err(Error::Unauthenticated(why.to_owned()));
        let mut senders = self.senders.lock().expect("replay guard lock");
        if let Some(w) = senders.get_mut(&sender) {
            return if w.admit(counter) {
                Ok(())
            } else {
                refuse("request replayed")
            };
        }
        let mut forgotten = self.forgotten_before.lock().expect("replay guard lock");
        if dated < *forgotten {
            return refuse("request older than what this node remembers");
        }
        if senders.len() >= MAX_REPLAY_SENDERS {
            // Senders silent for longer than the skew window can only send
            // refused requests anyway; past the cap, forget the quietest.
            let stale = Duration::from_secs(MAX_CLOCK_SKEW.as_secs() * 2);
            senders.retain(|_, w| w.heard.elapsed() < stale);
            if senders.len() >= MAX_REPLAY_SENDERS
                && let Some(quietest) = senders.iter().min_by_key(|(_, w)| w.heard).map(|(s, _)| *s)
            {
                senders.remove(&quietest);
                *forgotten = cairn::clock::now();
            }
        }
        senders.insert(sender, Window::new(counter));
        Ok(())
    }
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

    fn signed(secret: &str, method: http::Method, url: &str, body: &[u8]) -> http::request::Parts {
        let (mut parts, ()) = http::Request::builder()
            .method(method)
            .uri(url)
            .header("x-cairn-shard-checksum", "00ff")
            .body(())
            .unwrap()
            .into_parts();
        Signer::new(secret).sign(&mut parts, body).unwrap();
        parts
    }

    fn check(secret: &str, req: &http::request::Parts, body: &[u8]) -> Result<()> {
        verify_request(
            secret,
            &ReplayGuard::new(),
            &req.method,
            &req.uri,
            &req.headers,
            body,
        )
    }

    #[test]
    fn a_request_is_accepted_once_and_only_with_its_own_body() {
        let secret = "s".repeat(40);
        let body = b"the real body";
        let req = signed(
            &secret,
            http::Method::POST,
            "http://127.0.0.1:7000/v1/meta/command",
            body,
        );
        let guard = ReplayGuard::new();
        let verify = |body: &[u8]| {
            verify_request(&secret, &guard, &req.method, &req.uri, &req.headers, body)
        };
        assert!(verify(b"another body").is_err(), "body swap refused");
        verify(body).unwrap();
        assert!(verify(body).is_err(), "replay refused");
    }

    #[test]
    fn the_replay_window_accepts_reordering_and_refuses_the_old() {
        let mut w = Window::new(100);
        assert!(w.admit(102));
        assert!(w.admit(101), "overtaken, still new");
        assert!(!w.admit(101));
        assert!(!w.admit(100));
        assert!(w.admit(100 + 3 * REPLAY_WINDOW));
        assert!(!w.admit(102), "too far behind");
        assert!(w.admit(100 + 3 * REPLAY_WINDOW - 5), "inside the window");
    }

    #[test]
    fn a_signed_request_verifies_and_a_tampered_one_does_not() {
        let secret = "s".repeat(40);
        let url = "http://127.0.0.1:7000/v1/shards/ab/1";
        let req = signed(&secret, http::Method::PUT, url, b"");
        check(&secret, &req, b"").unwrap();
        assert!(check(&"t".repeat(40), &req, b"").is_err());
        let mut tampered = signed(&secret, http::Method::PUT, url, b"");
        tampered
            .headers
            .insert("x-cairn-shard-checksum", "00fe".parse().unwrap());
        assert!(check(&secret, &tampered, b"").is_err());
        let mut other_path = signed(&secret, http::Method::PUT, url, b"");
        other_path.uri = "http://127.0.0.1:7000/v1/shards/ab/2".parse().unwrap();
        assert!(check(&secret, &other_path, b"").is_err());
        let mut other_method = signed(&secret, http::Method::PUT, url, b"");
        other_method.method = http::Method::DELETE;
        assert!(check(&secret, &other_method, b"").is_err());
    }
}
