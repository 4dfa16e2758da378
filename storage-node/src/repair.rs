//! The repair and rebalance worker: every node makes sure it holds, for each
//! partition it owns in the placement in force, its shard of every chunk any
//! holder of that partition knows of.
//!
//! A pass has three phases (the algorithm, priorities and what "done" means
//! are in `docs/design/repair.md`):
//!
//! 1. **Scan.** For each partition this node owns (at shard index `i`), page
//!    through the shard index of every node that may hold shards of it (its
//!    row now and the rows of the earlier placements still migrating), merged
//!    by chunk id. Each chunk this node lacks shard `i` of becomes a task in
//!    the persisted queue (`repair` column family), keyed by how many shards
//!    of the chunk exist above `k`, so the chunks closest to loss come first.
//!    The scan also counts chunks short of shards on their current owners
//!    (each chunk by one node: the first owner that answered).
//! 2. **Repair.** Tasks are taken in key order (most at risk first), at most
//!    [`RepairThrottle`]'s concurrency at once and its bytes/s: a shard an
//!    earlier owner still holds at the same index is copied; otherwise `k`
//!    shards are read from any holders, the chunk is rebuilt and verified
//!    against its id, and shard `i` is encoded again. A task that fails stays
//!    counted and is found again by the next pass, after a backoff.
//! 3. **Tidy.** Shards this node holds at an index the placement gives to
//!    another node are deleted once that node holds them, verified.
//!
//! A pass that found every source, left no task failing and saw the
//! placement unchanged reports its placement version as synced (in the
//! node's beats); once every owner has, the earlier placements retire.

use crate::chunks::{Placement, codec_for};
use crate::client::NodeClient;
use crate::db::{self, Cf, Db, Kv};
use crate::shard_store::ShardStore;
use crate::table::groups::Tables;
use bytes::Bytes;
use cairn::codec::ShardGeometry;
use cairn::id::{ChunkId, NodeId};
use cairn::layout::partition_key_range;
use cairn::record;
use cairn::rpc::{ListShardsRequest, ListedShard, RepairReport, RepairThrottle};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::time::Instant;

/// Time between two passes when the last one found nothing to do.
pub const IDLE_PASS_INTERVAL: Duration = Duration::from_secs(30);
/// Time between two passes when this node holds all its shards but counted
/// chunks short on other owners (they are repairing; the count is redone
/// soon so it does not lag behind them).
pub const RECOUNT_INTERVAL: Duration = Duration::from_secs(2);
/// Time between two passes when the last one could not finish (a source
/// did not answer, a task failed); doubles up to [`MAX_RETRY_BACKOFF`].
pub const RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// Longest backoff between failing passes.
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(30);
/// Shard index entries asked of each source per page.
pub const SCAN_PAGE: u32 = 1024;
/// Most tasks kept in the queue; the scan waits for the repair phase to
/// drain it when full.
pub const MAX_QUEUE: usize = 100_000;
/// Default rebuild and move rate, bytes/s (0 would be unlimited).
pub const DEFAULT_MAX_BYTES_PER_S: u64 = 256 << 20;
/// Default tasks at once.
pub const DEFAULT_CONCURRENCY: u32 = 4;
/// Most tasks at once, whatever is asked.
pub const MAX_CONCURRENCY: u32 = 64;
/// Client shard transfers in flight on this node above which the worker
/// pauses between tasks (backing off under client load).
pub const CLIENT_LOAD_BACKOFF_AT: usize = 16;
/// Pause between tasks under client load.
pub const LOAD_BACKOFF: Duration = Duration::from_millis(50);
/// Misplaced shards checked (and dropped when their owner holds them) per
/// pass.
pub const MAX_TIDY_PER_PASS: usize = 10_000;
const THROTTLE_KEY: &[u8] = b"repair_throttle";

/// One queued task: this node lacks shard `index` of `chunk`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Task {
    chunk: ChunkId,
    index: u8,
    geometry: ShardGeometry,
    /// (node, shard index) known to hold a shard of the chunk.
    holders: Vec<(NodeId, u8)>,
}

fn task_key(above_k: u8, chunk: &ChunkId, index: u8) -> Vec<u8> {
    let mut k = Vec::with_capacity(34);
    k.push(above_k);
    k.extend_from_slice(&chunk.0);
    k.push(index);
    k
}

/// Counters of the worker (monotonic ones never go back).
#[derive(Debug, Default)]
struct Progress {
    state: &'static str,
    placement_version: u64,
    synced: u64,
    passes: u64,
    counted_at: u64,
    by_missing: BTreeMap<u8, u64>,
    misplaced: u64,
    unrecoverable: u64,
    retrying: u64,
    queued_bytes: u64,
    // Rate: (when, bytes_done) samples of the last seconds.
    samples: std::collections::VecDeque<(Instant, u64)>,
}

/// The worker's shared state.
pub struct Repair {
    me: NodeId,
    db: Db,
    shards: Arc<dyn ShardStore>,
    tables: Weak<Tables>,
    client: NodeClient,
    progress: Mutex<Progress>,
    bytes_done: AtomicU64,
    rebuilt: AtomicU64,
    moved: AtomicU64,
    dropped: AtomicU64,
    max_bytes_per_s: AtomicU64,
    concurrency: AtomicU32,
    paused: AtomicBool,
    wake: tokio::sync::Notify,
    client_load: Arc<tokio::sync::Semaphore>,
    client_load_max: usize,
    // Shards scrub found corrupt here and deleted, waiting for their rebuild.
    scrub_pending: Arc<Mutex<BTreeSet<(ChunkId, u8)>>>,
    scrub_repaired: AtomicU64,
    placement: Mutex<Option<Arc<Placement>>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct SavedThrottle {
    max_bytes_per_s: u64,
    concurrency: u32,
    paused: bool,
}

impl Repair {
    /// The worker of node `me`, with the throttle it last saved; `client_load`
    /// is the node's semaphore of client shard transfers (`client_load_max`
    /// permits).
    pub fn new(
        me: NodeId,
        db: Db,
        shards: Arc<dyn ShardStore>,
        tables: Weak<Tables>,
        client: NodeClient,
        client_load: Arc<tokio::sync::Semaphore>,
        client_load_max: usize,
    ) -> Arc<Self> {
        let saved = db
            .get(Cf::Node, THROTTLE_KEY)
            .ok()
            .flatten()
            .and_then(|v| record::decode::<SavedThrottle>("repair throttle", &v).ok())
            .unwrap_or(SavedThrottle {
                max_bytes_per_s: DEFAULT_MAX_BYTES_PER_S,
                concurrency: DEFAULT_CONCURRENCY,
                paused: false,
            });
        Arc::new(Self {
            me,
            db,
            shards,
            tables,
            client,
            progress: Mutex::new(Progress {
                state: "idle",
                ..Default::default()
            }),
            bytes_done: AtomicU64::new(0),
            rebuilt: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            max_bytes_per_s: AtomicU64::new(saved.max_bytes_per_s),
            concurrency: AtomicU32::new(saved.concurrency.clamp(1, MAX_CONCURRENCY)),
            paused: AtomicBool::new(saved.paused),
            wake: tokio::sync::Notify::new(),
            client_load,
            client_load_max,
            scrub_pending: Arc::new(Mutex::new(BTreeSet::new())),
            scrub_repaired: AtomicU64::new(0),
            placement: Mutex::new(None),
        })
    }

    /// The set scrub records the corrupt shards it deleted in.
    pub fn scrub_pending(&self) -> Arc<Mutex<BTreeSet<(ChunkId, u8)>>> {
        self.scrub_pending.clone()
    }

    /// Shards scrub found corrupt that have been rebuilt here since start.
    pub fn scrub_repaired(&self) -> u64 {
        self.scrub_repaired.load(Ordering::Relaxed)
    }

    /// Whether this node holds shard `index` of `chunk` in the placement in
    /// force (as of the last pass, or the current map).
    pub fn owns(&self, chunk: &ChunkId, index: u8) -> bool {
        let cached = self.placement.lock().expect("placement lock").clone();
        let placement = cached.or_else(|| {
            let map = self.tables.upgrade()?.map()?;
            Placement::new(map.as_ref().clone()).ok().map(Arc::new)
        });
        placement
            .is_some_and(|p| p.table.chunk_nodes(chunk).get(usize::from(index)) == Some(&self.me))
    }

    /// Start a pass now (the map changed, or an operator asked).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The placement version of the last pass that completed with nothing
    /// left to do.
    pub fn synced(&self) -> u64 {
        self.progress.lock().expect("progress lock").synced
    }

    /// Change the limits; they are kept across restarts.
    pub fn set_throttle(&self, t: &RepairThrottle) -> crate::Result<()> {
        if let Some(b) = t.max_bytes_per_s {
            self.max_bytes_per_s.store(b, Ordering::Relaxed);
        }
        if let Some(c) = t.concurrency {
            self.concurrency
                .store(c.clamp(1, MAX_CONCURRENCY), Ordering::Relaxed);
        }
        if let Some(p) = t.paused {
            self.paused.store(p, Ordering::Relaxed);
        }
        let saved = SavedThrottle {
            max_bytes_per_s: self.max_bytes_per_s.load(Ordering::Relaxed),
            concurrency: self.concurrency.load(Ordering::Relaxed),
            paused: self.paused.load(Ordering::Relaxed),
        };
        self.db
            .put(Cf::Node, THROTTLE_KEY, &record::encode(&saved), true)?;
        self.wake();
        Ok(())
    }

    /// What the worker reports of itself.
    pub fn report(&self) -> RepairReport {
        let p = self.progress.lock().expect("progress lock");
        let queued = self.queue_len();
        let done = self.bytes_done.load(Ordering::Relaxed);
        let rate = match (p.samples.front(), p.samples.back()) {
            (Some((t0, b0)), Some((t1, b1))) if t1 > t0 => {
                (b1 - b0) as f64 / (*t1 - *t0).as_secs_f64()
            }
            _ => 0.0,
        };
        RepairReport {
            state: if self.paused.load(Ordering::Relaxed) {
                "paused".into()
            } else {
                p.state.into()
            },
            placement_version: p.placement_version,
            synced: p.synced,
            passes: p.passes,
            counted_at: p.counted_at,
            by_missing_shards: p.by_missing.clone(),
            shards_to_fix: queued,
            misplaced_shards: p.misplaced,
            bytes_remaining: p.queued_bytes,
            bytes_done: done,
            shards_rebuilt: self.rebuilt.load(Ordering::Relaxed),
            shards_moved: self.moved.load(Ordering::Relaxed),
            shards_dropped: self.dropped.load(Ordering::Relaxed),
            unrecoverable_chunks: p.unrecoverable,
            retrying: p.retrying,
            rate_bytes_per_s: rate,
            max_bytes_per_s: self.max_bytes_per_s.load(Ordering::Relaxed),
            concurrency: self.concurrency.load(Ordering::Relaxed),
            voter_changes_pending: 0,
        }
    }

    fn set_state(&self, state: &'static str) {
        self.progress.lock().expect("progress lock").state = state;
    }

    fn queue_len(&self) -> u64 {
        self.db.estimate_keys(Cf::Repair)
    }

    fn note_done(&self, bytes: u64) {
        let total = self.bytes_done.fetch_add(bytes, Ordering::Relaxed) + bytes;
        metrics::counter!("cairn_repair_bytes_total").increment(bytes);
        let mut p = self.progress.lock().expect("progress lock");
        let now = Instant::now();
        p.samples.push_back((now, total));
        while p
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > Duration::from_secs(10))
        {
            p.samples.pop_front();
        }
        p.queued_bytes = p.queued_bytes.saturating_sub(bytes);
    }

    /// Run the worker until the node's tables go away.
    pub fn spawn(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut backoff = RETRY_BACKOFF;
            loop {
                let Some(worker) = me.upgrade() else { return };
                let wait = match worker.clone().pass().await {
                    Some(PassEnd::Clean) => {
                        backoff = RETRY_BACKOFF;
                        IDLE_PASS_INTERVAL
                    }
                    Some(PassEnd::Worked) => {
                        backoff = RETRY_BACKOFF;
                        Duration::ZERO
                    }
                    Some(PassEnd::OthersShort) => {
                        backoff = RETRY_BACKOFF;
                        RECOUNT_INTERVAL
                    }
                    Some(PassEnd::Incomplete) | None => {
                        let b = backoff;
                        backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
                        b
                    }
                };
                if worker.tables.strong_count() == 0 {
                    return;
                }
                let _ = tokio::time::timeout(wait, worker.wake.notified()).await;
            }
        });
    }

    /// One pass; `None` when there is no map yet or the worker is paused.
    async fn pass(self: Arc<Self>) -> Option<PassEnd> {
        if self.paused.load(Ordering::Relaxed) {
            return None;
        }
        let map = self.tables.upgrade()?.map()?;
        let placement = Arc::new(Placement::new(map.as_ref().clone()).ok()?);
        *self.placement.lock().expect("placement lock") = Some(placement.clone());
        let version = placement.table.placement_version;
        {
            let mut p = self.progress.lock().expect("progress lock");
            p.placement_version = version;
            p.state = "scanning";
        }
        let scan = self.scan(&placement).await;
        self.set_state("repairing");
        let (worked, failed) = self.drain(&placement).await;
        self.set_state("tidying");
        let tidied = self.tidy(&placement).await;
        let still = self
            .tables
            .upgrade()
            .and_then(|t| t.map())
            .is_some_and(|m| m.placement_version == version);
        let clean = scan.complete && failed == 0 && tidied.complete && still;
        let others_short = !scan.by_missing.is_empty() || tidied.misplaced_left > 0;
        {
            let mut p = self.progress.lock().expect("progress lock");
            p.passes += 1;
            if scan.complete {
                p.counted_at = version;
            }
            p.by_missing = scan.by_missing;
            p.unrecoverable = scan.unrecoverable;
            p.misplaced = tidied.misplaced_left;
            p.retrying = failed;
            if clean && worked == 0 {
                p.synced = version;
            }
            p.state = "idle";
            let degraded: u64 = p.by_missing.values().sum();
            metrics::gauge!("cairn_repair_degraded_chunks").set(degraded as f64);
            metrics::gauge!("cairn_repair_misplaced_shards").set(p.misplaced as f64);
            metrics::gauge!("cairn_repair_unrecoverable_chunks").set(p.unrecoverable as f64);
            metrics::gauge!("cairn_repair_retrying_tasks").set(failed as f64);
            metrics::gauge!("cairn_repair_synced_placement_version").set(p.synced as f64);
            metrics::gauge!("cairn_repair_queued_bytes").set(p.queued_bytes as f64);
            for (missing, chunks) in &p.by_missing {
                metrics::gauge!("cairn_repair_degraded_chunks_by_missing", "missing" => missing.to_string())
                    .set(*chunks as f64);
            }
        }
        Some(if !clean {
            PassEnd::Incomplete
        } else if worked > 0 {
            PassEnd::Worked
        } else if others_short {
            PassEnd::OthersShort
        } else {
            PassEnd::Clean
        })
    }

    /// Phase 1: list every source of each partition this node owns and queue
    /// the shards it lacks.
    async fn scan(&self, placement: &Arc<Placement>) -> ScanResult {
        let table = &placement.table;
        let k = usize::from(table.profile.data_shards);
        let mut out = ScanResult {
            complete: true,
            ..Default::default()
        };
        for p in 0..table.partition_count() {
            let row = table.partition_nodes(p);
            let Some(my_index) = row.iter().position(|n| *n == self.me) else {
                continue;
            };
            let sources = table.partition_sources(p);
            let (from, to) = partition_key_range(p, table.partition_bits);
            let mut cursors: BTreeMap<NodeId, Option<Vec<u8>>> =
                sources.iter().map(|n| (*n, Some(from.to_vec()))).collect();
            let mut answered: BTreeSet<NodeId> = BTreeSet::new();
            let mut failed: BTreeSet<NodeId> = BTreeSet::new();
            loop {
                // One page of each source still listing, merged by chunk.
                let mut pages: BTreeMap<NodeId, (Vec<ListedShard>, bool)> = BTreeMap::new();
                let asks = cursors
                    .iter()
                    .filter(|(node, _)| !failed.contains(node))
                    .filter_map(|(node, cursor)| Some((*node, cursor.as_ref()?)))
                    .map(|(node, start)| async move {
                        (node, self.list(placement, node, start, &to).await)
                    });
                for (node, page) in futures::future::join_all(asks).await {
                    match page {
                        Ok(page) => {
                            answered.insert(node);
                            pages.insert(node, page);
                        }
                        Err(e) => {
                            tracing::debug!(node = %node, error = %e, "shard listing failed");
                            failed.insert(node);
                        }
                    }
                }
                if pages.is_empty() {
                    break;
                }
                // Chunks before the smallest last chunk of a source with
                // more to list are complete across sources.
                let bound: Option<ChunkId> = pages
                    .values()
                    .filter(|(s, more)| *more && !s.is_empty())
                    .map(|(s, _)| s.last().expect("not empty").chunk)
                    .min();
                let mut chunks: BTreeMap<ChunkId, ChunkSeen> = BTreeMap::new();
                for (node, (shards, more)) in &pages {
                    let mut beyond = false;
                    for s in shards {
                        if bound.is_some_and(|b| s.chunk >= b) {
                            beyond = true;
                            continue;
                        }
                        let seen = chunks.entry(s.chunk).or_default();
                        seen.holders.push((*node, s.index));
                        if seen.geometry.is_none() {
                            seen.geometry = s.geometry;
                        }
                    }
                    let next = match bound {
                        Some(b) if beyond || *more => Some(shard_key(&b, 0)),
                        _ => None,
                    };
                    cursors.insert(*node, next);
                }
                let unanswered: BTreeSet<NodeId> = failed
                    .iter()
                    .filter(|n| !placement.layout.out.contains_key(n))
                    .copied()
                    .collect();
                for (chunk, seen) in chunks {
                    self.consider(
                        row,
                        my_index,
                        k,
                        chunk,
                        seen,
                        &answered,
                        &unanswered,
                        &mut out,
                    );
                }
                while self.queue_len() as usize >= MAX_QUEUE {
                    // Let the repair phase make room before scanning on.
                    let _ = self.drain(placement).await;
                }
                if cursors.values().all(Option::is_none) {
                    break;
                }
            }
            // A node marked out that does not answer holds nothing anyone
            // can read: what it held counts as lost, and the scan is whole
            // without it.
            failed.retain(|n| !placement.layout.out.contains_key(n));
            if !failed.is_empty() {
                out.complete = false;
            }
        }
        out
    }

    /// Decide what one chunk needs of this node, and count it.
    #[allow(clippy::too_many_arguments)]
    fn consider(
        &self,
        row: &[NodeId],
        my_index: usize,
        k: usize,
        chunk: ChunkId,
        seen: ChunkSeen,
        answered: &BTreeSet<NodeId>,
        failed: &BTreeSet<NodeId>,
        out: &mut ScanResult,
    ) {
        let Some(geometry) = seen.geometry else {
            // Shards written before files carried their geometry cannot be
            // rebuilt without the manifest; they stay as they are.
            return;
        };
        let total = geometry.profile.total_shards();
        if total != row.len() {
            return;
        }
        let distinct: BTreeSet<u8> = seen.holders.iter().map(|(_, i)| *i).collect();
        let on_owner = |i: usize| seen.holders.contains(&(row[i], i as u8));
        let missing_now = (0..total).filter(|&i| !on_owner(i)).count();
        // Counted once: by the first owner that answered this scan.
        let counter = (0..total).find(|&i| answered.contains(&row[i]) || row[i] == self.me);
        if counter == Some(my_index) && missing_now > 0 {
            *out.by_missing.entry(missing_now as u8).or_insert(0) += 1;
        }
        if on_owner(my_index) {
            return;
        }
        if distinct.len() < geometry.profile.data_shards as usize {
            if failed.is_empty() {
                out.unrecoverable += 1;
                tracing::warn!(%chunk, found = distinct.len(), "chunk has fewer than k shards left");
            } else {
                out.complete = false;
            }
            return;
        }
        let above_k = (distinct.len().saturating_sub(k)).min(255) as u8;
        let task = Task {
            chunk,
            index: my_index as u8,
            geometry,
            holders: seen.holders,
        };
        let _ = self.db.put(
            Cf::Repair,
            &task_key(above_k, &chunk, my_index as u8),
            &record::encode(&task),
            false,
        );
        self.progress.lock().expect("progress lock").queued_bytes += geometry.shard_len() as u64;
    }

    async fn list(
        &self,
        placement: &Placement,
        node: NodeId,
        from: &[u8],
        to: &[u8; 33],
    ) -> crate::Result<(Vec<ListedShard>, bool)> {
        if node == self.me {
            let (from, to) = (key33(from), *to);
            let shards = self.shards.clone();
            return crate::blocking::spawn(move || {
                crate::shard_store::list_page(shards.as_ref(), &from, &to, SCAN_PAGE as usize)
            })
            .await
            .map_err(|e| crate::Error::Io(std::io::Error::other(e)))?;
        }
        let reply = self
            .client
            .rpc_list_shards(
                placement.addr(node),
                &ListShardsRequest {
                    from: from.to_vec(),
                    to: to.to_vec(),
                    limit: SCAN_PAGE,
                },
            )
            .await?;
        Ok((reply.shards, reply.more))
    }

    /// Phase 2: work the queue, most at risk first. Returns (tasks done,
    /// tasks failed).
    async fn drain(&self, placement: &Arc<Placement>) -> (u64, u64) {
        let (mut worked, mut failed) = (0u64, 0u64);
        loop {
            let batch: Vec<(Vec<u8>, Task)> = {
                self.db
                    .iter(Cf::Repair, db::From::Start)
                    .flatten()
                    .take(MAX_CONCURRENCY as usize)
                    .filter_map(|(k, v)| {
                        Some((k.to_vec(), record::decode::<Task>("repair task", &v).ok()?))
                    })
                    .collect()
            };
            if batch.is_empty() {
                break;
            }
            let concurrency = self.concurrency.load(Ordering::Relaxed) as usize;
            let results: Vec<(Vec<u8>, bool)> = futures::stream::iter(batch)
                .map(|(key, task)| async move {
                    self.throttle(task.geometry.shard_len() as u64).await;
                    let ok = self.fix(placement, &task).await;
                    (key, ok)
                })
                .buffer_unordered(concurrency.max(1))
                .collect()
                .await;
            for (key, ok) in results {
                if ok {
                    worked += 1;
                } else {
                    failed += 1;
                }
                // A failed task is found again by the next pass.
                let _ = self.db.delete(Cf::Repair, &key, false);
            }
            if self.paused.load(Ordering::Relaxed) {
                break;
            }
        }
        (worked, failed)
    }

    /// Wait for the byte budget, and while clients keep the node busy.
    async fn throttle(&self, bytes: u64) {
        while self.client_load_max - self.client_load.available_permits() >= CLIENT_LOAD_BACKOFF_AT
        {
            tokio::time::sleep(LOAD_BACKOFF).await;
        }
        let rate = self.max_bytes_per_s.load(Ordering::Relaxed);
        if rate > 0 {
            let per_task = Duration::from_secs_f64(bytes as f64 / rate as f64);
            let concurrency = self.concurrency.load(Ordering::Relaxed).max(1);
            tokio::time::sleep(per_task * concurrency).await;
        }
    }

    /// Give this node shard `task.index` of `task.chunk`.
    async fn fix(&self, placement: &Arc<Placement>, task: &Task) -> bool {
        let id = task.chunk;
        let i = task.index;
        // Still this node's to hold, and still missing?
        if placement.table.chunk_nodes(&id).get(usize::from(i)) != Some(&self.me) {
            return true;
        }
        let shards = self.shards.clone();
        if matches!(
            crate::blocking::spawn(move || shards.contains(&id, i)).await,
            Ok(Ok(true))
        ) {
            return true;
        }
        // Copy from an earlier owner at the same index.
        for (node, index) in &task.holders {
            if *index != i || *node == self.me {
                continue;
            }
            if let Ok(data) = self
                .client
                .rpc_get_shard(placement.addr(*node), &id, i)
                .await
                && data.len() == task.geometry.shard_len()
                && self.store(task, &data).await
            {
                self.moved.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("cairn_repair_shards_moved_total").increment(1);
                self.note_done(data.len() as u64);
                return true;
            }
        }
        // Rebuild from any k shards.
        match self.rebuild(placement, task).await {
            Ok(shard) => {
                let len = shard.len() as u64;
                if self.store(task, &shard).await {
                    self.rebuilt.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("cairn_repair_shards_rebuilt_total").increment(1);
                    metrics::counter!("cairn_repaired_shards_total").increment(1);
                    self.note_done(len);
                    true
                } else {
                    false
                }
            }
            Err(e) => {
                tracing::warn!(%id, shard = i, error = %e, "rebuild failed; retried next pass");
                false
            }
        }
    }

    async fn rebuild(&self, placement: &Arc<Placement>, task: &Task) -> crate::Result<Vec<u8>> {
        let g = task.geometry;
        let total = g.profile.total_shards();
        let k = usize::from(g.profile.data_shards);
        let mut slots: Vec<Option<Vec<u8>>> = vec![None; total];
        let mut have = 0;
        // Distinct indices, data shards first (no decoding when all k are).
        let mut wanted: Vec<(NodeId, u8)> = task.holders.clone();
        wanted.sort_by_key(|(_, i)| *i);
        for (node, index) in wanted {
            if have >= k {
                break;
            }
            let slot = usize::from(index);
            if slot >= total || slots[slot].is_some() {
                continue;
            }
            let data = if node == self.me {
                let shards = self.shards.clone();
                let id = task.chunk;
                crate::blocking::spawn(move || shards.get(&id, index))
                    .await
                    .map_err(|e| crate::Error::Io(std::io::Error::other(e)))?
                    .ok()
            } else {
                self.client
                    .rpc_get_shard(placement.addr(node), &task.chunk, index)
                    .await
                    .ok()
                    .map(|b: Bytes| b.to_vec())
            };
            if let Some(d) = data
                && d.len() == g.shard_len()
            {
                slots[slot] = Some(d);
                have += 1;
            }
        }
        if have < k {
            return Err(crate::Error::Unavailable(format!(
                "chunk {}: {have} of {k} shards readable",
                task.chunk
            )));
        }
        let codec = codec_for(g.profile)?;
        let (id, len, index) = (task.chunk, g.chunk_len as usize, usize::from(task.index));
        crate::blocking::spawn(move || -> crate::Result<Vec<u8>> {
            let chunk = codec.decode(id, len, slots)?;
            let mut shards = codec.encode(&chunk)?;
            Ok(std::mem::take(&mut shards[index]))
        })
        .await
        .map_err(|e| crate::Error::Io(std::io::Error::other(e)))?
    }

    async fn store(&self, task: &Task, data: &[u8]) -> bool {
        // A rebuild that lands late: its chunk may have been deleted, or
        // its shard written by another worker, meanwhile.
        crate::buggify::stall(0.1, std::time::Duration::from_secs(2)).await;
        let shards = self.shards.clone();
        let (id, i, g, data) = (task.chunk, task.index, task.geometry, data.to_vec());
        let stored = matches!(
            crate::blocking::spawn(move || shards.put(&id, i, &g, &data)).await,
            Ok(Ok(()))
        );
        if stored
            && self
                .scrub_pending
                .lock()
                .expect("pending lock")
                .remove(&(id, i))
        {
            self.scrub_repaired.fetch_add(1, Ordering::Relaxed);
        }
        stored
    }

    /// Phase 3: drop shards this node holds at an index owned by another
    /// node, once that node holds them intact. Returns whether every
    /// misplaced shard was looked at.
    async fn tidy(&self, placement: &Arc<Placement>) -> Tidied {
        let table = &placement.table;
        let mut from = [0u8; 33];
        let mut out = Tidied {
            complete: true,
            misplaced_left: 0,
        };
        let mut checked = 0usize;
        loop {
            let shards = self.shards.clone();
            let start = from;
            let Ok(Ok(page)) = crate::blocking::spawn(move || {
                shards.list(&start, &[0xff; 33], SCAN_PAGE as usize)
            })
            .await
            else {
                out.complete = false;
                return out;
            };
            let Some(last) = page.last() else { return out };
            from = crate::shard_store::next_index_key(&shard_key33(&last.chunk, last.index));
            let full = page.len() == SCAN_PAGE as usize;
            for e in page {
                let owner = table
                    .chunk_nodes(&e.chunk)
                    .get(usize::from(e.index))
                    .copied();
                let Some(owner) = owner.filter(|o| *o != self.me) else {
                    continue;
                };
                if checked >= MAX_TIDY_PER_PASS {
                    out.complete = false;
                    out.misplaced_left += 1;
                    continue;
                }
                checked += 1;
                let mut dropped = false;
                if matches!(
                    self.client
                        .rpc_verify_shard(placement.addr(owner), &e.chunk, e.index)
                        .await,
                    Ok(true)
                ) {
                    let shards = self.shards.clone();
                    let (id, i) = (e.chunk, e.index);
                    dropped = matches!(
                        crate::blocking::spawn(move || shards.delete(&id, i)).await,
                        Ok(Ok(()))
                    );
                }
                if dropped {
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("cairn_repair_shards_dropped_total").increment(1);
                } else {
                    out.misplaced_left += 1;
                }
            }
            if !full {
                return out;
            }
        }
    }
}

/// What [`Repair::tidy`] did.
struct Tidied {
    /// Every local shard was looked at.
    complete: bool,
    /// Misplaced shards still here (their owner does not hold them yet).
    misplaced_left: u64,
}

enum PassEnd {
    /// Nothing to do, every source answered.
    Clean,
    /// Work was done; a verification pass follows at once.
    Worked,
    /// Nothing to rebuild here, but chunks short on other owners were
    /// counted, or misplaced shards wait for their owners.
    OthersShort,
    /// Something could not be finished; retried after a backoff.
    Incomplete,
}

#[derive(Default)]
struct ScanResult {
    complete: bool,
    by_missing: BTreeMap<u8, u64>,
    unrecoverable: u64,
}

#[derive(Default)]
struct ChunkSeen {
    holders: Vec<(NodeId, u8)>,
    geometry: Option<ShardGeometry>,
}

fn shard_key(chunk: &ChunkId, index: u8) -> Vec<u8> {
    shard_key33(chunk, index).to_vec()
}

fn shard_key33(chunk: &ChunkId, index: u8) -> [u8; 33] {
    crate::shard_store::index_key(chunk, index)
}

fn key33(b: &[u8]) -> [u8; 33] {
    let mut k = [0u8; 33];
    let n = b.len().min(33);
    k[..n].copy_from_slice(&b[..n]);
    k
}

/// Forget a queue left by an older format (the repair hints of before).
pub fn clear_queue(db: &dyn Kv) {
    let keys: Vec<Box<[u8]>> = db
        .iter(Cf::Repair, db::From::Start)
        .flatten()
        .filter(|(k, v)| k.len() != 34 || record::decode::<Task>("repair task", v).is_err())
        .map(|(k, _)| k)
        .collect();
    for k in keys {
        let _ = db.delete(Cf::Repair, &k, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_step_to_the_next_one() {
        let mut k = [0u8; 33];
        k[32] = 0xff;
        let n = crate::shard_store::next_index_key(&k);
        assert_eq!(n[31], 1);
        assert_eq!(n[32], 0);
        assert_eq!(crate::shard_store::next_index_key(&[0xff; 33]), [0xff; 33]);
    }

    #[test]
    fn tasks_closest_to_loss_sort_first() {
        let a = ChunkId::of(b"a");
        let b = ChunkId::of(b"b");
        assert!(task_key(0, &b, 5) < task_key(1, &a, 0));
    }
}
