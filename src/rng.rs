//! Our own seeded random generator for weight initialisation.
//!
//! The decoder must start from exactly the same weights as the encoder, in every
//! future version of fade, so the generator is part of the file format: it must
//! never change with a dependency upgrade. candle's CPU generator cannot be seeded
//! at all. SplitMix64 plus Box–Muller in f64 is small, fast, well
//! studied and fully specified here.

/// SplitMix64 (Steele, Lea, Flood 2014).
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose whole output is determined by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [-a, a).
    pub fn uniform(&mut self, a: f64) -> f32 {
        ((self.next_f64() * 2.0 - 1.0) * a) as f32
    }

    /// Normal with mean 0 and standard deviation `std` (Box–Muller, one value per call
    /// so the stream of draws does not depend on call parity).
    pub fn normal(&mut self, std: f64) -> f32 {
        let u1 = 1.0 - self.next_f64(); // (0, 1]
        let u2 = self.next_f64();
        let r = (-2.0 * u1.ln()).sqrt();
        (r * (std::f64::consts::TAU * u2).cos() * std) as f32
    }

    /// A generator for a named sub-stream, so adding a parameter never shifts the
    /// values drawn for the others.
    pub fn fork(&self, tag: &str) -> Self {
        let mut h = self.state ^ 0xD1B5_4A32_D192_ED03;
        for b in tag.bytes() {
            h = (h ^ b as u64).wrapping_mul(0x100_0000_01B3);
        }
        let mut g = Self::new(h);
        g.next_u64();
        g
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_values_are_frozen() {
        // First outputs of SplitMix64 with seed 1234567 (published test vector).
        let mut g = SplitMix64::new(1234567);
        assert_eq!(g.next_u64(), 6457827717110365317);
        assert_eq!(g.next_u64(), 3203168211198807973);
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut g = SplitMix64::new(7);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| g.normal(1.0) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.02, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }

    #[test]
    fn forks_differ() {
        let g = SplitMix64::new(1);
        assert_ne!(g.fork("a").next_u64(), g.fork("b").next_u64());
        assert_eq!(g.fork("a").next_u64(), g.fork("a").next_u64());
    }
}
