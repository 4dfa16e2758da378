//! Object operations: PutObject, GetObject, HeadObject, DeleteObject(s),
//! CopyObject.

use super::access::{Caller, versioned};
use super::acl;
use super::upload::{BodyLimits, checksum_request, receive, require_length};
use super::{now_ms, outcome, timestamp};
use crate::config::MAX_PUT_OBJECT_BYTES;
use crate::refs::WriteSession;
use crate::state::Gateway;
use bytes::Bytes;
use cairn::command::{Command, Condition, Deletion, Outcome};
use cairn::record::{
    BucketRecord, ChecksumKind, DeleteMarker, ObjectData, ObjectEntry, Referrer, Segment,
    SegmentChunks, StoredChecksum, VersionId, VersionRecord, VersionRef, version_id,
};
use futures::Stream;
use futures::stream::BoxStream;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::pin::Pin;
use std::task::{Context, Poll};

/// Largest user metadata (sum of the UTF-8 lengths of names and values),
/// S3's limit.
pub const MAX_USER_METADATA_BYTES: usize = 2048;

/// Largest number of keys in one DeleteObjects request (S3's limit).
pub const MAX_DELETE_OBJECTS: usize = 1000;

/// Largest source of a CopyObject (S3's limit; larger objects are copied
/// with UploadPartCopy).
pub const MAX_COPY_SOURCE_BYTES: u64 = 5 << 30;

/// The version a request names with `versionId` (`None` without one).
pub(crate) fn version_ref(v: Option<&str>) -> S3Result<Option<VersionRef>> {
    match v {
        None => Ok(None),
        Some(s) => VersionRef::parse(s)
            .map(Some)
            .ok_or_else(|| s3_error!(InvalidArgument, "Invalid version id specified")),
    }
}

fn delete_marker_headers(m: &DeleteMarker) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&version_id(m.version, m.null_version)) {
        h.insert("x-amz-version-id", v);
    }
    h
}

/// An object version (the latest without `which`), or the S3 error for
/// its absence: NoSuchKey (with `x-amz-delete-marker` when the latest
/// version is a delete marker), NoSuchVersion, or 405 MethodNotAllowed
/// for a named delete marker (a linearizable read).
pub(crate) async fn object_version(
    gw: &Gateway,
    bucket: &BucketRecord,
    key: &str,
    which: Option<VersionRef>,
) -> S3Result<ObjectEntry> {
    let found = gw
        .meta
        .client
        .version(bucket.id, key, which)
        .await
        .map_err(crate::error::Error::from)?;
    match (found, which) {
        (Some((VersionRecord::Object(e), _)), _) => Ok(e),
        (None, None) => Err(s3_error!(NoSuchKey, "The specified key does not exist.")),
        (None, Some(_)) => Err(s3_error!(
            NoSuchVersion,
            "The specified version does not exist."
        )),
        (Some((VersionRecord::DeleteMarker(m), _)), None) => {
            let mut e = s3_error!(NoSuchKey, "The specified key does not exist.");
            e.set_headers(delete_marker_headers(&m));
            Err(e)
        }
        (Some((VersionRecord::DeleteMarker(m), _)), Some(_)) => {
            let mut e = s3_error!(
                MethodNotAllowed,
                "The specified method is not allowed against this resource."
            );
            e.set_headers(delete_marker_headers(&m));
            Err(e)
        }
    }
}

/// The `x-amz-version-id` of a read of `rec`: versioned buckets' versions
/// have one; a `null` version shows it when it was asked for by id.
fn read_version_id(rec: &ObjectEntry, asked: Option<VersionRef>) -> Option<String> {
    (!rec.null_version || asked.is_some()).then(|| rec.version_id())
}

/// The version id a write's outcome reports.
pub(crate) fn written_version(o: &Outcome) -> Option<String> {
    match o {
        Outcome::Versioned { version_id } => Some(version_id.clone()),
        _ => None,
    }
}

/// The condition an `If-Match` / `If-None-Match` pair puts on a write,
/// decided when the write is applied. S3 takes `If-None-Match: *` only.
pub(crate) fn write_condition(
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<Option<Condition>> {
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(s3_error!(
            NotImplemented,
            "Using both If-Match and If-None-Match on one write is not supported."
        )),
        (Some(ETagCondition::Any), None) => Ok(Some(Condition::Present)),
        (Some(ETagCondition::ETag(e)), None) => Ok(Some(Condition::ETag(e.value().to_owned()))),
        (None, Some(ETagCondition::Any)) => Ok(Some(Condition::Absent)),
        (None, Some(ETagCondition::ETag(_))) => Err(s3_error!(
            NotImplemented,
            "If-None-Match on a write takes only *."
        )),
        (None, None) => Ok(None),
    }
}

/// Standard headers kept with an object.
pub(crate) struct StandardHeaders {
    pub content_type: Option<String>,
    pub headers: Vec<(String, String)>,
    pub user_metadata: Vec<(String, String)>,
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn standard_headers(
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<&Timestamp>,
    metadata: Option<Metadata>,
) -> S3Result<StandardHeaders> {
    let mut headers = Vec::new();
    for (name, value) in [
        ("cache-control", cache_control),
        ("content-disposition", content_disposition),
        ("content-encoding", content_encoding),
        ("content-language", content_language),
    ] {
        if let Some(v) = value {
            headers.push((name.to_owned(), v));
        }
    }
    if let Some(e) = expires {
        let mut buf = Vec::new();
        if e.format(TimestampFormat::HttpDate, &mut buf).is_ok() {
            headers.push((
                "expires".to_owned(),
                String::from_utf8_lossy(&buf).into_owned(),
            ));
        }
    }
    let mut user_metadata: Vec<(String, String)> = metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    user_metadata.sort();
    let size: usize = user_metadata.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_USER_METADATA_BYTES {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size."
        ));
    }
    Ok(StandardHeaders {
        content_type,
        headers,
        user_metadata,
    })
}

fn header(rec: &ObjectEntry, name: &str) -> Option<String> {
    rec.headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

fn metadata(rec: &ObjectEntry) -> Option<Metadata> {
    (!rec.user_metadata.is_empty()).then(|| rec.user_metadata.iter().cloned().collect())
}

fn expires(rec: &ObjectEntry) -> Option<Timestamp> {
    header(rec, "expires").and_then(|s| Timestamp::parse(TimestampFormat::HttpDate, &s).ok())
}

pub(crate) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

/// The checksum fields of a response, filled from a stored checksum.
#[derive(Default)]
pub(crate) struct ChecksumFields {
    pub crc32: Option<String>,
    pub crc32c: Option<String>,
    pub crc64nvme: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub kind: Option<ChecksumType>,
}

pub(crate) fn checksum_fields(c: Option<&StoredChecksum>) -> ChecksumFields {
    let mut f = ChecksumFields::default();
    let Some(c) = c else { return f };
    let v = Some(c.value.clone());
    match c.algorithm.as_str() {
        "CRC32" => f.crc32 = v,
        "CRC32C" => f.crc32c = v,
        "CRC64NVME" => f.crc64nvme = v,
        "SHA1" => f.sha1 = v,
        "SHA256" => f.sha256 = v,
        _ => return f,
    }
    f.kind = Some(ChecksumType::from(
        match c.kind {
            ChecksumKind::FullObject => ChecksumType::FULL_OBJECT,
            ChecksumKind::Composite => ChecksumType::COMPOSITE,
        }
        .to_owned(),
    ));
    f
}

fn precondition_failed() -> s3s::S3Error {
    s3_error!(
        PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold"
    )
}

fn etag_matches(cond: &ETagCondition, etag: &str) -> bool {
    match cond {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

pub(super) async fn put(
    gw: &Gateway,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let who = Caller::of(&req);
    require_length(&req.headers)?;
    let request = checksum_request(&req.headers)?;
    let trailers = req.trailing_headers.clone();
    let integrity = super::lock::require_integrity(&req.headers);
    let input = req.input;
    let bucket = who
        .object(gw, &input.bucket, "s3:PutObject", &input.key, None)
        .await?;
    if input
        .content_length
        .is_some_and(|l| l as u64 > MAX_PUT_OBJECT_BYTES)
    {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size"
        ));
    }
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let std = standard_headers(
        input.content_type.map(|c| c.to_string()),
        input.cache_control,
        input.content_disposition,
        input.content_encoding,
        input.content_language,
        input.expires.as_ref(),
        input.metadata,
    )?;
    let (retention, legal_hold) = super::lock::requested(
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )?;
    if retention.is_some() || input.object_lock_legal_hold_status.is_some() {
        integrity?;
    }
    let tags = super::tagging::from_header(input.tagging.as_deref())?;
    let (owner, grants) = acl::written_acl!(gw, &bucket, &who.writer(&bucket), input).await?;
    let version = VersionId(cairn_node::random::random());
    let referrer = Referrer::Object {
        bucket: bucket.id,
        key: input.key.clone(),
        version,
    };
    let (written, checksum) = receive(
        gw,
        input.body,
        &request,
        trailers.as_ref(),
        BodyLimits {
            max_len: MAX_PUT_OBJECT_BYTES,
            allow_inline: true,
            size_hint: input.content_length.map(|l| l.max(0) as u64),
        },
        (referrer, &input.key),
    )
    .await?;
    let etag_hex = hex::encode(written.md5);
    let size = written.size;
    let session = written.session.clone();
    let entry = ObjectEntry {
        version,
        size,
        etag: etag_hex.clone(),
        last_modified_ms: now_ms(),
        content_type: std.content_type,
        headers: std.headers,
        user_metadata: std.user_metadata,
        checksum: checksum.clone(),
        part_sizes: Vec::new(),
        data: written.data.into_object_data(size),
        seq: 0,
        null_version: false,
        owner,
        noncurrent_since_ms: None,
        tags,
        retention,
        legal_hold,
        grants,
    };
    let expiration = super::lifecycle::expiration(gw, bucket.id, &input.key, &entry).await;
    // The object becomes visible here, if the condition still holds now.
    let commit = Command::PutObject {
        bucket: bucket.id,
        key: input.key,
        entry,
        condition,
    };
    let committed = commit_written(gw, session.as_deref(), commit).await?;
    let version_id = written_version(&committed);
    outcome(committed)?;
    let f = checksum_fields(checksum.as_ref());
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(etag(&etag_hex)),
        expiration,
        version_id,
        checksum_crc32: f.crc32,
        checksum_crc32c: f.crc32c,
        checksum_crc64nvme: f.crc64nvme,
        checksum_sha1: f.sha1,
        checksum_sha256: f.sha256,
        checksum_type: f.kind,
        size: Some(size as i64),
        ..Default::default()
    }))
}

/// Send the commit of a write that took chunk references, telling its
/// session how it went (so that a failed write's references go at once).
/// A browser upload (POST Object): its form, already checked against
/// its signed policy by s3s, is a PUT.
pub(super) async fn post(
    gw: &Gateway,
    req: S3Request<PostObjectInput>,
) -> S3Result<S3Response<PostObjectOutput>> {
    // The form's checksum fields are checked as a PUT's headers are.
    let mut req = req;
    let i = &req.input;
    let fields = [
        ("content-md5", i.content_md5.as_deref()),
        ("x-amz-checksum-crc32", i.checksum_crc32.as_deref()),
        ("x-amz-checksum-crc32c", i.checksum_crc32c.as_deref()),
        ("x-amz-checksum-crc64nvme", i.checksum_crc64nvme.as_deref()),
        ("x-amz-checksum-sha1", i.checksum_sha1.as_deref()),
        ("x-amz-checksum-sha256", i.checksum_sha256.as_deref()),
    ];
    let mut headers = Vec::new();
    for (name, value) in fields {
        if let Some(v) = value {
            let v = http::HeaderValue::from_str(v)
                .map_err(|_| s3_error!(InvalidDigest, "The {name} you specified was invalid."))?;
            headers.push((http::HeaderName::from_static(name), v));
        }
    }
    req.headers.extend(headers);
    let resp = put(gw, req.map_input(put_input_of_post)).await?;
    let o = resp.output;
    let mut out = S3Response::new(PostObjectOutput {
        bucket_key_enabled: o.bucket_key_enabled,
        checksum_crc32: o.checksum_crc32,
        checksum_crc32c: o.checksum_crc32c,
        checksum_crc64nvme: o.checksum_crc64nvme,
        checksum_sha1: o.checksum_sha1,
        checksum_sha256: o.checksum_sha256,
        checksum_type: o.checksum_type,
        e_tag: o.e_tag,
        expiration: o.expiration,
        request_charged: o.request_charged,
        sse_customer_algorithm: o.sse_customer_algorithm,
        sse_customer_key_md5: o.sse_customer_key_md5,
        ssekms_encryption_context: o.ssekms_encryption_context,
        ssekms_key_id: o.ssekms_key_id,
        server_side_encryption: o.server_side_encryption,
        size: o.size,
        version_id: o.version_id,
    });
    out.headers = resp.headers;
    Ok(out)
}

/// The PUT a POST upload's form amounts to.
fn put_input_of_post(x: PostObjectInput) -> PutObjectInput {
    PutObjectInput {
        acl: x.acl,
        body: x.body,
        bucket: x.bucket,
        bucket_key_enabled: x.bucket_key_enabled,
        cache_control: x.cache_control,
        checksum_algorithm: x.checksum_algorithm,
        checksum_crc32: x.checksum_crc32,
        checksum_crc32c: x.checksum_crc32c,
        checksum_crc64nvme: x.checksum_crc64nvme,
        checksum_sha1: x.checksum_sha1,
        checksum_sha256: x.checksum_sha256,
        content_disposition: x.content_disposition,
        content_encoding: x.content_encoding,
        content_language: x.content_language,
        content_length: x.content_length,
        content_md5: x.content_md5,
        content_type: x.content_type,
        expected_bucket_owner: x.expected_bucket_owner,
        expires: x.expires,
        grant_full_control: x.grant_full_control,
        grant_read: x.grant_read,
        grant_read_acp: x.grant_read_acp,
        grant_write_acp: x.grant_write_acp,
        if_match: x.if_match,
        if_none_match: x.if_none_match,
        key: x.key,
        metadata: x.metadata,
        object_lock_legal_hold_status: x.object_lock_legal_hold_status,
        object_lock_mode: x.object_lock_mode,
        object_lock_retain_until_date: x.object_lock_retain_until_date,
        request_payer: x.request_payer,
        sse_customer_algorithm: x.sse_customer_algorithm,
        sse_customer_key: x.sse_customer_key,
        sse_customer_key_md5: x.sse_customer_key_md5,
        ssekms_encryption_context: x.ssekms_encryption_context,
        ssekms_key_id: x.ssekms_key_id,
        server_side_encryption: x.server_side_encryption,
        storage_class: x.storage_class,
        tagging: x.tagging,
        website_redirect_location: x.website_redirect_location,
        write_offset_bytes: x.write_offset_bytes,
    }
}

pub(crate) async fn commit_written(
    gw: &Gateway,
    session: Option<&WriteSession>,
    commit: Command,
) -> S3Result<Outcome> {
    if let Some(s) = session {
        s.committing();
    }
    let result = gw.meta.data(commit).await;
    if let Some(s) = session {
        s.settle(&result);
    }
    Ok(result?)
}

/// `304 Not Modified`, with the ETag and Last-Modified a cache needs to
/// refresh its copy (RFC 9110, 15.4.5); the gateway sends it without a
/// body.
fn not_modified(rec: &ObjectEntry) -> s3s::S3Error {
    let mut e = s3_error!(NotModified);
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = http::HeaderValue::from_str(&format!("\"{}\"", rec.etag)) {
        headers.insert(http::header::ETAG, v);
    }
    let modified = std::time::UNIX_EPOCH + std::time::Duration::from_millis(rec.last_modified_ms);
    if let Ok(v) = http::HeaderValue::from_str(&httpdate::fmt_http_date(modified)) {
        headers.insert(http::header::LAST_MODIFIED, v);
    }
    e.set_headers(headers);
    e
}

/// Evaluate If-Match, If-None-Match, If-Modified-Since and
/// If-Unmodified-Since as RFC 9110 and S3 order them.
fn check_read_preconditions(
    rec: &ObjectEntry,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let modified = timestamp(rec.last_modified_ms / 1000 * 1000);
    let to_odt = |t: &Timestamp| time::OffsetDateTime::from(t.clone());
    match if_match {
        Some(cond) if !etag_matches(cond, &rec.etag) => return Err(precondition_failed()),
        Some(_) => {}
        None => {
            if let Some(t) = if_unmodified_since
                && to_odt(&modified) > to_odt(t)
            {
                return Err(precondition_failed());
            }
        }
    }
    match if_none_match {
        Some(cond) if etag_matches(cond, &rec.etag) => return Err(not_modified(rec)),
        Some(_) => {}
        None => {
            if let Some(t) = if_modified_since
                && to_odt(&modified) <= to_odt(t)
            {
                return Err(not_modified(rec));
            }
        }
    }
    Ok(())
}

/// The byte range of part `n` (1-based) of an object.
fn part_range(rec: &ObjectEntry, n: i32) -> S3Result<(std::ops::Range<u64>, i32)> {
    let sizes: Vec<u64> = if rec.part_sizes.is_empty() {
        vec![rec.size]
    } else {
        rec.part_sizes.clone()
    };
    if n < 1 || n as usize > sizes.len() {
        let mut e = s3s::S3Error::with_message(
            s3s::S3ErrorCode::Custom("InvalidPartNumber".into()),
            "The requested partnumber is not satisfiable",
        );
        e.set_status_code(http::StatusCode::RANGE_NOT_SATISFIABLE);
        return Err(e);
    }
    let start: u64 = sizes[..n as usize - 1].iter().sum();
    Ok((start..start + sizes[n as usize - 1], sizes.len() as i32))
}

/// What GET and HEAD say of an object written without a `Content-Type`,
/// as S3 does.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// A GetObject or HeadObject answer: the fields both take from the record
/// and its checksum fields, plus the ones given.
macro_rules! object_output {
    ($ty:ident, $rec:expr, $f:expr, { $($field:ident : $value:expr),* $(,)? }) => {{
        let rec: &ObjectEntry = $rec;
        let f: ChecksumFields = $f;
        let lock = super::lock::fields(rec);
        $ty {
            $($field: $value,)*
            object_lock_mode: lock.mode,
            object_lock_retain_until_date: lock.until,
            object_lock_legal_hold_status: lock.legal_hold,
            accept_ranges: Some("bytes".into()),
            content_type: rec
                .content_type
                .as_deref()
                .unwrap_or(DEFAULT_CONTENT_TYPE)
                .parse()
                .ok(),
            cache_control: header(rec, "cache-control"),
            content_disposition: header(rec, "content-disposition"),
            content_encoding: header(rec, "content-encoding"),
            content_language: header(rec, "content-language"),
            expires: expires(rec),
            e_tag: Some(etag(&rec.etag)),
            last_modified: Some(timestamp(rec.last_modified_ms)),
            metadata: metadata(rec),
            checksum_crc32: f.crc32,
            checksum_crc32c: f.crc32c,
            checksum_crc64nvme: f.crc64nvme,
            checksum_sha1: f.sha1,
            checksum_sha256: f.sha256,
            checksum_type: f.kind,
            ..Default::default()
        }
    }};
}

/// The `x-amz-expiration` of a read: only the latest version is what
/// Expiration rules act on (a version asked for by id gets none).
async fn current_expiration(
    gw: &Gateway,
    bucket: &BucketRecord,
    key: &str,
    rec: &ObjectEntry,
    asked: Option<VersionRef>,
) -> Option<String> {
    match asked {
        None => super::lifecycle::expiration(gw, bucket.id, key, rec).await,
        Some(_) => None,
    }
}

/// A `Sync` wrapper so a boxed stream can become a response body.
struct SyncStream(std::sync::Mutex<BoxStream<'static, Result<Bytes, std::io::Error>>>);

impl Stream for SyncStream {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let inner = self.get_mut().0.get_mut().expect("stream mutex poisoned");
        inner.as_mut().poll_next(cx)
    }
}

pub(super) async fn get(
    gw: &Gateway,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let asked = version_ref(input.version_id.as_deref())?;
    let action = versioned("s3:GetObject", input.version_id.as_deref());
    let bucket = who
        .object(gw, &input.bucket, &action, &input.key, asked)
        .await?;
    let rec = match object_version(gw, &bucket, &input.key, asked).await {
        Ok(r) => r,
        Err(e) => return Err(who.missing(gw, &bucket, e).await),
    };
    check_read_preconditions(
        &rec,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let (range, partial, parts_count) = match (&input.range, input.part_number) {
        (Some(_), Some(_)) => {
            return Err(s3_error!(
                InvalidRequest,
                "Cannot specify both Range header and partNumber query parameter"
            ));
        }
        (Some(r), None) => {
            let range = r
                .check(rec.size)
                .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?;
            (range, true, None)
        }
        (None, Some(n)) => {
            let (range, count) = part_range(&rec, n)?;
            (range, !rec.part_sizes.is_empty(), Some(count))
        }
        (None, None) => (0..rec.size, false, None),
    };
    let body = gw
        .data
        .read_range(bucket.id, &rec.data, range.clone())
        .await?;
    let content_range = partial.then(|| {
        if range.is_empty() {
            format!("bytes */{}", rec.size)
        } else {
            format!("bytes {}-{}/{}", range.start, range.end - 1, rec.size)
        }
    });
    let want_checksum = input
        .checksum_mode
        .as_ref()
        .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
    // A checksum covers the whole object: never send it with a part of it.
    let f = if want_checksum && !partial {
        checksum_fields(rec.checksum.as_ref())
    } else {
        ChecksumFields::default()
    };
    let expiration = current_expiration(gw, &bucket, &input.key, &rec, asked).await;
    let output = object_output!(GetObjectOutput, &rec, f, {
        expiration: expiration,
        body: Some(StreamingBlob::wrap(SyncStream(std::sync::Mutex::new(body)))),
        content_length: Some((range.end - range.start) as i64),
        content_range: content_range,
        parts_count: parts_count,
        version_id: read_version_id(&rec, asked),
        tag_count: super::tagging::count(&rec),
    });
    let status = partial.then_some(http::StatusCode::PARTIAL_CONTENT);
    Ok(match status {
        Some(s) => S3Response::with_status(output, s),
        None => S3Response::new(output),
    })
}

pub(super) async fn head(
    gw: &Gateway,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let asked = version_ref(input.version_id.as_deref())?;
    let action = versioned("s3:GetObject", input.version_id.as_deref());
    let bucket = who
        .object(gw, &input.bucket, &action, &input.key, asked)
        .await?;
    let rec = match object_version(gw, &bucket, &input.key, asked).await {
        Ok(r) => r,
        Err(e) => return Err(who.missing(gw, &bucket, e).await),
    };
    check_read_preconditions(
        &rec,
        input.if_match.as_ref(),
        input.if_none_match.as_ref(),
        input.if_modified_since.as_ref(),
        input.if_unmodified_since.as_ref(),
    )?;
    let (length, parts_count, content_range, partial) = match (&input.range, input.part_number) {
        (Some(r), _) => {
            let range = r
                .check(rec.size)
                .map_err(|_| s3_error!(InvalidRange, "The requested range is not satisfiable"))?;
            let cr = format!(
                "bytes {}-{}/{}",
                range.start,
                range.end.saturating_sub(1),
                rec.size
            );
            (range.end - range.start, None, Some(cr), true)
        }
        (None, Some(n)) => {
            let (range, count) = part_range(&rec, n)?;
            (
                range.end - range.start,
                Some(count),
                None,
                !rec.part_sizes.is_empty(),
            )
        }
        (None, None) => (rec.size, None, None, false),
    };
    let want_checksum = input
        .checksum_mode
        .as_ref()
        .is_some_and(|m| m.as_str() == ChecksumMode::ENABLED);
    let f = if want_checksum && !partial {
        checksum_fields(rec.checksum.as_ref())
    } else {
        ChecksumFields::default()
    };
    let expiration = current_expiration(gw, &bucket, &input.key, &rec, asked).await;
    Ok(S3Response::new(object_output!(HeadObjectOutput, &rec, f, {
        expiration: expiration,
        content_length: Some(length as i64),
        content_range: content_range,
        parts_count: parts_count,
        version_id: read_version_id(&rec, asked),
    })))
}

/// GetObjectAttributes: what the `x-amz-object-attributes` header names,
/// of the latest version or the one asked for. Parts are listed with
/// their numbers and sizes (their checksums are the object's parts'
/// records, not read here).
pub(super) async fn attributes(
    gw: &Gateway,
    req: S3Request<GetObjectAttributesInput>,
) -> S3Result<S3Response<GetObjectAttributesOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    super::non_negative(input.max_parts, "max-parts")?;
    let want = |a: &str| input.object_attributes.iter().any(|x| x.as_str() == a);
    let known = [
        ObjectAttributes::CHECKSUM,
        ObjectAttributes::ETAG,
        ObjectAttributes::OBJECT_PARTS,
        ObjectAttributes::OBJECT_SIZE,
        ObjectAttributes::STORAGE_CLASS,
    ];
    if input.object_attributes.is_empty()
        || input
            .object_attributes
            .iter()
            .any(|a| !known.contains(&a.as_str()))
    {
        return Err(s3_error!(
            InvalidArgument,
            "Invalid attribute name specified."
        ));
    }
    let asked = version_ref(input.version_id.as_deref())?;
    let action = versioned("s3:GetObjectAttributes", input.version_id.as_deref());
    let bucket = who
        .object(gw, &input.bucket, &action, &input.key, asked)
        .await?;
    let rec = object_version(gw, &bucket, &input.key, asked).await?;
    let checksum = rec
        .checksum
        .as_ref()
        .filter(|_| want(ObjectAttributes::CHECKSUM))
        .map(|c| {
            let f = checksum_fields(Some(c));
            Checksum {
                checksum_crc32: f.crc32,
                checksum_crc32c: f.crc32c,
                checksum_crc64nvme: f.crc64nvme,
                checksum_sha1: f.sha1,
                checksum_sha256: f.sha256,
                checksum_type: Some(ChecksumType::from(
                    match c.kind {
                        cairn::record::ChecksumKind::FullObject => ChecksumType::FULL_OBJECT,
                        cairn::record::ChecksumKind::Composite => ChecksumType::COMPOSITE,
                    }
                    .to_owned(),
                )),
            }
        });
    let object_parts =
        (want(ObjectAttributes::OBJECT_PARTS) && !rec.part_sizes.is_empty()).then(|| {
            let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
            let after = input.part_number_marker.unwrap_or(0).max(0) as usize;
            let parts: Vec<ObjectPart> = rec
                .part_sizes
                .iter()
                .enumerate()
                .skip(after)
                .take(max)
                .map(|(i, size)| ObjectPart {
                    part_number: Some(i as i32 + 1),
                    size: Some(*size as i64),
                    ..Default::default()
                })
                .collect();
            let last = after + parts.len();
            let truncated = last < rec.part_sizes.len();
            GetObjectAttributesParts {
                is_truncated: Some(truncated),
                max_parts: Some(max as i32),
                next_part_number_marker: truncated.then_some(last as i32),
                part_number_marker: input.part_number_marker,
                parts: Some(parts),
                total_parts_count: Some(rec.part_sizes.len() as i32),
            }
        });
    Ok(S3Response::new(GetObjectAttributesOutput {
        checksum,
        delete_marker: None,
        e_tag: want(ObjectAttributes::ETAG).then(|| etag(&rec.etag)),
        last_modified: Some(timestamp(rec.last_modified_ms)),
        object_parts,
        object_size: want(ObjectAttributes::OBJECT_SIZE).then_some(rec.size as i64),
        request_charged: None,
        storage_class: want(ObjectAttributes::STORAGE_CLASS)
            .then(|| StorageClass::from(StorageClass::STANDARD.to_owned())),
        version_id: read_version_id(&rec, asked),
    }))
}

pub(super) async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let version = version_ref(input.version_id.as_deref())?;
    let action = versioned("s3:DeleteObject", input.version_id.as_deref());
    let bucket = who
        .object(gw, &input.bucket, &action, &input.key, version)
        .await?;
    let if_match = match input.if_match {
        None => None,
        Some(ETagCondition::Any) => {
            return Err(s3_error!(
                NotImplemented,
                "If-Match: * on DELETE is not supported."
            ));
        }
        Some(ETagCondition::ETag(e)) => Some(e.value().to_owned()),
    };
    let bypass_governance = super::lock::bypass(
        gw,
        &who,
        &bucket,
        &input.key,
        input.bypass_governance_retention,
    )
    .await?;
    // Deleting a missing key succeeds, as in S3, and leaves nothing behind.
    let o = gw
        .meta
        .data(Command::DeleteObjects {
            bucket: bucket.id,
            deletions: vec![Deletion {
                key: input.key,
                version,
                if_match,
                marker: VersionId(cairn_node::random::random()),
                bypass_governance,
            }],
            now_ms: now_ms(),
            owner: who.writer(&bucket),
        })
        .await?;
    let one = match o {
        Outcome::Deleted(mut each) if each.len() == 1 => each.pop().expect("one"),
        other => other,
    };
    let (version_id, delete_marker) = match &one {
        Outcome::Removed {
            version_id,
            delete_marker,
        } => (version_id.clone(), delete_marker.then_some(true)),
        _ => (None, None),
    };
    outcome(one)?;
    Ok(S3Response::with_status(
        DeleteObjectOutput {
            version_id,
            delete_marker,
            ..Default::default()
        },
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn delete_many(
    gw: &Gateway,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = gw
        .meta
        .bucket(&input.bucket)
        .await?
        .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist"))?;
    let decider = who.decider(gw, &bucket).await?;
    let objects = input.delete.objects;
    if objects.len() > MAX_DELETE_OBJECTS {
        return Err(s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    let quiet = input.delete.quiet.unwrap_or(false);
    let bypass_asked = input.bypass_governance_retention == Some(true);
    // A malformed version id, or a key the caller may not delete, fails
    // that key alone, as in S3.
    let versions: Vec<S3Result<Option<VersionRef>>> = objects
        .iter()
        .map(|o| {
            let action = versioned("s3:DeleteObject", o.version_id.as_deref());
            if !decider.allows(&action, Some(&o.key), None) {
                return Err(s3_error!(AccessDenied, "Access Denied"));
            }
            version_ref(o.version_id.as_deref())
        })
        .collect();
    let deletions = objects
        .iter()
        .zip(&versions)
        .filter_map(|(o, v)| {
            Some(Deletion {
                key: o.key.clone(),
                version: *v.as_ref().ok()?,
                if_match: o.e_tag.as_ref().map(|e| e.value().to_owned()),
                marker: VersionId(cairn_node::random::random()),
                bypass_governance: bypass_asked
                    && decider.allows("s3:BypassGovernanceRetention", Some(&o.key), None),
            })
        })
        .collect::<Vec<_>>();
    let sent = deletions.len();
    // One command for the whole batch: one commit, not one per key.
    // A batch the group could not take at all fails as a whole.
    let mut each = match gw
        .meta
        .data(Command::DeleteObjects {
            bucket: bucket.id,
            deletions,
            now_ms: now_ms(),
            owner: who.writer(&bucket),
        })
        .await?
    {
        Outcome::Deleted(each) if each.len() == sent => each.into_iter(),
        other => {
            outcome(other)?;
            return Err(s3_error!(InternalError));
        }
    };
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for (o, v) in objects.into_iter().zip(versions) {
        let result = match v {
            Err(e) => Err(e),
            Ok(_) => {
                let one = each.next().expect("one outcome per deletion sent");
                let removed = match &one {
                    Outcome::Removed {
                        version_id,
                        delete_marker,
                    } => Some((version_id.clone(), *delete_marker)),
                    _ => None,
                };
                outcome(one).map(|()| removed)
            }
        };
        match result {
            Ok(_) if quiet => {}
            Ok(removed) => {
                let (version_id, marker_made, was_marker) = match (&o.version_id, removed) {
                    // A named version was removed (maybe a delete marker).
                    (Some(v), Some((_, m))) => (Some(v.clone()), false, m),
                    (Some(v), None) => (Some(v.clone()), false, false),
                    // A delete marker was made.
                    (None, Some((id, true))) => (id, true, false),
                    (None, _) => (None, false, false),
                };
                deleted.push(DeletedObject {
                    key: Some(o.key),
                    delete_marker: (marker_made || was_marker).then_some(true),
                    delete_marker_version_id: if marker_made || was_marker {
                        version_id.clone()
                    } else {
                        None
                    },
                    version_id: if marker_made { None } else { version_id },
                })
            }
            Err(s3) => errors.push(Error {
                key: Some(o.key),
                version_id: o.version_id,
                code: Some(s3.code().as_str().to_owned()),
                message: s3.message().map(str::to_owned),
            }),
        }
    }
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

/// Resolve and authorise an `x-amz-copy-source`, check its preconditions,
/// and return `(bucket, key, entry)` (shared by CopyObject and
/// UploadPartCopy).
pub(crate) async fn copy_source(
    gw: &Gateway,
    who: &Caller,
    source: &CopySource,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<(BucketRecord, String, ObjectEntry)> {
    let (src_bucket, src_key, src_version, action) = match source {
        CopySource::Bucket {
            bucket,
            key,
            version_id,
        } => (
            bucket.to_string(),
            key.to_string(),
            version_ref(version_id.as_deref())?,
            versioned("s3:GetObject", version_id.as_deref()),
        ),
        _ => {
            return Err(s3_error!(
                NotImplemented,
                "Access point copy sources are not supported"
            ));
        }
    };
    let src_bucket = who
        .object(gw, &src_bucket, &action, &src_key, src_version)
        .await?;
    // A delete marker cannot be copied: 400 InvalidRequest, as in S3,
    // when it is named; NoSuchKey when it is the latest.
    let src = match object_version(gw, &src_bucket, &src_key, src_version).await {
        Err(e) if *e.code() == s3s::S3ErrorCode::MethodNotAllowed => {
            return Err(s3_error!(
                InvalidRequest,
                "The source of a copy request may not specifically refer to a delete marker by version id."
            ));
        }
        other => other?,
    };
    if let Some(m) = if_match
        && !etag_matches(m, &src.etag)
    {
        return Err(precondition_failed());
    }
    if let Some(m) = if_none_match
        && etag_matches(m, &src.etag)
    {
        return Err(precondition_failed());
    }
    Ok((src_bucket, src_key, src))
}

/// The destination condition of a CopyObject (`If-Match` / `If-None-Match`
/// headers, which `s3s` does not parse for it).
fn copy_condition(headers: &http::HeaderMap) -> S3Result<Option<Condition>> {
    let parse = |name: &str| -> S3Result<Option<ETagCondition>> {
        let Some(v) = headers.get(name) else {
            return Ok(None);
        };
        let v = v
            .to_str()
            .map_err(|_| s3_error!(InvalidArgument, "Invalid {name} header"))?
            .trim();
        Ok(Some(if v == "*" {
            ETagCondition::Any
        } else {
            ETagCondition::ETag(etag(v.trim_matches('"')))
        }))
    };
    write_condition(
        parse("if-match")?.as_ref(),
        parse("if-none-match")?.as_ref(),
    )
}

pub(super) async fn copy(
    gw: &Gateway,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let who = Caller::of(&req);
    let condition = copy_condition(&req.headers)?;
    let input = req.input;
    let bucket = who
        .object(gw, &input.bucket, "s3:PutObject", &input.key, None)
        .await?;
    let (src_bucket, src_key, src) = copy_source(
        gw,
        &who,
        &input.copy_source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
    )
    .await?;
    let replace = input
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    // Copying a version onto its own key makes it the latest again (how
    // S3 restores an earlier version); copying the latest onto itself
    // must change something.
    let names_version = matches!(
        &input.copy_source,
        CopySource::Bucket {
            version_id: Some(_),
            ..
        }
    );
    if !replace && !names_version && src_bucket.id == bucket.id && src_key == input.key {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    if src.size > MAX_COPY_SOURCE_BYTES {
        return Err(s3_error!(
            InvalidRequest,
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
        ));
    }
    let mut rec = src.clone();
    rec.version = VersionId(cairn_node::random::random());
    (rec.owner, rec.grants) = acl::written_acl!(gw, &bucket, &who.writer(&bucket), input).await?;
    // Object Lock settings and ACLs are not copied (the copy gets what
    // the request asks, or the destination's defaults); tags are.
    (rec.retention, rec.legal_hold) = super::lock::requested(
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )?;
    match input.tagging_directive.as_ref().map(|d| d.as_str()) {
        None | Some(TaggingDirective::COPY) => {}
        Some(TaggingDirective::REPLACE) => {
            rec.tags = super::tagging::from_header(input.tagging.as_deref())?;
        }
        Some(_) => {
            return Err(s3_error!(InvalidArgument, "Unknown tagging directive."));
        }
    }
    let referrer = Referrer::Object {
        bucket: bucket.id,
        key: input.key.clone(),
        version: rec.version,
    };
    rec.last_modified_ms = now_ms();
    // The copy shares the source's chunks (content addressing makes that
    // free) but owns its chunk list: the source's parts go with the source.
    if let ObjectData::Chunks { segments, .. } = &mut rec.data {
        let mut chunks = Vec::new();
        for s in segments.iter() {
            chunks.extend(
                gw.data
                    .segment_chunks(src_bucket.id, s.chunks.clone())
                    .await?,
            );
        }
        *segments = vec![Segment {
            len: src.size,
            chunks: SegmentChunks::Here(chunks),
        }];
    }
    if replace {
        let std = standard_headers(
            input.content_type.map(|c| c.to_string()),
            input.cache_control,
            input.content_disposition,
            input.content_encoding,
            input.content_language,
            input.expires.as_ref(),
            input.metadata,
        )?;
        rec.content_type = std.content_type;
        rec.headers = std.headers;
        rec.user_metadata = std.user_metadata;
    }
    // The copy references the source's chunks before it commits; a chunk
    // the collector already took means the source is gone.
    let chunks: Vec<(cairn::id::ChunkId, u64)> = match &rec.data {
        ObjectData::Chunks {
            profile, segments, ..
        } => segments
            .iter()
            .filter_map(|s| match &s.chunks {
                SegmentChunks::Here(c) => Some(c),
                SegmentChunks::Part { .. } => None,
            })
            .flatten()
            .map(|c| (c.id, profile.stored_len(c.len as usize)))
            .collect(),
        ObjectData::Inline(_) => Vec::new(),
    };
    let session = if chunks.is_empty() {
        None
    } else {
        let s = WriteSession::begin(gw.meta.clone(), referrer, &input.key).await?;
        s.reference_all(&chunks, true).await?;
        Some(s)
    };
    let expiration = super::lifecycle::expiration(gw, bucket.id, &input.key, &rec).await;
    let commit = Command::PutObject {
        bucket: bucket.id,
        key: input.key,
        entry: rec.clone(),
        condition,
    };
    let committed = commit_written(gw, session.as_deref(), commit).await?;
    let version_id = written_version(&committed);
    outcome(committed)?;
    let f = checksum_fields(rec.checksum.as_ref());
    Ok(S3Response::new(CopyObjectOutput {
        expiration,
        version_id,
        copy_source_version_id: (!src.null_version).then(|| src.version_id()),
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(etag(&rec.etag)),
            last_modified: Some(timestamp(rec.last_modified_ms)),
            checksum_crc32: f.crc32,
            checksum_crc32c: f.crc32c,
            checksum_crc64nvme: f.crc64nvme,
            checksum_sha1: f.sha1,
            checksum_sha256: f.sha256,
            checksum_type: f.kind,
        }),
        ..Default::default()
    }))
}
