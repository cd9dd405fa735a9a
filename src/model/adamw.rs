//! AdamW as one fused, in-place op per parameter.
//!
//! Written with candle's tensor ops, AdamW costs about a dozen full passes and
//! allocations per parameter per step, which dominated a training step on CPU.
//! Here it is one pass over plain slices, in a fixed element order,
//! so both sides of the codec compute bit-identical weights.
//!
//! The candle graph (on a GPU) runs the same update as tensor ops with the
//! moments kept on the device: moving them to the host every step would cost
//! more than the update itself. The tests' graph on the CPU runs the fused
//! update as an in-place candle op.

use crate::par::SharedMut;
use crate::preset::Preset;
use crate::simd::wide_kernel;
#[cfg(test)]
use candle_core::{CpuStorage, InplaceOp2, Layout};
use candle_core::{Result, Tensor, Var};
use std::sync::Mutex;

/// Optimizer settings and one moment pair per parameter.
pub struct AdamW {
    lr: f32,
    wd: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    step: i32,
    state: Vec<State>,
}

/// One parameter's moments: host slices for the fused CPU update, or device
/// tensors for the graph's tensor ops.
enum State {
    Host(Mutex<Moments>),
    Device { m: Tensor, v: Tensor },
}

struct Moments {
    m: Vec<f32>,
    v: Vec<f32>,
}

/// One step's update: the settings and the step's bias corrections.
struct Settings {
    lr: f32,
    wd: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    /// 1 / (1 - b1^t) and 1 / (1 - b2^t), computed once per step.
    c1: f32,
    c2: f32,
}

/// One parameter's buffers in [`AdamW::step_host`]: each range of the step
/// writes only its own elements of them.
struct Part<'a> {
    p: SharedMut<f32>,
    m: SharedMut<f32>,
    v: SharedMut<f32>,
    g: &'a [f32],
}

/// The update of one parameter as an in-place candle op (the tests' graph on
/// the CPU).
#[cfg(test)]
struct Update<'a> {
    moments: &'a Mutex<Moments>,
    u: Settings,
}

#[cfg(test)]
impl Update<'_> {
    fn apply(&self, p: &mut [f32], g: &[f32]) {
        let mut mo = self.moments.lock().unwrap_or_else(|e| e.into_inner());
        let Moments { m, v } = &mut *mo;
        let n = p.len();
        assert!(g.len() >= n && m.len() >= n && v.len() >= n);
        adamw_kernel(p, &g[..n], &mut m[..n], &mut v[..n], &self.u);
    }
}

wide_kernel! {
    fn adamw_kernel(p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32], u: &Settings) {
        let decay = 1.0 - u.lr * u.wd;
        let n = p.len();
        let (g, m, v) = (&g[..n], &mut m[..n], &mut v[..n]);
        for i in 0..n {
            let gi = g[i];
            let mi = u.b1 * m[i] + (1.0 - u.b1) * gi;
            let vi = u.b2 * v[i] + (1.0 - u.b2) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            let upd = (mi * u.c1) / ((vi * u.c2).sqrt() + u.eps);
            p[i] = p[i] * decay - u.lr * upd;
        }
    }
}

#[cfg(test)]
impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "fused-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            candle_core::bail!("fused-adamw needs contiguous tensors")
        };
        match (s1, s2) {
            (CpuStorage::F32(p), CpuStorage::F32(g)) => {
                self.apply(&mut p[a0..a1], &g[b0..b1]);
                Ok(())
            }
            _ => candle_core::bail!("fused-adamw needs f32 tensors"),
        }
    }
}

/// b^t for t >= 1 by square-and-multiply in f64, written out so the format
/// does not depend on how a compiler lowers `powi` (these are the steps of
/// compiler-builtins' `__powidf2`, which `f64::powi` calls today).
fn powi(b: f64, t: i32) -> f64 {
    let (mut a, mut n, mut r) = (b, t.unsigned_abs(), 1.0f64);
    loop {
        if n & 1 != 0 {
            r *= a;
        }
        n >>= 1;
        if n == 0 {
            break;
        }
        a *= a;
    }
    if t < 0 {
        1.0 / r
    } else {
        r
    }
}

impl AdamW {
    /// Zero moments for every parameter of the graph's `vars`: on the
    /// device, or on the host where the tests' graph runs the CPU's ops.
    pub fn new(p: &Preset, vars: &[(String, Var)]) -> Result<Self> {
        let mut state = Vec::with_capacity(vars.len());
        for (_, v) in vars {
            let on_host = cfg!(test) && crate::model::host_step_on(v.device());
            state.push(if !on_host {
                State::Device {
                    m: v.zeros_like()?,
                    v: v.zeros_like()?,
                }
            } else {
                let n = v.elem_count();
                State::Host(Mutex::new(Moments {
                    m: vec![0.0; n],
                    v: vec![0.0; n],
                }))
            });
        }
        Ok(Self {
            lr: p.lr,
            wd: p.weight_decay,
            b1: p.beta1,
            b2: p.beta2,
            eps: p.eps,
            step: 0,
            state,
        })
    }

    /// Zero moments on the host for parameters of `sizes` values (the
    /// written-out CPU step's).
    pub fn for_host(p: &Preset, sizes: &[usize]) -> Self {
        let moments = |n: usize| {
            State::Host(Mutex::new(Moments {
                m: vec![0.0; n],
                v: vec![0.0; n],
            }))
        };
        Self {
            lr: p.lr,
            wd: p.weight_decay,
            b1: p.beta1,
            b2: p.beta2,
            eps: p.eps,
            step: 0,
            state: sizes.iter().map(|&n| moments(n)).collect(),
        }
    }

    /// Counts a step; its bias corrections 1 / (1 - b1^t) and 1 / (1 - b2^t).
    fn next_step(&mut self) -> (f32, f32) {
        self.step += 1;
        let c1 = (1.0 / (1.0 - powi(self.b1 as f64, self.step))) as f32;
        let c2 = (1.0 / (1.0 - powi(self.b2 as f64, self.step))) as f32;
        (c1, c2)
    }

    /// The update's settings at the step with bias corrections `c1`, `c2`.
    fn settings(&self, c1: f32, c2: f32) -> Settings {
        Settings {
            lr: self.lr,
            wd: self.wd,
            b1: self.b1,
            b2: self.b2,
            eps: self.eps,
            c1,
            c2,
        }
    }

    /// One optimizer step on host parameters with their gradients (the
    /// written-out CPU step's buffers, in the same order as the variables the
    /// optimizer was made for).
    ///
    /// Every parameter's elements are one index space, cut into ranges once:
    /// a step has dozens of parameters, many of them a few hundred values, and
    /// handing each to the threads on its own cost a fork and a join apiece
    /// (or left it to one thread). Each element's update is on its own, so the
    /// cut does not change a bit.
    pub fn step_host(&mut self, params: &mut [Vec<f32>], grads: &[Vec<f32>]) -> Result<()> {
        let (c1, c2) = self.next_step();
        if params.len() != self.state.len() || grads.len() != self.state.len() {
            candle_core::bail!("host step: parameter lists of the wrong length");
        }
        let mut held = Vec::with_capacity(params.len());
        for state in &self.state {
            let State::Host(moments) = state else {
                candle_core::bail!("host step: moments on a device")
            };
            held.push(moments.lock().unwrap_or_else(|e| e.into_inner()));
        }
        let mut parts = Vec::with_capacity(params.len());
        let mut starts = Vec::with_capacity(params.len());
        let mut total = 0;
        for ((p, g), mo) in params.iter_mut().zip(grads).zip(&mut held) {
            let n = p.len();
            if g.len() != n || mo.m.len() != n || mo.v.len() != n {
                candle_core::bail!("host step: a gradient of the wrong size");
            }
            let Moments { m, v } = &mut **mo;
            parts.push(Part {
                p: SharedMut(p.as_mut_ptr()),
                m: SharedMut(m.as_mut_ptr()),
                v: SharedMut(v.as_mut_ptr()),
                g: g.as_slice(),
            });
            starts.push(total);
            total += n;
        }
        let u = self.settings(c1, c2);
        crate::par::for_ranges(total, 8, 64, |r| {
            // The last parameter starting at or before r.start holds it.
            let mut i = starts.partition_point(|&s| s <= r.start) - 1;
            let mut at = r.start;
            while at < r.end {
                let part = &parts[i];
                let (lo, hi) = (at - starts[i], (r.end - starts[i]).min(part.g.len()));
                if lo < hi {
                    // SAFETY: the ranges are disjoint, and lo..hi lies inside
                    // the parameter's buffers (their sizes checked above).
                    let (p, m, v) = unsafe {
                        (
                            part.p.slice(lo, hi - lo),
                            part.m.slice(lo, hi - lo),
                            part.v.slice(lo, hi - lo),
                        )
                    };
                    adamw_kernel(p, &part.g[lo..hi], m, v, &u);
                }
                at = starts[i] + hi;
                i += 1;
            }
        });
        Ok(())
    }

    /// One optimizer step. A parameter without gradient is an error: it would mean
    /// a graph op silently dropped it.
    pub fn step(
        &mut self,
        vars: &[(String, Var)],
        grads: &candle_core::backprop::GradStore,
    ) -> Result<()> {
        let (c1, c2) = self.next_step();
        for ((name, var), i) in vars.iter().zip(0..self.state.len()) {
            let Some(g) = grads.get(var.as_tensor()) else {
                candle_core::bail!("parameter {name} received no gradient")
            };
            if let State::Device { m, v } = &mut self.state[i] {
                // candle leaves a parameter's gradient attached to the
                // step's graph. Moments built from it would hold every
                // step's graph alive, one after another: device memory
                // grew by gigabytes a second on a GPU until it ran out.
                let g = g.detach();
                let (b1, b2) = (self.b1 as f64, self.b2 as f64);
                *m = (m.affine(b1, 0.0)? + g.affine(1.0 - b1, 0.0)?)?;
                *v = (v.affine(b2, 0.0)? + g.sqr()?.affine(1.0 - b2, 0.0)?)?;
                let denom = v
                    .affine(c2 as f64, 0.0)?
                    .sqrt()?
                    .affine(1.0, self.eps as f64)?;
                let upd = (m.affine(c1 as f64, 0.0)? / denom)?;
                let decay = 1.0 - self.lr as f64 * self.wd as f64;
                let w = (var.as_tensor().affine(decay, 0.0)? - upd.affine(self.lr as f64, 0.0)?)?;
                var.set(&w)?;
                continue;
            }
            // Moments on the host: the tests' graph on the CPU.
            #[cfg(test)]
            if let State::Host(moments) = &self.state[i] {
                let g: Tensor = g.contiguous()?;
                let op = Update {
                    moments,
                    u: self.settings(c1, c2),
                };
                var.as_tensor().inplace_op2(&g, &op)?;
                continue;
            }
            candle_core::bail!("graph step: the moments of {name} are on the host")
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn fused_op_matches_the_textbook_update() {
        textbook(false);
    }

    #[test]
    fn tensor_op_path_matches_the_textbook_update() {
        textbook(true);
    }

    fn textbook(tensor_ops: bool) {
        let p = Preset::load("default").unwrap();
        let var =
            Var::from_tensor(&Tensor::new(&[1.0f32, -2.0, 0.5], &Device::Cpu).unwrap()).unwrap();
        let vars = vec![("x".to_string(), var.clone())];
        // The path is chosen per parameter when the optimizer is built.
        crate::model::gpu_paths_on_this_thread(tensor_ops);
        let mut opt = AdamW::new(&p, &vars).unwrap();
        crate::model::gpu_paths_on_this_thread(false);
        // loss = sum(x^2) -> grad 2x.
        let mut expect = vec![1.0f64, -2.0, 0.5];
        let (mut m, mut v) = (vec![0f64; 3], vec![0f64; 3]);
        for t in 1..=3 {
            let loss = var.as_tensor().sqr().unwrap().sum_all().unwrap();
            let grads = loss.backward().unwrap();
            opt.step(&vars, &grads).unwrap();
            for i in 0..3 {
                let g = 2.0 * expect[i];
                m[i] = 0.9 * m[i] + 0.1 * g;
                v[i] = 0.999 * v[i] + 0.001 * g * g;
                let mh = m[i] / (1.0 - 0.9f64.powi(t));
                let vh = v[i] / (1.0 - 0.999f64.powi(t));
                expect[i] = expect[i] * (1.0 - p.lr as f64 * p.weight_decay as f64)
                    - p.lr as f64 * mh / (vh.sqrt() + 1e-8);
            }
        }
        // The moments carry no graph: each step's would stay alive otherwise.
        for s in &opt.state {
            if let State::Device { m, v } = s {
                assert!(!m.track_op() && !v.track_op(), "moments keep the graph");
            }
        }
        let got = var.as_tensor().to_vec1::<f32>().unwrap();
        for i in 0..3 {
            assert!(
                (got[i] as f64 - expect[i]).abs() < 1e-5,
                "{got:?} vs {expect:?}"
            );
        }
    }

    /// The update computes the same bits at every vector level as at baseline.
    #[test]
    fn every_simd_path_gives_the_baseline_bits() {
        use crate::simd::{supported, with_level, Level};
        let p = Preset::load("default").unwrap();
        for n in [1usize, 7, 513, 1024, 4097] {
            let mut g = crate::rng::SplitMix64::new(n as u64);
            let mut vals = |s: f64| (0..n).map(|_| g.normal(s)).collect::<Vec<f32>>();
            let (p0, gr, m0) = (vals(1.0), vals(0.01), vals(0.001));
            let v0: Vec<f32> = vals(0.0001).iter().map(|x| x * x).collect();
            let run = || {
                let moments = Mutex::new(Moments {
                    m: m0.clone(),
                    v: v0.clone(),
                });
                let u = Update {
                    moments: &moments,
                    u: Settings {
                        lr: p.lr,
                        wd: p.weight_decay,
                        b1: p.beta1,
                        b2: p.beta2,
                        eps: p.eps,
                        c1: 1.7,
                        c2: 9.3,
                    },
                };
                let mut params = p0.clone();
                u.apply(&mut params, &gr);
                let m = moments.into_inner().unwrap();
                [params, m.m, m.v].map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
            };
            let want = with_level(Level::Baseline, run);
            for l in Level::ALL.into_iter().filter(|&l| supported(l)) {
                assert!(with_level(l, run) == want, "{l:?} differs at n = {n}");
            }
        }
    }

    /// The written-out power gives the bits `f64::powi` gave (files made
    /// before it still decode).
    #[test]
    fn powi_matches_the_standard_library() {
        for b in [0.9f32, 0.999, 0.95, 0.98, 0.5] {
            for t in (1..20_000).chain([1 << 20, i32::MAX]) {
                let b = b as f64;
                assert_eq!(powi(b, t).to_bits(), b.powi(t).to_bits(), "{b}^{t}");
            }
        }
    }
}
