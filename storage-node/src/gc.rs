//! The garbage collector: chunks no object version or part references are
//! deleted from every holder once the grace period has passed.
//!
//! The references live in the chunk's metadata group (see
//! `docs/design/gc.md` for why a live chunk can never be deleted). Every
//! node runs the collector; it acts on the groups it leads, and on its own
//! shards:
//!
//! - **Drops** (every [`DROP_INTERVAL`]): an apply that removed an object
//!   version or a part left a drop record naming its chunks; the leader of
//!   that group removes those references from the chunks' groups, then the
//!   record.
//! - A **pass** (every [`PASS_INTERVAL`], or at once on `gc run`):
//!   1. the drops, all of them;
//!   2. the **audit** of references not yet seen committed: a reference
//!      whose writer committed is confirmed; one whose writer can no longer
//!      commit (its intent is gone and its record is not current) is
//!      removed; a write whose intent was not renewed for [`INTENT_TTL`] is
//!      cancelled first;
//!   3. **collection**: chunks unreferenced for the grace are condemned (no
//!      reference can be added from then on), their shards deleted from
//!      every node that may hold them, and they are forgotten;
//!   4. the **orphan sweep**: this node's shards older than the grace whose
//!      chunk its group does not know (never referenced: a writer died
//!      between storing shards and referencing them, or a rebuild raced a
//!      deletion) are condemned and deleted the same way.
//!
//! Everything the collector decides is decided by a command's apply, in
//! the group's log order; a pass that stops half-way is resumed by the
//! next (condemned chunks are found again and finished).

use crate::chunks::Placement;
use crate::client::NodeClient;
use crate::shard_store::{ShardStore, next_index_key};
use crate::table::client::{MetaClient, WeakTables};
use crate::table::groups::Tables;
use cairn::clock::now_ms;
use cairn::command::{Command, MAX_REF_BATCH, Outcome};
use cairn::id::ChunkId;
use cairn::layout::data_group_of;
use cairn::record::{
    self, ChunkState, DropRecord, GroupId, IntentRecord, RefRecord, Table, VersionId, keys,
};
use cairn::rpc::{GcReport, MAX_META_BATCH, Read, ReadReply};
use futures::StreamExt;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Time between two looks at the drop records of the groups this node leads.
pub const DROP_INTERVAL: Duration = Duration::from_secs(1);
/// Time between two automatic passes.
pub const PASS_INTERVAL: Duration = Duration::from_secs(300);
/// Drop records taken per round.
pub const DROP_BATCH: usize = 256;
/// Reference removals in flight at once while processing drops.
pub const DROP_CONCURRENCY: usize = 16;
/// Rounds of drops a pass takes before going on (drops that keep coming
/// are left to the next rounds of the drop loop).
pub const MAX_DROP_ROUNDS_PER_PASS: usize = 64;
/// A write whose intent was not renewed for this long is taken for dead
/// and cancelled. Gateways renew every [`INTENT_RENEW`].
pub const INTENT_TTL: Duration = Duration::from_secs(120);
/// How often a writer renews its intent.
pub const INTENT_RENEW: Duration = Duration::from_secs(30);
/// References younger than this are left to their writer (most are
/// committed within it).
pub const AUDIT_AFTER: Duration = Duration::from_secs(30);
/// Records read from a group's state per page.
pub const SCAN_PAGE: usize = 512;
/// Chunks deleted at once.
pub const DELETE_CONCURRENCY: usize = 8;
/// Chunks deleted per second at most (each is `k + m` shard deletions, more
/// while earlier placements migrate).
pub const MAX_CHUNKS_PER_S: u64 = 500;
/// A chunk condemned this long ago whose deletion is not finished was left
/// by a deleter that stopped (a crash, a lost leadership): the group's
/// leader finishes it. A live deleter takes seconds (its shard deletions
/// time out after 2 s), so two never delete one chunk at once.
pub const CONDEMNED_STALE: Duration = Duration::from_secs(60);
/// Shard index entries read per page by the orphan sweep.
pub const SWEEP_PAGE: usize = 1024;
/// Environment variable (milliseconds, default 0) that holds chunks
/// condemned for that long before their shards are deleted: a test knob
/// that widens the window in which a PUT meets a chunk being deleted.
pub const DELETE_DELAY_ENV: &str = "CAIRN_GC_DELETE_DELAY_MS";

#[derive(Default)]
struct Counters {
    chunks_deleted: AtomicU64,
    orphans_deleted: AtomicU64,
    shards_deleted: AtomicU64,
    bytes_freed: AtomicU64,
    refs_removed: AtomicU64,
    refs_confirmed: AtomicU64,
    writes_cancelled: AtomicU64,
}

#[derive(Default, Clone, Copy)]
struct PassState {
    running: bool,
    started: u64,
    finished: u64,
    requested: u64,
    last_started_ms: u64,
    last_finished_ms: u64,
    last_complete: bool,
    waiting_chunks: u64,
    waiting_bytes: u64,
}

/// A node's garbage collector.
pub struct Gc {
    shards: Arc<dyn ShardStore>,
    tables: Weak<Tables>,
    client: NodeClient,
    meta: MetaClient,
    grace: Duration,
    delete_delay: Duration,
    counters: Counters,
    state: Mutex<PassState>,
    wake: Arc<tokio::sync::Notify>,
    // One round of drops at a time (the drop loop and a pass share them).
    dropping: tokio::sync::Mutex<()>,
}

impl Gc {
    /// A collector over this node's stores.
    pub fn new(
        shards: Arc<dyn ShardStore>,
        tables: Weak<Tables>,
        client: NodeClient,
        grace: Duration,
    ) -> Arc<Self> {
        let meta = MetaClient::new(client.clone(), Arc::new(WeakTables(tables.clone())));
        Arc::new(Self {
            shards,
            tables,
            client,
            meta,
            grace,
            delete_delay: Duration::from_millis(
                std::env::var(DELETE_DELAY_ENV)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ),
            counters: Counters::default(),
            state: Mutex::new(PassState::default()),
            wake: Arc::new(tokio::sync::Notify::new()),
            dropping: tokio::sync::Mutex::new(()),
        })
    }

    /// Start the drop loop and the pass loop.
    pub fn spawn(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(DROP_INTERVAL).await;
                let Some(gc) = me.upgrade() else { return };
                for g in gc.led_groups() {
                    let _ = gc.process_drops(g, DROP_BATCH).await;
                }
            }
        });
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(gc) = me.upgrade() else { return };
                let wake = gc.wake.clone();
                let due = gc.due();
                drop(gc);
                if !due {
                    let notified = wake.notified();
                    tokio::pin!(notified);
                    // Registered before the second look, so a request in
                    // between is not missed.
                    notified.as_mut().enable();
                    if !me.upgrade().is_some_and(|g| g.due()) {
                        tokio::select! {
                            // In order, so a simulation replays exactly.
                            biased;
                            _ = notified => {}
                            _ = tokio::time::sleep(PASS_INTERVAL) => {}
                        }
                    }
                }
                let Some(gc) = me.upgrade() else { return };
                gc.pass().await;
            }
        });
    }

    fn due(&self) -> bool {
        let s = self.state.lock().expect("gc state");
        s.requested > s.started
    }

    /// Ask for a pass; returns the number of the pass that will cover the
    /// state as of now (the report's `passes` reaches it when it is done).
    pub fn request(&self) -> u64 {
        let mut s = self.state.lock().expect("gc state");
        let target = s.started + 1;
        s.requested = s.requested.max(target);
        drop(s);
        self.wake.notify_one();
        target
    }

    /// The collector's report.
    pub fn report(&self) -> GcReport {
        let s = *self.state.lock().expect("gc state");
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GcReport {
            state: if s.running { "collecting" } else { "idle" }.into(),
            grace_s: self.grace.as_secs(),
            passes: s.finished,
            requested: s.requested,
            last_started_ms: s.last_started_ms,
            last_finished_ms: s.last_finished_ms,
            last_complete: s.last_complete,
            chunks_deleted: get(&c.chunks_deleted),
            orphans_deleted: get(&c.orphans_deleted),
            shards_deleted: get(&c.shards_deleted),
            bytes_freed: get(&c.bytes_freed),
            refs_removed: get(&c.refs_removed),
            refs_confirmed: get(&c.refs_confirmed),
            writes_cancelled: get(&c.writes_cancelled),
            waiting_chunks: s.waiting_chunks,
            waiting_bytes: s.waiting_bytes,
            pending_drops: self
                .led_groups()
                .into_iter()
                .map(|g| self.local_scan(g, Table::Drops, None, MAX_META_BATCH).len() as u64)
                .sum(),
        }
    }

    fn led_groups(&self) -> Vec<GroupId> {
        self.tables
            .upgrade()
            .map_or_else(Vec::new, |t| t.led_groups())
    }

    /// Up to `limit` records of `(table, "")` of a group this node hosts,
    /// after `after`, from its committed state.
    fn local_scan(
        &self,
        group: GroupId,
        table: Table,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(String, Vec<u8>)> {
        let Some(g) = self.tables.upgrade().and_then(|t| t.group(group)) else {
            return Vec::new();
        };
        use cairn::command::KvRead;
        g.machine.view().scan(table, "", "", after, limit)
    }

    async fn command(&self, group: GroupId, command: Command) -> Option<Outcome> {
        match self.meta.command(group, command).await {
            Ok(o) => Some(o),
            Err(e) => {
                tracing::debug!(%group, error = %e, "collector command not made");
                None
            }
        }
    }

    fn groups(&self) -> u32 {
        self.meta.map().map_or(1, |m| m.metadata_groups())
    }

    /// Remove the references named by up to `limit` drop records of
    /// `group`; false if some could not be (they stay for the next round).
    async fn process_drops(&self, group: GroupId, limit: usize) -> bool {
        let _one = self.dropping.lock().await;
        let drops = self.local_scan(group, Table::Drops, None, limit);
        if drops.is_empty() {
            return true;
        }
        let groups = self.groups();
        // Every removal of every drop of the round, sent concurrently.
        let mut removals: Vec<(VersionId, GroupId, Vec<ChunkId>)> = Vec::new();
        let mut writers = Vec::new();
        for (w, value) in drops {
            let (Some(writer), Ok(d)) = (
                VersionId::parse(&w),
                record::decode::<DropRecord>("drop record", &value),
            ) else {
                tracing::error!(%group, writer = %w, "unreadable drop record");
                continue;
            };
            let mut by_group: BTreeMap<GroupId, BTreeSet<ChunkId>> = BTreeMap::new();
            for c in d.chunks {
                by_group
                    .entry(data_group_of(&c.to_hex(), groups))
                    .or_default()
                    .insert(c);
            }
            for (g, chunks) in by_group {
                let chunks: Vec<ChunkId> = chunks.into_iter().collect();
                for batch in chunks.chunks(MAX_REF_BATCH) {
                    removals.push((writer, g, batch.to_vec()));
                }
            }
            writers.push(writer);
        }
        let failed: BTreeSet<VersionId> = futures::stream::iter(removals)
            .map(|(writer, g, chunks)| async move {
                let n = chunks.len() as u64;
                let remove = Command::RemoveRefs {
                    writer,
                    chunks,
                    now_ms: now_ms(),
                };
                let ok = self.command(g, remove).await == Some(Outcome::Ok);
                if ok {
                    self.counters.refs_removed.fetch_add(n, Ordering::Relaxed);
                }
                (writer, ok)
            })
            .buffer_unordered(DROP_CONCURRENCY)
            .filter_map(|(w, ok)| async move { (!ok).then_some(w) })
            .collect()
            .await;
        let done: Vec<VersionId> = writers
            .into_iter()
            .filter(|w| !failed.contains(w))
            .collect();
        let mut complete = failed.is_empty();
        if !done.is_empty()
            && self
                .command(group, Command::DropsDone { writers: done })
                .await
                != Some(Outcome::Ok)
        {
            complete = false;
        }
        complete
    }

    async fn pass(self: Arc<Self>) {
        {
            let mut s = self.state.lock().expect("gc state");
            s.running = true;
            s.started += 1;
            s.last_started_ms = now_ms();
        }
        let mut complete = true;
        let (mut waiting_chunks, mut waiting_bytes) = (0, 0);
        for g in self.led_groups() {
            // Drops first, so what they unreference is counted from now.
            for _ in 0..MAX_DROP_ROUNDS_PER_PASS {
                if self.local_scan(g, Table::Drops, None, 1).is_empty() {
                    break;
                }
                if !self.process_drops(g, DROP_BATCH).await {
                    complete = false;
                    break;
                }
            }
            complete &= self.audit(g).await;
            let (ok, chunks, bytes) = self.collect(g).await;
            complete &= ok;
            waiting_chunks += chunks;
            waiting_bytes += bytes;
        }
        complete &= self.sweep().await;
        let mut s = self.state.lock().expect("gc state");
        s.running = false;
        s.finished = s.started;
        s.last_finished_ms = now_ms();
        s.last_complete = complete;
        s.waiting_chunks = waiting_chunks;
        s.waiting_bytes = waiting_bytes;
        metrics::gauge!("cairn_gc_waiting_chunks").set(waiting_chunks as f64);
        metrics::counter!("cairn_gc_passes_total").increment(1);
    }

    /// Step 2: decide the references of `group` not yet seen committed.
    async fn audit(&self, group: GroupId) -> bool {
        let horizon = now_ms().saturating_sub(AUDIT_AFTER.as_millis() as u64);
        let groups = self.groups();
        let mut after: Option<String> = None;
        let mut complete = true;
        loop {
            let page = self.local_scan(group, Table::Unconfirmed, after.as_deref(), SCAN_PAGE);
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            let full = page.len() == SCAN_PAGE;
            // (chunk, ref) of old enough references, by their bucket's group.
            let mut by_group: BTreeMap<GroupId, Vec<(ChunkId, RefRecord)>> = BTreeMap::new();
            for (sk, value) in page {
                let (Some((chunk, _)), Ok(r)) = (
                    keys::parse_unconfirmed(&sk),
                    record::decode::<RefRecord>("chunk reference", &value),
                ) else {
                    continue;
                };
                if r.created_ms <= horizon {
                    let g = data_group_of(&r.referrer.bucket().to_hex(), groups);
                    by_group.entry(g).or_default().push((chunk, r));
                }
            }
            for (bucket_group, refs) in by_group {
                for batch in refs.chunks(MAX_META_BATCH / 3) {
                    complete &= self.audit_batch(group, bucket_group, batch).await;
                }
            }
            if !full {
                break;
            }
        }
        complete
    }

    async fn audit_batch(
        &self,
        group: GroupId,
        bucket_group: GroupId,
        refs: &[(ChunkId, RefRecord)],
    ) -> bool {
        // The intent and the referrer's record, read in one state: a write
        // commits by consuming its intent, so if neither is there it never
        // will be.
        let keys: Vec<_> = refs
            .iter()
            .flat_map(|(_, r)| {
                [
                    keys::intent(r.referrer.bucket(), r.referrer.writer()),
                    r.referrer.record_key(),
                    r.referrer.version_key(),
                ]
            })
            .collect();
        let Ok(values) = self.meta.get_many(bucket_group, keys).await else {
            return false;
        };
        let mut confirm = Vec::new();
        let mut dead: BTreeMap<VersionId, Vec<ChunkId>> = BTreeMap::new();
        let mut complete = true;
        let now = now_ms();
        for ((chunk, r), pair) in refs.iter().zip(values.chunks(3)) {
            let writer = r.referrer.writer();
            if r.referrer
                .is_current(pair[1].as_deref(), pair[2].as_deref())
            {
                confirm.push((*chunk, writer));
                continue;
            }
            match pair[0]
                .as_deref()
                .map(|b| record::decode::<IntentRecord>("write intent", b))
            {
                None => dead.entry(writer).or_default().push(*chunk),
                Some(Ok(i)) if i.renewed_ms + (INTENT_TTL.as_millis() as u64) < now => {
                    let cancel = Command::CancelWrite {
                        bucket: r.referrer.bucket(),
                        writer,
                        renewed_at_most: Some(i.renewed_ms),
                    };
                    match self.command(bucket_group, cancel).await {
                        Some(Outcome::Ok) => {
                            self.counters
                                .writes_cancelled
                                .fetch_add(1, Ordering::Relaxed);
                            dead.entry(writer).or_default().push(*chunk);
                        }
                        // Renewed or committed meanwhile: the next pass sees.
                        Some(_) => {}
                        None => complete = false,
                    }
                }
                // In flight.
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::error!(error = %e, "unreadable write intent"),
            }
        }
        for batch in confirm.chunks(MAX_REF_BATCH) {
            let n = batch.len() as u64;
            let out = self
                .command(
                    group,
                    Command::ConfirmRefs {
                        refs: batch.to_vec(),
                    },
                )
                .await;
            if out == Some(Outcome::Ok) {
                self.counters.refs_confirmed.fetch_add(n, Ordering::Relaxed);
            } else {
                complete = false;
            }
        }
        for (writer, chunks) in dead {
            let n = chunks.len() as u64;
            let out = self
                .command(
                    group,
                    Command::RemoveRefs {
                        writer,
                        chunks,
                        now_ms: now_ms(),
                    },
                )
                .await;
            if out == Some(Outcome::Ok) {
                self.counters.refs_removed.fetch_add(n, Ordering::Relaxed);
            } else {
                complete = false;
            }
        }
        complete
    }

    /// The grace period, ms.
    fn grace_ms(&self) -> u64 {
        if crate::sabotage::on(&crate::sabotage::GC_IGNORES_GRACE) {
            return 0;
        }
        self.grace.as_millis() as u64
    }

    /// Step 3: delete the chunks of `group` unreferenced for the grace (and
    /// finish those a pass left condemned). Returns whether it did all it
    /// could, and the chunks (and bytes) still waiting for the grace.
    async fn collect(&self, group: GroupId) -> (bool, u64, u64) {
        let due_before = now_ms().saturating_sub(self.grace_ms());
        let mut after: Option<String> = None;
        let (mut complete, mut waiting, mut waiting_bytes) = (true, 0u64, 0u64);
        loop {
            let page = self.local_scan(group, Table::ChunkStates, after.as_deref(), SCAN_PAGE);
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            let full = page.len() == SCAN_PAGE;
            let mut due = Vec::new();
            for (sk, value) in page {
                let (Ok(chunk), Ok(state)) = (
                    sk.parse::<ChunkId>(),
                    record::decode::<ChunkState>("chunk state", &value),
                ) else {
                    continue;
                };
                match state {
                    ChunkState::Condemned { .. } => due.push(chunk),
                    ChunkState::Unreferenced { since_ms, .. } if since_ms <= due_before => {
                        due.push(chunk)
                    }
                    ChunkState::Unreferenced { stored, .. } => {
                        waiting += 1;
                        waiting_bytes += stored;
                    }
                }
            }
            if !due.is_empty() {
                complete &= self.condemn_and_delete(group, due, false).await;
            }
            if !full {
                break;
            }
        }
        (complete, waiting, waiting_bytes)
    }

    /// Condemn `chunks` of `group`, delete the condemned ones from every
    /// node that may hold them, and forget them.
    async fn condemn_and_delete(
        &self,
        group: GroupId,
        chunks: Vec<ChunkId>,
        orphans: bool,
    ) -> bool {
        let Ok(map) = self.meta.map() else {
            return false;
        };
        let Ok(placement) = Placement::new(map.as_ref().clone()) else {
            return false;
        };
        let stored_before = self.stored_of(group, &chunks);
        let condemn = Command::Condemn {
            chunks,
            now_ms: now_ms(),
            grace_ms: self.grace_ms(),
            orphans,
        };
        let stale_before = now_ms().saturating_sub(CONDEMNED_STALE.as_millis() as u64);
        let condemned: Vec<ChunkId> = match self.command(group, condemn).await {
            // Chunks condemned earlier are another deleter's, unless it
            // stopped long ago; the orphan sweep leaves them all to the
            // group's leader.
            Some(Outcome::Condemned { now, before }) => now
                .into_iter()
                .chain(
                    before
                        .into_iter()
                        .filter(|(_, since)| !orphans && *since <= stale_before)
                        .map(|(c, _)| c),
                )
                .collect(),
            _ => return false,
        };
        if condemned.is_empty() {
            return true;
        }
        tokio::time::sleep(self.delete_delay).await;
        // A deleter that pauses between condemning and deleting (a slow
        // node, a long pause): writes of the same content meet the
        // condemned chunks meanwhile.
        crate::buggify::stall(0.1, Duration::from_secs(2)).await;
        let started = tokio::time::Instant::now();
        let placement = &placement;
        let deleted: Vec<(ChunkId, u64)> = futures::stream::iter(condemned.iter().copied())
            .map(|c| async move { (c, self.delete_everywhere(placement, &c).await) })
            .buffer_unordered(DELETE_CONCURRENCY)
            .collect()
            .await;
        let shards: u64 = deleted.iter().map(|(_, n)| n).sum();
        let c = &self.counters;
        c.shards_deleted.fetch_add(shards, Ordering::Relaxed);
        c.chunks_deleted
            .fetch_add(condemned.len() as u64, Ordering::Relaxed);
        if orphans {
            c.orphans_deleted
                .fetch_add(condemned.len() as u64, Ordering::Relaxed);
        }
        let freed: u64 = condemned
            .iter()
            .filter_map(|ch| stored_before.get(ch))
            .sum();
        c.bytes_freed.fetch_add(freed, Ordering::Relaxed);
        metrics::counter!("cairn_gc_chunks_deleted_total").increment(condemned.len() as u64);
        // Forgotten even where a holder did not answer: its shard is an
        // orphan its own sweep finds, and a chunk left condemned would hold
        // back every PUT of the same content meanwhile.
        let n = condemned.len() as u64;
        let forget = Command::Forget { chunks: condemned };
        let ok = self.command(group, forget).await == Some(Outcome::Ok);
        // The throttle: at most MAX_CHUNKS_PER_S on average.
        let floor = Duration::from_millis(n * 1000 / MAX_CHUNKS_PER_S);
        if let Some(rest) = floor.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
        ok
    }

    fn stored_of(&self, group: GroupId, chunks: &[ChunkId]) -> BTreeMap<ChunkId, u64> {
        let Some(g) = self.tables.upgrade().and_then(|t| t.group(group)) else {
            return BTreeMap::new();
        };
        use cairn::command::KvRead;
        let view = g.machine.view();
        chunks
            .iter()
            .filter_map(|c| {
                let bytes = view.get(&keys::chunk_state(c))?;
                match record::decode::<ChunkState>("chunk state", &bytes).ok()? {
                    ChunkState::Unreferenced { stored, .. }
                    | ChunkState::Condemned { stored, .. } => Some((*c, stored)),
                }
            })
            .collect()
    }

    /// Delete every shard of a condemned chunk from every node the
    /// placement (now, and earlier ones migrating) puts it on; the shard
    /// deletions confirmed.
    async fn delete_everywhere(&self, placement: &Placement, chunk: &ChunkId) -> u64 {
        let mut targets = BTreeSet::new();
        let rows = std::iter::once(placement.table.chunk_nodes(chunk))
            .chain(placement.table.past_rows(chunk));
        for row in rows {
            for (i, n) in row.iter().enumerate() {
                targets.insert((*n, i as u8));
            }
        }
        let deletes = targets.into_iter().map(|(n, i)| {
            let addr = placement.addr(n).to_owned();
            async move { self.client.rpc_delete_shard(&addr, chunk, i).await.is_ok() }
        });
        futures::future::join_all(deletes)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count() as u64
    }

    /// Step 4: this node's shards older than the grace whose chunk no
    /// group knows.
    async fn sweep(&self) -> bool {
        let old_before = now_ms().saturating_sub(self.grace_ms());
        let groups = self.groups();
        let mut from = [0u8; 33];
        let to = [0xffu8; 33];
        let mut complete = true;
        loop {
            let Ok(page) = self.shards.list(&from, &to, SWEEP_PAGE) else {
                return false;
            };
            let Some(last) = page.last() else { break };
            from = next_index_key(&crate::shard_store::index_key(&last.chunk, last.index));
            let full = page.len() == SWEEP_PAGE;
            let mut by_group: BTreeMap<GroupId, BTreeSet<ChunkId>> = BTreeMap::new();
            for e in &page {
                if e.written_ms <= old_before {
                    by_group
                        .entry(data_group_of(&e.chunk.to_hex(), groups))
                        .or_default()
                        .insert(e.chunk);
                }
            }
            for (g, chunks) in by_group {
                let chunks: Vec<ChunkId> = chunks.into_iter().collect();
                for batch in chunks.chunks(MAX_META_BATCH) {
                    let known = match self.meta.read(g, Read::Known(batch.to_vec())).await {
                        Ok(ReadReply::Flags(f)) if f.len() == batch.len() => f,
                        _ => {
                            complete = false;
                            continue;
                        }
                    };
                    // Still here: a chunk another node deleted and forgot
                    // since the page was read is no orphan.
                    let unknown: Vec<ChunkId> = batch
                        .iter()
                        .zip(known)
                        .filter(|(c, k)| {
                            !k && page
                                .iter()
                                .filter(|e| e.chunk == **c)
                                .any(|e| self.shards.contains(c, e.index).unwrap_or(false))
                        })
                        .map(|(c, _)| *c)
                        .collect();
                    if !unknown.is_empty() {
                        complete &= self.condemn_and_delete(g, unknown, true).await;
                    }
                }
            }
            if !full {
                break;
            }
        }
        complete
    }
}
