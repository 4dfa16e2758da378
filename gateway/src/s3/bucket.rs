//! Bucket operations.

use super::{authorized_bucket, caller, now_ms, timestamp};
use crate::state::Gateway;
use cairn::record::{BucketRecord, MetaKey, Table};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// Largest number of buckets a listing returns (S3's default quota is
/// 10,000 per account).
pub const MAX_BUCKETS: usize = 10_000;

/// All buckets (at most [`MAX_BUCKETS`]).
pub(crate) async fn all_buckets(gw: &Gateway) -> S3Result<Vec<BucketRecord>> {
    let (buckets, _) = gw
        .meta
        .scan_all::<BucketRecord>(Table::Buckets, "", None, MAX_BUCKETS)
        .await?;
    Ok(buckets.into_iter().map(|(_, b)| b).collect())
}

pub(super) async fn list(
    gw: &Gateway,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let who = caller(&req)?;
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

/// Create a bucket owned by `owner` (shared with the admin API).
pub(crate) async fn create_owned(gw: &Gateway, name: &str, owner: &str) -> S3Result<()> {
    let key = MetaKey::new(Table::Buckets, "", name);
    if let Some(existing) = gw.meta.get::<BucketRecord>(&key).await? {
        return Err(if existing.owner == owner {
            s3_error!(
                BucketAlreadyOwnedByYou,
                "Your previous request to create the named bucket succeeded and you already own it."
            )
        } else {
            s3_error!(
                BucketAlreadyExists,
                "The requested bucket name is not available."
            )
        });
    }
    let record = BucketRecord {
        name: name.to_owned(),
        owner: owner.to_owned(),
        created_ms: now_ms(),
        allowed_keys: Vec::new(),
    };
    gw.meta.put(key, &record).await?;
    Ok(())
}

pub(super) async fn create(
    gw: &Gateway,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let who = caller(&req)?;
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
    create_owned(gw, &req.input.bucket, &who).await?;
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{}", req.input.bucket)),
    }))
}

pub(super) async fn head(
    gw: &Gateway,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let who = caller(&req)?;
    authorized_bucket(gw, &who, &req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(gw.config.region.clone()),
        ..Default::default()
    }))
}

pub(super) async fn location(
    gw: &Gateway,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let who = caller(&req)?;
    authorized_bucket(gw, &who, &req.input.bucket).await?;
    // us-east-1 is reported as an empty constraint, as AWS does.
    let constraint = (gw.config.region != "us-east-1")
        .then(|| BucketLocationConstraint::from(gw.config.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint: constraint,
    }))
}

/// Buckets are never versioned (yet): an empty configuration, as S3 answers
/// for a bucket whose versioning was never enabled.
pub(super) async fn versioning(
    gw: &Gateway,
    req: S3Request<GetBucketVersioningInput>,
) -> S3Result<S3Response<GetBucketVersioningOutput>> {
    let who = caller(&req)?;
    authorized_bucket(gw, &who, &req.input.bucket).await?;
    Ok(S3Response::new(GetBucketVersioningOutput::default()))
}

/// The one ACL Cairn has: the owner holds FULL_CONTROL. Access is decided
/// by keys and grants (`cairn bucket allow`), not ACLs; this answer keeps
/// tools that read ACLs working.
pub(crate) fn owner_full_control(owner: &str) -> (Owner, Vec<Grant>) {
    let o = super::owner(owner);
    let grant = Grant {
        grantee: Some(Grantee {
            display_name: Some(owner.to_owned()),
            id: Some(owner.to_owned()),
            type_: Type::from(Type::CANONICAL_USER.to_owned()),
            email_address: None,
            uri: None,
        }),
        permission: Some(Permission::from(Permission::FULL_CONTROL.to_owned())),
    };
    (o, vec![grant])
}

pub(super) async fn acl(
    gw: &Gateway,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let who = caller(&req)?;
    let bucket = authorized_bucket(gw, &who, &req.input.bucket).await?;
    let (owner, grants) = owner_full_control(&bucket.owner);
    Ok(S3Response::new(GetBucketAclOutput {
        owner: Some(owner),
        grants: Some(grants),
    }))
}

/// Whether a bucket holds at least one object.
pub(crate) async fn has_objects(gw: &Gateway, bucket: &str) -> S3Result<bool> {
    let mut after: Option<String> = None;
    loop {
        let page = gw
            .meta
            .scan(Table::Objects, bucket, "", after.as_deref(), 100)
            .await?;
        if !page.entries.is_empty() {
            return Ok(true);
        }
        match page.next_after {
            Some(a) => after = Some(a),
            None => return Ok(false),
        }
    }
}

/// Delete an empty bucket (shared with the admin API).
pub(crate) async fn delete_checked(gw: &Gateway, bucket: &str) -> S3Result<()> {
    if has_objects(gw, bucket).await? {
        return Err(s3_error!(
            BucketNotEmpty,
            "The bucket you tried to delete is not empty"
        ));
    }
    gw.meta
        .delete(MetaKey::new(Table::Buckets, "", bucket))
        .await?;
    Ok(())
}

pub(super) async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let who = caller(&req)?;
    let bucket = authorized_bucket(gw, &who, &req.input.bucket).await?;
    if bucket.owner != who && !gw.is_root(&who) {
        return Err(s3_error!(
            AccessDenied,
            "Only the bucket owner may delete it"
        ));
    }
    delete_checked(gw, &req.input.bucket).await?;
    Ok(S3Response::with_status(
        DeleteBucketOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}
