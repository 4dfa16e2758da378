//! Chunks on the cluster: writing a chunk's shards to its placement with a
//! write quorum, reading a chunk back from its shards (parity and
//! reconstruction when data shards are missing or corrupt), and rewriting
//! shards found missing. Gateways use it for PUT and GET, node workers for
//! repair.

use crate::client::NodeClient;
use crate::error::{Error, Result};
use bytes::{Bytes, BytesMut};
use cairn::codec::{Codec, ErasureProfile, ReedSolomonCodec, ShardGeometry};
use cairn::id::{ChunkId, NodeId};
use cairn::layout::{Layout, PlacementTable};
use cairn::record::ChunkRef;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// After a chunk's write quorum is reached, time given to the remaining
/// shard writes before the PUT moves on (they still finish in the background).
pub const STRAGGLER_GRACE: Duration = Duration::from_millis(500);

/// A cluster map with its placement table and node addresses, built once
/// per map version.
pub struct Placement {
    /// The map.
    pub layout: Layout,
    /// Its table.
    pub table: PlacementTable,
    addrs: BTreeMap<NodeId, String>,
}

impl Placement {
    /// The placement of `layout`.
    pub fn new(layout: Layout) -> Result<Self> {
        let table = PlacementTable::build(&layout)?;
        let addrs = layout
            .nodes
            .iter()
            .map(|n| (n.id, n.addr.clone()))
            .collect();
        Ok(Self {
            layout,
            table,
            addrs,
        })
    }

    /// Address of a node of the layout.
    pub fn addr(&self, id: NodeId) -> &str {
        self.addrs.get(&id).map(String::as_str).unwrap_or("")
    }
}

/// The codec of a profile.
pub fn codec_for(profile: ErasureProfile) -> Result<Arc<dyn Codec>> {
    Ok(Arc::new(ReedSolomonCodec::new(profile)?))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    crate::blocking::spawn(f)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(e)))
}

/// Write a chunk's shards to its placement, skipping the write entirely when
/// every shard is already there (deduplication), and succeed once the write
/// quorum of shards is durable. Returns the shard indices that did not reach
/// their nodes (in time), and the index of one that did.
pub async fn store_chunk(
    client: &NodeClient,
    placement: &Placement,
    codec: Arc<dyn Codec>,
    id: ChunkId,
    chunk: Bytes,
) -> Result<Stored> {
    let profile = codec.profile();
    let nodes = placement.table.chunk_nodes(&id);
    assert_eq!(nodes.len(), profile.total_shards());
    // Dedup probe: ask shard 0's node first, and the others only when it
    // has it, so new data costs one probe per chunk rather than k + m.
    let has = |i: usize| client.rpc_has_shard(placement.addr(nodes[i]), &id, i as u8);
    let missing: Vec<usize> = if matches!(has(0).await, Ok(true)) {
        let rest = futures::future::join_all((1..nodes.len()).map(has)).await;
        (1..nodes.len())
            .zip(rest)
            .filter(|(_, p)| !matches!(p, Ok(true)))
            .map(|(i, _)| i)
            .collect()
    } else {
        (0..nodes.len()).collect()
    };
    if missing.is_empty() {
        metrics::counter!("cairn_gateway_dedup_chunks_total").increment(1);
        return Ok(Stored {
            missing: Vec::new(),
            written: Some(0),
        });
    }
    let already = profile.total_shards() - missing.len();
    let geometry = ShardGeometry::reed_solomon(profile, chunk.len() as u64);
    // The chunk is dropped once encoded; each shard buffer moves into a
    // `Bytes` and is shared with its request, never copied.
    let mut shards: Vec<Option<Bytes>> = blocking(move || codec.encode(&chunk))
        .await??
        .into_iter()
        .map(|s| Some(Bytes::from(s)))
        .collect();
    let mut writes: FuturesUnordered<_> = missing
        .iter()
        .map(|&i| {
            let client = client.clone();
            let addr = placement.addr(nodes[i]).to_owned();
            let shard = shards[i].take().expect("each shard is sent once");
            let task = tokio::spawn(async move {
                client
                    .rpc_put_shard(&addr, &id, i as u8, &geometry, shard)
                    .await
            });
            async move {
                let r = task
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()));
                (i, r)
            }
        })
        .collect();
    drop(shards);
    let need = profile.write_quorum();
    let mut ok = already;
    let mut written: Vec<usize> = Vec::new();
    let mut last_error = None;
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d, writes.next()).await {
                Ok(n) => n,
                Err(_) => break,
            },
            None => writes.next().await,
        };
        match next {
            None => break,
            Some((i, Ok(()))) => {
                ok += 1;
                written.push(i);
                if ok >= need && deadline.is_none() {
                    deadline = Some(tokio::time::Instant::now() + STRAGGLER_GRACE);
                }
            }
            Some((_, Err(e))) => last_error = Some(e),
        }
    }
    if ok < need {
        return Err(Error::Unavailable(format!(
            "chunk {id}: {ok} of {need} shards written ({})",
            last_error.unwrap_or_default()
        )));
    }
    let not_written: Vec<usize> = missing
        .into_iter()
        .filter(|i| !written.contains(i))
        .collect();
    if !not_written.is_empty() {
        metrics::counter!("cairn_gateway_degraded_chunk_writes_total").increment(1);
        tracing::warn!(%id, ok, total = profile.total_shards(), "chunk written below full redundancy");
    }
    Ok(Stored {
        missing: not_written,
        written: written.first().copied().or((already > 0).then_some(0)),
    })
}

/// What [`store_chunk`] did.
#[derive(Debug, Clone)]
pub struct Stored {
    /// Shard indices that did not reach their nodes.
    pub missing: Vec<usize>,
    /// A shard index that is on its node.
    pub written: Option<usize>,
}

/// Read one chunk: the `k` data shards when they are all there and intact,
/// parity and reconstruction otherwise. Verified against its id. Shards
/// found missing or corrupt on nodes that answered are rewritten in the
/// background.
pub async fn read_chunk(
    client: &NodeClient,
    placement: &Arc<Placement>,
    profile: ErasureProfile,
    chunk: ChunkRef,
) -> Result<Bytes> {
    let id = chunk.id;
    let len = chunk.len as usize;
    let nodes = placement.table.chunk_nodes(&id);
    let total = profile.total_shards();
    let k = usize::from(profile.data_shards);
    if nodes.len() < total {
        return Err(Error::Unavailable(format!(
            "chunk {id} was written with {}+{} but the layout places {} shards",
            profile.data_shards,
            profile.parity_shards,
            nodes.len()
        )));
    }
    // Shard `i` is looked for on its owner, then (while a migration goes
    // on) on its earlier owners. A shard its current owner answered for but
    // does not have intact (missing or corrupt) can be rewritten there; one
    // on an unreachable node cannot.
    let fetch = |i: usize| {
        let client = client.clone();
        let holders: Vec<String> = placement
            .table
            .shard_holders(&id, i)
            .into_iter()
            .map(|n| placement.addr(n).to_owned())
            .collect();
        async move {
            let mut repairable = false;
            for (n, addr) in holders.iter().enumerate() {
                match client.rpc_get_shard(addr, &id, i as u8).await {
                    Ok(b) => return (Some(b), repairable),
                    Err(e) => {
                        if n == 0 {
                            repairable = matches!(
                                e,
                                Error::ShardNotFound { .. } | Error::CorruptShard { .. }
                            );
                        }
                        if n + 1 == holders.len() {
                            tracing::warn!(%id, shard = i, error = %e, "shard unavailable; using parity");
                        }
                    }
                }
            }
            (None, repairable)
        }
    };
    let (mut slots, mut repairable): (Vec<Option<Bytes>>, Vec<bool>) =
        futures::future::join_all((0..k).map(fetch))
            .await
            .into_iter()
            .unzip();
    if slots.iter().all(Option::is_some) {
        let data: Vec<Bytes> = slots.iter().map(|s| s.clone().expect("present")).collect();
        let joined = blocking(move || {
            let mut out = BytesMut::with_capacity(len);
            for s in &data {
                let take = (len - out.len()).min(s.len());
                out.extend_from_slice(&s[..take]);
            }
            let out = out.freeze();
            id.matches(&out).then_some(out)
        })
        .await?;
        if let Some(bytes) = joined {
            return Ok(bytes);
        }
        tracing::error!(%id, "data shards passed their checksums but the chunk does not match its id");
    }
    let (parity, parity_repairable): (Vec<Option<Bytes>>, Vec<bool>) =
        futures::future::join_all((k..total).map(fetch))
            .await
            .into_iter()
            .unzip();
    slots.extend(parity);
    repairable.extend(parity_repairable);
    let codec = codec_for(profile)?;
    let shards: Vec<Option<Vec<u8>>> = slots.into_iter().map(|s| s.map(|b| b.to_vec())).collect();
    let c = codec.clone();
    let bytes = Bytes::from(blocking(move || c.decode(id, len, shards)).await??);
    metrics::counter!("cairn_gateway_reconstructed_chunks_total").increment(1);
    let to_repair: Vec<usize> = (0..total).filter(|&i| repairable[i]).collect();
    if !to_repair.is_empty() {
        let (client, placement) = (client.clone(), placement.clone());
        let bytes = bytes.clone();
        tokio::spawn(async move {
            let written = rewrite_shards(&client, &placement, codec, id, bytes, &to_repair).await;
            tracing::info!(%id, written = written.len(), "shards repaired on read");
        });
    }
    Ok(bytes)
}

/// Encode a verified chunk again and write the shards `indices` to their
/// nodes; returns the indices written.
pub async fn rewrite_shards(
    client: &NodeClient,
    placement: &Placement,
    codec: Arc<dyn Codec>,
    id: ChunkId,
    chunk: Bytes,
    indices: &[usize],
) -> Vec<usize> {
    let nodes = placement.table.chunk_nodes(&id);
    let geometry = ShardGeometry::reed_solomon(codec.profile(), chunk.len() as u64);
    let mut shards: Vec<Option<Bytes>> = match blocking(move || codec.encode(&chunk)).await {
        Ok(Ok(shards)) => shards.into_iter().map(|s| Some(Bytes::from(s))).collect(),
        _ => return Vec::new(),
    };
    let mut written = Vec::new();
    for &i in indices {
        let (Some(node), Some(shard)) = (nodes.get(i), shards.get_mut(i).and_then(Option::take))
        else {
            continue;
        };
        let addr = placement.addr(*node);
        match client
            .rpc_put_shard(addr, &id, i as u8, &geometry, shard)
            .await
        {
            Ok(()) => {
                metrics::counter!("cairn_repaired_shards_total").increment(1);
                written.push(i);
            }
            Err(e) => tracing::warn!(%id, shard = i, %addr, error = %e, "shard rewrite failed"),
        }
    }
    written
}
