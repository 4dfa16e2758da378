//! Chunk references of a write in progress.
//!
//! A PUT, an UploadPart or a CopyObject that stores chunks first records an
//! intent in its bucket's group (its writer id: the version or part upload
//! it will commit), then references each chunk in the chunk's group
//! *before* storing its shards, and commits its manifest last, which
//! consumes the intent. A chunk whose deletion has begun cannot be
//! referenced until it is gone, so shards stored after their reference
//! was taken are never deleted under a live object; a commit without its
//! intent is refused, so a writer the collector gave up on cannot commit
//! afterwards (see `docs/design/gc.md`).
//!
//! If the write fails before its commit, its references are removed at once;
//! if the commit's outcome is unknown, they are removed only once the intent
//! is cancelled (so the commit can no longer happen). A writer that dies
//! leaves them to the nodes' audit.

use crate::error::{Error, Result};
use crate::meta::Meta;
use cairn::clock::now_ms;
use cairn::command::{Command, MAX_REF_BATCH, Outcome};
use cairn::id::ChunkId;
use cairn::layout::data_group_of;
use cairn::record::{BucketId, GroupId, Referrer, VersionId};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How often a write renews its intent (the nodes cancel one not renewed for
/// `cairn_node::gc::INTENT_TTL`).
pub const INTENT_RENEW: Duration = cairn_node::gc::INTENT_RENEW;
/// Longest a write waits for a chunk being deleted to be gone before it
/// references it again.
pub const CHUNK_BUSY_DEADLINE: Duration = Duration::from_secs(30);
/// First pause before asking again for a chunk being deleted; doubles up to
/// [`CHUNK_BUSY_PAUSE_MAX`].
pub const CHUNK_BUSY_PAUSE: Duration = Duration::from_millis(20);
/// Longest pause between two asks for a chunk being deleted.
pub const CHUNK_BUSY_PAUSE_MAX: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Not committed, and no commit was sent: the references are dead.
    Open,
    /// A commit was sent; its outcome is not known.
    Uncertain,
    /// Committed: the references belong to the object or part now.
    Committed,
}

/// The references of one write.
pub struct WriteSession {
    meta: Arc<Meta>,
    referrer: Referrer,
    bucket_group: GroupId,
    groups: u32,
    chunks: Mutex<Vec<ChunkId>>,
    fate: Mutex<Fate>,
    renew: tokio::task::JoinHandle<()>,
}

impl WriteSession {
    /// Record the intent of `referrer` (writing `key`).
    pub async fn begin(meta: Arc<Meta>, referrer: Referrer, key: &str) -> Result<Arc<Self>> {
        let bucket = referrer.bucket();
        let writer = referrer.writer();
        let bucket_group = meta.client.bucket_group(bucket)?;
        let groups = meta.client.map()?.metadata_groups();
        let out = meta
            .client
            .command(
                bucket_group,
                Command::BeginWrite {
                    bucket,
                    writer,
                    key: key.to_owned(),
                    now_ms: now_ms(),
                },
            )
            .await?;
        crate::s3::outcome(out)?;
        let renew = tokio::spawn(renew(meta.clone(), bucket_group, bucket, writer));
        Ok(Arc::new(Self {
            meta,
            referrer,
            bucket_group,
            groups,
            chunks: Mutex::new(Vec::new()),
            fate: Mutex::new(Fate::Open),
            renew,
        }))
    }

    /// Reference `chunks` (each with the bytes it takes in shards), all of
    /// one group. A PUT (`require_present` false) waits while a chunk is
    /// being deleted; a copy (`require_present` true) fails with
    /// `NoSuchKey` when one is gone.
    pub async fn reference(
        &self,
        chunks: Vec<(ChunkId, u64)>,
        require_present: bool,
    ) -> Result<()> {
        let Some((first, _)) = chunks.first() else {
            return Ok(());
        };
        let group = data_group_of(&first.to_hex(), self.groups);
        // Counted before the command: a reference whose command is lost
        // is removed with the others.
        self.chunks
            .lock()
            .expect("session chunks")
            .extend(chunks.iter().map(|(c, _)| *c));
        let deadline = Instant::now() + CHUNK_BUSY_DEADLINE;
        let mut pause = CHUNK_BUSY_PAUSE;
        loop {
            let out = self
                .meta
                .client
                .command(
                    group,
                    Command::AddRefs {
                        referrer: self.referrer.clone(),
                        chunks: chunks.clone(),
                        now_ms: now_ms(),
                        require_present,
                    },
                )
                .await?;
            match out {
                Outcome::Ok => return Ok(()),
                Outcome::ChunkBusy if Instant::now() < deadline => {
                    metrics::counter!("cairn_gateway_chunk_busy_waits_total").increment(1);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(CHUNK_BUSY_PAUSE_MAX);
                }
                Outcome::ChunkBusy => {
                    return Err(Error::S3(s3s::s3_error!(
                        SlowDown,
                        "Please reduce your request rate."
                    )));
                }
                Outcome::ChunkGone => {
                    return Err(Error::S3(s3s::s3_error!(
                        NoSuchKey,
                        "The specified key does not exist."
                    )));
                }
                other => {
                    return Err(crate::s3::outcome(other).err().map_or_else(
                        || Error::Quorum("unexpected reference outcome".into()),
                        Error::S3,
                    ));
                }
            }
        }
    }

    /// Reference chunks of any groups, in batches per group.
    pub async fn reference_all(
        &self,
        chunks: &[(ChunkId, u64)],
        require_present: bool,
    ) -> Result<()> {
        let mut by_group: BTreeMap<GroupId, Vec<(ChunkId, u64)>> = BTreeMap::new();
        for &(c, stored) in chunks {
            by_group
                .entry(data_group_of(&c.to_hex(), self.groups))
                .or_default()
                .push((c, stored));
        }
        for batch in by_group.values() {
            for part in batch.chunks(MAX_REF_BATCH) {
                self.reference(part.to_vec(), require_present).await?;
            }
        }
        Ok(())
    }

    /// Call before sending the commit.
    pub fn committing(&self) {
        *self.fate.lock().expect("session fate") = Fate::Uncertain;
    }

    /// Call with the commit's result.
    pub fn settle(&self, result: &Result<Outcome>) {
        *self.fate.lock().expect("session fate") = match result {
            Ok(o) if o.succeeded() => Fate::Committed,
            Ok(_) => Fate::Open,
            Err(_) => Fate::Uncertain,
        };
    }
}

impl Drop for WriteSession {
    fn drop(&mut self) {
        self.renew.abort();
        let fate = *self.fate.lock().expect("session fate");
        if fate == Fate::Committed {
            return;
        }
        let chunks = std::mem::take(&mut *self.chunks.lock().expect("session chunks"));
        let (meta, referrer, group, groups) = (
            self.meta.clone(),
            self.referrer.clone(),
            self.bucket_group,
            self.groups,
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(release(meta, referrer, group, groups, chunks, fate));
        }
    }
}

/// Cancel a write that did not commit and remove its references (only once
/// the cancel made sure it never will, when its commit's outcome is not
/// known).
async fn release(
    meta: Arc<Meta>,
    referrer: Referrer,
    bucket_group: GroupId,
    groups: u32,
    chunks: Vec<ChunkId>,
    fate: Fate,
) {
    let writer = referrer.writer();
    let cancel = Command::CancelWrite {
        bucket: referrer.bucket(),
        writer,
        renewed_at_most: None,
    };
    let cancelled = meta.client.command(bucket_group, cancel).await;
    let dead = match (fate, &cancelled) {
        (_, Ok(Outcome::Ok)) => true,
        // The write never sent its commit: nothing can have consumed the
        // intent but the collector's cancel.
        (Fate::Open, _) => true,
        _ => false,
    };
    if !dead {
        tracing::debug!(%writer, "write outcome unknown: its references are left to the audit");
        return;
    }
    let mut by_group: BTreeMap<GroupId, Vec<ChunkId>> = BTreeMap::new();
    for c in chunks {
        by_group
            .entry(data_group_of(&c.to_hex(), groups))
            .or_default()
            .push(c);
    }
    for (g, mut chunks) in by_group {
        chunks.sort();
        chunks.dedup();
        for batch in chunks.chunks(MAX_REF_BATCH) {
            let remove = Command::RemoveRefs {
                writer,
                chunks: batch.to_vec(),
                now_ms: now_ms(),
            };
            if let Err(e) = meta.client.command(g, remove).await {
                tracing::debug!(%writer, error = %e, "references left to the audit");
            }
        }
    }
}

async fn renew(meta: Arc<Meta>, group: GroupId, bucket: BucketId, writer: VersionId) {
    loop {
        tokio::time::sleep(INTENT_RENEW).await;
        let renew = Command::RenewWrite {
            bucket,
            writer,
            now_ms: now_ms(),
        };
        // A write the collector cancelled stops renewing; its commit will
        // be refused.
        if let Ok(Outcome::NoSuchWrite) = meta.client.command(group, renew).await {
            return;
        }
    }
}
