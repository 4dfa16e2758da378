//! Content ids and node ids.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The content address of a chunk: the BLAKE3 hash of its bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    /// The id of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// Whether `data` hashes to this id.
    pub fn matches(&self, data: &[u8]) -> bool {
        // blake3::Hash compares in constant time; timing does not matter
        // here but the comparison is as cheap either way.
        blake3::Hash::from_bytes(self.0) == blake3::hash(data)
    }

    /// The partition this chunk belongs to: the top `partition_bits` bits of the id.
    pub fn partition(&self, partition_bits: u8) -> u32 {
        partition_of_hash(&self.0, partition_bits)
    }

    /// Lower-case hexadecimal form (64 characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The top `partition_bits` bits of a 32-byte hash, as a partition number.
pub fn partition_of_hash(hash: &[u8; 32], partition_bits: u8) -> u32 {
    assert!(partition_bits <= 16, "partition_bits {partition_bits} > 16");
    if partition_bits == 0 {
        return 0;
    }
    let top = u32::from_be_bytes([hash[0], hash[1], hash[2], hash[3]]);
    top >> (32 - u32::from(partition_bits))
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", &self.to_hex()[..16])
    }
}

/// Error parsing an id from text.
#[derive(Debug, thiserror::Error)]
#[error("not a valid id: {0:?}")]
pub struct ParseIdError(pub String);

impl FromStr for ChunkId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError(s.to_owned()))?;
        Ok(Self(out))
    }
}

/// A storage node's identity: random, chosen when the node first starts, and
/// kept in its data directory. Human-readable formats (JSON) carry it as 16
/// hex digits, binary ones as a `u64`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u64);

impl Serialize for NodeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_string())
        } else {
            s.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            let s = String::deserialize(d)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            u64::deserialize(d).map(NodeId)
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(ParseIdError(s.to_owned()));
        }
        u64::from_str_radix(s, 16)
            .map(NodeId)
            .map_err(|_| ParseIdError(s.to_owned()))
    }
}

/// Checksum of one stored shard (BLAKE3 of the shard bytes), kept beside it
/// so a node can verify each read without knowing the whole chunk.
pub fn shard_checksum(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_id_round_trips_through_hex() {
        let id = ChunkId::of(b"hello");
        let parsed: ChunkId = id.to_hex().parse().unwrap();
        assert_eq!(id, parsed);
        assert!(id.matches(b"hello"));
        assert!(!id.matches(b"hellO"));
    }

    #[test]
    fn partition_uses_top_bits() {
        let mut h = [0u8; 32];
        h[0] = 0b1010_0000;
        assert_eq!(partition_of_hash(&h, 0), 0);
        assert_eq!(partition_of_hash(&h, 1), 1);
        assert_eq!(partition_of_hash(&h, 3), 0b101);
        assert_eq!(partition_of_hash(&[0xff; 32], 8), 255);
    }

    #[test]
    fn node_id_parses_its_display() {
        let n = NodeId(0x0123_4567_89ab_cdef);
        assert_eq!(n.to_string().parse::<NodeId>().unwrap(), n);
        assert!("xyz".parse::<NodeId>().is_err());
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"0123456789abcdef\"");
        assert_eq!(serde_json::from_str::<NodeId>(&json).unwrap(), n);
        let bin = postcard::to_stdvec(&n).unwrap();
        assert_eq!(postcard::from_bytes::<NodeId>(&bin).unwrap(), n);
    }
}
