//! Storage node configuration.

use std::path::PathBuf;

/// Smallest cluster secret accepted, in bytes of text.
pub const MIN_CLUSTER_SECRET_LEN: usize = 32;

/// Everything a node needs to run.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the node keeps its shards and its RocksDB.
    pub data_dir: PathBuf,
    /// The shared secret every RPC is signed with. Generated at cluster
    /// creation; there is no default.
    pub cluster_secret: String,
    /// Fsync shard files (and their directory) before acknowledging.
    /// Always on in the binary; off only in tests, among them the one
    /// proving that a power loss then loses acknowledged shards
    /// (`storage-node/tests/power_loss.rs`). Raft logs are always synced.
    pub fsync: bool,
    /// How metadata reads confirm leadership.
    pub read_barrier: crate::table::ReadBarrier,
    /// How long a node must be down before the cluster marks it out and
    /// rebuilds its shards elsewhere (acted on by the node leading the
    /// system group).
    pub down_out_after: std::time::Duration,
    /// How long a chunk stays after its last reference went (and how old an
    /// unreferenced shard must be) before the collector deletes it.
    pub gc_grace: std::time::Duration,
    /// How long a lifecycle "day" lasts: a real day ([`DEFAULT_LIFECYCLE_DAY`])
    /// but in tests, which shorten it to see rules act (as Ceph's
    /// `rgw_lc_debug_interval`). Test-only: rules then expire objects after
    /// seconds.
    pub lifecycle_day: std::time::Duration,
}

/// Default of [`NodeConfig::down_out_after`]: 600 s, as Ceph's
/// `mon_osd_down_out_interval`: long enough for a reboot or a process
/// restart, short enough that a second loss is unlikely meanwhile.
pub const DEFAULT_DOWN_OUT_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Default of [`NodeConfig::gc_grace`]: one hour. A GET that read an
/// object's manifest before the object was deleted or overwritten keeps
/// reading its chunks; an hour lets a 5 GiB object stream at 1.5 MB/s. The
/// safety of a chunk a live object uses does not rest on it (see
/// `docs/design/gc.md`).
pub const DEFAULT_GC_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Default of [`NodeConfig::lifecycle_day`]: a day.
pub const DEFAULT_LIFECYCLE_DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

impl NodeConfig {
    /// Check the configuration once, at start.
    pub fn validate(&self) -> Result<(), String> {
        if self.cluster_secret.trim().len() < MIN_CLUSTER_SECRET_LEN {
            return Err(format!(
                "cluster secret must be at least {MIN_CLUSTER_SECRET_LEN} characters"
            ));
        }
        Ok(())
    }
}

/// Read a cluster secret from a file (trailing whitespace trimmed).
pub fn read_secret_file(path: &std::path::Path) -> std::io::Result<String> {
    Ok(std::fs::read_to_string(path)?.trim().to_owned())
}

/// A fresh random secret (hex of 32 random bytes).
pub fn generate_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
