//! Fault points, as FoundationDB's BUGGIFY: places in the production code
//! where a simulation makes a rare timing common (a chunk read that
//! stalls, a deleter that pauses between condemning and deleting, a repair
//! that writes late, a map change proposed late), so the schedules around
//! them are tried on every run rather than once a year. Off unless a
//! simulation turns them on; in production each costs one relaxed load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static ON: AtomicBool = AtomicBool::new(false);

/// Turn the fault points on, in this whole process (a simulation's
/// setting; production never calls it).
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// Whether the fault points are on.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Whether a fault point fires now: never unless [`enable`]d; then with
/// probability `p`, drawn from [`crate::random`] (seeded in a simulation).
pub fn fires(p: f64) -> bool {
    enabled() && (crate::random::random::<u32>() as f64) < p * u32::MAX as f64
}

/// A fault point that stalls: with probability `p`, wait for a random
/// time of up to `max`.
pub async fn stall(p: f64, max: Duration) {
    if fires(p) {
        let ms = crate::random::range_i64(0, max.as_millis() as i64);
        tokio::time::sleep(Duration::from_millis(ms as u64)).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn off_it_never_fires() {
        // Nothing in the unit tests enables it.
        assert!((0..1000).all(|_| !super::fires(1.0)));
    }
}
