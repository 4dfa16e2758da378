//! Bucket operations.

use super::access::Caller;
use super::{now_ms, outcome, timestamp};
use crate::state::Gateway;
use cairn::access::Ownership;
use cairn::command::{Command, Outcome};
use cairn::record::{
    self, BucketId, BucketRecord, BucketSettings, ConfigKind, GroupId, Table, Versioning, keys,
};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// Largest number of buckets a listing returns (S3's default quota is
/// 10,000 per account).
pub const MAX_BUCKETS: usize = 10_000;

/// All buckets (at most [`MAX_BUCKETS`]).
pub(crate) async fn all_buckets(gw: &Gateway) -> S3Result<Vec<BucketRecord>> {
    let (buckets, _) = gw
        .meta
        .client
        .scan_all::<BucketRecord>(GroupId::SYSTEM, Table::Buckets, "", "", None, MAX_BUCKETS)
        .await
        .map_err(crate::error::Error::from)?;
    Ok(buckets.into_iter().map(|(_, b)| b).collect())
}

pub(super) async fn list(
    gw: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let caller = Caller::of(&req);
    let who = caller.signed()?.to_owned();
    let buckets = all_buckets(gw)
        .await?
        .into_iter()
        .filter(|b| gw.is_root(&who) || b.owner == who || b.allowed_keys.contains(&who))
        .map(|b| Bucket {
            name: Some(b.name),
            creation_date: Some(timestamp(b.created_ms)),
            bucket_region: Some(gw.config.region.clone()),
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(super::owner(&who)),
        ..Default::default()
    }))
}

/// Create a bucket owned by `owner` (shared with the admin API): one
/// system-group command, so of two creators of one name exactly one wins.
///
/// With `object_lock`, the bucket's settings (versioning enabled, Object
/// Lock on) are written to its data group first, so that no write can
/// reach the bucket before them.
pub(crate) async fn create_owned(
    gw: &Gateway,
    name: &str,
    owner: &str,
    object_lock: bool,
) -> S3Result<BucketRecord> {
    let record = BucketRecord {
        id: BucketId(cairn_node::random::random()),
        name: name.to_owned(),
        owner: owner.to_owned(),
        created_ms: now_ms(),
        allowed_keys: Vec::new(),
    };
    if object_lock {
        let settings = BucketSettings {
            versioning: Versioning::Enabled,
            object_lock: true,
            default_retention: None,
        };
        outcome(
            gw.meta
                .data(Command::InitBucket {
                    bucket: record.id,
                    settings,
                })
                .await?,
        )?;
    }
    let created = record.clone();
    outcome(gw.meta.system(Command::CreateBucket { record }).await?)?;
    Ok(created)
}

/// Whether S3 refuses `name` for a new bucket beyond the syntax s3s
/// checks: names reserved for access point aliases and S3 features, and a
/// period next to a hyphen (S3's bucket naming rules).
pub fn reserved_name(name: &str) -> bool {
    const PREFIXES: [&str; 2] = ["sthree-", "amzn-s3-demo-"];
    const SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];
    PREFIXES.iter().any(|p| name.starts_with(p))
        || SUFFIXES.iter().any(|s| name.ends_with(s))
        || name.contains(".-")
        || name.contains("-.")
}

/// The region where S3 answers 200 to re-creating one's own bucket.
const LEGACY_REGION: &str = "us-east-1";

pub(super) async fn create(
    gw: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let caller = Caller::of(&req);
    let who = caller.signed()?.to_owned();
    if reserved_name(&req.input.bucket) {
        return Err(s3_error!(
            InvalidBucketName,
            "The specified bucket is not valid."
        ));
    }
    if let Some(region) = req
        .input
        .create_bucket_configuration
        .as_ref()
        .and_then(|c| c.location_constraint.as_ref())
        && !region.as_str().is_empty()
        && region.as_str() != gw.config.region
    {
        return Err(s3_error!(
            InvalidLocationConstraint,
            "The specified location-constraint is not valid"
        ));
    }
    let input = &req.input;
    let ownership = match input.object_ownership.as_ref().map(|o| o.as_str()) {
        None => None,
        Some(ObjectOwnership::BUCKET_OWNER_ENFORCED) => Some(Ownership::BucketOwnerEnforced),
        Some(ObjectOwnership::BUCKET_OWNER_PREFERRED) => Some(Ownership::BucketOwnerPreferred),
        Some(ObjectOwnership::OBJECT_WRITER) => Some(Ownership::ObjectWriter),
        Some(_) => {
            return Err(s3_error!(
                InvalidArgument,
                "Invalid x-amz-object-ownership header"
            ));
        }
    };
    let asked = super::acl::from_headers(
        input.acl.as_ref().map(|a| a.as_str()),
        super::acl::GrantHeaders {
            full_control: input.grant_full_control.as_deref(),
            read: input.grant_read.as_deref(),
            read_acp: input.grant_read_acp.as_deref(),
            write: input.grant_write.as_deref(),
            write_acp: input.grant_write_acp.as_deref(),
        },
        &who,
        true,
    )?;
    let grants_others = asked.as_ref().is_some_and(|a| {
        a.grants.iter().any(|g| {
            g.permission != cairn::record::Permission::FullControl
                || g.grantee != cairn::record::Grantee::User(who.clone())
        })
    });
    let enforced = ownership.is_none_or(|o| o == Ownership::BucketOwnerEnforced);
    if enforced && grants_others {
        return Err(s3_error!(
            InvalidBucketAclWithObjectOwnership,
            "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
        ));
    }
    let lock = input.object_lock_enabled_for_bucket == Some(true);
    let bucket = match create_owned(gw, &input.bucket, &who, lock).await {
        Ok(b) => b,
        // S3 answers 200 to re-creating one's own bucket in us-east-1
        // (for legacy compatibility) and changes nothing here.
        Err(e)
            if *e.code() == s3s::S3ErrorCode::BucketAlreadyOwnedByYou
                && gw.config.region == LEGACY_REGION =>
        {
            return Ok(S3Response::new(CreateBucketOutput {
                location: Some(format!("/{}", req.input.bucket)),
            }));
        }
        Err(e) => return Err(e),
    };
    // Written once the bucket is there: until then it has S3's defaults
    // (BucketOwnerEnforced, no grants), which refuse more, never less.
    if let Some(o) = ownership.filter(|o| *o != Ownership::BucketOwnerEnforced) {
        put_config(gw, &bucket, ConfigKind::Ownership, Some(&Some(o))).await?;
    }
    if let Some(asked) = asked.filter(|_| grants_others) {
        super::acl::set_bucket(gw, &bucket, asked).await?;
    }
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", req.input.bucket)),
    }))
}

pub(super) async fn head(
    gw: &Gateway,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let who = Caller::of(&req);
    who.bucket(gw, &req.input.bucket, "s3:ListBucket").await?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(gw.config.region.clone()),
        ..Default::default()
    }))
}

pub(super) async fn location(
    gw: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let who = Caller::of(&req);
    who.bucket(gw, &req.input.bucket, "s3:GetBucketLocation")
        .await?;
    // us-east-1 is reported as an empty constraint, as AWS does.
    let constraint = (gw.config.region != "us-east-1")
        .then(|| BucketLocationConstraint::from(gw.config.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: constraint,
    }))
}

/// A bucket's settings, read from its data group (linearizable).
pub(crate) async fn settings(gw: &Gateway, bucket: &BucketRecord) -> S3Result<BucketSettings> {
    let group = gw
        .meta
        .client
        .bucket_group(bucket.id)
        .map_err(crate::error::Error::from)?;
    Ok(gw
        .meta
        .client
        .get::<BucketSettings>(group, &keys::bucket_settings(bucket.id))
        .await
        .map_err(crate::error::Error::from)?
        .unwrap_or_default())
}

/// Set (or, with `None`, remove) one configuration of a bucket.
pub(crate) async fn put_config<T: serde::Serialize>(
    gw: &Gateway,
    bucket: &BucketRecord,
    kind: ConfigKind,
    value: Option<&T>,
) -> S3Result<()> {
    outcome(
        gw.meta
            .system(Command::PutBucketConfig {
                name: bucket.name.clone(),
                bucket: bucket.id,
                kind,
                value: value.map(record::encode),
            })
            .await?,
    )
}

/// A bucket that was never versioned answers an empty configuration, as
/// S3 does.
pub(super) async fn versioning(
    gw: &Gateway,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:GetBucketVersioning")
        .await?;
    let status = match settings(gw, &bucket).await?.versioning {
        Versioning::Unversioned => None,
        Versioning::Enabled => Some(BucketVersioningStatus::ENABLED),
        Versioning::Suspended => Some(BucketVersioningStatus::SUSPENDED),
    };
    Ok(S3Response::new(GetBucketVersioningOutput {
        status: status.map(|s| BucketVersioningStatus::from(s.to_owned())),
        mfa_delete: None,
    }))
}

pub(super) async fn put_versioning(
    gw: &Gateway,
    req: S3Request<PutBucketVersioningInput>,
) -> S3Result<S3Response<PutBucketVersioningOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let config = input.versioning_configuration;
    if config
        .mfa_delete
        .as_ref()
        .is_some_and(|m| m.as_str() == MFADelete::ENABLED)
    {
        return Err(s3_error!(NotImplemented, "MFA Delete is not supported."));
    }
    let state = match config.status.as_ref().map(|s| s.as_str()) {
        Some(BucketVersioningStatus::ENABLED) => Versioning::Enabled,
        Some(BucketVersioningStatus::SUSPENDED) => Versioning::Suspended,
        _ => {
            return Err(s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            ));
        }
    };
    let bucket = who
        .bucket(gw, &input.bucket, "s3:PutBucketVersioning")
        .await?;
    outcome(
        gw.meta
            .data(Command::SetVersioning {
                bucket: bucket.id,
                state,
            })
            .await?,
    )?;
    Ok(S3Response::new(PutBucketVersioningOutput::default()))
}

/// Delete an empty bucket (shared with the admin API): its data group
/// seals it (refusing if it holds objects or uploads, and every write
/// after), then the system group forgets its name. A name deleted this way
/// can be created again, as a new, empty bucket.
pub(crate) async fn delete_checked(gw: &Gateway, bucket: &BucketRecord) -> S3Result<()> {
    outcome(
        gw.meta
            .data(Command::SealBucket { bucket: bucket.id })
            .await?,
    )?;
    let forgotten = gw
        .meta
        .system(Command::DeleteBucket {
            name: bucket.name.clone(),
            id: bucket.id,
        })
        .await;
    match forgotten {
        Ok(Outcome::Ok) | Ok(Outcome::NoSuchBucket) => Ok(()),
        other => {
            // The name stays; let the bucket take writes again.
            let _ = gw
                .meta
                .data(Command::UnsealBucket { bucket: bucket.id })
                .await;
            outcome(other?)
        }
    }
}

pub(super) async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let who = Caller::of(&req);
    let bucket = who.bucket(gw, &req.input.bucket, "s3:DeleteBucket").await?;
    delete_checked(gw, &bucket).await?;
    Ok(S3Response::with_status(
        DeleteBucketOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}
