//! The CPU training step written out: forward and backward passes over plain
//! buffers, with no autograd graph.
//!
//! candle's autograd gives every gradient a fresh zeroed tensor and adds each
//! contribution to it, allocates every intermediate and copies every narrow
//! and concatenation. Profiling the default preset on the CPU found those
//! zero fills, adds and copies taking about a quarter of a step. Here every
//! buffer lives from step to step, and the step calls the same kernels
//! ([`super::ops`]) with the same operands in the same order as the candle
//! graph ([`super::graph`]), so it computes the same bits: the format's arithmetic
//! did not change, and a test holds this step to the graph, bit for bit, over
//! several training steps of every kind of preset. Where the graph summed three
//! or more gradient contributions into one tensor, the sums here keep candle's
//! order (the two-term ones are the same in either order).
//!
//! The graph stays the step on other devices (CUDA), and the reference.

mod backward;

use super::adamw::AdamW;
use super::init::PICK_DIM;
use super::ops::{
    geglu_into, gelu_into_keep, layer_norm, mix_into, rows_with, scale_into, sigmoid_into,
    softmax_into,
};
use super::{Dims, Network, View};
use crate::coder::Precision;
use crate::preset::{GlobalRead, Preset};
use crate::side::{Scores, SideInputs};
use candle_core::{Device, Result};
use std::borrow::Cow;

const EPS: f32 = 1e-5;

/// A linear layer's parameters (indices into the parameter list) and widths.
#[derive(Clone, Copy)]
struct Lin {
    w: usize,
    b: usize,
    fan_in: usize,
    fan_out: usize,
}

/// A layer norm's gain and bias.
#[derive(Clone, Copy)]
struct Ln {
    g: usize,
    b: usize,
}

enum GlobalIx {
    Linear { read: Lin },
    Attention { query: Lin, pos: usize, out: Lin },
}

struct BranchIx {
    ln: Ln,
    down: Lin,
    lane_w: usize,
    up: Lin,
    gate: Lin,
    lane_b: usize,
    skip: usize,
}

struct MixerIx {
    rows: usize,
    conf: usize,
    sources: usize,
    net: usize,
    from_conf: usize,
    bias: usize,
    picks: usize,
    picks_proj: Lin,
}

/// Where each parameter sits in the list (the optimizer's order).
struct Ix {
    emb: usize,
    ln_in: Ln,
    cache_enc: Lin,
    global: GlobalIx,
    global_skip: usize,
    ln_local: Ln,
    conv_w: usize,
    conv_b: usize,
    gate: Lin,
    branches: Vec<BranchIx>,
    ln_f1: Ln,
    ffn_in: Lin,
    ffn_out: Lin,
    ln_f2: Ln,
    fine_skip: usize,
    out: Lin,
    mixer: Option<MixerIx>,
}

/// One branch's saved activations.
#[derive(Default)]
struct BranchActs {
    xb: Vec<f32>,
    n: Vec<f32>,
    dn: Vec<f32>,
    zz: Vec<f32>,
    u: Vec<f32>,
    gt: Vec<f32>,
}

/// What the forward pass keeps for the backward pass.
#[derive(Default)]
struct Acts {
    ids: Vec<u8>,
    x: Vec<f32>,
    h: Vec<f32>,
    newest: Vec<f32>,
    xw_cache: Vec<f32>,
    cache: Vec<f32>,
    keys: Vec<f32>,
    q: Vec<f32>,
    att: Vec<f32>,
    mixed: Vec<f32>,
    read: Vec<f32>,
    /// erf of each GELU input, kept for the backward pass.
    e_read: Vec<f32>,
    e_conv: Vec<f32>,
    e_n2: Vec<f32>,
    xp: Vec<f32>,
    xl: Vec<f32>,
    conv: Vec<f32>,
    a: Vec<f32>,
    diff: Vec<f32>,
    branches: Vec<BranchActs>,
    pick_ids: Vec<u32>,
    picks: Vec<f32>,
    coarse: Vec<f32>,
    n1: Vec<f32>,
    xw1: Vec<f32>,
    hh: Vec<f32>,
    y1: Vec<f32>,
    n2: Vec<f32>,
    y: Vec<f32>,
    logits: Vec<f32>,
    conf: Vec<f32>,
    scores: Option<Scores>,
}

/// The model's parameters, gradients and step buffers on the host.
pub(super) struct Host {
    b: usize,
    t: usize,
    d: usize,
    f: usize,
    g: usize,
    s: usize,
    r: usize,
    ffn: usize,
    ix: Ix,
    pub(super) params: Vec<Vec<f32>>,
    pub(super) grads: Vec<Vec<f32>>,
    /// The optimizer's moments, one pair per parameter.
    opt: AdamW,
    /// The rolling cache as of the last learned step (B x G).
    cache: Vec<f32>,
    acts: Acts,
    scratch: backward::Scratch,
}

/// `v` resized to `n` elements (kept from step to step; callers overwrite them).
fn buf(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    v.resize(n, 0.0);
    &mut v[..n]
}

fn view(data: &[f32], rs: usize, cs: usize) -> View<'_> {
    View {
        data,
        off: 0,
        rs,
        cs,
    }
}

/// c (m x n) = a (m x k) b (k x n), all row-major.
fn mm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    super::gemm(m, n, k, view(a, k, 1), view(b, n, 1), c);
}

/// y = x W + b for `rows` rows.
fn linear(p: &[Vec<f32>], l: Lin, x: &[f32], rows: usize, y: &mut Vec<f32>) {
    let y = buf(y, rows * l.fan_out);
    mm(rows, l.fan_in, l.fan_out, x, &p[l.w], y);
    add_rows(y, &p[l.b]);
}

/// y += b along rows (the bias add of the graph: `xw + b` per element).
fn add_rows(y: &mut [f32], b: &[f32]) {
    for row in y.chunks_exact_mut(b.len()) {
        for (o, &v) in row.iter_mut().zip(b) {
            *o += v;
        }
    }
}

impl Host {
    /// The step for `p`, with the initial parameter values `vars` (name,
    /// values) in the optimizer's order.
    pub(super) fn new(p: &Preset, dims: Dims, vars: Vec<(String, Vec<f32>)>) -> Result<Self> {
        let find = |name: &str| -> Result<usize> {
            vars.iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| candle_core::Error::Msg(format!("no parameter {name}")))
        };
        let size = |i: usize| vars[i].1.len();
        let lin = |name: &str, fan_in: usize| -> Result<Lin> {
            let (w, b) = (find(&format!("{name}.w"))?, find(&format!("{name}.b"))?);
            Ok(Lin {
                w,
                b,
                fan_in,
                fan_out: size(b),
            })
        };
        let ln = |name: &str| -> Result<Ln> {
            Ok(Ln {
                g: find(&format!("{name}.g"))?,
                b: find(&format!("{name}.b"))?,
            })
        };
        let Dims {
            b,
            t,
            d,
            f,
            g,
            s,
            r,
            nb,
            fb,
            h: ffn,
            ..
        } = dims;
        let global = match dims.global {
            GlobalRead::Linear => GlobalIx::Linear {
                read: lin("global.read", g)?,
            },
            GlobalRead::Attention => GlobalIx::Attention {
                query: lin("global.query", f)?,
                pos: find("global.pos")?,
                out: lin("global.out", s)?,
            },
        };
        let mut branches = Vec::new();
        for i in 0..nb {
            let n = format!("coarse{i}");
            branches.push(BranchIx {
                ln: ln(&format!("{n}.ln"))?,
                down: lin(&format!("{n}.down"), fb)?,
                lane_w: find(&format!("{n}.lane_w"))?,
                up: lin(&format!("{n}.up"), r)?,
                gate: lin(&format!("{n}.gate"), fb)?,
                lane_b: find(&format!("{n}.lane_b"))?,
                skip: find(&format!("{n}.skip"))?,
            });
        }
        let mixer = match find("mix.net") {
            Err(_) => None,
            Ok(net) => {
                let rows = size(net) / f;
                let from_conf = find("mix.conf")?;
                let picks = find("mix.picks")?;
                let sources = size(picks) / (257 * PICK_DIM);
                Some(MixerIx {
                    rows,
                    conf: size(from_conf) / rows,
                    sources,
                    net,
                    from_conf,
                    bias: find("mix.bias")?,
                    picks,
                    picks_proj: lin("mix.picks_proj", sources * PICK_DIM)?,
                })
            }
        };
        let ix = Ix {
            emb: find("embed")?,
            ln_in: ln("ln_in")?,
            cache_enc: lin("cache_enc", d)?,
            global,
            global_skip: find("global.skip")?,
            ln_local: ln("ln_local")?,
            conv_w: find("local.conv.w")?,
            conv_b: find("local.conv.b")?,
            gate: lin("gate", f)?,
            branches,
            ln_f1: ln("fine.ln1")?,
            ffn_in: lin("fine.in", f)?,
            ffn_out: lin("fine.out", ffn)?,
            ln_f2: ln("fine.ln2")?,
            fine_skip: find("fine.skip")?,
            out: lin("out", f)?,
            mixer,
        };
        let grads = vars.iter().map(|(_, v)| vec![0f32; v.len()]).collect();
        let sizes: Vec<usize> = vars.iter().map(|(_, v)| v.len()).collect();
        Ok(Self {
            opt: AdamW::for_host(p, &sizes),
            b,
            t,
            d,
            f,
            g,
            s,
            r,
            ffn,
            ix,
            params: vars.into_iter().map(|(_, v)| v).collect(),
            grads,
            cache: vec![0f32; b * g],
            acts: Acts::default(),
            scratch: backward::Scratch::default(),
        })
    }

    /// The forward pass on the contexts of all lanes (B rows of T bytes),
    /// kept for [`Host::learn`].
    pub(super) fn forward(&mut self, ctx: &[u8], side: Option<SideInputs>) -> Result<()> {
        let (b, t, d, f, g, s) = (self.b, self.t, self.d, self.f, self.g, self.s);
        if ctx.len() != b * t {
            candle_core::bail!("{} context bytes for {b} lanes of {t}", ctx.len());
        }
        let p = &self.params;
        let ix = &self.ix;
        let a = &mut self.acts;
        a.ids.clear();
        a.ids.extend_from_slice(ctx);
        let emb = &p[ix.emb];
        let x = buf(&mut a.x, b * t * d);
        for (row, &c) in x.chunks_exact_mut(d).zip(ctx) {
            row.copy_from_slice(&emb[c as usize * d..][..d]);
        }
        let h = buf(&mut a.h, b * f);
        layer_norm(&a.x, &p[ix.ln_in.g], &p[ix.ln_in.b], EPS, h);

        // Global stream: the newest byte's GeGLU slot joins the cache.
        let newest = buf(&mut a.newest, b * d);
        for (l, row) in newest.chunks_exact_mut(d).enumerate() {
            row.copy_from_slice(&a.x[(l * t + t - 1) * d..][..d]);
        }
        let ce = ix.cache_enc;
        let xw = buf(&mut a.xw_cache, b * ce.fan_out);
        mm(b, d, ce.fan_out, &a.newest, &p[ce.w], xw);
        let cache = buf(&mut a.cache, b * g);
        for (l, row) in cache.chunks_exact_mut(g).enumerate() {
            row[..g - s].copy_from_slice(&self.cache[l * g + s..(l + 1) * g]);
        }
        let mut slot = std::mem::take(&mut self.scratch.slot);
        geglu_into(&a.xw_cache, &p[ce.b], buf(&mut slot, b * s));
        for (row, sl) in a.cache.chunks_exact_mut(g).zip(slot.chunks_exact(s)) {
            row[g - s..].copy_from_slice(sl);
        }
        self.scratch.slot = slot;
        match ix.global {
            GlobalIx::Linear { read } => linear(p, read, &a.cache, b, &mut a.read),
            GlobalIx::Attention { query, pos, out } => {
                let slots = g / s;
                let keys = buf(&mut a.keys, b * g);
                rows_with(&a.cache, &p[pos], keys, |x, y| x + y);
                linear(p, query, &a.h, b, &mut a.q);
                let k = 1.0 / (s as f64).sqrt();
                let k = k as f32;
                for v in a.q.iter_mut() {
                    *v = *v * k + 0.0;
                }
                let mut scores = std::mem::take(&mut self.scratch.att_scores);
                let sc = buf(&mut scores, b * slots);
                let (keys, q) = (&a.keys, &a.q);
                per_lane(sc, slots, |l, o| {
                    let kv = view(&keys[l * g..(l + 1) * g], s, 1);
                    super::gemm(slots, 1, s, kv, view(&q[l * s..(l + 1) * s], 1, 1), o);
                });
                let att = buf(&mut a.att, b * slots);
                softmax_into(&scores, slots, att);
                self.scratch.att_scores = scores;
                let mixed = buf(&mut a.mixed, b * s);
                let att = &a.att;
                per_lane(mixed, s, |l, o| {
                    let av = view(&att[l * slots..(l + 1) * slots], slots, 1);
                    super::gemm(1, s, slots, av, view(&keys[l * g..(l + 1) * g], s, 1), o);
                });
                linear(p, out, &a.mixed, b, &mut a.read);
            }
        }
        // global = gelu(read) + h * skip
        let mut global = std::mem::take(&mut self.scratch.global);
        let mut hs = std::mem::take(&mut self.scratch.hs);
        gelu_into_keep(&a.read, buf(&mut global, b * f), buf(&mut a.e_read, b * f));
        scale_into(&a.h, p[ix.global_skip][0], buf(&mut hs, b * f));
        for (o, &v) in global.iter_mut().zip(&hs) {
            *o += v;
        }

        // Local stream: layer norm over D, depthwise conv (k = 3), GELU.
        let xl = buf(&mut a.xl, b * t * d);
        layer_norm(&a.x, &p[ix.ln_local.g], &p[ix.ln_local.b], EPS, xl);
        let tp = t + 2;
        let xp = buf(&mut a.xp, b * tp * d);
        for l in 0..b {
            let lane = &mut xp[l * tp * d..(l + 1) * tp * d];
            lane[..d].fill(0.0);
            lane[(tp - 1) * d..].fill(0.0);
            lane[d..(tp - 1) * d].copy_from_slice(&a.xl[l * t * d..(l + 1) * t * d]);
        }
        let (cw, cb) = (&p[ix.conv_w], &p[ix.conv_b]);
        let conv = buf(&mut a.conv, b * t * d);
        let xp = &a.xp;
        crate::par::rows_mut(conv, t * d, 3 * t * d, |l0, rows| {
            for (l, lane) in (l0..).zip(rows.chunks_exact_mut(t * d)) {
                for (tau, o) in lane.chunks_exact_mut(d).enumerate() {
                    let at = |k: usize| &xp[(l * tp + tau + k) * d..][..d];
                    let (i0, i1, i2) = (at(0), at(1), at(2));
                    for c in 0..d {
                        let y = i0[c] * cw[c] + cb[c];
                        let y = y + i1[c] * cw[d + c];
                        o[c] = y + i2[c] * cw[2 * d + c];
                    }
                }
            }
        });
        let mut local = std::mem::take(&mut self.scratch.local);
        gelu_into_keep(&a.conv, buf(&mut local, b * f), buf(&mut a.e_conv, b * f));

        // Gated fusion: local + a * (global - local).
        let mut z = std::mem::take(&mut self.scratch.z);
        linear(p, ix.gate, &a.h, b, &mut z);
        sigmoid_into(&z, buf(&mut a.a, b * f));
        self.scratch.z = z;
        let diff = buf(&mut a.diff, b * f);
        crate::par::rows_mut(diff, f, f, |l0, rows| {
            let at = l0 * f..l0 * f + rows.len();
            for ((o, &gv), &lv) in rows.iter_mut().zip(&global[at.clone()]).zip(&local[at]) {
                *o = gv - lv;
            }
        });
        let coarse = buf(&mut a.coarse, b * f);
        let (gate, diff) = (&a.a, &a.diff);
        crate::par::rows_mut(coarse, f, 2 * f, |l0, rows| {
            let at = l0 * f..l0 * f + rows.len();
            let parts = local[at.clone()]
                .iter()
                .zip(&gate[at.clone()])
                .zip(&diff[at]);
            for (o, ((&lv, &av), &dv)) in rows.iter_mut().zip(parts) {
                *o = lv + av * dv;
            }
        });
        self.scratch.global = global;
        self.scratch.hs = hs;
        self.scratch.local = local;

        // Coarse refiner: each branch replaces its columns of the fused rows.
        let nb = ix.branches.len();
        let fb = f / nb;
        let r = self.r;
        a.branches.resize_with(nb, BranchActs::default);
        let mut tmp = std::mem::take(&mut self.scratch.tmp);
        for (i, (br, ba)) in ix.branches.iter().zip(&mut a.branches).enumerate() {
            let xb = buf(&mut ba.xb, b * fb);
            for (o, row) in xb.chunks_exact_mut(fb).zip(a.coarse.chunks_exact(f)) {
                o.copy_from_slice(&row[i * fb..(i + 1) * fb]);
            }
            layer_norm(
                &ba.xb,
                &p[br.ln.g],
                &p[br.ln.b],
                EPS,
                buf(&mut ba.n, b * fb),
            );
            linear(p, br.down, &ba.n, b, &mut ba.dn);
            let (dn, lw) = (&ba.dn, &p[br.lane_w]);
            per_lane(buf(&mut ba.zz, b * r), r, |l, o| {
                let wv = view(&lw[l * r * r..(l + 1) * r * r], r, 1);
                super::gemm(1, r, r, view(&dn[l * r..(l + 1) * r], r, 1), wv, o);
            });
            linear(p, br.up, &ba.zz, b, &mut ba.u);
            linear(p, br.gate, &ba.n, b, &mut tmp);
            sigmoid_into(&tmp, buf(&mut ba.gt, b * fb));
            let (lb, sk) = (&p[br.lane_b], p[br.skip][0]);
            for (l, row) in a.coarse.chunks_exact_mut(f).enumerate() {
                let o = &mut row[i * fb..(i + 1) * fb];
                let j = l * fb;
                for c in 0..fb {
                    let y = ba.u[j + c] * ba.gt[j + c] + lb[j + c];
                    o[c] = y + ba.xb[j + c] * sk;
                }
            }
        }
        self.scratch.tmp = tmp;

        // The side models' predicted bytes, embedded and projected.
        let mut side = side;
        if let (Some(mx), Some(sd)) = (&ix.mixer, &side) {
            a.pick_ids.clear();
            let src = mx.sources;
            a.pick_ids.extend(
                sd.picks
                    .iter()
                    .enumerate()
                    .map(|(i, &pk)| (i % src) as u32 * 257 + pk),
            );
            let table = &p[mx.picks];
            let e = buf(&mut a.picks, b * src * PICK_DIM);
            for (row, &id) in e.chunks_exact_mut(PICK_DIM).zip(&a.pick_ids) {
                row.copy_from_slice(&table[id as usize * PICK_DIM..][..PICK_DIM]);
            }
            let mut pp = std::mem::take(&mut self.scratch.pp);
            linear(p, mx.picks_proj, &a.picks, b, &mut pp);
            for (o, &v) in a.coarse.iter_mut().zip(&pp) {
                *o += v;
            }
            self.scratch.pp = pp;
        }

        // Fine refiner.
        let n1 = buf(&mut a.n1, b * f);
        layer_norm(&a.coarse, &p[ix.ln_f1.g], &p[ix.ln_f1.b], EPS, n1);
        let fi = ix.ffn_in;
        mm(
            b,
            f,
            fi.fan_out,
            &a.n1,
            &p[fi.w],
            buf(&mut a.xw1, b * fi.fan_out),
        );
        geglu_into(&a.xw1, &p[fi.b], buf(&mut a.hh, b * self.ffn));
        linear(p, ix.ffn_out, &a.hh, b, &mut a.y1);
        let n2 = buf(&mut a.n2, b * f);
        layer_norm(&a.y1, &p[ix.ln_f2.g], &p[ix.ln_f2.b], EPS, n2);
        let y = buf(&mut a.y, b * f);
        gelu_into_keep(&a.n2, y, buf(&mut a.e_n2, b * f));
        let mut cs = std::mem::take(&mut self.scratch.hs);
        scale_into(&a.coarse, p[ix.fine_skip][0], buf(&mut cs, b * f));
        for (o, &v) in a.y.iter_mut().zip(&cs) {
            *o += v;
        }
        self.scratch.hs = cs;
        linear(p, ix.out, &a.y, b, &mut a.logits);

        // The side models' score rows, weighted per lane by the network.
        a.scores = None;
        if let Some(mx) = &ix.mixer {
            let Some(sd) = side.take() else {
                candle_core::bail!("the preset mixes side models, but none were given")
            };
            if sd.scores.lanes() != b || sd.scores.rows != mx.rows || sd.conf.len() != b * mx.conf {
                candle_core::bail!("side scores of the wrong shape")
            }
            let rows = mx.rows;
            let mut w = std::mem::take(&mut self.scratch.w);
            let mut w2 = std::mem::take(&mut self.scratch.w2);
            mm(b, f, rows, &a.y, &p[mx.net], buf(&mut w, b * rows));
            mm(
                b,
                mx.conf,
                rows,
                &sd.conf,
                &p[mx.from_conf],
                buf(&mut w2, b * rows),
            );
            for (o, &v) in w.iter_mut().zip(&w2) {
                *o += v;
            }
            add_rows(&mut w, &p[mx.bias]);
            let mut bonus = std::mem::take(&mut self.scratch.bonus);
            mix_into(&w, &sd.scores, buf(&mut bonus, b * 256));
            for (o, &v) in a.logits.iter_mut().zip(&bonus) {
                *o += v;
            }
            self.scratch.bonus = bonus;
            self.scratch.w = w;
            self.scratch.w2 = w2;
            a.conf = sd.conf;
            a.scores = Some(sd.scores);
        }
        Ok(())
    }
}

impl Network for Host {
    fn forward(&mut self, ctx: &[u8], side: Option<SideInputs>) -> Result<()> {
        Host::forward(self, ctx, side)
    }

    fn logits(&self) -> Result<Cow<'_, [f32]>> {
        Ok(Cow::Borrowed(&self.acts.logits))
    }

    fn floors(&self, prec: Precision) -> Result<Vec<u32>> {
        let logits = &self.acts.logits;
        let t = candle_core::Tensor::from_slice(logits, (logits.len() / 256, 256), &Device::Cpu)?;
        super::floors_of(&t, prec)
    }

    fn backward(&mut self, targets: &[u8]) -> Result<()> {
        if targets.len() != self.b {
            candle_core::bail!("{} targets for {} lanes", targets.len(), self.b);
        }
        Host::backward(self, targets);
        Ok(())
    }

    fn update(&mut self) -> Result<()> {
        self.opt.step_host(&mut self.params, &self.grads)?;
        std::mem::swap(&mut self.cache, &mut self.acts.cache);
        Ok(())
    }

    fn grad_norms(&self) -> Result<Vec<f32>> {
        let norm = |g: &Vec<f32>| g.iter().map(|v| v * v).sum::<f32>().sqrt();
        Ok(self.grads.iter().map(norm).collect())
    }
}

/// Runs `f(lane, out_row)` for every `width`-wide row of `out`, the lanes
/// shared among the model's threads (each lane's product is one thread's).
fn per_lane(out: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    crate::par::rows_mut(out, width, width * 64, |l0, rows| {
        for (l, o) in (l0..).zip(rows.chunks_exact_mut(width)) {
            f(l, o)
        }
    });
}

#[cfg(test)]
mod tests {
    use super::super::Model;
    use crate::preset::{GlobalRead, Preset};
    use crate::rng::SplitMix64;
    use crate::side::{Scores, SideInputs};
    use candle_core::Device;

    fn side_inputs(b: usize, p: &Preset, g: &mut SplitMix64) -> SideInputs {
        let (rows, conf, sources) = (p.side().rows(), p.side().conf_width(), p.side().sources());
        let dense: Vec<f32> = (0..b * rows * 256)
            .map(|_| match g.next_u64() % 16 {
                0 => 1.5,
                1 => -0.5,
                2 => 3.0,
                _ => 0.0,
            })
            .collect();
        SideInputs {
            scores: Scores::from_dense(rows, &dense),
            conf: (0..b * conf)
                .map(|_| (g.next_u64() % 3) as f32 * 0.5)
                .collect(),
            picks: (0..b * sources)
                .map(|_| (g.next_u64() % 257) as u32)
                .collect(),
            hints: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Runs `steps` training steps on the graph and on the written-out step
    /// and asserts the same logits at every step.
    fn same_bits(p: &Preset, steps: usize) {
        same_bits_on(p, steps, &crate::par::Pool::new(1));
    }

    /// [`same_bits`] with the written-out step's kernels on `pool`.
    fn same_bits_on(p: &Preset, steps: usize, pool: &crate::par::Pool) {
        let dev = Device::Cpu;
        let mut graph = Model::with_step(p, &dev, false).unwrap();
        let mut host = Model::with_step(p, &dev, true).unwrap();
        let (b, t) = (p.lanes as usize, p.context as usize);
        let mut g = SplitMix64::new(7);
        let sided = p.side().rows() > 0;
        for step in 0..steps {
            let ctx: Vec<u8> = (0..b * t)
                .map(|_| b'a' + (g.next_u64() % 9) as u8)
                .collect();
            let targets: Vec<u8> = (0..b).map(|_| b'a' + (g.next_u64() % 9) as u8).collect();
            let side = sided.then(|| side_inputs(b, p, &mut g));
            let copy = side.as_ref().map(|s| SideInputs {
                scores: s.scores.clone(),
                conf: s.conf.clone(),
                picks: s.picks.clone(),
                hints: Vec::new(),
                seen: Vec::new(),
            });
            graph.forward(&ctx, side).unwrap();
            pool.run(|| host.forward(&ctx, copy)).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert!(
                bits(&graph.logits().unwrap()) == bits(&host.logits().unwrap()),
                "{}: logits differ at step {step}",
                p.name
            );
            graph.learn(&targets).unwrap();
            pool.run(|| host.learn(&targets)).unwrap();
        }
    }

    fn small(name: &str) -> Preset {
        let mut p = Preset::load(name).unwrap().fitted(1 << 14);
        p.lanes = 5;
        p.stats_bits = 12;
        p.match_bits = 12;
        p
    }

    #[test]
    fn the_written_out_step_computes_the_graphs_bits() {
        for name in ["paper", "fast", "default"] {
            let mut p = small(name);
            same_bits(&p, 6);
            p.global = GlobalRead::Attention;
            p.orders.clear();
            p.contexts.clear();
            p.match_short = 0;
            p.match_long = 0;
            same_bits(&p, 6);
        }
        // Enough lanes that the step's loops split over three threads.
        let mut p = small("default");
        p.lanes = 96;
        same_bits_on(&p, 3, &crate::par::Pool::new(3));
    }
}
