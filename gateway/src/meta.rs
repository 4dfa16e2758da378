//! The gateway's metadata: the groups' client, and a cache of the system
//! records every request needs (its bucket, its access key).
//!
//! The cache is kept true by the system group's change feed: a long poll
//! of the system leader answers with the keys changed since the index the
//! gateway last saw, within half a second even when nothing changed. The
//! cache is used only while a feed answer is less than [`CACHE_BOUND`] old,
//! counted from when that answer was asked for; otherwise records are read
//! from the system group itself. So a bucket or key deleted at time T is
//! refused by every gateway from T + [`CACHE_BOUND`] at the latest (and at
//! once by the gateway that deleted it). See `docs/design/metadata.md`.

use crate::cluster::Cluster;
use crate::error::Result;
use cairn::command::{Command, Outcome};
use cairn::record::{
    self, AccessKeyRecord, BucketId, BucketRecord, ConfigKind, GroupId, LifecycleConfig, MetaKey,
    keys,
};
use cairn::rpc::SystemChanges;
use cairn_node::table::client::MetaClient;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Longest a cached system record is used without a feed answer asked for
/// since: the bound on how long a deleted bucket or key can still be used.
pub const CACHE_BOUND: Duration = Duration::from_secs(1);
/// Largest number of system records cached (a few hundred bytes each).
pub const CACHE_ENTRIES: usize = 100_000;
/// Pause after a failed feed request.
pub const FEED_RETRY: Duration = Duration::from_millis(200);
/// How long a bucket's lifecycle configuration, read for the
/// `x-amz-expiration` header of object answers, is used before it is read
/// again. The header only informs (the nodes' worker applies the rules
/// from the group itself), so another gateway's change may show this
/// late; this gateway's own changes show at once.
pub const LIFECYCLE_CACHE_TTL: Duration = Duration::from_secs(5);
/// Most buckets whose lifecycle configuration is cached.
pub const LIFECYCLE_CACHE_ENTRIES: usize = 4096;

#[derive(Default)]
struct Cache {
    records: BTreeMap<MetaKey, Option<Vec<u8>>>,
    // When the last feed answer was asked for.
    confirmed_at: Option<Instant>,
    // The system index the cache reflects.
    index: u64,
    // Bumped by every invalidation: a read that started before one does
    // not fill the cache with what it read.
    generation: u64,
}

/// Lifecycle configurations by bucket (`None`: the bucket has none), with
/// when each was read.
type LifecycleCache = HashMap<BucketId, (Instant, Option<Arc<LifecycleConfig>>)>;

/// The gateway's metadata client.
pub struct Meta {
    /// The groups' client.
    pub client: MetaClient,
    cache: Mutex<Cache>,
    lifecycles: Mutex<LifecycleCache>,
}

impl Meta {
    /// Metadata of `cluster`; starts the change feed.
    pub fn new(cluster: Arc<Cluster>) -> Arc<Self> {
        let meta = Arc::new(Self {
            client: MetaClient::new(cluster.client.clone(), cluster),
            cache: Mutex::new(Cache::default()),
            lifecycles: Mutex::new(HashMap::new()),
        });
        tokio::spawn(follow_changes(Arc::downgrade(&meta)));
        meta
    }

    /// A system record, from the cache when it is fresh enough.
    async fn system_record(&self, key: MetaKey) -> Result<Option<Vec<u8>>> {
        let generation = {
            let cache = self.cache.lock().expect("cache lock");
            let fresh = cache
                .confirmed_at
                .is_some_and(|t| t.elapsed() < CACHE_BOUND);
            if fresh && let Some(v) = cache.records.get(&key) {
                return Ok(v.clone());
            }
            fresh.then_some(cache.generation)
        };
        let value = self
            .client
            .get_many(GroupId::SYSTEM, vec![key.clone()])
            .await?
            .pop()
            .flatten();
        let mut cache = self.cache.lock().expect("cache lock");
        if generation == Some(cache.generation) && cache.records.len() < CACHE_ENTRIES {
            cache.records.insert(key, value.clone());
        }
        Ok(value)
    }

    /// Forget cached system records (after this gateway changed them, so
    /// it sees its own change at once).
    fn forget(&self, key: &MetaKey) {
        let mut cache = self.cache.lock().expect("cache lock");
        cache.records.remove(key);
        cache.generation += 1;
    }

    /// A bucket by name.
    pub async fn bucket(&self, name: &str) -> Result<Option<BucketRecord>> {
        let key = keys::bucket(name);
        let table = key.table.name();
        Ok(match self.system_record(key).await? {
            Some(v) => Some(record::decode(table, &v)?),
            None => None,
        })
    }

    /// An access key by id.
    pub async fn access_key(&self, id: &str) -> Result<Option<AccessKeyRecord>> {
        let key = keys::access_key(id);
        let table = key.table.name();
        Ok(match self.system_record(key).await? {
            Some(v) => Some(record::decode(table, &v)?),
            None => None,
        })
    }

    /// One configuration of a bucket (cached as the bucket record is).
    pub async fn bucket_config<T: serde::de::DeserializeOwned>(
        &self,
        bucket: BucketId,
        kind: ConfigKind,
    ) -> Result<Option<T>> {
        let key = keys::bucket_config(bucket, kind);
        let table = key.table.name();
        Ok(match self.system_record(key).await? {
            Some(v) => Some(record::decode(table, &v)?),
            None => None,
        })
    }

    /// A bucket's lifecycle configuration, read from its group.
    pub async fn lifecycle(&self, bucket: BucketId) -> Result<Option<LifecycleConfig>> {
        let group = self.client.bucket_group(bucket)?;
        Ok(self
            .client
            .get::<LifecycleConfig>(group, &keys::lifecycle(bucket))
            .await?)
    }

    /// A bucket's lifecycle configuration as of at most
    /// [`LIFECYCLE_CACHE_TTL`] ago: for informational answers only (a
    /// configuration's own GET reads the group).
    pub async fn lifecycle_hint(&self, bucket: BucketId) -> Result<Option<Arc<LifecycleConfig>>> {
        if let Some((at, c)) = self.lifecycles.lock().expect("cache lock").get(&bucket)
            && at.elapsed() < LIFECYCLE_CACHE_TTL
        {
            return Ok(c.clone());
        }
        let config = self.lifecycle(bucket).await?.map(Arc::new);
        let mut cache = self.lifecycles.lock().expect("cache lock");
        if cache.len() >= LIFECYCLE_CACHE_ENTRIES {
            cache.retain(|_, (at, _)| at.elapsed() < LIFECYCLE_CACHE_TTL);
        }
        if cache.len() < LIFECYCLE_CACHE_ENTRIES {
            cache.insert(bucket, (Instant::now(), config.clone()));
        }
        Ok(config)
    }

    /// Propose a system command; the records it changes are forgotten here.
    pub async fn system(&self, command: Command) -> Result<Outcome> {
        let touched = match &command {
            Command::CreateBucket { record } => Some(keys::bucket(&record.name)),
            Command::DeleteBucket { name, .. } | Command::AllowKey { name, .. } => {
                Some(keys::bucket(name))
            }
            Command::PutAccessKey { record } => Some(keys::access_key(&record.access_key_id)),
            Command::PutBucketConfig { bucket, kind, .. } => {
                Some(keys::bucket_config(*bucket, *kind))
            }
            Command::DeleteAccessKey { access_key_id } => Some(keys::access_key(access_key_id)),
            _ => None,
        };
        let outcome = self.client.system_command(command).await;
        if let Some(k) = touched {
            self.forget(&k);
        }
        Ok(outcome?)
    }

    /// Propose a data command to the group of its bucket.
    pub async fn data(&self, command: Command) -> Result<Outcome> {
        let bucket = command.bucket().expect("data commands name their bucket");
        let group = self.client.bucket_group(bucket)?;
        let lifecycle = matches!(command, Command::SetLifecycle { .. });
        let outcome = self.client.command(group, command).await;
        if lifecycle {
            self.lifecycles.lock().expect("cache lock").remove(&bucket);
        }
        Ok(outcome?)
    }
}

/// Keep the cache true: follow the system group's change feed.
async fn follow_changes(meta: std::sync::Weak<Meta>) {
    loop {
        let Some(m) = meta.upgrade() else { return };
        let after = m.cache.lock().expect("cache lock").index;
        let asked = Instant::now();
        let answer = m.client.system_changes(after).await;
        let mut cache = m.cache.lock().expect("cache lock");
        match answer {
            Ok(SystemChanges::Changes { index, keys }) => {
                if !keys.is_empty() {
                    cache.generation += 1;
                    for k in keys {
                        cache.records.remove(&k);
                    }
                }
                cache.index = cache.index.max(index);
                cache.confirmed_at = Some(asked);
            }
            Ok(SystemChanges::Reset { index }) => {
                cache.records.clear();
                cache.generation += 1;
                cache.index = index;
                cache.confirmed_at = Some(asked);
            }
            Ok(SystemChanges::Refused(_)) | Err(_) => {
                drop(cache);
                drop(m);
                tokio::time::sleep(FEED_RETRY).await;
            }
        }
    }
}
