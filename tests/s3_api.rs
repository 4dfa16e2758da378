//! S3 behaviour through the official `aws-sdk-s3` client against a real
//! 6-node (4+2) cluster: buckets, objects of every size class, metadata,
//! ranges, conditionals, listings, multipart, copy, checksums and errors.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, Delete,
    ObjectIdentifier,
};
use base64::Engine;
use cairn_tests::{Cluster, digest, get_bytes, pattern};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_owned()
}

#[tokio::test]
async fn buckets_objects_metadata_ranges_and_conditionals() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();

    s3.create_bucket().bucket("alpha").send().await.unwrap();
    // Buckets named like the gateway's own routes are ordinary buckets.
    for name in ["admin", "health", "metrics"] {
        s3.create_bucket().bucket(name).send().await.unwrap();
        cairn_tests::put_bytes(&s3, name, "v1/status", name.as_bytes().to_vec()).await;
        assert_eq!(get_bytes(&s3, name, "v1/status").await, name.as_bytes());
        let listed = s3.list_objects_v2().bucket(name).send().await.unwrap();
        assert_eq!(listed.key_count(), Some(1));
        s3.delete_object()
            .bucket(name)
            .key("v1/status")
            .send()
            .await
            .unwrap();
        s3.delete_bucket().bucket(name).send().await.unwrap();
    }
    // Re-creating one's own bucket: 200 in us-east-1 (S3's legacy
    // answer there), and nothing changes.
    s3.create_bucket().bucket("alpha").send().await.unwrap();
    s3.head_bucket().bucket("alpha").send().await.unwrap();
    let names: Vec<_> = s3
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert_eq!(names, ["alpha"]);
    let missing = s3.head_bucket().bucket("nope").send().await.unwrap_err();
    assert_eq!(
        missing.raw_response().map(|r| r.status().as_u16()),
        Some(404)
    );

    // Sizes across the inline threshold, chunk boundaries and the chunk size.
    for (i, size) in [
        0usize,
        1,
        16 << 10,
        (16 << 10) + 1,
        (1 << 20) - 1,
        1 << 20,
        (3 << 20) + 12345,
    ]
    .into_iter()
    .enumerate()
    {
        let body = pattern(i as u64, size);
        let key = format!("sizes/{size}");
        let put = s3
            .put_object()
            .bucket("alpha")
            .key(&key)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        let md5 = format!(
            "\"{}\"",
            hex::encode(<md5::Md5 as md5::Digest>::digest(&body))
        );
        assert_eq!(
            put.e_tag(),
            Some(md5.as_str()),
            "ETag is the MD5 of a single PUT"
        );
        let back = get_bytes(&s3, "alpha", &key).await;
        assert_eq!(back.len(), size);
        assert_eq!(digest(&back), digest(&body), "content of {key}");
    }

    // Metadata and standard headers round-trip.
    let body = pattern(99, 100_000);
    s3.put_object()
        .bucket("alpha")
        .key("meta.bin")
        .content_type("application/x-test")
        .cache_control("max-age=60")
        .content_disposition("attachment; filename=\"meta.bin\"")
        .content_language("en")
        .metadata("colour", "blue")
        .metadata("Mixed-Case", "Value With Spaces")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("alpha")
        .key("meta.bin")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("application/x-test"));
    assert_eq!(head.cache_control(), Some("max-age=60"));
    assert_eq!(
        head.content_disposition(),
        Some("attachment; filename=\"meta.bin\"")
    );
    assert_eq!(head.content_language(), Some("en"));
    assert_eq!(head.content_length(), Some(100_000));
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("colour").map(String::as_str), Some("blue"));
    assert_eq!(
        meta.get("mixed-case").map(String::as_str),
        Some("Value With Spaces")
    );

    // User metadata is limited to 2 KiB, as in S3.
    let e = s3
        .put_object()
        .bucket("alpha")
        .key("too-much-meta")
        .metadata("big", "x".repeat(2100))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "MetadataTooLarge");

    // Ranges.
    for (range, expect) in [
        ("bytes=0-9", &body[0..10]),
        ("bytes=99990-", &body[99_990..]),
        ("bytes=-5", &body[99_995..]),
        ("bytes=50000-50000", &body[50_000..50_001]),
    ] {
        let out = s3
            .get_object()
            .bucket("alpha")
            .key("meta.bin")
            .range(range)
            .send()
            .await
            .unwrap();
        assert!(out.content_range().is_some());
        let got = out.body.collect().await.unwrap().into_bytes();
        assert_eq!(&got[..], expect, "{range}");
    }
    let big = pattern(6, (3 << 20) + 12345);
    let out = s3
        .get_object()
        .bucket("alpha")
        .key(format!("sizes/{}", (3 << 20) + 12345))
        .range("bytes=1048000-2200000")
        .send()
        .await
        .unwrap();
    let got = out.body.collect().await.unwrap().into_bytes();
    assert_eq!(
        &got[..],
        &big[1_048_000..=2_200_000],
        "range across chunk boundaries"
    );
    let bad = s3
        .get_object()
        .bucket("alpha")
        .key("meta.bin")
        .range("bytes=200000-")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad.into_service_error()), "InvalidRange");

    // Conditionals.
    let etag = head.e_tag().unwrap().to_owned();
    s3.get_object()
        .bucket("alpha")
        .key("meta.bin")
        .if_match(&etag)
        .send()
        .await
        .unwrap();
    let e = s3
        .get_object()
        .bucket("alpha")
        .key("meta.bin")
        .if_match("\"0000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(412));
    let e = s3
        .get_object()
        .bucket("alpha")
        .key("meta.bin")
        .if_none_match(&etag)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(304));
    let past = aws_sdk_s3::primitives::DateTime::from_secs(1_000_000_000);
    let future = aws_sdk_s3::primitives::DateTime::from_secs(4_000_000_000);
    s3.get_object()
        .bucket("alpha")
        .key("meta.bin")
        .if_modified_since(past)
        .send()
        .await
        .unwrap();
    let e = s3
        .get_object()
        .bucket("alpha")
        .key("meta.bin")
        .if_modified_since(future)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(304));
    let e = s3
        .get_object()
        .bucket("alpha")
        .key("meta.bin")
        .if_unmodified_since(past)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(412));

    // Delete, missing keys, non-empty bucket.
    let e = s3.delete_bucket().bucket("alpha").send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "BucketNotEmpty");
    s3.delete_object()
        .bucket("alpha")
        .key("meta.bin")
        .send()
        .await
        .unwrap();
    let e = s3
        .get_object()
        .bucket("alpha")
        .key("meta.bin")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchKey");
    s3.delete_object()
        .bucket("alpha")
        .key("never-existed")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn listing_with_prefixes_delimiters_and_pagination() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("list").send().await.unwrap();
    let mut keys = Vec::new();
    for d in 0..5 {
        for f in 0..50 {
            keys.push(format!("dir{d}/file{f:03}"));
        }
    }
    for f in 0..30 {
        keys.push(format!("top{f:02}"));
    }
    keys.push("dir1/sub/deep".into());
    keys.push("a b+c/ünï".into());
    futures_for_each(&s3, &keys).await;
    keys.sort();

    // Flat, paginated by 100.
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket("list")
            .max_keys(100)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        seen.extend(out.contents().iter().map(|o| o.key().unwrap().to_owned()));
        if out.is_truncated() == Some(true) {
            token = out.next_continuation_token().map(str::to_owned);
        } else {
            break;
        }
    }
    assert_eq!(seen, keys);

    // Delimiter: CommonPrefixes in order with keys, paginated by 3.
    let mut entries = Vec::new();
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket("list")
            .delimiter("/")
            .max_keys(3)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap();
        entries.extend(
            out.common_prefixes()
                .iter()
                .map(|p| p.prefix().unwrap().to_owned()),
        );
        entries.extend(out.contents().iter().map(|o| o.key().unwrap().to_owned()));
        if out.is_truncated() == Some(true) {
            token = out.next_continuation_token().map(str::to_owned);
        } else {
            break;
        }
    }
    entries.sort();
    let mut expected: Vec<String> = ["a b+c/", "dir0/", "dir1/", "dir2/", "dir3/", "dir4/"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    expected.extend((0..30).map(|f| format!("top{f:02}")));
    expected.sort();
    assert_eq!(entries, expected);

    // Prefix + delimiter.
    let out = s3
        .list_objects_v2()
        .bucket("list")
        .prefix("dir1/")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    assert_eq!(out.contents().len(), 50);
    assert_eq!(
        out.common_prefixes()
            .iter()
            .map(|p| p.prefix().unwrap())
            .collect::<Vec<_>>(),
        ["dir1/sub/"]
    );
    // start-after
    let out = s3
        .list_objects_v2()
        .bucket("list")
        .start_after("top27")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.contents()
            .iter()
            .map(|o| o.key().unwrap())
            .collect::<Vec<_>>(),
        ["top28", "top29"]
    );
    // ListObjects v1 with marker.
    let out = s3
        .list_objects()
        .bucket("list")
        .prefix("dir4/")
        .marker("dir4/file047")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.contents()
            .iter()
            .map(|o| o.key().unwrap())
            .collect::<Vec<_>>(),
        ["dir4/file048", "dir4/file049"]
    );

    // DeleteObjects.
    let ids: Vec<ObjectIdentifier> = (0..50)
        .map(|f| {
            ObjectIdentifier::builder()
                .key(format!("dir0/file{f:03}"))
                .build()
                .unwrap()
        })
        .collect();
    let out = s3
        .delete_objects()
        .bucket("list")
        .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.deleted().len(), 50);
    let out = s3
        .list_objects_v2()
        .bucket("list")
        .prefix("dir0/")
        .send()
        .await
        .unwrap();
    assert_eq!(out.key_count(), Some(0));

    // Unversioned buckets list each object as its one `null` version, paged.
    let mut versions = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let out = s3
            .list_object_versions()
            .bucket("list")
            .prefix("dir2/")
            .max_keys(20)
            .set_key_marker(marker.clone())
            .send()
            .await
            .unwrap();
        for v in out.versions() {
            assert_eq!(v.version_id(), Some("null"));
            assert_eq!(v.is_latest(), Some(true));
            versions.push(v.key().unwrap().to_owned());
        }
        assert!(out.delete_markers().is_empty());
        if out.is_truncated() == Some(true) {
            marker = out.next_key_marker().map(str::to_owned);
        } else {
            break;
        }
    }
    assert_eq!(
        versions,
        (0..50)
            .map(|f| format!("dir2/file{f:03}"))
            .collect::<Vec<_>>()
    );
    // ACLs: the owner has full control (access is decided by keys and grants).
    let acl = s3.get_bucket_acl().bucket("list").send().await.unwrap();
    assert_eq!(acl.grants().len(), 1);
    assert_eq!(
        acl.grants()[0].permission().map(|p| p.as_str()),
        Some("FULL_CONTROL")
    );
    let acl = s3
        .get_object_acl()
        .bucket("list")
        .key("top00")
        .send()
        .await
        .unwrap();
    assert_eq!(
        acl.owner().and_then(|o| o.id()),
        Some(cluster.access_key.as_str())
    );
}

async fn futures_for_each(s3: &Client, keys: &[String]) {
    use futures_util_lite::run_bounded;
    run_bounded(keys, 16, |k| {
        let s3 = s3.clone();
        let k = k.clone();
        async move {
            s3.put_object()
                .bucket("list")
                .key(&k)
                .body(ByteStream::from(k.clone().into_bytes()))
                .send()
                .await
                .unwrap();
        }
    })
    .await;
}

mod futures_util_lite {
    use std::future::Future;
    /// Run `f` over `items` with at most `n` in flight.
    pub async fn run_bounded<T, F, Fut>(items: &[T], n: usize, f: F)
    where
        F: Fn(&T) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let mut set = tokio::task::JoinSet::new();
        for item in items {
            if set.len() >= n {
                set.join_next().await.unwrap().unwrap();
            }
            set.spawn(f(item));
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    }
}

#[tokio::test]
async fn multipart_copy_and_checksums() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("multipart").send().await.unwrap();

    // Multipart with CRC32 part checksums (what SDKs send by default).
    let parts_data: Vec<Vec<u8>> = vec![pattern(1, 5 << 20), pattern(2, 5 << 20), pattern(3, 1234)];
    let create = s3
        .create_multipart_upload()
        .bucket("multipart")
        .key("big")
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .content_type("video/x-test")
        .send()
        .await
        .unwrap();
    let upload_id = create.upload_id().unwrap().to_owned();
    let mut completed = Vec::new();
    let mut md5s = Vec::new();
    for (i, data) in parts_data.iter().enumerate() {
        let n = i as i32 + 1;
        let out = s3
            .upload_part()
            .bucket("multipart")
            .key("big")
            .upload_id(&upload_id)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(data.clone()))
            .send()
            .await
            .unwrap();
        md5s.extend_from_slice(&<md5::Md5 as md5::Digest>::digest(data));
        completed.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .set_checksum_crc32(out.checksum_crc32().map(str::to_owned))
                .build(),
        );
    }
    let parts = s3
        .list_parts()
        .bucket("multipart")
        .key("big")
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap();
    assert_eq!(parts.parts().len(), 3);
    let uploads = s3
        .list_multipart_uploads()
        .bucket("multipart")
        .send()
        .await
        .unwrap();
    assert_eq!(uploads.uploads().len(), 1);
    let done = s3
        .complete_multipart_upload()
        .bucket("multipart")
        .key("big")
        .upload_id(&upload_id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(completed))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let expected_etag = format!(
        "\"{}-3\"",
        hex::encode(<md5::Md5 as md5::Digest>::digest(&md5s))
    );
    assert_eq!(done.e_tag(), Some(expected_etag.as_str()));
    let whole: Vec<u8> = parts_data.concat();
    // With response checksum validation on (checksum mode), the composite
    // checksum must not make the SDK fail.
    let out = s3
        .get_object()
        .bucket("multipart")
        .key("big")
        .checksum_mode(ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(out.content_type(), Some("video/x-test"));
    assert!(
        out.checksum_crc32().is_some_and(|c| c.ends_with("-3")),
        "composite checksum: {:?}",
        out.checksum_crc32()
    );
    let back = out.body.collect().await.unwrap().into_bytes();
    assert_eq!(digest(&back), digest(&whole));
    let part2 = s3
        .get_object()
        .bucket("multipart")
        .key("big")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(part2.parts_count(), Some(3));
    assert_eq!(
        digest(&part2.body.collect().await.unwrap().into_bytes()),
        digest(&parts_data[1])
    );

    // Too-small parts are refused at completion.
    let small = s3
        .create_multipart_upload()
        .bucket("multipart")
        .key("small")
        .send()
        .await
        .unwrap();
    let sid = small.upload_id().unwrap();
    let mut sparts = Vec::new();
    for n in 1..=2 {
        let out = s3
            .upload_part()
            .bucket("multipart")
            .key("small")
            .upload_id(sid)
            .part_number(n)
            .body(ByteStream::from(vec![n as u8; 1000]))
            .send()
            .await
            .unwrap();
        sparts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(out.e_tag().unwrap())
                .build(),
        );
    }
    let e = s3
        .complete_multipart_upload()
        .bucket("multipart")
        .key("small")
        .upload_id(sid)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(sparts))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "EntityTooSmall");
    s3.abort_multipart_upload()
        .bucket("multipart")
        .key("small")
        .upload_id(sid)
        .send()
        .await
        .unwrap();
    let e = s3
        .list_parts()
        .bucket("multipart")
        .key("small")
        .upload_id(sid)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchUpload");

    // Copy shares content, with COPY and REPLACE metadata directives.
    s3.copy_object()
        .bucket("multipart")
        .key("copy")
        .copy_source("multipart/big")
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("multipart")
        .key("copy")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("video/x-test"));
    assert_eq!(
        digest(&get_bytes(&s3, "multipart", "copy").await),
        digest(&whole)
    );
    s3.copy_object()
        .bucket("multipart")
        .key("copy")
        .copy_source("multipart/copy")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .content_type("text/plain")
        .metadata("k", "v")
        .send()
        .await
        .unwrap();
    let head = s3
        .head_object()
        .bucket("multipart")
        .key("copy")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain"));
    assert_eq!(
        head.metadata().unwrap().get("k").map(String::as_str),
        Some("v")
    );

    // UploadPartCopy: a new object from ranges of an existing one.
    let up = s3
        .create_multipart_upload()
        .bucket("multipart")
        .key("assembled")
        .send()
        .await
        .unwrap();
    let uid = up.upload_id().unwrap();
    let ranges = [(0usize, 5 << 20), (5 << 20, (10 << 20) + 1234)];
    let mut copied = Vec::new();
    for (i, (from, to)) in ranges.iter().enumerate() {
        let out = s3
            .upload_part_copy()
            .bucket("multipart")
            .key("assembled")
            .upload_id(uid)
            .part_number(i as i32 + 1)
            .copy_source("multipart/big")
            .copy_source_range(format!("bytes={}-{}", from, to - 1))
            .send()
            .await
            .unwrap();
        let etag = out.copy_part_result().unwrap().e_tag().unwrap().to_owned();
        copied.push(
            CompletedPart::builder()
                .part_number(i as i32 + 1)
                .e_tag(etag)
                .build(),
        );
    }
    let e = s3
        .upload_part_copy()
        .bucket("multipart")
        .key("assembled")
        .upload_id(uid)
        .part_number(1)
        .copy_source("multipart/big")
        .copy_source_range("bytes=0-999999999")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidRange");
    s3.complete_multipart_upload()
        .bucket("multipart")
        .key("assembled")
        .upload_id(uid)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(copied))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        digest(&get_bytes(&s3, "multipart", "assembled").await),
        digest(&whole[..(10 << 20) + 1234])
    );

    // Flexible checksums: every algorithm, stored and returned.
    let body = pattern(77, 300_000);
    for algo in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ] {
        let key = format!("sum-{}", algo.as_str());
        s3.put_object()
            .bucket("multipart")
            .key(&key)
            .checksum_algorithm(algo.clone())
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        let head = s3
            .head_object()
            .bucket("multipart")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        let stored = [
            head.checksum_crc32(),
            head.checksum_crc32_c(),
            head.checksum_crc64_nvme(),
            head.checksum_sha1(),
            head.checksum_sha256(),
        ];
        assert_eq!(stored.iter().filter(|s| s.is_some()).count(), 1, "{key}");
        let back = s3
            .get_object()
            .bucket("multipart")
            .key(&key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(
            digest(&back.body.collect().await.unwrap().into_bytes()),
            digest(&body)
        );
    }
    // A wrong checksum header is refused, and nothing is stored.
    let e = s3
        .put_object()
        .bucket("multipart")
        .key("bad-sum")
        .checksum_sha256(B64.encode([0u8; 32]))
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "BadDigest");
    let e = s3
        .head_object()
        .bucket("multipart")
        .key("bad-sum")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
    // Content-MD5: wrong is BadDigest, malformed is InvalidDigest.
    let e = s3
        .put_object()
        .bucket("multipart")
        .key("bad-md5")
        .content_md5(B64.encode([1u8; 16]))
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "BadDigest");
    let e = s3
        .put_object()
        .bucket("multipart")
        .key("bad-md5")
        .content_md5("not-base64!")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidDigest");
    let e = s3
        .head_object()
        .bucket("multipart")
        .key("bad-md5")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(404));
}

#[tokio::test]
async fn authentication_and_permissions() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("private").send().await.unwrap();
    s3.put_object()
        .bucket("private")
        .key("k")
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .unwrap();

    // Wrong secret, unknown key.
    let wrong = cairn_tests::client(
        &cluster.endpoint(0),
        &cluster.access_key,
        "wrong-secret-wrong",
    );
    let e = wrong
        .get_object()
        .bucket("private")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "SignatureDoesNotMatch");
    let unknown = cairn_tests::client(&cluster.endpoint(0), "GKUNKNOWN000", "whatever-secret");
    let e = unknown.list_buckets().send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidAccessKeyId");
    // Refused writes change nothing.
    for (who, expected) in [
        (&wrong, "SignatureDoesNotMatch"),
        (&unknown, "InvalidAccessKeyId"),
    ] {
        let e = who
            .put_object()
            .bucket("private")
            .key("k")
            .body(ByteStream::from_static(b"overwritten"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e.into_service_error()), expected);
        let e = who
            .delete_object()
            .bucket("private")
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e.into_service_error()), expected);
        let e = who
            .create_bucket()
            .bucket("intruder")
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e.into_service_error()), expected);
    }
    assert_eq!(get_bytes(&s3, "private", "k").await, b"secret");
    assert!(s3.head_bucket().bucket("intruder").send().await.is_err());

    // A new key through the CLI: it owns what it creates, and nothing else.
    let out = cluster.cli(&["key", "create", "alice", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let alice = cairn_tests::client(
        &cluster.endpoint(0),
        key["access_key_id"].as_str().unwrap(),
        key["secret_access_key"].as_str().unwrap(),
    );
    let e = alice
        .get_object()
        .bucket("private")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "AccessDenied");
    alice.create_bucket().bucket("alices").send().await.unwrap();
    alice
        .put_object()
        .bucket("alices")
        .key("x")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let listed = alice.list_buckets().send().await.unwrap();
    assert_eq!(
        listed
            .buckets()
            .iter()
            .filter_map(|b| b.name())
            .collect::<Vec<_>>(),
        ["alices"]
    );
    let out = cluster.cli(&[
        "bucket",
        "allow",
        "private",
        key["access_key_id"].as_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(get_bytes(&alice, "private", "k").await, b"secret");

    // Presigned URLs: valid works, expired is AccessDenied.
    let presigned = s3
        .get_object()
        .bucket("private")
        .key("k")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                60,
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let body = reqwest::get(presigned.uri())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&body[..], b"secret");
    let expired = s3
        .get_object()
        .bucket("private")
        .key("k")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::builder()
                .start_time(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
                .expires_in(std::time::Duration::from_secs(60))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let r = reqwest::get(expired.uri()).await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<Code>AccessDenied</Code>")
    );

    // The status command sees the cluster.
    let out = cluster.cli(&["status", "--json"]);
    assert!(out.status.success());
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["layout"]["profile"]["data_shards"], 4);
    assert_eq!(status["nodes"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn transfers_beyond_the_limit_are_told_to_slow_down() {
    let mut opts = cairn_tests::Options::nodes(6);
    opts.max_concurrent_transfers = Some(1);
    let cluster = Cluster::start_with(opts).await.unwrap();
    let s3 = cluster.s3();
    s3.create_bucket().bucket("busy").send().await.unwrap();
    // Larger than the socket buffers can absorb, so the body stays unread.
    let body = pattern(8, 32 << 20);
    cairn_tests::put_bytes(&s3, "busy", "big", body.clone()).await;
    // A client that does not retry, to see the first answer.
    let config = s3
        .config()
        .to_builder()
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    let once = Client::from_conf(config);
    // The first GET holds the only transfer slot while its body is unread.
    let first = once
        .get_object()
        .bucket("busy")
        .key("big")
        .send()
        .await
        .unwrap();
    let e = once
        .get_object()
        .bucket("busy")
        .key("big")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(503));
    assert_eq!(code(&e.into_service_error()), "SlowDown");
    // A body the socket buffers absorb, so the client reads the early answer
    // instead of failing to send the rest of a body the gateway refused.
    let e = once
        .put_object()
        .bucket("busy")
        .key("other")
        .body(ByteStream::from(pattern(9, 256 << 10)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "SlowDown");
    // Small (inline) objects need no slot. (A fresh connection: the gateway
    // closes one whose request body it refused to read.)
    let once = cluster.s3_once_at(0);
    cairn_tests::put_bytes(&once, "busy", "small", b"tiny".to_vec()).await;
    assert_eq!(get_bytes(&once, "busy", "small").await, b"tiny");
    // Once the first body is read, the slot is free again.
    assert_eq!(
        digest(&first.body.collect().await.unwrap().into_bytes()),
        digest(&body)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match once.get_object().bucket("busy").key("big").send().await {
            Ok(out) => {
                assert_eq!(
                    digest(&out.body.collect().await.unwrap().into_bytes()),
                    digest(&body)
                );
                break;
            }
            Err(e) => {
                assert_eq!(code(&e.into_service_error()), "SlowDown");
                assert!(
                    std::time::Instant::now() < deadline,
                    "the slot was never freed"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

#[tokio::test]
async fn virtual_host_style_addressing() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("vhost").send().await.unwrap();
    // A client that addresses buckets as `BUCKET.localhost:PORT`; the
    // requests go to the gateway's loopback address.
    let port = cluster.endpoint(0).rsplit(':').next().unwrap().to_owned();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(format!("http://localhost:{port}"))
        .force_path_style(false)
        .credentials_provider(aws_credential_types::Credentials::new(
            &cluster.access_key,
            &cluster.secret_key,
            None,
            None,
            "t",
        ))
        .build();
    let vhost = Client::from_conf(config);
    let presign = || {
        aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(60))
            .unwrap()
    };
    let put = vhost
        .put_object()
        .bucket("vhost")
        .key("dir/obj")
        .presigned(presign())
        .await
        .unwrap();
    assert!(
        put.uri()
            .starts_with(&format!("http://vhost.localhost:{port}/dir/obj")),
        "{}",
        put.uri()
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let http = reqwest::Client::builder()
        .resolve("vhost.localhost", addr)
        .build()
        .unwrap();
    let body = pattern(3, 50_000);
    let r = http.put(put.uri()).body(body.clone()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{}", r.text().await.unwrap());
    // Written through the virtual host, read path-style, and the reverse.
    assert_eq!(
        digest(&get_bytes(&s3, "vhost", "dir/obj").await),
        digest(&body)
    );
    let get = vhost
        .get_object()
        .bucket("vhost")
        .key("dir/obj")
        .presigned(presign())
        .await
        .unwrap();
    let got = http
        .get(get.uri())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(digest(&got), digest(&body));
    // A virtual-host bucket with a missing key is that bucket's NoSuchKey.
    let missing = vhost
        .get_object()
        .bucket("vhost")
        .key("absent")
        .presigned(presign())
        .await
        .unwrap();
    let r = http.get(missing.uri()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert!(
        r.headers().contains_key("x-amz-request-id"),
        "S3 responses carry a request id"
    );
    let id = r.headers()["x-amz-request-id"].to_str().unwrap().to_owned();
    let xml = r.text().await.unwrap();
    assert!(xml.contains("<Code>NoSuchKey</Code>"), "{xml}");
    assert!(
        xml.contains(&format!("<RequestId>{id}</RequestId>")),
        "the error body names the request: {xml}"
    );
}
