//! Matrix products in one fixed order, the same bits on every machine.
//!
//! Every output element is one chain of fused multiply-adds over the shared
//! dimension in increasing order, starting from +0:
//!
//! ```text
//! C[i][j] = fma(A[i][k-1], B[k-1][j], ... fma(A[i][1], B[1][j], fma(A[i][0], B[0][j], +0)))
//! ```
//!
//! The x86 kernels advance register tiles of up to 6 rows x 32 columns side by
//! side (AVX-512; 6 x 16 with AVX2), and a portable loop runs one chain at a
//! time elsewhere, so a vector width only changes how many chains advance at
//! once, never a chain's order. General libraries choose their blocking of the shared dimension (and thus
//! their summation order) from the cache sizes and their kernel from the CPU,
//! which is why fade no longer calls them on the model's path. The backward
//! products use the same kernel: dA = dC B^T (B^T copied to row-major, or read
//! through strides when only one or two rows use it) and dB = A^T dC (A read
//! through strides), so they follow the same rule.

use crate::simd::wide_kernel;

/// A read-only matrix view: element (i, p) is `data[off + i * rs + p * cs]`.
#[derive(Clone, Copy)]
pub struct View<'a> {
    pub data: &'a [f32],
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl View<'_> {
    /// The element at (i, p), checked.
    #[cfg(test)]
    pub fn at(&self, i: usize, p: usize) -> f32 {
        self.data[self.off + i * self.rs + p * self.cs]
    }

    /// Whether every element of an `rows x cols` view lies inside `data`.
    fn covers(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || self.off + (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// C (m x n, row-major, overwritten) = A (m x k) B (k x n) in the canonical
/// order. Where B's rows are contiguous (`b.cs == 1`) the widest vector level
/// takes whole column panels (32 or 16 columns at once); the columns left over,
/// and any product with a strided B, run one chain at a time.
pub fn gemm(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>, c: &mut [f32]) {
    assert!(c.len() >= m * n);
    // SAFETY: c holds m x n elements.
    unsafe { gemm_into(m, n, k, a, b, c.as_mut_ptr()) }
}

/// [`gemm`] into memory that may be uninitialised: every one of the m x n
/// elements at `c` is written (the op's output needs no zeroing first).
///
/// # Safety
/// `c` is valid for writes of m x n elements.
pub unsafe fn gemm_into(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>, c: *mut f32) {
    assert!(a.covers(m, k) && b.covers(k, n));
    // Rows are independent chains: the model's threads may take a share each.
    let c = crate::par::SharedMut(c);
    crate::par::for_ranges(m, n * k, 6, |r| {
        let a = View {
            off: a.off + r.start * a.rs,
            ..a
        };
        // SAFETY: rows `r` of a checked product, written only by this range.
        unsafe { gemm_rows(r.len(), n, k, a, b, c.get().add(r.start * n)) }
    });
}

/// [`gemm_into`] on the calling thread.
///
/// # Safety
/// As [`gemm_into`], and the views cover the product.
unsafe fn gemm_rows(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>, c: *mut f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the views were checked to cover the product, `c` holds m x n
    // (the caller's promise), and `level` only names instruction sets the CPU
    // runs.
    let done = unsafe {
        use crate::simd::Level;
        match crate::simd::level() {
            _ if b.cs != 1 => 0,
            Level::Avx512 => x86::gemm_avx512(m, n, k, a, b, c),
            Level::Avx2 => x86::gemm_avx2(m, n, k, a, b, c),
            Level::Baseline => 0,
        }
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    chains(m, n, k, a, b, c, done);
}

wide_kernel! {
    /// Columns `from..n` of C (B may have any strides), several chains at a
    /// time: eight rows of one column, or where fewer than eight rows are
    /// left, eight columns of one row. Each chain still runs over p in
    /// order; advancing eight side by side only hides the FMA's latency
    /// (one chain at a time waited on every step).
    fn chains(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>, c: *mut f32, from: usize) {
        const T: usize = 8;
        // SAFETY: `gemm_into` checked that both views cover the product, and
        // its caller that c holds m x n.
        unsafe {
            let (pa, pb) = (a.data.as_ptr().add(a.off), b.data.as_ptr().add(b.off));
            let at = |i: usize, p: usize| *pa.add(i * a.rs + p * a.cs);
            let bt = |p: usize, j: usize| *pb.add(p * b.rs + j * b.cs);
            let mut i = 0;
            while i + T <= m {
                for j in from..n {
                    let mut s = [0f32; T];
                    for p in 0..k {
                        let bv = bt(p, j);
                        for (r, s) in s.iter_mut().enumerate() {
                            *s = at(i + r, p).mul_add(bv, *s);
                        }
                    }
                    for (r, &s) in s.iter().enumerate() {
                        c.add((i + r) * n + j).write(s);
                    }
                }
                i += T;
            }
            for i in i..m {
                let mut j = from;
                while j + T <= n {
                    let mut s = [0f32; T];
                    for p in 0..k {
                        let av = at(i, p);
                        for (q, s) in s.iter_mut().enumerate() {
                            *s = av.mul_add(bt(p, j + q), *s);
                        }
                    }
                    for (q, &s) in s.iter().enumerate() {
                        c.add(i * n + j + q).write(s);
                    }
                    j += T;
                }
                for j in j..n {
                    let mut s = 0f32;
                    for p in 0..k {
                        s = at(i, p).mul_add(bt(p, j), s);
                    }
                    c.add(i * n + j).write(s);
                }
            }
        }
    }
}

/// Register tiles of R rows x (W vectors) columns, accumulated over p in order
/// with one FMA per element and step: the canonical chain, several at once.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::View;
    use std::arch::x86_64::*;

    /// Runs `tile::<R>` over every row of the column panel starting at `j0`.
    macro_rules! rows {
        ($tile:ident, $m:expr, $k:expr, $a:expr, $b:expr, $c:expr, $n:expr, $j0:expr) => {{
            let (m, k, a, b, n, j0) = ($m, $k, $a, $b, $n, $j0);
            let mut i0 = 0;
            while i0 < m {
                let pa = a.data.as_ptr().add(a.off + i0 * a.rs);
                let pb = b.data.as_ptr().add(b.off + j0);
                let pc = $c.add(i0 * n + j0);
                i0 += match m - i0 {
                    r if r >= 6 => {
                        $tile::<6>(k, pa, a.rs, a.cs, pb, b.rs, pc, n);
                        6
                    }
                    r if r >= 4 => {
                        $tile::<4>(k, pa, a.rs, a.cs, pb, b.rs, pc, n);
                        4
                    }
                    r if r >= 2 => {
                        $tile::<2>(k, pa, a.rs, a.cs, pb, b.rs, pc, n);
                        2
                    }
                    _ => {
                        $tile::<1>(k, pa, a.rs, a.cs, pb, b.rs, pc, n);
                        1
                    }
                };
            }
        }};
    }

    macro_rules! tile {
        ($name:ident, $feat:literal, $vec:ty, $w:expr, $zero:ident, $load:ident, $set1:ident, $fma:ident, $store:ident) => {
            /// # Safety
            /// The CPU runs the features; every address read or written for
            /// R rows, k steps and the tile's columns is in bounds.
            #[target_feature(enable = $feat)]
            #[allow(clippy::too_many_arguments)]
            unsafe fn $name<const R: usize>(
                k: usize,
                a: *const f32,
                a_rs: usize,
                a_cs: usize,
                b: *const f32,
                b_rs: usize,
                c: *mut f32,
                n: usize,
            ) {
                const L: usize = std::mem::size_of::<$vec>() / 4;
                let mut acc = [[$zero(); $w]; R];
                for p in 0..k {
                    let bp = b.add(p * b_rs);
                    let mut bv = [$zero(); $w];
                    for (v, x) in bv.iter_mut().enumerate() {
                        *x = $load(bp.add(v * L));
                    }
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let av = $set1(*a.add(r * a_rs + p * a_cs));
                        for (s, &x) in acc.iter_mut().zip(&bv) {
                            *s = $fma(av, x, *s);
                        }
                    }
                }
                for (r, acc) in acc.iter().enumerate() {
                    for (v, &s) in acc.iter().enumerate() {
                        $store(c.add(r * n + v * L), s);
                    }
                }
            }
        };
    }

    tile!(
        t512x2,
        "avx512f",
        __m512,
        2,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_storeu_ps
    );
    tile!(
        t512x1,
        "avx512f",
        __m512,
        1,
        _mm512_setzero_ps,
        _mm512_loadu_ps,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        _mm512_storeu_ps
    );
    tile!(
        t256x2,
        "avx2,fma",
        __m256,
        2,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_storeu_ps
    );
    tile!(
        t256x1,
        "avx2,fma",
        __m256,
        1,
        _mm256_setzero_ps,
        _mm256_loadu_ps,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        _mm256_storeu_ps
    );

    /// Panels of 32, then 16, then 8 columns; returns the columns done.
    ///
    /// # Safety
    /// The CPU has AVX-512F; the views cover the product (checked by `gemm`).
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn gemm_avx512(
        m: usize,
        n: usize,
        k: usize,
        a: View<'_>,
        b: View<'_>,
        c: *mut f32,
    ) -> usize {
        let mut j0 = 0;
        while j0 + 32 <= n {
            rows!(t512x2, m, k, a, b, c, n, j0);
            j0 += 32;
        }
        if j0 + 16 <= n {
            rows!(t512x1, m, k, a, b, c, n, j0);
            j0 += 16;
        }
        if j0 + 8 <= n {
            rows!(t256x1, m, k, a, b, c, n, j0);
            j0 += 8;
        }
        j0
    }

    /// Panels of 16, then 8 columns; returns the columns done.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; the views cover the product (checked by `gemm`).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gemm_avx2(
        m: usize,
        n: usize,
        k: usize,
        a: View<'_>,
        b: View<'_>,
        c: *mut f32,
    ) -> usize {
        let mut j0 = 0;
        while j0 + 16 <= n {
            rows!(t256x2, m, k, a, b, c, n, j0);
            j0 += 16;
        }
        if j0 + 8 <= n {
            rows!(t256x1, m, k, a, b, c, n, j0);
            j0 += 8;
        }
        j0
    }
}

/// The canonical order written as plainly as possible: the reference every
/// vector path is tested against.
#[cfg(test)]
pub fn gemm_reference(m: usize, n: usize, k: usize, a: View<'_>, b: View<'_>) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f32;
            for p in 0..k {
                s = a.at(i, p).mul_add(b.at(p, j), s);
            }
            c[i * n + j] = s;
        }
    }
    c
}

/// Rows `c0..c1` of `o` (cols x rows; `o` holds those rows only) = columns
/// `c0..c1` of `x` (rows x cols) transposed, in 8 x 8 blocks (`c0` is a
/// multiple of 8), then the rows and columns left over one at a time.
fn transpose_kernel(
    x: &[f32],
    o: &mut [std::mem::MaybeUninit<f32>],
    rows: usize,
    cols: usize,
    c0: usize,
    c1: usize,
) {
    const B: usize = 8;
    let (x, o) = (&x[..rows * cols], &mut o[..rows * (c1 - c0)]);
    let (fr, fc) = (rows / B * B, c0 + (c1 - c0) / B * B);
    #[cfg(target_arch = "x86_64")]
    let blocks_done = if crate::simd::level() != crate::simd::Level::Baseline {
        // SAFETY: the CPU runs AVX2 (`level` says so); every block read lies
        // in rows 0..fr, columns c0..fc of x, every block written in rows
        // 0..fc - c0, columns 0..fr of o (both checked by the slicing above).
        unsafe { x86_transpose::blocks(x, o, rows, cols, c0, fr, fc) };
        true
    } else {
        false
    };
    #[cfg(not(target_arch = "x86_64"))]
    let blocks_done = false;
    if !blocks_done {
        for i0 in (0..fr).step_by(B) {
            for j0 in (c0..fc).step_by(B) {
                let mut blk = [[0f32; B]; B];
                for (i, row) in blk.iter_mut().enumerate() {
                    row.copy_from_slice(&x[(i0 + i) * cols + j0..][..B]);
                }
                for j in 0..B {
                    let dst = &mut o[(j0 - c0 + j) * rows + i0..][..B];
                    for (i, d) in dst.iter_mut().enumerate() {
                        d.write(blk[i][j]);
                    }
                }
            }
        }
    }
    for i in 0..rows {
        let from = if i < fr { fc } else { c0 };
        for j in from..c1 {
            o[(j - c0) * rows + i].write(x[i * cols + j]);
        }
    }
}

/// 8 x 8 blocks transposed in registers (eight loads, 24 shuffles, eight
/// stores a block).
#[cfg(target_arch = "x86_64")]
mod x86_transpose {
    use std::arch::x86_64::*;

    /// The whole 8 x 8 blocks of [`super::transpose_kernel`]: rows `0..fr`,
    /// columns `c0..fc` of `x`.
    ///
    /// # Safety
    /// The CPU runs AVX2; `x` holds rows x cols, `o` holds (fc - c0) x rows,
    /// `fr <= rows`, `c0 <= fc <= cols`, and fr, fc - c0 are multiples of 8.
    #[target_feature(enable = "avx2")]
    pub unsafe fn blocks(
        x: &[f32],
        o: &mut [std::mem::MaybeUninit<f32>],
        rows: usize,
        cols: usize,
        c0: usize,
        fr: usize,
        fc: usize,
    ) {
        debug_assert!(fr <= rows && fc <= cols && fr * cols <= x.len());
        debug_assert!((fc - c0) * rows <= o.len());
        let (px, po) = (x.as_ptr(), o.as_mut_ptr() as *mut f32);
        for i0 in (0..fr).step_by(8) {
            for j0 in (c0..fc).step_by(8) {
                // SAFETY: rows i0..i0 + 8 and columns j0..j0 + 8 of x, rows
                // j0 - c0..+8 and columns i0..i0 + 8 of o (the caller's bounds).
                unsafe {
                    let s = px.add(i0 * cols + j0);
                    let r0 = _mm256_loadu_ps(s);
                    let r1 = _mm256_loadu_ps(s.add(cols));
                    let r2 = _mm256_loadu_ps(s.add(2 * cols));
                    let r3 = _mm256_loadu_ps(s.add(3 * cols));
                    let r4 = _mm256_loadu_ps(s.add(4 * cols));
                    let r5 = _mm256_loadu_ps(s.add(5 * cols));
                    let r6 = _mm256_loadu_ps(s.add(6 * cols));
                    let r7 = _mm256_loadu_ps(s.add(7 * cols));
                    let t0 = _mm256_unpacklo_ps(r0, r1);
                    let t1 = _mm256_unpackhi_ps(r0, r1);
                    let t2 = _mm256_unpacklo_ps(r2, r3);
                    let t3 = _mm256_unpackhi_ps(r2, r3);
                    let t4 = _mm256_unpacklo_ps(r4, r5);
                    let t5 = _mm256_unpackhi_ps(r4, r5);
                    let t6 = _mm256_unpacklo_ps(r6, r7);
                    let t7 = _mm256_unpackhi_ps(r6, r7);
                    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
                    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
                    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
                    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
                    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
                    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
                    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
                    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
                    let d = po.add((j0 - c0) * rows + i0);
                    macro_rules! w {
                        ($j:expr, $sel:literal, $a:ident, $b:ident) => {
                            _mm256_storeu_ps(
                                d.add($j * rows),
                                _mm256_permute2f128_ps::<$sel>($a, $b),
                            )
                        };
                    }
                    w!(0, 0x20, u0, u4);
                    w!(1, 0x20, u1, u5);
                    w!(2, 0x20, u2, u6);
                    w!(3, 0x20, u3, u7);
                    w!(4, 0x31, u0, u4);
                    w!(5, 0x31, u1, u5);
                    w!(6, 0x31, u2, u6);
                    w!(7, 0x31, u3, u7);
                }
            }
        }
    }
}

/// `out` (cols x rows) = `x` (rows x cols) transposed.
pub(crate) fn transpose_into(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    let out = &mut out[..rows * cols];
    // SAFETY: f32 and MaybeUninit<f32> have the same layout, and the kernel
    // only writes initialised values.
    let out = unsafe {
        std::slice::from_raw_parts_mut(
            out.as_mut_ptr() as *mut std::mem::MaybeUninit<f32>,
            out.len(),
        )
    };
    crate::par::rows_mut(out, rows * 8, rows * 8, |c0, o| {
        let c0 = c0 * 8;
        transpose_kernel(x, o, rows, cols, c0, c0 + o.len() / rows.max(1));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::{supported, with_level, Level};

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut g = crate::rng::SplitMix64::new(seed);
        // Mixed magnitudes, so reordering a sum would change its rounding.
        (0..n)
            .map(|i| g.normal(if i % 5 == 0 { 30.0 } else { 0.1 }))
            .collect()
    }

    /// Every vector path equals the scalar reference bit for bit, over awkward
    /// shapes, for plain and transposed A.
    #[test]
    fn every_path_computes_the_canonical_order() {
        let pool = crate::par::Pool::new(3);
        for &k in &[1usize, 7, 513, 1024, 4097] {
            for &m in &[1usize, 3, 257] {
                for &n in &[1usize, 5, 16, 33] {
                    let a = values(m * k, (m * 31 + k) as u64);
                    let b = values(k * n, (n * 17 + k) as u64);
                    for (transposed, b_strided) in [(false, false), (true, false), (false, true)] {
                        let vb = if b_strided {
                            View {
                                data: &b,
                                off: 0,
                                rs: 1,
                                cs: k,
                            }
                        } else {
                            View {
                                data: &b,
                                off: 0,
                                rs: n,
                                cs: 1,
                            }
                        };
                        let va = if transposed {
                            View {
                                data: &a,
                                off: 0,
                                rs: 1,
                                cs: m,
                            }
                        } else {
                            View {
                                data: &a,
                                off: 0,
                                rs: k,
                                cs: 1,
                            }
                        };
                        let want = gemm_reference(m, n, k, va, vb);
                        for l in Level::ALL.into_iter().filter(|&l| supported(l)) {
                            let mut c = vec![f32::NAN; m * n];
                            with_level(l, || gemm(m, n, k, va, vb, &mut c));
                            let same = c.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                            assert!(
                                same,
                                "{l:?} differs: m={m} n={n} k={k} {transposed} {b_strided}"
                            );
                        }
                        // Rows split over threads compute the same chains.
                        let mut c = vec![f32::NAN; m * n];
                        pool.run(|| gemm(m, n, k, va, vb, &mut c));
                        let same = c.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits());
                        assert!(same, "3 threads differ: m={m} n={n} k={k}");
                    }
                }
            }
        }
    }

    /// The transposed copy is the transpose on every level and thread count,
    /// over shapes with and without whole 8 x 8 blocks.
    #[test]
    fn transposes_on_every_path() {
        let pool = crate::par::Pool::new(3);
        for &rows in &[1usize, 7, 8, 16, 29, 256] {
            for &cols in &[1usize, 5, 8, 24, 37, 1024] {
                let x = values(rows * cols, (rows * 7 + cols) as u64);
                let mut want = vec![0f32; rows * cols];
                for i in 0..rows {
                    for j in 0..cols {
                        want[j * rows + i] = x[i * cols + j];
                    }
                }
                for l in Level::ALL.into_iter().filter(|&l| supported(l)) {
                    let mut o = vec![f32::NAN; rows * cols];
                    with_level(l, || transpose_into(&x, rows, cols, &mut o));
                    let same = o.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{l:?}: {rows} x {cols}");
                    let mut o = vec![f32::NAN; rows * cols];
                    pool.run(|| with_level(l, || transpose_into(&x, rows, cols, &mut o)));
                    let same = o.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{l:?}, 3 threads: {rows} x {cols}");
                }
            }
        }
    }
}
