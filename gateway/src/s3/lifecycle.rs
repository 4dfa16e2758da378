//! Bucket lifecycle configuration: Put/Get/DeleteBucketLifecycleConfiguration
//! with S3's validation. The rules live in the bucket's data group, where
//! the nodes' lifecycle worker applies them (`docs/design/lifecycle.md`).

use super::access::Caller;
use super::lock::ms_of;
use super::tagging::{MAX_OBJECT_TAGS, validate};
use super::{outcome, timestamp};
use crate::state::Gateway;
use cairn::command::Command;
use cairn::command::lifecycle::{MAX_RULES, expiry_of};
use cairn::record::{
    FilterForm, LifecycleConfig, LifecycleExpiration as Expiration, LifecycleFilter,
    LifecycleRule as Rule, NoncurrentExpiration,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// Longest rule id (S3's limit).
pub const MAX_ID_LEN: usize = 255;
/// Most newer noncurrent versions a rule may keep (S3's limit).
pub const MAX_NEWER_NONCURRENT: i32 = 100;
const DAY_MS: u64 = 86_400_000;

fn malformed() -> s3s::S3Error {
    s3_error!(
        MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema"
    )
}

fn positive(v: Option<i32>, message: &'static str) -> S3Result<u32> {
    match v {
        Some(d) if d > 0 => Ok(d as u32),
        _ => Err(s3s::S3Error::with_message(
            s3s::S3ErrorCode::InvalidArgument,
            message,
        )),
    }
}

fn tags_of(set: Option<TagSet>) -> S3Result<Vec<(String, String)>> {
    let mut tags = Vec::new();
    for t in set.unwrap_or_default() {
        match (t.key, t.value) {
            (Some(k), Some(v)) => tags.push((k, v)),
            _ => return Err(malformed()),
        }
    }
    if tags.len() > MAX_OBJECT_TAGS {
        return Err(s3_error!(
            InvalidRequest,
            "A lifecycle filter may name at most 10 tags."
        ));
    }
    let mut keys: Vec<&str> = tags.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(s3_error!(
            InvalidRequest,
            "Duplicate Tag Keys are not allowed."
        ));
    }
    validate(&tags, MAX_OBJECT_TAGS)?;
    Ok(tags)
}

fn size(v: Option<i64>) -> S3Result<Option<u64>> {
    match v {
        None => Ok(None),
        Some(s) if s >= 0 => Ok(Some(s as u64)),
        Some(_) => Err(s3_error!(
            InvalidArgument,
            "Object size filters must be non-negative."
        )),
    }
}

fn filter_of(
    prefix: Option<String>,
    filter: Option<LifecycleRuleFilter>,
) -> S3Result<LifecycleFilter> {
    let mut f = LifecycleFilter {
        form: FilterForm::None,
        prefix: String::new(),
        tags: Vec::new(),
        size_greater_than: None,
        size_less_than: None,
    };
    match (prefix, filter) {
        (Some(_), Some(_)) => return Err(malformed()),
        (None, None) => {}
        (Some(p), None) => {
            f.form = FilterForm::Legacy;
            f.prefix = p;
        }
        (None, Some(filter)) => {
            let given = usize::from(filter.prefix.is_some())
                + usize::from(filter.tag.is_some())
                + usize::from(filter.and.is_some())
                + usize::from(filter.object_size_greater_than.is_some())
                + usize::from(filter.object_size_less_than.is_some());
            if given > 1 {
                return Err(malformed());
            }
            f.form = FilterForm::Single;
            if let Some(and) = filter.and {
                f.form = FilterForm::And;
                f.prefix = and.prefix.unwrap_or_default();
                f.tags = tags_of(and.tags)?;
                f.size_greater_than = size(and.object_size_greater_than)?;
                f.size_less_than = size(and.object_size_less_than)?;
            } else {
                f.prefix = filter.prefix.unwrap_or_default();
                f.tags = tags_of(filter.tag.map(|t| vec![t]))?;
                f.size_greater_than = size(filter.object_size_greater_than)?;
                f.size_less_than = size(filter.object_size_less_than)?;
            }
        }
    }
    if let (Some(g), Some(l)) = (f.size_greater_than, f.size_less_than)
        && g >= l
    {
        return Err(s3_error!(
            InvalidArgument,
            "ObjectSizeLessThan must be greater than ObjectSizeGreaterThan."
        ));
    }
    Ok(f)
}

/// One rule as S3 validates it.
fn rule_of(r: LifecycleRule) -> S3Result<Rule> {
    let id = match r.id {
        Some(id) if id.len() > MAX_ID_LEN => {
            return Err(s3_error!(
                InvalidArgument,
                "ID length should not exceed allowed limit of 255"
            ));
        }
        Some(id) if !id.is_empty() => id,
        // S3 names a rule that has none.
        _ => hex::encode(cairn_node::random::random::<[u8; 12]>()),
    };
    let enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(malformed()),
    };
    if r.transitions.as_ref().is_some_and(|t| !t.is_empty())
        || r.noncurrent_version_transitions
            .as_ref()
            .is_some_and(|t| !t.is_empty())
    {
        return Err(s3_error!(
            NotImplemented,
            "Transitions are not supported: Cairn has one storage class."
        ));
    }
    let filter = filter_of(r.prefix, r.filter)?;
    let filtered_by_object = !filter.tags.is_empty()
        || filter.size_greater_than.is_some()
        || filter.size_less_than.is_some();
    let expiration = match r.expiration {
        None => None,
        Some(x) => {
            let marker = x.expired_object_delete_marker;
            match (x.days, &x.date, marker) {
                (None, None, None) => return Err(malformed()),
                (Some(_), Some(_), _) => return Err(malformed()),
                (Some(_), None, Some(_)) | (None, Some(_), Some(_)) => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy."
                    ));
                }
                _ => {}
            }
            if marker == Some(true) && !filter.tags.is_empty() {
                return Err(s3_error!(
                    InvalidRequest,
                    "ExpiredObjectDeleteMarker cannot be specified with tags."
                ));
            }
            let days = match x.days {
                Some(d) => Some(positive(
                    Some(d),
                    "'Days' for Expiration action must be a positive integer",
                )?),
                None => None,
            };
            let date_ms = match &x.date {
                None => None,
                Some(d) => {
                    let ms = ms_of(d);
                    if !ms.is_multiple_of(DAY_MS) {
                        return Err(s3_error!(InvalidArgument, "'Date' must be at midnight GMT"));
                    }
                    Some(ms)
                }
            };
            Some(Expiration {
                days,
                date_ms,
                expired_object_delete_marker: marker,
            })
        }
    };
    let noncurrent = match r.noncurrent_version_expiration {
        None => None,
        Some(n) => {
            let days = positive(
                n.noncurrent_days,
                "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
            )?;
            let newer_versions = match n.newer_noncurrent_versions {
                None => None,
                Some(v) if (1..=MAX_NEWER_NONCURRENT).contains(&v) => Some(v as u32),
                Some(_) => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "'NewerNoncurrentVersions' must be between 1 and 100"
                    ));
                }
            };
            Some(NoncurrentExpiration {
                days,
                newer_versions,
            })
        }
    };
    let abort_upload_days = match r.abort_incomplete_multipart_upload {
        None => None,
        Some(a) => {
            if filtered_by_object {
                return Err(s3_error!(
                    InvalidRequest,
                    "AbortIncompleteMultipartUpload cannot be specified with Tags or object size filters."
                ));
            }
            Some(positive(
                a.days_after_initiation,
                "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
            )?)
        }
    };
    let acts = expiration.as_ref().is_some_and(|x| {
        x.days.is_some() || x.date_ms.is_some() || x.expired_object_delete_marker.is_some()
    }) || noncurrent.is_some()
        || abort_upload_days.is_some();
    if !acts {
        return Err(s3_error!(
            InvalidRequest,
            "At least one action needs to be specified in a rule"
        ));
    }
    Ok(Rule {
        id,
        enabled,
        filter,
        expiration,
        noncurrent,
        abort_upload_days,
    })
}

/// Validate a configuration as S3 does.
pub(crate) fn config_of(owner: &str, rules: LifecycleRules) -> S3Result<LifecycleConfig> {
    if rules.is_empty() || rules.len() > MAX_RULES {
        return Err(malformed());
    }
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        out.push(rule_of(r)?);
    }
    let mut ids: Vec<&str> = out.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    if ids.windows(2).any(|w| w[0] == w[1]) {
        return Err(s3_error!(
            InvalidArgument,
            "Rule ID must be unique. Found same ID for more than one rule"
        ));
    }
    Ok(LifecycleConfig {
        owner: owner.to_owned(),
        rules: out,
    })
}

fn tag_set(tags: &[(String, String)]) -> TagSet {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// A stored rule as S3 shows it.
fn dto_of(r: &Rule) -> LifecycleRule {
    let f = &r.filter;
    let (prefix, filter) = match f.form {
        FilterForm::None => (None, None),
        FilterForm::Legacy => (Some(f.prefix.clone()), None),
        FilterForm::Single => {
            let mut filter = LifecycleRuleFilter::default();
            if let Some((k, v)) = f.tags.first() {
                filter.tag = Some(Tag {
                    key: Some(k.clone()),
                    value: Some(v.clone()),
                });
            } else if let Some(g) = f.size_greater_than {
                filter.object_size_greater_than = Some(g as i64);
            } else if let Some(l) = f.size_less_than {
                filter.object_size_less_than = Some(l as i64);
            } else {
                filter.prefix = Some(f.prefix.clone());
            }
            (None, Some(filter))
        }
        FilterForm::And => (
            None,
            Some(LifecycleRuleFilter {
                and: Some(LifecycleRuleAndOperator {
                    prefix: (!f.prefix.is_empty()).then(|| f.prefix.clone()),
                    tags: (!f.tags.is_empty()).then(|| tag_set(&f.tags)),
                    object_size_greater_than: f.size_greater_than.map(|g| g as i64),
                    object_size_less_than: f.size_less_than.map(|l| l as i64),
                }),
                ..Default::default()
            }),
        ),
    };
    LifecycleRule {
        id: Some(r.id.clone()),
        status: ExpirationStatus::from(
            if r.enabled {
                ExpirationStatus::ENABLED
            } else {
                ExpirationStatus::DISABLED
            }
            .to_owned(),
        ),
        prefix,
        filter,
        expiration: r.expiration.as_ref().map(|x| LifecycleExpiration {
            days: x.days.map(|d| d as i32),
            date: x.date_ms.map(timestamp),
            expired_object_delete_marker: x.expired_object_delete_marker,
        }),
        noncurrent_version_expiration: r.noncurrent.as_ref().map(|n| NoncurrentVersionExpiration {
            noncurrent_days: Some(n.days as i32),
            newer_noncurrent_versions: n.newer_versions.map(|v| v as i32),
        }),
        abort_incomplete_multipart_upload: r.abort_upload_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: Some(d as i32),
            }
        }),
        noncurrent_version_transitions: None,
        transitions: None,
    }
}

/// A bucket's configuration, read from its data group.
pub(crate) async fn read(
    gw: &Gateway,
    bucket: cairn::record::BucketId,
) -> S3Result<Option<LifecycleConfig>> {
    Ok(gw.meta.lifecycle(bucket).await?)
}

/// The `x-amz-expiration` answer for `e`, the current version of `key`,
/// when a rule of its bucket expires it: `expiry-date="<HTTP date>",
/// rule-id="<id>"`, the earliest rule's. Informational: read from the
/// gateway's short-lived cache, and left out when the configuration
/// cannot be read or the rule id cannot travel in a header.
pub(crate) async fn expiration(
    gw: &Gateway,
    bucket: cairn::record::BucketId,
    key: &str,
    e: &cairn::record::ObjectEntry,
) -> Option<String> {
    let config = match gw.meta.lifecycle_hint(bucket).await {
        Ok(c) => c?,
        Err(err) => {
            tracing::debug!(%err, "lifecycle configuration unread: no x-amz-expiration");
            return None;
        }
    };
    let day_ms = gw.config.lifecycle_day.as_millis().max(1) as u64;
    let (at_ms, rule) = expiry_of(&config.rules, key, e, day_ms)?;
    expiration_value(at_ms, &rule)
}

fn expiration_value(at_ms: u64, rule: &str) -> Option<String> {
    if !rule
        .bytes()
        .all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"'))
    {
        return None;
    }
    let mut date = Vec::new();
    timestamp(at_ms)
        .format(TimestampFormat::HttpDate, &mut date)
        .ok()?;
    let date = String::from_utf8(date).ok()?;
    Some(format!("expiry-date=\"{date}\", rule-id=\"{rule}\""))
}

pub(super) async fn put(
    gw: &Gateway,
    req: S3Request<PutBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who
        .bucket(gw, &input.bucket, "s3:PutLifecycleConfiguration")
        .await?;
    let Some(c) = input.lifecycle_configuration else {
        return Err(malformed());
    };
    let config = config_of(&bucket.owner, c.rules)?;
    outcome(
        gw.meta
            .data(Command::SetLifecycle {
                bucket: bucket.id,
                config: Some(config),
            })
            .await?,
    )?;
    Ok(S3Response::new(
        PutBucketLifecycleConfigurationOutput::default(),
    ))
}

pub(super) async fn get(
    gw: &Gateway,
    req: S3Request<GetBucketLifecycleConfigurationInput>,
) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:GetLifecycleConfiguration")
        .await?;
    let Some(config) = read(gw, bucket.id).await? else {
        return Err(s3_error!(
            NoSuchLifecycleConfiguration,
            "The lifecycle configuration does not exist"
        ));
    };
    Ok(S3Response::new(GetBucketLifecycleConfigurationOutput {
        rules: Some(config.rules.iter().map(dto_of).collect()),
        ..Default::default()
    }))
}

pub(super) async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteBucketLifecycleInput>,
) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:PutLifecycleConfiguration")
        .await?;
    outcome(
        gw.meta
            .data(Command::SetLifecycle {
                bucket: bucket.id,
                config: None,
            })
            .await?,
    )?;
    Ok(S3Response::new(DeleteBucketLifecycleOutput::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> LifecycleRule {
        LifecycleRule {
            id: Some("r".into()),
            status: ExpirationStatus::from(ExpirationStatus::ENABLED.to_owned()),
            filter: Some(LifecycleRuleFilter {
                prefix: Some("logs/".into()),
                ..Default::default()
            }),
            expiration: Some(LifecycleExpiration {
                days: Some(3),
                ..Default::default()
            }),
            abort_incomplete_multipart_upload: None,
            noncurrent_version_expiration: None,
            noncurrent_version_transitions: None,
            prefix: None,
            transitions: None,
        }
    }

    fn code(rules: Vec<LifecycleRule>) -> String {
        match config_of("o", rules) {
            Ok(_) => "ok".into(),
            Err(e) => e.code().as_str().to_owned(),
        }
    }

    #[test]
    fn expiration_headers_read_as_s3_writes_them() {
        assert_eq!(
            expiration_value(1_356_220_800_000, "picture-deletion-rule").as_deref(),
            Some(r#"expiry-date="Sun, 23 Dec 2012 00:00:00 GMT", rule-id="picture-deletion-rule""#)
        );
        assert_eq!(expiration_value(0, "a\"b"), None);
        assert_eq!(expiration_value(0, "tab\there"), None);
    }

    #[test]
    fn configurations_are_validated_as_s3_does() {
        assert_eq!(code(vec![rule()]), "ok");
        assert_eq!(code(vec![]), "MalformedXML");
        assert_eq!(
            code(vec![rule(), rule()]),
            "InvalidArgument",
            "duplicate ids"
        );
        let mut r = rule();
        r.id = Some("x".repeat(256));
        assert_eq!(code(vec![r]), "InvalidArgument");
        let mut r = rule();
        r.status = ExpirationStatus::from("On".to_owned());
        assert_eq!(code(vec![r]), "MalformedXML");
        let mut r = rule();
        r.prefix = Some("a".into());
        assert_eq!(code(vec![r]), "MalformedXML", "Prefix and Filter");
        let mut r = rule();
        r.filter.as_mut().unwrap().object_size_greater_than = Some(5);
        assert_eq!(code(vec![r]), "MalformedXML", "two conditions without And");
        let mut r = rule();
        r.expiration.as_mut().unwrap().days = Some(0);
        assert_eq!(code(vec![r]), "InvalidArgument");
        let mut r = rule();
        r.expiration = Some(LifecycleExpiration {
            date: Some(timestamp(DAY_MS + 1000)),
            ..Default::default()
        });
        assert_eq!(code(vec![r]), "InvalidArgument", "not midnight");
        let mut r = rule();
        r.expiration.as_mut().unwrap().expired_object_delete_marker = Some(true);
        assert_eq!(code(vec![r]), "InvalidArgument", "marker with days");
        let mut r = rule();
        r.expiration = None;
        assert_eq!(code(vec![r]), "InvalidRequest", "no action");
        let mut r = rule();
        r.filter = Some(LifecycleRuleFilter {
            tag: Some(Tag {
                key: Some("k".into()),
                value: Some("v".into()),
            }),
            ..Default::default()
        });
        r.abort_incomplete_multipart_upload = Some(AbortIncompleteMultipartUpload {
            days_after_initiation: Some(1),
        });
        assert_eq!(code(vec![r]), "InvalidRequest", "abort with tags");
        let mut r = rule();
        r.filter = Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                object_size_greater_than: Some(10),
                object_size_less_than: Some(10),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(code(vec![r]), "InvalidArgument", "empty size range");
        let mut r = rule();
        r.noncurrent_version_expiration = Some(NoncurrentVersionExpiration {
            noncurrent_days: Some(1),
            newer_noncurrent_versions: Some(101),
        });
        assert_eq!(code(vec![r]), "InvalidArgument");
        let mut r = rule();
        r.transitions = Some(vec![Transition::default()]);
        assert_eq!(code(vec![r]), "NotImplemented");
    }

    #[test]
    fn rules_read_back_as_they_were_put() {
        let mut and = rule();
        and.id = Some("and".into());
        and.filter = Some(LifecycleRuleFilter {
            and: Some(LifecycleRuleAndOperator {
                prefix: Some("p/".into()),
                tags: Some(vec![Tag {
                    key: Some("k".into()),
                    value: Some("v".into()),
                }]),
                object_size_greater_than: Some(1),
                object_size_less_than: None,
            }),
            ..Default::default()
        });
        let mut legacy = rule();
        legacy.id = Some("legacy".into());
        legacy.filter = None;
        legacy.prefix = Some("old/".into());
        let rules = vec![rule(), and, legacy];
        let config = config_of("o", rules.clone()).unwrap();
        let back: Vec<LifecycleRule> = config.rules.iter().map(dto_of).collect();
        assert_eq!(back, rules);
    }
}
