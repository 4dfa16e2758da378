//! Multipart uploads: Create, UploadPart, Complete, Abort, ListParts,
//! ListMultipartUploads.

use super::access::Caller;
use super::acl;
use super::object::{
    ChecksumFields, checksum_fields, copy_source, etag, standard_headers, write_condition,
};
use super::upload::{BodyLimits, checksum_request, receive};
use super::{now_ms, outcome, timestamp};
use crate::checksum::{self, Algorithm};
use crate::data::WrittenData;
use crate::state::Gateway;
use cairn::command::{Command, CompletedPart as Completed};
use cairn::record::{
    self, BucketRecord, ChecksumKind, GroupId, ObjectData, ObjectEntry, PartRecord, Referrer,
    Segment, SegmentChunks, StoredChecksum, Table, UploadRecord, VersionId, keys,
};
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// Parts are numbered 1..=10,000 (S3's limit).
pub const MAX_PART_NUMBER: i32 = 10_000;
/// Every part but the last must be at least 5 MiB (S3's limit).
pub const MIN_PART_SIZE_BYTES: u64 = 5 << 20;
/// Largest part (S3's limit).
pub const MAX_PART_SIZE_BYTES: u64 = 5 << 30;

fn group_of(gw: &Gateway, bucket: &BucketRecord) -> S3Result<GroupId> {
    Ok(gw
        .meta
        .client
        .bucket_group(bucket.id)
        .map_err(crate::error::Error::from)?)
}

async fn upload_record(
    gw: &Gateway,
    bucket: &BucketRecord,
    key: &str,
    upload_id: &str,
) -> S3Result<UploadRecord> {
    gw.meta
        .client
        .get::<UploadRecord>(group_of(gw, bucket)?, &keys::upload(bucket.id, key, upload_id))
        .await
        .map_err(crate::error::Error::from)?
        .ok_or_else(|| {
            s3_error!(
                NoSuchUpload,
                "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
            )
        })
}

fn checksum_type(kind: Option<ChecksumKind>) -> Option<ChecksumType> {
    kind.map(|k| {
        ChecksumType::from(
            match k {
                ChecksumKind::FullObject => ChecksumType::FULL_OBJECT,
                ChecksumKind::Composite => ChecksumType::COMPOSITE,
            }
            .to_owned(),
        )
    })
}

pub(super) async fn create(
    gw: &Gateway,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who
        .object(gw, &input.bucket, "s3:PutObject", &input.key, None)
        .await?;
    let algorithm = input
        .checksum_algorithm
        .as_ref()
        .map(|a| {
            Algorithm::parse(a.as_str()).ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "Checksum algorithm {} is not supported.",
                    a.as_str()
                )
            })
        })
        .transpose()?;
    let kind = match (
        input.checksum_type.as_ref().map(|t| t.as_str().to_owned()),
        algorithm,
    ) {
        (Some(t), Some(a)) if t == ChecksumType::FULL_OBJECT => {
            if !a.supports_full_object() {
                return Err(s3_error!(
                    InvalidRequest,
                    "The FULL_OBJECT checksum type cannot be used with the {} checksum algorithm.",
                    a.name()
                ));
            }
            Some(ChecksumKind::FullObject)
        }
        (Some(t), Some(a)) if t == ChecksumType::COMPOSITE => {
            if a == Algorithm::Crc64Nvme {
                return Err(s3_error!(
                    InvalidRequest,
                    "The COMPOSITE checksum type cannot be used with the CRC64NVME checksum algorithm."
                ));
            }
            Some(ChecksumKind::Composite)
        }
        (Some(_), None) => {
            return Err(s3_error!(
                InvalidRequest,
                "x-amz-checksum-type requires x-amz-checksum-algorithm"
            ));
        }
        (Some(t), Some(_)) => return Err(s3_error!(InvalidRequest, "Unknown checksum type {t}")),
        // AWS's defaults: CRC64NVME is full-object only, the rest composite.
        (None, Some(Algorithm::Crc64Nvme)) => Some(ChecksumKind::FullObject),
        (None, Some(_)) => Some(ChecksumKind::Composite),
        (None, None) => None,
    };
    let (retention, legal_hold) = super::lock::requested(
        input.object_lock_mode.as_ref(),
        input.object_lock_retain_until_date.as_ref(),
        input.object_lock_legal_hold_status.as_ref(),
    )?;
    let std = standard_headers(
        input.content_type.map(|c| c.to_string()),
        input.cache_control,
        input.content_disposition,
        input.content_encoding,
        input.content_language,
        input.expires.as_ref(),
        input.metadata,
    )?;
    let (owner, grants) = acl::written_acl!(gw, &bucket, &who.writer(&bucket), input).await?;
    let upload_id = hex::encode(cairn_node::random::random::<[u8; 16]>());
    let rec = UploadRecord {
        key: input.key.clone(),
        upload_id: upload_id.clone(),
        initiated_ms: now_ms(),
        owner,
        content_type: std.content_type,
        headers: std.headers,
        user_metadata: std.user_metadata,
        checksum_algorithm: algorithm.map(|a| a.name().to_owned()),
        checksum_kind: kind,
        tags: super::tagging::from_header(input.tagging.as_deref())?,
        retention,
        legal_hold,
        grants,
    };
    outcome(
        gw.meta
            .data(Command::CreateUpload {
                bucket: bucket.id,
                record: rec,
            })
            .await?,
    )?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(upload_id),
        checksum_algorithm: input.checksum_algorithm,
        checksum_type: checksum_type(kind),
        ..Default::default()
    }))
}

pub(super) async fn upload_part(
    gw: &Gateway,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let who = Caller::of(&req);
    super::upload::require_length(&req.headers)?;
    let request = checksum_request(&req.headers)?;
    let trailers = req.trailing_headers.clone();
    let input = req.input;
    let bucket = who
        .object(gw, &input.bucket, "s3:PutObject", &input.key, None)
        .await?;
    if !(1..=MAX_PART_NUMBER).contains(&input.part_number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    upload_record(gw, &bucket, &input.key, &input.upload_id).await?;
    let referrer = part_referrer(&bucket, &input.upload_id, input.part_number);
    let (written, checksum) = receive(
        gw,
        input.body,
        &request,
        trailers.as_ref(),
        BodyLimits {
            max_len: MAX_PART_SIZE_BYTES,
            allow_inline: false,
            size_hint: input.content_length.map(|l| l.max(0) as u64),
        },
        (referrer.clone(), &input.key),
    )
    .await?;
    let (etag_hex, _, f) =
        commit_part(gw, &bucket, &input.key, &referrer, written, checksum).await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(etag(&etag_hex)),
        checksum_crc32: f.crc32,
        checksum_crc32c: f.crc32c,
        checksum_crc64nvme: f.crc64nvme,
        checksum_sha1: f.sha1,
        checksum_sha256: f.sha256,
        ..Default::default()
    }))
}

/// The referrer of a part upload: a new writer id for every upload of it.
fn part_referrer(bucket: &BucketRecord, upload_id: &str, part_number: i32) -> Referrer {
    Referrer::Part {
        bucket: bucket.id,
        upload_id: upload_id.to_owned(),
        part_number: part_number as u32,
        version: VersionId(cairn_node::random::random()),
    }
}

/// Record an uploaded part (if its upload still exists); returns its ETag,
/// time and checksum fields.
async fn commit_part(
    gw: &Gateway,
    bucket: &BucketRecord,
    key: &str,
    referrer: &Referrer,
    written: crate::data::Written,
    checksum: Option<StoredChecksum>,
) -> S3Result<(String, u64, ChecksumFields)> {
    let Referrer::Part {
        upload_id,
        part_number,
        version,
        ..
    } = referrer
    else {
        unreachable!("parts are committed with a part referrer")
    };
    let session = written.session.clone();
    let etag_hex = hex::encode(written.md5);
    let (profile, chunks) = match written.data {
        WrittenData::Chunks { profile, chunks } => (profile, chunks),
        WrittenData::Inline(_) => unreachable!("parts are written with allow_inline = false"),
    };
    let rec = PartRecord {
        version: *version,
        part_number: *part_number,
        size: written.size,
        etag: etag_hex.clone(),
        last_modified_ms: now_ms(),
        checksum,
        chunks,
        profile,
    };
    let last_modified_ms = rec.last_modified_ms;
    let checksum = rec.checksum.clone();
    let commit = Command::PutPart {
        bucket: bucket.id,
        key: key.to_owned(),
        upload_id: upload_id.to_owned(),
        record: rec,
    };
    outcome(super::object::commit_written(gw, session.as_deref(), commit).await?)?;
    Ok((
        etag_hex,
        last_modified_ms,
        checksum_fields(checksum.as_ref()),
    ))
}

/// Parse `x-amz-copy-source-range: bytes=FIRST-LAST` against a source of
/// `size` bytes.
fn copy_range(range: Option<&str>, size: u64) -> S3Result<std::ops::Range<u64>> {
    let Some(range) = range else {
        return Ok(0..size);
    };
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy"
        )
    };
    let (first, last) = range
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .ok_or_else(bad)?;
    let first: u64 = first.trim().parse().map_err(|_| bad())?;
    let last: u64 = last.trim().parse().map_err(|_| bad())?;
    if first > last {
        return Err(bad());
    }
    if last >= size {
        return Err(s3_error!(
            InvalidRange,
            "The requested range is not satisfiable"
        ));
    }
    Ok(first..last + 1)
}

pub(super) async fn upload_part_copy(
    gw: &Gateway,
    req: S3Request<UploadPartCopyInput>,
) -> S3Result<S3Response<UploadPartCopyOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who
        .object(gw, &input.bucket, "s3:PutObject", &input.key, None)
        .await?;
    if !(1..=MAX_PART_NUMBER).contains(&input.part_number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    let upload = upload_record(gw, &bucket, &input.key, &input.upload_id).await?;
    let (src_bucket, _, src) = copy_source(
        gw,
        &who,
        &input.copy_source,
        input.copy_source_if_match.as_ref(),
        input.copy_source_if_none_match.as_ref(),
    )
    .await?;
    let range = copy_range(input.copy_source_range.as_deref(), src.size)?;
    if range.end - range.start > MAX_PART_SIZE_BYTES {
        return Err(s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed size"
        ));
    }
    // The bytes stream from the source's chunks (verified) into new chunks
    // of the part; chunks that line up with the source's dedup to nothing.
    let algorithm = upload
        .checksum_algorithm
        .as_deref()
        .and_then(Algorithm::parse);
    let range_len = range.end - range.start;
    let body = gw.data.read_range(src_bucket.id, &src.data, range).await?;
    let referrer = part_referrer(&bucket, &input.upload_id, input.part_number);
    let written = gw
        .data
        .write(
            body,
            crate::data::WriteOptions {
                algorithm,
                max_len: MAX_PART_SIZE_BYTES,
                allow_inline: false,
                size_hint: Some(range_len),
            },
            (referrer.clone(), &input.key),
        )
        .await?;
    let checksum = written.checksum.as_ref().map(|(a, raw)| StoredChecksum {
        algorithm: a.name().to_owned(),
        value: checksum::b64(raw),
        kind: ChecksumKind::FullObject,
    });
    let (etag_hex, last_modified_ms, f) =
        commit_part(gw, &bucket, &input.key, &referrer, written, checksum).await?;
    Ok(S3Response::new(UploadPartCopyOutput {
        copy_part_result: Some(CopyPartResult {
            e_tag: Some(etag(&etag_hex)),
            last_modified: Some(timestamp(last_modified_ms)),
            checksum_crc32: f.crc32,
            checksum_crc32c: f.crc32c,
            checksum_crc64nvme: f.crc64nvme,
            checksum_sha1: f.sha1,
            checksum_sha256: f.sha256,
        }),
        ..Default::default()
    }))
}

fn requested_checksum(input: &CompleteMultipartUploadInput) -> Option<(Algorithm, String)> {
    [
        (Algorithm::Crc32, &input.checksum_crc32),
        (Algorithm::Crc32c, &input.checksum_crc32c),
        (Algorithm::Crc64Nvme, &input.checksum_crc64nvme),
        (Algorithm::Sha1, &input.checksum_sha1),
        (Algorithm::Sha256, &input.checksum_sha256),
    ]
    .into_iter()
    .find_map(|(a, v)| v.clone().map(|v| (a, v)))
}

/// The object-level checksum of a completed upload, from its parts'.
fn combined_checksum(
    upload: &UploadRecord,
    parts: &[PartRecord],
) -> S3Result<Option<StoredChecksum>> {
    let (Some(name), Some(kind)) = (&upload.checksum_algorithm, upload.checksum_kind) else {
        return Ok(None);
    };
    let algorithm = Algorithm::parse(name).expect("stored algorithm names are valid");
    let mut raw_parts = Vec::with_capacity(parts.len());
    for p in parts {
        let raw = p
            .checksum
            .as_ref()
            .filter(|c| c.algorithm == name.as_str())
            .and_then(|c| checksum::unb64(&c.value))
            .ok_or_else(|| {
                s3_error!(
                    InvalidRequest,
                    "Part {} was not uploaded with the upload's {} checksum.",
                    p.part_number,
                    name
                )
            })?;
        raw_parts.push(raw);
    }
    let value = match kind {
        ChecksumKind::Composite => {
            let concat: Vec<u8> = raw_parts.concat();
            format!(
                "{}-{}",
                checksum::b64(&algorithm.digest(&concat)),
                parts.len()
            )
        }
        ChecksumKind::FullObject => {
            let mut acc = raw_parts[0].clone();
            for (raw, p) in raw_parts.iter().zip(parts).skip(1) {
                acc = algorithm
                    .combine_crc(&acc, raw, p.size)
                    .expect("full-object checksums are CRCs");
            }
            checksum::b64(&acc)
        }
    };
    Ok(Some(StoredChecksum {
        algorithm: name.clone(),
        value,
        kind,
    }))
}

pub(super) async fn complete(
    gw: &Gateway,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who
        .object(gw, &input.bucket, "s3:PutObject", &input.key, None)
        .await?;
    let condition = write_condition(input.if_match.as_ref(), input.if_none_match.as_ref())?;
    let upload = upload_record(gw, &bucket, &input.key, &input.upload_id).await?;
    let requested: Vec<CompletedPart> = input
        .multipart_upload
        .as_ref()
        .and_then(|m| m.parts.clone())
        .unwrap_or_default();
    if requested.is_empty() {
        return Err(s3_error!(
            MalformedXML,
            "You must specify at least one part"
        ));
    }
    if requested.len() > MAX_PART_NUMBER as usize {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    let mut numbers = Vec::with_capacity(requested.len());
    for p in &requested {
        let n = p
            .part_number
            .ok_or_else(|| s3_error!(MalformedXML, "A part has no PartNumber"))?;
        if numbers.last().is_some_and(|last| *last >= n) {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            ));
        }
        numbers.push(n);
    }
    let upload_id = input.upload_id.as_str();
    let group = group_of(gw, &bucket)?;
    let mut records: Vec<Option<PartRecord>> = Vec::with_capacity(numbers.len());
    for batch in numbers.chunks(cairn::rpc::MAX_META_BATCH) {
        let keys: Vec<_> = batch
            .iter()
            .map(|&n| keys::part(bucket.id, upload_id, n as u32))
            .collect();
        let values = gw
            .meta
            .client
            .get_many(group, keys)
            .await
            .map_err(crate::error::Error::from)?;
        for v in values {
            records.push(match v {
                Some(bytes) => Some(
                    record::decode::<PartRecord>("part record", &bytes)
                        .map_err(crate::error::Error::from)?,
                ),
                None => None,
            });
        }
    }
    let invalid_part = || {
        s3_error!(
            InvalidPart,
            "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
        )
    };
    let mut parts = Vec::with_capacity(records.len());
    for (asked, rec) in requested.iter().zip(records) {
        let rec = rec.ok_or_else(invalid_part)?;
        if let Some(e) = &asked.e_tag
            && e.value().trim_matches('"') != rec.etag
        {
            return Err(invalid_part());
        }
        parts.push(rec);
    }
    for p in &parts[..parts.len() - 1] {
        if p.size < MIN_PART_SIZE_BYTES {
            return Err(s3_error!(
                EntityTooSmall,
                "Your proposed upload is smaller than the minimum allowed object size."
            ));
        }
    }
    let checksum = combined_checksum(&upload, &parts)?;
    if let (Some((a, asked)), Some(c)) = (requested_checksum(&input), &checksum)
        && c.kind == ChecksumKind::FullObject
        && (a.name() != c.algorithm || asked.trim() != c.value)
    {
        return Err(s3_error!(
            BadDigest,
            "The {} you specified did not match the calculated checksum.",
            a.name()
        ));
    }
    let mut md5s = Md5::new();
    let mut profile = None;
    for p in &parts {
        md5s.update(hex::decode(&p.etag).unwrap_or_default());
        if let Some(pp) = p.profile {
            if profile.is_some_and(|x| x != pp) {
                return Err(s3_error!(
                    InternalError,
                    "Parts were written with different erasure profiles"
                ));
            }
            profile = Some(pp);
        }
    }
    let etag_value = format!("{}-{}", hex::encode(md5s.finalize()), parts.len());
    let size: u64 = parts.iter().map(|p| p.size).sum();
    let profile = match profile {
        Some(p) => p,
        None => gw.cluster.placement()?.layout.profile,
    };
    // The parts become the object's segments; the object owns them now.
    let data = ObjectData::Chunks {
        codec: cairn::codec::CodecId::ReedSolomonGf8,
        profile,
        segments: parts
            .iter()
            .map(|p| Segment {
                len: p.size,
                chunks: SegmentChunks::Part {
                    upload_id: upload_id.to_owned(),
                    part_number: p.part_number,
                },
            })
            .collect(),
    };
    let entry = ObjectEntry {
        version: VersionId(cairn_node::random::random()),
        size,
        etag: etag_value.clone(),
        last_modified_ms: now_ms(),
        content_type: upload.content_type.clone(),
        headers: upload.headers.clone(),
        user_metadata: upload.user_metadata.clone(),
        checksum: checksum.clone(),
        part_sizes: parts.iter().map(|p| p.size).collect(),
        data,
        seq: 0,
        null_version: false,
        owner: upload.owner.clone(),
        noncurrent_since_ms: None,
        tags: upload.tags.clone(),
        retention: upload.retention,
        legal_hold: upload.legal_hold,
        grants: upload.grants.clone(),
    };
    let expiration = super::lifecycle::expiration(gw, bucket.id, &input.key, &entry).await;
    // Applied atomically: the parts must still be what was read, the
    // condition must hold, and the upload and its unlisted parts go.
    let completed = gw
        .meta
        .data(Command::CompleteUpload {
            bucket: bucket.id,
            key: input.key.clone(),
            upload_id: upload_id.to_owned(),
            parts: parts
                .iter()
                .map(|p| Completed {
                    part_number: p.part_number,
                    etag: p.etag.clone(),
                    size: p.size,
                })
                .collect(),
            entry,
            condition,
        })
        .await?;
    let version_id = super::object::written_version(&completed);
    outcome(completed)?;
    let f: ChecksumFields = checksum_fields(checksum.as_ref());
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        expiration,
        version_id,
        bucket: Some(input.bucket.clone()),
        key: Some(input.key.clone()),
        e_tag: Some(etag(&etag_value)),
        location: Some(format!("/{}/{}", input.bucket, input.key)),
        checksum_crc32: f.crc32,
        checksum_crc32c: f.crc32c,
        checksum_crc64nvme: f.crc64nvme,
        checksum_sha1: f.sha1,
        checksum_sha256: f.sha256,
        checksum_type: f.kind,
        ..Default::default()
    }))
}

/// Part records of an upload after part `after`, in order: at most `limit`,
/// and whether more were left.
async fn all_parts(
    gw: &Gateway,
    bucket: &BucketRecord,
    upload_id: &str,
    after: Option<i32>,
    limit: usize,
) -> S3Result<(Vec<PartRecord>, bool)> {
    let prefix = keys::parts_prefix(upload_id);
    let (parts, truncated) = gw
        .meta
        .client
        .scan_all::<PartRecord>(
            group_of(gw, bucket)?,
            Table::Parts,
            &bucket.id.to_hex(),
            &prefix,
            after.map(|n| format!("{prefix}{n:05}")),
            limit,
        )
        .await
        .map_err(crate::error::Error::from)?;
    Ok((parts.into_iter().map(|(_, p)| p).collect(), truncated))
}

pub(super) async fn abort(
    gw: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who
        .object(
            gw,
            &input.bucket,
            "s3:AbortMultipartUpload",
            &input.key,
            None,
        )
        .await?;
    outcome(
        gw.meta
            .data(Command::AbortUpload {
                bucket: bucket.id,
                key: input.key,
                upload_id: input.upload_id,
            })
            .await?,
    )?;
    Ok(S3Response::with_status(
        AbortMultipartUploadOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn list_parts(
    gw: &Gateway,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    super::non_negative(input.max_parts, "max-parts")?;
    let bucket = who
        .object(
            gw,
            &input.bucket,
            "s3:ListMultipartUploadParts",
            &input.key,
            None,
        )
        .await?;
    let upload = upload_record(gw, &bucket, &input.key, &input.upload_id).await?;
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let (parts, truncated) =
        all_parts(gw, &bucket, &input.upload_id, input.part_number_marker, max).await?;
    let next = parts.last().map(|p| p.part_number as i32);
    let parts: Vec<Part> = parts
        .into_iter()
        .map(|p| {
            let f = checksum_fields(p.checksum.as_ref());
            Part {
                part_number: Some(p.part_number as i32),
                e_tag: Some(etag(&p.etag)),
                size: Some(p.size as i64),
                last_modified: Some(timestamp(p.last_modified_ms)),
                checksum_crc32: f.crc32,
                checksum_crc32c: f.crc32c,
                checksum_crc64nvme: f.crc64nvme,
                checksum_sha1: f.sha1,
                checksum_sha256: f.sha256,
            }
        })
        .collect();
    let owner = super::owner(&upload.owner);
    let mut resp = S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: if truncated { next } else { None },
        is_truncated: Some(truncated),
        parts: Some(parts),
        initiator: Some(Initiator {
            display_name: owner.display_name.clone(),
            id: owner.id.clone(),
        }),
        owner: Some(owner),
        checksum_algorithm: upload.checksum_algorithm.map(ChecksumAlgorithm::from),
        checksum_type: checksum_type(upload.checksum_kind),
        ..Default::default()
    });
    crate::headers::mark_listing(&mut resp.headers);
    Ok(resp)
}

pub(super) async fn list_uploads(
    gw: &Gateway,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    super::non_negative(input.max_uploads, "max-uploads")?;
    let bucket = who
        .bucket(gw, &input.bucket, "s3:ListBucketMultipartUploads")
        .await?;
    let group = group_of(gw, &bucket)?;
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let prefix = input.prefix.clone().unwrap_or_default();
    let cursor = input
        .key_marker
        .as_ref()
        .map(|k| match &input.upload_id_marker {
            Some(u) => format!("{k}\0{u}"),
            None => format!("{k}\0{}", char::MAX),
        });
    let (uploads, truncated) = gw
        .meta
        .client
        .scan_all::<UploadRecord>(
            group,
            Table::Uploads,
            &bucket.id.to_hex(),
            &prefix,
            cursor,
            max,
        )
        .await
        .map_err(crate::error::Error::from)?;
    let uploads: Vec<UploadRecord> = uploads.into_iter().map(|(_, u)| u).collect();
    let (next_key, next_id) = match (truncated, uploads.last()) {
        (true, Some(u)) => (Some(u.key.clone()), Some(u.upload_id.clone())),
        _ => (None, None),
    };
    let list = uploads
        .into_iter()
        .map(|u| MultipartUpload {
            key: Some(u.key),
            upload_id: Some(u.upload_id),
            initiated: Some(timestamp(u.initiated_ms)),
            // Whoever created an upload owns it: one identity for both.
            initiator: Some(Initiator {
                display_name: Some(u.owner.clone()),
                id: Some(u.owner.clone()),
            }),
            owner: Some(super::owner(&u.owner)),
            checksum_algorithm: u.checksum_algorithm.map(ChecksumAlgorithm::from),
            checksum_type: checksum_type(u.checksum_kind),
            ..Default::default()
        })
        .collect();
    let mut resp = S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(input.bucket),
        prefix: Some(prefix),
        key_marker: input.key_marker,
        upload_id_marker: input.upload_id_marker,
        next_key_marker: next_key,
        next_upload_id_marker: next_id,
        max_uploads: Some(max as i32),
        is_truncated: Some(truncated),
        uploads: Some(list),
        delimiter: input.delimiter,
        encoding_type: input.encoding_type,
        ..Default::default()
    });
    crate::headers::mark_listing(&mut resp.headers);
    Ok(resp)
}
