//! The erasure codec: a chunk becomes `k` data shards and `m` parity shards,
//! any `k` of which rebuild it.
//!
//! The code is systematic: data shard `i` holds bytes `[i*L, (i+1)*L)` of the
//! chunk (the last one zero-padded), so a reader with all `k` data shards
//! never decodes. Every manifest records the [`CodecId`] it was written with,
//! so the codec can change without rewriting old objects.

use crate::error::{Error, Result};
use crate::id::ChunkId;
use reed_solomon_erasure::galois_8::ReedSolomon;
use serde::{Deserialize, Serialize};

/// The largest `k + m` any profile may use (GF(2^8) codes allow up to 256
/// shards; one byte of shard index leaves 255).
pub const MAX_TOTAL_SHARDS: usize = 255;
const _: () = assert!(MAX_TOTAL_SHARDS <= 255);

/// Which codec encoded a chunk. Stored in every manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum CodecId {
    /// Reed-Solomon over GF(2^8) as implemented by `reed-solomon-erasure`.
    ReedSolomonGf8 = 1,
}

/// An erasure profile: `data_shards` (k) and `parity_shards` (m).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ErasureProfile {
    /// k: shards that carry the chunk's bytes.
    pub data_shards: u8,
    /// m: shards that carry parity; any m shards may be lost.
    pub parity_shards: u8,
}

impl ErasureProfile {
    /// k + m.
    pub fn total_shards(&self) -> usize {
        usize::from(self.data_shards) + usize::from(self.parity_shards)
    }

    /// Shards that must be durably written before a chunk counts as stored:
    /// k + 1 when there is parity (one lost disk after the ack still leaves
    /// the chunk readable), k otherwise.
    pub fn write_quorum(&self) -> usize {
        let k = usize::from(self.data_shards);
        if self.parity_shards == 0 { k } else { k + 1 }
    }

    /// The default profile for a cluster of `nodes` storage nodes: 4+2 from
    /// six nodes on; smaller clusters keep two parity shards where they can
    /// (so two lost nodes stay survivable) and shrink `k`.
    pub fn default_for(nodes: usize) -> Self {
        let (k, m) = match nodes {
            0 | 1 => (1, 0),
            2 => (1, 1),
            3 => (1, 2),
            4 => (2, 2),
            5 => (3, 2),
            _ => (4, 2),
        };
        Self {
            data_shards: k,
            parity_shards: m,
        }
    }

    /// Bytes a chunk of `chunk_len` bytes takes in shards, data and parity.
    pub fn stored_len(&self, chunk_len: usize) -> u64 {
        (self.shard_len(chunk_len) * self.total_shards()) as u64
    }

    /// The length of each shard of a chunk of `chunk_len` bytes.
    pub fn shard_len(&self, chunk_len: usize) -> usize {
        chunk_len.div_ceil(usize::from(self.data_shards)).max(1)
    }
}

/// What a node needs to rebuild a chunk from its shards without the
/// manifest: the codec, the profile and the chunk's length. Every shard file
/// carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ShardGeometry {
    /// The codec.
    pub codec: CodecId,
    /// Its profile.
    pub profile: ErasureProfile,
    /// The chunk's length in bytes.
    pub chunk_len: u64,
}

impl ShardGeometry {
    /// Reed-Solomon geometry of a chunk of `chunk_len` bytes.
    pub fn reed_solomon(profile: ErasureProfile, chunk_len: u64) -> Self {
        Self {
            codec: CodecId::ReedSolomonGf8,
            profile,
            chunk_len,
        }
    }

    /// The length of each of its shards.
    pub fn shard_len(&self) -> usize {
        self.profile.shard_len(self.chunk_len as usize)
    }
}

impl std::fmt::Display for ShardGeometry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "rs8-{}-{}-{}",
            self.profile.data_shards, self.profile.parity_shards, self.chunk_len
        )
    }
}

impl std::str::FromStr for ShardGeometry {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::Codec(format!("bad shard geometry {s:?}"));
        let mut parts = s.split('-');
        if parts.next() != Some("rs8") {
            return Err(bad());
        }
        let mut num = || {
            parts
                .next()
                .and_then(|p| p.parse::<u64>().ok())
                .ok_or_else(bad)
        };
        let (k, m, len) = (num()?, num()?, num()?);
        if k == 0 || k + m > MAX_TOTAL_SHARDS as u64 {
            return Err(bad());
        }
        Ok(Self::reed_solomon(
            ErasureProfile {
                data_shards: k as u8,
                parity_shards: m as u8,
            },
            len,
        ))
    }
}

/// Turns chunks into shards and back.
pub trait Codec: Send + Sync {
    /// The id stored in manifests written with this codec.
    fn id(&self) -> CodecId;
    /// The profile this codec instance encodes.
    fn profile(&self) -> ErasureProfile;
    /// Split and encode `chunk` into `k + m` shards of equal length.
    fn encode(&self, chunk: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Rebuild the chunk of `chunk_len` bytes from `k + m` shard slots, at
    /// least `k` of them present. Verifies the result against `chunk`.
    fn decode(
        &self,
        chunk: ChunkId,
        chunk_len: usize,
        shards: Vec<Option<Vec<u8>>>,
    ) -> Result<Vec<u8>>;
}

/// Reed-Solomon over GF(2^8) with SIMD kernels.
pub struct ReedSolomonCodec {
    profile: ErasureProfile,
    rs: Option<ReedSolomon>,
}

impl ReedSolomonCodec {
    /// A codec for `profile`.
    pub fn new(profile: ErasureProfile) -> Result<Self> {
        let k = usize::from(profile.data_shards);
        let m = usize::from(profile.parity_shards);
        if k == 0 || k + m > MAX_TOTAL_SHARDS {
            return Err(Error::Codec(format!("unsupported profile {k}+{m}")));
        }
        // The library refuses m = 0; plain striping needs no code at all.
        let rs = if m == 0 {
            None
        } else {
            Some(ReedSolomon::new(k, m).map_err(|e| Error::Codec(e.to_string()))?)
        };
        Ok(Self { profile, rs })
    }
}

impl Codec for ReedSolomonCodec {
    fn id(&self) -> CodecId {
        CodecId::ReedSolomonGf8
    }

    fn profile(&self) -> ErasureProfile {
        self.profile
    }

    fn encode(&self, chunk: &[u8]) -> Result<Vec<Vec<u8>>> {
        let k = usize::from(self.profile.data_shards);
        let total = self.profile.total_shards();
        let len = self.profile.shard_len(chunk.len());
        let mut shards: Vec<Vec<u8>> = Vec::with_capacity(total);
        for i in 0..k {
            let start = (i * len).min(chunk.len());
            let end = ((i + 1) * len).min(chunk.len());
            let mut shard = Vec::with_capacity(len);
            shard.extend_from_slice(&chunk[start..end]);
            shard.resize(len, 0);
            shards.push(shard);
        }
        shards.resize(total, vec![0u8; len]);
        if let Some(rs) = &self.rs {
            rs.encode(&mut shards)
                .map_err(|e| Error::Codec(e.to_string()))?;
        }
        Ok(shards)
    }

    fn decode(
        &self,
        chunk: ChunkId,
        chunk_len: usize,
        mut shards: Vec<Option<Vec<u8>>>,
    ) -> Result<Vec<u8>> {
        let k = usize::from(self.profile.data_shards);
        assert_eq!(shards.len(), self.profile.total_shards());
        let len = self.profile.shard_len(chunk_len);
        // A shard of the wrong length is as good as missing.
        for slot in shards.iter_mut() {
            if slot.as_ref().is_some_and(|s| s.len() != len) {
                *slot = None;
            }
        }
        let available = shards.iter().filter(|s| s.is_some()).count();
        if available < k {
            return Err(Error::NotEnoughShards {
                chunk,
                available,
                needed: k,
            });
        }
        if shards[..k].iter().any(Option::is_none) {
            let rs = self.rs.as_ref().ok_or(Error::NotEnoughShards {
                chunk,
                available,
                needed: k,
            })?;
            rs.reconstruct_data(&mut shards)
                .map_err(|e| Error::Codec(e.to_string()))?;
        }
        let mut out = Vec::with_capacity(len * k);
        for shard in shards.into_iter().take(k) {
            out.extend_from_slice(&shard.expect("data shards were reconstructed"));
        }
        out.truncate(chunk_len);
        if !chunk.matches(&out) {
            return Err(Error::CorruptChunk { chunk });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn profile(k: u8, m: u8) -> ErasureProfile {
        ErasureProfile {
            data_shards: k,
            parity_shards: m,
        }
    }

    #[test]
    fn data_shards_are_the_chunk_itself() {
        let codec = ReedSolomonCodec::new(profile(4, 2)).unwrap();
        let chunk: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let shards = codec.encode(&chunk).unwrap();
        assert_eq!(shards.len(), 6);
        assert_eq!(&shards[0][..], &chunk[..250]);
        assert_eq!(&shards[3][..], &chunk[750..]);
    }

    #[test]
    fn too_few_shards_is_an_error_not_a_panic() {
        let codec = ReedSolomonCodec::new(profile(4, 2)).unwrap();
        let chunk = vec![7u8; 4096];
        let id = ChunkId::of(&chunk);
        let shards = codec.encode(&chunk).unwrap();
        let mut slots: Vec<_> = shards.into_iter().map(Some).collect();
        slots[0] = None;
        slots[1] = None;
        slots[5] = None;
        assert!(matches!(
            codec.decode(id, chunk.len(), slots),
            Err(Error::NotEnoughShards { available: 3, .. })
        ));
    }

    #[test]
    fn a_corrupted_shard_is_detected() {
        let codec = ReedSolomonCodec::new(profile(4, 2)).unwrap();
        let chunk: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let id = ChunkId::of(&chunk);
        let mut slots: Vec<_> = codec
            .encode(&chunk)
            .unwrap()
            .into_iter()
            .map(Some)
            .collect();
        slots[2].as_mut().unwrap()[10] ^= 1;
        assert!(matches!(
            codec.decode(id, chunk.len(), slots),
            Err(Error::CorruptChunk { .. })
        ));
    }

    proptest! {
        #[test]
        fn any_k_shards_rebuild_the_chunk(
            chunk in proptest::collection::vec(any::<u8>(), 1..5000),
            k in 1u8..6, m in 0u8..4, lost_seed in any::<u64>(),
        ) {
            let p = profile(k, m);
            let codec = ReedSolomonCodec::new(p).unwrap();
            let id = ChunkId::of(&chunk);
            let mut slots: Vec<_> = codec.encode(&chunk).unwrap().into_iter().map(Some).collect();
            // Drop exactly m shards, chosen by the seed.
            let total = p.total_shards();
            let mut lost = 0;
            let mut s = lost_seed;
            while lost < usize::from(m) {
                let i = (s % total as u64) as usize;
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                if slots[i].take().is_some() { lost += 1; }
            }
            let back = codec.decode(id, chunk.len(), slots).unwrap();
            prop_assert_eq!(back, chunk);
        }
    }
}
