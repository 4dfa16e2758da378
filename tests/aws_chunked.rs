//! aws-chunked uploads built byte by byte (as SDKs send them over the wire),
//! signed with `aws-sigv4`: signed chunks, signed chunks with a checksum
//! trailer, and unsigned chunks with a checksum trailer. A correct upload
//! stores exactly the decoded payload; a wrong trailer checksum or a wrong
//! chunk signature is refused with AWS's error code and stores nothing; a
//! truncated or mis-declared body is refused with `IncompleteBody` and
//! leaves the existing object as it was.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use aws_smithy_runtime_api::http::Headers;
use base64::Engine;
use bytes::Bytes;
use cairn_tests::{Cluster, digest, pattern};
use std::time::SystemTime;

const CHUNK: usize = 64 * 1024;

fn crc32_b64(data: &[u8]) -> String {
    let v = crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32IsoHdlc, data) as u32;
    base64::engine::general_purpose::STANDARD.encode(v.to_be_bytes())
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Signed,
    SignedTrailer,
    UnsignedTrailer,
}

struct Upload {
    status: u16,
    body: String,
}

/// How an upload departs from a correct one.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Spoil {
    /// A correct upload.
    None,
    /// The second chunk's signature is wrong.
    ChunkSignature,
    /// No body at all.
    Empty,
    /// The body stops after the second data chunk: no final chunk, no trailer.
    StopAtChunkBoundary,
    /// The body stops in the middle of its bytes.
    StopMidChunk,
    /// The final chunk is there, the announced trailer is not.
    NoTrailer,
    /// `x-amz-decoded-content-length` is off by this many bytes.
    DeclaredLength(i64),
}

/// PUT `payload` to `url` as aws-chunked in `mode`, with `trailer_value` as
/// the CRC32 trailer (when the mode has one), spoilt as `spoil` says. The
/// request is signed for the bytes actually sent (content-length included),
/// as a client whose upload was cut short or a replayed request would be.
async fn upload(
    cluster: &Cluster,
    path: &str,
    payload: &[u8],
    mode: Mode,
    trailer_value: &str,
    spoil: Spoil,
) -> Upload {
    let endpoint = cluster.endpoint(0);
    let host = endpoint.trim_start_matches("http://").to_owned();
    let url = format!("{endpoint}{path}");
    let now = SystemTime::now();
    let identity: Identity =
        Credentials::new(&cluster.access_key, &cluster.secret_key, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .unwrap();
    let content_sha = match mode {
        Mode::Signed => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        Mode::SignedTrailer => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        Mode::UnsignedTrailer => "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    };
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host),
        ("x-amz-content-sha256".into(), content_sha.into()),
        ("content-encoding".into(), "aws-chunked".into()),
        (
            "x-amz-decoded-content-length".into(),
            match spoil {
                Spoil::DeclaredLength(delta) => payload.len() as i64 + delta,
                _ => payload.len() as i64,
            }
            .to_string(),
        ),
    ];
    if mode != Mode::Signed {
        headers.push(("x-amz-trailer".into(), "x-amz-checksum-crc32".into()));
    }

    // The body first: its length is signed as content-length.
    let chunks: Vec<&[u8]> = payload.chunks(CHUNK).collect();
    let whole_body_for = |seed_signature: &str| -> (Vec<u8>, Vec<usize>) {
        let mut body = Vec::new();
        let mut chunk_ends = Vec::new();
        let mut running = seed_signature.to_owned();
        for (i, chunk) in chunks
            .iter()
            .copied()
            .chain(std::iter::once(&[][..]))
            .enumerate()
        {
            if mode == Mode::UnsignedTrailer {
                body.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            } else {
                let mut sig = v4::sign_chunk(&Bytes::copy_from_slice(chunk), &running, &params)
                    .unwrap()
                    .signature()
                    .to_owned();
                running = sig.clone();
                if spoil == Spoil::ChunkSignature && i == 1 {
                    sig = "0".repeat(64);
                }
                body.extend_from_slice(
                    format!("{:x};chunk-signature={sig}\r\n", chunk.len()).as_bytes(),
                );
            }
            body.extend_from_slice(chunk);
            if !chunk.is_empty() || mode == Mode::Signed {
                body.extend_from_slice(b"\r\n");
            }
            chunk_ends.push(body.len());
        }
        if mode != Mode::Signed && spoil != Spoil::NoTrailer {
            body.extend_from_slice(format!("x-amz-checksum-crc32:{trailer_value}\r\n").as_bytes());
            if mode == Mode::SignedTrailer {
                let mut trailer = Headers::new();
                trailer.insert("x-amz-checksum-crc32", trailer_value.to_owned());
                let sig = v4::sign_trailer(&trailer, &running, &params)
                    .unwrap()
                    .signature()
                    .to_owned();
                body.extend_from_slice(format!("x-amz-trailer-signature:{sig}\r\n").as_bytes());
            }
            body.extend_from_slice(b"\r\n");
        }
        (body, chunk_ends)
    };
    let body_for = |seed_signature: &str| -> Vec<u8> {
        let (mut body, chunk_ends) = whole_body_for(seed_signature);
        match spoil {
            Spoil::Empty => body.clear(),
            Spoil::StopAtChunkBoundary => body.truncate(chunk_ends[1]),
            Spoil::StopMidChunk => body.truncate(chunk_ends[1] + CHUNK / 2),
            _ => {}
        }
        body
    };
    // Chunk signatures have fixed length, so a dummy seed gives the length.
    let length = body_for(&"0".repeat(64)).len();
    headers.push(("content-length".into(), length.to_string()));
    let signable = SignableRequest::new(
        "PUT",
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Precomputed(content_sha.to_owned()),
    )
    .unwrap();
    let request_params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("s3")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let (instructions, seed) = sign(signable, &request_params).unwrap().into_parts();
    let body = body_for(&seed);
    assert_eq!(body.len(), length);
    let client = reqwest::Client::new();
    let mut req = client.put(&url).body(body);
    for (k, v) in headers.iter().filter(|(k, _)| k != "host") {
        req = req.header(k, v);
    }
    for (k, v) in instructions.headers() {
        req = req.header(k, v);
    }
    let resp = req.send().await.unwrap();
    Upload {
        status: resp.status().as_u16(),
        body: resp.text().await.unwrap(),
    }
}

#[tokio::test]
async fn aws_chunked_uploads_store_exactly_the_decoded_payload() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("chunked").send().await.unwrap();
    let payload = pattern(11, 5 * CHUNK + 1234);
    let crc = crc32_b64(&payload);
    for (mode, name) in [
        (Mode::Signed, "signed"),
        (Mode::SignedTrailer, "signed-trailer"),
        (Mode::UnsignedTrailer, "unsigned-trailer"),
    ] {
        let r = upload(
            &cluster,
            &format!("/chunked/{name}"),
            &payload,
            mode,
            &crc,
            Spoil::None,
        )
        .await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        let out = s3
            .get_object()
            .bucket("chunked")
            .key(name)
            .send()
            .await
            .unwrap();
        assert_eq!(out.content_length(), Some(payload.len() as i64), "{name}");
        assert_eq!(
            digest(&out.body.collect().await.unwrap().into_bytes()),
            digest(&payload),
            "{name}: decoded payload stored"
        );
    }
    // The trailer's checksum is kept and returned.
    let head = s3
        .head_object()
        .bucket("chunked")
        .key("unsigned-trailer")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(head.checksum_crc32(), Some(crc.as_str()));
}

#[tokio::test]
async fn a_wrong_trailer_checksum_or_chunk_signature_changes_nothing() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("chunked").send().await.unwrap();
    let payload = pattern(12, 3 * CHUNK + 10);
    let wrong = crc32_b64(b"something else");
    for (mode, name) in [
        (Mode::SignedTrailer, "signed-trailer"),
        (Mode::UnsignedTrailer, "unsigned-trailer"),
    ] {
        let r = upload(
            &cluster,
            &format!("/chunked/{name}"),
            &payload,
            mode,
            &wrong,
            Spoil::None,
        )
        .await;
        assert_eq!(r.status, 400, "{name}: {}", r.body);
        assert!(
            r.body.contains("<Code>BadDigest</Code>"),
            "{name}: {}",
            r.body
        );
        let e = s3
            .head_object()
            .bucket("chunked")
            .key(name)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            e.raw_response().map(|r| r.status().as_u16()),
            Some(404),
            "{name}: nothing stored"
        );
    }
    let r = upload(
        &cluster,
        "/chunked/bad-signature",
        &payload,
        Mode::Signed,
        "",
        Spoil::ChunkSignature,
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        r.body.contains("<Code>SignatureDoesNotMatch</Code>"),
        "{}",
        r.body
    );
    assert!(
        s3.head_object()
            .bucket("chunked")
            .key("bad-signature")
            .send()
            .await
            .is_err()
    );
}

#[tokio::test]
async fn truncated_or_misdeclared_uploads_get_incomplete_body_and_change_nothing() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    s3.create_bucket().bucket("chunked").send().await.unwrap();
    let payload = pattern(13, 3 * CHUNK + 77);
    let crc = crc32_b64(&payload);
    for (mode, name) in [
        (Mode::Signed, "signed"),
        (Mode::SignedTrailer, "signed-trailer"),
        (Mode::UnsignedTrailer, "unsigned-trailer"),
    ] {
        let original = pattern(14, 2 * CHUNK + 5);
        cairn_tests::put_bytes(&s3, "chunked", name, original.clone()).await;
        let mut spoils = vec![
            Spoil::Empty,
            Spoil::StopAtChunkBoundary,
            Spoil::StopMidChunk,
            Spoil::DeclaredLength(-1),
            Spoil::DeclaredLength(1),
            Spoil::DeclaredLength(-(payload.len() as i64) + 100),
        ];
        if mode != Mode::Signed {
            spoils.push(Spoil::NoTrailer);
        }
        for spoil in spoils {
            let r = upload(
                &cluster,
                &format!("/chunked/{name}"),
                &payload,
                mode,
                &crc,
                spoil,
            )
            .await;
            assert_eq!(r.status, 400, "{name} {spoil:?}: {}", r.body);
            assert!(
                r.body.contains("<Code>IncompleteBody</Code>"),
                "{name} {spoil:?}: {}",
                r.body
            );
            let stored = cairn_tests::get_bytes(&s3, "chunked", name).await;
            assert_eq!(
                digest(&stored),
                digest(&original),
                "{name} {spoil:?}: the existing object is unchanged"
            );
        }
        // And a correct upload of the same payload still goes through.
        let r = upload(
            &cluster,
            &format!("/chunked/{name}"),
            &payload,
            mode,
            &crc,
            Spoil::None,
        )
        .await;
        assert_eq!(r.status, 200, "{name}: {}", r.body);
        assert_eq!(
            digest(&cairn_tests::get_bytes(&s3, "chunked", name).await),
            digest(&payload)
        );
    }
}
