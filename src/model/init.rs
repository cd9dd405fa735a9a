//! The trainable parameters: their names, shapes and initial values, in the
//! optimizer's order.
//!
//! This list is part of the format. The order is the order in which AdamW
//! walks the parameters (and the fingerprint hashes them); each value comes
//! from the preset's seed forked by the parameter's name
//! ([`SplitMix64::fork`]), so a parameter's values never depend on the
//! others. Both implementations of the step start from [`parameters`]: the
//! CPU step copies the values, the candle graph makes variables of them.

use super::dims::Dims;
use crate::preset::GlobalRead;
use crate::rng::SplitMix64;

/// How a parameter's initial values are drawn.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Init {
    /// N(0, std).
    Normal(f64),
    /// Uniform in [-bound, bound).
    Uniform(f64),
    /// Every element equal.
    Constant(f32),
    /// One given value per element.
    Values(Vec<f32>),
}

/// One trainable parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

impl Param {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Its initial values, drawn from `seed`.
    pub fn values(&self, seed: u64) -> Vec<f32> {
        let n = self.len();
        let mut g = SplitMix64::new(seed).fork(&self.name);
        match &self.init {
            Init::Normal(std) => (0..n).map(|_| g.normal(*std)).collect(),
            Init::Uniform(bound) => (0..n).map(|_| g.uniform(*bound)).collect(),
            Init::Constant(v) => vec![*v; n],
            Init::Values(v) => v[..n].to_vec(),
        }
    }
}

/// Initial weights of the mixer's score rows: a verified match is usually
/// right, so its one-hot starts strong; count scores (log2 of counts) start
/// mild.
const MATCH_WEIGHT: f32 = 2.0;
const SEEN_WEIGHT: f32 = 0.5;
const COUNT_WEIGHT: f32 = 0.3;
/// Width of the embedding of a side model's predicted byte.
pub(crate) const PICK_DIM: usize = 8;

/// Builds the list in order.
struct List(Vec<Param>);

impl List {
    fn push(&mut self, name: &str, shape: &[usize], init: Init) {
        self.0.push(Param {
            name: name.to_string(),
            shape: shape.to_vec(),
            init,
        });
    }

    /// `x W + b`, W stored (in, out): PyTorch's default, uniform in
    /// ±1/sqrt(fan_in).
    fn linear(&mut self, name: &str, fan_in: usize, fan_out: usize) {
        let bound = 1.0 / (fan_in as f64).sqrt();
        self.push(
            &format!("{name}.w"),
            &[fan_in, fan_out],
            Init::Uniform(bound),
        );
        self.push(&format!("{name}.b"), &[fan_out], Init::Uniform(bound));
    }

    /// Layer norm's gain (1) and bias (0).
    fn layer_norm(&mut self, name: &str, n: usize) {
        self.push(&format!("{name}.g"), &[n], Init::Constant(1.0));
        self.push(&format!("{name}.b"), &[n], Init::Constant(0.0));
    }

    /// A scalar skip weight, 1.
    fn skip(&mut self, name: &str) {
        self.push(name, &[1], Init::Constant(1.0));
    }
}

/// Every trainable parameter of the model with sizes `d`, in the optimizer's
/// order.
pub(crate) fn parameters(d: &Dims) -> Vec<Param> {
    let mut l = List(Vec::new());
    l.push("embed", &[256, d.d], Init::Normal(0.01));
    l.layer_norm("ln_in", d.f);
    l.linear("cache_enc", d.d, 2 * d.s); // a GeGLU: two halves
    match d.global {
        GlobalRead::Linear => l.linear("global.read", d.g, d.f),
        GlobalRead::Attention => {
            l.linear("global.query", d.f, d.s);
            l.push("global.pos", &[d.slots, d.s], Init::Normal(0.02));
            l.linear("global.out", d.s, d.f);
        }
    }
    l.skip("global.skip");
    l.layer_norm("ln_local", d.d);
    // Depthwise convolution, kernel 3: PyTorch's Conv1d with one input
    // channel per group, uniform in ±1/sqrt(3).
    let bound = 1.0 / 3f64.sqrt();
    l.push("local.conv.w", &[3, d.d], Init::Uniform(bound));
    l.push("local.conv.b", &[d.d], Init::Uniform(bound));
    l.linear("gate", d.f, d.f);
    for i in 0..d.nb {
        let n = format!("coarse{i}");
        l.layer_norm(&format!("{n}.ln"), d.fb);
        l.linear(&format!("{n}.down"), d.fb, d.r);
        l.push(&format!("{n}.lane_w"), &[d.b, d.r, d.r], Init::Normal(0.01));
        l.linear(&format!("{n}.up"), d.r, d.fb);
        l.linear(&format!("{n}.gate"), d.fb, d.fb);
        l.push(&format!("{n}.lane_b"), &[d.b, d.fb], Init::Normal(0.01));
        l.skip(&format!("{n}.skip"));
    }
    l.layer_norm("fine.ln1", d.f);
    l.linear("fine.in", d.f, 2 * d.h); // a GeGLU: two halves
    l.linear("fine.out", d.h, d.f);
    l.layer_norm("fine.ln2", d.f);
    l.skip("fine.skip");
    // The reference's output layer: N(0, 0.01) weights, zero bias.
    l.push("out.w", &[d.f, 256], Init::Normal(0.01));
    l.push("out.b", &[256], Init::Constant(0.0));
    if let Some(m) = d.mixer {
        let init: Vec<f32> = (0..m.rows)
            .map(|i| match (m.matching, i) {
                (true, 0) => MATCH_WEIGHT,
                (true, i) if i % 2 == 1 => SEEN_WEIGHT,
                (false, i) if i % 2 == 0 => SEEN_WEIGHT,
                _ => COUNT_WEIGHT,
            })
            .collect();
        l.push("mix.net", &[d.f, m.rows], Init::Constant(0.0));
        l.push("mix.conf", &[m.conf, m.rows], Init::Constant(0.0));
        l.push("mix.bias", &[m.rows], Init::Values(init));
        // Small embeddings of each source's predicted byte (257 per source:
        // 256 for none), projected to F and added to the fine refiner's
        // input: the network sees what the side models predict, not only
        // how much to trust them. (Full-width embeddings measured the same
        // ratio at 60% more parameters to update every step.)
        l.push("mix.picks", &[m.sources * 257, PICK_DIM], Init::Normal(0.1));
        l.linear("mix.picks_proj", m.sources * PICK_DIM, d.f);
    }
    l.0
}
