//! CORS against a real cluster: the configuration through `aws-sdk-s3`,
//! and browsers' requests as raw HTTP: preflights allowed and refused as
//! the rules say, and the headers on an actual (presigned) GET.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CorsConfiguration, CorsRule};
use cairn_tests::Cluster;

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_owned()
}

async fn preflight(
    http: &reqwest::Client,
    url: &str,
    origin: &str,
    method: &str,
    headers: Option<&str>,
) -> reqwest::Response {
    let mut r = http
        .request(reqwest::Method::OPTIONS, url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method);
    if let Some(h) = headers {
        r = r.header("Access-Control-Request-Headers", h);
    }
    r.send().await.unwrap()
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn preflights_and_responses_follow_the_buckets_rules() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    let http = reqwest::Client::new();
    let b = "web";
    s3.create_bucket().bucket(b).send().await.unwrap();
    s3.put_object()
        .bucket(b)
        .key("page.html")
        .body(ByteStream::from_static(b"<p>hi</p>"))
        .send()
        .await
        .unwrap();
    let url = format!("{}/{b}/page.html", cluster.endpoint(0));

    // No configuration: no CORS.
    let r = preflight(&http, &url, "https://app.example", "GET", None).await;
    assert_eq!(r.status().as_u16(), 403);
    let e = s3.get_bucket_cors().bucket(b).send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchCORSConfiguration");

    // Invalid configurations are refused.
    let bad = CorsConfiguration::builder()
        .cors_rules(
            CorsRule::builder()
                .allowed_origins("*")
                .allowed_methods("PATCH")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = s3
        .put_bucket_cors()
        .bucket(b)
        .cors_configuration(bad)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidRequest");

    let rules = CorsConfiguration::builder()
        .cors_rules(
            CorsRule::builder()
                .id("app")
                .allowed_origins("https://app.example")
                .allowed_methods("GET")
                .allowed_methods("PUT")
                .allowed_headers("content-type")
                .allowed_headers("x-amz-*")
                .expose_headers("ETag")
                .max_age_seconds(300)
                .build()
                .unwrap(),
        )
        .cors_rules(
            CorsRule::builder()
                .allowed_origins("https://*.partner.example")
                .allowed_methods("GET")
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    s3.put_bucket_cors()
        .bucket(b)
        .cors_configuration(rules)
        .send()
        .await
        .unwrap();
    let got = s3.get_bucket_cors().bucket(b).send().await.unwrap();
    assert_eq!(got.cors_rules().len(), 2);
    assert_eq!(got.cors_rules()[0].id(), Some("app"));
    assert_eq!(got.cors_rules()[0].max_age_seconds(), Some(300));

    // A preflight without Origin, or without the method it asks about,
    // is a bad request.
    let r = http
        .request(reqwest::Method::OPTIONS, &url)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = http
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);

    // Allowed: origin, method and every requested header match a rule.
    let r = preflight(
        &http,
        &url,
        "https://app.example",
        "PUT",
        Some("Content-Type, X-Amz-Date"),
    )
    .await;
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(header(&r, "access-control-allow-methods"), Some("GET, PUT"));
    assert_eq!(
        header(&r, "access-control-allow-headers"),
        Some("Content-Type, X-Amz-Date")
    );
    assert_eq!(header(&r, "access-control-max-age"), Some("300"));
    assert_eq!(header(&r, "access-control-expose-headers"), Some("ETag"));
    // A wildcard origin rule.
    let r = preflight(&http, &url, "https://eu.partner.example", "GET", None).await;
    assert_eq!(r.status().as_u16(), 200);
    // Refused: another origin, a method or a header no rule allows.
    for (origin, method, headers) in [
        ("https://evil.example", "GET", None),
        ("https://app.example", "DELETE", None),
        ("https://app.example", "PUT", Some("authorization")),
        ("https://eu.partner.example", "PUT", None),
    ] {
        let r = preflight(&http, &url, origin, method, headers).await;
        assert_eq!(r.status().as_u16(), 403, "{origin} {method} {headers:?}");
        assert_eq!(header(&r, "access-control-allow-origin"), None);
    }

    // An actual GET from the page's origin carries the headers; one from
    // elsewhere does not (the browser then hides the answer).
    let presigned = s3
        .get_object()
        .bucket(b)
        .key("page.html")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                60,
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let r = http
        .get(presigned.uri())
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(header(&r, "access-control-expose-headers"), Some("ETag"));
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"<p>hi</p>");
    let r = http
        .get(presigned.uri())
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(header(&r, "access-control-allow-origin"), None);

    s3.delete_bucket_cors().bucket(b).send().await.unwrap();
    let r = preflight(&http, &url, "https://app.example", "GET", None).await;
    assert_eq!(r.status().as_u16(), 403);
}
