//! The candle graph's CPU ops, for the tests only: fade's kernels
//! ([`crate::model::ops`]) wrapped as candle custom ops with their backward
//! passes, so that the graph on the CPU computes docs/FORMAT.md's canonical
//! bits and the tests can hold the written-out step ([`crate::model::host`])
//! to them. The product never builds the graph on the CPU; on a GPU the
//! graph takes candle's composed ops instead ([`super::ops`]).

mod gelu;
mod matmul;
mod mix;
mod norm;
mod prob;
mod rows;

pub use gelu::{GeGlu, Gelu};
pub use matmul::matmul;
pub use mix::mix;
pub use norm::{LayerNorm, Normalize};
pub use prob::{cross_entropy, sigmoid, softmax_last_dim};
pub use rows::{add_bias, row_scale, scale};

use candle_core::{CpuStorage, Device, Layout, Result, Tensor};

/// Whether the graph on `dev` takes these ops: on the CPU, unless the
/// thread asked for the GPU's code paths ([`crate::model::gpu_paths_on_this_thread`]).
pub fn on(dev: &Device) -> bool {
    dev.is_cpu() && !crate::model::gpu_paths()
}

/// GELU, exact form.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}

/// Layer norm of the last dimension of `x` with gain `w` and bias `b`.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    x.contiguous()?
        .reshape(((), w.elem_count()))?
        .apply_op3(w, b, LayerNorm { eps: 1e-5 })?
        .reshape(dims)
}

/// GeGLU of `xw` (before its bias `b`).
pub fn geglu(xw: &Tensor, b: &Tensor) -> Result<Tensor> {
    xw.apply_op2(b, GeGlu)
}

/// The contiguous f32 data of a tensor.
fn slice<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("fused op needs a contiguous f32 tensor"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor, Var, D};

    /// The largest absolute difference between two tensors.
    fn max_diff(p: &Tensor, q: &Tensor) -> f32 {
        let d = p.sub(q).unwrap().abs().unwrap().flatten_all().unwrap();
        d.max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    /// Bits of a tensor, so that -0 and +0 differ.
    fn bits(t: &Tensor) -> Vec<u32> {
        let v = t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    /// The whole-layer ops give exactly the bits, forward and backward, of the
    /// smaller ops they replaced (files made before them must still decode).
    #[test]
    fn layer_ops_match_the_graphs_they_replace_bit_for_bit() {
        let dev = Device::Cpu;
        let mut g = crate::rng::SplitMix64::new(8);
        let mut var = |n: usize, shape: (usize, usize), s: f64| {
            let v: Vec<f32> = (0..n).map(|_| g.normal(s)).collect();
            Var::from_vec(v, shape, &dev).unwrap()
        };
        let (x, w, b) = (
            var(60, (6, 10), 2.0),
            var(10, (1, 10), 1.0),
            var(10, (1, 10), 1.0),
        );
        let down = var(60, (6, 10), 1.0);
        let (w, b) = (
            w.as_tensor().flatten_all().unwrap(),
            b.as_tensor().flatten_all().unwrap(),
        );
        let (w, b) = (Var::from_tensor(&w).unwrap(), Var::from_tensor(&b).unwrap());
        let params = [x.as_tensor(), w.as_tensor(), b.as_tensor()];
        // A loss whose gradient has zeros of both signs and a relu-like kink.
        let loss = |y: &Tensor| {
            let y = y.relu().unwrap().sqr().unwrap();
            let n = y.dims()[1];
            y.broadcast_mul(&down.as_tensor().narrow(1, 0, n).unwrap())
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let check = |fused: Tensor, old: Tensor| {
            assert_eq!(bits(&fused), bits(&old), "forward");
            let (gf, go) = (
                loss(&fused).backward().unwrap(),
                loss(&old).backward().unwrap(),
            );
            for p in params {
                // (GeGLU does not use w: no gradient on either side.)
                assert_eq!(gf.get(p).map(bits), go.get(p).map(bits), "gradient");
            }
            assert!(gf.get(params[0]).is_some());
        };
        let (t, wt, bt) = (x.as_tensor(), w.as_tensor(), b.as_tensor());
        let ln = t.apply_op3(wt, bt, LayerNorm { eps: 1e-5 }).unwrap();
        let xn = t.apply_op1(Normalize { eps: 1e-5 }).unwrap();
        check(ln, add_bias(&row_scale(&xn, wt).unwrap(), bt).unwrap());
        let geglu = t.apply_op2(bt, GeGlu).unwrap();
        let u = add_bias(t, bt).unwrap();
        let (a, gate) = (u.narrow(1, 0, 5).unwrap(), u.narrow(1, 5, 5).unwrap());
        let old = (a * gate.contiguous().unwrap().apply_op1(Gelu).unwrap()).unwrap();
        check(geglu, old);
    }

    /// The fused ops and their gradients agree with candle's composed ones.
    #[test]
    fn fused_ops_match_composed_ops_and_gradients() {
        let dev = Device::Cpu;
        let mut g = crate::rng::SplitMix64::new(4);
        let data: Vec<f32> = (0..6 * 10).map(|_| g.normal(2.0)).collect();
        let w: Vec<f32> = (0..6 * 10).map(|_| g.normal(1.0)).collect();
        let w = Tensor::from_vec(w, (6, 10), &dev).unwrap();
        let x = Var::from_vec(data, (6, 10), &dev).unwrap();
        let check = |fused: &Tensor, composed: &Tensor| {
            let (a, b) = (
                fused.broadcast_mul(&w).unwrap().sum_all().unwrap(),
                composed.broadcast_mul(&w).unwrap().sum_all().unwrap(),
            );
            let (ga, gb) = (a.backward().unwrap(), b.backward().unwrap());
            assert!(max_diff(fused, composed) < 1e-5, "values differ");
            assert!(
                max_diff(
                    ga.get(x.as_tensor()).unwrap(),
                    gb.get(x.as_tensor()).unwrap()
                ) < 1e-4,
                "gradients differ"
            );
        };
        let t = x.as_tensor();
        check(&t.apply_op1(Gelu).unwrap(), &t.gelu_erf().unwrap());
        let mean = t.mean_keepdim(D::Minus1).unwrap();
        let xc = t.broadcast_sub(&mean).unwrap();
        let var = xc.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
        let composed = xc
            .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
            .unwrap();
        check(&t.apply_op1(Normalize { eps: 1e-5 }).unwrap(), &composed);
        // Row ops: gradients flow to both operands and match broadcasting ops.
        let v = Var::from_vec(
            (0..10).map(|i| i as f32 * 0.3 - 1.0).collect::<Vec<f32>>(),
            10,
            &dev,
        )
        .unwrap();
        for (fused, composed) in [
            (
                add_bias(t, v.as_tensor()).unwrap(),
                t.broadcast_add(v.as_tensor()).unwrap(),
            ),
            (
                row_scale(t, v.as_tensor()).unwrap(),
                t.broadcast_mul(v.as_tensor()).unwrap(),
            ),
        ] {
            let grads = |y: &Tensor| y.broadcast_mul(&w).unwrap().sum_all().unwrap().backward();
            let (ga, gb) = (grads(&fused).unwrap(), grads(&composed).unwrap());
            for p in [t, v.as_tensor()] {
                assert!(max_diff(ga.get(p).unwrap(), gb.get(p).unwrap()) < 1e-4);
            }
        }
    }

    /// Every op, forward and backward, computes the same bits at every vector
    /// level this machine runs as at the baseline one, over awkward shapes.
    #[test]
    fn every_simd_path_gives_the_baseline_bits() {
        use crate::simd::{supported, with_level, Level};
        let dev = Device::Cpu;
        let pool = crate::par::Pool::new(3);
        let run = |rows: usize, n: usize| -> Vec<Vec<u32>> {
            let mut g = crate::rng::SplitMix64::new((rows * 7919 + n) as u64);
            let mut var = |len: usize, dims: &[usize], s: f64| {
                let v: Vec<f32> = (0..len).map(|_| g.normal(s)).collect();
                Var::from_vec(v, dims, &dev).unwrap()
            };
            let x = var(rows * n, &[rows, n], 3.0);
            let x2 = var(rows * 2 * n, &[rows, 2 * n], 3.0);
            let (w, b) = (var(n, &[n], 1.0), var(2 * n, &[2 * n], 1.0));
            let s = var(1, &[1], 1.0);
            let up = var(n * 24, &[n, 24], 0.3);
            let head = var(24 * 256, &[24, 256], 0.3);
            let ln = x
                .as_tensor()
                .apply_op3(
                    w.as_tensor(),
                    &b.as_tensor().narrow(0, 0, n).unwrap(),
                    LayerNorm { eps: 1e-5 },
                )
                .unwrap();
            let gl = x2.as_tensor().apply_op2(b.as_tensor(), GeGlu).unwrap();
            let y = ((ln.apply_op1(Gelu).unwrap() + gl).unwrap()
                + scale(
                    &row_scale(x.as_tensor(), w.as_tensor()).unwrap(),
                    s.as_tensor(),
                )
                .unwrap())
            .unwrap();
            let y = (sigmoid(&y).unwrap() * softmax_last_dim(&y).unwrap()).unwrap();
            let logits = matmul(&matmul(&y, up.as_tensor()).unwrap(), head.as_tensor()).unwrap();
            let targets: Vec<u8> = (0..rows).map(|r| (r * 37) as u8).collect();
            let grads = cross_entropy(&logits, &targets)
                .unwrap()
                .backward()
                .unwrap();
            let mut out = vec![bits(&logits)];
            for v in [&x, &x2, &w, &b, &s, &up, &head] {
                out.push(bits(grads.get(v.as_tensor()).unwrap()));
            }
            out
        };
        for rows in [1usize, 3, 257] {
            for n in [1usize, 7, 513, 1024, 4097] {
                if rows * n > 300_000 {
                    continue;
                }
                let want = with_level(Level::Baseline, || run(rows, n));
                for l in Level::ALL.into_iter().filter(|&l| supported(l)) {
                    assert!(
                        with_level(l, || run(rows, n)) == want,
                        "{l:?} differs, {rows} x {n}"
                    );
                }
                // Kernels split over threads (rows, columns, elements) too.
                assert!(
                    with_level(Level::Baseline, || pool.run(|| run(rows, n))) == want,
                    "3 threads differ, {rows} x {n}"
                );
            }
        }
    }
}
