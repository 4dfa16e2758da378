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

/// Where this process reads the time, when not from the system clock.
static SOURCE: std::sync::OnceLock<fn() -> u64> = std::sync::OnceLock::new();

/// Make `source` (milliseconds since the epoch) this process's clock: a
/// simulation drives time this way. Once per process, before anything
/// reads the time; `false` if a source was already installed.
pub fn install(source: fn() -> u64) -> bool {
    SOURCE.set(source).is_ok()
}

/// Milliseconds since the epoch by this process's clock (the system
/// clock unless a simulation installed its own).
pub fn now_ms() -> u64 {
    match SOURCE.get() {
        Some(source) => source(),
        None => SystemClock.now_ms(),
    }
}

/// [`now_ms`] as a `SystemTime`.
pub fn now() -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(now_ms())
}
