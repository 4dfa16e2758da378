//! The gateway process: the router (admin API, then S3) and
//! `run(listener, shutdown)`.

pub use crate::state::Gateway;

use crate::framing::{self, CheckedBody};
use crate::headers;
use crate::host::Domains;
use crate::request_log;
use crate::s3::CairnS3;
use crate::s3::access::Context;
use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::serve::{Listener, ListenerExt};
use s3s::auth::{S3Auth, SecretKey};
use s3s::route::S3Route;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Request, S3Response, S3Result, s3_error};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

struct KeyAuth(Arc<Gateway>);

#[async_trait::async_trait]
impl S3Auth for KeyAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        if self.0.is_root(access_key) {
            return Ok(SecretKey::from(self.0.config.root_secret_key.clone()));
        }
        match self.0.access_key(access_key).await {
            Ok(Some(k)) => Ok(SecretKey::from(k.secret_access_key)),
            Ok(None) => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// The caller of a request s3s authenticated and [`Lenient`] handed on:
/// set only by the gateway, never from the network.
#[derive(Debug, Clone)]
pub struct TrustedCaller(pub String);

/// Requests S3 reads more leniently than s3s parses them
/// (`headers::needs_leniency`): s3s checks their signature over the headers
/// as sent, then this route relaxes the headers and hands the request to
/// a service without authentication, with its caller as a
/// [`TrustedCaller`].
struct Lenient {
    trusted: S3Service,
}

#[async_trait::async_trait]
impl S3Route for Lenient {
    fn is_match(
        &self,
        method: &http::Method,
        _uri: &http::Uri,
        headers: &http::HeaderMap,
        _extensions: &mut http::Extensions,
    ) -> bool {
        headers::needs_leniency(method, headers)
    }

    async fn check_access(&self, _req: &mut S3Request<s3s::Body>) -> S3Result<()> {
        // The handlers decide: an anonymous request gets no trusted caller.
        Ok(())
    }

    async fn call(&self, req: S3Request<s3s::Body>) -> S3Result<S3Response<s3s::Body>> {
        let mut http_req = http::Request::new(req.input);
        *http_req.method_mut() = req.method;
        *http_req.uri_mut() = headers::without_signature(&req.uri);
        *http_req.headers_mut() = req.headers;
        headers::relax(http_req.headers_mut());
        http_req.headers_mut().remove(http::header::AUTHORIZATION);
        if let Some(c) = req.credentials {
            http_req
                .extensions_mut()
                .insert(TrustedCaller(c.access_key));
        }
        if let Some(c) = req.extensions.get::<Context>() {
            http_req.extensions_mut().insert(c.clone());
        }
        let resp = self
            .trusted
            .call(http_req)
            .await
            .map_err(|e| s3_error!(InternalError, "{e:?}"))?;
        let (parts, body) = resp.into_parts();
        let mut out = S3Response::new(body);
        out.status = Some(parts.status);
        out.headers = parts.headers;
        Ok(out)
    }
}

/// Lets unsigned requests through to the handlers, which decide
/// (`s3::access`): s3s refuses them all by default.
struct Anyone;

#[async_trait::async_trait]
impl s3s::access::S3Access for Anyone {
    async fn check(&self, _cx: &mut s3s::access::S3AccessContext<'_>) -> S3Result<()> {
        Ok(())
    }
}

/// What s3s reads of requests by itself.
fn s3s_config() -> Arc<s3s::config::StaticConfigProvider> {
    let mut c = s3s::config::S3Config::default();
    c.post_object_max_file_size = crate::config::MAX_POST_OBJECT_BYTES;
    Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(c)))
}

fn s3_service(gw: &Arc<Gateway>) -> S3Service {
    let mut trusted = S3ServiceBuilder::new(CairnS3::new(gw.clone()));
    trusted.set_host(Domains::new(gw.config.domains.clone()));
    trusted.set_config(s3s_config());
    let mut builder = S3ServiceBuilder::new(CairnS3::new(gw.clone()));
    builder.set_config(s3s_config());
    builder.set_auth(KeyAuth(gw.clone()));
    builder.set_access(Anyone);
    builder.set_host(Domains::new(gw.config.domains.clone()));
    builder.set_route(Lenient {
        trusted: trusted.build(),
    });
    builder.build()
}

/// The S3 service and what bounds its requests before they reach it.
struct S3Entry {
    svc: S3Service,
    // POST uploads being read into memory by s3s.
    posts: tokio::sync::Semaphore,
}

/// Whether a request is a browser upload (POST Object), whose file s3s
/// reads whole.
fn is_post_upload(req: &Request) -> bool {
    req.method() == http::Method::POST
        && req
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"))
}

async fn s3_fallback(State(entry): State<Arc<S3Entry>>, mut req: Request) -> Response {
    if let Some(refused) = headers::request(&mut req, cairn::clock::now_ms() / 1000) {
        return refused;
    }
    let post = if is_post_upload(&req) {
        match entry.posts.acquire().await {
            Ok(p) => Some(p),
            Err(_) => {
                return (http::StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
            }
        }
    } else {
        None
    };
    let svc = &entry.svc;
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(p)| *p);
    let context = Context::of(req.uri(), req.headers(), peer);
    req.extensions_mut().insert(context);
    // aws-chunked bodies are checked for completeness on their way in.
    let req = match framing::expectation(req.headers()) {
        Some(expect) => req.map(|b| s3s::Body::http_body_unsync(CheckedBody::new(b, expect))),
        None => req.map(s3s::Body::http_body_unsync),
    };
    match svc.call(req).await {
        Ok(resp) => {
            let resp = resp.map(axum::body::Body::new).into_response();
            let resp = if post.is_some() {
                as_s3_refuses_posts(resp).await
            } else {
                resp
            };
            headers::response(resp).await
        }
        Err(e) => {
            request_log::note_cause(format!("s3 service failed: {e:?}"));
            (http::StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// Give every response an `x-amz-request-id` (and `x-amz-id-2`), as S3
/// does, run the request under a span carrying it, and write one log line
/// for each request that failed (see `request_log`).
async fn request_id(req: Request, next: axum::middleware::Next) -> Response {
    let id = format!("{:016X}", cairn_node::random::random::<u64>());
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let span = tracing::info_span!("request", id = %id);
    let (mut resp, cause) =
        request_log::scope(tracing::Instrument::instrument(next.run(req), span)).await;
    if let Ok(v) = http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-amz-request-id", v.clone());
        resp.headers_mut().insert("x-amz-id-2", v);
    }
    let status = resp.status();
    // Probes of an unready gateway fail by design: not worth a line each.
    let probe = path.starts_with("/_cairn/health");
    if (status.is_client_error() || status.is_server_error()) && !probe {
        let code;
        (resp, code) = with_request_id_in_error(resp, &id).await;
        request_log::failed(
            &id,
            &method,
            &path,
            status,
            code.as_deref(),
            cause.as_deref(),
        );
    }
    resp
}

/// Largest error body rewritten to carry its request id (S3 error bodies
/// are a few hundred bytes).
const MAX_ERROR_BODY_BYTES: usize = 16 << 10;

/// Put `<RequestId>` into an S3 XML error body, as S3 does, so clients can
/// match a failure to the logs; also return the body's `<Code>`.
async fn with_request_id_in_error(resp: Response, id: &str) -> (Response, Option<String>) {
    let is_xml = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/xml"));
    if !is_xml {
        return (resp, None);
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_ERROR_BODY_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            let resp = (
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "error body too large",
            )
                .into_response();
            return (resp, None);
        }
    };
    let text = String::from_utf8_lossy(&bytes);
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_owned());
    let body = match text.rfind("</Error>") {
        Some(at) if !text.contains("<RequestId>") => {
            format!("{}<RequestId>{id}</RequestId>{}", &text[..at], &text[at..])
        }
        _ => text.into_owned(),
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    (
        Response::from_parts(parts, axum::body::Body::from(body)),
        code,
    )
}

/// s3s answers a POST upload whose form breaks a condition of its policy
/// with `400 InvalidPolicyDocument`; S3 answers `403 AccessDenied`
/// ("Invalid according to Policy: Policy Condition failed"). The message
/// naming the condition is kept.
async fn as_s3_refuses_posts(resp: Response) -> Response {
    if resp.status() != http::StatusCode::BAD_REQUEST {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY_BYTES).await else {
        return (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "error body too large",
        )
            .into_response();
    };
    let text = String::from_utf8_lossy(&bytes);
    let body = if text.contains("<Code>InvalidPolicyDocument</Code>")
        && text.contains("<Message>Policy condition ")
    {
        parts.status = http::StatusCode::FORBIDDEN;
        parts.headers.remove(http::header::CONTENT_LENGTH);
        text.replace(
            "<Code>InvalidPolicyDocument</Code><Message>Policy condition ",
            "<Code>AccessDenied</Code><Message>Invalid according to Policy: Policy Condition failed: ",
        )
    } else {
        text.into_owned()
    };
    Response::from_parts(parts, axum::body::Body::from(body))
}

/// The whole HTTP surface: admin API, health, metrics, and S3 for the rest.
pub fn router(gw: Arc<Gateway>) -> Router {
    let svc = Arc::new(S3Entry {
        svc: s3_service(&gw),
        posts: tokio::sync::Semaphore::new(crate::config::MAX_CONCURRENT_POSTS),
    });
    let cors = axum::middleware::from_fn_with_state(gw.clone(), crate::cors::layer);
    crate::admin::router(gw)
        .fallback_service(Router::new().fallback(s3_fallback).with_state(svc))
        .layer(cors)
        .layer(axum::middleware::from_fn(request_id))
}

/// Serve the gateway on `listener` until `shutdown` completes.
pub async fn run<L>(
    gw: Arc<Gateway>,
    listener: L,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
{
    tracing::info!(addr = ?listener.local_addr()?, "gateway serving");
    // Each request knows the address it came from (`aws:SourceIp`); a
    // tapped listener is one axum gives that for, whatever the listener.
    let listener = listener.tap_io(|_| {});
    let service = router(gw).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}
