//! Object and bucket tags through `aws-sdk-s3` against a real 6-node
//! cluster: tags on PUT, copy and multipart; Put/Get/DeleteObjectTagging
//! by version; bucket tags; S3's limits and error codes, with nothing
//! changed by a refused request.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Tag, Tagging,
    TaggingDirective, VersioningConfiguration,
};
use cairn_tests::Cluster;

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_owned()
}

fn tagging(pairs: &[(&str, &str)]) -> Tagging {
    Tagging::builder()
        .set_tag_set(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
                .collect(),
        ))
        .build()
        .unwrap()
}

async fn tags_of(
    s3: &aws_sdk_s3::Client,
    b: &str,
    k: &str,
    v: Option<&str>,
) -> Vec<(String, String)> {
    s3.get_object_tagging()
        .bucket(b)
        .key(k)
        .set_version_id(v.map(str::to_owned))
        .send()
        .await
        .unwrap()
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn tags_as_s3_documents_them() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    let b = "tags";
    s3.create_bucket().bucket(b).send().await.unwrap();

    // On PUT: counted on GET, read back in order.
    s3.put_object()
        .bucket(b)
        .key("k")
        .tagging("project=cairn&team=store%20ops")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let got = s3.get_object().bucket(b).key("k").send().await.unwrap();
    assert_eq!(got.tag_count(), Some(2));
    assert_eq!(
        tags_of(&s3, b, "k", None).await,
        owned(&[("project", "cairn"), ("team", "store ops")])
    );
    // Refused tag sets change nothing.
    let eleven: Vec<(String, String)> =
        (0..11).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    let eleven: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(257);
    for (bad, want) in [
        (eleven.clone(), "BadRequest"),
        (vec![("a", "1"), ("a", "2")], "InvalidTag"),
        (vec![("aws:reserved", "1")], "InvalidTag"),
        (vec![(long_key.as_str(), "1")], "InvalidTag"),
        (vec![("a", long_value.as_str())], "InvalidTag"),
        (vec![("a", "<b>")], "InvalidTag"),
    ] {
        let e = s3
            .put_object_tagging()
            .bucket(b)
            .key("k")
            .tagging(tagging(&bad))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e.into_service_error()), want, "{bad:?}");
    }
    let e = s3
        .put_object()
        .bucket(b)
        .key("k2")
        .tagging("a=1&a=2")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidArgument");
    assert_eq!(tags_of(&s3, b, "k", None).await.len(), 2);

    // Replaced and deleted.
    s3.put_object_tagging()
        .bucket(b)
        .key("k")
        .tagging(tagging(&[("only", "one")]))
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&s3, b, "k", None).await, owned(&[("only", "one")]));
    s3.delete_object_tagging()
        .bucket(b)
        .key("k")
        .send()
        .await
        .unwrap();
    assert!(tags_of(&s3, b, "k", None).await.is_empty());
    let got = s3.get_object().bucket(b).key("k").send().await.unwrap();
    assert_eq!(got.tag_count(), None);
    let e = s3
        .get_object_tagging()
        .bucket(b)
        .key("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchKey");

    // Copies keep the source's tags unless told to replace them.
    s3.put_object_tagging()
        .bucket(b)
        .key("k")
        .tagging(tagging(&[("src", "1")]))
        .send()
        .await
        .unwrap();
    s3.copy_object()
        .bucket(b)
        .key("copied")
        .copy_source(format!("{b}/k"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(&s3, b, "copied", None).await,
        owned(&[("src", "1")])
    );
    s3.copy_object()
        .bucket(b)
        .key("replaced")
        .copy_source(format!("{b}/k"))
        .tagging_directive(TaggingDirective::Replace)
        .tagging("dst=2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(&s3, b, "replaced", None).await,
        owned(&[("dst", "2")])
    );

    // Multipart: the tags given at creation.
    let up = s3
        .create_multipart_upload()
        .bucket(b)
        .key("mp")
        .tagging("mp=yes")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part = s3
        .upload_part()
        .bucket(b)
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    s3.complete_multipart_upload()
        .bucket(b)
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tags_of(&s3, b, "mp", None).await, owned(&[("mp", "yes")]));

    // By version: each version has its own tags.
    s3.put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v1 = s3
        .put_object()
        .bucket(b)
        .key("v")
        .tagging("n=1")
        .body(ByteStream::from_static(b"1"))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    s3.put_object()
        .bucket(b)
        .key("v")
        .tagging("n=2")
        .body(ByteStream::from_static(b"2"))
        .send()
        .await
        .unwrap();
    let put = s3
        .put_object_tagging()
        .bucket(b)
        .key("v")
        .version_id(&v1)
        .tagging(tagging(&[("n", "one")]))
        .send()
        .await
        .unwrap();
    assert_eq!(put.version_id(), Some(v1.as_str()));
    assert_eq!(
        tags_of(&s3, b, "v", Some(&v1)).await,
        owned(&[("n", "one")])
    );
    assert_eq!(tags_of(&s3, b, "v", None).await, owned(&[("n", "2")]));

    // Bucket tags.
    let e = s3.get_bucket_tagging().bucket(b).send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchTagSet");
    s3.put_bucket_tagging()
        .bucket(b)
        .tagging(tagging(&[("cost-center", "42"), ("env", "test")]))
        .send()
        .await
        .unwrap();
    let got = s3.get_bucket_tagging().bucket(b).send().await.unwrap();
    assert_eq!(got.tag_set().len(), 2);
    assert_eq!(got.tag_set()[0].key(), "cost-center");
    let fifty_one: Vec<(String, String)> =
        (0..51).map(|i| (format!("k{i}"), "v".to_owned())).collect();
    let fifty_one: Vec<(&str, &str)> = fifty_one
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let e = s3
        .put_bucket_tagging()
        .bucket(b)
        .tagging(tagging(&fifty_one))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidTag");
    assert_eq!(
        s3.get_bucket_tagging()
            .bucket(b)
            .send()
            .await
            .unwrap()
            .tag_set()
            .len(),
        2
    );
    s3.delete_bucket_tagging().bucket(b).send().await.unwrap();
    let e = s3.get_bucket_tagging().bucket(b).send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchTagSet");
}
