//! Replicated metadata: majority writes and reads over the `2m + 1`
//! replicas of a record's partition, last-writer-wins by hybrid-logical
//! clock, read repair of stale replicas.
//!
//! Majority writes and majority reads intersect, so a read that starts after
//! a write was acknowledged sees it (or something newer).

use crate::cluster::{Cluster, Placement};
use crate::error::{Error, Result};
use cairn::hlc::{Hlc, OffsetClock, Timestamp};
use cairn::id::NodeId;
use cairn::record::{self, MetaKey, Table, Versioned};
use cairn::rpc::{MAX_SCAN_LIMIT, MetaScanRequest};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The metadata client of one gateway.
pub struct Meta {
    cluster: Arc<Cluster>,
    hlc: Hlc<OffsetClock>,
}

/// One page of a merged range scan.
pub struct ScanPage {
    /// Live records `(sort key, value)` in order.
    pub entries: Vec<(String, Vec<u8>)>,
    /// Where the next page starts (the last sort key looked at), when there
    /// may be more.
    pub next_after: Option<String>,
}

/// Times a metadata write is re-stamped after losing to a newer record.
pub const MAX_RESTAMPS: usize = 3;

fn majority(n: usize) -> usize {
    n / 2 + 1
}

impl Meta {
    /// A client writing with timestamps of `writer`, its clock shifted by
    /// `clock_offset_ms` (0 outside tests).
    pub fn new(cluster: Arc<Cluster>, writer: u64, clock_offset_ms: i64) -> Self {
        Self {
            cluster,
            hlc: Hlc::new(
                OffsetClock {
                    offset_ms: clock_offset_ms,
                },
                writer,
            ),
        }
    }

    fn replicas(placement: &Placement, key_bytes: &[u8]) -> Vec<(NodeId, String)> {
        placement
            .table
            .metadata_nodes(key_bytes)
            .iter()
            .map(|id| (*id, placement.addr(*id).to_owned()))
            .collect()
    }

    /// Write (or, with `None`, delete) a record on a majority of its replicas.
    ///
    /// A replica may already hold a record with a larger timestamp: written
    /// by a gateway whose clock runs ahead, or concurrently. If any replica
    /// of the answering majority reports one, the write would be invisible
    /// to readers despite its majority, so it is re-stamped past that
    /// timestamp and sent again (at most [`MAX_RESTAMPS`] times). A write
    /// acknowledged before this one started is always on one of the
    /// answering majority, so this write wins over it, as S3 promises.
    pub async fn put_raw(&self, key: MetaKey, value: Option<Vec<u8>>) -> Result<Timestamp> {
        for _ in 0..=MAX_RESTAMPS {
            let ts = self.hlc.now();
            match self
                .write_versioned(
                    &key,
                    Versioned {
                        ts,
                        value: value.clone(),
                    },
                )
                .await?
            {
                None => return Ok(ts),
                Some(newer) => self.hlc.observe(newer),
            }
        }
        Err(Error::Quorum(format!(
            "metadata write {}/{}: still older than a replica's record after {MAX_RESTAMPS} re-stamps",
            key.table as u8, key.partition_key
        )))
    }

    /// Send one versioned write; `Ok(Some(ts))` when a replica of the
    /// answering majority holds a newer record at `ts`.
    async fn write_versioned(
        &self,
        key: &MetaKey,
        versioned: Versioned,
    ) -> Result<Option<Timestamp>> {
        let placement = self.cluster.placement()?;
        let replicas = Self::replicas(&placement, &key.partition_bytes());
        let need = majority(replicas.len());
        let ours = versioned.ts;
        let mut pending: FuturesUnordered<_> = replicas
            .into_iter()
            .map(|(_, addr)| {
                let client = self.cluster.client.clone();
                let write = vec![(key.clone(), versioned.clone())];
                // Each replica write runs to completion on its own task even
                // after the quorum answered, so slow replicas still converge.
                let task = tokio::spawn(async move { client.rpc_meta_write(&addr, write).await });
                async move {
                    task.await
                        .map_err(|e| Error::Quorum(e.to_string()))?
                        .map_err(Error::from)
                }
            })
            .collect();
        let (mut acks, mut last_error, mut newer) = (0, None, None::<Timestamp>);
        while let Some(r) = pending.next().await {
            match r {
                Ok(kept) => {
                    if let Some(Some(ts)) = kept.first()
                        && *ts > ours
                    {
                        newer = Some(newer.map_or(*ts, |n| n.max(*ts)));
                    }
                    acks += 1;
                    if acks >= need {
                        return Ok(newer);
                    }
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        Err(Error::Quorum(format!(
            "metadata write {}/{}: {acks} of {need} replicas acknowledged ({})",
            key.table as u8,
            key.partition_key,
            last_error.unwrap_or_default()
        )))
    }

    /// Write a typed record.
    pub async fn put<T: Serialize>(&self, key: MetaKey, value: &T) -> Result<Timestamp> {
        self.put_raw(key, Some(record::encode(value))).await
    }

    /// Delete a record (a tombstone newer than every earlier write).
    pub async fn delete(&self, key: MetaKey) -> Result<Timestamp> {
        self.put_raw(key, None).await
    }

    /// Read a record from a majority; the newest value wins, and stale
    /// replicas that answered are repaired in the background.
    pub async fn get_raw(&self, key: &MetaKey) -> Result<Option<Vec<u8>>> {
        let placement = self.cluster.placement()?;
        let replicas = Self::replicas(&placement, &key.partition_bytes());
        let need = majority(replicas.len());
        let mut pending: FuturesUnordered<_> = replicas
            .iter()
            .map(|(_, addr)| {
                let client = &self.cluster.client;
                let k = key.clone();
                async move { (addr.clone(), client.rpc_meta_read(addr, vec![k]).await) }
            })
            .collect();
        let mut answers: Vec<(String, Option<Versioned>)> = Vec::new();
        let mut last_error = None;
        while let Some((addr, r)) = pending.next().await {
            match r {
                Ok(mut values) if values.len() == 1 => {
                    answers.push((addr, values.pop().expect("one value")));
                    if answers.len() >= need {
                        break;
                    }
                }
                Ok(_) => last_error = Some("malformed answer".to_owned()),
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        if answers.len() < need {
            return Err(Error::Quorum(format!(
                "metadata read: {} of {need} replicas answered ({})",
                answers.len(),
                last_error.unwrap_or_default()
            )));
        }
        let newest = answers
            .iter()
            .filter_map(|(_, v)| v.clone())
            .max_by_key(|v| v.ts);
        if let Some(newest) = &newest {
            self.hlc.observe(newest.ts);
            for (addr, v) in &answers {
                if v.as_ref().map(|v| v.ts) != Some(newest.ts) {
                    let client = self.cluster.client.clone();
                    let (addr, write) = (addr.clone(), vec![(key.clone(), newest.clone())]);
                    tokio::spawn(async move {
                        if let Err(e) = client.rpc_meta_write(&addr, write).await {
                            tracing::debug!(error = %e, "read repair failed");
                        }
                    });
                }
            }
        }
        Ok(newest.and_then(|v| v.value))
    }

    /// Read and decode a typed record.
    pub async fn get<T: DeserializeOwned>(&self, key: &MetaKey) -> Result<Option<T>> {
        match self.get_raw(key).await? {
            Some(bytes) => Ok(Some(record::decode(table_name(key.table), &bytes)?)),
            None => Ok(None),
        }
    }

    /// One page of an ordered scan of a partition key, merged over a majority
    /// of replicas, tombstones dropped. May return fewer than `limit` live
    /// entries with `next_after` set: callers loop.
    pub async fn scan(
        &self,
        table: Table,
        partition_key: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<ScanPage> {
        let limit = limit.clamp(1, MAX_SCAN_LIMIT);
        let placement = self.cluster.placement()?;
        let key_bytes = MetaKey::new(table, partition_key, "").partition_bytes();
        let replicas = Self::replicas(&placement, &key_bytes);
        let need = majority(replicas.len());
        let req = MetaScanRequest {
            table,
            partition_key: partition_key.to_owned(),
            prefix: prefix.to_owned(),
            start_after: start_after.map(str::to_owned),
            limit,
        };
        let mut pending: FuturesUnordered<_> = replicas
            .iter()
            .map(|(_, addr)| {
                let client = &self.cluster.client;
                let req = &req;
                async move { client.rpc_meta_scan(addr, req).await }
            })
            .collect();
        let mut answers = Vec::new();
        let mut last_error = None;
        while let Some(r) = pending.next().await {
            match r {
                Ok(a) => {
                    answers.push(a);
                    if answers.len() >= need {
                        break;
                    }
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        if answers.len() < need {
            return Err(Error::Quorum(format!(
                "metadata scan: {} of {need} replicas answered ({})",
                answers.len(),
                last_error.unwrap_or_default()
            )));
        }
        // Only keys up to the smallest "last key" of a truncated answer are
        // known to be complete across the answers.
        let cut: Option<String> = answers
            .iter()
            .filter(|a| a.truncated)
            .filter_map(|a| a.entries.last().map(|e| e.0.clone()))
            .min();
        let mut merged: BTreeMap<String, Versioned> = BTreeMap::new();
        for answer in answers {
            for (k, v) in answer.entries {
                if cut.as_ref().is_some_and(|c| &k > c) {
                    continue;
                }
                match merged.get(&k) {
                    Some(old) if old.ts >= v.ts => {}
                    _ => {
                        merged.insert(k, v);
                    }
                }
            }
        }
        let next_after = cut.clone();
        let entries = merged
            .into_iter()
            .filter_map(|(k, v)| v.value.map(|value| (k, value)))
            .collect();
        Ok(ScanPage {
            entries,
            next_after,
        })
    }
}

impl Meta {
    /// Every live record of a partition key after `start_after`, decoded,
    /// in order: at most `limit`, and whether more were left.
    pub async fn scan_all<T: DeserializeOwned>(
        &self,
        table: Table,
        partition_key: &str,
        start_after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<(String, T)>, bool)> {
        let mut out = Vec::new();
        let mut cursor = start_after;
        loop {
            let page = self
                .scan(table, partition_key, "", cursor.as_deref(), MAX_SCAN_LIMIT)
                .await?;
            for (key, bytes) in page.entries {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push((key, record::decode(table_name(table), &bytes)?));
            }
            match page.next_after {
                Some(next) => cursor = Some(next),
                None => return Ok((out, false)),
            }
        }
    }
}

/// Name of a table in error messages.
pub fn table_name(table: Table) -> &'static str {
    match table {
        Table::Buckets => "bucket record",
        Table::AccessKeys => "access key record",
        Table::Objects => "object record",
        Table::Uploads => "upload record",
        Table::Parts => "part record",
        Table::Cluster => "cluster record",
        Table::RepairHints => "repair hint",
    }
}
