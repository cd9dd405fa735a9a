//! The backward pass of [`Host`]: the graph's gradients in the graph's order.
//!
//! Each parameter's gradient is written once per step (the embedding tables
//! accumulate theirs row by row in position order, as candle's index_add).
//! Two-term gradient sums are the same bits in either order; the three-term
//! sums (the first layer norm's output h, the embedded context x and the
//! convolution's padded input) keep the order in which candle's backward pass
//! visited their consumers.

use super::{buf, mm, view, Host, Lin, Ln, EPS};
use crate::model::ops::{
    col_sum, cross_entropy_grad, geglu_grad, gelu_grad_kept, layer_norm_grad, mix_grad, scale_grad,
    sigmoid_grad, softmax_grad, transpose_into,
};
use crate::model::PICK_DIM;

/// Buffers of the backward pass (and a few of the forward pass), kept from
/// step to step.
#[derive(Default)]
pub(super) struct Scratch {
    pub(super) slot: Vec<f32>,
    pub(super) att_scores: Vec<f32>,
    pub(super) global: Vec<f32>,
    pub(super) hs: Vec<f32>,
    pub(super) local: Vec<f32>,
    pub(super) z: Vec<f32>,
    pub(super) tmp: Vec<f32>,
    /// The picks' projection (B x F; `tmp` holds B x F / branches).
    pub(super) pp: Vec<f32>,
    pub(super) w: Vec<f32>,
    pub(super) w2: Vec<f32>,
    pub(super) bonus: Vec<f32>,
    wt: Vec<f32>,
    cols: Vec<f32>,
    dlogits: Vec<f32>,
    dwb: Vec<f32>,
    dy: Vec<f32>,
    dy2: Vec<f32>,
    dn2: Vec<f32>,
    dy1: Vec<f32>,
    dhh: Vec<f32>,
    du1: Vec<f32>,
    dn1: Vec<f32>,
    dcoarse: Vec<f32>,
    dc2: Vec<f32>,
    de: Vec<f32>,
    dpart: Vec<f32>,
    du: Vec<f32>,
    dgt: Vec<f32>,
    dzg: Vec<f32>,
    dn: Vec<f32>,
    dn_b: Vec<f32>,
    dzz: Vec<f32>,
    ddn: Vec<f32>,
    dxb2: Vec<f32>,
    dfused: Vec<f32>,
    dlocal: Vec<f32>,
    dglobal: Vec<f32>,
    da: Vec<f32>,
    dz: Vec<f32>,
    dh_gate: Vec<f32>,
    dh_skip: Vec<f32>,
    dh_query: Vec<f32>,
    dh: Vec<f32>,
    dread: Vec<f32>,
    dmixed: Vec<f32>,
    datt: Vec<f32>,
    dscores: Vec<f32>,
    dkeys: Vec<f32>,
    dkeys2: Vec<f32>,
    dq: Vec<f32>,
    dcache: Vec<f32>,
    dslot: Vec<f32>,
    du_cache: Vec<f32>,
    dnewest: Vec<f32>,
    dconv: Vec<f32>,
    dxl: Vec<f32>,
    dx_in: Vec<f32>,
    dx_local: Vec<f32>,
    /// The rows of the picks' and the byte embedding's gradients written in
    /// the last step: the only ones not zero, so the only ones to clear.
    pick_rows: Vec<u32>,
    emb_rows: Vec<u8>,
}

/// Zeroes the `width`-wide rows `rows` of `t` (a table gradient whose other
/// rows are zero already).
fn clear_rows<T: Copy + Into<u32>>(t: &mut [f32], width: usize, rows: &[T]) {
    for &r in rows {
        let r: u32 = r.into();
        t[r as usize * width..][..width].fill(0.0);
    }
}

/// dx (rows x fan_in) = dy (rows x fan_out) W^T: element (i, j) is the chain
/// over p of W[j][p] dy[i][p]. The vector panels need the right operand's
/// rows contiguous, so one operand is copied transposed first: W (fan_in x
/// fan_out, as the graph's backward product did), or, where that moves less
/// (few rows), dy and then the product, as dx^T = W dy^T (fan_in x rows). The
/// chains are the same either way (an FMA's two factors commute).
fn back_x(p: &[f32], l: Lin, dy: &[f32], rows: usize, wt: &mut Vec<f32>, dx: &mut Vec<f32>) {
    let (fi, fo) = (l.fan_in, l.fan_out);
    let dx = buf(dx, rows * fi);
    // wt serves layers of every size: it only grows (a Vec grown back to a
    // larger length zero-fills the difference, which cost a pass per layer).
    let need = (rows * (fi + fo)).min(fi * fo);
    if wt.len() < need {
        wt.resize(need, 0.0);
    }
    if rows * (fi + fo) < fi * fo {
        // wt holds dy^T (fo x rows), then dx^T (fi x rows).
        let wt = &mut wt[..rows * (fi + fo)];
        let (dyt, dxt) = wt.split_at_mut(fo * rows);
        transpose_into(&dy[..rows * fo], rows, fo, dyt);
        mm(fi, fo, rows, p, dyt, dxt);
        transpose_into(dxt, fi, rows, dx);
    } else {
        let wt = &mut wt[..fi * fo];
        transpose_into(p, fi, fo, wt);
        mm(rows, fo, fi, dy, wt, dx);
    }
}

/// dW = x^T dy and db = column sums of dy, into the gradient list.
fn back_params(grads: &mut [Vec<f32>], l: Lin, x: &[f32], dy: &[f32], rows: usize) {
    let dw = &mut grads[l.w];
    super::super::gemm(
        l.fan_in,
        l.fan_out,
        rows,
        view(x, 1, l.fan_in),
        view(dy, l.fan_out, 1),
        dw,
    );
    col_sum(&dy[..rows * l.fan_out], &mut grads[l.b]);
}

/// A layer norm's backward pass: dx, and its gain's and bias's gradients.
fn back_ln(grads: &mut [Vec<f32>], ln: Ln, w: &[f32], x: &[f32], dy: &[f32], dx: &mut Vec<f32>) {
    let dx = buf(dx, x.len());
    let mut dw = std::mem::take(&mut grads[ln.g]);
    layer_norm_grad(x, w, dy, EPS, dx, &mut dw);
    grads[ln.g] = dw;
    col_sum(&dy[..x.len()], &mut grads[ln.b]);
}

impl Host {
    /// Fills every parameter's gradient for the mean cross-entropy of the
    /// last forward pass against `targets`.
    pub(in crate::model) fn backward(&mut self, targets: &[u8]) {
        let (b, t, d, f, g, s, r) = (self.b, self.t, self.d, self.f, self.g, self.s, self.r);
        let Host {
            ix,
            params: p,
            grads,
            acts: a,
            scratch: sc,
            ..
        } = self;
        let dlogits = buf(&mut sc.dlogits, b * 256);
        cross_entropy_grad(&a.logits, targets, 1.0, dlogits);

        // Output layer and mixer: dy gets both contributions.
        back_x(&p[ix.out.w], ix.out, &sc.dlogits, b, &mut sc.wt, &mut sc.dy);
        back_params(grads, ix.out, &a.y, &sc.dlogits, b);
        if let (Some(mx), Some(scores)) = (&ix.mixer, &a.scores) {
            let rows = mx.rows;
            let dwb = buf(&mut sc.dwb, b * rows);
            mix_grad(&sc.dlogits, scores, dwb);
            col_sum(&sc.dwb, &mut grads[mx.bias]);
            let gemm = super::super::gemm;
            gemm(
                f,
                rows,
                b,
                view(&a.y, 1, f),
                view(&sc.dwb, rows, 1),
                &mut grads[mx.net],
            );
            let c = mx.conf;
            gemm(
                c,
                rows,
                b,
                view(&a.conf, 1, c),
                view(&sc.dwb, rows, 1),
                &mut grads[mx.from_conf],
            );
            let net = Lin {
                w: mx.net,
                b: mx.bias,
                fan_in: f,
                fan_out: rows,
            };
            back_x(&p[mx.net], net, &sc.dwb, b, &mut sc.wt, &mut sc.dy2);
            for (o, &v) in sc.dy.iter_mut().zip(&sc.dy2) {
                *o += v;
            }
        }

        // Fine refiner: y = gelu(ln2(out(geglu(in(ln1(coarse)))))) + coarse * skip.
        let fs = ix.fine_skip;
        let dcoarse = buf(&mut sc.dcoarse, b * f);
        crate::model::ops::scale_into(&sc.dy, p[fs][0], dcoarse);
        grads[fs][0] = scale_grad(&sc.dy, &a.coarse, f, &mut sc.cols);
        gelu_grad_kept(&a.n2, &a.e_n2, &sc.dy, buf(&mut sc.dn2, b * f));
        back_ln(grads, ix.ln_f2, &p[ix.ln_f2.g], &a.y1, &sc.dn2, &mut sc.dy1);
        back_x(
            &p[ix.ffn_out.w],
            ix.ffn_out,
            &sc.dy1,
            b,
            &mut sc.wt,
            &mut sc.dhh,
        );
        back_params(grads, ix.ffn_out, &a.hh, &sc.dy1, b);
        let fi = ix.ffn_in;
        geglu_grad(&a.xw1, &p[fi.b], &sc.dhh, buf(&mut sc.du1, b * fi.fan_out));
        back_x(&p[fi.w], fi, &sc.du1, b, &mut sc.wt, &mut sc.dn1);
        back_params(grads, fi, &a.n1, &sc.du1, b);
        back_ln(
            grads,
            ix.ln_f1,
            &p[ix.ln_f1.g],
            &a.coarse,
            &sc.dn1,
            &mut sc.dc2,
        );
        for (o, &v) in sc.dcoarse.iter_mut().zip(&sc.dc2) {
            *o += v;
        }

        // The side models' predicted bytes: projection and embedding table.
        if let Some(mx) = &ix.mixer {
            let pp = mx.picks_proj;
            back_x(&p[pp.w], pp, &sc.dcoarse, b, &mut sc.wt, &mut sc.de);
            back_params(grads, pp, &a.picks, &sc.dcoarse, b);
            let dt = &mut grads[mx.picks];
            clear_rows(dt, PICK_DIM, &sc.pick_rows);
            sc.pick_rows.clear();
            sc.pick_rows.extend_from_slice(&a.pick_ids);
            for (row, &id) in sc.de.chunks_exact(PICK_DIM).zip(&a.pick_ids) {
                let o = &mut dt[id as usize * PICK_DIM..][..PICK_DIM];
                for (o, &v) in o.iter_mut().zip(row) {
                    *o += v;
                }
            }
        }

        // Coarse refiner, branch by branch (their columns do not overlap).
        let nb = ix.branches.len();
        let fb = f / nb;
        let dfused = buf(&mut sc.dfused, b * f);
        for (i, (br, ba)) in ix.branches.iter().zip(&a.branches).enumerate() {
            let dpart = buf(&mut sc.dpart, b * fb);
            for (o, row) in dpart.chunks_exact_mut(fb).zip(sc.dcoarse.chunks_exact(f)) {
                o.copy_from_slice(&row[i * fb..(i + 1) * fb]);
            }
            let sk = p[br.skip][0];
            grads[br.skip][0] = scale_grad(&sc.dpart, &ba.xb, fb, &mut sc.cols);
            grads[br.lane_b].copy_from_slice(&sc.dpart);
            let (du, dgt) = (buf(&mut sc.du, b * fb), buf(&mut sc.dgt, b * fb));
            for j in 0..b * fb {
                du[j] = sc.dpart[j] * ba.gt[j];
                dgt[j] = sc.dpart[j] * ba.u[j];
            }
            sigmoid_grad(&ba.gt, &sc.dgt, buf(&mut sc.dzg, b * fb));
            back_x(&p[br.gate.w], br.gate, &sc.dzg, b, &mut sc.wt, &mut sc.dn);
            back_params(grads, br.gate, &ba.n, &sc.dzg, b);
            back_x(&p[br.up.w], br.up, &sc.du, b, &mut sc.wt, &mut sc.dzz);
            back_params(grads, br.up, &ba.zz, &sc.du, b);
            // Per lane: z = dn (1 x r) lane_w (r x r).
            let (lw, dzz, dn) = (&p[br.lane_w], &sc.dzz, &ba.dn);
            super::per_lane(buf(&mut sc.ddn, b * r), r, |l, o| {
                let wt = crate::model::View {
                    data: &lw[l * r * r..(l + 1) * r * r],
                    off: 0,
                    rs: 1,
                    cs: r,
                };
                super::super::gemm(1, r, r, view(&dzz[l * r..(l + 1) * r], r, 1), wt, o);
            });
            super::per_lane(&mut grads[br.lane_w], r * r, |l, o| {
                let dnv = view(&dn[l * r..(l + 1) * r], 1, 1);
                let dzv = view(&dzz[l * r..(l + 1) * r], r, 1);
                super::super::gemm(r, r, 1, dnv, dzv, o);
            });
            back_x(&p[br.down.w], br.down, &sc.ddn, b, &mut sc.wt, &mut sc.dn_b);
            back_params(grads, br.down, &ba.n, &sc.ddn, b);
            for (o, &v) in sc.dn.iter_mut().zip(&sc.dn_b) {
                *o += v;
            }
            back_ln(grads, br.ln, &p[br.ln.g], &ba.xb, &sc.dn, &mut sc.dxb2);
            let lanes = sc.dpart.chunks_exact(fb).zip(sc.dxb2.chunks_exact(fb));
            for (row, (dp, dl)) in dfused.chunks_exact_mut(f).zip(lanes) {
                let o = &mut row[i * fb..(i + 1) * fb];
                for ((o, &pv), &lv) in o.iter_mut().zip(dp).zip(dl) {
                    *o = pv * sk + lv;
                }
            }
        }

        // Gated fusion: fused = local + a * (global - local).
        let (dlocal, dglobal, da) = (
            buf(&mut sc.dlocal, b * f),
            buf(&mut sc.dglobal, b * f),
            buf(&mut sc.da, b * f),
        );
        let (dap, dgp) = (
            crate::par::SharedMut(da.as_mut_ptr()),
            crate::par::SharedMut(dglobal.as_mut_ptr()),
        );
        let (dfused, diff, gate) = (&sc.dfused, &a.diff, &a.a);
        crate::par::rows_mut(dlocal, f, 3 * f, |l0, rows| {
            let j0 = l0 * f;
            // SAFETY: rows l0.. of da and dglobal (b x f, like dlocal) belong
            // to this range only.
            let (da, dg) = unsafe { (dap.slice(j0, rows.len()), dgp.slice(j0, rows.len())) };
            for (k, dl) in rows.iter_mut().enumerate() {
                let gv = dfused[j0 + k];
                da[k] = gv * diff[j0 + k];
                dg[k] = gv * gate[j0 + k];
                *dl = gv - dg[k];
            }
        });
        sigmoid_grad(&a.a, &sc.da, buf(&mut sc.dz, b * f));
        back_x(
            &p[ix.gate.w],
            ix.gate,
            &sc.dz,
            b,
            &mut sc.wt,
            &mut sc.dh_gate,
        );
        back_params(grads, ix.gate, &a.h, &sc.dz, b);

        // Global stream: gelu(read) + h * skip, the read, the cache slot.
        let gsk = ix.global_skip;
        crate::model::ops::scale_into(&sc.dglobal, p[gsk][0], buf(&mut sc.dh_skip, b * f));
        grads[gsk][0] = scale_grad(&sc.dglobal, &a.h, f, &mut sc.cols);
        gelu_grad_kept(&a.read, &a.e_read, &sc.dglobal, buf(&mut sc.dread, b * f));
        let dh = buf(&mut sc.dh, b * f);
        match ix.global {
            super::GlobalIx::Linear { read } => {
                back_x(&p[read.w], read, &sc.dread, b, &mut sc.wt, &mut sc.dcache);
                back_params(grads, read, &a.cache, &sc.dread, b);
                for ((o, &gv), &sv) in dh.iter_mut().zip(&sc.dh_gate).zip(&sc.dh_skip) {
                    *o = gv + sv;
                }
            }
            super::GlobalIx::Attention { query, pos, out } => {
                let slots = g / s;
                back_x(&p[out.w], out, &sc.dread, b, &mut sc.wt, &mut sc.dmixed);
                back_params(grads, out, &a.mixed, &sc.dread, b);
                let (keys, dmixed, att) = (&a.keys, &sc.dmixed, &a.att);
                super::per_lane(buf(&mut sc.datt, b * slots), slots, |l, o| {
                    let kt = crate::model::View {
                        data: &keys[l * g..(l + 1) * g],
                        off: 0,
                        rs: 1,
                        cs: s,
                    };
                    let dm = view(&dmixed[l * s..(l + 1) * s], s, 1);
                    super::super::gemm(1, slots, s, dm, kt, o);
                });
                softmax_grad(&a.att, &sc.datt, slots, buf(&mut sc.dscores, b * slots));
                let (dscores, q) = (&sc.dscores, &a.q);
                // dkeys: att^T dmixed + dscores q^T, per lane.
                super::per_lane(buf(&mut sc.dkeys, b * g), g, |l, o| {
                    let av = view(&att[l * slots..(l + 1) * slots], 1, 1);
                    let dm = view(&dmixed[l * s..(l + 1) * s], s, 1);
                    super::super::gemm(slots, s, 1, av, dm, o);
                });
                super::per_lane(buf(&mut sc.dkeys2, b * g), g, |l, o| {
                    let dv = view(&dscores[l * slots..(l + 1) * slots], 1, 1);
                    let qv = view(&q[l * s..(l + 1) * s], s, 1);
                    super::super::gemm(slots, s, 1, dv, qv, o);
                });
                for (o, &v) in sc.dkeys.iter_mut().zip(&sc.dkeys2) {
                    *o += v;
                }
                let dkeys = &sc.dkeys;
                let dq = buf(&mut sc.dq, b * s);
                super::per_lane(dq, s, |l, o| {
                    let kt = crate::model::View {
                        data: &keys[l * g..(l + 1) * g],
                        off: 0,
                        rs: 1,
                        cs: s,
                    };
                    let dv = view(&dscores[l * slots..(l + 1) * slots], 1, 1);
                    super::super::gemm(s, 1, slots, kt, dv, o);
                });
                let k = (1.0 / (s as f64).sqrt()) as f32;
                for v in sc.dq.iter_mut() {
                    *v = *v * k + 0.0;
                }
                col_sum(dkeys, &mut grads[pos]);
                back_x(&p[query.w], query, &sc.dq, b, &mut sc.wt, &mut sc.dh_query);
                back_params(grads, query, &a.h, &sc.dq, b);
                // candle's order: the skip's, the query's, the gate's.
                let parts = sc.dh_skip.iter().zip(&sc.dh_query).zip(&sc.dh_gate);
                for (o, ((&sv, &qv), &gv)) in dh.iter_mut().zip(parts) {
                    *o = sv + qv + gv;
                }
            }
        }
        let dslot = buf(&mut sc.dslot, b * s);
        // The cache's gradient: the read's, or the keys' (keys = cache + pos).
        let dcache = match ix.global {
            super::GlobalIx::Linear { .. } => &sc.dcache,
            super::GlobalIx::Attention { .. } => &sc.dkeys,
        };
        for (o, row) in dslot.chunks_exact_mut(s).zip(dcache.chunks_exact(g)) {
            o.copy_from_slice(&row[g - s..]);
        }
        let ce = ix.cache_enc;
        geglu_grad(
            &a.xw_cache,
            &p[ce.b],
            &sc.dslot,
            buf(&mut sc.du_cache, b * ce.fan_out),
        );
        back_x(&p[ce.w], ce, &sc.du_cache, b, &mut sc.wt, &mut sc.dnewest);
        {
            let dw = &mut grads[ce.w];
            super::super::gemm(
                d,
                ce.fan_out,
                b,
                view(&a.newest, 1, d),
                view(&sc.du_cache, ce.fan_out, 1),
                dw,
            );
            col_sum(&sc.du_cache, &mut grads[ce.b]);
        }
        back_ln(grads, ix.ln_in, &p[ix.ln_in.g], &a.x, &sc.dh, &mut sc.dx_in);

        // Local stream: gelu(conv(ln(x))).
        gelu_grad_kept(
            &a.conv,
            &a.e_conv,
            &sc.dlocal,
            buf(&mut sc.dconv, b * t * d),
        );
        let (cw, tp) = (&p[ix.conv_w], t + 2);
        {
            let dcw = &mut grads[ix.conv_w];
            dcw.fill(0.0);
            for l in 0..b {
                for tau in 0..t {
                    let gr = &sc.dconv[(l * t + tau) * d..][..d];
                    for k in 0..3 {
                        let xr = &a.xp[(l * tp + tau + k) * d..][..d];
                        for c in 0..d {
                            dcw[k * d + c] += gr[c] * xr[c];
                        }
                    }
                }
            }
        }
        col_sum(&sc.dconv, &mut grads[ix.conv_b]);
        let dxl = buf(&mut sc.dxl, b * t * d);
        let dconv = &sc.dconv;
        crate::par::rows_mut(dxl, t * d, 3 * t * d, |l0, rows| {
            for (l, lane) in (l0..).zip(rows.chunks_exact_mut(t * d)) {
                for (sg, o) in lane.chunks_exact_mut(d).enumerate() {
                    let gr = |tau: usize| &dconv[(l * t + tau) * d..][..d];
                    for c in 0..d {
                        // Contributions of the taps k = 0 (output sg + 1),
                        // 1 (sg) and 2 (sg - 1), in candle's order.
                        let c0 = if sg + 1 < t {
                            gr(sg + 1)[c] * cw[c]
                        } else {
                            0.0
                        };
                        let c1 = gr(sg)[c] * cw[d + c];
                        let c2 = if sg >= 1 {
                            gr(sg - 1)[c] * cw[2 * d + c]
                        } else {
                            0.0
                        };
                        o[c] = c2 + c1 + c0;
                    }
                }
            }
        });
        back_ln(
            grads,
            ix.ln_local,
            &p[ix.ln_local.g],
            &a.x,
            &sc.dxl,
            &mut sc.dx_local,
        );

        // The embedded context: three contributions, then the table.
        let emb = &mut grads[ix.emb];
        clear_rows(emb, d, &sc.emb_rows);
        sc.emb_rows.clear();
        sc.emb_rows.extend_from_slice(&a.ids);
        let zero = vec![0f32; d];
        for (i, &c) in a.ids.iter().enumerate() {
            let (l, pos) = (i / t, i % t);
            let o = &mut emb[c as usize * d..][..d];
            // Only the newest position feeds the cache slot.
            let newest = if pos == t - 1 {
                &sc.dnewest[l * d..(l + 1) * d]
            } else {
                &zero[..]
            };
            let (din, dlo) = (&sc.dx_in[i * d..][..d], &sc.dx_local[i * d..][..d]);
            for (((o, &iv), &nv), &lv) in o.iter_mut().zip(din).zip(newest).zip(dlo) {
                *o += iv + nv + lv;
            }
        }
    }
}
