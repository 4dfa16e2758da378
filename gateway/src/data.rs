//! The data pipelines: a body stream becomes erasure-coded chunks on the
//! storage nodes (PUT), and chunks become a verified byte stream (GET).
//!
//! Memory per request is bounded by a few chunks whatever the object size:
//! a PUT holds at most [`PUT_PIPELINE_DEPTH`] chunks (plus parity) in flight,
//! a GET at most [`GET_PREFETCH_CHUNKS`] decoded chunks ahead of the client.

use crate::checksum::{Algorithm, BodyHashes};
use crate::cluster::{Cluster, Placement};
use crate::config::{GET_PREFETCH_CHUNKS, PUT_PIPELINE_DEPTH};
use crate::error::{Error, Result};
use crate::meta::Meta;
use bytes::{Bytes, BytesMut};
use cairn::codec::{Codec, ErasureProfile, ReedSolomonCodec};
use cairn::id::ChunkId;
use cairn::record::{ChunkRef, MetaKey, ObjectData, RepairHint, Table};
use futures::stream::{BoxStream, FuturesUnordered};
use futures::{Stream, StreamExt};
use md5::Digest;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

/// After a chunk's write quorum is reached, time given to the remaining
/// shard writes before the PUT moves on (they still finish in the background).
pub const STRAGGLER_GRACE: Duration = Duration::from_millis(500);

/// What a write produced.
pub struct Written {
    /// Where the bytes are.
    pub data: ObjectData,
    /// How many bytes.
    pub size: u64,
    /// MD5 of the bytes.
    pub md5: [u8; 16],
    /// The additional checksum, when one was requested.
    pub checksum: Option<(Algorithm, Vec<u8>)>,
}

/// How to store one body.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// The additional checksum to compute, if any.
    pub algorithm: Option<Algorithm>,
    /// Refuse (`EntityTooLarge`) past this many bytes.
    pub max_len: u64,
    /// Whether a small body may live inline in its manifest.
    pub allow_inline: bool,
    /// The length the client announced, if any.
    pub size_hint: Option<u64>,
}

/// The data pipelines of one gateway.
pub struct DataPath {
    cluster: Arc<Cluster>,
    meta: Arc<Meta>,
    chunk_size: usize,
    inline_threshold: usize,
    transfers: Arc<tokio::sync::Semaphore>,
}

fn codec_for(profile: ErasureProfile) -> Result<Arc<dyn Codec>> {
    Ok(Arc::new(ReedSolomonCodec::new(profile)?))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Body(format!("worker task failed: {e}")))
}

impl DataPath {
    /// Pipelines over `cluster`, at most `max_transfers` chunked PUTs and
    /// GETs at once.
    pub fn new(
        cluster: Arc<Cluster>,
        meta: Arc<Meta>,
        chunk_size: usize,
        inline_threshold: usize,
        max_transfers: usize,
    ) -> Self {
        assert!(chunk_size > 0 && inline_threshold <= chunk_size && max_transfers > 0);
        Self {
            cluster,
            meta,
            chunk_size,
            inline_threshold,
            transfers: Arc::new(tokio::sync::Semaphore::new(max_transfers)),
        }
    }

    /// A transfer slot, or `SlowDown`: past the limit a request is refused at
    /// once (S3 clients back off and retry) rather than queued, so memory
    /// stays bounded by the limit times a few chunks.
    fn transfer_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        self.transfers.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("cairn_gateway_transfers_refused_total").increment(1);
            Error::S3(s3s::s3_error!(SlowDown, "Please reduce your request rate."))
        })
    }

    /// Consume `body`, storing it as chunks (or inline when small and
    /// `allow_inline`). Fails with `EntityTooLarge` past `max_len` bytes.
    /// Nothing is visible to readers until the caller commits a manifest.
    pub async fn write<S, E>(&self, mut body: S, opts: WriteOptions) -> Result<Written>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let WriteOptions {
            algorithm,
            max_len,
            allow_inline,
            size_hint,
        } = opts;
        // Taken before reading when the client announced a body larger than
        // an inline object (so the refusal comes before the upload), else
        // once the body proves to be one.
        let mut slot = match size_hint {
            Some(n) if !allow_inline || n > self.inline_threshold as u64 => {
                Some(self.transfer_slot()?)
            }
            _ => None,
        };
        let mut hashes = BodyHashes::new(algorithm);
        let mut chunks: Vec<ChunkRef> = Vec::new();
        let mut inflight: VecDeque<tokio::task::JoinHandle<Result<()>>> = VecDeque::new();
        let mut leftover: Option<Bytes> = None;
        let mut profile: Option<ErasureProfile> = None;
        let mut total: u64 = 0;
        let mut first = true;
        let abort_all = |inflight: &mut VecDeque<tokio::task::JoinHandle<Result<()>>>| {
            for t in inflight.drain(..) {
                t.abort();
            }
        };
        loop {
            let mut buf = BytesMut::with_capacity(self.chunk_size.min(1 << 20));
            let mut ended = false;
            while buf.len() < self.chunk_size {
                let mut frame = match leftover.take() {
                    Some(b) => b,
                    None => match body.next().await {
                        Some(Ok(b)) => b,
                        Some(Err(e)) => {
                            abort_all(&mut inflight);
                            return Err(Error::Body(e.to_string()));
                        }
                        None => {
                            ended = true;
                            break;
                        }
                    },
                };
                let room = self.chunk_size - buf.len();
                if frame.len() > room {
                    leftover = Some(frame.split_off(room));
                }
                total += frame.len() as u64;
                if total > max_len {
                    abort_all(&mut inflight);
                    return Err(s3s::s3_error!(
                        EntityTooLarge,
                        "Your proposed upload exceeds the maximum allowed size"
                    )
                    .into());
                }
                buf.extend_from_slice(&frame);
            }
            let chunk = buf.freeze();
            if first && ended && allow_inline && chunk.len() <= self.inline_threshold {
                hashes.update(&chunk);
                return Ok(finish(
                    hashes,
                    ObjectData::Inline(chunk.to_vec()),
                    Vec::new(),
                    None,
                ));
            }
            first = false;
            if chunk.is_empty() {
                break;
            }
            if slot.is_none() {
                slot = Some(self.transfer_slot()?);
            }
            let placement = self.cluster.placement()?;
            let p = *profile.get_or_insert(placement.layout.profile);
            let codec = codec_for(p)?;
            let c = chunk.clone();
            let (h, id) = blocking(move || {
                hashes.update(&c);
                (hashes, ChunkId::of(&c))
            })
            .await?;
            hashes = h;
            chunks.push(ChunkRef {
                id,
                len: chunk.len() as u32,
            });
            let cluster = self.cluster.clone();
            let meta = self.meta.clone();
            let chunk_ref = ChunkRef {
                id,
                len: chunk.len() as u32,
            };
            inflight.push_back(tokio::spawn(async move {
                let missing = store_chunk(&cluster, &placement, codec, id, chunk).await?;
                if !missing.is_empty() {
                    record_repair_hint(&meta, chunk_ref, p, missing).await;
                }
                Ok(())
            }));
            if inflight.len() >= PUT_PIPELINE_DEPTH {
                let oldest = inflight.pop_front().expect("non-empty");
                if let Err(e) = join(oldest).await {
                    abort_all(&mut inflight);
                    return Err(e);
                }
            }
            if ended {
                break;
            }
        }
        while let Some(t) = inflight.pop_front() {
            if let Err(e) = join(t).await {
                abort_all(&mut inflight);
                return Err(e);
            }
        }
        let profile = profile.unwrap_or(ErasureProfile {
            data_shards: 1,
            parity_shards: 0,
        });
        Ok(finish(
            hashes,
            ObjectData::Inline(Vec::new()),
            chunks,
            Some(profile),
        ))
    }

    /// Read one chunk: the `k` data shards when they are all there and
    /// intact, parity and reconstruction otherwise. Verified against its id.
    pub async fn read_chunk(&self, profile: ErasureProfile, chunk: ChunkRef) -> Result<Bytes> {
        let placement = self.cluster.placement()?;
        read_chunk(&self.cluster, &placement, profile, chunk).await
    }

    /// The bytes `range` of an object, as a stream of verified pieces. The
    /// first piece is fetched before this returns, so an unreadable object
    /// fails with an S3 error rather than a truncated body.
    pub async fn read_range(
        self: &Arc<Self>,
        data: &ObjectData,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, std::io::Error>>> {
        let (profile, chunks) = match data {
            ObjectData::Inline(bytes) => {
                let piece =
                    Bytes::copy_from_slice(&bytes[range.start as usize..range.end as usize]);
                return Ok(futures::stream::once(async move { Ok(piece) }).boxed());
            }
            ObjectData::Chunks {
                profile, chunks, ..
            } => (*profile, chunks.clone()),
        };
        // (chunk, the part of it inside the range)
        let mut wanted: Vec<(ChunkRef, Range<usize>)> = Vec::new();
        let mut offset = 0u64;
        for c in chunks {
            let (start, end) = (offset, offset + u64::from(c.len));
            offset = end;
            if end <= range.start || start >= range.end {
                continue;
            }
            let from = range.start.max(start) - start;
            let to = range.end.min(end) - start;
            wanted.push((c, from as usize..to as usize));
        }
        // The slot travels with the stream and is freed when the body is
        // done or dropped.
        let slot = self.transfer_slot()?;
        let me = self.clone();
        let mut stream = futures::stream::iter(wanted)
            .map(move |(c, slice)| {
                let me = me.clone();
                async move {
                    let bytes = me.read_chunk(profile, c).await?;
                    Ok::<_, Error>(bytes.slice(slice))
                }
            })
            .buffered(GET_PREFETCH_CHUNKS)
            .map(move |r| {
                let _held = &slot;
                r.map_err(|e| {
                    tracing::error!(error = %e, "object read failed mid-stream");
                    std::io::Error::other(e.to_string())
                })
            })
            .boxed();
        match stream.next().await {
            None => Ok(futures::stream::empty().boxed()),
            Some(Err(e)) => Err(Error::Unreadable(e.to_string())),
            Some(Ok(first)) => Ok(futures::stream::once(async move { Ok(first) })
                .chain(stream)
                .boxed()),
        }
    }
}

fn finish(
    hashes: BodyHashes,
    inline: ObjectData,
    chunks: Vec<ChunkRef>,
    profile: Option<ErasureProfile>,
) -> Written {
    let size = hashes.len;
    let md5: [u8; 16] = hashes.md5.finalize().into();
    let checksum = hashes.checksum.map(|(a, h)| (a, h.finish()));
    let data = match profile {
        None => inline,
        Some(profile) => ObjectData::Chunks {
            codec: cairn::codec::CodecId::ReedSolomonGf8,
            profile,
            chunks,
        },
    };
    Written {
        data,
        size,
        md5,
        checksum,
    }
}

async fn join(t: tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    t.await
        .map_err(|e| Error::Quorum(format!("shard writer failed: {e}")))?
}

/// Write a chunk's shards to its placement, skipping the write entirely when
/// every shard is already there (deduplication), and succeed once the write
/// quorum of shards is durable. Returns the shard indices that did not reach
/// their nodes (in time).
async fn store_chunk(
    cluster: &Arc<Cluster>,
    placement: &Placement,
    codec: Arc<dyn Codec>,
    id: ChunkId,
    chunk: Bytes,
) -> Result<Vec<usize>> {
    let profile = codec.profile();
    let nodes = placement.table.chunk_nodes(&id);
    assert_eq!(nodes.len(), profile.total_shards());
    // Dedup probe: ask shard 0's node first, and the others only when it
    // has it, so new data costs one probe per chunk rather than k + m.
    let has = |i: usize| {
        cluster
            .client
            .rpc_has_shard(placement.addr(nodes[i]), &id, i as u8)
    };
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
        return Ok(Vec::new());
    }
    let already = profile.total_shards() - missing.len();
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
            let client = cluster.client.clone();
            let addr = placement.addr(nodes[i]).to_owned();
            let shard = shards[i].take().expect("each shard is sent once");
            let task =
                tokio::spawn(async move { client.rpc_put_shard(&addr, &id, i as u8, shard).await });
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
        return Err(Error::Quorum(format!(
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
    Ok(not_written)
}

async fn read_chunk(
    cluster: &Arc<Cluster>,
    placement: &Placement,
    profile: ErasureProfile,
    chunk: ChunkRef,
) -> Result<Bytes> {
    let id = chunk.id;
    let len = chunk.len as usize;
    let nodes = placement.table.chunk_nodes(&id);
    let total = profile.total_shards();
    let k = usize::from(profile.data_shards);
    if nodes.len() < total {
        return Err(Error::Unreadable(format!(
            "chunk {id} was written with {}+{} but the layout places {} shards",
            profile.data_shards,
            profile.parity_shards,
            nodes.len()
        )));
    }
    // A shard the node answered for but does not have intact (missing or
    // corrupt) can be rewritten; one on an unreachable node cannot.
    let fetch = |i: usize| {
        let client = cluster.client.clone();
        let addr = placement.addr(nodes[i]).to_owned();
        async move {
            match client.rpc_get_shard(&addr, &id, i as u8).await {
                Ok(b) => (Some(b), false),
                Err(e) => {
                    tracing::warn!(%id, shard = i, error = %e, "shard unavailable; using parity");
                    let repairable = matches!(
                        e,
                        cairn_node::Error::ShardNotFound { .. }
                            | cairn_node::Error::CorruptShard { .. }
                    );
                    (None, repairable)
                }
            }
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
        repair_shards(cluster, placement, codec, id, bytes.clone(), to_repair);
    }
    Ok(bytes)
}

/// Rewrite, in the background, the shards a read found missing or corrupt
/// on nodes that answered: the chunk was just rebuilt and verified against
/// its id, so its shards can be encoded again. Reads repair what they touch;
/// shards no read touches wait for the repair worker.
fn repair_shards(
    cluster: &Arc<Cluster>,
    placement: &Placement,
    codec: Arc<dyn Codec>,
    id: ChunkId,
    chunk: Bytes,
    indices: Vec<usize>,
) {
    let nodes = placement.table.chunk_nodes(&id);
    let targets: Vec<(usize, String)> = indices
        .into_iter()
        .map(|i| (i, placement.addr(nodes[i]).to_owned()))
        .collect();
    let client = cluster.client.clone();
    tokio::spawn(async move {
        let mut shards: Vec<Option<Bytes>> = match blocking(move || codec.encode(&chunk)).await {
            Ok(Ok(shards)) => shards.into_iter().map(|s| Some(Bytes::from(s))).collect(),
            _ => return,
        };
        for (i, addr) in targets {
            let Some(shard) = shards[i].take() else {
                continue;
            };
            match client.rpc_put_shard(&addr, &id, i as u8, shard).await {
                Ok(()) => {
                    metrics::counter!("cairn_gateway_repaired_shards_total").increment(1);
                    tracing::info!(%id, shard = i, %addr, "shard repaired on read");
                }
                Err(e) => tracing::warn!(%id, shard = i, %addr, error = %e, "shard repair failed"),
            }
        }
    });
}

/// Time between two passes over the repair hints.
pub const REPAIR_INTERVAL: Duration = Duration::from_secs(2);
/// Hints looked at per pass.
pub const REPAIR_BATCH: usize = 64;

fn hint_key(chunk: &ChunkId) -> MetaKey {
    MetaKey::new(Table::RepairHints, "", chunk.to_hex())
}

/// Remember that `missing` shards of a chunk did not reach their nodes. A
/// failure here is logged, not returned: the chunk already has its write
/// quorum, and reads repair what they find missing.
async fn record_repair_hint(
    meta: &Meta,
    chunk: ChunkRef,
    profile: ErasureProfile,
    missing: Vec<usize>,
) {
    let hint = RepairHint {
        chunk,
        profile,
        missing: missing.iter().map(|&i| i as u8).collect(),
        created_ms: cairn::hlc::Clock::now_ms(&cairn::hlc::SystemClock),
    };
    if let Err(e) = meta.put(hint_key(&chunk.id), &hint).await {
        tracing::warn!(chunk = %chunk.id, error = %e, "could not record a repair hint");
    }
}

impl DataPath {
    /// Drain repair hints forever, every [`REPAIR_INTERVAL`]. Every gateway
    /// runs one; shard writes are idempotent, so two draining the same hint
    /// do no harm.
    pub fn spawn_repairer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REPAIR_INTERVAL).await;
                let Some(data) = me.upgrade() else { return };
                if let Err(e) = data.repair_pass().await {
                    tracing::debug!(error = %e, "repair pass failed; will retry");
                }
            }
        })
    }

    /// One pass: for each hint, rebuild the shards whose nodes now answer,
    /// and drop the hint once none are missing. Returns the shards written.
    pub async fn repair_pass(&self) -> Result<usize> {
        let (hints, _) = self
            .meta
            .scan_all::<RepairHint>(Table::RepairHints, "", None, REPAIR_BATCH)
            .await?;
        let mut repaired = 0;
        for (_, hint) in hints {
            let placement = self.cluster.placement()?;
            let id = hint.chunk.id;
            let nodes = placement.table.chunk_nodes(&id);
            let mut still_missing = Vec::new();
            let mut writable = Vec::new();
            for &i in &hint.missing {
                let Some(node) = nodes.get(usize::from(i)) else {
                    continue;
                };
                let addr = placement.addr(*node);
                match self.cluster.client.rpc_has_shard(addr, &id, i).await {
                    Ok(true) => {}
                    Ok(false) => writable.push(i),
                    Err(_) => still_missing.push(i),
                }
            }
            if !writable.is_empty() {
                let bytes = read_chunk(&self.cluster, &placement, hint.profile, hint.chunk).await?;
                let codec = codec_for(hint.profile)?;
                let shards = blocking(move || codec.encode(&bytes)).await??;
                let mut shards: Vec<Option<Bytes>> =
                    shards.into_iter().map(|s| Some(Bytes::from(s))).collect();
                for i in writable {
                    let addr = placement.addr(nodes[usize::from(i)]);
                    let Some(shard) = shards[usize::from(i)].take() else {
                        continue;
                    };
                    match self.cluster.client.rpc_put_shard(addr, &id, i, shard).await {
                        Ok(()) => {
                            repaired += 1;
                            metrics::counter!("cairn_gateway_repaired_shards_total").increment(1);
                            tracing::info!(%id, shard = i, %addr, "shard repaired from hint");
                        }
                        Err(_) => still_missing.push(i),
                    }
                }
            }
            if still_missing.is_empty() {
                self.meta.delete(hint_key(&id)).await?;
            } else if still_missing.len() < hint.missing.len() {
                let hint = RepairHint {
                    missing: still_missing,
                    ..hint
                };
                self.meta.put(hint_key(&id), &hint).await?;
            }
        }
        Ok(repaired)
    }
}
