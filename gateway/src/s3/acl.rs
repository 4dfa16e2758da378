//! ACLs as S3 has them: canned ACLs (`x-amz-acl`), grants
//! (`x-amz-grant-*` headers, AccessControlPolicy bodies) on buckets and
//! objects, refused where Object Ownership disables them
//! (`BucketOwnerEnforced`, S3's default for new buckets) or the Public
//! Access Block blocks public ones; read back with the owner's full
//! control. What a grant then allows is `cairn::access`'s decision.

use super::access::{Caller, ownership, public_access_block, versioned};
use super::bucket::put_config;
use super::object::{object_version, version_ref};
use super::outcome;
use crate::state::Gateway;
use cairn::access::{ALL_USERS, AUTHENTICATED_USERS, Ownership, is_public_grant};
use cairn::command::Command;
use cairn::record::{BucketRecord, ConfigKind, Grant, Grantee, Permission};
use s3s::dto;
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};

/// The S3 log delivery group (for the `log-delivery-write` canned ACL).
const LOG_DELIVERY: &str = "http://acs.amazonaws.com/groups/s3/LogDelivery";
/// Most grants one ACL holds (S3's limit).
pub const MAX_GRANTS: usize = 100;

/// The `x-amz-grant-*` headers of a request.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct GrantHeaders<'a> {
    /// `x-amz-grant-full-control`.
    pub full_control: Option<&'a str>,
    /// `x-amz-grant-read`.
    pub read: Option<&'a str>,
    /// `x-amz-grant-read-acp`.
    pub read_acp: Option<&'a str>,
    /// `x-amz-grant-write` (buckets only).
    pub write: Option<&'a str>,
    /// `x-amz-grant-write-acp`.
    pub write_acp: Option<&'a str>,
}

impl<'a> GrantHeaders<'a> {
    /// The headers an object write may carry (there is no WRITE on
    /// objects).
    pub(crate) fn object(
        full_control: Option<&'a str>,
        read: Option<&'a str>,
        read_acp: Option<&'a str>,
        write_acp: Option<&'a str>,
    ) -> Self {
        Self {
            full_control,
            read,
            read_acp,
            write: None,
            write_acp,
        }
    }
}

/// An ACL a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Asked {
    /// The canned ACL it named, if any.
    pub canned: Option<String>,
    /// Its grants beyond the owner's full control.
    pub grants: Vec<Grant>,
}

fn invalid(message: &str) -> s3s::S3Error {
    s3s::S3Error::with_message(s3s::S3ErrorCode::InvalidArgument, message.to_owned())
}

fn not_supported() -> s3s::S3Error {
    s3_error!(
        AccessControlListNotSupported,
        "The bucket does not allow ACLs"
    )
}

/// The grants of a canned ACL, for a bucket owned by `bucket_owner`
/// (`bucket`: on the bucket itself, where the object-only ones are not
/// valid).
fn canned(name: &str, bucket_owner: &str, bucket: bool) -> S3Result<Vec<Grant>> {
    let g = |grantee: Grantee, permission| Grant {
        grantee,
        permission,
    };
    let group = |uri: &str| Grantee::Group(uri.to_owned());
    Ok(match name {
        "private" => Vec::new(),
        "public-read" => vec![g(group(ALL_USERS), Permission::Read)],
        "public-read-write" => vec![
            g(group(ALL_USERS), Permission::Read),
            g(group(ALL_USERS), Permission::Write),
        ],
        "authenticated-read" => vec![g(group(AUTHENTICATED_USERS), Permission::Read)],
        // EC2 reads bundles: nobody here.
        "aws-exec-read" if !bucket => Vec::new(),
        "bucket-owner-read" if !bucket => {
            vec![g(Grantee::User(bucket_owner.to_owned()), Permission::Read)]
        }
        "bucket-owner-full-control" if !bucket => vec![g(
            Grantee::User(bucket_owner.to_owned()),
            Permission::FullControl,
        )],
        "log-delivery-write" if bucket => vec![
            g(group(LOG_DELIVERY), Permission::Write),
            g(group(LOG_DELIVERY), Permission::ReadAcp),
        ],
        _ => return Err(invalid("Invalid canned ACL")),
    })
}

fn known_group(uri: &str) -> bool {
    [ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY].contains(&uri)
}

/// The grantees of one `x-amz-grant-*` header: `id="..."` and
/// `uri="..."`, comma-separated.
fn grantees(header: &str) -> S3Result<Vec<Grantee>> {
    let mut out = Vec::new();
    for part in header.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, value) = part
            .split_once('=')
            .ok_or_else(|| invalid("Invalid grant header"))?;
        let value = value.trim().trim_matches('"');
        match kind.trim().to_ascii_lowercase().as_str() {
            "id" if !value.is_empty() => out.push(Grantee::User(value.to_owned())),
            "uri" if known_group(value) => out.push(Grantee::Group(value.to_owned())),
            "uri" => return Err(invalid("Invalid group uri")),
            "emailaddress" => {
                return Err(s3_error!(
                    UnresolvableGrantByEmailAddress,
                    "The e-mail address you provided does not match any account on record."
                ));
            }
            _ => return Err(invalid("Invalid grant header")),
        }
    }
    Ok(out)
}

/// What a request's `x-amz-acl` and `x-amz-grant-*` headers ask for
/// (`None`: nothing), for a bucket owned by `bucket_owner`.
pub(crate) fn from_headers(
    canned_acl: Option<&str>,
    headers: GrantHeaders<'_>,
    bucket_owner: &str,
    bucket: bool,
) -> S3Result<Option<Asked>> {
    let named = [
        (headers.full_control, Permission::FullControl),
        (headers.read, Permission::Read),
        (headers.read_acp, Permission::ReadAcp),
        (headers.write, Permission::Write),
        (headers.write_acp, Permission::WriteAcp),
    ];
    let mut grants = Vec::new();
    for (header, permission) in named {
        if let Some(h) = header {
            for grantee in grantees(h)? {
                grants.push(Grant {
                    grantee,
                    permission,
                });
            }
        }
    }
    let any_header = named.iter().any(|(h, _)| h.is_some());
    match canned_acl {
        Some(_) if any_header => Err(s3_error!(
            InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed"
        )),
        Some(name) => Ok(Some(Asked {
            canned: Some(name.to_owned()),
            grants: canned(name, bucket_owner, bucket)?,
        })),
        None if any_header => {
            bounded(&grants)?;
            Ok(Some(Asked {
                canned: None,
                grants,
            }))
        }
        None => Ok(None),
    }
}

fn bounded(grants: &[Grant]) -> S3Result<()> {
    if grants.len() > MAX_GRANTS {
        return Err(s3_error!(
            MalformedACLError,
            "The XML you provided was not well-formed or did not validate against our published schema"
        ));
    }
    Ok(())
}

/// The grants of an AccessControlPolicy body.
fn from_policy(policy: AccessControlPolicy) -> S3Result<Vec<Grant>> {
    let malformed = || {
        s3_error!(
            MalformedACLError,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )
    };
    let mut out = Vec::new();
    for g in policy.grants.unwrap_or_default() {
        let grantee = g.grantee.ok_or_else(malformed)?;
        let grantee = match grantee.type_.as_str() {
            dto::Type::CANONICAL_USER => {
                Grantee::User(grantee.id.filter(|i| !i.is_empty()).ok_or_else(malformed)?)
            }
            dto::Type::GROUP => {
                let uri = grantee.uri.ok_or_else(malformed)?;
                if !known_group(&uri) {
                    return Err(invalid("Invalid group uri"));
                }
                Grantee::Group(uri)
            }
            dto::Type::AMAZON_CUSTOMER_BY_EMAIL => {
                return Err(s3_error!(
                    UnresolvableGrantByEmailAddress,
                    "The e-mail address you provided does not match any account on record."
                ));
            }
            _ => return Err(malformed()),
        };
        let permission = match g.permission.as_ref().map(|p| p.as_str()) {
            Some(dto::Permission::FULL_CONTROL) => Permission::FullControl,
            Some(dto::Permission::READ) => Permission::Read,
            Some(dto::Permission::READ_ACP) => Permission::ReadAcp,
            Some(dto::Permission::WRITE) => Permission::Write,
            Some(dto::Permission::WRITE_ACP) => Permission::WriteAcp,
            _ => return Err(malformed()),
        };
        out.push(Grant {
            grantee,
            permission,
        });
    }
    bounded(&out)?;
    Ok(out)
}

/// Whether an ACL asked of a bucket that disables ACLs is one S3 still
/// takes: none, `bucket-owner-full-control`, or grants giving only the
/// bucket owner full control (`private` too, when the bucket owner
/// writes: the same ACL).
fn owner_only(asked: &Asked, bucket_owner: &str, writer: &str) -> bool {
    match asked.canned.as_deref() {
        Some("bucket-owner-full-control") => true,
        Some("private") => writer == bucket_owner,
        Some(_) => false,
        None => asked.grants.iter().all(|g| {
            g.permission == Permission::FullControl
                && g.grantee == Grantee::User(bucket_owner.to_owned())
        }),
    }
}

/// The owner and grants of an object written to `bucket` by `writer`,
/// from the request's canned ACL and grant headers.
pub(crate) async fn for_write(
    gw: &Gateway,
    bucket: &BucketRecord,
    writer: &str,
    canned_acl: Option<&str>,
    headers: GrantHeaders<'_>,
) -> S3Result<(String, Vec<Grant>)> {
    let asked = from_headers(canned_acl, headers, &bucket.owner, false)?;
    for_object(gw, bucket, writer, asked).await
}

/// [`for_write`] of a PutObject, CreateMultipartUpload or CopyObject
/// input (each names its ACL fields alike).
macro_rules! written_acl {
    ($gw:expr, $bucket:expr, $writer:expr, $input:expr) => {
        $crate::s3::acl::for_write(
            $gw,
            $bucket,
            $writer,
            $input.acl.as_ref().map(|a| a.as_str()),
            $crate::s3::acl::GrantHeaders::object(
                $input.grant_full_control.as_deref(),
                $input.grant_read.as_deref(),
                $input.grant_read_acp.as_deref(),
                $input.grant_write_acp.as_deref(),
            ),
        )
    };
}
pub(crate) use written_acl;

/// The grants an object written to `bucket` gets and its owner, given
/// what the request asked: refused as S3 refuses them under its Object
/// Ownership and Public Access Block.
pub(crate) async fn for_object(
    gw: &Gateway,
    bucket: &BucketRecord,
    writer: &str,
    asked: Option<Asked>,
) -> S3Result<(String, Vec<Grant>)> {
    let o = ownership(gw, bucket).await?;
    if o == Ownership::BucketOwnerEnforced {
        if asked
            .as_ref()
            .is_some_and(|a| !owner_only(a, &bucket.owner, writer))
        {
            return Err(not_supported());
        }
        return Ok((bucket.owner.clone(), Vec::new()));
    }
    let Some(asked) = asked else {
        return Ok((writer.to_owned(), Vec::new()));
    };
    refuse_blocked_public(gw, bucket, &asked.grants).await?;
    let owner = match (o, asked.canned.as_deref()) {
        (Ownership::BucketOwnerPreferred, Some("bucket-owner-full-control")) => {
            bucket.owner.clone()
        }
        _ => writer.to_owned(),
    };
    // The owner's own full control is implied.
    let grants = asked
        .grants
        .into_iter()
        .filter(|g| {
            !(g.permission == Permission::FullControl && g.grantee == Grantee::User(owner.clone()))
        })
        .collect();
    Ok((owner, grants))
}

async fn refuse_blocked_public(
    gw: &Gateway,
    bucket: &BucketRecord,
    grants: &[Grant],
) -> S3Result<()> {
    if grants.iter().any(is_public_grant)
        && public_access_block(gw, bucket).await?.block_public_acls
    {
        return Err(s3_error!(AccessDenied, "Access Denied"));
    }
    Ok(())
}

/// An ACL as S3 writes it: the owner's full control, then the grants.
fn to_dto(owner: &str, grants: &[Grant]) -> (Owner, Vec<dto::Grant>) {
    let grantee = |g: &Grantee| match g {
        Grantee::User(id) => dto::Grantee {
            display_name: Some(id.clone()),
            id: Some(id.clone()),
            type_: dto::Type::from(dto::Type::CANONICAL_USER.to_owned()),
            email_address: None,
            uri: None,
        },
        Grantee::Group(uri) => dto::Grantee {
            display_name: None,
            id: None,
            type_: dto::Type::from(dto::Type::GROUP.to_owned()),
            email_address: None,
            uri: Some(uri.clone()),
        },
    };
    let permission = |p: Permission| {
        let name = match p {
            Permission::FullControl => dto::Permission::FULL_CONTROL,
            Permission::Read => dto::Permission::READ,
            Permission::Write => dto::Permission::WRITE,
            Permission::ReadAcp => dto::Permission::READ_ACP,
            Permission::WriteAcp => dto::Permission::WRITE_ACP,
        };
        dto::Permission::from(name.to_owned())
    };
    let owners = Grant {
        grantee: Grantee::User(owner.to_owned()),
        permission: Permission::FullControl,
    };
    let list = std::iter::once(&owners)
        .chain(grants)
        .map(|g| dto::Grant {
            grantee: Some(grantee(&g.grantee)),
            permission: Some(permission(g.permission)),
        })
        .collect();
    (super::owner(owner), list)
}

/// The ACL asked by a PutBucketAcl or PutObjectAcl: headers or a body,
/// not both.
fn asked_of(
    canned_acl: Option<&str>,
    headers: GrantHeaders<'_>,
    body: Option<AccessControlPolicy>,
    bucket_owner: &str,
    bucket: bool,
) -> S3Result<Asked> {
    let from_headers = from_headers(canned_acl, headers, bucket_owner, bucket)?;
    match (from_headers, body) {
        (Some(_), Some(_)) => Err(s3_error!(
            UnexpectedContent,
            "This request does not support content"
        )),
        (Some(a), None) => Ok(a),
        (None, Some(p)) => Ok(Asked {
            canned: None,
            grants: from_policy(p)?,
        }),
        (None, None) => Err(s3_error!(
            MissingSecurityHeader,
            "Your request was missing a required header"
        )),
    }
}

pub(super) async fn get_bucket(
    gw: &Gateway,
    req: S3Request<GetBucketAclInput>,
) -> S3Result<S3Response<GetBucketAclOutput>> {
    let who = Caller::of(&req);
    let bucket = who.bucket(gw, &req.input.bucket, "s3:GetBucketAcl").await?;
    let grants: Vec<Grant> = if ownership(gw, &bucket).await?.acls_enabled() {
        gw.meta
            .bucket_config(bucket.id, ConfigKind::Acl)
            .await?
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let (owner, grants) = to_dto(&bucket.owner, &grants);
    Ok(S3Response::new(GetBucketAclOutput {
        owner: Some(owner),
        grants: Some(grants),
    }))
}

/// Check and keep the ACL asked for a bucket (PutBucketAcl, CreateBucket).
pub(crate) async fn set_bucket(gw: &Gateway, bucket: &BucketRecord, asked: Asked) -> S3Result<()> {
    let grants: Vec<Grant> = asked
        .grants
        .into_iter()
        .filter(|g| {
            !(g.permission == Permission::FullControl
                && g.grantee == Grantee::User(bucket.owner.clone()))
        })
        .collect();
    if !ownership(gw, bucket).await?.acls_enabled() {
        if grants.is_empty() {
            return Ok(());
        }
        return Err(not_supported());
    }
    refuse_blocked_public(gw, bucket, &grants).await?;
    let value = (!grants.is_empty()).then_some(&grants);
    put_config(gw, bucket, ConfigKind::Acl, value).await
}

pub(super) async fn put_bucket(
    gw: &Gateway,
    req: S3Request<PutBucketAclInput>,
) -> S3Result<S3Response<PutBucketAclOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who.bucket(gw, &input.bucket, "s3:PutBucketAcl").await?;
    let headers = GrantHeaders {
        full_control: input.grant_full_control.as_deref(),
        read: input.grant_read.as_deref(),
        read_acp: input.grant_read_acp.as_deref(),
        write: input.grant_write.as_deref(),
        write_acp: input.grant_write_acp.as_deref(),
    };
    let asked = asked_of(
        input.acl.as_ref().map(|a| a.as_str()),
        headers,
        input.access_control_policy,
        &bucket.owner,
        true,
    )?;
    set_bucket(gw, &bucket, asked).await?;
    Ok(S3Response::new(PutBucketAclOutput::default()))
}

pub(super) async fn get_object(
    gw: &Gateway,
    req: S3Request<GetObjectAclInput>,
) -> S3Result<S3Response<GetObjectAclOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let asked = version_ref(input.version_id.as_deref())?;
    let action = versioned("s3:GetObjectAcl", input.version_id.as_deref());
    let bucket = who
        .object(gw, &input.bucket, &action, &input.key, asked)
        .await?;
    let e = object_version(gw, &bucket, &input.key, asked).await?;
    let (owner, grants) = if ownership(gw, &bucket).await?.acls_enabled() {
        to_dto(&e.owner, &e.grants)
    } else {
        to_dto(&bucket.owner, &[])
    };
    Ok(S3Response::new(GetObjectAclOutput {
        owner: Some(owner),
        grants: Some(grants),
        request_charged: None,
    }))
}

pub(super) async fn put_object(
    gw: &Gateway,
    req: S3Request<PutObjectAclInput>,
) -> S3Result<S3Response<PutObjectAclOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let version = version_ref(input.version_id.as_deref())?;
    let action = versioned("s3:PutObjectAcl", input.version_id.as_deref());
    let bucket = who
        .object(gw, &input.bucket, &action, &input.key, version)
        .await?;
    let headers = GrantHeaders::object(
        input.grant_full_control.as_deref(),
        input.grant_read.as_deref(),
        input.grant_read_acp.as_deref(),
        input.grant_write_acp.as_deref(),
    );
    if input.grant_write.is_some() {
        return Err(invalid("WRITE is not a permission of objects"));
    }
    let asked = asked_of(
        input.acl.as_ref().map(|a| a.as_str()),
        headers,
        input.access_control_policy,
        &bucket.owner,
        false,
    )?;
    let e = object_version(gw, &bucket, &input.key, version).await?;
    let o = ownership(gw, &bucket).await?;
    if !o.acls_enabled() {
        if owner_only(&asked, &bucket.owner, &e.owner) {
            return Ok(S3Response::new(PutObjectAclOutput::default()));
        }
        return Err(not_supported());
    }
    refuse_blocked_public(gw, &bucket, &asked.grants).await?;
    let grants = asked
        .grants
        .into_iter()
        .filter(|g| {
            !(g.permission == Permission::FullControl
                && g.grantee == Grantee::User(e.owner.clone()))
        })
        .collect();
    outcome(
        gw.meta
            .data(Command::SetGrants {
                bucket: bucket.id,
                key: input.key,
                version,
                grants,
            })
            .await?,
    )?;
    Ok(S3Response::new(PutObjectAclOutput::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, p: Permission) -> Grant {
        Grant {
            grantee: Grantee::User(id.into()),
            permission: p,
        }
    }

    #[test]
    fn canned_acls_and_grant_headers_read_as_s3_defines_them() {
        let none = GrantHeaders::default();
        assert_eq!(from_headers(None, none, "O", false).unwrap(), None);
        let a = from_headers(Some("public-read"), none, "O", false)
            .unwrap()
            .unwrap();
        assert_eq!(
            a.grants,
            [Grant {
                grantee: Grantee::Group(ALL_USERS.into()),
                permission: Permission::Read
            }]
        );
        let a = from_headers(Some("bucket-owner-full-control"), none, "O", false)
            .unwrap()
            .unwrap();
        assert_eq!(a.grants, [user("O", Permission::FullControl)]);
        assert!(from_headers(Some("bucket-owner-read"), none, "O", true).is_err());
        assert!(from_headers(Some("log-delivery-write"), none, "O", false).is_err());
        assert!(from_headers(Some("no-such-acl"), none, "O", false).is_err());
        let h = GrantHeaders {
            read: Some(
                r#"id="GKA", uri="http://acs.amazonaws.com/groups/global/AuthenticatedUsers""#,
            ),
            write_acp: Some("id=GKB"),
            ..Default::default()
        };
        let a = from_headers(None, h, "O", false).unwrap().unwrap();
        assert_eq!(
            a.grants,
            [
                user("GKA", Permission::Read),
                Grant {
                    grantee: Grantee::Group(AUTHENTICATED_USERS.into()),
                    permission: Permission::Read
                },
                user("GKB", Permission::WriteAcp),
            ]
        );
        assert!(
            from_headers(Some("private"), h, "O", false).is_err(),
            "both"
        );
        let email = GrantHeaders {
            read: Some(r#"emailAddress="a@example.com""#),
            ..Default::default()
        };
        assert_eq!(
            from_headers(None, email, "O", false)
                .unwrap_err()
                .code()
                .as_str(),
            "UnresolvableGrantByEmailAddress"
        );
        let bad_group = GrantHeaders {
            read: Some(r#"uri="http://example.com/group""#),
            ..Default::default()
        };
        assert!(from_headers(None, bad_group, "O", false).is_err());
    }

    #[test]
    fn a_bucket_without_acls_takes_only_the_owners_full_control() {
        let asked = |canned: Option<&str>, grants: Vec<Grant>| Asked {
            canned: canned.map(str::to_owned),
            grants,
        };
        assert!(owner_only(
            &asked(Some("bucket-owner-full-control"), vec![]),
            "O",
            "W"
        ));
        assert!(owner_only(&asked(Some("private"), vec![]), "O", "O"));
        assert!(!owner_only(&asked(Some("private"), vec![]), "O", "W"));
        assert!(!owner_only(&asked(Some("public-read"), vec![]), "O", "O"));
        assert!(owner_only(
            &asked(None, vec![user("O", Permission::FullControl)]),
            "O",
            "W"
        ));
        assert!(!owner_only(
            &asked(None, vec![user("W", Permission::Read)]),
            "O",
            "W"
        ));
    }
}
