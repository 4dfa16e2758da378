//! What PutObject and UploadPart share: reading the announced checksums,
//! streaming the body through the data path, and verifying every digest the
//! client sent before anything is committed.

use crate::checksum::{self, Algorithm};
use crate::data::{WriteOptions, Written};
use crate::state::Gateway;
use cairn::record::{ChecksumKind, Referrer, StoredChecksum};
use http::HeaderMap;
use s3s::dto::StreamingBlob;
use s3s::{S3Result, TrailingHeaders, s3_error};

/// Where the client's expected checksum value comes from.
enum Expected {
    /// Nothing to check: compute and store only.
    None,
    /// A header value (raw digest).
    Header(Vec<u8>),
    /// An aws-chunked trailer, read once the body is consumed.
    Trailer,
}

/// The checksum a request asks for.
pub(crate) struct ChecksumRequest {
    algorithm: Option<Algorithm>,
    expected: Expected,
    content_md5: Option<[u8; 16]>,
}

/// A body must say how long it is (`Content-Length`) or come chunked:
/// otherwise `411 MissingContentLength`, as S3 answers, before anything
/// is read.
pub(crate) fn require_length(headers: &HeaderMap) -> S3Result<()> {
    if headers.contains_key(http::header::CONTENT_LENGTH)
        || headers.contains_key(http::header::TRANSFER_ENCODING)
    {
        return Ok(());
    }
    let mut e = s3s::S3Error::with_message(
        s3s::S3ErrorCode::MissingContentLength,
        "You must provide the Content-Length HTTP header.",
    );
    e.set_status_code(http::StatusCode::LENGTH_REQUIRED);
    Err(e)
}

/// Read Content-MD5 and the `x-amz-checksum-*` family from the headers.
/// Malformed values are refused before a byte of the body is read.
pub(crate) fn checksum_request(headers: &HeaderMap) -> S3Result<ChecksumRequest> {
    let content_md5 = match headers.get("content-md5") {
        None => None,
        Some(v) => {
            let raw = v
                .to_str()
                .ok()
                .and_then(checksum::unb64)
                .filter(|d| d.len() == 16)
                .ok_or_else(|| {
                    s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid.")
                })?;
            Some(<[u8; 16]>::try_from(raw.as_slice()).expect("16 bytes"))
        }
    };
    let mut found: Option<(Algorithm, Vec<u8>)> = None;
    for a in Algorithm::ALL {
        if let Some(v) = headers.get(a.header().as_str()) {
            let raw = v
                .to_str()
                .ok()
                .and_then(checksum::unb64)
                .filter(|d| d.len() == a.digest_len())
                .ok_or_else(|| {
                    s3_error!(
                        InvalidRequest,
                        "Value for {} header is invalid.",
                        a.header()
                    )
                })?;
            if found.is_some() {
                return Err(s3_error!(
                    InvalidRequest,
                    "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
                ));
            }
            found = Some((a, raw));
        }
    }
    let trailer = headers
        .get("x-amz-trailer")
        .and_then(|v| v.to_str().ok())
        .map(|t| t.trim().to_ascii_lowercase());
    let announced = ["x-amz-sdk-checksum-algorithm", "x-amz-checksum-algorithm"]
        .iter()
        .find_map(|h| headers.get(*h))
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            Algorithm::parse(s).ok_or_else(|| {
                s3_error!(InvalidRequest, "Checksum algorithm {s} is not supported.")
            })
        })
        .transpose()?;
    let (algorithm, expected) = match (found, trailer) {
        (Some((a, raw)), _) => (Some(a), Expected::Header(raw)),
        (None, Some(t)) if t.starts_with("x-amz-checksum-") => {
            let a = Algorithm::parse(&t["x-amz-checksum-".len()..]).ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "The trailer {t} is not a supported checksum."
                )
            })?;
            (Some(a), Expected::Trailer)
        }
        (None, _) => (announced, Expected::None),
    };
    Ok(ChecksumRequest {
        algorithm,
        expected,
        content_md5,
    })
}

/// Limits of one body: refused past `max_len` bytes; may be inline when
/// small and `allow_inline`; `size_hint` is the announced length.
pub(crate) struct BodyLimits {
    pub max_len: u64,
    pub allow_inline: bool,
    pub size_hint: Option<u64>,
}

/// Stream `body` into the data path, then verify Content-MD5 and the
/// additional checksum (header or trailer). On any mismatch nothing is
/// committed (the references the write took are removed and its chunks
/// become garbage for the collector).
pub(crate) async fn receive(
    gw: &Gateway,
    body: Option<StreamingBlob>,
    request: &ChecksumRequest,
    trailers: Option<&TrailingHeaders>,
    limits: BodyLimits,
    owner: (Referrer, &str),
) -> S3Result<(Written, Option<StoredChecksum>)> {
    let opts = WriteOptions {
        algorithm: request.algorithm,
        max_len: limits.max_len,
        allow_inline: limits.allow_inline,
        size_hint: limits.size_hint,
    };
    let written = match body {
        Some(body) => gw.data.write(body, opts, owner).await?,
        None => {
            let empty = futures::stream::empty::<Result<bytes::Bytes, std::io::Error>>();
            gw.data.write(empty, opts, owner).await?
        }
    };
    if let Some(md5) = request.content_md5
        && md5 != written.md5
    {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    let stored = match (&written.checksum, &request.expected) {
        (None, _) => None,
        (Some((a, actual)), expected) => {
            let expected_raw = match expected {
                Expected::None => None,
                Expected::Header(raw) => Some(raw.clone()),
                Expected::Trailer => {
                    let header = a.header();
                    let value = trailers
                        .and_then(|t| {
                            t.read(|h| {
                                h.get(header.as_str())
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned)
                            })
                        })
                        .flatten()
                        .ok_or_else(|| {
                            s3_error!(
                                InvalidRequest,
                                "The announced trailer {header} was not sent."
                            )
                        })?;
                    Some(
                        checksum::unb64(&value)
                            .filter(|d| d.len() == a.digest_len())
                            .ok_or_else(|| {
                                s3_error!(
                                    InvalidRequest,
                                    "Value for {header} trailing header is invalid."
                                )
                            })?,
                    )
                }
            };
            if let Some(e) = expected_raw
                && &e != actual
            {
                return Err(s3_error!(
                    BadDigest,
                    "The {} you specified did not match the calculated checksum.",
                    a.name()
                ));
            }
            Some(StoredChecksum {
                algorithm: a.name().to_owned(),
                value: checksum::b64(actual),
                kind: ChecksumKind::FullObject,
            })
        }
    };
    Ok((written, stored))
}
