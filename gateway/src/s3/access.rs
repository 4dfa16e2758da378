//! Access control at the S3 API (`docs/design/access.md`): who asks and
//! with which condition keys ([`Caller`]), the one decision of
//! `cairn::access` for every handler, and the configurations it reads:
//! bucket policies, Public Access Block and Object Ownership.

use super::bucket::put_config;
use super::now_ms;
use crate::state::Gateway;
use cairn::access::{self, Ownership, PublicAccessBlock};
use cairn::policy::{self, Policy};
use cairn::record::{BucketRecord, ConfigKind, Grant, Grantee, Permission, VersionRef};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The condition keys of a request (lower-case names), gathered by the
/// server before `s3s` sees the request (so before its signature is
/// checked or its headers relaxed): facts about the request, not about
/// who sent it.
#[derive(Debug, Clone, Default)]
pub struct Context(pub BTreeMap<String, Vec<String>>);

/// The condition keys of an object version's tags, as policies name them
/// (condition keys are compared lower-case, tag keys included, as the
/// request's `s3:RequestObjectTag/<key>` are).
const EXISTING_OBJECT_TAG: &str = "s3:existingobjecttag/";

/// Whether `e` says a key or version is not there.
fn missing(e: &s3s::S3Error) -> bool {
    matches!(
        e.code(),
        s3s::S3ErrorCode::NoSuchKey | s3s::S3ErrorCode::NoSuchVersion
    )
}

/// Query parameters that are condition keys, and their keys.
const QUERY_KEYS: [(&str, &str); 4] = [
    ("prefix", "s3:prefix"),
    ("delimiter", "s3:delimiter"),
    ("max-keys", "s3:max-keys"),
    ("versionId", "s3:versionid"),
];

/// Object Lock headers and their condition keys.
const LOCK_KEYS: [(&str, &str); 3] = [
    ("x-amz-object-lock-mode", "s3:object-lock-mode"),
    (
        "x-amz-object-lock-retain-until-date",
        "s3:object-lock-retain-until-date",
    ),
    ("x-amz-object-lock-legal-hold", "s3:object-lock-legal-hold"),
];

impl Context {
    /// The condition keys of a request from `peer`.
    pub fn of(uri: &http::Uri, headers: &http::HeaderMap, peer: Option<SocketAddr>) -> Self {
        let mut c = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            c.entry(k.to_owned())
                .or_insert_with(Vec::new)
                .push(v.to_owned());
        };
        if let Some(p) = peer {
            put("aws:sourceip", &p.ip().to_canonical().to_string());
        }
        // The S3 endpoint serves plain HTTP (TLS comes with the security
        // work); a policy requiring TLS refuses every request.
        put("aws:securetransport", "false");
        put("aws:epochtime", &(now_ms() / 1000).to_string());
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(ua) = header("user-agent") {
            put("aws:useragent", ua);
        }
        if let Some(r) = header("referer") {
            put("aws:referer", r);
        }
        for (name, value) in headers {
            let name = name.as_str();
            if name.starts_with("x-amz-")
                && let Ok(v) = value.to_str()
            {
                put(&format!("s3:{name}"), v);
            }
        }
        for (h, key) in LOCK_KEYS {
            if let Some(v) = header(h) {
                put(key, v);
            }
        }
        if let Some(tags) = header("x-amz-tagging") {
            for pair in tags.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if let (Some(k), Some(v)) = (
                    super::tagging::percent_decode(k),
                    super::tagging::percent_decode(v),
                ) {
                    put(&format!("s3:requestobjecttag/{}", k.to_lowercase()), &v);
                    put("s3:requestobjecttagkeys", &k);
                }
            }
        }
        let query = uri.query().unwrap_or("");
        let signed_in_query = query
            .split('&')
            .any(|kv| kv.starts_with("X-Amz-Signature="));
        if signed_in_query {
            put("s3:authtype", "REST-QUERY-STRING");
        } else if headers.contains_key(http::header::AUTHORIZATION) {
            put("s3:authtype", "REST-HEADER");
        }
        if signed_in_query || headers.contains_key(http::header::AUTHORIZATION) {
            put("s3:signatureversion", "AWS4-HMAC-SHA256");
        }
        for kv in query.split('&') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            if let Some((_, key)) = QUERY_KEYS.iter().find(|(q, _)| *q == k)
                && let Some(v) = super::tagging::percent_decode(v)
            {
                put(key, &v);
            }
        }
        Self(c)
    }
}

fn denied() -> s3s::S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

fn no_such_bucket() -> s3s::S3Error {
    s3_error!(NoSuchBucket, "The specified bucket does not exist")
}

/// Who sent a request (its access key, none when it was not signed) and
/// its condition keys.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    key: Option<String>,
    context: Context,
}

/// What the decision reads of a bucket besides its record.
struct Settings {
    policy: Option<Policy>,
    block: PublicAccessBlock,
    ownership: Ownership,
    acl: Vec<Grant>,
}

/// A bucket's Object Ownership: `BucketOwnerEnforced` unless set; with
/// its controls deleted, objects belong to their writers and ACLs apply,
/// as in S3.
pub(crate) async fn ownership(gw: &Gateway, bucket: &BucketRecord) -> S3Result<Ownership> {
    let set: Option<Option<Ownership>> = gw
        .meta
        .bucket_config(bucket.id, ConfigKind::Ownership)
        .await?;
    Ok(match set {
        None => Ownership::BucketOwnerEnforced,
        Some(None) => Ownership::ObjectWriter,
        Some(Some(o)) => o,
    })
}

pub(crate) async fn public_access_block(
    gw: &Gateway,
    bucket: &BucketRecord,
) -> S3Result<PublicAccessBlock> {
    Ok(gw
        .meta
        .bucket_config(bucket.id, ConfigKind::PublicAccessBlock)
        .await?
        .unwrap_or_default())
}

impl Settings {
    async fn of(gw: &Gateway, bucket: &BucketRecord) -> S3Result<Self> {
        let text: Option<String> = gw.meta.bucket_config(bucket.id, ConfigKind::Policy).await?;
        let policy = match text {
            None => None,
            // Validated when it was put: a policy that no longer parses
            // would be a bug, and grants nothing.
            Some(t) => Some(policy::parse(&t, &bucket.name).map_err(|e| {
                crate::request_log::note_cause(format!("stored bucket policy: {e}"));
                s3_error!(InternalError, "The bucket policy could not be read.")
            })?),
        };
        Ok(Self {
            policy,
            block: public_access_block(gw, bucket).await?,
            ownership: ownership(gw, bucket).await?,
            acl: gw
                .meta
                .bucket_config(bucket.id, ConfigKind::Acl)
                .await?
                .unwrap_or_default(),
        })
    }
}

impl Caller {
    /// The caller of `req`: the access key s3s verified (or the one the
    /// lenient route handed on), none for an unsigned request.
    pub(crate) fn of<T>(req: &S3Request<T>) -> Self {
        let key = req
            .credentials
            .as_ref()
            .map(|c| c.access_key.clone())
            .or_else(|| {
                req.extensions
                    .get::<crate::server::TrustedCaller>()
                    .map(|t| t.0.clone())
            });
        let context = req.extensions.get::<Context>().cloned().unwrap_or_default();
        Self { key, context }
    }

    /// Its access key: AccessDenied for an anonymous request.
    pub(crate) fn signed(&self) -> S3Result<&str> {
        self.key.as_deref().ok_or_else(denied)
    }

    /// Whether it is the cluster's root key.
    pub(crate) fn is_root(&self, gw: &Gateway) -> bool {
        self.key.as_deref().is_some_and(|k| gw.is_root(k))
    }

    /// Who owns what it writes to `bucket`: the writer, or the bucket's
    /// owner for an anonymous writer.
    pub(crate) fn writer(&self, bucket: &BucketRecord) -> String {
        self.key.clone().unwrap_or_else(|| bucket.owner.clone())
    }

    /// The bucket `name`, if the caller may do `action` to it:
    /// NoSuchBucket or AccessDenied otherwise.
    pub(crate) async fn bucket(
        &self,
        gw: &Gateway,
        name: &str,
        action: &str,
    ) -> S3Result<BucketRecord> {
        let bucket = gw.meta.bucket(name).await?.ok_or_else(no_such_bucket)?;
        if self.may(gw, &bucket, action, None, None).await? {
            Ok(bucket)
        } else {
            Err(denied())
        }
    }

    /// The bucket `name`, if the caller may do `action` to its object
    /// `key` (version `version`, whose ACL is read where ACLs apply).
    pub(crate) async fn object(
        &self,
        gw: &Gateway,
        name: &str,
        action: &str,
        key: &str,
        version: Option<VersionRef>,
    ) -> S3Result<BucketRecord> {
        let bucket = gw.meta.bucket(name).await?.ok_or_else(no_such_bucket)?;
        if self.may(gw, &bucket, action, Some(key), version).await? {
            return Ok(bucket);
        }
        // S3 tells a reader who may list the bucket that the key (or
        // version) is not there, rather than that it is refused: listing
        // would tell as much.
        if action.starts_with("s3:GetObject")
            && let Err(e) = super::object::object_version(gw, &bucket, key, version).await
            && missing(&e)
        {
            return Err(self.missing(gw, &bucket, e).await);
        }
        Err(denied())
    }

    /// What a reader is told of a key (or version) that is not there:
    /// that it is missing if it may list the bucket (listing would tell
    /// as much), AccessDenied otherwise, as S3 answers.
    pub(crate) async fn missing(
        &self,
        gw: &Gateway,
        bucket: &BucketRecord,
        e: s3s::S3Error,
    ) -> s3s::S3Error {
        if missing(&e)
            && !self
                .may(gw, bucket, "s3:ListBucket", None, None)
                .await
                .unwrap_or(false)
        {
            return denied();
        }
        e
    }

    /// Whether the caller may do `action` to `bucket` (or its object
    /// `key`, version `version`).
    pub(crate) async fn may(
        &self,
        gw: &Gateway,
        bucket: &BucketRecord,
        action: &str,
        key: Option<&str>,
        version: Option<VersionRef>,
    ) -> S3Result<bool> {
        let mut decider = self.decider(gw, bucket).await?;
        // The version's tags, where the policy's conditions read them
        // (`s3:ExistingObjectTag/<key>`); a missing version has none.
        let mut entry = None;
        if let Some(key) = key
            && decider.reads_existing_tags()
            && let Ok(e) = super::object::object_version(gw, bucket, key, version).await
        {
            decider.existing_tags(&e.tags);
            entry = Some(e);
        }
        if decider.allows(action, key, None) {
            return Ok(true);
        }
        // An object's own ACL may grant what nothing else did.
        let Some(key) = key else { return Ok(false) };
        if !decider.object_acl_applies(action) {
            return Ok(false);
        }
        let e = match entry {
            Some(e) => e,
            None => match super::object::object_version(gw, bucket, key, version).await {
                Ok(e) => e,
                // Whether it exists is not told to a caller who may not read it.
                Err(_) => return Ok(false),
            },
        };
        // Its owner's full control is implied.
        let mut grants = e.grants;
        grants.push(Grant {
            grantee: Grantee::User(e.owner),
            permission: Permission::FullControl,
        });
        Ok(decider.allows(action, Some(key), Some(&grants)))
    }

    /// The decision for many actions on one bucket (its configurations
    /// read once).
    pub(crate) async fn decider<'a>(
        &'a self,
        gw: &Gateway,
        bucket: &'a BucketRecord,
    ) -> S3Result<Decider<'a>> {
        Ok(Decider {
            caller: self,
            bucket,
            root: self.is_root(gw),
            settings: Settings::of(gw, bucket).await?,
            object_tags: None,
        })
    }
}

/// The access decision on one bucket for one caller.
pub(crate) struct Decider<'a> {
    caller: &'a Caller,
    bucket: &'a BucketRecord,
    // The root key: anything but what a policy denies.
    root: bool,
    settings: Settings,
    // The request's condition keys plus `s3:existingobjecttag/*`, once
    // the version's tags are known.
    object_tags: Option<BTreeMap<String, Vec<String>>>,
}

impl Decider<'_> {
    /// Whether the caller may do `action` to the bucket or its object
    /// `key`, given the object version's grants where known.
    pub(crate) fn allows(
        &self,
        action: &str,
        key: Option<&str>,
        object_acl: Option<&[Grant]>,
    ) -> bool {
        let settings = &self.settings;
        let resource = policy::arn(&self.bucket.name, key);
        let req = policy::Request {
            principal: self.caller.key.as_deref(),
            action,
            resource: &resource,
            context: self.object_tags.as_ref().unwrap_or(&self.caller.context.0),
        };
        let view = access::Bucket {
            owner: &self.bucket.owner,
            allowed_keys: &self.bucket.allowed_keys,
            policy: settings.policy.as_ref(),
            block: settings.block,
            ownership: settings.ownership,
            acl: &settings.acl,
        };
        access::authorize(self.root, &view, &req, object_acl)
    }

    /// Whether the bucket policy reads `s3:ExistingObjectTag/<key>`.
    fn reads_existing_tags(&self) -> bool {
        self.settings
            .policy
            .as_ref()
            .is_some_and(|p| p.reads_key_prefix(EXISTING_OBJECT_TAG))
    }

    /// Decide with the tags of the object version concerned.
    fn existing_tags(&mut self, tags: &[(String, String)]) {
        let mut context = self.caller.context.0.clone();
        for (k, v) in tags {
            context.insert(
                format!("{EXISTING_OBJECT_TAG}{}", k.to_lowercase()),
                vec![v.clone()],
            );
        }
        self.object_tags = Some(context);
    }

    /// Whether an object's ACL could grant `action`.
    fn object_acl_applies(&self, action: &str) -> bool {
        !self.root
            && self.settings.ownership.acls_enabled()
            && access::acl_permission(action).is_some_and(|(_, on_object)| on_object)
    }
}

/// `s3:GetObject`, or `s3:GetObjectVersion` when a version is named (and
/// likewise for the other actions S3 splits so).
pub(crate) fn versioned(plain: &'static str, version: Option<&str>) -> String {
    match version {
        Some(_) => match plain.strip_suffix("Acl").or(plain.strip_suffix("Tagging")) {
            Some(stem) => format!("{stem}Version{}", &plain[stem.len()..]),
            None => format!("{plain}Version"),
        },
        None => plain.to_owned(),
    }
}

fn custom_error(code: &str, status: http::StatusCode, message: &str) -> s3s::S3Error {
    let mut e = s3s::S3Error::with_message(
        s3s::S3ErrorCode::Custom(code.to_owned().into()),
        message.to_owned(),
    );
    e.set_status_code(status);
    e
}

pub(super) async fn put_policy(
    gw: &Gateway,
    req: S3Request<PutBucketPolicyInput>,
) -> S3Result<S3Response<PutBucketPolicyOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who.bucket(gw, &input.bucket, "s3:PutBucketPolicy").await?;
    let parsed = policy::parse(&input.policy, &bucket.name)
        .map_err(|e| s3s::S3Error::with_message(s3s::S3ErrorCode::MalformedPolicy, e.0))?;
    if parsed.is_public() && public_access_block(gw, &bucket).await?.block_public_policy {
        return Err(denied());
    }
    put_config(gw, &bucket, ConfigKind::Policy, Some(&input.policy)).await?;
    Ok(S3Response::with_status(
        PutBucketPolicyOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

async fn stored_policy(gw: &Gateway, bucket: &BucketRecord) -> S3Result<String> {
    let text: Option<String> = gw.meta.bucket_config(bucket.id, ConfigKind::Policy).await?;
    text.ok_or_else(|| s3_error!(NoSuchBucketPolicy, "The bucket policy does not exist"))
}

pub(super) async fn get_policy(
    gw: &Gateway,
    req: S3Request<GetBucketPolicyInput>,
) -> S3Result<S3Response<GetBucketPolicyOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:GetBucketPolicy")
        .await?;
    Ok(S3Response::new(GetBucketPolicyOutput {
        policy: Some(stored_policy(gw, &bucket).await?),
    }))
}

pub(super) async fn delete_policy(
    gw: &Gateway,
    req: S3Request<DeleteBucketPolicyInput>,
) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:DeleteBucketPolicy")
        .await?;
    // Deleting a policy that is not there succeeds, as in S3.
    put_config::<String>(gw, &bucket, ConfigKind::Policy, None).await?;
    Ok(S3Response::with_status(
        DeleteBucketPolicyOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn policy_status(
    gw: &Gateway,
    req: S3Request<GetBucketPolicyStatusInput>,
) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:GetBucketPolicyStatus")
        .await?;
    let text = stored_policy(gw, &bucket).await?;
    let parsed = policy::parse(&text, &bucket.name)
        .map_err(|_| s3_error!(InternalError, "The bucket policy could not be read."))?;
    Ok(S3Response::new(GetBucketPolicyStatusOutput {
        policy_status: Some(PolicyStatus {
            is_public: Some(parsed.is_public()),
        }),
    }))
}

pub(super) async fn put_public_access_block(
    gw: &Gateway,
    req: S3Request<PutPublicAccessBlockInput>,
) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who
        .bucket(gw, &input.bucket, "s3:PutBucketPublicAccessBlock")
        .await?;
    let c = input.public_access_block_configuration;
    let block = PublicAccessBlock {
        block_public_acls: c.block_public_acls.unwrap_or(false),
        ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
        block_public_policy: c.block_public_policy.unwrap_or(false),
        restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
    };
    put_config(gw, &bucket, ConfigKind::PublicAccessBlock, Some(&block)).await?;
    Ok(S3Response::new(PutPublicAccessBlockOutput::default()))
}

pub(super) async fn get_public_access_block(
    gw: &Gateway,
    req: S3Request<GetPublicAccessBlockInput>,
) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:GetBucketPublicAccessBlock")
        .await?;
    let block: Option<PublicAccessBlock> = gw
        .meta
        .bucket_config(bucket.id, ConfigKind::PublicAccessBlock)
        .await?;
    let Some(b) = block else {
        return Err(custom_error(
            "NoSuchPublicAccessBlockConfiguration",
            http::StatusCode::NOT_FOUND,
            "The public access block configuration was not found",
        ));
    };
    Ok(S3Response::new(GetPublicAccessBlockOutput {
        public_access_block_configuration: Some(PublicAccessBlockConfiguration {
            block_public_acls: Some(b.block_public_acls),
            ignore_public_acls: Some(b.ignore_public_acls),
            block_public_policy: Some(b.block_public_policy),
            restrict_public_buckets: Some(b.restrict_public_buckets),
        }),
    }))
}

pub(super) async fn delete_public_access_block(
    gw: &Gateway,
    req: S3Request<DeletePublicAccessBlockInput>,
) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:PutBucketPublicAccessBlock")
        .await?;
    put_config::<PublicAccessBlock>(gw, &bucket, ConfigKind::PublicAccessBlock, None).await?;
    Ok(S3Response::with_status(
        DeletePublicAccessBlockOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

pub(super) async fn put_ownership(
    gw: &Gateway,
    req: S3Request<PutBucketOwnershipControlsInput>,
) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who
        .bucket(gw, &input.bucket, "s3:PutBucketOwnershipControls")
        .await?;
    let rules = input.ownership_controls.rules;
    let malformed = || {
        s3_error!(
            MalformedXML,
            "The XML you provided was not well-formed or did not validate against our published schema"
        )
    };
    let [rule] = rules.as_slice() else {
        return Err(malformed());
    };
    let o = match rule.object_ownership.as_str() {
        ObjectOwnership::BUCKET_OWNER_ENFORCED => Ownership::BucketOwnerEnforced,
        ObjectOwnership::BUCKET_OWNER_PREFERRED => Ownership::BucketOwnerPreferred,
        ObjectOwnership::OBJECT_WRITER => Ownership::ObjectWriter,
        _ => return Err(malformed()),
    };
    if o == Ownership::BucketOwnerEnforced {
        // ACLs can be disabled only once the bucket's grants are gone.
        let grants: Option<Vec<Grant>> = gw.meta.bucket_config(bucket.id, ConfigKind::Acl).await?;
        if grants.is_some_and(|g| !g.is_empty()) {
            return Err(s3_error!(
                InvalidBucketAclWithObjectOwnership,
                "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"
            ));
        }
    }
    put_config(gw, &bucket, ConfigKind::Ownership, Some(&Some(o))).await?;
    Ok(S3Response::new(PutBucketOwnershipControlsOutput::default()))
}

pub(super) async fn get_ownership(
    gw: &Gateway,
    req: S3Request<GetBucketOwnershipControlsInput>,
) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:GetBucketOwnershipControls")
        .await?;
    let set: Option<Option<Ownership>> = gw
        .meta
        .bucket_config(bucket.id, ConfigKind::Ownership)
        .await?;
    let o = match set {
        None => Ownership::BucketOwnerEnforced,
        Some(Some(o)) => o,
        Some(None) => {
            return Err(s3_error!(
                OwnershipControlsNotFoundError,
                "The bucket ownership controls were not found"
            ));
        }
    };
    let name = match o {
        Ownership::BucketOwnerEnforced => ObjectOwnership::BUCKET_OWNER_ENFORCED,
        Ownership::BucketOwnerPreferred => ObjectOwnership::BUCKET_OWNER_PREFERRED,
        Ownership::ObjectWriter => ObjectOwnership::OBJECT_WRITER,
    };
    Ok(S3Response::new(GetBucketOwnershipControlsOutput {
        ownership_controls: Some(OwnershipControls {
            rules: vec![OwnershipControlsRule {
                object_ownership: ObjectOwnership::from(name.to_owned()),
            }],
        }),
    }))
}

pub(super) async fn delete_ownership(
    gw: &Gateway,
    req: S3Request<DeleteBucketOwnershipControlsInput>,
) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:PutBucketOwnershipControls")
        .await?;
    put_config(gw, &bucket, ConfigKind::Ownership, Some(&None::<Ownership>)).await?;
    Ok(S3Response::with_status(
        DeleteBucketOwnershipControlsOutput::default(),
        http::StatusCode::NO_CONTENT,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_actions_are_named_as_s3_names_them() {
        assert_eq!(versioned("s3:GetObject", None), "s3:GetObject");
        assert_eq!(versioned("s3:GetObject", Some("v")), "s3:GetObjectVersion");
        assert_eq!(
            versioned("s3:DeleteObject", Some("v")),
            "s3:DeleteObjectVersion"
        );
        assert_eq!(
            versioned("s3:GetObjectAcl", Some("v")),
            "s3:GetObjectVersionAcl"
        );
        assert_eq!(
            versioned("s3:PutObjectTagging", Some("v")),
            "s3:PutObjectVersionTagging"
        );
    }

    #[test]
    fn condition_keys_come_from_the_request() {
        let uri: http::Uri = "/b?prefix=photos%2F2024&delimiter=%2F&max-keys=10&list-type=2"
            .parse()
            .unwrap();
        let mut h = http::HeaderMap::new();
        h.insert("x-amz-acl", "public-read".parse().unwrap());
        h.insert("x-amz-tagging", "Project=Blue&a=1".parse().unwrap());
        h.insert("authorization", "AWS4-HMAC-SHA256 ...".parse().unwrap());
        let peer: SocketAddr = "[::ffff:192.0.2.7]:5000".parse().unwrap();
        let c = Context::of(&uri, &h, Some(peer)).0;
        let one = |k: &str| c.get(k).map(|v| v[0].as_str());
        assert_eq!(one("s3:prefix"), Some("photos/2024"));
        assert_eq!(one("s3:delimiter"), Some("/"));
        assert_eq!(one("s3:max-keys"), Some("10"));
        assert_eq!(one("s3:x-amz-acl"), Some("public-read"));
        assert_eq!(one("s3:requestobjecttag/project"), Some("Blue"));
        assert_eq!(c["s3:requestobjecttagkeys"], ["Project", "a"]);
        assert_eq!(one("aws:sourceip"), Some("192.0.2.7"));
        assert_eq!(one("aws:securetransport"), Some("false"));
        assert_eq!(one("s3:authtype"), Some("REST-HEADER"));
        assert!(!c.contains_key("s3:versionid"));
    }
}
