//! A group's Raft log and vote in the node's key-value store.
//!
//! Entries are `raft_log[group ++ index BE]`; the vote and the last purged
//! log id are in `raft_state`. Votes are synced before they are saved.
//! Appends are written at once (readable) and made durable by the node's
//! one [`WalSyncer`]: a thread that syncs the WAL as soon as appends wait
//! for it and then tells openraft they are durable. Appends of every group
//! that arrive while a sync runs share the next one (group commit), so the
//! rate of log writes is not bound by one fsync each.

// openraft's storage traits return its `StorageError` (large); the helpers
// here return it too rather than converting back and forth.
#![allow(clippy::result_large_err)]

use super::TypeConfig;
use super::store::state_key;
use crate::db::{self, Batch, Cf, Db, Kv};
use cairn::record::{self, GroupId};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// Makes appended entries durable: one thread per node syncing the WAL
/// for every append that waits, in batches.
pub struct WalSyncer {
    waiting: std::sync::Mutex<Vec<LogFlushed<TypeConfig>>>,
    wake: std::sync::Condvar,
    // When blocking work runs inline (a simulation): no thread, every
    // append synced where it is made.
    inline: Option<std::sync::Weak<dyn Kv>>,
}

impl WalSyncer {
    /// Start the syncer of `db`; it runs until the process ends (or the
    /// database is dropped, which ends it at its next wait).
    pub fn start(db: &Db) -> Arc<Self> {
        if crate::blocking::is_inline() {
            return Arc::new(Self {
                waiting: std::sync::Mutex::new(Vec::new()),
                wake: std::sync::Condvar::new(),
                inline: Some(Arc::downgrade(db)),
            });
        }
        let me = Arc::new(Self {
            waiting: std::sync::Mutex::new(Vec::new()),
            wake: std::sync::Condvar::new(),
            inline: None,
        });
        let (weak_db, weak_me) = (Arc::downgrade(db), Arc::downgrade(&me));
        std::thread::Builder::new()
            .name("cairn-wal-sync".into())
            .spawn(move || sync_loop(weak_db, weak_me))
            .expect("spawning the WAL syncer");
        me
    }

    fn wait_for_sync(&self, callback: LogFlushed<TypeConfig>) {
        if let Some(db) = &self.inline {
            callback.log_io_completed(sync_now(db));
            return;
        }
        self.waiting.lock().expect("syncer lock").push(callback);
        self.wake.notify_one();
    }
}

fn sync_now(db: &std::sync::Weak<dyn Kv>) -> std::io::Result<()> {
    match db.upgrade() {
        Some(db) => db.sync().map_err(|e| std::io::Error::other(e.to_string())),
        None => Err(std::io::Error::other("the database is closed")),
    }
}

fn sync_loop(db: std::sync::Weak<dyn Kv>, me: std::sync::Weak<WalSyncer>) {
    loop {
        let Some(syncer) = me.upgrade() else { return };
        let batch = {
            let mut waiting = syncer.waiting.lock().expect("syncer lock");
            while waiting.is_empty() {
                let (w, timeout) = syncer
                    .wake
                    .wait_timeout(waiting, std::time::Duration::from_secs(1))
                    .expect("syncer lock");
                waiting = w;
                if timeout.timed_out() && waiting.is_empty() && db.strong_count() == 0 {
                    return;
                }
            }
            std::mem::take(&mut *waiting)
        };
        drop(syncer);
        let result = sync_now(&db);
        for callback in batch {
            let r = result
                .as_ref()
                .map(|_| ())
                .map_err(|e| std::io::Error::other(e.to_string()));
            callback.log_io_completed(r);
        }
    }
}

/// One group's log.
#[derive(Clone)]
pub struct LogStore {
    db: Db,
    group: GroupId,
    syncer: Arc<WalSyncer>,
}

fn entry_key(group: GroupId, index: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&group.0.to_be_bytes());
    k[4..].copy_from_slice(&index.to_be_bytes());
    k
}

fn index_of(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[4..12].try_into().expect("log keys are 12 bytes"))
}

pub(crate) fn io_err(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::<u64>::write(&std::io::Error::other(e.to_string())).into()
}

fn read_err(e: impl std::fmt::Display) -> StorageError<u64> {
    StorageIOError::<u64>::read(&std::io::Error::other(e.to_string())).into()
}

/// Run blocking store work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError<u64>> + Send + 'static,
) -> Result<T, StorageError<u64>> {
    crate::blocking::spawn(f).await.map_err(io_err)?
}

impl LogStore {
    /// The log of `group`, made durable by `syncer`.
    pub fn new(db: Db, group: GroupId, syncer: Arc<WalSyncer>) -> Self {
        Self { db, group, syncer }
    }

    fn get_state<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
    ) -> Result<Option<T>, StorageError<u64>> {
        match self
            .db
            .get(Cf::RaftState, &state_key(self.group, what))
            .map_err(read_err)?
        {
            Some(v) => Ok(Some(record::decode("raft state", &v).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    fn put_state<T: serde::Serialize>(
        &self,
        what: &str,
        value: &T,
    ) -> Result<(), StorageError<u64>> {
        self.db
            .put(
                Cf::RaftState,
                &state_key(self.group, what),
                &record::encode(value),
                true,
            )
            .map_err(io_err)
    }

    fn last_entry_id(&self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        let end = entry_key(self.group, u64::MAX);
        let mut iter = self.db.iter(Cf::RaftLog, db::From::Reverse(&end));
        match iter.next() {
            Some(Ok((k, v))) if k.starts_with(&self.group.0.to_be_bytes()) => {
                let e: Entry<TypeConfig> = record::decode("raft entry", &v).map_err(read_err)?;
                Ok(Some(e.log_id))
            }
            Some(Err(e)) => Err(read_err(e)),
            _ => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<u64>> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Some(i + 1),
            Bound::Excluded(i) => Some(*i),
            Bound::Unbounded => None,
        };
        // Inline: the entries asked for are nearly always the newest ones,
        // in the memtable; a trip to the blocking pool costs more than the
        // read on a busy machine.
        let me = self.clone();
        (move || {
            let from = entry_key(me.group, start);
            let mut out = Vec::new();
            for item in me.db.iter(Cf::RaftLog, db::From::Forward(&from)) {
                let (k, v) = item.map_err(read_err)?;
                if !k.starts_with(&me.group.0.to_be_bytes()) {
                    break;
                }
                if end.is_some_and(|e| index_of(&k) >= e) {
                    break;
                }
                out.push(record::decode("raft entry", &v).map_err(read_err)?);
            }
            Ok(out)
        })()
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<u64>> {
        let me = self.clone();
        blocking(move || {
            let last_purged: Option<LogId<u64>> = me.get_state("purged")?;
            let last = me.last_entry_id()?.or(last_purged);
            Ok(LogState {
                last_purged_log_id: last_purged,
                last_log_id: last,
            })
        })
        .await
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError<u64>> {
        let (me, vote) = (self.clone(), *vote);
        blocking(move || me.put_state("vote", &vote)).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError<u64>> {
        let me = self.clone();
        blocking(move || me.get_state("vote")).await
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<u64>>,
    ) -> Result<(), StorageError<u64>> {
        let me = self.clone();
        blocking(move || me.put_state("committed", &committed)).await
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<u64>>, StorageError<u64>> {
        let me = self.clone();
        blocking(move || Ok(me.get_state::<Option<LogId<u64>>>("committed")?.flatten())).await
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<u64>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Written now (readable at once), durable when the syncer says so.
        let mut batch = Batch::default();
        for e in entries {
            batch.put(
                Cf::RaftLog,
                entry_key(self.group, e.log_id.index),
                record::encode(&e),
            );
        }
        self.db.write(batch, false).map_err(io_err)?;
        self.syncer.wait_for_sync(callback);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let me = self.clone();
        blocking(move || {
            let mut batch = Batch::default();
            batch.delete_range(
                Cf::RaftLog,
                entry_key(me.group, log_id.index),
                entry_key(me.group, u64::MAX),
            );
            me.db.write(batch, true).map_err(io_err)
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId<u64>) -> Result<(), StorageError<u64>> {
        let me = self.clone();
        blocking(move || {
            // The state machine's writes are not synced one by one: make
            // every one before this point durable before the log entries
            // that could replay them go.
            me.db.sync().map_err(io_err)?;
            me.put_state("purged", &log_id)?;
            let mut batch = Batch::default();
            batch.delete_range(
                Cf::RaftLog,
                entry_key(me.group, 0),
                entry_key(me.group, log_id.index + 1),
            );
            me.db.write(batch, true).map_err(io_err)
        })
        .await
    }
}
