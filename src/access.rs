//! Who may do what to a bucket and its objects: the one decision every S3
//! request goes through (`docs/design/access.md`), from the bucket's
//! owner, the keys the operator allowed, its policy, its ACLs, its Object
//! Ownership and its Public Access Block.
//!
//! In order, as S3 evaluates a request to a bucket of the caller's own
//! account:
//! 1. the root key may do anything;
//! 2. an explicit `Deny` of the bucket policy refuses (the bucket owner
//!    keeps Get/Put/DeleteBucketPolicy, so a policy cannot lock its owner
//!    out for good);
//! 3. the bucket owner may; keys the operator allowed on the bucket
//!    (`cairn bucket allow`, the equivalent of an identity policy) may use
//!    it, but not change its configuration ([`owner_only`]);
//! 4. an `Allow` of the policy grants, unless the policy is public and the
//!    bucket's Public Access Block restricts public buckets;
//! 5. an ACL grant grants, where ACLs are enabled (Object Ownership other
//!    than `BucketOwnerEnforced`), except grants to everyone or to every
//!    authenticated key when the Public Access Block ignores public ACLs;
//! 6. nothing else does.

use crate::policy::{Decision, Policy, Request};
use crate::record::{Grant, Grantee, Permission};
use serde::{Deserialize, Serialize};

/// The `AllUsers` group: everyone, anonymous callers included.
pub const ALL_USERS: &str = "http://acs.amazonaws.com/groups/global/AllUsers";
/// The `AuthenticatedUsers` group: every caller with a valid key.
pub const AUTHENTICATED_USERS: &str = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers";

/// A bucket's Public Access Block (all off unless set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicAccessBlock {
    /// Refuse requests that set public ACLs.
    pub block_public_acls: bool,
    /// Grant nothing through public ACL grants.
    pub ignore_public_acls: bool,
    /// Refuse a public bucket policy.
    pub block_public_policy: bool,
    /// With a public policy, only the owner and allowed keys get in.
    pub restrict_public_buckets: bool,
}

/// A bucket's Object Ownership.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ownership {
    /// The bucket owner owns every object; ACLs are disabled (S3's
    /// default for new buckets).
    #[default]
    BucketOwnerEnforced,
    /// Objects written with `bucket-owner-full-control` belong to the
    /// bucket owner; ACLs apply.
    BucketOwnerPreferred,
    /// The writer owns the object; ACLs apply.
    ObjectWriter,
}

impl Ownership {
    /// Whether ACLs grant anything.
    pub fn acls_enabled(self) -> bool {
        self != Self::BucketOwnerEnforced
    }
}

/// Whether a grant is public (to everyone or to every authenticated key).
pub fn is_public_grant(g: &Grant) -> bool {
    matches!(&g.grantee, Grantee::Group(uri) if uri == ALL_USERS || uri == AUTHENTICATED_USERS)
}

/// The ACL permission an action needs, on the bucket's ACL (`object:
/// false`) or the object's; `None`: no ACL grants it.
pub fn acl_permission(action: &str) -> Option<(Permission, bool)> {
    let a = action.to_ascii_lowercase();
    let a = a.strip_prefix("s3:")?;
    Some(match a {
        "listbucket" | "listbucketversions" | "listbucketmultipartuploads" => {
            (Permission::Read, false)
        }
        "putobject" | "deleteobject" | "deleteobjectversion" | "abortmultipartupload" => {
            (Permission::Write, false)
        }
        "getbucketacl" => (Permission::ReadAcp, false),
        "putbucketacl" => (Permission::WriteAcp, false),
        "getobject" | "getobjectversion" | "listmultipartuploadparts" => (Permission::Read, true),
        "getobjectacl" | "getobjectversionacl" => (Permission::ReadAcp, true),
        "putobjectacl" | "putobjectversionacl" => (Permission::WriteAcp, true),
        _ => return None,
    })
}

fn grants(list: &[Grant], who: Option<&str>, need: Permission, ignore_public: bool) -> bool {
    list.iter().any(|g| {
        let perm = g.permission == need || g.permission == Permission::FullControl;
        let to_caller = match &g.grantee {
            Grantee::User(id) => who == Some(id.as_str()),
            Grantee::Group(uri) if uri == ALL_USERS => !ignore_public,
            Grantee::Group(uri) if uri == AUTHENTICATED_USERS => who.is_some() && !ignore_public,
            Grantee::Group(_) => false,
        };
        perm && to_caller
    })
}

/// Whether an action changes a bucket's configuration (or bypasses its
/// Object Lock governance), which keys the operator allowed on a bucket
/// may not do: only its owner, the root key, or a policy grants it.
pub fn owner_only(action: &str) -> bool {
    let a = action.to_ascii_lowercase();
    a.starts_with("s3:putbucket")
        || a.starts_with("s3:deletebucket")
        || a == "s3:putlifecycleconfiguration"
        || a == "s3:bypassgovernanceretention"
}

/// What the decision reads of a bucket.
#[derive(Debug, Clone, Copy)]
pub struct Bucket<'a> {
    /// Its owner's access key id.
    pub owner: &'a str,
    /// Keys the operator allowed on it.
    pub allowed_keys: &'a [String],
    /// Its policy.
    pub policy: Option<&'a Policy>,
    /// Its Public Access Block.
    pub block: PublicAccessBlock,
    /// Its Object Ownership.
    pub ownership: Ownership,
    /// Its ACL grants (beyond the owner's full control).
    pub acl: &'a [Grant],
}

/// Whether `req` may go ahead. `root`: the caller is the cluster's root
/// key; `object_acl`: the grants of the object version concerned, for
/// object actions.
pub fn authorize(
    root: bool,
    bucket: &Bucket<'_>,
    req: &Request<'_>,
    object_acl: Option<&[Grant]>,
) -> bool {
    let who = req.principal;
    let is_owner = who == Some(bucket.owner);
    let decision = bucket
        .policy
        .map_or(Decision::NotApplicable, |p| p.evaluate(req));
    let policy_action = matches!(
        req.action.to_ascii_lowercase().as_str(),
        "s3:getbucketpolicy" | "s3:putbucketpolicy" | "s3:deletebucketpolicy"
    );
    // An explicit deny beats every allow, the owner's and the root key's
    // included; both may still read and replace the policy that denies,
    // so no policy locks a bucket for good (as S3 leaves an account's root
    // user the bucket policy).
    if decision == Decision::Deny && !((root || is_owner) && policy_action) {
        return false;
    }
    let allowed = who.is_some_and(|w| bucket.allowed_keys.iter().any(|k| k == w));
    if root || is_owner || (allowed && !owner_only(req.action)) {
        return true;
    }
    if decision == Decision::Allow {
        let restricted =
            bucket.block.restrict_public_buckets && bucket.policy.is_some_and(Policy::is_public);
        if !restricted {
            return true;
        }
    }
    if bucket.ownership.acls_enabled()
        && let Some((need, on_object)) = acl_permission(req.action)
    {
        let list = if on_object {
            object_acl.unwrap_or(&[])
        } else {
            bucket.acl
        };
        return grants(list, who, need, bucket.block.ignore_public_acls);
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{arn, parse};
    use std::collections::BTreeMap;

    const OWNER: &str = "GKOWNER";
    const OTHER: &str = "GKOTHER";
    const FRIEND: &str = "GKFRIEND";

    fn grant(grantee: Grantee, permission: Permission) -> Grant {
        Grant {
            grantee,
            permission,
        }
    }

    /// The policy matrix: each row is (who, action, key, policy, bucket
    /// ACL, object ACL, ownership, block) -> allowed. Taken from S3's
    /// documented rules: the owner always; others by an allow not denied;
    /// ACLs only where Object Ownership enables them; Public Access Block
    /// settings narrowing public grants and policies.
    #[test]
    fn the_access_matrix() {
        let public_read = parse(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"}]}"#,
            "b",
        )
        .unwrap();
        let friend_write = parse(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"GKFRIEND"},"Action":["s3:PutObject","s3:ListBucket"],"Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}]}"#,
            "b",
        )
        .unwrap();
        let deny_all = parse(
            r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::b","arn:aws:s3:::b/*"]}]}"#,
            "b",
        )
        .unwrap();
        let everyone_reads = [grant(Grantee::Group(ALL_USERS.into()), Permission::Read)];
        let authenticated_write = [grant(
            Grantee::Group(AUTHENTICATED_USERS.into()),
            Permission::Write,
        )];
        let friend_full = [grant(Grantee::User(FRIEND.into()), Permission::FullControl)];
        let none: [Grant; 0] = [];
        let restrict = PublicAccessBlock {
            restrict_public_buckets: true,
            ..Default::default()
        };
        let ignore_acls = PublicAccessBlock {
            ignore_public_acls: true,
            ..Default::default()
        };
        use Ownership::{BucketOwnerEnforced as Enforced, ObjectWriter as Writer};
        type Row<'a> = (
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            Option<&'a Policy>,
            &'a [Grant],
            &'a [Grant],
            Ownership,
            PublicAccessBlock,
            bool,
        );
        let no = PublicAccessBlock::default();
        let rows: Vec<Row<'_>> = vec![
            // No policy, no ACL: the owner only.
            (
                Some(OWNER),
                "s3:GetObject",
                Some("k"),
                None,
                &none,
                &none,
                Enforced,
                no,
                true,
            ),
            (
                Some(OWNER),
                "s3:DeleteBucket",
                None,
                None,
                &none,
                &none,
                Enforced,
                no,
                true,
            ),
            (
                Some(OTHER),
                "s3:GetObject",
                Some("k"),
                None,
                &none,
                &none,
                Enforced,
                no,
                false,
            ),
            (
                None,
                "s3:GetObject",
                Some("k"),
                None,
                &none,
                &none,
                Enforced,
                no,
                false,
            ),
            (
                None,
                "s3:ListBucket",
                None,
                None,
                &none,
                &none,
                Enforced,
                no,
                false,
            ),
            // A public-read policy: anyone reads, nobody else writes.
            (
                None,
                "s3:GetObject",
                Some("k"),
                Some(&public_read),
                &none,
                &none,
                Enforced,
                no,
                true,
            ),
            (
                Some(OTHER),
                "s3:GetObject",
                Some("k"),
                Some(&public_read),
                &none,
                &none,
                Enforced,
                no,
                true,
            ),
            (
                None,
                "s3:PutObject",
                Some("k"),
                Some(&public_read),
                &none,
                &none,
                Enforced,
                no,
                false,
            ),
            (
                None,
                "s3:ListBucket",
                None,
                Some(&public_read),
                &none,
                &none,
                Enforced,
                no,
                false,
            ),
            // ... unless the Public Access Block restricts public buckets.
            (
                None,
                "s3:GetObject",
                Some("k"),
                Some(&public_read),
                &none,
                &none,
                Enforced,
                restrict,
                false,
            ),
            (
                Some(OWNER),
                "s3:GetObject",
                Some("k"),
                Some(&public_read),
                &none,
                &none,
                Enforced,
                restrict,
                true,
            ),
            // A policy for one key: that key only.
            (
                Some(FRIEND),
                "s3:PutObject",
                Some("k"),
                Some(&friend_write),
                &none,
                &none,
                Enforced,
                no,
                true,
            ),
            (
                Some(FRIEND),
                "s3:ListBucket",
                None,
                Some(&friend_write),
                &none,
                &none,
                Enforced,
                no,
                true,
            ),
            (
                Some(FRIEND),
                "s3:DeleteObject",
                Some("k"),
                Some(&friend_write),
                &none,
                &none,
                Enforced,
                no,
                false,
            ),
            (
                Some(OTHER),
                "s3:PutObject",
                Some("k"),
                Some(&friend_write),
                &none,
                &none,
                Enforced,
                no,
                false,
            ),
            // A non-public policy is not restricted.
            (
                Some(FRIEND),
                "s3:PutObject",
                Some("k"),
                Some(&friend_write),
                &none,
                &none,
                Enforced,
                restrict,
                true,
            ),
            // ACLs: nothing while BucketOwnerEnforced, granted otherwise.
            (
                None,
                "s3:ListBucket",
                None,
                None,
                &everyone_reads,
                &none,
                Enforced,
                no,
                false,
            ),
            (
                None,
                "s3:ListBucket",
                None,
                None,
                &everyone_reads,
                &none,
                Writer,
                no,
                true,
            ),
            (
                None,
                "s3:GetObject",
                Some("k"),
                None,
                &none,
                &everyone_reads,
                Writer,
                no,
                true,
            ),
            (
                None,
                "s3:GetObject",
                Some("k"),
                None,
                &none,
                &everyone_reads,
                Writer,
                ignore_acls,
                false,
            ),
            (
                None,
                "s3:PutObject",
                Some("k"),
                None,
                &authenticated_write,
                &none,
                Writer,
                no,
                false,
            ),
            (
                Some(OTHER),
                "s3:PutObject",
                Some("k"),
                None,
                &authenticated_write,
                &none,
                Writer,
                no,
                true,
            ),
            (
                Some(OTHER),
                "s3:PutObject",
                Some("k"),
                None,
                &authenticated_write,
                &none,
                Writer,
                ignore_acls,
                false,
            ),
            (
                Some(FRIEND),
                "s3:GetObjectAcl",
                Some("k"),
                None,
                &none,
                &friend_full,
                Writer,
                ignore_acls,
                true,
            ),
            (
                Some(FRIEND),
                "s3:PutBucketPolicy",
                None,
                None,
                &friend_full,
                &none,
                Writer,
                no,
                false,
            ),
            // An explicit deny beats the owner's rights, the allowed keys
            // and every grant; the owner keeps its policy actions.
            (
                Some(OWNER),
                "s3:GetObject",
                Some("k"),
                Some(&deny_all),
                &none,
                &none,
                Enforced,
                no,
                false,
            ),
            (
                Some(OWNER),
                "s3:DeleteBucketPolicy",
                None,
                Some(&deny_all),
                &none,
                &none,
                Enforced,
                no,
                true,
            ),
            (
                Some(OWNER),
                "s3:PutBucketPolicy",
                None,
                Some(&deny_all),
                &none,
                &none,
                Enforced,
                no,
                true,
            ),
            (
                Some(FRIEND),
                "s3:GetObject",
                Some("k"),
                Some(&deny_all),
                &none,
                &friend_full,
                Writer,
                no,
                false,
            ),
            (
                Some("GKALLOWED"),
                "s3:GetObject",
                Some("k"),
                Some(&deny_all),
                &none,
                &none,
                Enforced,
                no,
                false,
            ),
            // Keys the operator allowed use the bucket as the owner does,
            // but do not change its configuration.
            (
                Some("GKALLOWED"),
                "s3:PutObject",
                Some("k"),
                None,
                &none,
                &none,
                Enforced,
                no,
                true,
            ),
            (
                Some("GKALLOWED"),
                "s3:PutBucketPolicy",
                None,
                None,
                &none,
                &none,
                Enforced,
                no,
                false,
            ),
            (
                Some("GKALLOWED"),
                "s3:BypassGovernanceRetention",
                Some("k"),
                None,
                &none,
                &none,
                Enforced,
                no,
                false,
            ),
            (
                Some(OWNER),
                "s3:PutBucketPolicy",
                None,
                None,
                &none,
                &none,
                Enforced,
                no,
                true,
            ),
        ];
        let allowed = ["GKALLOWED".to_owned()];
        for (i, (who, action, key, policy, bucket_acl, object_acl, ownership, block, want)) in
            rows.into_iter().enumerate()
        {
            let context = BTreeMap::new();
            let resource = arn("b", key);
            let req = Request {
                principal: who,
                action,
                resource: &resource,
                context: &context,
            };
            let bucket = Bucket {
                owner: OWNER,
                allowed_keys: &allowed,
                policy,
                block,
                ownership,
                acl: bucket_acl,
            };
            assert_eq!(
                authorize(false, &bucket, &req, key.map(|_| object_acl)),
                want,
                "row {i}: {who:?} {action} {key:?} ownership {ownership:?} block {block:?}"
            );
        }
        // The root key may do anything but what a policy denies, and may
        // always replace the policy that denies.
        let context = BTreeMap::new();
        let as_root = |action, policy| {
            let req = Request {
                principal: Some("GKROOT"),
                action,
                resource: "arn:aws:s3:::b/k",
                context: &context,
            };
            let bucket = Bucket {
                owner: OWNER,
                allowed_keys: &[],
                policy,
                block: restrict,
                ownership: Enforced,
                acl: &[],
            };
            authorize(true, &bucket, &req, None)
        };
        assert!(as_root("s3:GetObject", None));
        assert!(as_root("s3:PutBucketTagging", None));
        assert!(!as_root("s3:GetObject", Some(&deny_all)));
        assert!(as_root("s3:DeleteBucketPolicy", Some(&deny_all)));
    }
}
