//! Where a group's records live in the node's RocksDB: the `meta` column
//! family, every key prefixed with the group id, so one group's records
//! are one contiguous range (what a snapshot copies).

use crate::db::{self, Cf, Db, Kv};
use cairn::command::KvRead;
use cairn::record::{GroupId, MetaKey, Table};

/// The storage key of a record of `group`.
pub fn record_key(group: GroupId, key: &MetaKey) -> Vec<u8> {
    let mut out = group.0.to_be_bytes().to_vec();
    out.extend_from_slice(&key.storage_key());
    out
}

/// The first key of a group's records.
pub fn group_start(group: GroupId) -> Vec<u8> {
    group.0.to_be_bytes().to_vec()
}

/// The first key after a group's records.
pub fn group_end(group: GroupId) -> Vec<u8> {
    (u64::from(group.0) + 1).to_be_bytes()[4..].to_vec()
}

/// A key of a group's Raft state (vote, committed, applied...).
pub fn state_key(group: GroupId, what: &str) -> Vec<u8> {
    let mut out = group.0.to_be_bytes().to_vec();
    out.extend_from_slice(what.as_bytes());
    out
}

/// The groups that have Raft state on this node.
pub fn hosted_groups(db: &dyn Kv) -> Vec<GroupId> {
    let mut out: Vec<GroupId> = Vec::new();
    for (k, _) in db.iter(Cf::RaftState, db::From::Start).flatten() {
        if k.len() >= 4 {
            let g = GroupId(u32::from_be_bytes(k[..4].try_into().expect("4 bytes")));
            if out.last() != Some(&g) {
                out.push(g);
            }
        }
    }
    out
}

/// The committed records of one group, read straight from the store.
#[derive(Clone)]
pub struct GroupView {
    db: Db,
    group: GroupId,
}

impl GroupView {
    /// The records of `group`.
    pub fn new(db: Db, group: GroupId) -> Self {
        Self { db, group }
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Visit records of `(table, partition_key)` from the first sort key
    /// starting with `prefix` after `after`, in order, while `visit`
    /// returns true.
    pub fn each(
        &self,
        table: Table,
        partition_key: &str,
        prefix: &str,
        after: Option<&str>,
        mut visit: impl FnMut(&str, &[u8]) -> bool,
    ) {
        let base = record_key(self.group, &MetaKey::new(table, partition_key, ""));
        let mut full = base.clone();
        full.extend_from_slice(prefix.as_bytes());
        let mut start = full.clone();
        if let Some(a) = after {
            let mut k = base.clone();
            k.extend_from_slice(a.as_bytes());
            if k > start {
                start = k;
            }
        }
        for item in self.db.iter(Cf::Meta, db::From::Forward(&start)) {
            let Ok((k, v)) = item else { break };
            if !k.starts_with(&full) {
                break;
            }
            let sort_key = &k[base.len()..];
            if after.is_some_and(|a| sort_key <= a.as_bytes()) {
                continue;
            }
            let Ok(sort_key) = std::str::from_utf8(sort_key) else {
                continue;
            };
            if !visit(sort_key, &v) {
                break;
            }
        }
    }
}

impl KvRead for GroupView {
    fn get(&self, key: &MetaKey) -> Option<Vec<u8>> {
        // A read error is a failing disk: the node cannot serve this group
        // correctly at all, and must not apply on a guess.
        self.db
            .get(Cf::Meta, &record_key(self.group, key))
            .expect("reading the metadata column family")
    }

    fn scan(
        &self,
        table: Table,
        partition_key: &str,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        if limit == 0 {
            return out;
        }
        self.each(table, partition_key, prefix, after, |k, v| {
            out.push((k.to_owned(), v.to_vec()));
            out.len() < limit
        });
        out
    }
}
