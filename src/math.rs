//! Transcendental functions written out in plain f32 arithmetic.
//!
//! glibc's `expf` differs between CPU variants and versions, and encoder and
//! decoder must compute the same bits. These are pure IEEE operations in a
//! fixed order (Rust never contracts them into FMAs on its own), so they give
//! the same result on every x86-64 and ARM machine, and the loops using them
//! vectorise.

/// `f32::round` (halves away from zero) for |y| < 2^23, in operations that
/// vectorise: on baseline x86-64 `f32::round` is a libm call, which kept the
/// loops around [`exp`] scalar (7% of a step). Same bits as `f32::round`, so
/// files written before this change still decode.
#[inline]
fn round(y: f32) -> f32 {
    let a = y.abs();
    // SAFETY: callers pass |y| < 2^23, so the truncation is in i32 range. (The
    // checked `as i32` saturates, and that kept the conversion scalar.)
    let whole = unsafe { a.to_int_unchecked::<i32>() } as f32;
    let up = if a - whole >= 0.5 { 1.0 } else { 0.0 };
    (whole + up).copysign(y)
}

/// e^x with relative error below 2e-7 for x in [-87, 88]; 0 below, +inf above.
#[inline]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.0, 88.0);
    let n = round(x * LOG2E);
    let r = x - n * LN2_HI - n * LN2_LO;
    // Cephes expf polynomial on [-ln2/2, ln2/2].
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // SAFETY: n is a whole number in [-126, 127] after the clamp above.
    let n = unsafe { n.to_int_unchecked::<i32>() };
    y * f32::from_bits(((n + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    #[test]
    fn exp_is_accurate() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (a, b) = (super::exp(x) as f64, (x as f64).exp());
            assert!(((a - b) / b).abs() < 3e-7, "exp({x}) = {a}, want {b}");
            x += 0.0137;
        }
        assert_eq!(super::exp(-1000.0), super::exp(-87.0));
    }

    #[test]
    fn round_matches_the_standard_library() {
        let mut y = -130.0f32;
        while y < 130.0 {
            for v in [
                y,
                y + 0.5,
                y - 0.5,
                (y + 0.5).next_down(),
                (y - 0.5).next_up(),
            ] {
                assert_eq!(super::round(v).to_bits(), v.round().to_bits(), "round({v})");
            }
            y += 0.25;
        }
    }
}
