//! Randomness as an argument: the core asks its caller for random values through [`Entropy`].
//! The daemon backs it with getrandom(2); tests and the simulator with a seeded [`SplitMix64`].

/// A source of random 64-bit values.
pub trait Entropy {
    fn next_u64(&mut self) -> u64;

    /// A uniformly distributed float in [0, 1).
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Small seeded generator (Steele, Lea, Flood: "Fast splittable pseudorandom number
/// generators", 2014). Deterministic; never use it for nonces on a real network.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl Entropy for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

impl<E: Entropy + ?Sized> Entropy for &mut E {
    fn next_u64(&mut self) -> u64 {
        (**self).next_u64()
    }
}
