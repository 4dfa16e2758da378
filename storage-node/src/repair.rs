//! Repair hints and their worker.
//!
//! A write that could not place some shards of a chunk (their nodes were
//! down) leaves a hint on a node that holds one of its shards: the chunk
//! and the shard indices missing. That node's worker goes through its hints
//! every [`REPAIR_INTERVAL`], a bounded batch at a time from a cursor, and
//! rebuilds the missing shards once their nodes answer; a chunk that cannot
//! be read yet stays for the next pass without stopping the others. Shards
//! lost without a write noticing (a disk that rots) wait for the scrubber
//! and the repair of the next issue.

use crate::chunks::{Placement, codec_for, read_chunk, rewrite_shards};
use crate::client::NodeClient;
use crate::db::{self, CF_REPAIR};
use crate::table::groups::Tables;
use cairn::codec::ErasureProfile;
use cairn::record::{self, ChunkRef};
use rocksdb::{DB, Direction, IteratorMode};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Time between two passes over the hints.
pub const REPAIR_INTERVAL: Duration = Duration::from_secs(2);
/// Hints looked at per pass.
pub const REPAIR_BATCH: usize = 64;

/// A chunk a write left below full redundancy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairHint {
    /// The chunk.
    pub chunk: ChunkRef,
    /// The profile it was encoded with.
    pub profile: ErasureProfile,
    /// Shard indices still to write.
    pub missing: Vec<u8>,
    /// When the write happened, ms since the epoch.
    pub created_ms: u64,
}

/// Keep a hint (synced).
pub fn put_hint(db: &DB, hint: &RepairHint) -> crate::Result<()> {
    let cf = db.cf_handle(CF_REPAIR).expect("repair column family");
    db.put_cf_opt(
        &cf,
        hint.chunk.id.0,
        record::encode(hint),
        &db::write_options(true),
    )?;
    Ok(())
}

/// Up to `limit` hints after the chunk id `after`, in id order.
fn hints_after(db: &DB, after: Option<[u8; 32]>, limit: usize) -> Vec<RepairHint> {
    let cf = db.cf_handle(CF_REPAIR).expect("repair column family");
    let mode = match &after {
        Some(a) => IteratorMode::From(a, Direction::Forward),
        None => IteratorMode::Start,
    };
    db.iterator_cf(&cf, mode)
        .flatten()
        .filter(|(k, _)| after.is_none_or(|a| k.as_ref() != a))
        .filter_map(|(_, v)| record::decode::<RepairHint>("repair hint", &v).ok())
        .take(limit)
        .collect()
}

/// Number of hints held.
pub fn hint_count(db: &DB) -> u64 {
    let cf = db.cf_handle(CF_REPAIR).expect("repair column family");
    db.iterator_cf(&cf, IteratorMode::Start).count() as u64
}

/// Run the worker until the tables go away.
pub fn spawn_worker(db: Arc<DB>, tables: Weak<Tables>, client: NodeClient) {
    tokio::spawn(async move {
        let mut cursor: Option<[u8; 32]> = None;
        let mut placement: Option<Arc<Placement>> = None;
        loop {
            tokio::time::sleep(REPAIR_INTERVAL).await;
            let Some(map) = tables.upgrade().and_then(|t| t.map()) else {
                if tables.strong_count() == 0 {
                    return;
                }
                continue;
            };
            if placement
                .as_ref()
                .is_none_or(|p| p.layout.version != map.version)
            {
                match Placement::new(map.as_ref().clone()) {
                    Ok(p) => placement = Some(Arc::new(p)),
                    Err(_) => continue,
                }
            }
            let p = placement.clone().expect("set above");
            let batch = {
                let db = db.clone();
                tokio::task::spawn_blocking(move || hints_after(&db, cursor, REPAIR_BATCH))
                    .await
                    .unwrap_or_default()
            };
            cursor = if batch.len() < REPAIR_BATCH {
                None
            } else {
                batch.last().map(|h| h.chunk.id.0)
            };
            for hint in batch {
                repair_one(&db, &client, &p, hint).await;
            }
        }
    });
}

/// Rebuild what one hint says is missing, where the nodes answer.
async fn repair_one(
    db: &Arc<DB>,
    client: &NodeClient,
    placement: &Arc<Placement>,
    hint: RepairHint,
) {
    let id = hint.chunk.id;
    let nodes = placement.table.chunk_nodes(&id);
    let mut still_missing = Vec::new();
    let mut writable = Vec::new();
    for &i in &hint.missing {
        let Some(node) = nodes.get(usize::from(i)) else {
            continue;
        };
        match client.rpc_has_shard(placement.addr(*node), &id, i).await {
            Ok(true) => {}
            Ok(false) => writable.push(usize::from(i)),
            Err(_) => still_missing.push(i),
        }
    }
    if !writable.is_empty() {
        let rebuilt = match read_chunk(client, placement, hint.profile, hint.chunk).await {
            Ok(bytes) => match codec_for(hint.profile) {
                Ok(codec) => rewrite_shards(client, placement, codec, id, bytes, &writable).await,
                Err(_) => Vec::new(),
            },
            Err(e) => {
                tracing::warn!(%id, error = %e, "chunk not readable yet; repair retried later");
                Vec::new()
            }
        };
        for i in writable {
            if !rebuilt.contains(&i) {
                still_missing.push(i as u8);
            }
        }
        if !rebuilt.is_empty() {
            tracing::info!(%id, shards = ?rebuilt, "shards repaired from a hint");
        }
    }
    let db = db.clone();
    let _ = tokio::task::spawn_blocking(move || {
        let cf = db.cf_handle(CF_REPAIR).expect("repair column family");
        if still_missing.is_empty() {
            let _ = db.delete_cf_opt(&cf, id.0, &db::write_options(true));
        } else if still_missing.len() < hint.missing.len() {
            let _ = put_hint(
                &db,
                &RepairHint {
                    missing: still_missing,
                    ..hint
                },
            );
        }
    })
    .await;
}
