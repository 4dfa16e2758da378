//! Blocking work (disk reads and writes, hashing, coding) runs off the
//! async workers, on tokio's blocking threads; in a simulation, where one
//! thread runs every host and the same seed must give the same run, it
//! runs inline instead.

use futures::future::{Either, Ready, ready};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::task::{JoinError, JoinHandle};

static INLINE: AtomicBool = AtomicBool::new(false);

/// Run blocking work inline from now on, in this whole process (a
/// simulation's setting; production never calls it).
pub fn run_inline() {
    INLINE.store(true, Ordering::Relaxed);
}

/// Whether blocking work runs inline.
pub fn is_inline() -> bool {
    INLINE.load(Ordering::Relaxed)
}

/// `f` on a blocking thread (as `tokio::task::spawn_blocking`), or at once
/// when running inline.
pub fn spawn<F, R>(f: F) -> Either<Ready<Result<R, JoinError>>, JoinHandle<R>>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    if is_inline() {
        Either::Left(ready(Ok(f())))
    } else {
        Either::Right(tokio::task::spawn_blocking(f))
    }
}
