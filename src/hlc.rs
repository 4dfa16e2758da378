//! Hybrid logical clock: timestamps that order metadata writes across nodes.
//!
//! A timestamp is (wall clock ms, logical counter, writer id). It never goes
//! backwards on one process even if the wall clock does, and it moves past any
//! timestamp the process has observed. Conflicts between replicas resolve to
//! the larger timestamp: last writer wins, S3's own rule for concurrent PUTs.

use serde::{Deserialize, Serialize};
use std::sync::Mutex;

/// One hybrid-logical-clock reading. Ordered by wall time, then counter, then
/// writer id, so two writers never produce equal timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp {
    /// Milliseconds since the Unix epoch (physical part).
    pub wall_ms: u64,
    /// Logical counter within one millisecond.
    pub logical: u32,
    /// The writer that issued the timestamp (tie-breaker).
    pub writer: u64,
}

impl Timestamp {
    /// The smallest timestamp; older than anything a clock issues.
    pub const ZERO: Timestamp = Timestamp {
        wall_ms: 0,
        logical: 0,
        writer: 0,
    };
}

/// The source of physical time: a seam so simulations can drive it.
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

/// The system clock shifted by a fixed offset: how tests give one process a
/// clock that runs ahead of or behind the others.
#[derive(Debug, Default, Clone, Copy)]
pub struct OffsetClock {
    /// Milliseconds added to the system clock (may be negative).
    pub offset_ms: i64,
}

impl Clock for OffsetClock {
    fn now_ms(&self) -> u64 {
        SystemClock.now_ms().saturating_add_signed(self.offset_ms)
    }
}

/// A hybrid logical clock for one writer.
pub struct Hlc<C: Clock = SystemClock> {
    clock: C,
    writer: u64,
    last: Mutex<(u64, u32)>,
}

impl<C: Clock> Hlc<C> {
    /// A clock that stamps with `writer`.
    pub fn new(clock: C, writer: u64) -> Self {
        Self {
            clock,
            writer,
            last: Mutex::new((0, 0)),
        }
    }

    /// A fresh timestamp, strictly greater than every earlier one from this
    /// clock and every one passed to [`Hlc::observe`].
    pub fn now(&self) -> Timestamp {
        let physical = self.clock.now_ms();
        let mut last = self.last.lock().expect("clock mutex poisoned");
        let next = if physical > last.0 {
            (physical, 0)
        } else {
            (
                last.0,
                last.1.checked_add(1).expect("logical counter overflow"),
            )
        };
        *last = next;
        Timestamp {
            wall_ms: next.0,
            logical: next.1,
            writer: self.writer,
        }
    }

    /// Move the clock past a timestamp seen from another process.
    pub fn observe(&self, seen: Timestamp) {
        let mut last = self.last.lock().expect("clock mutex poisoned");
        if (seen.wall_ms, seen.logical) > *last {
            *last = (seen.wall_ms, seen.logical);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Fixed(AtomicU64);
    impl Clock for Fixed {
        fn now_ms(&self) -> u64 {
            self.0.load(Ordering::SeqCst)
        }
    }

    #[test]
    fn never_goes_backwards() {
        let hlc = Hlc::new(Fixed(AtomicU64::new(1000)), 1);
        let a = hlc.now();
        hlc.clock.0.store(500, Ordering::SeqCst);
        let b = hlc.now();
        assert!(b > a);
        hlc.observe(Timestamp {
            wall_ms: 9000,
            logical: 3,
            writer: 2,
        });
        let c = hlc.now();
        assert!(c.wall_ms == 9000 && c.logical == 4);
    }

    #[test]
    fn writers_break_ties() {
        let a = Hlc::new(Fixed(AtomicU64::new(7)), 1).now();
        let b = Hlc::new(Fixed(AtomicU64::new(7)), 2).now();
        assert_ne!(a, b);
        assert!(b > a);
    }
}
