//! The source of physical time: a seam so simulations can drive it.
//!
//! Time orders nothing in Cairn's metadata (the Raft log does); it only
//! stamps records (Last-Modified, creation times) and drives timeouts.

/// Wall-clock time.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// Milliseconds since the epoch by the system clock.
pub fn now_ms() -> u64 {
    SystemClock.now_ms()
}
