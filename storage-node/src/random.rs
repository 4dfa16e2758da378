//! Random numbers for ids, nonces, jitter and temporary names: the
//! operating system's, or, in a simulation, a seeded source the simulation
//! installs so the same seed gives the same run. Secrets (keys, the
//! cluster secret) never come from here.

use rand::RngCore;
use std::sync::OnceLock;

static SOURCE: OnceLock<fn(&mut [u8])> = OnceLock::new();

/// Make `source` fill every random buffer of this process (a simulation's
/// seeded generator). Once per process; `false` if one was installed.
pub fn install(source: fn(&mut [u8])) -> bool {
    SOURCE.set(source).is_ok()
}

/// Fill `buf` with random bytes.
pub fn fill(buf: &mut [u8]) {
    match SOURCE.get() {
        Some(source) => source(buf),
        None => rand::rng().fill_bytes(buf),
    }
}

/// Types made of random bytes.
pub trait Random {
    /// A random value.
    fn random() -> Self;
}

impl<const N: usize> Random for [u8; N] {
    fn random() -> Self {
        let mut b = [0u8; N];
        fill(&mut b);
        b
    }
}

macro_rules! from_bytes {
    ($($t:ty),*) => {$(
        impl Random for $t {
            fn random() -> Self {
                <$t>::from_le_bytes(Random::random())
            }
        }
    )*};
}
from_bytes!(u32, u64, u128);

/// A random value.
pub fn random<T: Random>() -> T {
    T::random()
}

/// A random number in `low..=high`.
pub fn range_i64(low: i64, high: i64) -> i64 {
    assert!(low <= high, "an empty range");
    let span = (high - low) as u64 + 1;
    // Modulo bias is below 2^-32 for spans under 2^32: good enough for
    // jitter.
    low + (random::<u64>() % span) as i64
}

/// The generator openraft draws its election timeouts from: this module's.
#[derive(Debug, Default, Clone, Copy)]
pub struct RaftRng;

impl rand08::RngCore for RaftRng {
    fn next_u32(&mut self) -> u32 {
        random()
    }

    fn next_u64(&mut self) -> u64 {
        random()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        fill(dest)
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand08::Error> {
        fill(dest);
        Ok(())
    }
}
