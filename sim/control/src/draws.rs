//! The core's random draws: a seed from the driver, stretched by splitmix64, so that
//! the same seed gives the same draws whatever runs the core.

/// The driver's seed stretched into a stream (splitmix64).
#[derive(Clone, Debug)]
pub struct Draws(pub u64);

impl Draws {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` (n > 0), by rejection so that no value is favoured.
    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            return 0;
        }
        let zone = u64::MAX - (u64::MAX % n);
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }

    /// A new object id: 25 characters of base 36, as swarmkit's identity package.
    pub fn id(&mut self) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        (0..25)
            .map(|_| ALPHABET[self.below(36) as usize] as char)
            .collect()
    }
}
