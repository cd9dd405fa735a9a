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
mod dims;
mod graph;
mod host;
mod init;
mod ops;

pub(crate) use dims::Dims;
pub(crate) use init::PICK_DIM;
pub use ops::matmul::{gemm, View};

use crate::coder::Precision;
use crate::preset::Preset;
use crate::side::SideInputs;
use candle_core::{DType, Device, Result, Tensor};
use std::borrow::Cow;

/// Whether `dev` runs the written-out step ([`host`]): every CPU. Tests can
/// ask for the GPU's code paths on the CPU ([`gpu_paths_on_this_thread`]),
/// so the code a GPU runs is tested on machines without one.
pub(crate) fn host_step_on(dev: &Device) -> bool {
    dev.is_cpu() && !gpu_paths()
}

/// Whether a test asked this thread for the GPU's code paths.
pub(crate) fn gpu_paths() -> bool {
    #[cfg(test)]
    return GPU_PATHS.with(std::cell::Cell::get);
    #[cfg(not(test))]
    false
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

/// One training step of the network over a batch of lanes, in three parts:
/// the forward pass to B x 256 logits, the backward pass of the mean
/// cross-entropy of the true bytes, and the optimizer's update (which also
/// keeps the step's slot of the rolling cache). Encoder and decoder call the
/// same sequence, so every implementation computes docs/FORMAT.md's
/// canonical arithmetic and the two sides see identical probabilities.
///
/// Two implementations: the written-out CPU step ([`host`], what the CPU
/// runs) and the candle graph ([`graph`], what a CUDA device runs, and the
/// tests' reference on the CPU). [`crate::plan::Plan::host_step`] chooses.
pub(crate) trait Network: Send {
    /// The forward pass on B rows of T context bytes, with the side models'
    /// predictions when the preset has them.
    fn forward(&mut self, ctx: &[u8], side: Option<SideInputs>) -> Result<()>;
    /// The B x 256 logits of the last forward pass, row-major.
    fn logits(&self) -> Result<Cow<'_, [f32]>>;
    /// The B x 256 values `floor(softmax(logits) * (TOTAL - 256))` of the
    /// last forward pass, for [`crate::coder::cdf_from_floors`], computed
    /// where the logits are.
    fn floors(&self, prec: Precision) -> Result<Vec<u32>>;
    /// The gradients of the last forward pass's mean cross-entropy on the
    /// true next byte of every lane.
    fn backward(&mut self, targets: &[u8]) -> Result<()>;
    /// One AdamW step with the gradients of the last backward pass; the
    /// cache keeps that step's slot.
    fn update(&mut self) -> Result<()>;
    /// The norm of every parameter's gradient from the last backward pass,
    /// in the optimizer's order (for tests; -1 where a parameter got none).
    fn grad_norms(&self) -> Result<Vec<f32>>;
}

/// `floor(softmax(logits) * (TOTAL - 256))` on the logits' device. On a GPU
/// this moves the exps off the coder: building a table from floors costs
/// them a quarter of quantising logits (`benches/coder.rs`), and the copy
/// to the host is no larger. A device computes these the same way every
/// time; the fingerprint covers them, so files made this way only decode on
/// a device that computes the same.
fn floors_of(logits: &Tensor, prec: Precision) -> Result<Vec<u32>> {
    let spread = (prec.total() - 256) as f64;
    candle_nn::ops::softmax_last_dim(logits)?
        .affine(spread, 0.0)?
        .floor()?
        .to_dtype(DType::U32)?
        .flatten_all()?
        .to_vec1::<u32>()
}

/// The model: one `Network` (the step) with its parameters' names.
pub struct Model {
    net: Box<dyn Network>,
    names: Vec<String>,
    count: usize,
    dev: Device,
}

impl Model {
    /// A freshly initialised model for `p` (weights from `p.seed`). On the
    /// CPU it runs the written-out step (`model::host`), elsewhere candle's graph.
    pub fn new(p: &Preset, dev: &Device) -> Result<Self> {
        Self::with_step(p, dev, host_step_on(dev))
    }

    /// A model that runs the written-out CPU step if `host`, else the candle
    /// graph (tests hold the two to the same bits).
    pub(crate) fn with_step(p: &Preset, dev: &Device, host: bool) -> Result<Self> {
        let dims = Dims::of(p);
        let params = init::parameters(&dims);
        let names: Vec<String> = params.iter().map(|q| q.name.clone()).collect();
        let count = params.iter().map(init::Param::len).sum();
        let net: Box<dyn Network> = if host {
            let vars = params.iter().map(|q| (q.name.clone(), q.values(p.seed)));
            Box::new(host::Host::new(p, dims, vars.collect())?)
        } else {
            let store = graph::ParamStore::new(&params, p.seed, dev)?;
            Box::new(graph::Graph::new(p, dims, store, dev)?)
        };
        Ok(Self {
            net,
            names,
            count,
            dev: dev.clone(),
        })
    }

    /// The device the model runs on.
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// Number of trainable values.
    pub fn param_count(&self) -> usize {
        self.count
    }

    /// Names of the trainable parameters, in optimizer order.
    pub fn param_names(&self) -> Vec<String> {
        self.names.clone()
    }

    /// Forward pass on the contexts of all lanes: `ctx` holds B rows of T
    /// bytes; `side` the side models' predictions when the preset has them.
    pub fn forward(&mut self, ctx: &[u8], side: Option<SideInputs>) -> Result<()> {
        self.net.forward(ctx, side)
    }

    /// The B x 256 logits of the last forward pass, row-major.
    pub fn logits(&self) -> Result<Cow<'_, [f32]>> {
        self.net.logits()
    }

    /// The floors of the last forward pass (see `Network::floors`).
    pub fn floors(&self, prec: Precision) -> Result<Vec<u32>> {
        self.net.floors(prec)
    }

    /// Learns from the true next byte of every lane: the backward pass of
    /// the last forward pass and one AdamW step.
    pub fn learn(&mut self, targets: &[u8]) -> Result<()> {
        self.net.backward(targets)?;
        self.net.update()
    }

    /// Gradient norm of every parameter for one step on the given data (for
    /// tests); the step is not learned.
    pub fn grad_norms(
        &mut self,
        ctx: &[u8],
        targets: &[u8],
        side: Option<SideInputs>,
    ) -> Result<Vec<(String, f32)>> {
        self.net.forward(ctx, side)?;
        self.net.backward(targets)?;
        let norms = self.net.grad_norms()?;
        Ok(self.names.iter().cloned().zip(norms).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preset::GlobalRead;

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
            m.forward(&ctx, None).unwrap();
            m.learn(&data(4, 2)).unwrap();
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
        m.forward(&data(16, 1), Some(side_inputs(4, &p, 1)))
            .unwrap();
        m.learn(&data(4, 2)).unwrap();
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
            a.forward(&ctx, None).unwrap();
            b.forward(&ctx, None).unwrap();
            let (la, lb) = (a.logits().unwrap().to_vec(), b.logits().unwrap().to_vec());
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
            a.learn(&tg).unwrap();
            b.learn(&tg).unwrap();
        }
        assert!(last < first * 0.7, "loss did not fall: {first} -> {last}");
    }
}
