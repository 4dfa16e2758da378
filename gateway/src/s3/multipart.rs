//! Multipart uploads: Create, UploadPart, Complete, Abort, ListParts,
//! ListMultipartUploads.

use super::object::{
    ChecksumFields, checksum_fields, copy_source, etag, object_key, standard_headers,
};
use super::upload::{checksum_request, receive};
use super::{authorized_bucket, caller, now_ms, timestamp};
use crate::checksum::{self, Algorithm};
use crate::state::Gateway;
use cairn::record::{
    self, ChecksumKind, ChunkRef, MetaKey, ObjectData, ObjectRecord, PartRecord, StoredChecksum,
    Table, UploadRecord,
};
use futures::StreamExt;
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// Parts are numbered 1..=10,000 (S3's limit).
pub const MAX_PART_NUMBER: i32 = 10_000;
/// Every part but the last must be at least 5 MiB (S3's limit).
pub const MIN_PART_SIZE_BYTES: u64 = 5 << 20;
/// Largest part (S3's limit).
pub const MAX_PART_SIZE_BYTES: u64 = 5 << 30;
/// Part records read at once when completing an upload.
pub const COMPLETE_READ_CONCURRENCY: usize = 32;

fn upload_key(bucket: &str, key: &str, upload_id: &str) -> MetaKey {
    MetaKey::new(Table::Uploads, bucket, format!("{key}\0{upload_id}"))
}

fn part_key(upload_id: &str, part: i32) -> MetaKey {
    MetaKey::new(Table::Parts, upload_id, format!("{part:05}"))
}

async fn upload_record(
    gw: &Gateway,
    bucket: &str,
    key: &str,
    upload_id: &str,
) -> S3Result<UploadRecord> {
    gw.meta
        .get::<UploadRecord>(&upload_key(bucket, key, upload_id))
        .await?
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
    let who = caller(&req)?;
    let input = req.input;
    authorized_bucket(gw, &who, &input.bucket).await?;
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
    let std = standard_headers(
        input.content_type.map(|c| c.to_string()),
        input.cache_control,
        input.content_disposition,
        input.content_encoding,
        input.content_language,
        input.expires.as_ref(),
        input.metadata,
    )?;
    let upload_id = hex::encode(rand::random::<[u8; 16]>());
    let rec = UploadRecord {
        bucket: input.bucket.clone(),
        key: input.key.clone(),
        upload_id: upload_id.clone(),
        initiated_ms: now_ms(),
        owner: who,
        content_type: std.content_type,
        headers: std.headers,
        user_metadata: std.user_metadata,
        checksum_algorithm: algorithm.map(|a| a.name().to_owned()),
        checksum_kind: kind,
    };
    gw.meta
        .put(upload_key(&input.bucket, &input.key, &upload_id), &rec)
        .await?;
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
    let who = caller(&req)?;
    let request = checksum_request(&req.headers)?;
    let trailers = req.trailing_headers.clone();
    let input = req.input;
    authorized_bucket(gw, &who, &input.bucket).await?;
    if !(1..=MAX_PART_NUMBER).contains(&input.part_number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    upload_record(gw, &input.bucket, &input.key, &input.upload_id).await?;
    let (written, checksum) = receive(
        gw,
        input.body,
        &request,
        trailers.as_ref(),
        MAX_PART_SIZE_BYTES,
        false,
        input.content_length.map(|l| l.max(0) as u64),
    )
    .await?;
    let (etag_hex, _, f) =
        commit_part(gw, &input.upload_id, input.part_number, written, checksum).await?;
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

/// Record an uploaded part; returns its ETag, time and checksum fields.
async fn commit_part(
    gw: &Gateway,
    upload_id: &str,
    part_number: i32,
    written: crate::data::Written,
    checksum: Option<StoredChecksum>,
) -> S3Result<(String, u64, ChecksumFields)> {
    let etag_hex = hex::encode(written.md5);
    let rec = PartRecord {
        part_number: part_number as u32,
        size: written.size,
        etag: etag_hex.clone(),
        last_modified_ms: now_ms(),
        checksum,
        data: written.data,
    };
    gw.meta.put(part_key(upload_id, part_number), &rec).await?;
    Ok((
        etag_hex,
        rec.last_modified_ms,
        checksum_fields(rec.checksum.as_ref()),
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
    let who = caller(&req)?;
    let input = req.input;
    authorized_bucket(gw, &who, &input.bucket).await?;
    if !(1..=MAX_PART_NUMBER).contains(&input.part_number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    let upload = upload_record(gw, &input.bucket, &input.key, &input.upload_id).await?;
    let (_, _, src) = copy_source(
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
    let body = gw.data.read_range(&src.data, range).await?;
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
        )
        .await?;
    let checksum = written.checksum.as_ref().map(|(a, raw)| StoredChecksum {
        algorithm: a.name().to_owned(),
        value: checksum::b64(raw),
        kind: ChecksumKind::FullObject,
    });
    let (etag_hex, last_modified_ms, f) =
        commit_part(gw, &input.upload_id, input.part_number, written, checksum).await?;
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
    let who = caller(&req)?;
    let input = req.input;
    authorized_bucket(gw, &who, &input.bucket).await?;
    let upload = upload_record(gw, &input.bucket, &input.key, &input.upload_id).await?;
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
    let records: Vec<S3Result<Option<PartRecord>>> = futures::stream::iter(numbers.clone())
        .map(|n| async move {
            gw.meta
                .get::<PartRecord>(&part_key(upload_id, n))
                .await
                .map_err(Into::into)
        })
        .buffered(COMPLETE_READ_CONCURRENCY)
        .collect()
        .await;
    let invalid_part = || {
        s3_error!(
            InvalidPart,
            "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
        )
    };
    let mut parts = Vec::with_capacity(records.len());
    for (asked, rec) in requested.iter().zip(records) {
        let rec = rec?.ok_or_else(invalid_part)?;
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
    let mut chunks: Vec<ChunkRef> = Vec::new();
    let mut profile = None;
    for p in &parts {
        md5s.update(hex::decode(&p.etag).unwrap_or_default());
        match &p.data {
            ObjectData::Chunks { chunks: c, .. } if c.is_empty() => {}
            ObjectData::Chunks {
                profile: pp,
                chunks: c,
                ..
            } => {
                if profile.is_some_and(|x| x != *pp) {
                    return Err(s3_error!(
                        InternalError,
                        "Parts were written with different erasure profiles"
                    ));
                }
                profile = Some(*pp);
                chunks.extend_from_slice(c);
            }
            ObjectData::Inline(bytes) if bytes.is_empty() => {}
            ObjectData::Inline(_) => return Err(s3_error!(InternalError, "inline part data")),
        }
    }
    let etag_value = format!("{}-{}", hex::encode(md5s.finalize()), parts.len());
    let size: u64 = parts.iter().map(|p| p.size).sum();
    let data = match profile {
        Some(profile) => ObjectData::Chunks {
            codec: cairn::codec::CodecId::ReedSolomonGf8,
            profile,
            chunks,
        },
        None => ObjectData::Inline(Vec::new()),
    };
    let rec = ObjectRecord {
        size,
        etag: etag_value.clone(),
        last_modified_ms: now_ms(),
        content_type: upload.content_type.clone(),
        headers: upload.headers.clone(),
        user_metadata: upload.user_metadata.clone(),
        checksum: checksum.clone(),
        part_sizes: parts.iter().map(|p| p.size).collect(),
        data,
    };
    gw.meta
        .put(object_key(&input.bucket, &input.key), &rec)
        .await?;
    // The upload is over: its records go; their chunks now belong to the object.
    gw.meta
        .delete(upload_key(&input.bucket, &input.key, &input.upload_id))
        .await?;
    let upload_id = input.upload_id.clone();
    futures::stream::iter(1..=MAX_PART_NUMBER)
        .filter(|n| std::future::ready(numbers.contains(n)))
        .for_each_concurrent(COMPLETE_READ_CONCURRENCY, |n| {
            let key = part_key(&upload_id, n);
            async move {
                if let Err(e) = gw.meta.delete(key).await {
                    tracing::warn!(error = %e, "part record cleanup failed");
                }
            }
        })
        .await;
    let f: ChecksumFields = checksum_fields(checksum.as_ref());
    Ok(S3Response::new(CompleteMultipartUploadOutput {
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

/// All part records of an upload, in order (bounded by 10,000 parts).
async fn all_parts(
    gw: &Gateway,
    upload_id: &str,
    after: Option<i32>,
    limit: usize,
) -> S3Result<(Vec<PartRecord>, bool)> {
    let (parts, truncated) = gw
        .meta
        .scan_all::<PartRecord>(
            Table::Parts,
            upload_id,
            after.map(|n| format!("{n:05}")),
            limit,
        )
        .await?;
    Ok((parts.into_iter().map(|(_, p)| p).collect(), truncated))
}

pub(super) async fn abort(
    gw: &Gateway,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let who = caller(&req)?;
    let input = req.input;
    authorized_bucket(gw, &who, &input.bucket).await?;
    upload_record(gw, &input.bucket, &input.key, &input.upload_id).await?;
    gw.meta
        .delete(upload_key(&input.bucket, &input.key, &input.upload_id))
        .await?;
    let (parts, _) = all_parts(gw, &input.upload_id, None, MAX_PART_NUMBER as usize).await?;
    futures::stream::iter(parts)
        .for_each_concurrent(COMPLETE_READ_CONCURRENCY, |p| {
            let key = part_key(&input.upload_id, p.part_number as i32);
            async move {
                if let Err(e) = gw.meta.delete(key).await {
                    tracing::warn!(error = %e, "part record cleanup failed");
                }
            }
        })
        .await;
    Ok(S3Response::with_status(
        AbortMultipartUploadOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn list_parts(
    gw: &Gateway,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let who = caller(&req)?;
    let input = req.input;
    authorized_bucket(gw, &who, &input.bucket).await?;
    let upload = upload_record(gw, &input.bucket, &input.key, &input.upload_id).await?;
    let max = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
    let (parts, truncated) = all_parts(gw, &input.upload_id, input.part_number_marker, max).await?;
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
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(input.bucket),
        key: Some(input.key),
        upload_id: Some(input.upload_id),
        max_parts: Some(max as i32),
        part_number_marker: input.part_number_marker,
        next_part_number_marker: if truncated { next } else { None },
        is_truncated: Some(truncated),
        parts: Some(parts),
        owner: Some(owner),
        checksum_algorithm: upload.checksum_algorithm.map(ChecksumAlgorithm::from),
        checksum_type: checksum_type(upload.checksum_kind),
        ..Default::default()
    }))
}

pub(super) async fn list_uploads(
    gw: &Gateway,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let who = caller(&req)?;
    let input = req.input;
    authorized_bucket(gw, &who, &input.bucket).await?;
    let max = input.max_uploads.unwrap_or(1000).clamp(0, 1000) as usize;
    let prefix = input.prefix.clone().unwrap_or_default();
    let mut cursor = input
        .key_marker
        .as_ref()
        .map(|k| match &input.upload_id_marker {
            Some(u) => format!("{k}\0{u}"),
            None => format!("{k}\0{}", char::MAX),
        });
    let mut uploads = Vec::new();
    let mut truncated = false;
    'scan: loop {
        let page = gw
            .meta
            .scan(
                Table::Uploads,
                &input.bucket,
                &prefix,
                cursor.as_deref(),
                cairn::rpc::MAX_SCAN_LIMIT,
            )
            .await?;
        for (_, bytes) in page.entries {
            if uploads.len() == max {
                truncated = true;
                break 'scan;
            }
            uploads.push(
                record::decode::<UploadRecord>("upload record", &bytes)
                    .map_err(crate::error::Error::from)?,
            );
        }
        match page.next_after {
            Some(n) => cursor = Some(n),
            None => break,
        }
    }
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
            owner: Some(super::owner(&u.owner)),
            checksum_algorithm: u.checksum_algorithm.map(ChecksumAlgorithm::from),
            checksum_type: checksum_type(u.checksum_kind),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
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
    }))
}
