//! What a byte costs: the multiply-adds of every part of a training step,
//! per byte coded, computed from a preset's sizes alone.
//!
//! A step codes one byte in each of B lanes: the network's forward pass, the
//! cross-entropy backward pass and an AdamW update over every parameter. The
//! forward pass is a chain of products (a `lanes x in` matrix times an
//! `in x out` one costs `lanes * in * out` multiply-adds); the backward pass
//! of each product computes the gradient of its input and of its weights,
//! twice its forward cost; the update touches every parameter once per step,
//! so its cost per byte is the parameter count over the lanes. The side
//! models and the coder do table lookups and exps, not products, and are
//! counted as such. docs/PERFORMANCE.md sets these counts beside the
//! machine's measured peak and the instructions a real run executes.

use crate::preset::{GlobalRead, Preset};

/// Floating-point operations of one AdamW update of one parameter (two
/// moments, bias corrections, square root, division, decay, step).
const ADAMW_FLOPS: f64 = 14.0;

/// One part of a step and its cost per byte coded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Part {
    /// What it is ("fine refiner", "optimizer", ...).
    pub name: &'static str,
    /// Multiply-adds of its forward pass.
    pub forward: f64,
    /// Multiply-adds of its backward pass (twice the forward pass's products).
    pub backward: f64,
}

/// The cost of coding one byte with a preset.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Cost {
    /// The network's products, part by part, per byte.
    pub parts: Vec<Part>,
    /// Floating-point operations of the optimizer per byte (its update over
    /// every parameter, divided by the lanes that share a step).
    pub optimizer_flops: f64,
    /// Trainable parameters.
    pub params: f64,
    /// Table slots the side models read per byte (each context's slot, the
    /// match model's two tables).
    pub side_lookups: f64,
    /// Exponentials per byte: the coder's tables (256) and the softmaxes of
    /// the attention read and the cross-entropy, and the SSE stage's own
    /// 256 where a preset has it.
    pub exps: f64,
    /// Multiply-adds per byte of the SSE stage's mixer, at most: every one of
    /// a byte's 255 nodes refined (the stage refines only those with 1/256
    /// of the network's mass, usually a few dozen), and the 8 nodes of the
    /// coded byte learning (a mix and a weight update each). 0 without it.
    pub sse_madds: f64,
}

impl Cost {
    /// Multiply-adds per byte of the network, forward and backward.
    pub fn network_madds(&self) -> f64 {
        self.parts.iter().map(|p| p.forward + p.backward).sum()
    }

    /// Floating-point operations per byte: two per multiply-add (the
    /// network's and the SSE stage's), and the optimizer's.
    pub fn flops(&self) -> f64 {
        2.0 * (self.network_madds() + self.sse_madds) + self.optimizer_flops
    }
}

/// The cost per byte of coding with `p` (its own lane count).
pub fn of(p: &Preset) -> Cost {
    let dm = crate::model::Dims::of(p);
    let n = |v: usize| v as f64;
    let (d, t, f, g, s, h) = (n(dm.d), n(dm.t), n(dm.f), n(dm.g), n(dm.s), n(dm.h));
    let (nb, r, fb, slots) = (n(dm.nb), n(dm.r), n(dm.fb), n(dm.slots));
    let side = p.side();
    let (rows, conf, sources) = match dm.mixer {
        Some(m) => (n(m.rows), n(m.conf), n(m.sources)),
        None => (0.0, 0.0, 0.0),
    };
    let part = |name, forward: f64| Part {
        name,
        forward,
        backward: 2.0 * forward,
    };
    let global = match dm.global {
        GlobalRead::Linear => g * f,
        GlobalRead::Attention => f * s + 2.0 * slots * s + s * f,
    };
    let mut parts = vec![
        part("cache encoder", d * 2.0 * s),
        part("global read", global),
        part("local conv", 3.0 * t * d),
        part("gate", f * f),
        part("coarse refiner", nb * (2.0 * fb * r + r * r + fb * fb)),
        part("fine refiner", f * 2.0 * h + h * f),
        part("output", f * 256.0),
    ];
    if rows > 0.0 {
        parts.push(part(
            "side mixer",
            (f + conf) * rows + sources * n(crate::model::PICK_DIM) * f,
        ));
    }
    let params = p.param_count() as f64;
    let matching = sources > side.contexts.len() as f64;
    let lookups = side.contexts.len() as f64 + if matching { 2.0 } else { 0.0 };
    let attention_exps = match dm.global {
        GlobalRead::Attention => slots,
        GlobalRead::Linear => 0.0,
    };
    // The SSE mixer's inputs: the network's log-odds and four curves, and
    // one count map per context of the statistics with `sse_counts`.
    let sse_inputs = 5.0
        + if p.sse_counts {
            n(side.contexts.len())
        } else {
            0.0
        };
    let (sse_madds, sse_exps) = if p.sse {
        (255.0 * sse_inputs + 8.0 * 2.0 * sse_inputs, 256.0)
    } else {
        (0.0, 0.0)
    };
    Cost {
        parts,
        optimizer_flops: params * ADAMW_FLOPS / p.lanes.max(1) as f64,
        params,
        side_lookups: lookups,
        exps: 256.0 * 2.0 + attention_exps + sse_exps,
        sse_madds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The model's products grow with the sizes that shape them, and the
    /// fine refiner (3 F H multiply-adds forward) is the default's largest part.
    #[test]
    fn cost_follows_the_sizes() {
        let d = Preset::load("default").unwrap();
        let c = of(&d);
        let fine = c.parts.iter().find(|p| p.name == "fine refiner").unwrap();
        assert_eq!(fine.forward, 3.0 * 128.0 * 256.0);
        assert_eq!(fine.backward, 2.0 * fine.forward);
        assert!(fine.forward > c.network_madds() / 3.0 / 3.0);
        let mut wide = d.clone();
        wide.ffn *= 2;
        assert!(of(&wide).network_madds() > c.network_madds());
        let mut fewer = d.clone();
        fewer.lanes = 16;
        // The same products per byte; the update shared by fewer lanes.
        assert_eq!(of(&fewer).network_madds(), c.network_madds());
        // (Fewer lanes also have fewer per-lane refiner weights.)
        let f = of(&fewer);
        assert_eq!(f.optimizer_flops, f.params * ADAMW_FLOPS / 16.0);
        assert!(f.params < c.params);
        let ratio = f.optimizer_flops / c.optimizer_flops;
        assert!(ratio > 4.0, "{ratio}");
        // The SSE stage counts where a preset has it: 5 inputs at the default,
        // 5 + 11 contexts' count maps at strong.
        assert_eq!(c.sse_madds, 271.0 * 5.0);
        assert_eq!(of(&Preset::load("fast").unwrap()).sse_madds, 0.0);
        assert_eq!(of(&Preset::load("strong").unwrap()).sse_madds, 271.0 * 16.0);
        // Each level up costs more per byte.
        let levels: Vec<f64> = ["fast", "medium", "default", "strong", "paper"]
            .iter()
            .map(|n| of(&Preset::load(n).unwrap()).flops())
            .collect();
        assert!(levels.windows(2).all(|w| w[0] < w[1]), "{levels:?}");
    }
}
