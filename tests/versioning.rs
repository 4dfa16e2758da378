//! Bucket versioning through `aws-sdk-s3` against a real 6-node cluster:
//! version ids on every write, reads and deletes by id, delete markers,
//! the `null` version, ListObjectVersions order and paging, and concurrent
//! writers whose versions all list in order and read back intact.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
    VersioningConfiguration,
};
use cairn_tests::{Cluster, digest, pattern};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_owned()
}

async fn set_versioning(s3: &Client, bucket: &str, status: BucketVersioningStatus) {
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .unwrap();
}

async fn put(s3: &Client, bucket: &str, key: &str, body: Vec<u8>) -> Option<String> {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"))
        .version_id()
        .map(str::to_owned)
}

async fn get_version(s3: &Client, bucket: &str, key: &str, version: &str) -> Vec<u8> {
    let out = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .version_id(version)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key}?versionId={version}: {e:?}"));
    assert_eq!(out.version_id(), Some(version));
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// One listed version: (key, version id, latest, delete marker, ETag).
type Listed = (String, String, bool, bool, String);

/// Every version of a bucket, paged `page` at a time with both markers:
/// the versions and the delete markers, each in listing order (S3 lists
/// them as two kinds of element, and clients read them as two lists).
async fn all_versions(s3: &Client, bucket: &str, page: i32) -> (Vec<Listed>, Vec<Listed>) {
    let (mut versions, mut markers) = (Vec::new(), Vec::new());
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let r = s3
            .list_object_versions()
            .bucket(bucket)
            .max_keys(page)
            .set_key_marker(key_marker.clone())
            .set_version_id_marker(version_marker.clone())
            .send()
            .await
            .unwrap();
        assert!(r.versions().len() + r.delete_markers().len() <= page as usize);
        for v in r.versions() {
            versions.push((
                v.key().unwrap().to_owned(),
                v.version_id().unwrap().to_owned(),
                v.is_latest().unwrap(),
                false,
                v.e_tag().unwrap().to_owned(),
            ));
        }
        for m in r.delete_markers() {
            markers.push((
                m.key().unwrap().to_owned(),
                m.version_id().unwrap().to_owned(),
                m.is_latest().unwrap(),
                true,
                String::new(),
            ));
        }
        if r.is_truncated() != Some(true) {
            return (versions, markers);
        }
        key_marker = r.next_key_marker().map(str::to_owned);
        version_marker = r.next_version_id_marker().map(str::to_owned);
        assert!(key_marker.is_some(), "a truncated page says where to go on");
    }
}

fn ids(listed: &[Listed]) -> Vec<&str> {
    listed.iter().map(|v| v.1.as_str()).collect()
}

#[tokio::test]
async fn versions_delete_markers_and_the_null_version_as_s3_documents() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    let b = "ver";
    s3.create_bucket().bucket(b).send().await.unwrap();
    let never = s3.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(never.status(), None, "never enabled: no status at all");
    // Before versioning: the null version, and no version id header.
    assert_eq!(put(&s3, b, "k", b"zero".to_vec()).await, None);

    set_versioning(&s3, b, BucketVersioningStatus::Enabled).await;
    let got = s3.get_bucket_versioning().bucket(b).send().await.unwrap();
    assert_eq!(got.status(), Some(&BucketVersioningStatus::Enabled));

    // Three versions: inline, chunked, multipart.
    let small = pattern(1, 100);
    let big = pattern(2, (5 << 20) + 77);
    let v1 = put(&s3, b, "k", small.clone()).await.expect("a version id");
    let v2 = put(&s3, b, "k", big.clone()).await.expect("a version id");
    assert_ne!(v1, v2);
    let up = s3
        .create_multipart_upload()
        .bucket(b)
        .key("k")
        .send()
        .await
        .unwrap();
    let upload_id = up.upload_id().unwrap();
    let part1 = pattern(3, 5 << 20);
    let part2 = pattern(4, 1234);
    let mut parts = Vec::new();
    for (n, body) in [(1, part1.clone()), (2, part2.clone())] {
        let p = s3
            .upload_part()
            .bucket(b)
            .key("k")
            .upload_id(upload_id)
            .part_number(n)
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(p.e_tag().unwrap())
                .build(),
        );
    }
    let done = s3
        .complete_multipart_upload()
        .bucket(b)
        .key("k")
        .upload_id(upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v3 = done.version_id().expect("a version id").to_owned();
    let multipart = [part1, part2].concat();

    // Every version reads back, byte for byte, by its id; the latest
    // without one.
    assert_eq!(digest(&get_version(&s3, b, "k", &v1).await), digest(&small));
    assert_eq!(digest(&get_version(&s3, b, "k", &v2).await), digest(&big));
    assert_eq!(
        digest(&get_version(&s3, b, "k", &v3).await),
        digest(&multipart)
    );
    assert_eq!(get_version(&s3, b, "k", "null").await, b"zero");
    assert_eq!(
        digest(&cairn_tests::get_bytes(&s3, b, "k").await),
        digest(&multipart)
    );
    let head = s3
        .head_object()
        .bucket(b)
        .key("k")
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(big.len() as i64));
    assert_eq!(head.version_id(), Some(v2.as_str()));
    // Ids Cairn never gave out: 400 for a malformed one, 404 otherwise.
    let bad = s3
        .get_object()
        .bucket(b)
        .key("k")
        .version_id("not-a-version")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad.into_service_error()), "InvalidArgument");
    let gone = s3
        .get_object()
        .bucket(b)
        .key("k")
        .version_id("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&gone.into_service_error()), "NoSuchVersion");

    // A DELETE adds a delete marker: the key reads as absent, with the
    // marker's headers; the marker itself is not an object (405).
    let del = s3.delete_object().bucket(b).key("k").send().await.unwrap();
    assert_eq!(del.delete_marker(), Some(true));
    let marker = del.version_id().expect("the marker's id").to_owned();
    let hidden = s3.get_object().bucket(b).key("k").send().await.unwrap_err();
    let raw = hidden.raw_response().unwrap();
    assert_eq!(raw.status().as_u16(), 404);
    assert_eq!(raw.headers().get("x-amz-delete-marker"), Some("true"));
    assert_eq!(raw.headers().get("x-amz-version-id"), Some(marker.as_str()));
    let named = s3
        .head_object()
        .bucket(b)
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .unwrap_err();
    assert_eq!(named.raw_response().unwrap().status().as_u16(), 405);
    let listed = s3.list_objects_v2().bucket(b).send().await.unwrap();
    assert_eq!(listed.key_count(), Some(0), "current listings skip the key");
    // If-None-Match: * sees the key as absent behind its marker.
    let cond = s3
        .put_object()
        .bucket(b)
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"cond"))
        .send()
        .await
        .unwrap();
    let v4 = cond.version_id().unwrap().to_owned();
    let again = s3
        .put_object()
        .bucket(b)
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"lost"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again.into_service_error()), "PreconditionFailed");

    let listed = all_versions(&s3, b, 1000).await;
    assert_eq!(ids(&listed.0), [v4.as_str(), &v3, &v2, &v1, "null"]);
    assert_eq!(ids(&listed.1), [marker.as_str()]);
    let latest: Vec<bool> = listed.0.iter().map(|v| v.2).collect();
    assert_eq!(latest, [true, false, false, false, false]);
    assert!(!listed.1[0].2);
    // Paged one at a time, the same lists.
    assert_eq!(all_versions(&s3, b, 1).await, listed);

    // Copying an older version onto its key makes it the latest again.
    let copy = s3
        .copy_object()
        .bucket(b)
        .key("k")
        .copy_source(format!("{b}/k?versionId={v2}"))
        .send()
        .await
        .unwrap();
    assert_eq!(copy.copy_source_version_id(), Some(v2.as_str()));
    let v5 = copy.version_id().unwrap().to_owned();
    assert_eq!(
        digest(&cairn_tests::get_bytes(&s3, b, "k").await),
        digest(&big)
    );
    // A delete marker cannot be a copy source.
    let from_marker = s3
        .copy_object()
        .bucket(b)
        .key("other")
        .copy_source(format!("{b}/k?versionId={marker}"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&from_marker.into_service_error()), "InvalidRequest");

    // Deleting versions by id removes them for good; removing the latest
    // uncovers the one before.
    let d = s3
        .delete_object()
        .bucket(b)
        .key("k")
        .version_id(&v5)
        .send()
        .await
        .unwrap();
    assert_eq!(d.version_id(), Some(v5.as_str()));
    assert_eq!(cairn_tests::get_bytes(&s3, b, "k").await, b"cond");

    // Suspended: writes replace the null version; a DELETE makes the null
    // version a delete marker.
    set_versioning(&s3, b, BucketVersioningStatus::Suspended).await;
    assert_eq!(
        put(&s3, b, "k", b"n1".to_vec()).await.as_deref(),
        Some("null")
    );
    assert_eq!(
        put(&s3, b, "k", b"n2".to_vec()).await.as_deref(),
        Some("null")
    );
    let listed = all_versions(&s3, b, 2).await;
    assert_eq!(ids(&listed.0), ["null", &v4, &v3, &v2, &v1]);
    assert_eq!(ids(&listed.1), [marker.as_str()]);
    assert_eq!(get_version(&s3, b, "k", "null").await, b"n2");
    let del = s3.delete_object().bucket(b).key("k").send().await.unwrap();
    assert_eq!(
        (del.delete_marker(), del.version_id()),
        (Some(true), Some("null"))
    );

    // The bucket cannot be deleted while a version or marker is left.
    let busy = s3.delete_bucket().bucket(b).send().await.unwrap_err();
    assert_eq!(code(&busy.into_service_error()), "BucketNotEmpty");
    // DeleteObjects by version id, with a malformed id failing alone.
    let (versions, markers) = all_versions(&s3, b, 1000).await;
    let mut objects: Vec<ObjectIdentifier> = versions
        .into_iter()
        .chain(markers)
        .map(|v| {
            ObjectIdentifier::builder()
                .key(v.0)
                .version_id(v.1)
                .build()
                .unwrap()
        })
        .collect();
    objects.push(
        ObjectIdentifier::builder()
            .key("k")
            .version_id("bogus")
            .build()
            .unwrap(),
    );
    let out = s3
        .delete_objects()
        .bucket(b)
        .delete(
            Delete::builder()
                .set_objects(Some(objects))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 6);
    let markers: BTreeSet<&str> = out
        .deleted()
        .iter()
        .filter(|d| d.delete_marker() == Some(true))
        .filter_map(|d| d.delete_marker_version_id())
        .collect();
    assert_eq!(markers, BTreeSet::from(["null", marker.as_str()]));
    assert_eq!(out.errors().len(), 1);
    assert_eq!(out.errors()[0].code(), Some("InvalidArgument"));
    assert_eq!(all_versions(&s3, b, 1000).await, (vec![], vec![]));
    s3.delete_bucket().bucket(b).send().await.unwrap();
}

/// One acknowledged operation of the concurrent test.
#[derive(Debug, Clone)]
struct Done {
    key: String,
    version_id: String,
    /// `None` for a delete marker.
    digest: Option<String>,
    started: Instant,
    acked: Instant,
}

#[tokio::test]
async fn concurrent_writers_versions_all_list_in_order_and_read_back() {
    const KEYS: u64 = 50;
    const OPS: usize = 1000;
    const CLIENTS: usize = 8;
    let seed = cairn_tests::seed();
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    let b = "many";
    s3.create_bucket().bucket(b).send().await.unwrap();
    set_versioning(&s3, b, BucketVersioningStatus::Enabled).await;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let s3 = cluster.s3();
        tasks.push(tokio::spawn(async move {
            let mut x = seed ^ (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            let mut done = Vec::new();
            for i in 0..OPS / CLIENTS {
                let key = format!("key{:02}", next() % KEYS);
                let started = Instant::now();
                if next() % 10 < 7 {
                    // Sizes on both sides of the inline threshold.
                    let len = if next() % 4 == 0 {
                        40_000
                    } else {
                        (next() % 3000) as usize
                    };
                    let body = pattern(next(), len);
                    let v = put(&s3, b, &key, body.clone()).await.expect("versioned");
                    done.push(Done {
                        key,
                        version_id: v,
                        digest: Some(digest(&body)),
                        started,
                        acked: Instant::now(),
                    });
                } else {
                    let d = s3
                        .delete_object()
                        .bucket(b)
                        .key(&key)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("client {c} op {i}: {e:?}"));
                    assert_eq!(d.delete_marker(), Some(true));
                    done.push(Done {
                        key,
                        version_id: d.version_id().unwrap().to_owned(),
                        digest: None,
                        started,
                        acked: Instant::now(),
                    });
                }
            }
            done
        }));
    }
    let mut by_id: BTreeMap<String, Done> = BTreeMap::new();
    for t in tasks {
        for d in t.await.unwrap() {
            assert!(
                by_id.insert(d.version_id.clone(), d).is_none(),
                "ids are unique"
            );
        }
    }
    assert_eq!(by_id.len(), OPS);

    let (versions, markers) = all_versions(&s3, b, 37).await;
    // Every version and marker, once, each listed as its kind.
    let mut ids: BTreeSet<&str> = BTreeSet::new();
    for v in versions.iter().chain(&markers) {
        assert!(
            ids.insert(v.1.as_str()),
            "SEED={seed}: {} listed twice",
            v.1
        );
        assert_eq!(by_id[&v.1].key, v.0, "SEED={seed}");
        assert_eq!(
            by_id[&v.1].digest.is_none(),
            v.3,
            "SEED={seed}: marker or not"
        );
    }
    assert_eq!(
        ids,
        by_id.keys().map(String::as_str).collect(),
        "SEED={seed}: listed versions differ from acknowledged ones"
    );
    // Within each kind: keys in order, each key's newest first as real
    // time allows (one acknowledged before another started is older).
    for kind in [&versions, &markers] {
        let keys: Vec<&str> = kind.iter().map(|v| v.0.as_str()).collect();
        assert!(keys.is_sorted(), "SEED={seed}: keys out of order");
        for (i, v) in kind.iter().enumerate() {
            for older in kind[i + 1..].iter().take_while(|o| o.0 == v.0) {
                let (n, o) = (&by_id[&v.1], &by_id[&older.1]);
                assert!(
                    n.acked >= o.started,
                    "SEED={seed}: {}: {} listed newer than {}, acknowledged before it started",
                    v.0,
                    v.1,
                    older.1
                );
            }
        }
    }
    // One latest per key, newer than every other version of it.
    let mut per_key: BTreeMap<&str, Vec<&Listed>> = BTreeMap::new();
    for v in versions.iter().chain(&markers) {
        per_key.entry(v.0.as_str()).or_default().push(v);
    }
    for (key, all) in &per_key {
        let latest: Vec<&&Listed> = all.iter().filter(|v| v.2).collect();
        assert_eq!(latest.len(), 1, "SEED={seed}: {key}: one latest");
        let l = &by_id[&latest[0].1];
        for o in all.iter().filter(|v| !v.2) {
            assert!(
                l.acked >= by_id[&o.1].started,
                "SEED={seed}: {key}: latest {} acknowledged before {} started",
                latest[0].1,
                o.1
            );
        }
    }
    // Each version reads back byte-identical by id; each marker is one.
    for d in by_id.values() {
        match &d.digest {
            Some(want) => {
                let got = get_version(&s3, b, &d.key, &d.version_id).await;
                assert_eq!(
                    &digest(&got),
                    want,
                    "SEED={seed}: {} {}",
                    d.key,
                    d.version_id
                );
            }
            None => {
                let e = s3
                    .head_object()
                    .bucket(b)
                    .key(&d.key)
                    .version_id(&d.version_id)
                    .send()
                    .await
                    .unwrap_err();
                assert_eq!(e.raw_response().unwrap().status().as_u16(), 405);
            }
        }
    }
}
