//! Static website hosting against a real cluster: the configuration
//! through `aws-sdk-s3` (validated as S3 does), and the website endpoint
//! as a browser sees it, over raw HTTP with the bucket in the `Host`
//! header: index and error documents, folder redirects, routing rules,
//! RedirectAllRequestsTo, objects served only where anyone may read them.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    Condition, ErrorDocument, IndexDocument, Protocol, Redirect, RedirectAllRequestsTo,
    RoutingRule, WebsiteConfiguration,
};
use cairn_tests::{Cluster, digest, put_bytes};

fn code<E: ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("").to_owned()
}

struct Site {
    http: reqwest::Client,
    endpoint: String,
}

impl Site {
    async fn get(&self, host: &str, path: &str) -> (u16, Option<String>, Vec<u8>) {
        self.request(reqwest::Method::GET, host, path).await
    }

    async fn request(
        &self,
        method: reqwest::Method,
        host: &str,
        path: &str,
    ) -> (u16, Option<String>, Vec<u8>) {
        let r = self
            .http
            .request(method, format!("{}{path}", self.endpoint))
            .header("host", host)
            .send()
            .await
            .unwrap();
        let location = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        (
            r.status().as_u16(),
            location,
            r.bytes().await.unwrap().to_vec(),
        )
    }
}

#[tokio::test]
async fn a_bucket_served_as_a_website() {
    let cluster = Cluster::start(6).await;
    let s3 = cluster.s3();
    let site = Site {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        endpoint: cluster.website_endpoint(0),
    };
    let b = "site";
    s3.create_bucket().bucket(b).send().await.unwrap();
    let pages = [
        ("index.html", "<h1>home</h1>"),
        ("about/index.html", "<h1>about</h1>"),
        ("docs/page.html", "<h1>a page</h1>"),
        ("error.html", "<h1>not here</h1>"),
        ("private.html", "<h1>secret</h1>"),
    ];
    for (key, body) in pages {
        s3.put_object()
            .bucket(b)
            .key(key)
            .content_type("text/html")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    let body_of = |key: &str| pages.iter().find(|(k, _)| *k == key).unwrap().1.as_bytes();

    // Nothing is served before the bucket has a website configuration.
    let (status, _, body) = site.get(b, "/").await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("NoSuchWebsiteConfiguration"));
    let e = s3.get_bucket_website().bucket(b).send().await.unwrap_err();
    assert_eq!(code(&e.into_service_error()), "NoSuchWebsiteConfiguration");

    // Invalid configurations are refused.
    let bad_suffix = WebsiteConfiguration::builder()
        .index_document(
            IndexDocument::builder()
                .suffix("a/index.html")
                .build()
                .unwrap(),
        )
        .build();
    let e = s3
        .put_bucket_website()
        .bucket(b)
        .website_configuration(bad_suffix)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidArgument");
    let both = WebsiteConfiguration::builder()
        .index_document(
            IndexDocument::builder()
                .suffix("index.html")
                .build()
                .unwrap(),
        )
        .routing_rules(
            RoutingRule::builder()
                .redirect(
                    Redirect::builder()
                        .replace_key_with("a")
                        .replace_key_prefix_with("b")
                        .build(),
                )
                .build(),
        )
        .build();
    let e = s3
        .put_bucket_website()
        .bucket(b)
        .website_configuration(both)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()), "InvalidArgument");

    let config = WebsiteConfiguration::builder()
        .index_document(
            IndexDocument::builder()
                .suffix("index.html")
                .build()
                .unwrap(),
        )
        .error_document(ErrorDocument::builder().key("error.html").build().unwrap())
        .routing_rules(
            RoutingRule::builder()
                .condition(Condition::builder().key_prefix_equals("old/").build())
                .redirect(Redirect::builder().replace_key_prefix_with("docs/").build())
                .build(),
        )
        .routing_rules(
            RoutingRule::builder()
                .condition(
                    Condition::builder()
                        .key_prefix_equals("missing/")
                        .http_error_code_returned_equals("404")
                        .build(),
                )
                .redirect(
                    Redirect::builder()
                        .replace_key_with("index.html")
                        .http_redirect_code("302")
                        .build(),
                )
                .build(),
        )
        .build();
    s3.put_bucket_website()
        .bucket(b)
        .website_configuration(config)
        .send()
        .await
        .unwrap();
    let got = s3.get_bucket_website().bucket(b).send().await.unwrap();
    assert_eq!(got.index_document().unwrap().suffix(), "index.html");
    assert_eq!(got.error_document().unwrap().key(), "error.html");
    assert_eq!(got.routing_rules().len(), 2);

    // Without a policy nothing is public: the endpoint serves nothing.
    let (status, _, body) = site.get(b, "/").await;
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("AccessDenied"));
    // Anyone may list too, so missing keys are 404 (not 403) to anyone.
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/*"}},
            {{"Effect":"Allow","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::{b}"}},
            {{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{b}/private.html"}}
        ]}}"#
    );
    s3.put_bucket_policy()
        .bucket(b)
        .policy(policy)
        .send()
        .await
        .unwrap();

    let (status, _, body) = site.get(b, "/").await;
    assert_eq!(status, 200);
    assert_eq!(digest(&body), digest(body_of("index.html")));
    let (status, _, body) = site.get(b, "/about/").await;
    assert_eq!(
        (status, digest(&body)),
        (200, digest(body_of("about/index.html")))
    );
    let (status, location, _) = site.get(b, "/about").await;
    assert_eq!((status, location.as_deref()), (302, Some("/about/")));
    let (status, _, body) = site.get(b, "/docs/page.html").await;
    assert_eq!(
        (status, digest(&body)),
        (200, digest(body_of("docs/page.html")))
    );
    let (status, _, body) = site
        .request(reqwest::Method::HEAD, b, "/docs/page.html")
        .await;
    assert_eq!((status, body.len()), (200, 0));
    // Missing and denied keys get the error document, with their status.
    let (status, _, body) = site.get(b, "/nope.html").await;
    assert_eq!(
        (status, digest(&body)),
        (404, digest(body_of("error.html")))
    );
    let (status, _, body) = site.get(b, "/private.html").await;
    assert_eq!(
        (status, digest(&body)),
        (403, digest(body_of("error.html")))
    );
    // Routing rules: by prefix before reading, by error after.
    let (status, location, _) = site.get(b, "/old/page.html").await;
    assert_eq!(
        (status, location.as_deref()),
        (301, Some("http://site/docs/page.html"))
    );
    let (status, location, _) = site.get(b, "/missing/thing").await;
    assert_eq!(
        (status, location.as_deref()),
        (302, Some("http://site/index.html"))
    );
    // Only GET and HEAD; unknown buckets are told apart.
    let (status, _, _) = site.request(reqwest::Method::POST, b, "/").await;
    assert_eq!(status, 405);
    let (status, _, body) = site.get("no-such-site", "/").await;
    assert_eq!(status, 404);
    assert!(String::from_utf8_lossy(&body).contains("NoSuchBucket"));

    // A bucket that redirects everything.
    let r = "moved";
    s3.create_bucket().bucket(r).send().await.unwrap();
    put_bytes(&s3, r, "x", b"x".to_vec()).await;
    s3.put_bucket_website()
        .bucket(r)
        .website_configuration(
            WebsiteConfiguration::builder()
                .redirect_all_requests_to(
                    RedirectAllRequestsTo::builder()
                        .host_name("www.example.com")
                        .protocol(Protocol::Https)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (status, location, _) = site.get(r, "/a/b.html?x=1").await;
    assert_eq!(
        (status, location.as_deref()),
        (301, Some("https://www.example.com/a/b.html?x=1"))
    );

    // Deleting the configuration takes the site down.
    s3.delete_bucket_website().bucket(b).send().await.unwrap();
    let (status, _, _) = site.get(b, "/").await;
    assert_eq!(status, 404);
}
