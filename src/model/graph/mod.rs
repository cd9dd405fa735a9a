//! The step as a candle graph: the implementation a CUDA device runs, and on
//! the CPU the tests' reference for the written-out step ([`super::host`]).
//!
//! Off the CPU every layer is composed from candle's ops; on the CPU (tests
//! only: the product runs the written-out step there) the layers take fade's
//! fused kernels, so the graph computes the canonical bits of docs/FORMAT.md
//! and the tests hold the written-out step to them. Gradients come from
//! candle's autograd, the update from [`AdamW::step`].

mod layers;
mod ops;
#[cfg(test)]
mod oracle;

pub(crate) use layers::ParamStore;

use super::adamw::AdamW;
use super::dims::Dims;
use super::init::PICK_DIM;
use super::Network;
use crate::coder::Precision;
use crate::preset::{GlobalRead, Preset};
use crate::side::SideInputs;
use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Result, Tensor};
use layers::{DepthwiseConv3, GeGlu, LayerNorm, Linear};
use ops::gelu;
use std::borrow::Cow;

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
    from_net: Tensor,
    from_conf: Tensor,
    bias: Tensor,
    picks: Tensor,
    picks_proj: Linear,
}

struct Branch {
    ln: LayerNorm,
    down: Linear,
    lane_w: Tensor,
    up: Linear,
    gate: Linear,
    lane_b: Tensor,
    skip: Tensor,
}

/// The last forward pass, kept until it is learned.
struct Pending {
    logits: Tensor,
    cache: Tensor,
    grads: Option<GradStore>,
}

/// The model as a candle graph, with its optimizer and rolling cache.
pub(super) struct Graph {
    dims: Dims,
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
    pending: Option<Pending>,
}

impl Graph {
    /// The graph of `p`'s model on `dev`, its variables made from `store`.
    pub(super) fn new(p: &Preset, dims: Dims, store: ParamStore, dev: &Device) -> Result<Self> {
        let ps = &store;
        let global = match dims.global {
            GlobalRead::Linear => Global::Linear {
                read: Linear::load(ps, "global.read")?,
            },
            GlobalRead::Attention => Global::Attention {
                query: Linear::load(ps, "global.query")?,
                pos: ps.get("global.pos")?,
                out: Linear::load(ps, "global.out")?,
            },
        };
        let mut branches = Vec::new();
        for i in 0..dims.nb {
            let n = format!("coarse{i}");
            branches.push(Branch {
                ln: LayerNorm::load(ps, &format!("{n}.ln"))?,
                down: Linear::load(ps, &format!("{n}.down"))?,
                lane_w: ps.get(&format!("{n}.lane_w"))?,
                up: Linear::load(ps, &format!("{n}.up"))?,
                gate: Linear::load(ps, &format!("{n}.gate"))?,
                lane_b: ps.get(&format!("{n}.lane_b"))?,
                skip: ps.get(&format!("{n}.skip"))?,
            });
        }
        let mixer = match dims.mixer {
            None => None,
            Some(_) => Some(Mixer {
                from_net: ps.get("mix.net")?,
                from_conf: ps.get("mix.conf")?,
                bias: ps.get("mix.bias")?,
                picks: ps.get("mix.picks")?,
                picks_proj: Linear::load(ps, "mix.picks_proj")?,
            }),
        };
        Ok(Self {
            dims,
            dev: dev.clone(),
            emb: ps.get("embed")?,
            ln_in: LayerNorm::load(ps, "ln_in")?,
            cache_enc: GeGlu::load(ps, "cache_enc")?,
            global,
            global_skip: ps.get("global.skip")?,
            ln_local: LayerNorm::load(ps, "ln_local")?,
            conv: DepthwiseConv3::load(ps, "local.conv")?,
            gate: Linear::load(ps, "gate")?,
            branches,
            ln_f1: LayerNorm::load(ps, "fine.ln1")?,
            ffn_in: GeGlu::load(ps, "fine.in")?,
            ffn_out: Linear::load(ps, "fine.out")?,
            ln_f2: LayerNorm::load(ps, "fine.ln2")?,
            fine_skip: ps.get("fine.skip")?,
            out: Linear::load(ps, "out")?,
            mixer,
            cache: Tensor::zeros((dims.b, dims.g), DType::F32, dev)?,
            opt: AdamW::new(p, &store.vars)?,
            store,
            pending: None,
        })
    }

    /// The global stream: the newest byte's slot joins the cache, which is
    /// read; returns the stream's output and the new cache.
    fn global_stream(&self, x: &Tensor, h: &Tensor) -> Result<(Tensor, Tensor)> {
        let Dims { b, t, d, g, s, .. } = self.dims;
        let newest = x.reshape((b, t, d))?.narrow(1, t - 1, 1)?.reshape((b, d))?;
        let slot = self.cache_enc.forward(&newest)?;
        let cache = Tensor::cat(&[&self.cache.narrow(1, s, g - s)?, &slot], 1)?;
        let read = match &self.global {
            Global::Linear { read } => read.forward(&cache)?,
            Global::Attention { query, pos, out } => {
                let slots = self.dims.slots;
                let keys = ops::add_bias(&cache, &pos.flatten_all()?)?.reshape((b, slots, s))?;
                let q = query.forward(h)?.affine(1.0 / (s as f64).sqrt(), 0.0)?;
                let scores = ops::matmul(&keys, &q.unsqueeze(2)?)?.reshape((b, slots))?;
                let att = ops::softmax_last_dim(&scores)?;
                let mixed = ops::matmul(&att.unsqueeze(1)?, &keys)?.reshape((b, s))?;
                out.forward(&mixed)?
            }
        };
        Ok(((gelu(&read)? + ops::scale(h, &self.global_skip)?)?, cache))
    }

    /// The coarse refiner, per branch with per-lane parameters.
    fn coarse(&self, fused: &Tensor) -> Result<Tensor> {
        let fb = self.dims.fb;
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
        Tensor::cat(&parts, 1)
    }

    fn logits_of(&self, ctx: &[u8], side: Option<SideInputs>) -> Result<(Tensor, Tensor)> {
        let Dims { b, t, d, f, .. } = self.dims;
        if ctx.len() != b * t {
            candle_core::bail!("{} context bytes for {b} lanes of {t}", ctx.len());
        }
        let ids: Vec<u32> = ctx.iter().map(|&c| c as u32).collect();
        let ids = Tensor::from_vec(ids, b * t, &self.dev)?;
        let x = self.emb.index_select(&ids, 0)?; // (B*T, D)
        let h = self.ln_in.forward(&x.reshape((b, f))?)?;
        let (global, cache) = self.global_stream(&x, &h)?;

        // Local stream.
        let xl = self.ln_local.forward(&x.reshape((b, t, d))?)?;
        let local = gelu(&self.conv.forward(&xl)?)?.reshape((b, f))?;

        // Gated fusion: local + a * (global - local).
        let a = ops::sigmoid(&self.gate.forward(&h)?)?;
        let fused = (&local + a.mul(&(global - &local)?)?)?;
        let mut coarse = self.coarse(&fused)?;
        let mixing = match (&self.mixer, self.dims.mixer, side) {
            (None, _, _) => None,
            (Some(mx), Some(md), Some(side)) => {
                if side.scores.lanes() != b || side.scores.rows != md.rows {
                    candle_core::bail!("side scores of the wrong shape")
                }
                let ids: Vec<u32> = (side.picks.iter().enumerate())
                    .map(|(i, &p)| (i % md.sources) as u32 * 257 + p)
                    .collect();
                let ids = Tensor::from_vec(ids, b * md.sources, &self.dev)?;
                let e = mx.picks.index_select(&ids, 0)?;
                let e = e.reshape((b, md.sources * PICK_DIM))?;
                coarse = (coarse + mx.picks_proj.forward(&e)?)?;
                Some((mx, md, side))
            }
            _ => candle_core::bail!("the preset mixes side models, but none were given"),
        };

        // Fine refiner.
        let n = self.ln_f1.forward(&coarse)?;
        let y = self.ffn_out.forward(&self.ffn_in.forward(&n)?)?;
        let y = (gelu(&self.ln_f2.forward(&y)?)? + ops::scale(&coarse, &self.fine_skip)?)?;
        let mut logits = self.out.forward(&y)?;
        if let Some((mx, md, side)) = mixing {
            let scores = std::sync::Arc::new(side.scores);
            let conf = Tensor::from_vec(side.conf, (b, md.conf), &self.dev)?;
            let w = (ops::matmul(&y, &mx.from_net)? + ops::matmul(&conf, &mx.from_conf)?)?;
            let w = ops::add_bias(&w, &mx.bias)?;
            logits = (logits + ops::mix(&w, &scores)?)?;
        }
        Ok((logits, cache))
    }

    fn pending(&self) -> Result<&Pending> {
        match &self.pending {
            Some(p) => Ok(p),
            None => candle_core::bail!("no forward pass to use"),
        }
    }
}

impl Network for Graph {
    fn forward(&mut self, ctx: &[u8], side: Option<SideInputs>) -> Result<()> {
        self.pending = None;
        let (logits, cache) = self.logits_of(ctx, side)?;
        self.pending = Some(Pending {
            logits,
            cache,
            grads: None,
        });
        Ok(())
    }

    fn logits(&self) -> Result<Cow<'_, [f32]>> {
        Ok(Cow::Owned(
            self.pending()?.logits.flatten_all()?.to_vec1::<f32>()?,
        ))
    }

    fn floors(&self, prec: Precision) -> Result<Vec<u32>> {
        super::floors_of(&self.pending()?.logits, prec)
    }

    fn backward(&mut self, targets: &[u8]) -> Result<()> {
        if targets.len() != self.dims.b {
            candle_core::bail!("{} targets for {} lanes", targets.len(), self.dims.b);
        }
        let Some(p) = &mut self.pending else {
            candle_core::bail!("no forward pass to learn")
        };
        p.grads = Some(ops::cross_entropy(&p.logits, targets)?.backward()?);
        Ok(())
    }

    fn update(&mut self) -> Result<()> {
        let Some(Pending {
            cache,
            grads: Some(grads),
            ..
        }) = self.pending.take()
        else {
            candle_core::bail!("an update without a backward pass")
        };
        self.opt.step(&self.store.vars, &grads)?;
        self.cache = cache.detach();
        Ok(())
    }

    fn grad_norms(&self) -> Result<Vec<f32>> {
        let Some(grads) = &self.pending()?.grads else {
            candle_core::bail!("no backward pass")
        };
        let mut out = Vec::with_capacity(self.store.vars.len());
        for (_, var) in &self.store.vars {
            out.push(match grads.get(var.as_tensor()) {
                Some(g) => g.sqr()?.sum_all()?.to_scalar::<f32>()?.sqrt(),
                None => -1.0,
            });
        }
        Ok(out)
    }
}
