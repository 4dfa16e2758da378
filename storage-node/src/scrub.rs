//! Scrub: every shard of this node re-read and verified against its
//! checksum at a bounded rate, a whole pass every [`SCRUB_PERIOD`] (with
//! jitter, so the nodes of a cluster do not scrub together), or at once
//! when an operator asks (`cairn scrub start`).
//!
//! A shard that fails verification is counted and deleted: it becomes a
//! missing shard, which the repair worker of its owner rebuilds (this node's
//! own worker, woken at once, when it owns it). It counts as repaired when a
//! verified copy has been written back here, or when this node did not own
//! it anyway. The pass's cursor is kept in the node database, so a restart
//! resumes where the pass was.

use crate::db::{Cf, Db};
use crate::error::Error;
use crate::repair::Repair;
use crate::shard_store::{ShardStore, index_key, next_index_key};
use cairn::id::ChunkId;
use cairn::record;
use cairn::rpc::ScrubReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Time between the starts of two scheduled passes (as Garage's scrub:
/// about a month), plus or minus [`SCRUB_JITTER`].
pub const SCRUB_PERIOD: Duration = Duration::from_secs(30 * 24 * 3600);
/// Largest random offset of a scheduled pass.
pub const SCRUB_JITTER: Duration = Duration::from_secs(3 * 24 * 3600);
/// Bytes/s a pass reads at most (a pass over 1 TB takes about 4.6 hours).
pub const SCRUB_MAX_BYTES_PER_S: u64 = 64 << 20;
/// Shards verified per page (the cursor is saved after each).
pub const SCRUB_PAGE: usize = 256;
/// Most corrupt shards remembered until they are repaired.
pub const MAX_PENDING_REPAIRS: usize = 100_000;
const STATE_KEY: &[u8] = b"scrub_state";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Saved {
    /// Where the current pass is (`None`: no pass running).
    cursor: Option<Vec<u8>>,
    /// When the next scheduled pass starts, ms since the epoch.
    next_ms: u64,
    paused: bool,
    passes: u64,
}

/// The scrubber of one node.
pub struct Scrub {
    db: Db,
    shards: Arc<dyn ShardStore>,
    repair: Arc<Repair>,
    saved: Mutex<Saved>,
    running: AtomicBool,
    checked: AtomicU64,
    corrupt: AtomicU64,
    repaired: AtomicU64,
    /// Corrupt shards this node owns, deleted and waiting for their rebuild.
    pending: Arc<Mutex<BTreeSet<(ChunkId, u8)>>>,
    wake: tokio::sync::Notify,
}

impl Scrub {
    /// The scrubber, resuming the state it saved.
    pub fn new(db: Db, shards: Arc<dyn ShardStore>, repair: Arc<Repair>) -> Arc<Self> {
        let saved = db
            .get(Cf::Node, STATE_KEY)
            .ok()
            .flatten()
            .and_then(|v| record::decode::<Saved>("scrub state", &v).ok())
            .unwrap_or_else(|| Saved {
                next_ms: cairn::clock::now_ms() + jittered_period_ms(),
                ..Default::default()
            });
        let pending = repair.scrub_pending();
        Arc::new(Self {
            db,
            shards,
            repair,
            saved: Mutex::new(saved),
            running: AtomicBool::new(false),
            checked: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
            repaired: AtomicU64::new(0),
            pending,
            wake: tokio::sync::Notify::new(),
        })
    }

    fn save(&self) {
        let saved = self.saved.lock().expect("scrub lock").clone();
        let _ = self
            .db
            .put(Cf::Node, STATE_KEY, &record::encode(&saved), false);
    }

    /// Start a pass now (or resume a paused one).
    pub fn start(&self) {
        {
            let mut s = self.saved.lock().expect("scrub lock");
            s.paused = false;
            if s.cursor.is_none() {
                s.cursor = Some(Vec::new());
                self.checked.store(0, Ordering::Relaxed);
            }
        }
        self.save();
        self.wake.notify_one();
    }

    /// Pause the pass (kept across restarts).
    pub fn pause(&self) {
        self.saved.lock().expect("scrub lock").paused = true;
        self.save();
    }

    /// What the scrubber reports.
    pub fn report(&self) -> ScrubReport {
        let s = self.saved.lock().expect("scrub lock");
        let pending = self.pending.lock().expect("pending lock").len() as u64;
        ScrubReport {
            state: if s.paused {
                "paused"
            } else if s.cursor.is_some() {
                "running"
            } else {
                "idle"
            }
            .into(),
            shards_checked: self.checked.load(Ordering::Relaxed),
            corrupt_found: self.corrupt.load(Ordering::Relaxed),
            repaired: self.repaired.load(Ordering::Relaxed) + self.repair.scrub_repaired(),
            waiting_repair: pending,
            passes: s.passes,
            next_pass_ms: s.next_ms,
        }
    }

    /// Run the scrubber until the node goes away.
    pub fn spawn(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(scrub) = me.upgrade() else { return };
                let due = {
                    let mut s = scrub.saved.lock().expect("scrub lock");
                    if s.cursor.is_none() && cairn::clock::now_ms() >= s.next_ms {
                        s.cursor = Some(Vec::new());
                        scrub.checked.store(0, Ordering::Relaxed);
                    }
                    !s.paused && s.cursor.is_some()
                };
                if due {
                    scrub.page().await;
                    continue;
                }
                let _ = tokio::time::timeout(Duration::from_secs(60), scrub.wake.notified()).await;
            }
        });
    }

    /// Verify one page of shards from the cursor.
    async fn page(&self) {
        let Some(cursor) = self.saved.lock().expect("scrub lock").cursor.clone() else {
            return;
        };
        let mut from = [0u8; 33];
        from[..cursor.len().min(33)].copy_from_slice(&cursor[..cursor.len().min(33)]);
        let shards = self.shards.clone();
        let page = crate::blocking::spawn(move || shards.list(&from, &[0xff; 33], SCRUB_PAGE))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        self.running.store(true, Ordering::Relaxed);
        for e in &page {
            // Bounded rate: the time this shard's bytes take at the limit.
            tokio::time::sleep(Duration::from_secs_f64(
                e.len as f64 / SCRUB_MAX_BYTES_PER_S as f64,
            ))
            .await;
            let shards = self.shards.clone();
            let (id, i) = (e.chunk, e.index);
            let read = crate::blocking::spawn(move || shards.get(&id, i)).await;
            self.checked.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("cairn_scrub_shards_checked_total").increment(1);
            if let Ok(Err(Error::CorruptShard { .. })) = read {
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("cairn_scrub_corrupt_found_total").increment(1);
                tracing::warn!(chunk = %id, shard = i, "scrub: shard corrupt; deleted for repair");
                let shards = self.shards.clone();
                let _ = crate::blocking::spawn(move || shards.delete(&id, i)).await;
                if self.repair.owns(&id, i) {
                    let mut p = self.pending.lock().expect("pending lock");
                    if p.len() < MAX_PENDING_REPAIRS {
                        p.insert((id, i));
                    }
                    drop(p);
                    self.repair.wake();
                } else {
                    self.repaired.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let mut s = self.saved.lock().expect("scrub lock");
        match page.last() {
            Some(last) if page.len() == SCRUB_PAGE => {
                s.cursor = Some(next_index_key(&index_key(&last.chunk, last.index)).to_vec());
            }
            _ => {
                s.cursor = None;
                s.passes += 1;
                s.next_ms = cairn::clock::now_ms() + jittered_period_ms();
                tracing::info!(
                    checked = self.checked.load(Ordering::Relaxed),
                    "scrub pass complete"
                );
            }
        }
        drop(s);
        self.save();
    }
}

fn jittered_period_ms() -> u64 {
    let jitter = SCRUB_JITTER.as_millis() as i64;
    let offset = crate::random::range_i64(-jitter, jitter);
    (SCRUB_PERIOD.as_millis() as i64 + offset).max(0) as u64
}
