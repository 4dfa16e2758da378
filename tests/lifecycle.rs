//! Bucket lifecycle through `aws-sdk-s3` against a real 6-node cluster
//! whose nodes run with a two-second lifecycle "day" (the test-only
//! `--lifecycle-day-secs`): configuration validation and round trip,
//! Expiration by prefix on an unversioned bucket, the versioned sequence
//! (current into a delete marker, noncurrent versions, then the lone
//! marker), AbortIncompleteMultipartUpload, and a COMPLIANCE-locked
//! version that outlives every rule until its date.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketVersioningStatus,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectLockMode, VersioningConfiguration,
};
use cairn_tests::{Cluster, Options, digest, pattern};
use std::time::{Duration, Instant, SystemTime};

/// Seconds a lifecycle day lasts on the test's nodes.
const DAY_S: u64 = 2;
/// How long the test waits for a rule to act: many days and passes.
const PATIENCE: Duration = Duration::from_secs(90);

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_owned()
}

fn rule(id: &str, prefix: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix(prefix).build())
}

fn expire_after(days: i32) -> LifecycleExpiration {
    LifecycleExpiration::builder().days(days).build()
}

async fn configure(s3: &Client, bucket: &str, rules: Vec<LifecycleRule>) {
    s3.put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
}

async fn put(s3: &Client, bucket: &str, key: &str, body: &[u8]) -> Option<String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap()
        .version_id()
        .map(str::to_owned)
}

async fn read(s3: &Client, bucket: &str, key: &str, version: Option<&str>) -> Option<String> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_version_id(version.map(str::to_owned))
        .send()
        .await
        .ok()?;
    Some(digest(&out.body.collect().await.unwrap().into_bytes()))
}

/// Every version and delete marker of the bucket, as (key, version id).
async fn versions(s3: &Client, bucket: &str) -> Vec<(String, String)> {
    let out = s3
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let mut all: Vec<(String, String)> = out
        .versions()
        .iter()
        .map(|v| {
            (
                v.key().unwrap().to_owned(),
                v.version_id().unwrap().to_owned(),
            )
        })
        .chain(out.delete_markers().iter().map(|m| {
            (
                m.key().unwrap().to_owned(),
                m.version_id().unwrap().to_owned(),
            )
        }))
        .collect();
    all.sort();
    all
}

/// Wait until `done` says so (or fail after [`PATIENCE`]).
async fn eventually<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < PATIENCE,
            "{what}: not within {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn enable_versioning() -> VersioningConfiguration {
    VersioningConfiguration::builder()
        .status(BucketVersioningStatus::Enabled)
        .build()
}

/// The date of an `x-amz-expiration` value naming `rule`.
fn expiry_date(header: &str, rule: &str) -> SystemTime {
    let (date, id) = header
        .strip_prefix("expiry-date=\"")
        .and_then(|r| r.split_once("\", rule-id=\""))
        .unwrap_or_else(|| panic!("malformed x-amz-expiration: {header}"));
    assert_eq!(id.strip_suffix('"'), Some(rule), "{header}");
    let t = DateTime::from_str(date, aws_sdk_s3::primitives::DateTimeFormat::HttpDate)
        .unwrap_or_else(|e| panic!("{header}: {e}"));
    SystemTime::try_from(t).unwrap()
}

#[tokio::test]
async fn lifecycle_rules_act_as_s3_documents() {
    let mut opts = Options::nodes(6);
    opts.lifecycle_day_s = Some(DAY_S);
    let cluster = Cluster::start_with(opts).await.unwrap();
    let s3 = cluster.s3();

    // Configuration: none, a refused one (nothing changes), a good one
    // read back, removed.
    s3.create_bucket().bucket("plain").send().await.unwrap();
    let e = s3
        .get_bucket_lifecycle_configuration()
        .bucket("plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchLifecycleConfiguration");
    let bad = s3
        .put_bucket_lifecycle_configuration()
        .bucket("plain")
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(
                    rule("zero", "")
                        .expiration(expire_after(0))
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad), "InvalidArgument");
    let e = s3
        .get_bucket_lifecycle_configuration()
        .bucket("plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchLifecycleConfiguration");
    let logs = rule("logs", "logs/")
        .expiration(expire_after(1))
        .build()
        .unwrap();
    configure(&s3, "plain", vec![logs.clone()]).await;
    let got = s3
        .get_bucket_lifecycle_configuration()
        .bucket("plain")
        .send()
        .await
        .unwrap();
    assert_eq!(got.rules(), std::slice::from_ref(&logs));

    // Expiration by prefix on an unversioned bucket. Answers about a
    // current version a rule expires say when, and which rule, as S3's
    // `x-amz-expiration` does: the next day boundary a day after it was
    // written.
    let kept = pattern(1, 300_000);
    let before = SystemTime::now();
    let written = s3
        .put_object()
        .bucket("plain")
        .key("logs/a")
        .body(ByteStream::from(pattern(2, 1 << 20)))
        .send()
        .await
        .unwrap();
    let announced = written.expiration().expect("x-amz-expiration on PUT");
    let due = expiry_date(announced, "logs");
    let earliest = before + Duration::from_secs(DAY_S);
    let latest = SystemTime::now() + Duration::from_secs(2 * DAY_S);
    assert!(
        due >= earliest - Duration::from_secs(1) && due <= latest,
        "{announced}"
    );
    let head = s3
        .head_object()
        .bucket("plain")
        .key("logs/a")
        .send()
        .await
        .unwrap();
    assert_eq!(head.expiration(), Some(announced));
    put(&s3, "plain", "keep/b", &kept).await;
    let other = s3
        .head_object()
        .bucket("plain")
        .key("keep/b")
        .send()
        .await
        .unwrap();
    assert_eq!(other.expiration(), None, "no rule selects keep/b");
    eventually("logs/a expires", || async {
        read(&s3, "plain", "logs/a", None).await.is_none()
    })
    .await;
    // Another day and pass later, the rest is untouched.
    tokio::time::sleep(Duration::from_secs(2 * DAY_S)).await;
    assert_eq!(
        read(&s3, "plain", "keep/b", None).await,
        Some(digest(&kept))
    );
    s3.delete_bucket_lifecycle()
        .bucket("plain")
        .send()
        .await
        .unwrap();
    let e = s3
        .get_bucket_lifecycle_configuration()
        .bucket("plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchLifecycleConfiguration");

    // A versioned bucket: the current version becomes a delete marker,
    // the noncurrent versions go, then the marker left alone.
    s3.create_bucket().bucket("versioned").send().await.unwrap();
    s3.put_bucket_versioning()
        .bucket("versioned")
        .versioning_configuration(enable_versioning())
        .send()
        .await
        .unwrap();
    put(&s3, "versioned", "k", &pattern(3, 1000)).await;
    put(&s3, "versioned", "k", &pattern(4, 2000)).await;
    let untouched = put(&s3, "versioned", "other/k", &pattern(5, 10))
        .await
        .unwrap();
    configure(
        &s3,
        "versioned",
        vec![
            rule("current", "k")
                .expiration(expire_after(1))
                .build()
                .unwrap(),
            rule("noncurrent", "k")
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(1)
                        .build(),
                )
                .build()
                .unwrap(),
            rule("markers", "k")
                .expiration(
                    LifecycleExpiration::builder()
                        .expired_object_delete_marker(true)
                        .build(),
                )
                .build()
                .unwrap(),
        ],
    )
    .await;
    eventually("every version of k goes", || async {
        versions(&s3, "versioned").await == [("other/k".to_owned(), untouched.clone())]
    })
    .await;

    // Incomplete uploads are aborted; their parts' space is given back.
    s3.create_bucket().bucket("uploads").send().await.unwrap();
    let up = s3
        .create_multipart_upload()
        .bucket("uploads")
        .key("tmp/big")
        .send()
        .await
        .unwrap();
    s3.upload_part()
        .bucket("uploads")
        .key("tmp/big")
        .upload_id(up.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from(pattern(6, 5 << 20)))
        .send()
        .await
        .unwrap();
    configure(
        &s3,
        "uploads",
        vec![
            rule("abort", "tmp/")
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(1)
                        .build(),
                )
                .build()
                .unwrap(),
        ],
    )
    .await;
    eventually("the upload is aborted", || async {
        s3.list_multipart_uploads()
            .bucket("uploads")
            .send()
            .await
            .unwrap()
            .uploads()
            .is_empty()
    })
    .await;

    // COMPLIANCE: the version outlives every rule until its date.
    s3.create_bucket()
        .bucket("locked")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let body = pattern(7, 100_000);
    let until = SystemTime::now() + Duration::from_secs(8 * DAY_S);
    let v = s3
        .put_object()
        .bucket("locked")
        .key("k")
        .body(ByteStream::from(body.clone()))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(DateTime::from(until))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    configure(
        &s3,
        "locked",
        vec![
            rule("current", "")
                .expiration(expire_after(1))
                .build()
                .unwrap(),
            rule("noncurrent", "")
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(1)
                        .build(),
                )
                .build()
                .unwrap(),
        ],
    )
    .await;
    // The current version expires into a delete marker (which Object Lock
    // allows); the version itself stays while its retention runs.
    eventually("a delete marker hides k", || async {
        read(&s3, "locked", "k", None).await.is_none()
    })
    .await;
    while SystemTime::now() + Duration::from_secs(DAY_S) < until {
        assert_eq!(
            read(&s3, "locked", "k", Some(&v)).await,
            Some(digest(&body)),
            "a COMPLIANCE version before its date"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eventually("the version goes after its date", || async {
        read(&s3, "locked", "k", Some(&v)).await.is_none()
    })
    .await;
}
