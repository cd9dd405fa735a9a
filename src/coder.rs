//! Range coder and probability quantisation.
//!
//! A carry-propagating range coder in the style of LZMA's: 64-bit low,
//! byte-wise output. Symbols are coded against integer cumulative frequency
//! tables whose total is `2^bits` of the frame's [`Precision`]; every symbol
//! keeps a frequency of at least 1 so any byte stays codable however
//! confident the model is. Everything here is integer arithmetic except
//! [`quantize`], which turns logits into a table with a fixed sequence of
//! f32/f64 operations (and our own `exp`) that both sides run identically, on
//! any machine.

use crate::error::{Error, Result};
use crate::simd::wide_kernel;

/// How finely a frame's tables divide the coder's range, by format version.
///
/// Every symbol keeps a frequency of at least 1, so the 255 others cost a
/// near-certain byte 255 / 2^bits of its probability: at 2^16 (format v2)
/// that is 0.0056 bits a byte, 1.25% of the first MiB of Silesia's nci as the
/// default codes it (682 of 54,421 bytes, against its probabilities' own
/// cost). Format v3's tables total 2^24, in a 40-bit range normalised below
/// 2^32, so a byte keeps at least 2^8 steps of range as in v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Precision(u32);

impl Precision {
    /// Format v2: tables total 2^16, a 32-bit range.
    pub const V2: Self = Self(16);
    /// Format v3: tables total 2^24, a 40-bit range.
    pub const V3: Self = Self(24);

    /// log2 of a table's total.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// A table's total.
    pub const fn total(self) -> u32 {
        1 << self.0
    }

    /// log2 of the range below which it is normalised (shifted by a byte).
    const fn top_bits(self) -> u32 {
        self.0 + 8
    }
}

/// Cumulative frequency table of 256 symbols: `cum[s]..cum[s+1]` is symbol `s`'s
/// interval, `cum[0] = 0`, `cum[256]` = the precision's total.
pub type Cdf = [u32; 257];

wide_kernel! {
    /// e^(l - max) of every logit, widened to f64; non-finite results become 0.
    fn exp_shifted(logits: &[f32], max: f32, exps: &mut [f64; 256]) {
        for (e, &l) in exps.iter_mut().zip(logits) {
            let v = crate::math::exp(l - max) as f64;
            *e = if v.is_finite() { v } else { 0.0 };
        }
    }
}

/// Turns 256 logits into a cumulative table of precision `prec`.
///
/// `freq[s] = 1 + floor(p[s] * (TOTAL - 256))`, with the rounding remainder given to
/// the most probable symbol. Non-finite logits (a diverged model) degrade to a
/// uniform table instead of failing, identically on both sides.
pub fn quantize(logits: &[f32], prec: Precision, cdf: &mut Cdf) {
    debug_assert_eq!(logits.len(), 256);
    let mut exps = [0f64; 256];
    let arg = shifted_exps(logits, &mut exps);
    // In index order, apart from the vectorised exps: the sum's rounding
    // must be the same on both sides.
    let mut sum = 0f64;
    for &e in &exps {
        sum += e;
    }
    table_of(&exps, sum, arg, prec, cdf);
}

/// [`quantize`] of several rows of 256 logits, one table each. The sums of
/// eight rows advance side by side, each in index order (the same bits): one
/// row's chain of dependent adds waited on every add, half of a table's time.
pub fn quantize_rows(logits: &[f32], prec: Precision, cdfs: &mut [Cdf]) {
    const G: usize = 8;
    let mut exps = [[0f64; 256]; G];
    for (rows, cdfs) in logits.chunks(256 * G).zip(cdfs.chunks_mut(G)) {
        let mut arg = [0usize; G];
        for ((row, e), a) in rows.chunks_exact(256).zip(&mut exps).zip(&mut arg) {
            *a = shifted_exps(row, e);
        }
        let n = cdfs.len();
        let mut sum = [0f64; G];
        for j in 0..256 {
            for (s, e) in sum[..n].iter_mut().zip(&exps) {
                *s += e[j];
            }
        }
        for (((cdf, e), &s), &a) in cdfs.iter_mut().zip(&exps).zip(&sum).zip(&arg) {
            table_of(e, s, a, prec, cdf);
        }
    }
}

/// e^(l - max) of a row's logits into `exps` (all 0 if the max is not
/// finite); returns the index of the first largest logit.
pub(crate) fn shifted_exps(logits: &[f32], exps: &mut [f64; 256]) -> usize {
    debug_assert_eq!(logits.len(), 256);
    let mut top = f32::NEG_INFINITY;
    max_of(logits, &mut top);
    if top == f32::NEG_INFINITY {
        // Every logit -inf or NaN: no finite maximum, as for +inf below.
        exps.fill(0.0);
        return 0;
    }
    // The first largest logit: the first equal to the maximum (NaN equals
    // nothing), and the maximum is that logit itself, so a -0.0 found
    // before a +0.0 is the maximum, as a scan keeping the first largest
    // would have it.
    let arg = logits.iter().position(|&l| l == top).unwrap_or(0);
    let max = logits[arg];
    if max.is_finite() {
        exp_shifted(logits, max, exps);
    } else {
        exps.fill(0.0);
    }
    arg
}

wide_kernel! {
    /// The largest logit, NaN ignored (-inf if none): sixteen maxima side
    /// by side, which vectorise, where one running maximum waited on each
    /// compare (a third of building a table).
    fn max_of(logits: &[f32], top: &mut f32) {
        let mut acc = [f32::NEG_INFINITY; 16];
        let chunks = logits.chunks_exact(16);
        let rest = chunks.remainder();
        for c in chunks {
            for (a, &l) in acc.iter_mut().zip(c) {
                *a = a.max(l);
            }
        }
        *top = acc.iter().chain(rest).fold(f32::NEG_INFINITY, |m, &a| m.max(a));
    }
}

wide_kernel! {
    /// `freq[s] = 1 + floor(exps[s] * spread)` and their sum.
    fn floors_of(exps: &[f64; 256], spread: f64, freq: &mut [u32; 256], used: &mut u32) {
        let mut u = 0u32;
        for (f, &e) in freq.iter_mut().zip(exps.iter()) {
            // SAFETY: 0 <= e * spread <= TOTAL - 256 < 2^31 (the caller's
            // spread): finite and in i32 range, which a vector converts
            // directly (the checked cast saturates, and kept this scalar).
            *f = 1 + unsafe { (e * spread).to_int_unchecked::<i32>() } as u32;
            u += *f;
        }
        *used = u;
    }
}

/// The table from a row's exps, their sum and its most probable symbol.
pub(crate) fn table_of(exps: &[f64; 256], sum: f64, arg: usize, prec: Precision, cdf: &mut Cdf) {
    if !(sum.is_finite() && sum > 0.0) {
        return uniform(prec, cdf);
    }
    let total = prec.total();
    let spread = (total - 256) as f64 / sum;
    let mut freq = [0u32; 256];
    let mut used = 0u32;
    floors_of(exps, spread, &mut freq, &mut used);
    // `used <= TOTAL` because each floor is <= its real value, and those sum to
    // TOTAL-256; the guard only protects against a rounding surprise.
    if used > total {
        return uniform(prec, cdf);
    }
    freq[arg] += total - used;
    cdf[0] = 0;
    for s in 0..256 {
        cdf[s + 1] = cdf[s] + freq[s];
    }
}

/// Builds a table of precision `prec` from `floor(p[s] * (TOTAL - 256))` of
/// every symbol, as a device quantiser computes them (see `Step::floors`):
/// the device does the exps and the host only adds, so a GPU model's coder
/// keeps up with thousands of lanes. `freq[s] = 1 + floor`, and the rounding
/// remainder goes to the first largest symbol. A device softmax may sum to a
/// hair over 1, so an excess of a few counts is taken from that symbol too;
/// anything stranger (a diverged model, a floor out of range) gives the
/// uniform table, identically on both sides.
pub fn cdf_from_floors(floors: &[u32], prec: Precision, cdf: &mut Cdf) {
    debug_assert_eq!(floors.len(), 256);
    let total = prec.total();
    // Branch-free passes, so they vectorise: this runs once per lane per step.
    // The sum is wide: 256 floors of up to 2^24 would wrap 32 bits.
    let (mut used, mut top) = (256u64, 0u32);
    for &f in floors {
        used += f as u64;
        top = top.max(f);
    }
    // An excess must leave the largest symbol a frequency of at least 1.
    if top > total - 256 || used > (total + top) as u64 {
        return uniform(prec, cdf);
    }
    let used = used as u32;
    let arg = floors.iter().position(|&f| f == top).unwrap_or(0);
    cdf[0] = 0;
    let mut acc = 0u32;
    for (c, &f) in cdf[1..].iter_mut().zip(floors) {
        acc += 1 + f;
        *c = acc;
    }
    // Give the remainder to (or take the excess from) symbol `arg`.
    let fix = total.wrapping_sub(used);
    for c in &mut cdf[arg + 1..] {
        *c = c.wrapping_add(fix);
    }
}

/// The table that gives every symbol the same frequency.
fn uniform(prec: Precision, cdf: &mut Cdf) {
    for (s, c) in cdf.iter_mut().enumerate() {
        *c = (s as u32) << (prec.bits() - 8);
    }
}

/// Encodes symbols into a growing byte vector.
#[derive(Debug)]
pub struct Encoder {
    /// The low end of the interval, with a carry bit above the range's bits.
    low: u64,
    range: u64,
    cache: u8,
    cache_size: u64,
    out: Vec<u8>,
    /// The very first byte the LZMA scheme emits is always 0 (low + range never
    /// carries past the range's bits before the first shift); it is dropped,
    /// and the decoder starts one byte later.
    first: bool,
    prec: Precision,
}

impl Encoder {
    /// An empty encoder for tables of precision `prec`.
    pub fn new(prec: Precision) -> Self {
        Self {
            low: 0,
            range: (1 << (prec.top_bits() + 8)) - 1,
            cache: 0,
            cache_size: 1,
            out: Vec::new(),
            first: true,
            prec,
        }
    }

    fn push(&mut self, b: u8) {
        if self.first {
            debug_assert_eq!(b, 0);
            self.first = false;
        } else {
            self.out.push(b);
        }
    }

    /// Moves the top byte of `low` out (to the cache, once no carry can
    /// reach it any more).
    fn shift_low(&mut self) {
        let top = self.prec.top_bits();
        let width = top + 8;
        if (self.low & ((1 << width) - 1)) < 0xFF << top || (self.low >> width) != 0 {
            let carry = (self.low >> width) as u8;
            let mut temp = self.cache;
            loop {
                self.push(temp.wrapping_add(carry));
                temp = 0xFF;
                self.cache_size -= 1;
                if self.cache_size == 0 {
                    break;
                }
            }
            self.cache = ((self.low >> top) & 0xFF) as u8;
        }
        self.cache_size += 1;
        self.low = (self.low & ((1 << top) - 1)) << 8;
    }

    fn normalize(&mut self) {
        while self.range < 1 << self.prec.top_bits() {
            self.range <<= 8;
            self.shift_low();
        }
    }

    /// Codes symbol `s` with table `cdf` (of the encoder's precision).
    pub fn encode(&mut self, cdf: &Cdf, s: u8) {
        let (c, f) = (cdf[s as usize], cdf[s as usize + 1] - cdf[s as usize]);
        let r = self.range >> self.prec.bits();
        self.low += r * c as u64;
        self.range = r * f as u64;
        self.normalize();
    }

    /// Codes 8 raw bits (a uniform distribution).
    pub fn encode_raw(&mut self, b: u8) {
        let r = self.range >> 8;
        self.low += r * b as u64;
        self.range = r;
        self.normalize();
    }

    /// Flushes and returns the coded bytes.
    ///
    /// Any value in `[low, low + range)` identifies the message; the one with the
    /// most trailing zero bytes is picked, and trailing zeros are trimmed because
    /// the decoder reads zeros past the end of its input.
    pub fn finish(mut self) -> Vec<u8> {
        let top = self.prec.top_bits();
        let mask = (1u64 << top) - 1;
        // Still below low + range, since range >= 2^top.
        self.low = (self.low + mask) & !mask;
        for _ in 0..top / 8 + 2 {
            self.shift_low();
        }
        while self.out.last() == Some(&0) {
            self.out.pop();
        }
        self.out
    }
}

/// Decodes symbols from a byte slice, reading zeros past its end.
#[derive(Debug)]
pub struct Decoder<'a> {
    code: u64,
    range: u64,
    input: &'a [u8],
    pos: usize,
    prec: Precision,
}

impl<'a> Decoder<'a> {
    /// Starts decoding `input` (as produced by [`Encoder::finish`] at
    /// precision `prec`).
    pub fn new(input: &'a [u8], prec: Precision) -> Self {
        let mut d = Self {
            code: 0,
            range: (1 << (prec.top_bits() + 8)) - 1,
            input,
            pos: 0,
            prec,
        };
        for _ in 0..prec.top_bits() / 8 + 1 {
            d.code = (d.code << 8) | d.next_byte() as u64;
        }
        d
    }

    fn next_byte(&mut self) -> u8 {
        let b = self.input.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn normalize(&mut self) {
        while self.range < 1 << self.prec.top_bits() {
            self.range <<= 8;
            self.code = (self.code << 8) | self.next_byte() as u64;
        }
        // No overrun check: trimmed trailing zeros mean a valid stream may be read
        // well past its end. Callers decode a known number of symbols, and the
        // content checksum catches any garbage this lets through.
    }

    /// Decodes one symbol coded with table `cdf`.
    pub fn decode(&mut self, cdf: &Cdf) -> Result<u8> {
        let r = self.range >> self.prec.bits();
        let v = self.code / r;
        if v >= self.prec.total() as u64 {
            return Err(Error::Corrupt("range coder left its interval"));
        }
        let v = v as u32;
        // Largest s with cdf[s] <= v: binary search over the monotone table.
        let s = cdf[1..].partition_point(|&c| c <= v);
        let (c, f) = (cdf[s], cdf[s + 1] - cdf[s]);
        self.code -= r * c as u64;
        self.range = r * f as u64;
        self.normalize();
        Ok(s as u8)
    }

    /// Decodes 8 raw bits.
    pub fn decode_raw(&mut self) -> Result<u8> {
        let r = self.range >> 8;
        let v = self.code / r;
        if v >= 256 {
            return Err(Error::Corrupt("range coder left its interval"));
        }
        self.code -= r * v;
        self.range = r;
        self.normalize();
        Ok(v as u8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows quantised eight at a time give the tables of one at a time,
    /// diverged rows (uniform tables) included.
    #[test]
    fn shifted_exps_keep_the_first_largest_logit() {
        // A plain scan keeping the first largest, as the format defines it.
        fn scan(l: &[f32]) -> (usize, f32) {
            let (mut max, mut arg) = (f32::NEG_INFINITY, 0);
            for (i, &v) in l.iter().enumerate() {
                if v > max {
                    (max, arg) = (v, i);
                }
            }
            (arg, max)
        }
        let mut g = crate::rng::SplitMix64::new(11);
        let special = [0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 3.5];
        for case in 0..2000 {
            let mut row: Vec<f32> = (0..256)
                .map(|_| match g.next_u64() % 4 {
                    0 => special[(g.next_u64() % special.len() as u64) as usize],
                    _ if case % 3 == 0 => -((g.next_u64() % 3) as f32),
                    _ => g.normal(4.0),
                })
                .collect();
            if case % 7 == 0 {
                row.iter_mut().for_each(|v| {
                    *v = if g.next_u64().is_multiple_of(2) {
                        f32::NAN
                    } else {
                        *v
                    }
                });
            }
            let (arg, max) = scan(&row);
            let mut exps = [0f64; 256];
            assert_eq!(shifted_exps(&row, &mut exps), arg, "case {case}");
            for (i, &e) in exps.iter().enumerate() {
                let want = if max.is_finite() {
                    let v = crate::math::exp(row[i] - max) as f64;
                    if v.is_finite() {
                        v
                    } else {
                        0.0
                    }
                } else {
                    0.0
                };
                assert_eq!(e.to_bits(), want.to_bits(), "case {case} symbol {i}");
            }
        }
    }

    #[test]
    fn quantize_rows_matches_quantize() {
        let mut g = crate::rng::SplitMix64::new(3);
        let rows = 19;
        let mut logits: Vec<f32> = (0..rows * 256).map(|_| g.normal(4.0)).collect();
        logits[5 * 256 + 7] = f32::NAN;
        logits[9 * 256 + 3] = f32::INFINITY;
        logits[17 * 256..18 * 256].fill(f32::NEG_INFINITY);
        for prec in BOTH {
            let mut many = vec![[0u32; 257]; rows];
            quantize_rows(&logits, prec, &mut many);
            for (r, got) in many.iter().enumerate() {
                let mut one = [0u32; 257];
                quantize(&logits[r * 256..(r + 1) * 256], prec, &mut one);
                assert_eq!(got, &one, "row {r}");
            }
        }
    }
    use crate::rng::SplitMix64;

    const BOTH: [Precision; 2] = [Precision::V2, Precision::V3];

    fn cdf_from_freqs(freq: &[u32; 256], prec: Precision) -> Cdf {
        let mut cdf = [0u32; 257];
        for s in 0..256 {
            cdf[s + 1] = cdf[s] + freq[s];
        }
        assert_eq!(cdf[256], prec.total());
        cdf
    }

    fn roundtrip(tables: &[Cdf], syms: &[u8], prec: Precision) -> usize {
        let mut e = Encoder::new(prec);
        for (t, &s) in tables.iter().zip(syms) {
            e.encode(t, s);
        }
        let bytes = e.finish();
        let mut d = Decoder::new(&bytes, prec);
        for (t, &s) in tables.iter().zip(syms) {
            assert_eq!(d.decode(t).unwrap(), s);
        }
        bytes.len()
    }

    #[test]
    fn empty_message_is_empty() {
        for prec in BOTH {
            assert!(Encoder::new(prec).finish().is_empty());
        }
    }

    #[test]
    fn quantize_keeps_every_symbol_and_sums_to_total() {
        let mut g = SplitMix64::new(3);
        let mut cdf = [0; 257];
        for prec in BOTH {
            for scale in [0.0f32, 1.0, 10.0, 100.0, 1e6] {
                let logits: Vec<f32> = (0..256).map(|_| g.normal(1.0) * scale).collect();
                quantize(&logits, prec, &mut cdf);
                assert_eq!(cdf[256], prec.total());
                assert!(cdf.windows(2).all(|w| w[1] > w[0]), "every freq >= 1");
            }
            // Diverged model: NaN and infinities give a valid uniform table.
            let mut bad = vec![f32::NAN; 256];
            quantize(&bad, prec, &mut cdf);
            assert_eq!(cdf[256], prec.total());
            bad.iter_mut().for_each(|x| *x = f32::INFINITY);
            quantize(&bad, prec, &mut cdf);
            assert!(cdf.windows(2).all(|w| w[1] > w[0]));
        }
    }

    /// floor(p * (TOTAL - 256)) of a softmax computed in f32, as a device does;
    /// `inflate` makes its sum a hair over 1 (no p is ever over 1).
    fn device_floors(logits: &[f32], inflate: f32, prec: Precision) -> Vec<u32> {
        let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
        let sum: f32 = e.iter().sum();
        let spread = (prec.total() - 256) as f32;
        e.iter()
            .map(|&x| ((x / sum * inflate).min(1.0) * spread).floor() as u32)
            .collect()
    }

    #[test]
    fn floors_give_valid_tables_close_to_the_host_quantiser() {
        let mut g = SplitMix64::new(21);
        let (mut host, mut dev) = ([0; 257], [0; 257]);
        for prec in BOTH {
            for scale in [0.0f32, 1.0, 10.0, 100.0] {
                for inflate in [1.0f32, 1.000_01] {
                    let logits: Vec<f32> = (0..256).map(|_| g.normal(1.0) * scale).collect();
                    quantize(&logits, prec, &mut host);
                    cdf_from_floors(&device_floors(&logits, inflate, prec), prec, &mut dev);
                    assert_eq!(dev[256], prec.total());
                    assert!(dev.windows(2).all(|w| w[1] > w[0]), "every freq >= 1");
                    // Same table up to a few counts per symbol, and the f32
                    // rounding and inflation of the device's (1e-5 of a
                    // count); the most probable symbol takes both sides'
                    // rounding remainders, up to 256 counts each.
                    let freq = |c: &Cdf, s: usize| c[s + 1] - c[s];
                    let top = (0..256).max_by_key(|&s| freq(&host, s)).unwrap();
                    for s in 0..256 {
                        let (h, d) = (freq(&host, s), freq(&dev, s));
                        let slack = if s == top { 512 } else { 2 + h / 50_000 };
                        assert!(h.abs_diff(d) <= slack, "symbol {s}: host {h}, device {d}");
                    }
                }
            }
        }
    }

    #[test]
    fn bad_floors_give_the_uniform_table() {
        for prec in BOTH {
            let mut cdf = [0; 257];
            let mut uni = [0; 257];
            uniform(prec, &mut uni);
            // A floor out of range, and a sum too far over the total.
            let mut floors = vec![0u32; 256];
            floors[7] = prec.total();
            cdf_from_floors(&floors, prec, &mut cdf);
            assert_eq!(cdf, uni);
            let floors = vec![prec.total() / 200; 256];
            cdf_from_floors(&floors, prec, &mut cdf);
            assert_eq!(cdf, uni);
            // All zero (NaN cast to 0 on a device): still a valid table.
            cdf_from_floors(&[0; 256], prec, &mut cdf);
            assert_eq!(cdf[256], prec.total());
            assert!(cdf.windows(2).all(|w| w[1] > w[0]));
        }
    }

    #[test]
    fn random_tables_roundtrip() {
        let mut g = SplitMix64::new(11);
        for prec in BOTH {
            let mut tables = Vec::new();
            let mut syms = Vec::new();
            for _ in 0..20_000 {
                let scale = [0.1f32, 3.0, 30.0][(g.next_u64() % 3) as usize];
                let logits: Vec<f32> = (0..256).map(|_| g.normal(1.0) * scale).collect();
                let mut cdf = [0; 257];
                quantize(&logits, prec, &mut cdf);
                tables.push(cdf);
                syms.push((g.next_u64() & 255) as u8);
            }
            roundtrip(&tables, &syms, prec);
        }
    }

    #[test]
    fn extreme_tables_roundtrip_and_cost_what_they_should() {
        for prec in BOTH {
            // One symbol takes all but 255 of the mass.
            let mut freq = [1u32; 256];
            freq[7] = prec.total() - 255;
            let sharp = cdf_from_freqs(&freq, prec);
            // Coding the likely symbol 100k times costs almost nothing...
            let n = roundtrip(&vec![sharp; 100_000], &vec![7u8; 100_000], prec);
            assert!(n < 100, "{n} bytes for 100k near-certain symbols");
            // ...and the least likely ones cost `bits` bits each, and still
            // decode. (Symbol 0 would code as all-zero bytes, which are
            // trimmed: use the top one.)
            let n = roundtrip(&vec![sharp; 1000], &vec![255u8; 1000], prec);
            let want = 1000 * prec.bits() as usize / 8;
            assert!(
                (want - 1..=want + 4).contains(&n),
                "{n} bytes for 1000 symbols of p=2^-{}",
                prec.bits()
            );
            // Alternating extremes exercise carries.
            let syms: Vec<u8> = (0..50_000)
                .map(|i| if i % 3 == 0 { 255 } else { 7 })
                .collect();
            roundtrip(&vec![sharp; 50_000], &syms, prec);
        }
    }

    #[test]
    fn raw_bytes_roundtrip_and_mix_with_modelled() {
        let mut g = SplitMix64::new(5);
        let data: Vec<u8> = (0..10_000).map(|_| g.next_u64() as u8).collect();
        for prec in BOTH {
            let mut cdf = [0; 257];
            quantize(&[0.0; 256], prec, &mut cdf);
            let mut e = Encoder::new(prec);
            for (i, &b) in data.iter().enumerate() {
                if i % 2 == 0 {
                    e.encode_raw(b)
                } else {
                    e.encode(&cdf, b)
                }
            }
            let bytes = e.finish();
            assert!(bytes.len() <= data.len() + 5);
            let mut d = Decoder::new(&bytes, prec);
            for (i, &b) in data.iter().enumerate() {
                let got = if i % 2 == 0 {
                    d.decode_raw()
                } else {
                    d.decode(&cdf)
                };
                assert_eq!(got.unwrap(), b);
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut g = SplitMix64::new(9);
        let mut cdf = [0; 257];
        for prec in BOTH {
            quantize(
                &(0..256).map(|i| i as f32 * 0.1).collect::<Vec<_>>(),
                prec,
                &mut cdf,
            );
            for _ in 0..200 {
                let junk: Vec<u8> = (0..(g.next_u64() % 64))
                    .map(|_| g.next_u64() as u8)
                    .collect();
                let mut d = Decoder::new(&junk, prec);
                for _ in 0..200 {
                    if d.decode(&cdf).is_err() {
                        break;
                    }
                }
            }
        }
    }

    /// Quantisation gives the same tables at every vector level as at baseline.
    #[test]
    fn every_simd_path_gives_the_baseline_tables() {
        use crate::simd::{supported, with_level, Level};
        let mut g = crate::rng::SplitMix64::new(11);
        for spread in [0.01, 1.0, 8.0, 40.0] {
            let logits: Vec<f32> = (0..256).map(|_| g.normal(spread)).collect();
            let run = || {
                let mut cdf = [0u32; 257];
                quantize(&logits, Precision::V3, &mut cdf);
                cdf
            };
            let want = with_level(Level::Baseline, run);
            for l in Level::ALL.into_iter().filter(|&l| supported(l)) {
                assert_eq!(with_level(l, run), want, "{l:?}, spread {spread}");
            }
        }
    }
}
