//! The completeness check of aws-chunked request bodies.
//!
//! `s3s` decodes aws-chunked bodies and verifies their chunk and trailer
//! signatures, but a body that simply stops at a chunk boundary (or is
//! empty) ends its decoded stream as if it were whole, and it never compares
//! what it decoded with `x-amz-decoded-content-length`. A dropped connection
//! or a replayed request could then replace an object with a prefix of its
//! bytes. This wrapper watches the raw framing on its way into `s3s`:
//!
//! - the sum of the chunk sizes must equal `x-amz-decoded-content-length`
//!   (refused as soon as it goes past, or at the final chunk when short);
//! - the body must contain the final, 0-length chunk;
//! - when `x-amz-trailer` is declared, trailer bytes must follow it.
//!
//! Anything else fails the body stream with an `IncompleteBody` error before
//! `s3s` sees the end, so the handler gets an error instead of a short body
//! and commits nothing, as AWS answers `400 IncompleteBody`.
//!
//! Only the framing is read here (sizes and line ends); signatures and the
//! trailer's content are `s3s`'s. Malformed framing is left for `s3s` to
//! refuse with its own error.

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Longest chunk header line looked at (`s3s` refuses longer ones itself).
const MAX_CHUNK_HEADER_BYTES: usize = 4096;

/// The message of the error a body fails with. It must not contain the
/// words `body_error_code` in `error.rs` maps to other codes.
pub const INCOMPLETE: &str = "IncompleteBody";

/// Whether a request carries an aws-chunked body (any `STREAMING-*`
/// payload mode), and what its headers promise about it.
pub fn expectation(headers: &HeaderMap) -> Option<Expectation> {
    let mode = headers.get("x-amz-content-sha256")?.to_str().ok()?;
    if !mode.starts_with("STREAMING-") {
        return None;
    }
    let decoded_length = headers
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    Some(Expectation {
        decoded_length,
        trailer: headers.contains_key("x-amz-trailer"),
    })
}

/// What an aws-chunked body must hold to be complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expectation {
    /// `x-amz-decoded-content-length`, when it parses (`s3s` refuses the
    /// request when it is missing or malformed).
    pub decoded_length: Option<u64>,
    /// Whether `x-amz-trailer` announced a trailer.
    pub trailer: bool,
}

#[derive(Debug)]
enum State {
    /// Reading a chunk header line (`hex-size[;chunk-signature=...]\r\n`).
    Header(Vec<u8>),
    /// Skipping this many bytes of chunk data and its CRLF.
    Data(u64),
    /// After the final chunk: counting trailer bytes that are not line ends.
    Final { trailer_bytes: u64 },
    /// The framing is malformed: `s3s` refuses it; nothing more to check.
    Unparsable,
}

/// Framing state over the raw bytes of one body.
#[derive(Debug)]
pub struct Framing {
    expect: Expectation,
    state: State,
    decoded: u64,
}

impl Framing {
    /// A check for a body with these promises.
    pub fn new(expect: Expectation) -> Self {
        Self {
            expect,
            state: State::Header(Vec::new()),
            decoded: 0,
        }
    }

    /// Look at the next raw bytes; `Err` with a reason when they prove the
    /// body wrong.
    pub fn observe(&mut self, mut bytes: &[u8]) -> Result<(), String> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Unparsable => return Ok(()),
                State::Final { trailer_bytes } => {
                    *trailer_bytes +=
                        bytes.iter().filter(|b| !matches!(b, b'\r' | b'\n')).count() as u64;
                    return Ok(());
                }
                State::Data(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.state = State::Header(Vec::new());
                    }
                }
                State::Header(line) => {
                    let Some(end) = bytes.iter().position(|&b| b == b'\n') else {
                        line.extend_from_slice(bytes);
                        if line.len() > MAX_CHUNK_HEADER_BYTES {
                            self.state = State::Unparsable;
                        }
                        return Ok(());
                    };
                    line.extend_from_slice(&bytes[..end]);
                    bytes = &bytes[end + 1..];
                    let Some(size) = chunk_size(line) else {
                        self.state = State::Unparsable;
                        return Ok(());
                    };
                    self.decoded = self.decoded.saturating_add(size);
                    if let Some(want) = self.expect.decoded_length
                        && self.decoded > want
                    {
                        return Err(format!(
                            "{INCOMPLETE}: the aws-chunked body holds more than the declared \
                             x-amz-decoded-content-length of {want} bytes"
                        ));
                    }
                    self.state = if size == 0 {
                        State::Final { trailer_bytes: 0 }
                    } else {
                        // The data and the CRLF after it.
                        State::Data(size + 2)
                    };
                }
            }
        }
        Ok(())
    }

    /// The body ended: `Err` with a reason unless it was complete.
    pub fn finish(&self) -> Result<(), String> {
        match self.state {
            State::Unparsable => Ok(()),
            State::Final { trailer_bytes } => {
                if let Some(want) = self.expect.decoded_length
                    && self.decoded != want
                {
                    return Err(format!(
                        "{INCOMPLETE}: the aws-chunked body holds {} bytes, not the declared \
                         x-amz-decoded-content-length of {want}",
                        self.decoded
                    ));
                }
                if self.expect.trailer && trailer_bytes == 0 {
                    return Err(format!(
                        "{INCOMPLETE}: the trailer announced by x-amz-trailer is missing"
                    ));
                }
                Ok(())
            }
            State::Header(_) | State::Data(_) => Err(format!(
                "{INCOMPLETE}: the aws-chunked body ended before its final chunk"
            )),
        }
    }
}

/// The size of a chunk header line: hex digits before `;` or the line end.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let hex = line.split(|&b| b == b';').next()?;
    let hex = std::str::from_utf8(hex).ok()?.trim();
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// A request body checked by a [`Framing`] as it streams.
pub struct CheckedBody<B> {
    inner: B,
    framing: Framing,
    failed: bool,
}

impl<B> CheckedBody<B> {
    /// Check `inner` against `expect`.
    pub fn new(inner: B, expect: Expectation) -> Self {
        Self {
            inner,
            framing: Framing::new(expect),
            failed: false,
        }
    }
}

/// The error a checked body fails with.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IncompleteBody(String);

impl<B> Body for CheckedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let me = self.get_mut();
        if me.failed {
            return Poll::Ready(None);
        }
        match Pin::new(&mut me.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && let Err(reason) = me.framing.observe(data)
                {
                    me.failed = true;
                    return Poll::Ready(Some(Err(Box::new(IncompleteBody(reason)))));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => match me.framing.finish() {
                Ok(()) => Poll::Ready(None),
                Err(reason) => {
                    me.failed = true;
                    Poll::Ready(Some(Err(Box::new(IncompleteBody(reason)))))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        // The end is only known once `finish` has judged it.
        false
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(chunks: &[&[u8]], final_chunk: bool, trailer: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for c in chunks {
            out.extend_from_slice(
                format!("{:x};chunk-signature={}\r\n", c.len(), "a".repeat(64)).as_bytes(),
            );
            out.extend_from_slice(c);
            out.extend_from_slice(b"\r\n");
        }
        if final_chunk {
            out.extend_from_slice(format!("0;chunk-signature={}\r\n", "b".repeat(64)).as_bytes());
            out.extend_from_slice(trailer.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    fn check(raw: &[u8], expect: Expectation, split: usize) -> Result<(), String> {
        let mut f = Framing::new(expect);
        for piece in raw.chunks(split.max(1)) {
            f.observe(piece)?;
        }
        f.finish()
    }

    fn expect(len: u64, trailer: bool) -> Expectation {
        Expectation {
            decoded_length: Some(len),
            trailer,
        }
    }

    #[test]
    fn a_complete_body_passes_however_it_is_split() {
        let raw = body(&[&[7u8; 100], &[8u8; 33]], true, "");
        for split in [1, 2, 3, 7, 64, 1000] {
            check(&raw, expect(133, false), split).unwrap();
        }
        let raw = body(&[&[7u8; 10]], true, "x-amz-checksum-crc32:AAAAAA==\r\n");
        check(&raw, expect(10, true), 5).unwrap();
    }

    #[test]
    fn truncated_or_misdeclared_bodies_fail() {
        let whole = body(&[&[7u8; 100], &[8u8; 33]], true, "");
        let at_boundary = body(&[&[7u8; 100]], false, "");
        assert!(check(b"", expect(133, false), 10).is_err(), "empty");
        assert!(
            check(&at_boundary, expect(133, false), 10).is_err(),
            "at a boundary"
        );
        assert!(
            check(&whole[..150], expect(133, false), 10).is_err(),
            "mid-chunk"
        );
        assert!(
            check(&whole, expect(132, false), 10).is_err(),
            "declared too small"
        );
        assert!(
            check(&whole, expect(134, false), 10).is_err(),
            "declared too large"
        );
        assert!(
            check(&whole, expect(133, true), 10).is_err(),
            "trailer missing"
        );
    }

    #[test]
    fn malformed_framing_is_left_to_s3s() {
        check(b"zz;chunk-signature=1\r\nabc", expect(3, false), 4).unwrap();
    }
}
