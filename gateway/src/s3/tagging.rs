//! Tags: an object version's (`x-amz-tagging` on PUT, copy and
//! CreateMultipartUpload; Put/Get/DeleteObjectTagging) and a bucket's
//! (Put/Get/DeleteBucketTagging), with S3's limits and errors.

use super::access::{Caller, versioned};
use super::object::{object_version, version_ref};
use super::outcome;
use crate::state::Gateway;
use cairn::command::{Command, Outcome};
use cairn::record::{ConfigKind, ObjectEntry};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// Most tags on an object version (S3's limit).
pub const MAX_OBJECT_TAGS: usize = 10;
/// Most tags on a bucket (S3's limit).
pub const MAX_BUCKET_TAGS: usize = 50;
/// Longest tag key, in Unicode characters (S3's limit).
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// Longest tag value, in Unicode characters (S3's limit).
pub const MAX_TAG_VALUE_CHARS: usize = 256;

/// Tags as stored: `(key, value)` in the order given.
pub(crate) type Tags = Vec<(String, String)>;

fn invalid_tag(message: &'static str) -> s3s::S3Error {
    s3s::S3Error::with_message(s3s::S3ErrorCode::InvalidTag, message)
}

/// The characters S3 allows in tags: letters, digits, white space and
/// `+ - = . _ : / @`.
fn allowed(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_alphanumeric() || c.is_whitespace() || "+-=._:/@".contains(c))
}

/// Check tags against S3's rules; at most `max` of them.
pub(crate) fn validate(tags: &Tags, max: usize) -> S3Result<()> {
    if tags.len() > max {
        return Err(if max == MAX_OBJECT_TAGS {
            let mut e = s3s::S3Error::with_message(
                s3s::S3ErrorCode::Custom("BadRequest".into()),
                "Object tags cannot be greater than 10",
            );
            e.set_status_code(http::StatusCode::BAD_REQUEST);
            e
        } else {
            invalid_tag("Bucket tag count cannot be greater than 50")
        });
    }
    let mut seen = std::collections::BTreeSet::new();
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > MAX_TAG_KEY_CHARS || !allowed(k) {
            return Err(invalid_tag("The TagKey you have provided is invalid"));
        }
        if v.chars().count() > MAX_TAG_VALUE_CHARS || !allowed(v) {
            return Err(invalid_tag("The TagValue you have provided is invalid"));
        }
        if k.starts_with("aws:") {
            return Err(invalid_tag("Your TagKey cannot be prefixed with aws:"));
        }
        if !seen.insert(k.as_str()) {
            return Err(invalid_tag(
                "Cannot provide multiple Tags with the same key",
            ));
        }
    }
    Ok(())
}

pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The tags of an `x-amz-tagging` header (URL query parameters),
/// validated.
pub(crate) fn from_header(h: Option<&str>) -> S3Result<Tags> {
    let Some(h) = h.filter(|h| !h.is_empty()) else {
        return Ok(Vec::new());
    };
    let bad = || {
        s3_error!(
            InvalidArgument,
            "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."
        )
    };
    let mut tags = Vec::new();
    for pair in h.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        tags.push((
            percent_decode(k).ok_or_else(bad)?,
            percent_decode(v).ok_or_else(bad)?,
        ));
    }
    let mut keys: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(bad());
    }
    validate(&tags, MAX_OBJECT_TAGS)?;
    Ok(tags)
}

fn from_set(set: TagSet, max: usize) -> S3Result<Tags> {
    let mut tags = Vec::with_capacity(set.len());
    for t in set {
        match (t.key, t.value) {
            (Some(k), Some(v)) => tags.push((k, v)),
            _ => {
                return Err(s3_error!(
                    MalformedXML,
                    "The XML you provided was not well-formed or did not validate against our published schema"
                ));
            }
        }
    }
    validate(&tags, max)?;
    Ok(tags)
}

fn to_set(tags: &Tags) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// `x-amz-tagging-count` of a GET.
pub(crate) fn count(e: &ObjectEntry) -> Option<i32> {
    (!e.tags.is_empty()).then_some(e.tags.len() as i32)
}

fn version_of(o: &Outcome) -> Option<String> {
    match o {
        Outcome::Versioned { version_id } if version_id != "null" => Some(version_id.clone()),
        _ => None,
    }
}

async fn set_tags(
    gw: &Gateway,
    who: &Caller,
    (bucket, action): (&str, &'static str),
    key: String,
    version_id: Option<&str>,
    tags: Tags,
) -> S3Result<Option<String>> {
    let version = version_ref(version_id)?;
    let action = versioned(action, version_id);
    let bucket = who.object(gw, bucket, &action, &key, version).await?;
    let o = gw
        .meta
        .data(Command::SetTags {
            bucket: bucket.id,
            key,
            version,
            tags,
        })
        .await?;
    let v = version_of(&o);
    outcome(o)?;
    Ok(v)
}

pub(super) async fn put_object(
    gw: &Gateway,
    req: S3Request<PutObjectTaggingInput>,
) -> S3Result<S3Response<PutObjectTaggingOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let tags = from_set(input.tagging.tag_set, MAX_OBJECT_TAGS)?;
    let version_id = set_tags(
        gw,
        &who,
        (&input.bucket, "s3:PutObjectTagging"),
        input.key,
        input.version_id.as_deref(),
        tags,
    )
    .await?;
    Ok(S3Response::new(PutObjectTaggingOutput { version_id }))
}

pub(super) async fn get_object(
    gw: &Gateway,
    req: S3Request<GetObjectTaggingInput>,
) -> S3Result<S3Response<GetObjectTaggingOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let asked = version_ref(input.version_id.as_deref())?;
    let action = versioned("s3:GetObjectTagging", input.version_id.as_deref());
    let bucket = who
        .object(gw, &input.bucket, &action, &input.key, asked)
        .await?;
    let e = object_version(gw, &bucket, &input.key, asked).await?;
    Ok(S3Response::new(GetObjectTaggingOutput {
        tag_set: to_set(&e.tags),
        version_id: (!e.null_version).then(|| e.version_id()),
    }))
}

pub(super) async fn delete_object(
    gw: &Gateway,
    req: S3Request<DeleteObjectTaggingInput>,
) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let version_id = set_tags(
        gw,
        &who,
        (&input.bucket, "s3:DeleteObjectTagging"),
        input.key,
        input.version_id.as_deref(),
        Vec::new(),
    )
    .await?;
    Ok(S3Response::with_status(
        DeleteObjectTaggingOutput { version_id },
        http::StatusCode::NO_CONTENT,
    ))
}

async fn set_bucket_tags(
    gw: &Gateway,
    who: &Caller,
    name: &str,
    tags: Option<Tags>,
) -> S3Result<()> {
    let bucket = who.bucket(gw, name, "s3:PutBucketTagging").await?;
    super::bucket::put_config(gw, &bucket, ConfigKind::Tagging, tags.as_ref()).await
}

pub(super) async fn put_bucket(
    gw: &Gateway,
    req: S3Request<PutBucketTaggingInput>,
) -> S3Result<S3Response<PutBucketTaggingOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let tags = from_set(input.tagging.tag_set, MAX_BUCKET_TAGS)?;
    set_bucket_tags(gw, &who, &input.bucket, Some(tags)).await?;
    Ok(S3Response::new(PutBucketTaggingOutput::default()))
}

pub(super) async fn get_bucket(
    gw: &Gateway,
    req: S3Request<GetBucketTaggingInput>,
) -> S3Result<S3Response<GetBucketTaggingOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:GetBucketTagging")
        .await?;
    let tags: Option<Tags> = gw
        .meta
        .bucket_config(bucket.id, ConfigKind::Tagging)
        .await?;
    let Some(tags) = tags else {
        return Err(s3_error!(NoSuchTagSet, "The TagSet does not exist"));
    };
    Ok(S3Response::new(GetBucketTaggingOutput {
        tag_set: to_set(&tags),
    }))
}

pub(super) async fn delete_bucket(
    gw: &Gateway,
    req: S3Request<DeleteBucketTaggingInput>,
) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
    let who = Caller::of(&req);
    set_bucket_tags(gw, &who, &req.input.bucket, None).await?;
    Ok(S3Response::with_status(
        DeleteBucketTaggingOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tagging_headers_parse_and_follow_s3s_rules() {
        assert_eq!(
            from_header(Some("a=1&b%20c=d+e&empty=")).unwrap(),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b c".to_owned(), "d e".to_owned()),
                ("empty".to_owned(), String::new()),
            ]
        );
        assert!(from_header(Some("a=1&a=2")).is_err());
        assert!(from_header(Some("a=%zz")).is_err());
        let eleven: Vec<String> = (0..11).map(|i| format!("k{i}=v")).collect();
        assert!(from_header(Some(&eleven.join("&"))).is_err());
        assert!(from_header(Some("aws:x=1")).is_err());
        assert!(from_header(Some(&format!("{}=v", "k".repeat(129)))).is_err());
        assert!(from_header(Some(&format!("k={}", "v".repeat(257)))).is_err());
        assert!(from_header(Some("k=a%3Cb")).is_err(), "< is not allowed");
        assert!(from_header(Some("k=é ü+-=._:/@")).is_ok());
    }
}
