//! The FADE model, trained online.
//!
//! ```text
//! context bytes (B x T) -> embedding (B x T x D)
//!   global stream: newest byte -> GeGLU D->S, appended to a rolling cache of past
//!                  steps (B x G, detached); read by a linear layer (reference) or by
//!                  attention of the context over the cached steps; GELU + a*input
//!   local stream:  LayerNorm over D, depthwise conv (k=3) over T, GELU
//!   fusion:        a = sigmoid(W h); a*global + (1-a)*local
//!   coarse refiner: per branch: LN, down to R, per-lane R x R matrix, up, sigmoid
//!                  gate, per-lane bias, scaled skip
//!   fine refiner:  LN, GeGLU F->H, linear H->F, LN, GELU, scaled skip
//!   output:        linear F->256 logits
//! ```
//! With side models ([`crate::side`]) a mixer adds, to the logits, each side
//! model's 256 scores times a weight per lane computed from the fine
//! refiner's output and the side models' confidences (a product of experts
//! whose exponents the network chooses). The `paper` preset has none.
//!
//! One [`Model::forward`] per coded step gives B x 256 logits; [`Model::learn`]
//! then takes one AdamW step on the cross-entropy of the true bytes. Encoder and
//! decoder call exactly the same sequence, so they see identical probabilities.
//!
//! Deviation from the reference: the reference fills the cache at the first step
//! from a GeGLU F->4096 of the lanes' first T bytes, which it codes uniformly. fade
//! codes every byte with the model from a zero-padded context, so at the first
//! step that context is all padding; the cache starts at zeros instead and fills
//! with one slot per step.

mod adamw;
mod host;
pub mod layers;
mod ops;

use crate::preset::{GlobalRead, Preset};
use crate::side::SideInputs;
pub use ops::matmul::{gemm, View};

use adamw::AdamW;
use candle_core::{DType, Device, Result, Tensor};
use layers::{gelu, DepthwiseConv3, GeGlu, LayerNorm, Linear, ParamStore};

/// Whether tensors on `dev` take fade's fused CPU kernels (layer ops and
/// AdamW). Other devices run candle's composed ops instead; tests can ask for
/// those on the CPU too ([`gpu_paths_on_this_thread`]), so the code a GPU runs
/// is tested on machines without one.
pub(crate) fn fused_kernels(dev: &Device) -> bool {
    #[cfg(test)]
    if GPU_PATHS.with(std::cell::Cell::get) {
        return false;
    }
    dev.is_cpu()
}

#[cfg(test)]
thread_local! {
    static GPU_PATHS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes models built and run on this thread take the non-CPU code paths.
#[cfg(test)]
pub(crate) fn gpu_paths_on_this_thread(on: bool) {
    GPU_PATHS.with(|c| c.set(on));
}

enum Global {
    Linear {
        read: Linear,
    },
    Attention {
        query: Linear,
        pos: Tensor,
        out: Linear,
    },
}

/// Weighs the side models: per lane, one weight per score row from the
/// network's features and the side models' confidences.
struct Mixer {
    rows: usize,
    sources: usize,
    conf: usize,
    from_net: Tensor,
    from_conf: Tensor,
    bias: Tensor,
    /// Small embeddings of each source's predicted byte (257 per source: 256
    /// for none), projected to F and added to the fine refiner's input: the
    /// network sees what the side models predict, not only how much to trust
    /// them. (Full-width embeddings measured the same ratio at 60% more
    /// parameters to update every step.)
    picks: Tensor,
    picks_proj: Linear,
}

/// Initial weights of the score rows: a verified match is usually right, so
/// its one-hot starts strong; count scores (log2 of counts) start mild.
const MATCH_WEIGHT: f32 = 2.0;
const SEEN_WEIGHT: f32 = 0.5;
const COUNT_WEIGHT: f32 = 0.3;
/// Width of the embedding of a side model's predicted byte.
const PICK_DIM: usize = 8;

struct Branch {
    ln: LayerNorm,
    down: Linear,
    lane_w: Tensor,
    up: Linear,
    gate: Linear,
    lane_b: Tensor,
    skip: Tensor,
}

/// The model with its optimizer state and rolling cache.
pub struct Model {
    p: Preset,
    lanes: usize,
    dev: Device,
    emb: Tensor,
    ln_in: LayerNorm,
    cache_enc: GeGlu,
    global: Global,
    global_skip: Tensor,
    ln_local: LayerNorm,
    conv: DepthwiseConv3,
    gate: Linear,
    branches: Vec<Branch>,
    ln_f1: LayerNorm,
    ffn_in: GeGlu,
    ffn_out: Linear,
    ln_f2: LayerNorm,
    fine_skip: Tensor,
    out: Linear,
    mixer: Option<Mixer>,
    cache: Tensor,
    store: ParamStore,
    opt: AdamW,
    /// The written-out CPU step ([`host`]), which owns the parameters from
    /// creation on; `None` where the candle graph above runs the model.
    host: Option<host::Host>,
}

/// The result of one forward pass, kept until the step is learned.
pub struct Step(StepOf);

enum StepOf {
    Graph { logits: Tensor, cache: Tensor },
    Host { logits: Vec<f32> },
}

impl Step {
    /// The B x 256 logits, row-major.
    pub fn logits(&self) -> Result<Vec<f32>> {
        match &self.0 {
            StepOf::Graph { logits, .. } => logits.flatten_all()?.to_vec1::<f32>(),
            StepOf::Host { logits } => Ok(logits.clone()),
        }
    }

    /// The B x 256 values `floor(softmax(logits) * (TOTAL - 256))`, computed on
    /// the model's device, for [`crate::coder::cdf_from_floors`]. On a GPU this
    /// moves the exps off the coder: building a table from floors costs
    /// them a quarter of quantising logits (`benches/coder.rs`), and the copy
    /// to the host is no larger. A device computes these the same way every
    /// time; the fingerprint covers them, so files made this way only decode on
    /// a device that computes the same.
    pub fn floors(&self, prec: crate::coder::Precision) -> Result<Vec<u32>> {
        let spread = (prec.total() - 256) as f64;
        let logits = match &self.0 {
            StepOf::Graph { logits, .. } => logits.clone(),
            StepOf::Host { logits } => {
                Tensor::from_vec(logits.clone(), (logits.len() / 256, 256), &Device::Cpu)?
            }
        };
        candle_nn::ops::softmax_last_dim(&logits)?
            .affine(spread, 0.0)?
            .floor()?
            .to_dtype(DType::U32)?
            .flatten_all()?
            .to_vec1::<u32>()
    }
}

impl Model {
    /// A freshly initialised model for `p` (weights from `p.seed`). On the
    /// CPU it runs the written-out step ([`host`]), elsewhere candle's graph.
    pub fn new(p: &Preset, dev: &Device) -> Result<Self> {
        Self::with_step(p, dev, fused_kernels(dev))
    }

    /// A model that runs the written-out CPU step if `host`, else the candle
    /// graph (tests hold the two to the same bits).
    pub(crate) fn with_step(p: &Preset, dev: &Device, host: bool) -> Result<Self> {
        let (b, t, d) = (p.lanes as usize, p.context as usize, p.embed as usize);
        let f = t * d;
        let (g, s, r) = (
            p.cache as usize,
            p.cache_step as usize,
            p.refiner_rank as usize,
        );
        let mut ps = ParamStore::new(p.seed, dev);
        let emb = ps.normal("embed", &[256, d], 0.01)?;
        let ln_in = LayerNorm::new(&mut ps, "ln_in", f)?;
        let cache_enc = GeGlu::new(&mut ps, "cache_enc", d, s)?;
        let global = match p.global {
            GlobalRead::Linear => Global::Linear {
                read: Linear::new(&mut ps, "global.read", g, f)?,
            },
            GlobalRead::Attention => Global::Attention {
                query: Linear::new(&mut ps, "global.query", f, s)?,
                pos: ps.normal("global.pos", &[p.cache_slots(), s], 0.02)?,
                out: Linear::new(&mut ps, "global.out", s, f)?,
            },
        };
        let global_skip = ps.constant("global.skip", &[1], 1.0)?;
        let ln_local = LayerNorm::new(&mut ps, "ln_local", d)?;
        let conv = DepthwiseConv3::new(&mut ps, "local.conv", d)?;
        let gate = Linear::new(&mut ps, "gate", f, f)?;
        let nb = p.refiner_branches as usize;
        let fb = f / nb;
        let mut branches = Vec::new();
        for i in 0..nb {
            let n = format!("coarse{i}");
            branches.push(Branch {
                ln: LayerNorm::new(&mut ps, &format!("{n}.ln"), fb)?,
                down: Linear::new(&mut ps, &format!("{n}.down"), fb, r)?,
                lane_w: ps.normal(&format!("{n}.lane_w"), &[b, r, r], 0.01)?,
                up: Linear::new(&mut ps, &format!("{n}.up"), r, fb)?,
                gate: Linear::new(&mut ps, &format!("{n}.gate"), fb, fb)?,
                lane_b: ps.normal(&format!("{n}.lane_b"), &[b, fb], 0.01)?,
                skip: ps.constant(&format!("{n}.skip"), &[1], 1.0)?,
            });
        }
        let ln_f1 = LayerNorm::new(&mut ps, "fine.ln1", f)?;
        let ffn_in = GeGlu::new(&mut ps, "fine.in", f, p.ffn as usize)?;
        let ffn_out = Linear::new(&mut ps, "fine.out", p.ffn as usize, f)?;
        let ln_f2 = LayerNorm::new(&mut ps, "fine.ln2", f)?;
        let fine_skip = ps.constant("fine.skip", &[1], 1.0)?;
        let out = Linear::new_normal(&mut ps, "out", f, 256, 0.01)?;
        let rows = p.side().rows();
        let mixer = if rows == 0 {
            None
        } else {
            let conf = p.side().conf_width();
            let matching = p.match_short > 0 || p.match_long > 0;
            let init: Vec<f32> = (0..rows)
                .map(|i| match (matching, i) {
                    (true, 0) => MATCH_WEIGHT,
                    (true, i) if i % 2 == 1 => SEEN_WEIGHT,
                    (false, i) if i % 2 == 0 => SEEN_WEIGHT,
                    _ => COUNT_WEIGHT,
                })
                .collect();
            let sources = p.side().sources();
            Some(Mixer {
                rows,
                sources,
                conf,
                from_net: ps.constant("mix.net", &[f, rows], 0.0)?,
                from_conf: ps.constant("mix.conf", &[conf, rows], 0.0)?,
                bias: ps.values("mix.bias", &[rows], &init)?,
                picks: ps.normal("mix.picks", &[sources * 257, PICK_DIM], 0.1)?,
                picks_proj: Linear::new(&mut ps, "mix.picks_proj", sources * PICK_DIM, f)?,
            })
        };
        let cache = Tensor::zeros((b, g), DType::F32, dev)?;
        let opt = AdamW::new(p, &ps.vars)?;
        let host = if host {
            let mut vars = Vec::with_capacity(ps.vars.len());
            for (name, v) in &ps.vars {
                vars.push((name.clone(), v.as_tensor().flatten_all()?.to_vec1::<f32>()?));
            }
            Some(host::Host::new(p, vars)?)
        } else {
            None
        };
        Ok(Self {
            p: p.clone(),
            lanes: b,
            dev: dev.clone(),
            emb,
            ln_in,
            cache_enc,
            global,
            global_skip,
            ln_local,
            conv,
            gate,
            branches,
            ln_f1,
            ffn_in,
            ffn_out,
            ln_f2,
            fine_skip,
            out,
            mixer,
            cache,
            store: ps,
            opt,
            host,
        })
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// Number of trainable values.
    pub fn param_count(&self) -> usize {
        self.store.count()
    }

    /// Names of the trainable parameters, in optimizer order.
    pub fn param_names(&self) -> Vec<String> {
        self.store.vars.iter().map(|(n, _)| n.clone()).collect()
    }

    /// Forward pass on the contexts of all lanes: `ctx` holds B rows of T
    /// bytes; `side` the side models' predictions when the preset has them.
    pub fn forward(&mut self, ctx: &[u8], side: Option<SideInputs>) -> Result<Step> {
        if let Some(host) = &mut self.host {
            host.forward(ctx, side)?;
            return Ok(Step(StepOf::Host {
                logits: host.logits().to_vec(),
            }));
        }
        self.graph_forward(ctx, side)
    }

    /// [`Model::forward`] as a candle graph.
    fn graph_forward(&self, ctx: &[u8], side: Option<SideInputs>) -> Result<Step> {
        let (b, t, d) = (self.lanes, self.p.context as usize, self.p.embed as usize);
        let f = t * d;
        let ids: Vec<u32> = ctx.iter().map(|&c| c as u32).collect();
        let ids = Tensor::from_vec(ids, b * t, &self.dev)?;
        let x = self.emb.index_select(&ids, 0)?; // (B*T, D)
        let h = self.ln_in.forward(&x.reshape((b, f))?)?;

        // Global stream: append the newest byte's features, read the cache.
        let newest = x.reshape((b, t, d))?.narrow(1, t - 1, 1)?.reshape((b, d))?;
        let slot = self.cache_enc.forward(&newest)?;
        let (g, s) = (self.p.cache as usize, self.p.cache_step as usize);
        let cache = Tensor::cat(&[&self.cache.narrow(1, s, g - s)?, &slot], 1)?;
        let read = match &self.global {
            Global::Linear { read } => read.forward(&cache)?,
            Global::Attention { query, pos, out } => {
                let slots = self.p.cache_slots();
                let keys = ops::add_bias(&cache, &pos.flatten_all()?)?.reshape((b, slots, s))?;
                let q = query.forward(&h)?.affine(1.0 / (s as f64).sqrt(), 0.0)?;
                let scores = ops::matmul(&keys, &q.unsqueeze(2)?)?.reshape((b, slots))?;
                let att = ops::softmax_last_dim(&scores)?;
                let mixed = ops::matmul(&att.unsqueeze(1)?, &keys)?.reshape((b, s))?;
                out.forward(&mixed)?
            }
        };
        let global = (gelu(&read)? + ops::scale(&h, &self.global_skip)?)?;

        // Local stream.
        let xl = self.ln_local.forward(&x.reshape((b, t, d))?)?;
        let local = gelu(&self.conv.forward(&xl)?)?.reshape((b, f))?;

        // Gated fusion: local + a * (global - local).
        let a = ops::sigmoid(&self.gate.forward(&h)?)?;
        let fused = (&local + a.mul(&(global - &local)?)?)?;

        // Coarse refiner, per branch with per-lane parameters.
        let fb = f / self.branches.len();
        let mut parts = Vec::with_capacity(self.branches.len());
        for (i, br) in self.branches.iter().enumerate() {
            let xb = fused.narrow(1, i * fb, fb)?;
            let n = br.ln.forward(&xb)?;
            let z = ops::matmul(&br.down.forward(&n)?.unsqueeze(1)?, &br.lane_w)?.squeeze(1)?;
            let u = br.up.forward(&z)?;
            let gate = ops::sigmoid(&br.gate.forward(&n)?)?;
            let y = ((u * gate)? + &br.lane_b)?;
            parts.push((y + ops::scale(&xb, &br.skip)?)?);
        }
        let mut coarse = Tensor::cat(&parts, 1)?;
        if let (Some(mx), Some(side)) = (&self.mixer, &side) {
            {
                let table = &mx.picks;
                let ids: Vec<u32> = side
                    .picks
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| (i % mx.sources) as u32 * 257 + p)
                    .collect();
                let ids = Tensor::from_vec(ids, b * mx.sources, &self.dev)?;
                let e = table.index_select(&ids, 0)?;
                let e = e.reshape((b, mx.sources * PICK_DIM))?;
                coarse = (coarse + mx.picks_proj.forward(&e)?)?;
            }
        }

        // Fine refiner.
        let n = self.ln_f1.forward(&coarse)?;
        let y = self.ffn_out.forward(&self.ffn_in.forward(&n)?)?;
        let y = (gelu(&self.ln_f2.forward(&y)?)? + ops::scale(&coarse, &self.fine_skip)?)?;
        let mut logits = self.out.forward(&y)?;
        if let Some(mx) = &self.mixer {
            let Some(side) = side else {
                candle_core::bail!("the preset mixes side models, but none were given")
            };
            if side.scores.lanes() != b || side.scores.rows != mx.rows {
                candle_core::bail!("side scores of the wrong shape")
            }
            let scores = std::sync::Arc::new(side.scores);
            let conf = Tensor::from_vec(side.conf, (b, mx.conf), &self.dev)?;
            let w = (ops::matmul(&y, &mx.from_net)? + ops::matmul(&conf, &mx.from_conf)?)?;
            let w = ops::add_bias(&w, &mx.bias)?;
            let bonus = ops::mix(&w, &scores)?;
            logits = (logits + bonus)?;
        }
        Ok(Step(StepOf::Graph { logits, cache }))
    }

    /// Learns from the true next byte of every lane: one AdamW step on the mean
    /// cross-entropy, then the cache keeps this step's slot.
    pub fn learn(&mut self, step: Step, targets: &[u8]) -> Result<()> {
        match (step.0, &mut self.host) {
            (StepOf::Host { .. }, Some(host)) => host.learn(targets, &mut self.opt),
            (StepOf::Graph { logits, cache }, None) => {
                let grads = ops::cross_entropy(&logits, targets)?.backward()?;
                self.opt.step(&self.store.vars, &grads)?;
                self.cache = cache.detach();
                Ok(())
            }
            _ => candle_core::bail!("a step learned by a model that did not make it"),
        }
    }

    /// Gradient norm of every parameter for one step on the given data (for tests).
    pub fn grad_norms(
        &mut self,
        ctx: &[u8],
        targets: &[u8],
        side: Option<SideInputs>,
    ) -> Result<Vec<(String, f32)>> {
        if let Some(host) = &mut self.host {
            host.forward(ctx, side)?;
            host.backward(targets);
            let norms = self.store.vars.iter().zip(&host.grads);
            return Ok(norms
                .map(|((name, _), g)| (name.clone(), g.iter().map(|v| v * v).sum::<f32>().sqrt()))
                .collect());
        }
        let step = self.graph_forward(ctx, side)?;
        let StepOf::Graph { logits, .. } = step.0 else {
            candle_core::bail!("graph step expected")
        };
        let grads = ops::cross_entropy(&logits, targets)?.backward()?;
        let mut out = Vec::new();
        for (name, var) in &self.store.vars {
            let n = match grads.get(var.as_tensor()) {
                Some(g) => g.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt(),
                None => -1.0,
            };
            out.push((name.clone(), n));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Preset {
        let mut p = Preset::load("default").unwrap();
        p.lanes = 4;
        p.context = 4;
        p.embed = 4;
        p.cache = 32;
        p.cache_step = 8;
        p.refiner_rank = 4;
        p.ffn = 16;
        p.orders.clear();
        p.contexts.clear();
        p.match_short = 0;
        p.match_long = 0;
        p
    }

    /// Side inputs of `rows` score rows and `conf` features for `b` lanes,
    /// every one non-zero somewhere.
    fn side_inputs(b: usize, p: &Preset, seed: u64) -> SideInputs {
        let (rows, conf, sources) = (p.side().rows(), p.side().conf_width(), p.side().sources());
        let mut g = crate::rng::SplitMix64::new(seed);
        SideInputs {
            scores: crate::side::Scores::from_dense(
                rows,
                &(0..b * rows * 256)
                    .map(|_| (g.next_u64() % 4) as f32)
                    .collect::<Vec<_>>(),
            ),
            conf: (0..b * conf).map(|_| (g.next_u64() % 2) as f32).collect(),
            picks: (0..b * sources)
                .map(|_| (g.next_u64() % 257) as u32)
                .collect(),
            hints: Vec::new(),
            seen: Vec::new(),
        }
    }

    fn data(n: usize, seed: u64) -> Vec<u8> {
        let mut g = crate::rng::SplitMix64::new(seed);
        (0..n).map(|_| (g.next_u64() % 7) as u8 + b'a').collect()
    }

    #[test]
    fn every_parameter_gets_a_gradient() {
        for global in [GlobalRead::Linear, GlobalRead::Attention] {
            let mut p = tiny();
            p.global = global;
            let mut m = Model::new(&p, &Device::Cpu).unwrap();
            // Two steps, so the cache slot from step 1 is non-zero at step 2.
            let ctx = data(16, 1);
            let st = m.forward(&ctx, None).unwrap();
            m.learn(st, &data(4, 2)).unwrap();
            for (name, n) in m.grad_norms(&data(16, 3), &data(4, 4), None).unwrap() {
                assert!(
                    n > 0.0 && n.is_finite(),
                    "{global:?}: {name} has gradient norm {n}"
                );
            }
        }
    }

    /// With side models, the mixer's parameters and every network parameter
    /// get a gradient through the mixed logits.
    #[test]
    fn with_side_models_every_parameter_gets_a_gradient() {
        let mut p = tiny();
        p.orders = vec![1, 2];
        p.stats_bits = 10;
        p.match_short = 4;
        p.match_bits = 10;
        assert_eq!(p.side().rows(), 5);
        let mut m = Model::new(&p, &Device::Cpu).unwrap();
        assert_eq!(p.param_count(), m.param_count() as u64);
        let st = m
            .forward(&data(16, 1), Some(side_inputs(4, &p, 1)))
            .unwrap();
        m.learn(st, &data(4, 2)).unwrap();
        let side = Some(side_inputs(4, &p, 2));
        let norms = m.grad_norms(&data(16, 3), &data(4, 4), side).unwrap();
        assert!(norms.iter().any(|(n, _)| n == "mix.conf"));
        for (name, n) in norms {
            assert!(n > 0.0 && n.is_finite(), "{name} has gradient norm {n}");
        }
        // A preset with side models needs them at every step.
        assert!(m.forward(&data(16, 5), None).is_err());
    }

    #[test]
    fn two_models_agree_bit_for_bit_and_learn() {
        let p = tiny();
        let mut a = Model::new(&p, &Device::Cpu).unwrap();
        let mut b = Model::new(&p, &Device::Cpu).unwrap();
        let text = data(4 * 200, 9);
        let mut first = 0f32;
        let mut last = 0f32;
        for step in 0..150 {
            let ctx: Vec<u8> = (0..4)
                .flat_map(|l| text[l * 200 + step..l * 200 + step + 4].to_vec())
                .collect();
            let tg: Vec<u8> = (0..4).map(|l| text[l * 200 + step + 4]).collect();
            let (sa, sb) = (
                a.forward(&ctx, None).unwrap(),
                b.forward(&ctx, None).unwrap(),
            );
            let (la, lb) = (sa.logits().unwrap(), sb.logits().unwrap());
            assert_eq!(
                la.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                lb.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
            );
            let ce: f32 = (0..4)
                .map(|l| {
                    let row = &la[l * 256..(l + 1) * 256];
                    let mx = row.iter().cloned().fold(f32::MIN, f32::max);
                    let z: f32 = row.iter().map(|v| (v - mx).exp()).sum();
                    -(row[tg[l] as usize] - mx - z.ln())
                })
                .sum::<f32>()
                / 4.0;
            if step < 10 {
                first += ce;
            }
            if step >= 140 {
                last += ce;
            }
            a.learn(sa, &tg).unwrap();
            b.learn(sb, &tg).unwrap();
        }
        assert!(last < first * 0.7, "loss did not fall: {first} -> {last}");
    }
}
