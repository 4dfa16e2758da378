//! Deliberately broken behaviours, off unless a test turns them on: the
//! simulation's own tests break the store in a known way and expect its
//! checks to notice. Each switch is read where the behaviour it breaks
//! lives; nothing else sets them.

use std::sync::atomic::{AtomicBool, Ordering};

/// A leader answers a data command `Ok` as soon as it has proposed it,
/// before a majority has committed it (and whatever its real outcome).
pub static ACK_BEFORE_COMMIT: AtomicBool = AtomicBool::new(false);
/// Shard files are written without being synced (their index entries
/// still are), so a power loss takes shards the node says it holds.
pub static SKIP_SHARD_FSYNC: AtomicBool = AtomicBool::new(false);
/// The collector treats the grace period as zero.
pub static GC_IGNORES_GRACE: AtomicBool = AtomicBool::new(false);

/// Whether `switch` is on.
pub fn on(switch: &AtomicBool) -> bool {
    switch.load(Ordering::Relaxed)
}
