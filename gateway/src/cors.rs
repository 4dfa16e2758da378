//! CORS as S3 does it ("Using cross-origin resource sharing", the
//! `PutBucketCors` reference): a bucket's rules are matched in order
//! against a request's `Origin`, method and (for a preflight) requested
//! headers; the first rule that matches decides the `Access-Control-*`
//! headers. Preflight `OPTIONS` requests are answered here, before the S3
//! service (they carry no signature); other requests with an `Origin` get
//! the headers added to whatever the S3 service answered.

use crate::s3::access::Caller;
use crate::state::Gateway;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use cairn::record::{ConfigKind, CorsRule};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::sync::Arc;

/// Most rules in a bucket's CORS configuration (S3's limit).
pub const MAX_CORS_RULES: usize = 100;
/// Methods a rule may allow (S3's list).
const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];
/// Longest CORS configuration S3 takes, in bytes of its XML; here, of its
/// origins, methods and headers together.
pub const MAX_CORS_BYTES: usize = 64 << 10;

/// Whether `value` matches `pattern`, which holds at most one `*` standing
/// for any run of characters; headers compare case-insensitively.
fn wildcard(pattern: &str, value: &str, ignore_case: bool) -> bool {
    let (p, v) = if ignore_case {
        (pattern.to_ascii_lowercase(), value.to_ascii_lowercase())
    } else {
        (pattern.to_owned(), value.to_owned())
    };
    match p.split_once('*') {
        None => p == v,
        Some((head, tail)) => {
            v.len() >= head.len() + tail.len() && v.starts_with(head) && v.ends_with(tail)
        }
    }
}

/// The first rule allowing `origin` to make a `method` request with
/// `headers` (the requested headers of a preflight; none otherwise).
pub fn find_rule<'a>(
    rules: &'a [CorsRule],
    origin: &str,
    method: &str,
    headers: &[String],
) -> Option<&'a CorsRule> {
    rules.iter().find(|r| {
        r.allowed_origins.iter().any(|o| wildcard(o, origin, false))
            && r.allowed_methods.iter().any(|m| m == method)
            && headers.iter().all(|h| {
                r.allowed_headers
                    .iter()
                    .any(|a| wildcard(a, h.trim(), true))
            })
    })
}

/// The `Access-Control-*` headers of an answer matched by `rule`.
fn allow_headers(rule: &CorsRule, origin: &str, out: &mut HeaderMap, preflight: Option<&str>) {
    let any_origin = rule.allowed_origins.iter().any(|o| o == "*");
    let mut set = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    };
    if any_origin {
        set("access-control-allow-origin", "*");
    } else {
        set("access-control-allow-origin", origin);
        set("access-control-allow-credentials", "true");
    }
    set(
        "access-control-allow-methods",
        &rule.allowed_methods.join(", "),
    );
    if let Some(h) = preflight.filter(|h| !h.is_empty()) {
        set("access-control-allow-headers", h);
    }
    if !rule.expose_headers.is_empty() {
        set(
            "access-control-expose-headers",
            &rule.expose_headers.join(", "),
        );
    }
    if let Some(age) = rule.max_age_s {
        set("access-control-max-age", &age.to_string());
    }
    set(
        "vary",
        "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
    );
}

/// The bucket a request addresses (virtual-host style under one of the
/// gateway's domains, or the first path segment).
fn bucket_of(gw: &Gateway, req: &Request) -> Option<String> {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok());
    if let Some(host) = host {
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        for d in &gw.config.domains {
            if let Some(b) = name
                .strip_suffix(d.as_str())
                .and_then(|b| b.strip_suffix('.'))
                && !b.is_empty()
            {
                return Some(b.to_owned());
            }
        }
    }
    let path = req.uri().path().trim_start_matches('/');
    let b = path.split('/').next().unwrap_or("");
    (!b.is_empty() && !b.starts_with('_')).then(|| b.to_owned())
}

async fn rules_of(gw: &Gateway, bucket: &str) -> Option<Vec<CorsRule>> {
    let b = gw.meta.bucket(bucket).await.ok()??;
    gw.meta
        .bucket_config::<Vec<CorsRule>>(b.id, ConfigKind::Cors)
        .await
        .ok()?
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>"
    );
    (
        status,
        [(http::header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}

fn forbidden(message: &str) -> Response {
    error(StatusCode::FORBIDDEN, "AccessForbidden", message)
}

/// Middleware: answer preflights; add CORS headers to other answers.
pub async fn layer(
    State(gw): State<Arc<Gateway>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    let origin = req
        .headers()
        .get(http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let Some(bucket) = bucket_of(&gw, &req) else {
        return next.run(req).await;
    };
    let Some(origin) = origin else {
        // No S3 operation answers OPTIONS: it is a preflight or nothing.
        if req.method() == Method::OPTIONS {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Insufficient information. Origin request header needed.",
            );
        }
        return next.run(req).await;
    };
    if req.method() == Method::OPTIONS {
        let Some(method) = req
            .headers()
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| m.to_str().ok())
            .map(str::to_owned)
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Invalid preflight request: Access-Control-Request-Method is missing.",
            );
        };
        let requested = req
            .headers()
            .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let headers: Vec<String> = requested
            .split(',')
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect();
        let Some(rules) = rules_of(&gw, &bucket).await else {
            return forbidden("CORSResponse: CORS is not enabled for this bucket.");
        };
        let Some(rule) = find_rule(&rules, &origin, &method, &headers) else {
            return forbidden(
                "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
            );
        };
        let mut resp = StatusCode::OK.into_response();
        allow_headers(rule, &origin, resp.headers_mut(), Some(&requested));
        return resp;
    }
    let method = req.method().as_str().to_owned();
    let mut resp = next.run(req).await;
    if let Some(rules) = rules_of(&gw, &bucket).await
        && let Some(rule) = find_rule(&rules, &origin, &method, &[])
    {
        allow_headers(rule, &origin, resp.headers_mut(), None);
    }
    resp
}

fn malformed() -> s3s::S3Error {
    s3_error!(
        MalformedXML,
        "The XML you provided was not well-formed or did not validate against our published schema"
    )
}

/// A configuration as S3 validates it.
fn rules_from(config: CORSConfiguration) -> S3Result<Vec<CorsRule>> {
    let rules = config.cors_rules;
    if rules.is_empty() || rules.len() > MAX_CORS_RULES {
        return Err(malformed());
    }
    let mut out = Vec::with_capacity(rules.len());
    let mut bytes = 0usize;
    for r in rules {
        if r.allowed_origins.is_empty() || r.allowed_methods.is_empty() {
            return Err(malformed());
        }
        for m in &r.allowed_methods {
            if !METHODS.contains(&m.as_str()) {
                return Err(s3_error!(
                    InvalidRequest,
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                ));
            }
        }
        for o in &r.allowed_origins {
            if o.matches('*').count() > 1 {
                return Err(s3_error!(
                    InvalidRequest,
                    "AllowedOrigin \"{o}\" can not have more than one wildcard."
                ));
            }
        }
        let headers = r.allowed_headers.unwrap_or_default();
        for h in &headers {
            if h.matches('*').count() > 1 {
                return Err(s3_error!(
                    InvalidRequest,
                    "AllowedHeader \"{h}\" can not have more than one wildcard."
                ));
            }
        }
        let expose = r.expose_headers.unwrap_or_default();
        bytes += r
            .allowed_origins
            .iter()
            .chain(&r.allowed_methods)
            .chain(&headers)
            .chain(&expose)
            .map(String::len)
            .sum::<usize>();
        out.push(CorsRule {
            id: r.id,
            allowed_origins: r.allowed_origins,
            allowed_methods: r.allowed_methods,
            allowed_headers: headers,
            expose_headers: expose,
            max_age_s: r.max_age_seconds,
        });
    }
    if bytes > MAX_CORS_BYTES {
        return Err(s3_error!(
            InvalidRequest,
            "The CORS configuration is too large."
        ));
    }
    Ok(out)
}

async fn set(gw: &Gateway, who: &Caller, name: &str, rules: Option<Vec<CorsRule>>) -> S3Result<()> {
    let bucket = who.bucket(gw, name, "s3:PutBucketCORS").await?;
    crate::s3::bucket::put_config(gw, &bucket, ConfigKind::Cors, rules.as_ref()).await
}

pub(crate) async fn put(
    gw: &Gateway,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let rules = rules_from(input.cors_configuration)?;
    set(gw, &who, &input.bucket, Some(rules)).await?;
    Ok(S3Response::new(PutBucketCorsOutput::default()))
}

pub(crate) async fn get(
    gw: &Gateway,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:GetBucketCORS")
        .await?;
    let rules: Option<Vec<CorsRule>> = gw.meta.bucket_config(bucket.id, ConfigKind::Cors).await?;
    let Some(rules) = rules else {
        return Err(s3_error!(
            NoSuchCORSConfiguration,
            "The CORS configuration does not exist"
        ));
    };
    Ok(S3Response::new(GetBucketCorsOutput {
        cors_rules: Some(
            rules
                .into_iter()
                .map(|r| CORSRule {
                    id: r.id,
                    allowed_origins: r.allowed_origins,
                    allowed_methods: r.allowed_methods,
                    allowed_headers: (!r.allowed_headers.is_empty()).then_some(r.allowed_headers),
                    expose_headers: (!r.expose_headers.is_empty()).then_some(r.expose_headers),
                    max_age_seconds: r.max_age_s,
                })
                .collect(),
        ),
    }))
}

pub(crate) async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    let who = Caller::of(&req);
    set(gw, &who, &req.input.bucket, None).await?;
    Ok(S3Response::with_status(
        DeleteBucketCorsOutput::default(),
        StatusCode::NO_CONTENT,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(origins: &[&str], methods: &[&str], headers: &[&str]) -> CorsRule {
        CorsRule {
            id: None,
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            allowed_methods: methods.iter().map(|s| s.to_string()).collect(),
            allowed_headers: headers.iter().map(|s| s.to_string()).collect(),
            expose_headers: vec![],
            max_age_s: None,
        }
    }

    #[test]
    fn rules_match_as_s3_documents() {
        let rules = vec![
            rule(&["https://app.example.com"], &["PUT", "POST"], &["*"]),
            rule(
                &["https://*.example.org"],
                &["GET"],
                &["x-amz-*", "content-type"],
            ),
            rule(&["*"], &["GET"], &[]),
        ];
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Exact origin, any header.
        let r = find_rule(
            &rules,
            "https://app.example.com",
            "PUT",
            &h(&["X-Anything"]),
        );
        assert_eq!(r, Some(&rules[0]));
        // Origins are case-sensitive, methods exact.
        assert_eq!(
            find_rule(&rules, "https://APP.example.com", "PUT", &[]),
            None
        );
        assert_eq!(
            find_rule(&rules, "https://app.example.com", "DELETE", &[]),
            None
        );
        // One wildcard in an origin; headers case-insensitive, with wildcards.
        let r = find_rule(
            &rules,
            "https://a.b.example.org",
            "GET",
            &h(&["X-Amz-Date", "Content-Type"]),
        );
        assert_eq!(r, Some(&rules[1]));
        // A header no rule allows: the catch-all rule allows no headers.
        assert_eq!(
            find_rule(
                &rules,
                "https://a.example.org",
                "GET",
                &h(&["authorization"])
            ),
            None
        );
        // First match wins: the catch-all for a plain GET from anywhere.
        assert_eq!(
            find_rule(&rules, "http://other", "GET", &[]),
            Some(&rules[2])
        );
        assert!(wildcard("*", "", false));
        assert!(!wildcard("a*a", "a", false));
    }
}
