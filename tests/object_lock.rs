//! Object Lock through `aws-sdk-s3` against a real 6-node cluster: a
//! bucket created with it, its default retention, retention and legal
//! holds per version, and a COMPLIANCE-locked version surviving every way
//! of deleting it (DELETE and DeleteObjects by version, with the bypass
//! header, shortening or removing its retention, deleting the bucket,
//! the admin API) until its date, after which it can go.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, Delete, ObjectIdentifier, ObjectLockConfiguration,
    ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode,
    ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule, VersioningConfiguration,
};
use cairn_tests::{Cluster, digest, pattern};
use std::time::{Duration, SystemTime};

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_owned()
}

fn in_secs(s: u64) -> DateTime {
    DateTime::from(SystemTime::now() + Duration::from_secs(s))
}

async fn put(s3: &Client, b: &str, key: &str, body: &[u8]) -> String {
    s3.put_object()
        .bucket(b)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned()
}

async fn retention(s3: &Client, b: &str, key: &str, v: &str) -> Option<(String, i64)> {
    let r = s3
        .get_object_retention()
        .bucket(b)
        .key(key)
        .version_id(v)
        .send()
        .await
        .ok()?;
    let r = r.retention()?;
    Some((r.mode()?.as_str().to_owned(), r.retain_until_date()?.secs()))
}

/// Every deletion path for `key`'s version `v`: each must be refused.
async fn try_every_deletion(cluster: &Cluster, s3: &Client, b: &str, key: &str, v: &str) {
    let e = s3
        .delete_object()
        .bucket(b)
        .key(key)
        .version_id(v)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "AccessDenied",
        "DELETE ?versionId"
    );
    let out = s3
        .delete_objects()
        .bucket(b)
        .bypass_governance_retention(true)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key(key)
                        .version_id(v)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.deleted().is_empty(), "DeleteObjects");
    assert_eq!(out.errors()[0].code(), Some("AccessDenied"));
    let e = s3.delete_bucket().bucket(b).send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "BucketNotEmpty");
    let admin = cluster
        .admin_delete(&format!("/_cairn/admin/v1/buckets/{b}"))
        .await;
    assert!(admin.is_err(), "the admin API deleted a locked bucket");
}

#[tokio::test]
async fn object_lock_as_s3_documents_it() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();

    // A bucket without Object Lock answers as S3 does.
    s3.create_bucket().bucket("plain").send().await.unwrap();
    let e = s3
        .get_object_lock_configuration()
        .bucket("plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "ObjectLockConfigurationNotFoundError"
    );
    let e = s3
        .put_object()
        .bucket("plain")
        .key("k")
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_secs(3600))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidRequest");
    let listed = s3.list_objects_v2().bucket("plain").send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "a refused PUT leaves nothing");
    // Object Lock on an unversioned bucket: versioning must be enabled.
    let lock_on = ObjectLockConfiguration::builder()
        .object_lock_enabled(ObjectLockEnabled::Enabled)
        .build();
    let e = s3
        .put_object_lock_configuration()
        .bucket("plain")
        .object_lock_configuration(lock_on.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidBucketState");

    // Created with Object Lock: versioning is on and stays on.
    let b = "vault";
    s3.create_bucket()
        .bucket(b)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let v = s3.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
    let e = s3
        .put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidBucketState");
    let cfg = s3
        .get_object_lock_configuration()
        .bucket(b)
        .send()
        .await
        .unwrap();
    let cfg = cfg.object_lock_configuration().unwrap();
    assert_eq!(cfg.object_lock_enabled(), Some(&ObjectLockEnabled::Enabled));
    assert!(cfg.rule().is_none());

    // Default retention: validated, then applied to versions that name none.
    let rule = |days: Option<i32>, years: Option<i32>| {
        ObjectLockConfiguration::builder()
            .object_lock_enabled(ObjectLockEnabled::Enabled)
            .rule(
                ObjectLockRule::builder()
                    .default_retention(
                        DefaultRetention::builder()
                            .mode(ObjectLockRetentionMode::Governance)
                            .set_days(days)
                            .set_years(years)
                            .build(),
                    )
                    .build(),
            )
            .build()
    };
    for (days, years, want) in [
        (Some(1), Some(1), "MalformedXML"),
        (None, None, "MalformedXML"),
        (Some(0), None, "InvalidArgument"),
        (None, Some(101), "InvalidArgument"),
    ] {
        let e = s3
            .put_object_lock_configuration()
            .bucket(b)
            .object_lock_configuration(rule(days, years))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e.into_service_error()), want, "{days:?} {years:?}");
    }
    s3.put_object_lock_configuration()
        .bucket(b)
        .object_lock_configuration(rule(Some(1), None))
        .send()
        .await
        .unwrap();
    let governed = put(&s3, b, "g", b"governed").await;
    let (mode, until) = retention(&s3, b, "g", &governed)
        .await
        .expect("default retention");
    assert_eq!(mode, "GOVERNANCE");
    let day_from_now = in_secs(86_400).secs();
    assert!(
        (until - day_from_now).abs() < 120,
        "{until} vs {day_from_now}"
    );
    // GOVERNANCE: refused without the bypass, allowed to the owner with it.
    let e = s3
        .delete_object()
        .bucket(b)
        .key("g")
        .version_id(&governed)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    // Another key allowed on the bucket has no bypass permission.
    let (id, secret) = cluster.create_key("other").await.unwrap();
    let out = cluster.cli(&["bucket", "allow", b, &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other = cairn_tests::client(&cluster.endpoint(0), &id, &secret);
    let e = other
        .delete_object()
        .bucket(b)
        .key("g")
        .version_id(&governed)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    s3.delete_object()
        .bucket(b)
        .key("g")
        .version_id(&governed)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap();
    s3.put_object_lock_configuration()
        .bucket(b)
        .object_lock_configuration(lock_on)
        .send()
        .await
        .unwrap();

    // COMPLIANCE, set on PUT: the lock shows on HEAD, and holds.
    let body = pattern(9, (2 << 20) + 3);
    let until = in_secs(20);
    let locked = s3
        .put_object()
        .bucket(b)
        .key("c")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(until)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let head = s3
        .head_object()
        .bucket(b)
        .key("c")
        .version_id(&locked)
        .send()
        .await
        .unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));
    assert_eq!(
        head.object_lock_retain_until_date().map(|d| d.secs()),
        Some(until.secs())
    );
    try_every_deletion(&cluster, &s3, b, "c", &locked).await;
    // Its retention is never shortened, made GOVERNANCE or removed, by
    // anyone, bypass or not.
    for (mode, secs) in [
        (ObjectLockRetentionMode::Compliance, 2),
        (ObjectLockRetentionMode::Governance, 3600),
    ] {
        let e = s3
            .put_object_retention()
            .bucket(b)
            .key("c")
            .version_id(&locked)
            .bypass_governance_retention(true)
            .retention(
                ObjectLockRetention::builder()
                    .mode(mode.clone())
                    .retain_until_date(in_secs(secs))
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e.into_service_error()), "AccessDenied", "{mode:?}");
    }
    let e = s3
        .put_object_retention()
        .bucket(b)
        .key("c")
        .version_id(&locked)
        .bypass_governance_retention(true)
        .retention(ObjectLockRetention::builder().build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    // A delete marker hides it; it is still there, intact.
    s3.delete_object().bucket(b).key("c").send().await.unwrap();
    let got = s3
        .get_object()
        .bucket(b)
        .key("c")
        .version_id(&locked)
        .send()
        .await
        .unwrap();
    assert_eq!(
        digest(&got.body.collect().await.unwrap().into_bytes()),
        digest(&body)
    );
    // A retention date in the past is refused.
    let e = s3
        .put_object_retention()
        .bucket(b)
        .key("c")
        .version_id(&locked)
        .retention(
            ObjectLockRetention::builder()
                .mode(ObjectLockRetentionMode::Compliance)
                .retain_until_date(DateTime::from_secs(1))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidArgument");

    // A legal hold holds a version without retention until released.
    let held = put(&s3, b, "h", b"held").await;
    let e = s3
        .get_object_retention()
        .bucket(b)
        .key("h")
        .version_id(&held)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&e.into_service_error()),
        "NoSuchObjectLockConfiguration"
    );
    let hold = |on: bool| {
        ObjectLockLegalHold::builder()
            .status(if on {
                ObjectLockLegalHoldStatus::On
            } else {
                ObjectLockLegalHoldStatus::Off
            })
            .build()
    };
    s3.put_object_legal_hold()
        .bucket(b)
        .key("h")
        .version_id(&held)
        .legal_hold(hold(true))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object_legal_hold()
        .bucket(b)
        .key("h")
        .version_id(&held)
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.legal_hold().and_then(|h| h.status()),
        Some(&ObjectLockLegalHoldStatus::On)
    );
    try_every_deletion(&cluster, &s3, b, "h", &held).await;
    s3.put_object_legal_hold()
        .bucket(b)
        .key("h")
        .version_id(&held)
        .legal_hold(hold(false))
        .send()
        .await
        .unwrap();
    s3.delete_object()
        .bucket(b)
        .key("h")
        .version_id(&held)
        .send()
        .await
        .unwrap();

    // After its date, the COMPLIANCE version can go, and then the bucket.
    let wait = until.secs() - in_secs(0).secs() + 1;
    tokio::time::sleep(Duration::from_secs(wait.max(0) as u64)).await;
    s3.delete_object()
        .bucket(b)
        .key("c")
        .version_id(&locked)
        .send()
        .await
        .unwrap();
    let versions = s3.list_object_versions().bucket(b).send().await.unwrap();
    let mut left: Vec<ObjectIdentifier> = Vec::new();
    for m in versions.delete_markers() {
        left.push(
            ObjectIdentifier::builder()
                .key(m.key().unwrap())
                .version_id(m.version_id().unwrap())
                .build()
                .unwrap(),
        );
    }
    assert!(versions.versions().is_empty(), "{:?}", versions.versions());
    s3.delete_objects()
        .bucket(b)
        .delete(Delete::builder().set_objects(Some(left)).build().unwrap())
        .send()
        .await
        .unwrap();
    s3.delete_bucket().bucket(b).send().await.unwrap();
}
