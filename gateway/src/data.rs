//! The data pipelines: a body stream becomes erasure-coded chunks on the
//! storage nodes (PUT), and chunks become a verified byte stream (GET).
//!
//! Memory per request is bounded by a few chunks whatever the object size:
//! a PUT holds at most [`PUT_PIPELINE_DEPTH`] chunks (plus parity) in flight,
//! a GET at most [`GET_PREFETCH_CHUNKS`] decoded chunks ahead of the client.

use crate::checksum::{Algorithm, BodyHashes};
use crate::cluster::Cluster;
use crate::config::{GET_PREFETCH_CHUNKS, PUT_PIPELINE_DEPTH};
use crate::error::{Error, Result};
use crate::meta::Meta;
use crate::refs::WriteSession;
use bytes::{Bytes, BytesMut};
use cairn::codec::ErasureProfile;
use cairn::id::ChunkId;
use cairn::record::{
    BucketId, ChunkRef, ObjectData, PartRecord, Referrer, Segment, SegmentChunks, keys,
};
use cairn_node::chunks::{codec_for, read_chunk, store_chunk};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use md5::Digest;
use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;

/// What a write produced.
pub struct Written {
    /// Where the bytes are: inline bytes, or the chunks and their profile.
    pub data: WrittenData,
    /// How many bytes.
    pub size: u64,
    /// MD5 of the bytes.
    pub md5: [u8; 16],
    /// The additional checksum, when one was requested.
    pub checksum: Option<(Algorithm, Vec<u8>)>,
    /// The chunk references the write took (`None`: no chunks stored).
    pub session: Option<Arc<WriteSession>>,
}

impl Written {
    /// Call before sending the commit that makes these bytes an object's
    /// or a part's.
    pub fn committing(&self) {
        if let Some(s) = &self.session {
            s.committing();
        }
    }

    /// Call with the commit's result.
    pub fn settle(&self, result: &Result<cairn::command::Outcome>) {
        if let Some(s) = &self.session {
            s.settle(result);
        }
    }
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

/// Where written bytes are.
pub enum WrittenData {
    /// A small body, inline.
    Inline(Vec<u8>),
    /// Chunks encoded with `profile` (`None` when there are none).
    Chunks {
        /// Profile.
        profile: Option<ErasureProfile>,
        /// The chunks in order.
        chunks: Vec<ChunkRef>,
    },
}

impl WrittenData {
    /// As an object's data: one segment of chunks.
    pub fn into_object_data(self, size: u64) -> ObjectData {
        match self {
            WrittenData::Inline(bytes) => ObjectData::Inline(bytes),
            WrittenData::Chunks { profile: None, .. } => ObjectData::empty(),
            WrittenData::Chunks {
                profile: Some(profile),
                chunks,
            } => ObjectData::Chunks {
                codec: cairn::codec::CodecId::ReedSolomonGf8,
                profile,
                segments: vec![Segment {
                    len: size,
                    chunks: SegmentChunks::Here(chunks),
                }],
            },
        }
    }
}

/// The data pipelines of one gateway.
pub struct DataPath {
    cluster: Arc<Cluster>,
    meta: Arc<Meta>,
    chunk_size: usize,
    inline_threshold: usize,
    transfers: Arc<tokio::sync::Semaphore>,
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    cairn_node::blocking::spawn(f)
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
    /// `allow_inline`), referenced by `owner` (its referrer and object
    /// key). Fails with `EntityTooLarge` past `max_len` bytes. Nothing is
    /// visible to readers until the caller commits a manifest.
    pub async fn write<S, E>(
        &self,
        mut body: S,
        opts: WriteOptions,
        owner: (Referrer, &str),
    ) -> Result<Written>
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
        let mut session: Option<Arc<WriteSession>> = None;
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
                return Ok(finish(hashes, WrittenData::Inline(chunk.to_vec()), None));
            }
            first = false;
            if chunk.is_empty() {
                break;
            }
            if slot.is_none() {
                slot = Some(self.transfer_slot()?);
            }
            if session.is_none() {
                session =
                    Some(WriteSession::begin(self.meta.clone(), owner.0.clone(), owner.1).await?);
            }
            let refs = session.clone().expect("begun above");
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
            let stored = p.stored_len(chunk.len());
            // The reference comes first: from then on the chunk cannot be
            // deleted, so the shards stored next stay. Shards that did not
            // land are rebuilt by their nodes' repair workers, which find
            // every chunk short of shards.
            inflight.push_back(tokio::spawn(async move {
                refs.reference(vec![(id, stored)], false).await?;
                store_chunk(&cluster.client, &placement, codec, id, chunk).await?;
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
        Ok(finish(
            hashes,
            WrittenData::Chunks { profile, chunks },
            session,
        ))
    }

    /// The bytes `range` of an object of `bucket`, as a stream of verified
    /// pieces. Segments are resolved one at a time as the stream reaches
    /// them (a part's chunk list is read then), so memory stays a few
    /// chunks whatever the object. The first piece is fetched before this
    /// returns, so an unreadable object fails with an S3 error rather than
    /// a truncated body.
    pub async fn read_range(
        self: &Arc<Self>,
        bucket: BucketId,
        data: &ObjectData,
        range: Range<u64>,
    ) -> Result<BoxStream<'static, Result<Bytes, std::io::Error>>> {
        let (profile, segments) = match data {
            ObjectData::Inline(bytes) => {
                let piece =
                    Bytes::copy_from_slice(&bytes[range.start as usize..range.end as usize]);
                return Ok(futures::stream::once(async move { Ok(piece) }).boxed());
            }
            ObjectData::Chunks {
                profile, segments, ..
            } => (*profile, segments.clone()),
        };
        // (segment, the part of the object range inside it, relative to it)
        let mut wanted: Vec<(Segment, Range<u64>)> = Vec::new();
        let mut offset = 0u64;
        for s in segments {
            let (start, end) = (offset, offset + s.len);
            offset = end;
            if end <= range.start || start >= range.end {
                continue;
            }
            let from = range.start.max(start) - start;
            let to = range.end.min(end) - start;
            wanted.push((s, from..to));
        }
        // The slot travels with the stream and is freed when the body is
        // done or dropped.
        let slot = self.transfer_slot()?;
        let placement = self.cluster.placement()?;
        let me = self.clone();
        let chunks = futures::stream::iter(wanted)
            .then(move |(segment, within)| {
                let me = me.clone();
                async move {
                    let chunks = me.segment_chunks(bucket, segment.chunks).await?;
                    Ok::<_, Error>(futures::stream::iter(chunk_slices(chunks, within)).map(Ok))
                }
            })
            .map(|r| match r {
                Ok(s) => s.boxed(),
                Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
            })
            .flatten();
        let client = self.cluster.client.clone();
        let mut stream = chunks
            .map(move |item: Result<(ChunkRef, Range<usize>)>| {
                let (client, placement) = (client.clone(), placement.clone());
                async move {
                    let (c, slice) = item?;
                    // A chunk read that stalls (a slow disk or link, a
                    // slow client): the object may be replaced, and its
                    // chunks collected, while the GET streams.
                    cairn_node::buggify::stall(0.05, std::time::Duration::from_secs(3)).await;
                    let bytes = read_chunk(&client, &placement, profile, c).await?;
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

    /// The chunks of a segment: listed in place, or in a part record.
    pub async fn segment_chunks(
        &self,
        bucket: BucketId,
        chunks: SegmentChunks,
    ) -> Result<Vec<ChunkRef>> {
        match chunks {
            SegmentChunks::Here(c) => Ok(c),
            SegmentChunks::Part {
                upload_id,
                part_number,
            } => {
                let group = self.meta.client.bucket_group(bucket)?;
                let part: Option<PartRecord> = self
                    .meta
                    .client
                    .get(group, &keys::part(bucket, &upload_id, part_number))
                    .await?;
                part.map(|p| p.chunks).ok_or_else(|| {
                    Error::Unreadable(format!("part {part_number} of {upload_id} is gone"))
                })
            }
        }
    }
}

/// The chunks of a run that overlap `within` (bytes of the run), each with
/// the part of it wanted.
fn chunk_slices(chunks: Vec<ChunkRef>, within: Range<u64>) -> Vec<(ChunkRef, Range<usize>)> {
    let mut out = Vec::new();
    let mut offset = 0u64;
    for c in chunks {
        let (start, end) = (offset, offset + u64::from(c.len));
        offset = end;
        if end <= within.start || start >= within.end {
            continue;
        }
        let from = within.start.max(start) - start;
        let to = within.end.min(end) - start;
        out.push((c, from as usize..to as usize));
    }
    out
}

fn finish(hashes: BodyHashes, data: WrittenData, session: Option<Arc<WriteSession>>) -> Written {
    let size = hashes.len;
    let md5: [u8; 16] = hashes.md5.finalize().into();
    let checksum = hashes.checksum.map(|(a, h)| (a, h.finish()));
    Written {
        data,
        size,
        md5,
        checksum,
        session,
    }
}

async fn join(t: tokio::task::JoinHandle<Result<()>>) -> Result<()> {
    t.await
        .map_err(|e| Error::Quorum(format!("shard writer failed: {e}")))?
}
