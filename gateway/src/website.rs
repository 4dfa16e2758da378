//! Static website hosting: a bucket's website configuration
//! (Put/Get/DeleteBucketWebsite) and the website endpoint, a listener of
//! its own (`--website-listen`) where the bucket is chosen by the `Host`
//! header, anonymous GETs and HEADs read objects as S3's website endpoints
//! do (index documents, error documents, redirects), and errors are HTML.
//!
//! An object is served only if an anonymous caller may read it (a bucket
//! policy or ACL makes it public): the endpoint asks the same S3 service
//! the API uses, unsigned.

use crate::s3::access::{Caller, Context};
use crate::s3::bucket::put_config;
use crate::state::Gateway;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::serve::{Listener, ListenerExt};
use cairn::record::ConfigKind;
use http::{HeaderValue, Method, StatusCode, header};
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Request, S3Response, S3Result, s3_error};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;

/// Most routing rules one configuration holds (S3's limit).
pub const MAX_ROUTING_RULES: usize = 50;

/// A bucket's website configuration, as PutBucketWebsite gave it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebsiteConfig {
    /// `IndexDocument/Suffix`: what a request for a "folder" serves.
    pub index_suffix: Option<String>,
    /// `ErrorDocument/Key`: what a 4xx serves.
    pub error_key: Option<String>,
    /// `RedirectAllRequestsTo`: host and protocol.
    pub redirect_all: Option<(String, Option<String>)>,
    /// `RoutingRules`, in order.
    pub rules: Vec<RoutingRule>,
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingRule {
    /// `Condition/KeyPrefixEquals`.
    pub key_prefix: Option<String>,
    /// `Condition/HttpErrorCodeReturnedEquals`.
    pub error_code: Option<u16>,
    /// `Redirect/HostName`.
    pub host: Option<String>,
    /// `Redirect/Protocol`.
    pub protocol: Option<String>,
    /// `Redirect/ReplaceKeyPrefixWith`.
    pub replace_key_prefix: Option<String>,
    /// `Redirect/ReplaceKeyWith`.
    pub replace_key: Option<String>,
    /// `Redirect/HttpRedirectCode` (301 unless given).
    pub code: Option<u16>,
}

fn invalid(message: &str) -> s3s::S3Error {
    s3s::S3Error::with_message(s3s::S3ErrorCode::InvalidArgument, message.to_owned())
}

fn protocol(p: Option<&Protocol>) -> S3Result<Option<String>> {
    match p.map(|p| p.as_str()) {
        None => Ok(None),
        Some(p @ (Protocol::HTTP | Protocol::HTTPS)) => Ok(Some(p.to_owned())),
        Some(_) => Err(invalid("Invalid protocol, protocol can be http or https.")),
    }
}

/// A configuration as S3 validates it.
fn config_of(c: WebsiteConfiguration) -> S3Result<WebsiteConfig> {
    if let Some(all) = c.redirect_all_requests_to {
        if c.index_document.is_some() || c.error_document.is_some() || c.routing_rules.is_some() {
            return Err(invalid(
                "RedirectAllRequestsTo cannot be provided in conjunction with other Routing Rules.",
            ));
        }
        if all.host_name.is_empty() {
            return Err(invalid("A host name must be provided."));
        }
        return Ok(WebsiteConfig {
            index_suffix: None,
            error_key: None,
            redirect_all: Some((all.host_name, protocol(all.protocol.as_ref())?)),
            rules: Vec::new(),
        });
    }
    let Some(index) = c.index_document else {
        return Err(invalid(
            "A value for IndexDocument Suffix must be provided if RedirectAllRequestsTo is empty",
        ));
    };
    if index.suffix.is_empty() || index.suffix.contains('/') {
        return Err(invalid("The IndexDocument Suffix is not well formed"));
    }
    let rules = c.routing_rules.unwrap_or_default();
    if rules.len() > MAX_ROUTING_RULES {
        return Err(invalid("The number of routing rules must not exceed 50."));
    }
    let mut out = Vec::with_capacity(rules.len());
    for r in rules {
        let (key_prefix, error_code) = match r.condition {
            None => (None, None),
            Some(c) => {
                let code = match c.http_error_code_returned_equals {
                    None => None,
                    Some(s) => match s.parse::<u16>() {
                        Ok(n @ 400..=599) => Some(n),
                        _ => {
                            return Err(invalid(
                                "The provided HTTP error code is not valid. Valid codes are 4XX or 5XX.",
                            ));
                        }
                    },
                };
                (c.key_prefix_equals, code)
            }
        };
        let d = r.redirect;
        if d.replace_key_with.is_some() && d.replace_key_prefix_with.is_some() {
            return Err(invalid(
                "You can only define ReplaceKeyPrefix or ReplaceKey but not both.",
            ));
        }
        let code = match d.http_redirect_code {
            None => None,
            Some(s) => match s.parse::<u16>() {
                Ok(n @ (301 | 302 | 303 | 307 | 308)) => Some(n),
                _ => {
                    return Err(invalid(
                        "The provided HTTP redirect code is not valid. Valid codes are 3XX except 300, 304 and 305.",
                    ));
                }
            },
        };
        if d.host_name.is_none()
            && d.protocol.is_none()
            && d.replace_key_with.is_none()
            && d.replace_key_prefix_with.is_none()
            && code.is_none()
        {
            return Err(invalid("A Redirect must contain at least one element."));
        }
        out.push(RoutingRule {
            key_prefix,
            error_code,
            host: d.host_name,
            protocol: protocol(d.protocol.as_ref())?,
            replace_key_prefix: d.replace_key_prefix_with,
            replace_key: d.replace_key_with,
            code,
        });
    }
    Ok(WebsiteConfig {
        index_suffix: Some(index.suffix),
        error_key: c.error_document.map(|e| e.key),
        redirect_all: None,
        rules: out,
    })
}

pub(crate) async fn put(
    gw: &Gateway,
    req: S3Request<PutBucketWebsiteInput>,
) -> S3Result<S3Response<PutBucketWebsiteOutput>> {
    let who = Caller::of(&req);
    let input = req.input;
    let bucket = who.bucket(gw, &input.bucket, "s3:PutBucketWebsite").await?;
    let config = config_of(input.website_configuration)?;
    put_config(gw, &bucket, ConfigKind::Website, Some(&config)).await?;
    Ok(S3Response::new(PutBucketWebsiteOutput::default()))
}

pub(crate) async fn get(
    gw: &Gateway,
    req: S3Request<GetBucketWebsiteInput>,
) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:GetBucketWebsite")
        .await?;
    let config: Option<WebsiteConfig> = gw
        .meta
        .bucket_config(bucket.id, ConfigKind::Website)
        .await?;
    let Some(c) = config else {
        return Err(s3_error!(
            NoSuchWebsiteConfiguration,
            "The specified bucket does not have a website configuration"
        ));
    };
    let rules = c
        .rules
        .into_iter()
        .map(|r| s3s::dto::RoutingRule {
            condition: (r.key_prefix.is_some() || r.error_code.is_some()).then(|| Condition {
                http_error_code_returned_equals: r.error_code.map(|c| c.to_string()),
                key_prefix_equals: r.key_prefix,
            }),
            redirect: Redirect {
                host_name: r.host,
                http_redirect_code: r.code.map(|c| c.to_string()),
                protocol: r.protocol.map(Protocol::from),
                replace_key_prefix_with: r.replace_key_prefix,
                replace_key_with: r.replace_key,
            },
        })
        .collect::<Vec<_>>();
    Ok(S3Response::new(GetBucketWebsiteOutput {
        error_document: c.error_key.map(|key| ErrorDocument { key }),
        index_document: c.index_suffix.map(|suffix| IndexDocument { suffix }),
        redirect_all_requests_to: c.redirect_all.map(|(host_name, p)| RedirectAllRequestsTo {
            host_name,
            protocol: p.map(Protocol::from),
        }),
        routing_rules: (!rules.is_empty()).then_some(rules),
    }))
}

pub(crate) async fn delete(
    gw: &Gateway,
    req: S3Request<DeleteBucketWebsiteInput>,
) -> S3Result<S3Response<DeleteBucketWebsiteOutput>> {
    let who = Caller::of(&req);
    let bucket = who
        .bucket(gw, &req.input.bucket, "s3:DeleteBucketWebsite")
        .await?;
    put_config::<WebsiteConfig>(gw, &bucket, ConfigKind::Website, None).await?;
    Ok(S3Response::with_status(
        DeleteBucketWebsiteOutput::default(),
        StatusCode::NO_CONTENT,
    ))
}

/// The website endpoint's state: the gateway, and an S3 service that
/// takes every request as unsigned.
struct Site {
    gw: Arc<Gateway>,
    s3: S3Service,
}

/// An S3 website error page.
fn error_page(status: StatusCode, code: &str, message: &str) -> Response {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let body = format!(
        "<html>\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<ul>\n<li>Code: {code}</li>\n<li>Message: {message}</li>\n</ul>\n<hr/>\n</body>\n</html>\n"
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

fn redirect(status: StatusCode, location: &str) -> Response {
    let mut r = status.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Where a rule sends a request for `key`.
fn rule_location(rule: &RoutingRule, key: &str, host: &str) -> String {
    let protocol = rule.protocol.as_deref().unwrap_or("http");
    let host = rule.host.as_deref().unwrap_or(host);
    let key = match (&rule.replace_key, &rule.replace_key_prefix) {
        (Some(k), _) => k.clone(),
        (None, Some(p)) => {
            let rest = key
                .strip_prefix(rule.key_prefix.as_deref().unwrap_or(""))
                .unwrap_or(key);
            format!("{p}{rest}")
        }
        (None, None) => key.to_owned(),
    };
    format!("{protocol}://{host}/{}", crate::s3::list::url_encode(&key))
}

fn rule_redirect(rule: &RoutingRule, key: &str, host: &str) -> Response {
    let code =
        StatusCode::from_u16(rule.code.unwrap_or(301)).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    redirect(code, &rule_location(rule, key, host))
}

/// The bucket a request is for: its `Host` without port, less a
/// configured domain (`b.example.com` with `--domain example.com`).
fn bucket_of(host: &str, domains: &[String]) -> String {
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    domains
        .iter()
        .find_map(|d| host.strip_suffix(&format!(".{d}")))
        .unwrap_or(host)
        .to_owned()
}

impl Site {
    /// An unsigned GET or HEAD of `bucket/key` through the S3 service,
    /// with the request's conditional and range headers.
    async fn fetch(
        &self,
        method: &Method,
        bucket: &str,
        key: &str,
        from: &http::request::Parts,
    ) -> Response {
        let uri = format!("/{bucket}/{}", crate::s3::list::url_encode(key));
        let mut req = http::Request::new(s3s::Body::empty());
        *req.method_mut() = method.clone();
        *req.uri_mut() = match uri.parse() {
            Ok(u) => u,
            Err(_) => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "InvalidURI",
                    "Couldn't parse the specified URI.",
                );
            }
        };
        for name in [
            header::RANGE,
            header::IF_MATCH,
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_UNMODIFIED_SINCE,
        ] {
            if let Some(v) = from.headers.get(&name) {
                req.headers_mut().insert(name, v.clone());
            }
        }
        let peer = from
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(p)| *p);
        let context = Context::of(req.uri(), req.headers(), peer);
        req.extensions_mut().insert(context);
        match self.s3.call(req).await {
            Ok(resp) => resp.map(axum::body::Body::new).into_response(),
            Err(_) => error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
            ),
        }
    }

    async fn serve(&self, req: Request) -> Response {
        // The body of a GET or HEAD is not read.
        let (req, _) = req.into_parts();
        let method = req.method.clone();
        if method != Method::GET && method != Method::HEAD {
            return error_page(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            );
        }
        let host = req
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let name = bucket_of(&host, &self.gw.config.domains);
        let bucket = match self.gw.meta.bucket(&name).await {
            Ok(Some(b)) => b,
            Ok(None) => {
                return error_page(
                    StatusCode::NOT_FOUND,
                    "NoSuchBucket",
                    "The specified bucket does not exist",
                );
            }
            Err(_) => {
                return error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "Please try again.",
                );
            }
        };
        let config: Option<WebsiteConfig> = match self
            .gw
            .meta
            .bucket_config(bucket.id, ConfigKind::Website)
            .await
        {
            Ok(c) => c,
            Err(_) => {
                return error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "Please try again.",
                );
            }
        };
        let Some(config) = config else {
            return error_page(
                StatusCode::NOT_FOUND,
                "NoSuchWebsiteConfiguration",
                "The specified bucket does not have a website configuration",
            );
        };
        let path = req.uri.path().to_owned();
        if let Some((to, p)) = &config.redirect_all {
            let protocol = p.as_deref().unwrap_or("http");
            let query = req.uri.query().map(|q| format!("?{q}")).unwrap_or_default();
            return redirect(
                StatusCode::MOVED_PERMANENTLY,
                &format!("{protocol}://{to}{path}{query}"),
            );
        }
        let Some(mut key) = percent_decode(path.strip_prefix('/').unwrap_or(&path)) else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "InvalidURI",
                "Couldn't parse the specified URI.",
            );
        };
        let index = config.index_suffix.clone().unwrap_or_default();
        if key.is_empty() || key.ends_with('/') {
            key.push_str(&index);
        }
        // Rules on the key alone apply before anything is read.
        if let Some(rule) = config.rules.iter().find(|r| {
            r.error_code.is_none() && r.key_prefix.as_deref().is_some_and(|p| key.starts_with(p))
        }) {
            return rule_redirect(rule, &key, &host);
        }
        let resp = self.fetch(&method, &bucket.name, &key, &req).await;
        let status = resp.status();
        if status.is_success() || status.is_redirection() {
            return resp;
        }
        // A "folder" without its slash: send the browser to it. (A key
        // that is not there is 403 to a reader who may not list the
        // bucket, as in S3.)
        let absent = status == StatusCode::NOT_FOUND || status == StatusCode::FORBIDDEN;
        if absent && !key.ends_with(&index) {
            let folder = format!("{key}/{index}");
            if self
                .fetch(&Method::HEAD, &bucket.name, &folder, &req)
                .await
                .status()
                .is_success()
            {
                return redirect(
                    StatusCode::FOUND,
                    &format!("/{}/", crate::s3::list::url_encode(&key)),
                );
            }
        }
        if let Some(rule) = config.rules.iter().find(|r| {
            r.error_code == Some(status.as_u16())
                && r.key_prefix.as_deref().is_none_or(|p| key.starts_with(p))
        }) {
            return rule_redirect(rule, &key, &host);
        }
        if status.is_client_error()
            && let Some(error_key) = &config.error_key
        {
            let doc = self.fetch(&method, &bucket.name, error_key, &req).await;
            if doc.status().is_success() {
                let (mut parts, body) = doc.into_parts();
                parts.status = status;
                return Response::from_parts(parts, body);
            }
        }
        let (code, message) = match status {
            StatusCode::NOT_FOUND => ("NoSuchKey", "The specified key does not exist."),
            StatusCode::FORBIDDEN => ("AccessDenied", "Access Denied"),
            _ => ("Error", "The request could not be served."),
        };
        error_page(status, code, message)
    }
}

async fn handle(State(site): State<Arc<Site>>, req: Request) -> Response {
    site.serve(req).await
}

/// Serve the website endpoint on `listener` until `shutdown` completes.
pub async fn run<L>(
    gw: Arc<Gateway>,
    listener: L,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
{
    let mut s3 = S3ServiceBuilder::new(crate::s3::CairnS3::new(gw.clone()));
    s3.set_host(crate::host::Domains::new(Vec::new()));
    let site = Arc::new(Site { gw, s3: s3.build() });
    let router = axum::Router::new().fallback(handle).with_state(site);
    let listener = listener.tap_io(|_| {});
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_is_the_host() {
        let domains = vec!["example.com".to_owned()];
        assert_eq!(bucket_of("site.example.com:8080", &domains), "site");
        assert_eq!(bucket_of("www.site.org", &domains), "www.site.org");
        assert_eq!(bucket_of("www.site.org:80", &[]), "www.site.org");
    }

    #[test]
    fn rules_rewrite_keys_as_s3_does() {
        let rule = RoutingRule {
            key_prefix: Some("docs/".into()),
            error_code: None,
            host: None,
            protocol: None,
            replace_key_prefix: Some("documents/".into()),
            replace_key: None,
            code: None,
        };
        assert_eq!(
            rule_location(&rule, "docs/a b.html", "site"),
            "http://site/documents/a%20b.html"
        );
        let whole = RoutingRule {
            replace_key: Some("error.html".into()),
            replace_key_prefix: None,
            host: Some("other.example".into()),
            protocol: Some("https".into()),
            ..rule
        };
        assert_eq!(
            rule_location(&whole, "docs/x", "site"),
            "https://other.example/error.html"
        );
    }
}
