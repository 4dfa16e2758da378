//! S3's documented behaviour at the edges, through `aws-sdk-s3` and raw
//! HTTP (presigned URLs, so headers the SDK would not send can be) against
//! a real cluster: ranges S3 ignores, a range on an empty object, the
//! three HTTP date forms in conditional headers and unparsable ones, `304`
//! with its ETag and no body, reserved bucket names, negative list limits,
//! presigned lifetimes, DeleteObjects without a checksum, and control
//! characters in listings.

use aws_sdk_s3::Client;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use cairn_tests::{Cluster, Options, digest, pattern};
use std::time::Duration;

/// A GET of `path_and_query` signed as S3 clients sign (SigV4 headers),
/// sent raw.
async fn signed_get(cluster: &Cluster, path_and_query: &str) -> reqwest::Response {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;
    let endpoint = cluster.endpoint(0);
    let host = endpoint.trim_start_matches("http://").to_owned();
    let url = format!("{endpoint}{path_and_query}");
    let identity: Identity = aws_credential_types::Credentials::new(
        &cluster.access_key,
        &cluster.secret_key,
        None,
        None,
        "test",
    )
    .into();
    let headers = [
        ("host".to_owned(), host),
        (
            "x-amz-content-sha256".to_owned(),
            "UNSIGNED-PAYLOAD".to_owned(),
        ),
    ];
    let signable = SignableRequest::new(
        "GET",
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::UnsignedPayload,
    )
    .unwrap();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    let mut req = reqwest::Client::new().get(&url);
    for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
        req = req.header(k, v);
    }
    for (k, v) in instructions.headers() {
        req = req.header(k, v);
    }
    req.send().await.unwrap()
}

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_owned()
}

/// `method` of the URL `uri` written by hand on a fresh connection (no
/// body, no `Content-Length`): the status and body of the answer.
async fn raw_request(endpoint: &str, method: &str, uri: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = endpoint.trim_start_matches("http://");
    let path = &uri[uri.find(host).expect("URL on the endpoint") + host.len()..];
    let mut conn = tokio::net::TcpStream::connect(host).await.unwrap();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn presigned_get(s3: &Client, bucket: &str, key: &str, secs: u64) -> String {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(secs)).unwrap())
        .await
        .unwrap()
        .uri()
        .to_owned()
}

#[tokio::test]
async fn edges_as_s3_documents_them() {
    let cluster = Cluster::start_with(Options::nodes(6)).await.unwrap();
    let s3 = cluster.s3();
    let http = reqwest::Client::new();
    s3.create_bucket().bucket("edges").send().await.unwrap();
    let body = pattern(1, 100_000);
    for (key, data) in [("obj", body.clone()), ("empty", Vec::new())] {
        s3.put_object()
            .bucket("edges")
            .key(key)
            .body(ByteStream::from(data))
            .send()
            .await
            .unwrap();
    }

    // Ranges S3 ignores: the whole object, 200.
    for range in ["bytes=0-1,3-4", "bytes=abc", "bytes=5-2", "chars=0-1"] {
        let out = s3
            .get_object()
            .bucket("edges")
            .key("obj")
            .range(range)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{range}: {e:?}"));
        assert_eq!(out.content_range(), None, "{range}");
        let got = out.body.collect().await.unwrap().into_bytes();
        assert_eq!(digest(&got), digest(&body), "{range}");
    }
    let out = s3
        .get_object()
        .bucket("edges")
        .key("obj")
        .range("bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(out.content_range(), Some("bytes 10-19/100000"));
    assert_eq!(
        out.body.collect().await.unwrap().into_bytes().as_ref(),
        &body[10..20]
    );
    // A range on an empty object cannot be satisfied.
    let e = s3
        .get_object()
        .bucket("edges")
        .key("empty")
        .range("bytes=0-")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidRange");
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(416));

    // Conditional dates: IMF-fixdate, RFC 850 and asctime all count; an
    // unparsable date is ignored. 304 carries the ETag and no body.
    let head = s3
        .head_object()
        .bucket("edges")
        .key("obj")
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap().to_owned();
    let url = presigned_get(&s3, "edges", "obj", 300).await;
    for date in ["Fri, 01 Jan 2100 00:00:00 GMT", "Fri Jan  1 00:00:00 2100"] {
        let r = http
            .get(&url)
            .header("If-Modified-Since", date)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 304, "{date}");
        let tag = r
            .headers()
            .get("etag")
            .map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(tag.as_deref(), Some(etag.as_str()), "{date}");
        assert!(
            r.bytes().await.unwrap().is_empty(),
            "{date}: a 304 has no body"
        );
    }
    // RFC 850 (a two-digit year): modified since 1994, so not unmodified.
    let r = http
        .get(&url)
        .header("If-Unmodified-Since", "Sunday, 06-Nov-94 08:49:37 GMT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 412, "an RFC 850 date");
    let r = http
        .get(&url)
        .header("If-Modified-Since", "yesterday")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "an unparsable date is ignored");
    assert_eq!(digest(&r.bytes().await.unwrap()), digest(&body));

    // Reserved bucket names.
    for name in [
        "foo-s3alias",
        "foo--ol-s3",
        "sthree-foo",
        "a.-b",
        "a-.b",
        "x.mrap",
    ] {
        let e = s3.create_bucket().bucket(name).send().await.unwrap_err();
        assert_eq!(code(&e), "InvalidBucketName", "{name}");
    }

    // Negative list limits.
    let up = s3
        .create_multipart_upload()
        .bucket("edges")
        .key("multi")
        .send()
        .await
        .unwrap();
    let e = s3
        .list_parts()
        .bucket("edges")
        .key("multi")
        .upload_id(up.upload_id().unwrap())
        .max_parts(-1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");
    let e = s3
        .list_multipart_uploads()
        .bucket("edges")
        .max_uploads(-1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgument");

    // Presigned lifetimes: more than a week or none is malformed; an
    // expired URL is refused.
    for expires in ["604801", "0"] {
        let bad = url.replace("X-Amz-Expires=300", &format!("X-Amz-Expires={expires}"));
        let r = http.get(&bad).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 400, "X-Amz-Expires={expires}");
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("AuthorizationQueryParametersError"),
            "X-Amz-Expires={expires}"
        );
    }
    let short = presigned_get(&s3, "edges", "obj", 1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let r = http.get(&short).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert!(r.text().await.unwrap().contains("AccessDenied"));

    // Server-side encryption is refused, not silently left out: nothing
    // is written in clear under a success.
    let e = s3
        .put_object()
        .bucket("edges")
        .key("encrypted")
        .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256)
        .body(ByteStream::from_static(b"secret"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(501));
    assert_eq!(e.into_service_error().code(), Some("NotImplemented"));
    let e = s3
        .head_object()
        .bucket("edges")
        .key("encrypted")
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_not_found());

    // A PUT that says neither how long its body is nor that it comes
    // chunked: 411 MissingContentLength, and nothing written.
    let put_url = s3
        .put_object()
        .bucket("edges")
        .key("unsized")
        .presigned(PresigningConfig::expires_in(Duration::from_secs(300)).unwrap())
        .await
        .unwrap();
    let (status, body) = raw_request(&cluster.endpoint(0), "PUT", put_url.uri()).await;
    assert_eq!(status, 411, "{body}");
    assert!(body.contains("MissingContentLength"), "{body}");
    let e = s3
        .head_object()
        .bucket("edges")
        .key("unsized")
        .send()
        .await
        .unwrap_err();
    assert!(e.into_service_error().is_not_found());

    // DeleteObjects without Content-MD5 or a checksum: refused, nothing
    // deleted.
    let delete = format!("{}/edges?delete", cluster.endpoint(0));
    let r = http
        .post(&delete)
        .body("<Delete><Object><Key>obj</Key></Object></Delete>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains("InvalidRequest"));
    s3.head_object()
        .bucket("edges")
        .key("obj")
        .send()
        .await
        .unwrap();

    // GetObjectAttributes: what was asked, of a single PUT and of a
    // multipart object's parts, paged.
    use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ObjectAttributes};
    let a = s3
        .get_object_attributes()
        .bucket("edges")
        .key("obj")
        .object_attributes(ObjectAttributes::Etag)
        .object_attributes(ObjectAttributes::ObjectSize)
        .object_attributes(ObjectAttributes::StorageClass)
        .send()
        .await
        .unwrap();
    assert_eq!(a.object_size(), Some(100_000));
    assert_eq!(
        Some(etag.trim_matches('"')),
        a.e_tag().map(|e| e.trim_matches('"'))
    );
    assert_eq!(a.storage_class().map(|c| c.as_str()), Some("STANDARD"));
    assert!(a.object_parts().is_none());
    let up = s3
        .create_multipart_upload()
        .bucket("edges")
        .key("parts")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let mut done = Vec::new();
    for (n, len) in [(1, 5 << 20), (2, 100)] {
        let p = s3
            .upload_part()
            .bucket("edges")
            .key("parts")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(pattern(n as u64, len)))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(p.e_tag().unwrap())
                .build(),
        );
    }
    s3.complete_multipart_upload()
        .bucket("edges")
        .key("parts")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let a = s3
        .get_object_attributes()
        .bucket("edges")
        .key("parts")
        .object_attributes(ObjectAttributes::ObjectParts)
        .max_parts(1)
        .send()
        .await
        .unwrap();
    let parts = a.object_parts().unwrap();
    assert_eq!(parts.total_parts_count(), Some(2));
    assert_eq!(parts.is_truncated(), Some(true));
    assert_eq!(parts.parts()[0].size(), Some(5 << 20));
    assert_eq!(a.object_size(), None, "not asked");

    // Control characters in keys are escaped in listings, and read back.
    let odd = "ctl\u{1}a\rb\u{1f}c";
    s3.put_object()
        .bucket("edges")
        .key(odd)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let raw = signed_get(&cluster, "/edges?list-type=2")
        .await
        .bytes()
        .await
        .unwrap();
    assert!(
        !raw.iter().any(|b| *b < 0x20 && *b != b'\n' && *b != b'\t'),
        "raw control characters in {raw:?}"
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("ctl&#x1;a&#xD;b&#x1F;c"), "{text}");
    let keys: Vec<String> = s3
        .list_objects_v2()
        .bucket("edges")
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .map(|o| o.key().unwrap().to_owned())
        .collect();
    assert!(keys.iter().any(|k| k == odd), "{keys:?}");
}
