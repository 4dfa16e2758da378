//! Gateway configuration: one struct, validated once at start.

/// Default size of the chunks an object is cut into. At 4 MiB a 4+2 shard is
/// 1 MiB: large enough that per-request overheads are small next to transfer
/// time, small enough that a GET's working set (a few chunks) stays a few
/// tens of MiB. See docs/PERFORMANCE.md.
pub const DEFAULT_CHUNK_SIZE_BYTES: usize = 4 << 20;
/// Objects up to this size live inside their manifest (no shards): one
/// metadata write instead of k+m shard writes.
pub const DEFAULT_INLINE_THRESHOLD_BYTES: usize = 16 << 10;
/// Largest chunk size accepted in configuration.
pub const MAX_CHUNK_SIZE_BYTES: usize = 64 << 20;
/// Largest object a single PUT may carry (S3's own limit is 5 GiB).
pub const MAX_PUT_OBJECT_BYTES: u64 = 5 << 30;
/// Largest file a browser POST upload may carry. s3s reads the whole file
/// into memory before the handler sees it, so the bound is small; larger
/// uploads from a browser go through multipart uploads with presigned
/// URLs. (S3's own limit is 5 GiB.)
pub const MAX_POST_OBJECT_BYTES: u64 = 16 << 20;
/// POST uploads read at once: with [`MAX_POST_OBJECT_BYTES`], at most
/// 64 MiB of buffered files. More wait for their turn.
pub const MAX_CONCURRENT_POSTS: usize = 4;
/// Chunks of one PUT being hashed, encoded or written at once. Bounds a PUT's
/// memory to about this many chunks plus their parity.
pub const PUT_PIPELINE_DEPTH: usize = 3;
/// Chunked PUTs and GETs one gateway serves at once by default; beyond it,
/// SlowDown. With the pipeline depths below, about 32 × 30 MiB of buffers
/// at most.
pub const DEFAULT_MAX_CONCURRENT_TRANSFERS: usize = 32;
/// Chunks of one GET being fetched ahead of the one being sent.
pub const GET_PREFETCH_CHUNKS: usize = 2;

/// Everything the gateway needs to run.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Storage node RPC addresses to start from (the layout adds the rest).
    pub seed_nodes: Vec<String>,
    /// The cluster secret node RPC is signed with.
    pub cluster_secret: String,
    /// Bearer token of the admin API.
    pub admin_token: String,
    /// The root S3 key: full access to every bucket.
    pub root_access_key: String,
    /// Its secret.
    pub root_secret_key: String,
    /// The region clients sign for.
    pub region: String,
    /// Base domains for virtual-host-style addressing (`bucket.DOMAIN`).
    pub domains: Vec<String>,
    /// Chunk size in bytes.
    pub chunk_size_bytes: usize,
    /// Inline threshold in bytes.
    pub inline_threshold_bytes: usize,
    /// Chunked PUTs and GETs served at once (beyond: 503 SlowDown).
    pub max_concurrent_transfers: usize,
    /// How long the nodes' lifecycle "day" lasts, for the expiry dates
    /// object answers announce (`x-amz-expiration`): a real day but in
    /// tests, which shorten it on nodes and gateways alike.
    pub lifecycle_day: std::time::Duration,
}

impl GatewayConfig {
    /// Check once, at start.
    pub fn validate(&self) -> Result<(), String> {
        if self.cluster_secret.len() < cairn_node::config::MIN_CLUSTER_SECRET_LEN {
            return Err("cluster secret too short".into());
        }
        if self.admin_token.len() < 16 {
            return Err("admin token must be at least 16 characters".into());
        }
        if self.root_access_key.len() < 3 || self.root_secret_key.len() < 8 {
            return Err("root credentials too short".into());
        }
        if !(64 << 10..=MAX_CHUNK_SIZE_BYTES).contains(&self.chunk_size_bytes) {
            return Err(format!(
                "chunk size must be 64 KiB..={MAX_CHUNK_SIZE_BYTES} bytes"
            ));
        }
        if !(1..=4096).contains(&self.max_concurrent_transfers) {
            return Err("max concurrent transfers must be 1..=4096".into());
        }
        if self.inline_threshold_bytes > self.chunk_size_bytes {
            return Err("inline threshold larger than a chunk".into());
        }
        Ok(())
    }
}
