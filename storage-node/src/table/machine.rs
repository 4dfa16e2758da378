//! A group's state machine: its records in the node's key-value store, changed
//! only by applying committed log entries with [`cairn::command`].
//!
//! An apply writes its records, the applied log id and the membership in
//! one write batch, so the records and what they reflect never
//! disagree. That batch is not synced on its own: the log entries it came
//! from are durable, a crash loses at most a suffix of applied batches, and
//! they are applied again from the log (the log is purged only after the
//! WAL is synced, see `log.rs`).
//!
//! Snapshots are files (`DATA/snapshots/gN/`): the group's records, read
//! from a snapshot of the store, length-prefixed. A follower receiving one
//! replaces its records of the group with them.

// openraft's storage traits return its `StorageError` (large); the helpers
// here return it too rather than converting back and forth.
#![allow(clippy::result_large_err)]

use super::log::{blocking, io_err};
use super::snapshot_file::SnapshotFile;
use super::store::{GroupView, group_end, group_start, record_key, state_key};
use super::{PeerNode, TypeConfig};
use crate::db::{Batch, Cf, Db, Kv};
use cairn::command::{Outcome, Overlay, apply_request};
use cairn::record::{self, GroupId, MetaKey};
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError,
    StoredMembership,
};
use std::collections::VecDeque;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Changes of the system group remembered for watchers (gateways' caches):
/// a watcher further behind than this starts over from an empty cache.
pub const SYSTEM_CHANGES_KEPT: usize = 4096;
/// Bytes of records written per batch while installing a snapshot.
const INSTALL_BATCH_BYTES: usize = 4 << 20;

/// What a group's applies tell the rest of the node.
pub struct Applied {
    /// The last applied log index.
    pub index: tokio::sync::watch::Sender<u64>,
    /// System group only: `(index, key)` of recent writes, oldest first.
    pub changes: Mutex<VecDeque<(u64, MetaKey)>>,
    /// The index before which `changes` is incomplete.
    pub changes_since: Mutex<u64>,
}

impl Applied {
    fn new(index: u64) -> Arc<Self> {
        let (tx, _) = tokio::sync::watch::channel(index);
        Arc::new(Self {
            index: tx,
            changes: Mutex::new(VecDeque::new()),
            changes_since: Mutex::new(index),
        })
    }

    fn record(&self, index: u64, keys: impl Iterator<Item = MetaKey>) {
        let mut changes = self.changes.lock().expect("changes lock");
        for k in keys {
            changes.push_back((index, k));
        }
        while changes.len() > SYSTEM_CHANGES_KEPT {
            let (i, _) = changes.pop_front().expect("non-empty");
            *self.changes_since.lock().expect("since lock") = i;
        }
    }

    /// The keys changed after `after`, or `None` when that is further back
    /// than the changes kept.
    pub fn changes_after(&self, after: u64) -> Option<Vec<MetaKey>> {
        let since = *self.changes_since.lock().expect("since lock");
        if after < since {
            return None;
        }
        let changes = self.changes.lock().expect("changes lock");
        Some(
            changes
                .iter()
                .filter(|(i, _)| *i > after)
                .map(|(_, k)| k.clone())
                .collect(),
        )
    }
}

/// One group's state machine.
#[derive(Clone)]
pub struct Machine {
    db: Db,
    group: GroupId,
    dir: PathBuf,
    applied: Arc<Applied>,
    receiving: Arc<Mutex<Option<PathBuf>>>,
}

fn get_state<T: serde::de::DeserializeOwned>(
    db: &dyn Kv,
    group: GroupId,
    what: &str,
) -> Result<Option<T>, StorageError<u64>> {
    match db
        .get(Cf::RaftState, &state_key(group, what))
        .map_err(io_err)?
    {
        Some(v) => Ok(Some(record::decode("raft state", &v).map_err(io_err)?)),
        None => Ok(None),
    }
}

type Membership = StoredMembership<u64, PeerNode>;

impl Machine {
    /// The state machine of `group`, with snapshots under `dir`.
    pub fn open(db: Db, group: GroupId, dir: PathBuf) -> Result<Self, StorageError<u64>> {
        std::fs::create_dir_all(&dir).map_err(io_err)?;
        let applied: Option<LogId<u64>> =
            get_state::<Option<LogId<u64>>>(db.as_ref(), group, "applied")?.flatten();
        Ok(Self {
            applied: Applied::new(applied.map(|l| l.index).unwrap_or(0)),
            db,
            group,
            dir,
            receiving: Arc::new(Mutex::new(None)),
        })
    }

    /// What its applies tell.
    pub fn applied(&self) -> Arc<Applied> {
        self.applied.clone()
    }

    /// Its committed records.
    pub fn view(&self) -> GroupView {
        GroupView::new(self.db.clone(), self.group)
    }

    fn snapshot_path(&self) -> PathBuf {
        self.dir.join("current.snap")
    }
}

/// What applying a run of entries did.
struct AppliedRun {
    outcomes: Vec<Outcome>,
    // System group: the keys written or deleted.
    changed: Vec<MetaKey>,
    last: Option<u64>,
}

/// Apply a run of entries in one write batch.
fn apply_entries(
    db: &Db,
    group: GroupId,
    entries: Vec<Entry<TypeConfig>>,
) -> Result<AppliedRun, StorageError<u64>> {
    let view = GroupView::new(db.clone(), group);
    let mut txn = Overlay::new(&view);
    let mut outcomes = Vec::with_capacity(entries.len());
    let mut last: Option<LogId<u64>> = None;
    let mut membership: Option<Membership> = None;
    for e in entries {
        last = Some(e.log_id);
        match e.payload {
            EntryPayload::Blank => outcomes.push(Outcome::Ok),
            EntryPayload::Normal(req) => {
                outcomes.push(apply_request(&mut txn, e.log_id.index, &req));
            }
            EntryPayload::Membership(m) => {
                membership = Some(StoredMembership::new(Some(e.log_id), m));
                outcomes.push(Outcome::Ok);
            }
        }
    }
    let writes = txn.into_writes();
    let mut batch = Batch::default();
    let mut changed = Vec::new();
    for (k, v) in writes {
        let rk = record_key(group, &k);
        match v {
            Some(v) => batch.put(Cf::Meta, rk, v),
            None => batch.delete(Cf::Meta, rk),
        }
        if group.is_system()
            && !matches!(
                k.table,
                cairn::record::Table::Requests | cairn::record::Table::RequestsByIndex
            )
        {
            changed.push(k);
        }
    }
    batch.put(
        Cf::RaftState,
        state_key(group, "applied"),
        record::encode(&last),
    );
    if let Some(m) = &membership {
        batch.put(
            Cf::RaftState,
            state_key(group, "membership"),
            record::encode(m),
        );
    }
    db.write(batch, false).map_err(io_err)?;
    Ok(AppliedRun {
        outcomes,
        changed,
        last: last.map(|l| l.index),
    })
}

/// Write a group's records, as of a snapshot of the store, to `path`;
/// returns the applied log id and membership they reflect.
fn write_snapshot_file(
    db: &dyn Kv,
    group: GroupId,
    path: &PathBuf,
) -> Result<(Option<LogId<u64>>, Membership), StorageError<u64>> {
    let snap = db.snapshot();
    let read_state = |what: &str| -> Result<Option<Vec<u8>>, StorageError<u64>> {
        snap.get(Cf::RaftState, &state_key(group, what))
            .map_err(io_err)
    };
    let applied: Option<LogId<u64>> = match read_state("applied")? {
        Some(v) => record::decode("raft state", &v).map_err(io_err)?,
        None => None,
    };
    let membership: Membership = match read_state("membership")? {
        Some(v) => record::decode("raft state", &v).map_err(io_err)?,
        None => Membership::default(),
    };
    let tmp = path.with_extension("building");
    let mut out = BufWriter::new(std::fs::File::create(&tmp).map_err(io_err)?);
    let start = group_start(group);
    let end = group_end(group);
    for item in snap.range(Cf::Meta, &start, &end) {
        let (k, v) = item.map_err(io_err)?;
        let k = &k[4..];
        out.write_all(&(k.len() as u32).to_le_bytes())
            .map_err(io_err)?;
        out.write_all(k).map_err(io_err)?;
        out.write_all(&(v.len() as u32).to_le_bytes())
            .map_err(io_err)?;
        out.write_all(&v).map_err(io_err)?;
    }
    let file = out.into_inner().map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(io_err)?;
    Ok((applied, membership))
}

/// Replace a group's records with those of a snapshot file.
fn install_snapshot_file(
    db: &dyn Kv,
    group: GroupId,
    file: std::fs::File,
    meta: &SnapshotMeta<u64, PeerNode>,
) -> Result<(), StorageError<u64>> {
    let mut batch = Batch::default();
    batch.delete_range(Cf::Meta, group_start(group), group_end(group));
    db.write(batch, false).map_err(io_err)?;
    let mut input = BufReader::new(file);
    let mut batch = Batch::default();
    let read_len =
        |input: &mut BufReader<std::fs::File>| -> Result<Option<usize>, StorageError<u64>> {
            let mut len = [0u8; 4];
            match input.read_exact(&mut len) {
                Ok(()) => Ok(Some(u32::from_le_bytes(len) as usize)),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
                Err(e) => Err(io_err(e)),
            }
        };
    while let Some(klen) = read_len(&mut input)? {
        let mut k = group_start(group);
        let at = k.len();
        k.resize(at + klen, 0);
        input.read_exact(&mut k[at..]).map_err(io_err)?;
        let vlen = read_len(&mut input)?.ok_or_else(|| io_err("snapshot truncated"))?;
        let mut v = vec![0u8; vlen];
        input.read_exact(&mut v).map_err(io_err)?;
        batch.put(Cf::Meta, k, v);
        if batch.size_in_bytes() > INSTALL_BATCH_BYTES {
            db.write(std::mem::take(&mut batch), false)
                .map_err(io_err)?;
        }
    }
    batch.put(
        Cf::RaftState,
        state_key(group, "applied"),
        record::encode(&meta.last_log_id),
    );
    batch.put(
        Cf::RaftState,
        state_key(group, "membership"),
        record::encode(&meta.last_membership),
    );
    batch.put(
        Cf::RaftState,
        state_key(group, "snapshot"),
        record::encode(meta),
    );
    db.write(batch, true).map_err(io_err)
}

impl RaftSnapshotBuilder<TypeConfig> for Machine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<u64>> {
        let me = self.clone();
        let meta = blocking(move || {
            let path = me.snapshot_path();
            let (applied, membership) = write_snapshot_file(me.db.as_ref(), me.group, &path)?;
            let id = match applied {
                Some(l) => format!(
                    "{}-{}-{:08x}",
                    l.leader_id,
                    l.index,
                    crate::random::random::<u32>()
                ),
                None => format!("empty-{:08x}", crate::random::random::<u32>()),
            };
            let meta = SnapshotMeta {
                last_log_id: applied,
                last_membership: membership,
                snapshot_id: id,
            };
            me.db
                .put(
                    Cf::RaftState,
                    &state_key(me.group, "snapshot"),
                    &record::encode(&meta),
                    true,
                )
                .map_err(io_err)?;
            Ok(meta)
        })
        .await?;
        let file = SnapshotFile::open(&self.snapshot_path())
            .await
            .map_err(io_err)?;
        tracing::debug!(group = %self.group, index = ?meta.last_log_id, "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

impl RaftStateMachine<TypeConfig> for Machine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, Membership), StorageError<u64>> {
        let me = self.clone();
        blocking(move || {
            let applied =
                get_state::<Option<LogId<u64>>>(me.db.as_ref(), me.group, "applied")?.flatten();
            let membership = get_state::<Membership>(me.db.as_ref(), me.group, "membership")?
                .unwrap_or_default();
            Ok((applied, membership))
        })
        .await
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Inline: an apply is a RocksDB write that is not synced (and a few
        // reads, mostly of the memtable); a trip to the blocking pool costs
        // more on a busy machine, and every write waits for its apply.
        let entries: Vec<_> = entries.into_iter().collect();
        let run = apply_entries(&self.db, self.group, entries)?;
        if let Some(index) = run.last {
            if !run.changed.is_empty() {
                self.applied.record(index, run.changed.into_iter());
            }
            self.applied.index.send_replace(index);
        }
        Ok(run.outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<SnapshotFile>, StorageError<u64>> {
        let path = self.dir.join(format!(
            "incoming-{:08x}.snap",
            crate::random::random::<u32>()
        ));
        let file = SnapshotFile::create_new(&path).await.map_err(io_err)?;
        let old = self.receiving.lock().expect("receiving lock").replace(path);
        if let Some(old) = old {
            let _ = std::fs::remove_file(old);
        }
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, PeerNode>,
        snapshot: Box<SnapshotFile>,
    ) -> Result<(), StorageError<u64>> {
        let incoming = self
            .receiving
            .lock()
            .expect("receiving lock")
            .take()
            .ok_or_else(|| io_err("no snapshot being received"))?;
        let mut file = snapshot.into_std().await;
        let (me, meta2) = (self.clone(), meta.clone());
        blocking(move || {
            use std::io::Seek;
            file.sync_all().map_err(io_err)?;
            file.seek(std::io::SeekFrom::Start(0)).map_err(io_err)?;
            install_snapshot_file(me.db.as_ref(), me.group, file, &meta2)?;
            std::fs::rename(&incoming, me.snapshot_path()).map_err(io_err)?;
            Ok(())
        })
        .await?;
        // Watchers of the system group cannot list what a snapshot changed.
        let index = meta.last_log_id.map(|l| l.index).unwrap_or(0);
        *self.applied.changes_since.lock().expect("since lock") = index;
        self.applied.changes.lock().expect("changes lock").clear();
        self.applied.index.send_replace(index);
        tracing::info!(group = %self.group, index, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<u64>> {
        let me = self.clone();
        let meta = blocking(move || {
            get_state::<SnapshotMeta<u64, PeerNode>>(me.db.as_ref(), me.group, "snapshot")
        })
        .await?;
        let Some(meta) = meta else { return Ok(None) };
        match SnapshotFile::open(&self.snapshot_path()).await {
            Ok(file) => Ok(Some(Snapshot {
                meta,
                snapshot: Box::new(file),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }
}
