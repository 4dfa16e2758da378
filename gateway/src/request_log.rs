//! One log line per failed request, at the level its cause deserves, under
//! the request's id.
//!
//! Handlers do not log the internal failures they turn into S3 errors; they
//! note the cause here ([`note_cause`]) and the request middleware in
//! `server.rs` writes one line when the response is known: ERROR for a
//! server fault, WARN for `503` (the cluster could not serve it: a
//! condition of the cluster, not a bug), INFO for a client's mistake (4xx).

use std::cell::RefCell;
use std::future::Future;

tokio::task_local! {
    static CAUSE: RefCell<Option<String>>;
}

/// Record why the current request failed (the last cause noted wins).
/// Outside a request (background work) the cause is logged at once.
pub fn note_cause(cause: impl std::fmt::Display) {
    let text = cause.to_string();
    if CAUSE
        .try_with(|c| *c.borrow_mut() = Some(text.clone()))
        .is_err()
    {
        tracing::warn!(cause = %text, "failed outside a request");
    }
}

/// Run one request's handling and return what it produced together with
/// the cause noted while it ran, if any.
pub async fn scope<F: Future>(handling: F) -> (F::Output, Option<String>) {
    CAUSE
        .scope(RefCell::new(None), async {
            let out = handling.await;
            let cause = CAUSE.with(|c| c.borrow_mut().take());
            (out, cause)
        })
        .await
}

/// Write the line of a finished request that failed.
pub fn failed(
    id: &str,
    method: &http::Method,
    path: &str,
    status: http::StatusCode,
    code: Option<&str>,
    cause: Option<&str>,
) {
    let code = code.unwrap_or("-");
    let cause = cause.unwrap_or("-");
    let status = status.as_u16();
    match status {
        503 => {
            tracing::warn!(request_id = id, %method, path, status, code, cause, "request failed")
        }
        500.. => {
            tracing::error!(request_id = id, %method, path, status, code, cause, "request failed")
        }
        _ => tracing::info!(request_id = id, %method, path, status, code, cause, "request failed"),
    }
}
