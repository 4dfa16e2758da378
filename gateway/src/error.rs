//! The gateway's error type and the one table that maps it to S3 errors.

use s3s::{S3Error, S3ErrorCode};

/// Result with the gateway [`Error`] as default.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Internal failures of the gateway's pipelines.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No layout has been applied yet.
    #[error("the cluster has no layout yet")]
    NoLayout,
    /// Fewer replicas or shard holders answered than the quorum needs.
    #[error("quorum not reached: {0}")]
    Quorum(String),
    /// A chunk could not be read back (too few intact shards).
    #[error("chunk unreadable: {0}")]
    Unreadable(String),
    /// A storage node error.
    #[error(transparent)]
    Node(#[from] cairn_node::Error),
    /// A core library error.
    #[error(transparent)]
    Core(#[from] cairn::Error),
    /// The client's body stream failed.
    #[error("request body: {0}")]
    Body(String),
    /// An S3-level error decided by a handler (already has its code).
    #[error("{0:?}")]
    S3(S3Error),
}

impl From<S3Error> for Error {
    fn from(e: S3Error) -> Self {
        Error::S3(e)
    }
}

impl Error {
    /// The S3 error code of this failure: the single mapping table.
    pub fn code(&self) -> S3ErrorCode {
        match self {
            Error::NoLayout | Error::Quorum(_) | Error::Unreadable(_) | Error::Node(_) => {
                S3ErrorCode::ServiceUnavailable
            }
            Error::Body(reason) => body_error_code(reason),
            Error::Core(_) => S3ErrorCode::InternalError,
            Error::S3(e) => e.code().clone(),
        }
    }
}

/// AWS's code for a body whose SHA-256 is not the signed one (400).
const SHA256_MISMATCH: &str = "XAmzContentSHA256Mismatch";

/// The S3 code of a failed request body. `s3s` verifies chunk signatures and
/// the single-chunk payload hash while the body streams, and reports a
/// mismatch as a stream error whose types are private to it: its message is
/// all there is to go on (pinned by the aws-chunked and signature tests).
fn body_error_code(reason: &str) -> S3ErrorCode {
    if reason.contains("SignatureMismatch") {
        S3ErrorCode::SignatureDoesNotMatch
    } else if reason.contains("Sha256Mismatch") {
        S3ErrorCode::Custom(SHA256_MISMATCH.into())
    } else if reason.contains("FormatError")
        || reason.contains("TooLarge")
        || reason.contains("TooMany")
    {
        S3ErrorCode::InvalidRequest
    } else {
        S3ErrorCode::IncompleteBody
    }
}

impl From<Error> for S3Error {
    fn from(e: Error) -> Self {
        match e {
            Error::S3(e) => e,
            other => {
                let code = other.code();
                // 5xx never leak internals: the cause goes to the request's
                // log line, the client gets a plain message.
                crate::request_log::note_cause(&other);
                let message = match code.as_str() {
                    "ServiceUnavailable" => {
                        "The cluster cannot serve this request right now; retry."
                    }
                    "IncompleteBody" => "The request body ended early or failed.",
                    "SignatureDoesNotMatch" => {
                        "The request signature we calculated does not match the signature you provided."
                    }
                    SHA256_MISMATCH => {
                        "The provided 'x-amz-content-sha256' header does not match what was computed."
                    }
                    "InvalidRequest" => "The aws-chunked body is malformed.",
                    _ => "We encountered an internal error. Please try again.",
                };
                let custom = matches!(code, S3ErrorCode::Custom(_));
                let mut err = S3Error::with_message(code, message);
                if custom {
                    err.set_status_code(http::StatusCode::BAD_REQUEST);
                }
                err
            }
        }
    }
}
