//! The lifecycle worker: applies each bucket's lifecycle rules
//! (`docs/design/lifecycle.md`).
//!
//! Every node runs it and acts on the data groups it leads. A pass over a
//! bucket is a series of [`Command::Lifecycle`] steps; each step's apply
//! reads a bounded part of the bucket, decides what is due from the
//! records as they are at that point of the log, and acts through the
//! code a client's deletion uses (so Object Lock holds). The worker only
//! says where to start and when it is: a pass cut short (a lost
//! leadership, a failed command) resumes from its last step on this node,
//! and a new leader starts the bucket again, which is only repeated work:
//! a step does nothing to what is not due.
//!
//! Steps are throttled to [`MAX_ACTIONS_PER_S`] actions a second, so a
//! rule that suddenly expires a million objects does not crowd out
//! clients.

use crate::client::NodeClient;
use crate::table::client::{MetaClient, WeakTables};
use crate::table::groups::Tables;
use cairn::clock::now_ms;
use cairn::command::lifecycle::STEP_ACTIONS;
use cairn::command::{Command, LifecycleCursor, Outcome};
use cairn::record::{BucketId, GroupId, Table, VersionId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// Actions (expirations, markers, aborts) per second at most, per node.
pub const MAX_ACTIONS_PER_S: u64 = 200;
/// Pause between two steps of a pass that did nothing (a step reads up to
/// `cairn::command::lifecycle::STEP_READS` records).
pub const STEP_PAUSE: Duration = Duration::from_millis(20);
/// Longest time between two passes over a bucket.
pub const MAX_PASS_INTERVAL: Duration = Duration::from_secs(3600);
/// Shortest time between two passes over a bucket.
pub const MIN_PASS_INTERVAL: Duration = Duration::from_secs(1);
/// Lifecycle configurations read from a group's state at once.
const BUCKET_PAGE: usize = 256;
/// Buckets whose unfinished pass this node remembers.
const MAX_REMEMBERED: usize = 10_000;

/// The time between two passes for a day of `day`: a quarter of a day,
/// within [`MIN_PASS_INTERVAL`]..=[`MAX_PASS_INTERVAL`].
pub fn pass_interval(day: Duration) -> Duration {
    (day / 4).clamp(MIN_PASS_INTERVAL, MAX_PASS_INTERVAL)
}

/// What the worker did since the node started.
#[derive(Default)]
struct Counters {
    passes: AtomicU64,
    steps: AtomicU64,
    actions: AtomicU64,
}

/// A node's lifecycle worker.
pub struct Lifecycle {
    tables: Weak<Tables>,
    meta: MetaClient,
    day: Duration,
    /// Where an unfinished pass over a bucket stopped.
    progress: Mutex<HashMap<BucketId, LifecycleCursor>>,
    counters: Counters,
}

impl Lifecycle {
    /// A worker whose day lasts `day` (a real day but in tests).
    pub fn new(tables: Weak<Tables>, client: NodeClient, day: Duration) -> Arc<Self> {
        let meta = MetaClient::new(client, Arc::new(WeakTables(tables.clone())));
        Arc::new(Self {
            tables,
            meta,
            day: day.max(Duration::from_secs(1)),
            progress: Mutex::new(HashMap::new()),
            counters: Counters::default(),
        })
    }

    /// Start the pass loop.
    pub fn spawn(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        let interval = pass_interval(self.day);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(worker) = me.upgrade() else { return };
                worker.pass().await;
            }
        });
    }

    /// (passes, steps, actions) since the node started.
    pub fn counts(&self) -> (u64, u64, u64) {
        let c = &self.counters;
        (
            c.passes.load(Ordering::Relaxed),
            c.steps.load(Ordering::Relaxed),
            c.actions.load(Ordering::Relaxed),
        )
    }

    fn led_groups(&self) -> Vec<GroupId> {
        self.tables
            .upgrade()
            .map_or_else(Vec::new, |t| t.led_groups())
    }

    fn leads(&self, group: GroupId) -> bool {
        self.tables.upgrade().is_some_and(|t| t.leads(group))
    }

    /// The buckets of `group` with a lifecycle configuration, after
    /// `after`, from this node's committed state.
    fn buckets(&self, group: GroupId, after: Option<&str>) -> Vec<BucketId> {
        let Some(g) = self.tables.upgrade().and_then(|t| t.group(group)) else {
            return Vec::new();
        };
        use cairn::command::KvRead;
        g.machine
            .view()
            .scan(Table::Lifecycles, "", "", after, BUCKET_PAGE)
            .into_iter()
            .filter_map(|(k, _)| BucketId::parse(&k))
            .collect()
    }

    /// One pass over every bucket of the groups this node leads.
    pub async fn pass(&self) {
        for group in self.led_groups() {
            let mut after: Option<String> = None;
            loop {
                let page = self.buckets(group, after.as_deref());
                let Some(last) = page.last() else { break };
                after = Some(last.to_hex());
                for bucket in &page {
                    if !self.leads(group) {
                        break;
                    }
                    self.bucket(group, *bucket).await;
                }
                if page.len() < BUCKET_PAGE {
                    break;
                }
            }
        }
        self.counters.passes.fetch_add(1, Ordering::Relaxed);
    }

    /// A pass over one bucket, from where the last one stopped.
    async fn bucket(&self, group: GroupId, bucket: BucketId) {
        let mut from = self
            .progress
            .lock()
            .expect("lifecycle progress")
            .remove(&bucket)
            .unwrap_or(LifecycleCursor::Start);
        let day_ms = self.day.as_millis() as u64;
        loop {
            if !self.leads(group) {
                self.remember(bucket, from);
                return;
            }
            let markers = (0..STEP_ACTIONS)
                .map(|_| VersionId(crate::random::random()))
                .collect();
            let step = Command::Lifecycle {
                bucket,
                from: from.clone(),
                now_ms: now_ms(),
                day_ms,
                markers,
            };
            self.counters.steps.fetch_add(1, Ordering::Relaxed);
            match self.meta.command(group, step).await {
                Ok(Outcome::Lifecycle { next, actions }) => {
                    self.counters
                        .actions
                        .fetch_add(u64::from(actions), Ordering::Relaxed);
                    let pause =
                        Duration::from_millis(u64::from(actions) * 1000 / MAX_ACTIONS_PER_S)
                            .max(STEP_PAUSE);
                    tokio::time::sleep(pause).await;
                    match next {
                        Some(c) => from = c,
                        None => return,
                    }
                }
                // The bucket went meanwhile.
                Ok(Outcome::NoSuchBucket) => return,
                Ok(other) => {
                    tracing::warn!(%bucket, outcome = ?other, "lifecycle step refused");
                    return;
                }
                Err(e) => {
                    tracing::debug!(%bucket, error = %e, "lifecycle step not made");
                    self.remember(bucket, from);
                    return;
                }
            }
        }
    }

    fn remember(&self, bucket: BucketId, from: LifecycleCursor) {
        let mut p = self.progress.lock().expect("lifecycle progress");
        if p.len() < MAX_REMEMBERED || p.contains_key(&bucket) {
            p.insert(bucket, from);
        }
    }
}
