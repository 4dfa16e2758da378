//! Object Lock: a bucket's lock configuration and default retention, and
//! each version's retention and legal hold. What may be removed when is
//! decided in the bucket's group (`cairn::command::versions::locked`); this
//! module parses and validates what S3 sends and answers as S3 does.

use super::access::Caller;
use super::bucket::settings;
use super::object::{object_version, version_ref};
use super::{now_ms, outcome, timestamp};
use crate::state::Gateway;
use cairn::command::Command;
use cairn::record::{BucketRecord, DefaultRetention, LockMode, ObjectEntry, Retention};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// Longest default retention S3 takes, in days (100 years).
pub const MAX_DEFAULT_RETENTION_DAYS: i32 = 36_500;
/// Longest default retention S3 takes, in years.
pub const MAX_DEFAULT_RETENTION_YEARS: i32 = 100;

fn malformed() -> s3s::S3Error {
    s3_error!(
        MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema"
    )
}

fn mode_of(s: &str) -> Option<LockMode> {
    match s {
        ObjectLockRetentionMode::GOVERNANCE => Some(LockMode::Governance),
        ObjectLockRetentionMode::COMPLIANCE => Some(LockMode::Compliance),
        _ => None,
    }
}

fn mode_name(m: LockMode) -> &'static str {
    match m {
        LockMode::Governance => ObjectLockRetentionMode::GOVERNANCE,
        LockMode::Compliance => ObjectLockRetentionMode::COMPLIANCE,
    }
}

/// Milliseconds since the epoch of an S3 timestamp (0 before the epoch).
pub(crate) fn ms_of(t: &Timestamp) -> u64 {
    let t = time::OffsetDateTime::from(t.clone());
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// Whether a request bypasses GOVERNANCE retention of `key`: it asked to
/// (`x-amz-bypass-governance-retention: true`) and holds
/// `s3:BypassGovernanceRetention` (the bucket's owner, the root key, or a
/// key the bucket policy grants it to).
pub(crate) async fn bypass(
    gw: &Gateway,
    who: &Caller,
    bucket: &BucketRecord,
    key: &str,
    asked: Option<bool>,
) -> S3Result<bool> {
    Ok(asked == Some(true)
        && who
            .may(gw, bucket, "s3:BypassGovernanceRetention", Some(key), None)
            .await?)
}

/// The retention and legal hold a PUT, copy or CreateMultipartUpload
/// asks for in its `x-amz-object-lock-*` headers.
pub(crate) fn requested(
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<(Option<Retention>, bool)> {
    let retention = match (mode, until) {
        (None, None) => None,
        (Some(m), Some(t)) => {
            let mode = mode_of(m.as_str())
                .ok_or_else(|| s3_error!(InvalidArgument, "Unknown wormMode directive."))?;
            let until_ms = ms_of(t);
            if until_ms <= now_ms() {
                return Err(s3_error!(
                    InvalidArgument,
                    "The retain until date must be in the future!"
                ));
            }
            Some(Retention { mode, until_ms })
        }
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
            ));
        }
    };
    let legal_hold = match hold.map(|h| h.as_str()) {
        None | Some(ObjectLockLegalHoldStatus::OFF) => false,
        Some(ObjectLockLegalHoldStatus::ON) => true,
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "Legal Hold must be either of 'ON' or 'OFF'"
            ));
        }
    };
    Ok((retention, legal_hold))
}

/// A PUT with Object Lock parameters must carry an integrity check of
/// its body, as S3 requires.
pub(crate) fn require_integrity(headers: &http::HeaderMap) -> S3Result<()> {
    let has = headers.contains_key("content-md5")
        || headers
            .keys()
            .any(|k| k.as_str().starts_with("x-amz-checksum-"))
        || headers
            .get("x-amz-trailer")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.trim().starts_with("x-amz-checksum-"));
    if has {
        Ok(())
    } else {
        Err(s3_error!(
            InvalidRequest,
            "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters"
        ))
    }
}

/// The Object Lock fields of a GET or HEAD answer.
pub(crate) struct LockFields {
    pub mode: Option<ObjectLockMode>,
    pub until: Option<Timestamp>,
    pub legal_hold: Option<ObjectLockLegalHoldStatus>,
}

pub(crate) fn fields(e: &ObjectEntry) -> LockFields {
    LockFields {
        mode: e
            .retention
            .map(|r| ObjectLockMode::from(mode_name(r.mode).to_owned())),
        until: e.retention.map(|r| timestamp(r.until_ms)),
        legal_hold: e
            .legal_hold
            .then(|| ObjectLockLegalHoldStatus::from(ObjectLockLegalHoldStatus::ON.to_owned())),
    }
}

fn no_lock_configuration() -> s3s::S3Error {
    s3_error!(
        InvalidRequest,
        "Bucket is missing Object Lock Configuration"
    )
}

pub(super) async fn put_configuration(
    gw: &Gateway,
    req: S3Request<PutObjectLockConfigurationInput>,
) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let config = input.object_lock_configuration.ok_or_else(malformed)?;
    if config.object_lock_enabled.as_ref().map(|e| e.as_str()) != Some(ObjectLockEnabled::ENABLED) {
        return Err(malformed());
    }
    let default_retention = match config.rule.and_then(|r| r.default_retention) {
        None => None,
        Some(d) => {
            let mode = d
                .mode
                .as_ref()
                .and_then(|m| mode_of(m.as_str()))
                .ok_or_else(malformed)?;
            match (d.days, d.years) {
                (Some(_), Some(_)) | (None, None) => return Err(malformed()),
                (Some(n), None) | (None, Some(n)) if n <= 0 => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "Default retention period must be a positive integer value"
                    ));
                }
                (Some(n), None) if n > MAX_DEFAULT_RETENTION_DAYS => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "Default retention period is too large."
                    ));
                }
                (None, Some(n)) if n > MAX_DEFAULT_RETENTION_YEARS => {
                    return Err(s3_error!(
                        InvalidArgument,
                        "Default retention period is too large."
                    ));
                }
                (days, years) => Some(DefaultRetention {
                    mode,
                    days: days.map(|n| n as u32),
                    years: years.map(|n| n as u32),
                }),
            }
        }
    };
    let bucket = who
        .bucket(gw, &input.bucket, "s3:PutBucketObjectLockConfiguration")
        .await?;
    match gw
        .meta
        .data(Command::SetObjectLock {
            bucket: bucket.id,
            default_retention,
        })
        .await?
    {
        cairn::command::Outcome::InvalidBucketState => Err(s3_error!(
            InvalidBucketState,
            "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
        )),
        o => outcome(o),
    }?;
    Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
}

pub(super) async fn get_configuration(
    gw: &Gateway,
    req: S3Request<GetObjectLockConfigurationInput>,
) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:GetBucketObjectLockConfiguration")
        .await?;
    let s = settings(gw, &bucket).await?;
    if !s.object_lock {
        let mut e = s3s::S3Error::with_message(
            s3s::S3ErrorCode::Custom("ObjectLockConfigurationNotFoundError".into()),
            "Object Lock configuration does not exist for this bucket",
        );
        e.set_status_code(http::StatusCode::NOT_FOUND);
        return Err(e);
    }
    let rule = s.default_retention.map(|d| ObjectLockRule {
        default_retention: Some(s3s::dto::DefaultRetention {
            mode: Some(ObjectLockRetentionMode::from(mode_name(d.mode).to_owned())),
            days: d.days.map(|n| n as i32),
            years: d.years.map(|n| n as i32),
        }),
    });
    Ok(S3Response::new(GetObjectLockConfigurationOutput {
        object_lock_configuration: Some(ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from(
                ObjectLockEnabled::ENABLED.to_owned(),
            )),
            rule,
        }),
    }))
}

pub(super) async fn put_retention(
    gw: &Gateway,
    req: S3Request<PutObjectRetentionInput>,
) -> S3Result<S3Response<PutObjectRetentionOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let retention = match input.retention {
        None => return Err(malformed()),
        Some(ObjectLockRetention {
            mode: None,
            retain_until_date: None,
        }) => None,
        Some(ObjectLockRetention {
            mode: Some(m),
            retain_until_date: Some(t),
        }) => {
            let mode = mode_of(m.as_str()).ok_or_else(malformed)?;
            let until_ms = ms_of(&t);
            if until_ms <= now_ms() {
                return Err(s3_error!(
                    InvalidArgument,
                    "The retain until date must be in the future!"
                ));
            }
            Some(Retention { mode, until_ms })
        }
        Some(_) => return Err(malformed()),
    };
    let version = version_ref(input.version_id.as_deref())?;
    let bucket = who
        .object(
            gw,
            &input.bucket,
            "s3:PutObjectRetention",
            &input.key,
            version,
        )
        .await?;
    let bypass_governance = bypass(
        gw,
        &who,
        &bucket,
        &input.key,
        input.bypass_governance_retention,
    )
    .await?;
    outcome(
        gw.meta
            .data(Command::SetRetention {
                bucket: bucket.id,
                key: input.key,
                version,
                retention,
                bypass_governance,
                now_ms: now_ms(),
            })
            .await?,
    )?;
    Ok(S3Response::new(PutObjectRetentionOutput::default()))
}

/// The version whose lock is asked about, in a bucket with Object Lock.
async fn locked_version(
    gw: &Gateway,
    (who, action): (&Caller, &str),
    bucket: &str,
    key: &str,
    version: Option<&str>,
) -> S3Result<ObjectEntry> {
    let version = version_ref(version)?;
    let bucket = who.object(gw, bucket, action, key, version).await?;
    if !settings(gw, &bucket).await?.object_lock {
        return Err(no_lock_configuration());
    }
    object_version(gw, &bucket, key, version).await
}

pub(super) async fn get_retention(
    gw: &Gateway,
    req: S3Request<GetObjectRetentionInput>,
) -> S3Result<S3Response<GetObjectRetentionOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let e = locked_version(
        gw,
        (&who, "s3:GetObjectRetention"),
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
    )
    .await?;
    let Some(r) = e.retention else {
        return Err(s3_error!(
            NoSuchObjectLockConfiguration,
            "The specified object does not have a ObjectLock configuration"
        ));
    };
    Ok(S3Response::new(GetObjectRetentionOutput {
        retention: Some(ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from(mode_name(r.mode).to_owned())),
            retain_until_date: Some(timestamp(r.until_ms)),
        }),
    }))
}

pub(super) async fn put_legal_hold(
    gw: &Gateway,
    req: S3Request<PutObjectLegalHoldInput>,
) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let on = match input
        .legal_hold
        .as_ref()
        .and_then(|h| h.status.as_ref())
        .map(|s| s.as_str())
    {
        Some(ObjectLockLegalHoldStatus::ON) => true,
        Some(ObjectLockLegalHoldStatus::OFF) => false,
        _ => return Err(malformed()),
    };
    let version = version_ref(input.version_id.as_deref())?;
    let bucket = who
        .object(
            gw,
            &input.bucket,
            "s3:PutObjectLegalHold",
            &input.key,
            version,
        )
        .await?;
    outcome(
        gw.meta
            .data(Command::SetLegalHold {
                bucket: bucket.id,
                key: input.key,
                version,
                on,
            })
            .await?,
    )?;
    Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
}

pub(super) async fn get_legal_hold(
    gw: &Gateway,
    req: S3Request<GetObjectLegalHoldInput>,
) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let e = locked_version(
        gw,
        (&who, "s3:GetObjectLegalHold"),
        &input.bucket,
        &input.key,
        input.version_id.as_deref(),
    )
    .await?;
    let status = if e.legal_hold {
        ObjectLockLegalHoldStatus::ON
    } else {
        ObjectLockLegalHoldStatus::OFF
    };
    Ok(S3Response::new(GetObjectLegalHoldOutput {
        legal_hold: Some(ObjectLockLegalHold {
            status: Some(ObjectLockLegalHoldStatus::from(status.to_owned())),
        }),
    }))
}
