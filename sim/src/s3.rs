//! A small S3 client for the simulated workload: SigV4-signed requests over
//! the simulated network, one connection per request.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::time::{Duration, SystemTime};

/// How an error of a request that never left starts: no connection was
/// opened, so nothing was sent.
pub const NOT_SENT: &str = "connect:";
/// Longest a request may take before its outcome counts as unknown.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// An S3 answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Where and as whom to send.
#[derive(Clone)]
pub struct S3 {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
}

impl S3 {
    /// Send `method path` with `headers` and `body`; `Err` when no answer
    /// came (connection refused or broken, timeout): the outcome is unknown.
    pub async fn send(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<Answer, String> {
        self.exchange(method, path, headers, body, true).await
    }

    /// Send without a signature (the admin API, which takes a token).
    pub async fn send_unsigned(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<Answer, String> {
        self.exchange(method, path, headers, Bytes::new(), false)
            .await
    }

    async fn exchange(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, String)],
        body: Bytes,
        signed: bool,
    ) -> Result<Answer, String> {
        let url = format!("http://{}{path}", self.endpoint);
        let mut req = http::Request::builder()
            .method(method)
            .uri(&url)
            .header(http::header::HOST, &self.endpoint);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let (mut parts, ()) = req.body(()).map_err(|e| e.to_string())?.into_parts();
        if signed {
            self.sign(&mut parts, &url, &body)?;
        }
        // The wire wants the origin form.
        parts.uri = path
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        let req = http::Request::from_parts(parts, Full::new(body));
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            let stream = turmoil::net::TcpStream::connect(self.endpoint.as_str())
                .await
                .map_err(|e| format!("{NOT_SENT} {e}"))?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("request: {e}"))?;
            let (head, mut body) = resp.into_parts();
            let mut got = Vec::new();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| format!("body: {e}"))?;
                if let Ok(data) = frame.into_data() {
                    got.extend_from_slice(&data);
                }
            }
            let body = Bytes::from(got);
            Ok(Answer {
                status: head.status.as_u16(),
                headers: head.headers,
                body,
            })
        })
        .await
        .map_err(|_| "timed out".to_owned())?
    }

    fn sign(&self, parts: &mut http::request::Parts, url: &str, body: &[u8]) -> Result<(), String> {
        let identity: Identity =
            Credentials::new(&self.access_key, &self.secret_key, None, None, "sim").into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| e.to_string())?
            .into();
        let headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let signable = SignableRequest::new(
            parts.method.as_str(),
            url,
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| e.to_string())?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| e.to_string())?
            .into_parts();
        for (name, value) in instructions.headers() {
            let name: http::HeaderName = name.parse().map_err(|_| name.to_owned())?;
            parts
                .headers
                .insert(name, value.parse().map_err(|_| value.to_owned())?);
        }
        Ok(())
    }
}
