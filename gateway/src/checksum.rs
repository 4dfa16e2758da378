//! Streaming checksums: Content-MD5 and the `x-amz-checksum-*` family.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use md5::{Digest, Md5};

/// An additional checksum algorithm S3 supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// CRC-32 (ISO-HDLC).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

impl Algorithm {
    /// Every algorithm, in S3's order.
    pub const ALL: [Algorithm; 5] = [
        Algorithm::Crc32,
        Algorithm::Crc32c,
        Algorithm::Crc64Nvme,
        Algorithm::Sha1,
        Algorithm::Sha256,
    ];

    /// The name S3 uses (`CRC32`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Crc32 => "CRC32",
            Algorithm::Crc32c => "CRC32C",
            Algorithm::Crc64Nvme => "CRC64NVME",
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
        }
    }

    /// Parse S3's name, case-insensitively.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(name))
    }

    /// The header carrying it: `x-amz-checksum-crc32`, ...
    pub fn header(self) -> String {
        format!("x-amz-checksum-{}", self.name().to_ascii_lowercase())
    }

    /// Length of the raw digest in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Crc32 | Algorithm::Crc32c => 4,
            Algorithm::Crc64Nvme => 8,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
        }
    }

    fn crc(self) -> Option<crc_fast::CrcAlgorithm> {
        match self {
            Algorithm::Crc32 => Some(crc_fast::CrcAlgorithm::Crc32IsoHdlc),
            Algorithm::Crc32c => Some(crc_fast::CrcAlgorithm::Crc32Iscsi),
            Algorithm::Crc64Nvme => Some(crc_fast::CrcAlgorithm::Crc64Nvme),
            _ => None,
        }
    }

    /// Whether a multipart upload may use a full-object checksum with it.
    pub fn supports_full_object(self) -> bool {
        self.crc().is_some()
    }

    /// The raw digest of `data` in one go.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        let mut h = Hasher::new(self);
        h.update(data);
        h.finish()
    }

    /// Combine the full-object CRCs of two consecutive byte ranges (the
    /// second `len2` bytes long) into the CRC of their concatenation.
    pub fn combine_crc(self, a: &[u8], b: &[u8], len2: u64) -> Option<Vec<u8>> {
        let algo = self.crc()?;
        let n = self.digest_len();
        let to_u64 = |d: &[u8]| d.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
        let combined = crc_fast::checksum_combine(algo, to_u64(a), to_u64(b), len2);
        Some(combined.to_be_bytes()[8 - n..].to_vec())
    }
}

/// One running checksum.
pub enum Hasher {
    /// A CRC.
    Crc(Algorithm, crc_fast::Digest),
    /// SHA-1.
    Sha1(sha1::Sha1),
    /// SHA-256.
    Sha256(sha2::Sha256),
}

impl Hasher {
    /// A fresh hasher.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm.crc() {
            Some(crc) => Hasher::Crc(algorithm, crc_fast::Digest::new(crc)),
            None if algorithm == Algorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            None => Hasher::Sha256(sha2::Sha256::new()),
        }
    }

    /// Feed bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc(_, d) => d.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// The raw digest (big-endian for CRCs, as S3 encodes them).
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Crc(a, d) => {
                let v = d.finalize();
                v.to_be_bytes()[8 - a.digest_len()..].to_vec()
            }
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// Base64 as S3 prints checksums.
pub fn b64(raw: &[u8]) -> String {
    B64.encode(raw)
}

/// Decode a base64 checksum; `None` when malformed.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.trim()).ok()
}

/// The hashes computed over every byte of an upload in one pass.
pub struct BodyHashes {
    /// MD5 (the ETag, and Content-MD5).
    pub md5: Md5,
    /// The requested (or announced) additional checksum.
    pub checksum: Option<(Algorithm, Hasher)>,
    /// Bytes seen.
    pub len: u64,
}

impl BodyHashes {
    /// Hashers for an upload that announces `algorithm`.
    pub fn new(algorithm: Option<Algorithm>) -> Self {
        Self {
            md5: Md5::new(),
            checksum: algorithm.map(|a| (a, Hasher::new(a))),
            len: 0,
        }
    }

    /// Feed a buffer to every hasher.
    pub fn update(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some((_, h)) = &mut self.checksum {
            h.update(data);
        }
        self.len += data.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        // "123456789" check values from the CRC catalogue.
        assert_eq!(
            Algorithm::Crc32.digest(b"123456789"),
            0xCBF43926u32.to_be_bytes()
        );
        assert_eq!(
            Algorithm::Crc32c.digest(b"123456789"),
            0xE3069283u32.to_be_bytes()
        );
        assert_eq!(
            Algorithm::Crc64Nvme.digest(b"123456789"),
            0xAE8B14860A799888u64.to_be_bytes()
        );
        assert_eq!(
            b64(&Algorithm::Sha256.digest(b"")),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn crc_combination_matches_the_whole() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 31) as u8).collect();
        for a in [Algorithm::Crc32, Algorithm::Crc32c, Algorithm::Crc64Nvme] {
            let (x, y) = data.split_at(3333);
            let combined = a
                .combine_crc(&a.digest(x), &a.digest(y), y.len() as u64)
                .unwrap();
            assert_eq!(combined, a.digest(&data), "{a:?}");
        }
    }
}
