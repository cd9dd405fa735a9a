//! The canonical matrix product as a candle op, with its backward pass.

use super::slice;
use crate::model::ops::{gemm_into, transpose_into};
use crate::model::View;
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// (.., m, k) x (.., k, n) -> (.., m, n) for rank 2 or 3 (equal batch) tensors.
pub struct Matmul;

impl CustomOp2 for Matmul {
    fn name(&self) -> &'static str {
        "fade-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(a), CpuStorage::F32(b)) = (s1, s2) else {
            candle_core::bail!("fade-matmul needs f32 tensors")
        };
        let (da, db) = (l1.dims(), l2.dims());
        let (sa, sb) = (l1.stride(), l2.stride());
        let r = da.len();
        if !(r == 2 || r == 3) || db.len() != r || (r == 3 && da[0] != db[0]) {
            candle_core::bail!("fade-matmul: shapes {da:?} x {db:?}");
        }
        let (m, k, n) = (da[r - 2], da[r - 1], db[r - 1]);
        if db[r - 2] != k {
            candle_core::bail!("fade-matmul: shapes {da:?} x {db:?}");
        }
        let batch = if r == 3 { da[0] } else { 1 };
        let (bsa, bsb) = if r == 3 { (sa[0], sb[0]) } else { (0, 0) };
        let len = batch * m * n;
        let mut out = Vec::<f32>::with_capacity(len);
        let base = out.spare_capacity_mut().as_mut_ptr() as *mut f32;
        let one = |i: usize, base: *mut f32| {
            let va = View {
                data: a,
                off: l1.start_offset() + i * bsa,
                rs: sa[r - 2],
                cs: sa[r - 1],
            };
            let vb = View {
                data: b,
                off: l2.start_offset() + i * bsb,
                rs: sb[r - 2],
                cs: sb[r - 1],
            };
            // SAFETY: batch i's m x n elements lie inside the capacity.
            unsafe { gemm_into(m, n, k, va, vb, base.add(i * m * n)) };
        };
        let out_ptr = crate::par::SharedMut(base);
        crate::par::for_ranges(batch, m * n * k, 1, |items| {
            for i in items {
                one(i, out_ptr.get())
            }
        });
        // SAFETY: every product wrote all of its m x n elements.
        unsafe { out.set_len(len) };
        let mut dims = da.to_vec();
        dims[r - 1] = n;
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = grad.contiguous()?;
        let m = g.dims()[g.rank() - 2];
        let bt = transposed_operand(b, m)?;
        let ga = g.apply_op2_no_bwd(&bt, &Matmul)?;
        let gb = a.t()?.apply_op2_no_bwd(&g, &Matmul)?;
        Ok((Some(ga), Some(gb)))
    }
}

/// The last two dimensions swapped, as a new contiguous tensor. candle's
/// strided copy computes an index per element; this copies 8 x 8 blocks.
struct Transpose;

impl candle_core::CustomOp1 for Transpose {
    fn name(&self) -> &'static str {
        "fade-transpose"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = slice(s, l)?;
        let d = l.dims();
        let r = d.len();
        let (rows, cols) = (d[r - 2], d[r - 1]);
        let mut out = vec![0f32; x.len()];
        let n = (rows * cols).max(1);
        for (xs, os) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            transpose_into(xs, rows, cols, os);
        }
        let mut dims = d.to_vec();
        dims.swap(r - 2, r - 1);
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

/// The transpose of the last two dimensions as a strided view for small
/// products (no copy), or as a contiguous copy that the vector panels can use.
fn transposed_operand(x: &Tensor, rows_using_it: usize) -> Result<Tensor> {
    if rows_using_it <= 2 {
        x.t()
    } else {
        transpose(x)
    }
}

fn transpose(x: &Tensor) -> Result<Tensor> {
    if x.rank() >= 2 && x.is_contiguous() {
        x.apply_op1_no_bwd(&Transpose)
    } else {
        x.t()?.contiguous()
    }
}

/// `a.matmul(b)` in the canonical order.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    a.apply_op2(b, Matmul)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut g = crate::rng::SplitMix64::new(seed);
        (0..n).map(|_| g.normal(1.0)).collect()
    }

    /// The op and its gradients agree with candle's matmul (to rounding).
    #[test]
    fn op_and_gradients_match_candle() {
        use candle_core::{Device, Var};
        let dev = Device::Cpu;
        for (da, db) in [(vec![5, 7], vec![7, 19]), (vec![3, 4, 6], vec![3, 6, 2])] {
            let na: usize = da.iter().product();
            let nb: usize = db.iter().product();
            let a = Var::from_vec(values(na, 1), da.as_slice(), &dev).unwrap();
            let b = Var::from_vec(values(nb, 2), db.as_slice(), &dev).unwrap();
            let ours = a.as_tensor().apply_op2(b.as_tensor(), Matmul).unwrap();
            let theirs = a.matmul(b.as_tensor()).unwrap();
            let diff = |x: &Tensor, y: &Tensor| {
                let d = (x - y).unwrap().abs().unwrap().flatten_all().unwrap();
                d.max(0).unwrap().to_scalar::<f32>().unwrap()
            };
            assert!(diff(&ours, &theirs) < 1e-2);
            let w = Tensor::from_vec(values(ours.elem_count(), 3), ours.dims(), &dev).unwrap();
            let go = (ours * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gt = (theirs * &w)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for v in [&a, &b] {
                let (x, y) = (
                    go.get(v.as_tensor()).unwrap(),
                    gt.get(v.as_tensor()).unwrap(),
                );
                assert_eq!(x.dims(), y.dims());
                assert!(diff(x, y) < 1e-2);
            }
        }
    }
}
