//! ListObjectsV2 and ListObjects: one ordered range scan of the bucket's
//! partition, rolled up into CommonPrefixes by delimiter.

use super::access::Caller;
use super::object::etag;
use super::timestamp;
use crate::state::Gateway;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cairn::command::versions::{VersionItem, VersionsFrom};
use cairn::record::{BucketRecord, ListEntry, VersionRef};
use cairn::rpc::{ListItem, MAX_SCAN_LIMIT};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// S3's default and largest page of a listing.
pub const MAX_KEYS: usize = 1000;

/// Sorts after every character a key can continue with, so that
/// `prefix + SKIP_ALL` skips everything under a common prefix.
const SKIP_ALL: char = char::MAX;

struct Listing {
    objects: Vec<ListEntry>,
    prefixes: Vec<String>,
    truncated: bool,
    last: Option<String>,
}

fn is_common_prefix(marker: &str, prefix: &str, delimiter: Option<&str>) -> bool {
    delimiter.is_some_and(|d| {
        !d.is_empty()
            && marker.len() > prefix.len()
            && marker.starts_with(prefix)
            && marker.ends_with(d)
    })
}

/// Up to `max_keys` objects and common prefixes of a bucket after
/// `marker`. The node rolls keys up into prefixes and skips past each
/// one, so a page costs one read of the bucket's group.
async fn list_entries(
    gw: &Gateway,
    bucket: &BucketRecord,
    prefix: &str,
    delimiter: Option<&str>,
    marker: Option<String>,
    max_keys: usize,
) -> S3Result<Listing> {
    assert!(max_keys <= MAX_KEYS);
    let delimiter = delimiter.filter(|d| !d.is_empty());
    let mut listing = Listing {
        objects: Vec::new(),
        prefixes: Vec::new(),
        truncated: false,
        last: None,
    };
    if max_keys == 0 {
        return Ok(listing);
    }
    // A marker that is a common prefix skips everything under it.
    let mut after = marker.map(|m| {
        if is_common_prefix(&m, prefix, delimiter) {
            format!("{m}{SKIP_ALL}")
        } else {
            m
        }
    });
    let mut count = 0usize;
    loop {
        let want = (max_keys - count).min(MAX_SCAN_LIMIT as usize) as u32;
        let (items, more) = gw
            .meta
            .client
            .list_objects(bucket.id, prefix, delimiter, after.as_deref(), want)
            .await
            .map_err(crate::error::Error::from)?;
        for item in items {
            count += 1;
            match item {
                ListItem::Prefix(cp) => {
                    after = Some(format!("{cp}{SKIP_ALL}"));
                    listing.last = Some(cp.clone());
                    listing.prefixes.push(cp);
                }
                ListItem::Object(e) => {
                    after = Some(e.key.clone());
                    listing.last = Some(e.key.clone());
                    listing.objects.push(e);
                }
            }
        }
        if !more {
            return Ok(listing);
        }
        if count == max_keys {
            listing.truncated = true;
            return Ok(listing);
        }
    }
}

/// Percent-encode as S3 does for `encoding-type=url`.
pub(crate) fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `s`, percent-encoded when the client asked for `encoding-type=url`.
fn encoded(url: bool, s: String) -> String {
    if url { url_encode(&s) } else { s }
}

fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must be non-negative")),
        Some(n) => Ok((n as usize).min(MAX_KEYS)),
        None => Ok(MAX_KEYS),
    }
}

fn encoding(e: Option<&EncodingType>) -> S3Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str().eq_ignore_ascii_case(EncodingType::URL) => Ok(true),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Invalid Encoding Method specified in Request"
        )),
    }
}

fn objects(listing: &Listing, url: bool, owner: Option<&Owner>) -> Vec<Object> {
    listing
        .objects
        .iter()
        .map(|rec| Object {
            key: Some(encoded(url, rec.key.clone())),
            last_modified: Some(timestamp(rec.last_modified_ms)),
            e_tag: Some(etag(&rec.etag)),
            size: Some(rec.size as i64),
            storage_class: Some(ObjectStorageClass::from(
                ObjectStorageClass::STANDARD.to_owned(),
            )),
            owner: owner.cloned(),
            ..Default::default()
        })
        .collect()
}

fn prefixes(listing: &Listing, url: bool) -> Vec<CommonPrefix> {
    listing
        .prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(encoded(url, p.clone())),
        })
        .collect()
}

pub(super) async fn list_v2(
    gw: &Gateway,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who.bucket(gw, &input.bucket, "s3:ListBucket").await?;
    let max = max_keys(input.max_keys)?;
    let url = encoding(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let marker = match &input.continuation_token {
        Some(token) => Some(
            URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    s3_error!(
                        InvalidArgument,
                        "The continuation token provided is incorrect"
                    )
                })?,
        ),
        None => input.start_after.clone().filter(|s| !s.is_empty()),
    };
    let listing = list_entries(
        gw,
        &bucket,
        &prefix,
        input.delimiter.as_deref(),
        marker,
        max,
    )
    .await?;
    let owner = input
        .fetch_owner
        .unwrap_or(false)
        .then(|| super::owner(&bucket.owner));
    let contents = objects(&listing, url, owner.as_ref());
    let common = prefixes(&listing, url);
    let next = listing
        .truncated
        .then(|| listing.last.as_ref().map(|l| URL_SAFE_NO_PAD.encode(l)))
        .flatten();
    let mut resp = S3Response::new(ListObjectsV2Output {
        name: Some(input.bucket),
        prefix: Some(encoded(url, prefix)),
        delimiter: input
            .delimiter
            .filter(|d| !d.is_empty())
            .map(|d| encoded(url, d)),
        max_keys: Some(max as i32),
        key_count: Some((contents.len() + common.len()) as i32),
        continuation_token: input.continuation_token,
        next_continuation_token: next,
        is_truncated: Some(listing.truncated),
        start_after: input.start_after.map(|s| encoded(url, s)),
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: (!common.is_empty()).then_some(common),
        ..Default::default()
    });
    crate::headers::mark_listing(&mut resp.headers);
    Ok(resp)
}

pub(super) async fn list_v1(
    gw: &Gateway,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who.bucket(gw, &input.bucket, "s3:ListBucket").await?;
    let max = max_keys(input.max_keys)?;
    let url = encoding(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let marker = input.marker.clone().filter(|m| !m.is_empty());
    let listing = list_entries(
        gw,
        &bucket,
        &prefix,
        input.delimiter.as_deref(),
        marker,
        max,
    )
    .await?;
    let owner = super::owner(&bucket.owner);
    let contents = objects(&listing, url, Some(&owner));
    let common = prefixes(&listing, url);
    let next_marker = listing
        .truncated
        .then(|| listing.last.clone().map(|l| encoded(url, l)))
        .flatten();
    // With `encoding-type=url`, ListObjects (V1) encodes its markers but
    // not its prefix, as S3 does (and as SDKs decode it).
    let mut resp = S3Response::new(ListObjectsOutput {
        name: Some(input.bucket),
        prefix: Some(prefix),
        delimiter: input
            .delimiter
            .filter(|d| !d.is_empty())
            .map(|d| encoded(url, d)),
        marker: Some(encoded(url, input.marker.unwrap_or_default())),
        next_marker,
        max_keys: Some(max as i32),
        is_truncated: Some(listing.truncated),
        encoding_type: input.encoding_type,
        contents: Some(contents),
        common_prefixes: (!common.is_empty()).then_some(common),
        ..Default::default()
    });
    crate::headers::mark_listing(&mut resp.headers);
    Ok(resp)
}

/// ListObjectVersions: every version and delete marker, keys in order and
/// each key's versions newest first, paged by key and version id markers.
pub(super) async fn list_versions(
    gw: &Gateway,
    req: S3Request<ListObjectVersionsInput>,
) -> S3Result<S3Response<ListObjectVersionsOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who
        .bucket(gw, &input.bucket, "s3:ListBucketVersions")
        .await?;
    let max = max_keys(input.max_keys)?;
    let url = encoding(input.encoding_type.as_ref())?;
    let prefix = input.prefix.clone().unwrap_or_default();
    let delimiter = input.delimiter.clone().filter(|d| !d.is_empty());
    let key_marker = input.key_marker.clone().filter(|m| !m.is_empty());
    let version_marker = input.version_id_marker.as_deref().filter(|v| !v.is_empty());
    let mut from = match (key_marker, version_marker) {
        (None, Some(_)) => {
            return Err(s3_error!(
                InvalidArgument,
                "A version-id marker cannot be specified without a key marker."
            ));
        }
        (None, None) => None,
        (Some(key), v) => Some(VersionsFrom {
            key,
            version: super::object::version_ref(v)?,
        }),
    };
    let mut versions = Vec::new();
    let mut markers = Vec::new();
    let mut common = Vec::new();
    let mut truncated = false;
    let mut last: Option<(String, Option<String>)> = None;
    let mut count = 0usize;
    while count < max {
        let want = (max - count).min(MAX_SCAN_LIMIT as usize) as u32;
        let (items, more) = gw
            .meta
            .client
            .list_versions(bucket.id, &prefix, delimiter.as_deref(), from.clone(), want)
            .await
            .map_err(crate::error::Error::from)?;
        for item in items {
            count += 1;
            match item {
                VersionItem::Prefix(cp) => {
                    from = Some(VersionsFrom {
                        key: cp.clone(),
                        version: None,
                    });
                    last = Some((cp.clone(), None));
                    common.push(CommonPrefix {
                        prefix: Some(encoded(url, cp)),
                    });
                }
                VersionItem::Version(v) => {
                    from = Some(VersionsFrom {
                        key: v.key.clone(),
                        version: VersionRef::parse(&v.version_id),
                    });
                    last = Some((v.key.clone(), Some(v.version_id.clone())));
                    let key = Some(encoded(url, v.key.clone()));
                    let owner = Some(super::owner(&v.owner));
                    let modified = Some(timestamp(v.entry.last_modified_ms));
                    if v.delete_marker {
                        markers.push(DeleteMarkerEntry {
                            is_latest: Some(v.is_latest),
                            key,
                            last_modified: modified,
                            owner,
                            version_id: Some(v.version_id),
                        });
                    } else {
                        versions.push(ObjectVersion {
                            key,
                            version_id: Some(v.version_id),
                            is_latest: Some(v.is_latest),
                            last_modified: modified,
                            e_tag: Some(etag(&v.entry.etag)),
                            size: Some(v.entry.size as i64),
                            storage_class: Some(ObjectVersionStorageClass::from(
                                ObjectVersionStorageClass::STANDARD.to_owned(),
                            )),
                            owner,
                            ..Default::default()
                        });
                    }
                }
            }
        }
        if !more {
            break;
        }
        if count == max {
            truncated = true;
        }
    }
    let (next_key_marker, next_version_id_marker) = match last.filter(|_| truncated) {
        Some((k, v)) => (Some(encoded(url, k)), v),
        None => (None, None),
    };
    let mut resp = S3Response::new(ListObjectVersionsOutput {
        name: Some(input.bucket),
        prefix: Some(encoded(url, prefix)),
        delimiter: input
            .delimiter
            .filter(|d| !d.is_empty())
            .map(|d| encoded(url, d)),
        key_marker: input.key_marker,
        version_id_marker: input.version_id_marker,
        next_key_marker,
        next_version_id_marker,
        max_keys: Some(max as i32),
        is_truncated: Some(truncated),
        encoding_type: input.encoding_type,
        versions: Some(versions),
        delete_markers: (!markers.is_empty()).then_some(markers),
        common_prefixes: (!common.is_empty()).then_some(common),
        ..Default::default()
    });
    crate::headers::mark_listing(&mut resp.headers);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_keeps_slashes_and_unreserved() {
        assert_eq!(url_encode("a b/c+d~é"), "a%20b/c%2Bd~%C3%A9");
    }

    #[test]
    fn common_prefix_markers() {
        assert!(is_common_prefix("photos/2024/", "photos/", Some("/")));
        assert!(!is_common_prefix("photos/", "photos/", Some("/")));
        assert!(!is_common_prefix("photos/a.jpg", "photos/", Some("/")));
        assert!(!is_common_prefix("photos/2024/", "photos/", None));
    }
}
