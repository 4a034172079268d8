//! A small seeded pseudo-random generator (SplitMix64) for fault injection: reply delays
//! drawn from a range, truncation lengths, corrupted values.
//!
//! Core reads no entropy from the system: the caller picks the seed, so a run with
//! faults is reproducible (same seed, same inputs, same bytes out). SplitMix64 (Steele,
//! Lea and Flood, *Fast splittable pseudorandom number generators*, OOPSLA 2014) passes
//! BigCrush, needs 8 bytes of state and no dependency; it is not for cryptography.
//!
//! ```
//! use cpppo_core::rng::SplitMix64;
//!
//! let mut a = SplitMix64::new(7);
//! let mut b = SplitMix64::new(7);
//! assert_eq!(a.next_u64(), b.next_u64());
//! assert!(a.below(10) < 10);
//! ```

use serde::{Deserialize, Serialize};

/// The golden-ratio increment of SplitMix64's Weyl sequence.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64: a 64-bit state advanced by a Weyl sequence and mixed on output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0), by multiply-and-shift (Lemire), whose bias
    /// is below 2^-64 * n: irrelevant for fault injection.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `low..=high` (`low` when `high < low`).
    pub fn between(&mut self, low: u64, high: u64) -> u64 {
        if high <= low {
            return low;
        }
        match (high - low).checked_add(1) {
            Some(span) => low + self.below(span),
            None => self.next_u64(),
        }
    }

    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() >> 63 == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values() {
        // The reference implementation's first outputs for seed 1234567
        // (Vigna's splitmix64.c, as quoted by the xoshiro/xoroshiro seeding notes).
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        assert_eq!(r.next_u64(), 9817491932198370423);
    }

    #[test]
    fn ranges_hold() {
        let mut r = SplitMix64::new(0);
        let mut seen = [false; 5];
        for _ in 0..1000 {
            let v = r.between(3, 7);
            assert!((3..=7).contains(&v));
            seen[(v - 3) as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(r.below(0), 0);
        assert_eq!(r.between(9, 2), 9);
        let _ = r.between(0, u64::MAX);
    }
}
