//! Model presets: every number that shapes the model, its training and the lane
//! layout.
//!
//! Presets are small TOML files under `models/` (compiled into the binary) or a
//! path given by the user. The values actually used are written into every
//! compressed frame (see [`Preset::write_to`]), so a file decodes the same way
//! whatever the presets become in later versions.

use crate::error::{Error, Result};
use crate::side::{Config, Context};
use serde::Deserialize;

/// How the global stream reads its rolling feature cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GlobalRead {
    /// The reference's read: one trained linear layer over the whole cache.
    Linear,
    /// The current context queries the cached past-step features (one slot per step).
    Attention,
}

/// A complete model and lane configuration.
///
/// Get one with [`Preset::load`] (a level, a built-in name or a TOML file) or
/// [`Preset::parse`], then change fields as needed; new fields may come in
/// any release (`#[non_exhaustive]`), so it cannot be built field by field.
/// Encoders check a changed preset against the supported ranges
/// (docs/FORMAT.md) before they write anything.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Preset {
    /// Short name, stored in the header for `fade list` (at most 32 bytes).
    pub name: String,
    /// One line for `--help` and the README; not stored.
    #[serde(default)]
    pub description: String,
    /// Number of parallel lanes B (the batch of every training step).
    pub lanes: u32,
    /// Context length T: bytes of each lane the model sees.
    pub context: u32,
    /// Byte embedding width D; the flattened context has F = T * D features.
    pub embed: u32,
    /// Cache read: linear (reference) or attention.
    pub global: GlobalRead,
    /// Features in the rolling global cache.
    pub cache: u32,
    /// Features appended to the cache per step (so it spans cache / cache_step steps).
    pub cache_step: u32,
    /// Branches of the coarse refiner (F must divide evenly).
    pub refiner_branches: u32,
    /// Rank of the coarse refiner's per-lane matrices.
    pub refiner_rank: u32,
    /// Hidden width of the fine GeGLU refiner.
    pub ffn: u32,
    /// AdamW learning rate.
    pub lr: f32,
    /// AdamW decoupled weight decay.
    pub weight_decay: f32,
    /// AdamW first-moment decay.
    pub beta1: f32,
    /// AdamW second-moment decay.
    pub beta2: f32,
    /// AdamW epsilon.
    pub eps: f32,
    /// Input bytes per segment; each segment is cut into `lanes` lanes.
    pub segment: u32,
    /// Seed of the weight initialisation.
    pub seed: u64,
    /// Whether an input shorter than a segment gets fewer lanes (see
    /// [`Preset::fitted`]); true unless the preset says otherwise. Only the
    /// compressor reads it: the frame header records the lane count used.
    #[serde(default = "yes")]
    pub fit_lanes: bool,
    /// The lane plan: when fitting, the bytes each lane should have at least
    /// (2048 unless the preset says otherwise). Longer lanes start cold less
    /// often but give smaller, slower steps; each level sets it from the
    /// measured trade (docs/PERFORMANCE.md). Only the compressor reads it.
    #[serde(default = "lane_bytes")]
    pub lane_bytes: u32,
    /// Orders (1 to 8) of the context statistics the network mixes in
    /// (`src/side/stats.rs`); empty for the pure network.
    #[serde(default)]
    pub orders: Vec<u32>,
    /// More contexts of the statistics: "word", "pair" (word and the one
    /// before), "sparse" (the two bytes before the last), "column" (the
    /// column and the byte above it in the line before), "above" (that
    /// byte, the one after it and the last byte).
    #[serde(default)]
    pub contexts: Vec<String>,
    /// log2 of the context statistics' slots (32 bytes each).
    #[serde(default)]
    pub stats_bits: u32,
    /// Minimum lengths of the match model's short and long matches
    /// (`src/side/matcher.rs`); 0 leaves a table out, both 0 the model.
    #[serde(default)]
    pub match_short: u32,
    #[serde(default)]
    pub match_long: u32,
    /// log2 of the entries of each match table (4 bytes each).
    #[serde(default)]
    pub match_bits: u32,
    /// Whether adaptive curves refine the network's probabilities
    /// (`src/side/sse.rs`); bit 16 of the header's context mask.
    #[serde(default)]
    pub sse: bool,
    /// Whether the SSE stage also reads the counts of every context of the
    /// statistics, node by node (`src/side/sse.rs`); bit 17 of the header's
    /// context mask. Needs `sse`.
    #[serde(default)]
    pub sse_counts: bool,
}

fn yes() -> bool {
    true
}

fn lane_bytes() -> u32 {
    MIN_LANE_BYTES
}

/// Every built-in preset a frame header can name, by its identifier there.
/// An identifier's preset never changes, because files name it: a level that
/// is retuned gets a new identifier, and its old one stays here (in
/// `models/retired/`) so that the files made with it still decode.
const BUILTIN: &[(u8, &str)] = &[
    (1, include_str!("../models/retired/fast-1.toml")),
    (2, include_str!("../models/retired/medium-2.toml")),
    (3, include_str!("../models/retired/default-3.toml")),
    (4, include_str!("../models/retired/strong-4.toml")),
    (5, include_str!("../models/paper.toml")),
    (6, include_str!("../models/retired/fast-6.toml")),
    (7, include_str!("../models/retired/default-7.toml")),
    (8, include_str!("../models/retired/strong-8.toml")),
    (9, include_str!("../models/retired/strong-9.toml")),
    (10, include_str!("../models/retired/strong-10.toml")),
    (11, include_str!("../models/retired/default-11.toml")),
    (12, include_str!("../models/retired/fast-12.toml")),
    (13, include_str!("../models/retired/default-13.toml")),
    (14, include_str!("../models/medium.toml")),
    (15, include_str!("../models/strong.toml")),
    (16, include_str!("../models/fast.toml")),
    (17, include_str!("../models/retired/default-17.toml")),
    (18, include_str!("../models/retired/default-18.toml")),
    (19, include_str!("../models/default.toml")),
];

/// The ladder: level N is the built-in preset with identifier `LEVELS[N - 1]`.
const LEVELS: [u8; 5] = [16, 14, 19, 15, 5];

/// The TOML text of built-in preset `id`.
fn builtin_text(id: u8) -> Option<&'static str> {
    BUILTIN.iter().find(|(i, _)| *i == id).map(|(_, t)| *t)
}

/// The ladder's presets, fastest first: (identifier, name, TOML text).
fn ladder() -> impl Iterator<Item = (u8, &'static str, &'static str)> {
    LEVELS.iter().filter_map(|&id| {
        let text = builtin_text(id)?;
        Some((id, toml_name(text)?, text))
    })
}

/// The `name = "..."` of a preset's TOML text (without parsing the rest).
fn toml_name(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|r| r.strip_suffix('"'))
}

/// The text of a preset error without its "invalid preset: " prefix.
fn preset_message(e: Error) -> String {
    match e {
        Error::Preset(m) => m,
        e => e.to_string(),
    }
}

/// Shortest lane [`Preset::fitted`] aims for, in bytes, unless a preset
/// plans longer ones (`lane_bytes`).
const MIN_LANE_BYTES: u32 = 2048;
/// Fewest lanes [`Preset::fitted`] goes down to.
const MIN_FITTED_LANES: u32 = 16;
/// Fewest lanes a longer `lane_bytes` plan goes down to while lanes of
/// [`MIN_LANE_BYTES`] would allow more: a step of fewer lanes runs on one
/// core (the default's 64 x 128 features is `plan::MIN_SPLIT_STEP`) and pays
/// the optimizer's pass over fewer bytes, which made 128 KiB inputs 47%
/// slower at 16 lanes than at 64 (docs/PERFORMANCE.md, "Real data").
const PLANNED_MIN_LANES: u32 = 64;

/// The range of every size this build supports, for a preset file and for a
/// frame header alike. They are about four times the largest built-in value,
/// and they bound what a hostile or corrupt header can make the decoder build
/// or run: a header outside them is refused before anything is allocated, with
/// the field named. docs/FORMAT.md lists them.
pub const RANGES: &[(&str, u32, u32)] = &[
    ("lanes", 1, 1 << 16),
    ("context", 1, 64),
    ("embed", 1, 128),
    ("cache", 1, 1 << 14),
    ("cache_step", 1, 1 << 10),
    ("refiner_branches", 1, 64),
    ("refiner_rank", 1, 256),
    ("ffn", 1, 1 << 15),
];
/// Most features F = context * embed.
const MAX_FEATURES: usize = 2048;
/// Most trainable values of any model (the per-lane refiner matrices
/// included, so this also bounds the lanes of a large model).
const MAX_PARAMS: u64 = 1 << 28;
/// Most trainable values of a custom preset's model on the few lanes of the
/// arithmetic canary (`Predictor::fingerprint`). A header names a built-in
/// preset by identifier, and its fingerprint is checked against the one
/// this build knows before any canary runs; a custom preset's can only be
/// checked by running the canary, which this bound keeps under 0.1 s and
/// 100 MB. About twice strong's canary (1.09 million).
pub const MAX_CUSTOM_PARAMS: u64 = 1 << 21;

impl Preset {
    /// Names of the presets compiled into the binary.
    pub fn builtin_names() -> Vec<&'static str> {
        ladder().map(|(_, n, _)| n).collect()
    }

    /// A built-in preset by name or by level ("1" to "5", fastest to strongest),
    /// or a preset file by path.
    pub fn load(name_or_path: &str) -> Result<Self> {
        if let Some((_, _, text)) = ladder().find(|(_, n, _)| *n == name_or_path) {
            return Self::parse(text);
        }
        if let Ok(level) = name_or_path.parse::<usize>() {
            return match ladder().nth(level.wrapping_sub(1)) {
                Some((_, _, text)) => Self::parse(text),
                None => Err(Error::Preset(format!(
                    "no level {level} (levels are 1 to {})",
                    LEVELS.len()
                ))),
            };
        }
        let path = std::path::Path::new(name_or_path);
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Preset(format!("cannot read {}: {e}", path.display())))?;
            return Self::parse(&text)
                .map_err(|e| Error::Preset(format!("{}: {}", path.display(), preset_message(e))));
        }
        Err(Error::Preset(format!(
            "unknown preset '{name_or_path}' (built in: {})",
            Self::builtin_names().join(", ")
        )))
    }

    /// Parses and validates preset TOML.
    pub fn parse(text: &str) -> Result<Self> {
        let p: Preset = toml::from_str(text).map_err(|e| {
            // toml's own display spans several lines (the line quoted, a
            // caret); fade's errors are one line.
            let line = e.span().map(|r| text[..r.start].lines().count().max(1));
            let msg = e.message().trim().replace('\n', "; ");
            Error::Preset(match line {
                Some(n) => format!("line {n}: {msg}"),
                None => msg,
            })
        })?;
        p.validate().map_err(Error::Preset)?;
        Ok(p)
    }

    /// This preset for an input of exactly `n` bytes, all in one segment: fewer
    /// lanes when the preset's would be shorter than `lane_bytes` each (but not
    /// fewer than 64 where lanes of 2 KiB allow 64, and never fewer than 16).
    /// Each lane starts from an empty context, and the model gets one
    /// training step per lane byte, so on short inputs fewer, longer lanes
    /// compress much better: 64 KiB of enwik took 30,469 bytes with 256 lanes
    /// and 24,029 with 16. The lane count is in the frame header, so decoding
    /// needs nothing more; inputs of `256 * lane_bytes` and more keep a
    /// 256-lane preset.
    ///
    /// The side models' tables also shrink to what `n` bytes can fill (four
    /// slots per byte and context, four entries per position: fewer collide
    /// more, 0.3% larger on the 128 KiB set), so a small input does not pay
    /// for clearing 100 MB of tables.
    pub fn fitted(&self, n: usize) -> Preset {
        let fill = |per_byte: usize, bits: u32| {
            let want = (n.max(1) * per_byte.max(1) * 4)
                .next_power_of_two()
                .trailing_zeros();
            bits.min(want.max(12))
        };
        let p = Preset {
            stats_bits: fill(self.orders.len() + self.contexts.len(), self.stats_bits),
            match_bits: fill(1, self.match_bits),
            ..self.clone()
        };
        if !self.fit_lanes {
            return p;
        }
        let lanes_of = |bytes: u32| (n / bytes.max(1) as usize).min(u32::MAX as usize) as u32;
        let shortest = lanes_of(MIN_LANE_BYTES);
        let want = lanes_of(self.lane_bytes).max(shortest.min(PLANNED_MIN_LANES));
        Preset {
            lanes: self.lanes.min(want.max(MIN_FITTED_LANES)),
            ..p
        }
    }

    /// This preset with exactly `lanes` lanes, whatever the input's length
    /// (a GPU runs many lanes for little more than the cost of a few).
    pub fn with_lanes(&self, lanes: u32) -> Result<Preset> {
        let p = Preset {
            lanes,
            fit_lanes: false,
            ..self.clone()
        };
        p.validate()
            .map_err(|m| Error::Preset(format!("{lanes} lanes: {m}")))?;
        Ok(p)
    }

    /// Whether the network mixes in side models (every preset but `paper`).
    pub fn has_side_models(&self) -> bool {
        self.side().any()
    }

    /// The side models this preset asks for, as they see themselves: the
    /// contexts of the statistics in header order (orders, then the named
    /// ones), the tables' sizes, the match lengths.
    pub(crate) fn side(&self) -> Config {
        let mut contexts: Vec<Context> = self.orders.iter().map(|&k| Context::Order(k)).collect();
        for (c, name, _) in Context::EXTRA {
            if self.contexts.iter().any(|n| n == name) {
                contexts.push(c);
            }
        }
        Config {
            contexts,
            stats_bits: self.stats_bits,
            match_short: self.match_short,
            match_long: self.match_long,
            match_bits: self.match_bits,
            segment: self.segment as usize,
            lanes: self.lanes,
            sse_counts: self.sse_counts,
        }
    }

    /// Flattened context width F = T * D.
    pub fn features(&self) -> usize {
        (self.context * self.embed) as usize
    }

    /// Number of past steps the cache spans.
    pub fn cache_slots(&self) -> usize {
        (self.cache / self.cache_step) as usize
    }

    /// Rough count of trainable values (the big matrices), used to bound what a
    /// frame header may make the decoder allocate.
    pub fn approx_params(&self) -> u64 {
        let (b, f) = (self.lanes as u64, self.features() as u64);
        let (g, r, h) = (self.cache as u64, self.refiner_rank as u64, self.ffn as u64);
        let per_branch = f / self.refiner_branches.max(1) as u64;
        g * f
            + 2 * f * f
            + 3 * f * h
            + 256 * f
            + self.refiner_branches as u64
                * (b * r * r + b * per_branch + per_branch * per_branch + 2 * per_branch * r)
    }

    /// Exact number of trainable values of the model this preset builds
    /// (mirrors `Model::new`; a test checks the two agree). Computed in
    /// floating point, exact below 2^53 and saturating above, so a hostile
    /// header can neither overflow nor wrap it.
    pub fn param_count(&self) -> u64 {
        self.param_count_f64() as u64
    }

    fn param_count_f64(&self) -> f64 {
        let (b, d, f) = (self.lanes as f64, self.embed as f64, self.features() as f64);
        let (g, s, r, h) = (
            self.cache as f64,
            self.cache_step as f64,
            self.refiner_rank as f64,
            self.ffn as f64,
        );
        let nb = self.refiner_branches as f64;
        let fb = f / nb.max(1.0);
        let linear = |i: f64, o: f64| i * o + o;
        let slots = (self.cache / self.cache_step.max(1)) as f64;
        let global = match self.global {
            GlobalRead::Linear => linear(g, f),
            GlobalRead::Attention => linear(f, s) + slots * s + linear(s, f),
        };
        let branch =
            2.0 * fb + linear(fb, r) + b * r * r + linear(r, fb) + linear(fb, fb) + b * fb + 1.0;
        256.0 * d // embedding
            + 2.0 * f // input norm
            + linear(d, 2.0 * s) // cache encoder
            + global
            + 1.0 // global skip
            + 2.0 * d // local norm
            + 4.0 * d // depthwise conv
            + linear(f, f) // gate
            + nb * branch
            + 2.0 * f // fine norm 1
            + linear(f, 2.0 * h) // fine GeGLU
            + linear(h, f)
            + 2.0 * f // fine norm 2
            + 1.0 // fine skip
            + linear(f, 256.0) // output
            + self.mixer_params()
    }

    /// Values of the mixer that weighs the side models: from the network's
    /// features and from the side models' confidences to one weight per row.
    fn mixer_params(&self) -> f64 {
        let side = self.side();
        let rows = side.rows() as f64;
        if rows == 0.0 {
            return 0.0;
        }
        let conf = side.conf_width() as f64;
        let sources = side.sources() as f64;
        let picks = sources * 257.0 * 8.0 + (sources * 8.0 + 1.0) * self.features() as f64;
        (self.features() as f64 + conf + 1.0) * rows + picks
    }

    /// Bytes of memory coding with this preset takes at most, all of it:
    /// parameters with their gradients, AdamW moments and update scratch; the
    /// activations of one step kept for the backward pass and its gradients
    /// (per lane); the rolling cache; the coder tables in flight; the segment
    /// buffers (input, output and lane streams, up to three segments in flight);
    /// and a fixed allowance for the program itself (about 50 MB measured).
    /// Computed from the header alone, before anything is allocated, so a
    /// decoder can refuse a frame it could not afford.
    ///
    /// An upper bound on the whole process's peak resident memory, canary
    /// included: `tests/it/reliability.rs` (`memory_estimate_bounds_the_measured_peak`)
    /// measures the peak of compressing and decompressing with every built-in
    /// preset on all its lanes and with custom presets at the limit of each
    /// field, and checks each against this estimate.
    pub fn memory_needed(&self) -> u64 {
        const F32: f64 = 4.0;
        const PROGRAM: f64 = (64 << 20) as f64;
        let (b, f, h) = (self.lanes as f64, self.features() as f64, self.ffn as f64);
        let (g, s) = (self.cache as f64, self.cache_step as f64);
        let slots = (self.cache / self.cache_step.max(1)) as f64;
        let r = self.refiner_rank as f64 * self.refiner_branches as f64;
        // Value, gradient, two moments and one scratch copy.
        let params = self.param_count_f64() * F32 * 5.0;
        // Values of one step per lane: about 48 F-wide tensors, 8 of the fine
        // refiner's width, 4 cache-wide (old, new, keys, gradient), the cache
        // encoder and attention, logits with softmax and tables; kept forward,
        // doubled by their gradients, plus a third for temporaries.
        let side_rows = self.side().rows() as f64;
        let per_lane = 48.0 * f
            + 8.0 * h
            + 4.0 * g
            + 8.0 * s
            + 4.0 * slots
            + 4.0 * r
            + 2048.0
            + 256.0 * 3.0 * side_rows;
        let activations = b * per_lane * F32 * 3.0;
        // Segments: reader, channel and coder each hold one; the lane streams
        // and decoded output add two more; 2 MiB of I/O buffers.
        let buffers = 5.0 * self.segment as f64 + (2 << 20) as f64;
        // `as` saturates: a hostile header gives u64::MAX, never a wrapped value.
        let side = self.side().memory() as f64
            + if self.sse {
                crate::side::sse::Sse::memory() as f64
                    + b * crate::side::sse::Sse::lane_memory() as f64
            } else {
                0.0
            };
        (PROGRAM + params + activations + buffers + side) as u64
    }

    /// The value of each field of [`RANGES`], in its order.
    fn sizes(&self) -> [u32; 8] {
        [
            self.lanes,
            self.context,
            self.embed,
            self.cache,
            self.cache_step,
            self.refiner_branches,
            self.refiner_rank,
            self.ffn,
        ]
    }

    /// Checks every field against the range this build supports; the error
    /// names the first field out of range, its value and the range.
    pub(crate) fn validate(&self) -> std::result::Result<(), String> {
        for (&(field, lo, hi), v) in RANGES.iter().zip(self.sizes()) {
            if !(lo..=hi).contains(&v) {
                return Err(format!("{field} = {v} is outside {lo} to {hi}"));
            }
        }
        if self.features() > MAX_FEATURES {
            return Err(format!(
                "context * embed = {} is above {MAX_FEATURES}",
                self.features()
            ));
        }
        if self.param_count() > MAX_PARAMS {
            return Err(format!(
                "the model has {} parameters, above {MAX_PARAMS}",
                self.param_count()
            ));
        }
        if !self.cache.is_multiple_of(self.cache_step) {
            return Err("cache must be a multiple of cache_step".into());
        }
        if !self
            .features()
            .is_multiple_of(self.refiner_branches as usize)
        {
            return Err("context * embed must be a multiple of refiner_branches".into());
        }
        if self.segment < self.lanes || self.segment > 1 << 30 {
            return Err(format!(
                "segment = {} is outside lanes ({}) to 1 GiB",
                self.segment, self.lanes
            ));
        }
        if self.name.len() > 32 || self.name.is_empty() {
            return Err("name must be 1 to 32 bytes".into());
        }
        if self.orders.len() > 8
            || self.orders.iter().any(|&k| !(1..=8).contains(&k))
            || self.orders.windows(2).any(|w| w[0] >= w[1])
        {
            return Err("orders must be increasing, from 1 to 8".into());
        }
        let known = |n: &String| Context::EXTRA.iter().any(|e| e.1 == n);
        if !self.contexts.iter().all(known) {
            let names: Vec<&str> = Context::EXTRA.iter().map(|e| e.1).collect();
            return Err(format!("contexts may be {}", names.join(", ")));
        }
        let counting = !self.orders.is_empty() || !self.contexts.is_empty();
        if counting && !(8..=26).contains(&self.stats_bits) {
            return Err(format!(
                "stats_bits = {} is outside 8 to 26",
                self.stats_bits
            ));
        }
        if self.sse_counts && !(self.sse && counting) {
            return Err("sse_counts needs sse and context statistics".into());
        }
        let contexts = self.side().contexts.len();
        if self.sse_counts && contexts > crate::side::sse::MAX_COUNTED {
            return Err(format!(
                "sse_counts reads at most {} contexts, not {contexts}",
                crate::side::sse::MAX_COUNTED
            ));
        }
        let matching = self.match_short > 0 || self.match_long > 0;
        if self.match_short > 64 || self.match_long > 64 {
            return Err("match lengths must be at most 64".into());
        }
        if matching && !(8..=26).contains(&self.match_bits) {
            return Err(format!(
                "match_bits = {} is outside 8 to 26",
                self.match_bits
            ));
        }
        let hyper = [self.lr, self.weight_decay, self.beta1, self.beta2, self.eps];
        if hyper.iter().any(|h| !h.is_finite() || *h < 0.0)
            || self.beta1 >= 1.0
            || self.beta2 >= 1.0
        {
            return Err("optimizer settings must be finite, non-negative, betas below 1".into());
        }
        Ok(())
    }

    /// The preset the arithmetic canary runs (`Predictor::fingerprint`): this
    /// one on at most three lanes, its tables at their smallest.
    pub(crate) fn canary(&self) -> Preset {
        let mut canary = self.fitted(0);
        canary.lanes = self.lanes.min(3);
        canary
    }

    /// The identifiers of every built-in preset, retired ones included.
    pub(crate) fn builtin_ids() -> impl DoubleEndedIterator<Item = u8> {
        BUILTIN.iter().map(|b| b.0)
    }

    /// The built-in preset `id` as it is written in `models/`.
    pub(crate) fn builtin(id: u8) -> Option<Preset> {
        Self::parse(builtin_text(id)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_parse_and_roundtrip_through_the_header() {
        for name in Preset::builtin_names() {
            let p = Preset::load(name).unwrap();
            let mut buf = Vec::new();
            p.write_to(&mut buf);
            let mut s = &buf[..];
            let mut q = Preset::read_from(&mut s).unwrap();
            assert!(s.is_empty());
            // Only the compressor reads the lane plan; no header carries it.
            q.description = p.description.clone();
            q.lane_bytes = p.lane_bytes;
            assert_eq!(p, q);
        }
    }

    /// Frame headers name a built-in preset by its identifier and an xxh32 of
    /// its values, so a released built-in preset must never change: a file
    /// written with it would be refused by the new build. Tune by adding a
    /// preset under a new identifier (the ladder then points its level
    /// there), not by editing one. Identifiers 1 to 5 are format version 2's
    /// first presets; 6 to 8 the retuned fast, default and strong; 9 strong
    /// with the SSE stage; 10 strong with its count maps.
    #[test]
    fn builtin_presets_are_frozen() {
        let got: Vec<(u8, String, u32)> = BUILTIN
            .iter()
            .map(|&(id, text)| {
                let p = Preset::parse(text).unwrap();
                (
                    id,
                    p.name.clone(),
                    xxhash_rust::xxh32::xxh32(&p.encoded(), 0),
                )
            })
            .collect();
        let want = FROZEN
            .iter()
            .map(|&(id, n, h)| (id, n.to_string(), h))
            .collect::<Vec<_>>();
        assert_eq!(got, want);
    }

    const FROZEN: &[(u8, &str, u32)] = &[
        (1, "fast", 0x68d4b2fa),
        (2, "medium", 0xb9fb8fb1),
        (3, "default", 0x919c0b89),
        (4, "strong", 0xcbe8e21d),
        (5, "paper", 0xeb0d8ca1),
        (6, "fast", 0x269f14b2),
        (7, "default", 0xed9b29da),
        (8, "strong", 0x63799a93),
        (9, "strong", 0xb9c10f75),
        (10, "strong", 0xaf0e8e50),
        (11, "default", 0x44857e2a),
        (12, "fast", 0x62ee2328),
        (13, "default", 0x400220f8),
        (14, "medium", 0x94608945),
        (15, "strong", 0xb8857115),
        (16, "fast", 0x43ae7ff3),
        (17, "default", 0xe6d7aaa6),
        (18, "default", 0xbe30f701),
        (19, "default", 0x3b9edf87),
    ];

    #[test]
    fn levels_climb_the_ladder_from_fast_to_paper() {
        let names: Vec<String> = (1..=5)
            .map(|l| Preset::load(&l.to_string()).unwrap().name)
            .collect();
        assert_eq!(names, ["fast", "medium", "default", "strong", "paper"]);
        // Each step up costs more model work per byte.
        let cost: Vec<u64> = names
            .iter()
            .map(|n| Preset::load(n).unwrap().approx_params())
            .collect();
        assert!(cost.windows(2).all(|w| w[0] < w[1]), "{cost:?}");
        for bad in ["0", "6", "99"] {
            let e = Preset::load(bad).unwrap_err().to_string();
            assert!(e.contains("levels are 1 to 5"), "{e}");
        }
    }

    #[test]
    fn short_inputs_get_fewer_longer_lanes() {
        let p = Preset::load("medium").unwrap();
        assert_eq!(p.lane_bytes, 2048);
        assert_eq!(p.fitted(1 << 20).lanes, 256);
        assert_eq!(p.fitted(100_000).lanes, 48);
        assert_eq!(p.fitted(20_000).lanes, 16);
        assert_eq!(p.fitted(0).lanes, 16);
        // The default's lane plan: 8 KiB a lane.
        let d = Preset::load("default").unwrap();
        assert_eq!(d.fitted(2 << 20).lanes, 128);
        assert_eq!(d.fitted(1 << 20).lanes, 128);
        // Never below 64 lanes while 2 KiB lanes would give as many.
        assert_eq!(d.fitted(128 << 10).lanes, 64);
        assert_eq!(d.fitted(100_000).lanes, 48);
        assert_eq!(d.fitted(20_000).lanes, 16);
        let few = Preset {
            lanes: 8,
            ..p.clone()
        };
        assert_eq!(few.fitted(10).lanes, 8);
        assert_eq!(p.fitted(100_000).context, p.context);
        // Lanes asked for are kept.
        let wide = Preset::load("paper").unwrap().with_lanes(4096).unwrap();
        assert_eq!(wide.fitted(1 << 20).lanes, 4096);
        assert!(p.with_lanes(0).is_err());
        assert!(p.with_lanes(1 << 20).is_err());
    }

    #[test]
    fn param_count_is_the_models() {
        let tiny = Preset::parse(include_str!("../tests/data/tiny.toml")).unwrap();
        let mut presets: Vec<Preset> = Preset::builtin_names()
            .into_iter()
            .filter(|&n| n != "paper") // 19 M parameters: too slow to build here
            .map(|n| Preset::load(n).unwrap())
            .collect();
        presets.push(tiny.clone());
        presets.push(Preset {
            global: GlobalRead::Linear,
            ..tiny
        });
        for p in presets {
            let m = crate::model::Model::new(&p, &candle_core::Device::Cpu).unwrap();
            assert_eq!(p.param_count(), m.param_count() as u64, "{}", p.name);
        }
    }

    /// Every built-in preset, with its own lanes or fewer (what fade writes
    /// without --lanes), fits the default memory limit; the estimate grows
    /// with the lanes and the model and never wraps on hostile values.
    #[test]
    fn memory_estimate_admits_the_builtins_and_saturates() {
        let limit = crate::engine::DEFAULT_MEMORY_LIMIT;
        for name in Preset::builtin_names() {
            let p = Preset::load(name).unwrap();
            assert!(p.memory_needed() <= limit, "{name}: {}", p.memory_needed());
            assert!(p.fitted(1000).memory_needed() <= p.memory_needed());
        }
        let paper = Preset::load("paper").unwrap();
        // Measured: 978 MB peak for paper on enwik6 (docs/PERFORMANCE.md).
        assert!(paper.memory_needed() > 978_000_000);
        let wide = paper.with_lanes(4096).unwrap();
        assert!(wide.memory_needed() > paper.memory_needed());
        let hostile = Preset {
            lanes: u32::MAX,
            refiner_rank: u32::MAX,
            refiner_branches: u32::MAX,
            ffn: u32::MAX,
            cache: u32::MAX,
            ..paper
        };
        assert_eq!(hostile.memory_needed(), u64::MAX);
        assert_eq!(hostile.param_count(), u64::MAX);
    }

    #[test]
    fn paper_has_reference_sizes() {
        let p = Preset::load("paper").unwrap();
        assert_eq!(
            (p.lanes, p.context, p.embed, p.cache, p.cache_step, p.ffn),
            (512, 16, 32, 4096, 64, 8192)
        );
        assert_eq!(p.global, GlobalRead::Linear);
        assert_eq!(p.lr, 1e-3);
    }

    /// Every identifier a header may carry names a valid preset, once; the
    /// ladder's names are distinct, and each level's preset is written with
    /// its identifier. A retired preset is written with its own identifier,
    /// or with a newer one that differs from it only in larger tables or a
    /// lower lane cap (the default's 17, 18 and 19), which then decodes it
    /// the same: a header carries the lanes and tables a frame used.
    #[test]
    fn builtin_identifiers_and_the_ladder_agree() {
        let mut ids: Vec<u8> = BUILTIN.iter().map(|b| b.0).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), BUILTIN.len());
        for &(id, text) in BUILTIN {
            let p = Preset::parse(text).unwrap();
            assert_eq!(toml_name(text), Some(p.name.as_str()));
            let got = p.builtin_id().unwrap();
            if got != id {
                let newer = Preset::builtin(got).unwrap();
                let plan_only = newer.stats_bits > p.stats_bits || newer.lanes < p.lanes;
                assert!(got > id && plan_only, "{}", p.name);
                let same = Preset::from_builtin(got, p.lanes, p.stats_bits, p.match_bits);
                assert!(same.unwrap().encoded() == p.encoded(), "{} {id}", p.name);
            }
        }
        let names = Preset::builtin_names();
        assert_eq!(names.len(), LEVELS.len());
        for (level, (&id, name)) in LEVELS.iter().zip(&names).enumerate() {
            let p = Preset::load(&(level + 1).to_string()).unwrap();
            assert_eq!((p.builtin_id(), p.name.as_str()), (Some(id), *name));
            assert!(names.iter().filter(|n| *n == name).count() == 1);
        }
    }

    /// Every field outside its range is refused with its name, its value and
    /// the range, in a preset file and in a header alike; a built-in preset
    /// with larger tables than its own is refused in its short form (fade
    /// writes such a preset in full), and custom models stop at the
    /// canary's bound.
    #[test]
    fn out_of_range_fields_are_named() {
        let d = Preset::load("default").unwrap();
        // The SSE stage's count maps have room for 11 contexts; 12 are
        // refused before any table is built.
        let mut many = d.clone();
        many.sse_counts = true;
        many.orders = (1..=5).collect();
        assert!(many.validate().is_ok());
        many.orders.push(6);
        let e = many.validate().unwrap_err();
        assert!(
            e.contains("sse_counts reads at most 11 contexts, not 12"),
            "{e}"
        );
        for &(field, lo, hi) in RANGES {
            for v in [lo - 1, hi + 1] {
                let mut p = d.clone();
                match field {
                    "lanes" => p.lanes = v,
                    "context" => p.context = v,
                    "embed" => p.embed = v,
                    "cache" => p.cache = v,
                    "cache_step" => p.cache_step = v,
                    "refiner_branches" => p.refiner_branches = v,
                    "refiner_rank" => p.refiner_rank = v,
                    "ffn" => p.ffn = v,
                    _ => unreachable!("{field}"),
                }
                let want = format!("{field} = {v} is outside {lo} to {hi}");
                assert_eq!(p.validate().unwrap_err(), want);
                let mut header = &p.encoded()[..];
                let e = Preset::read_from(&mut header).unwrap_err().to_string();
                assert_eq!(e, format!("unsupported model settings ({want})"));
            }
        }
        let e = Preset::from_builtin(19, 128, 26, 20)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("stats_bits = 26 is above built-in preset default's 23"),
            "{e}"
        );
        let e = Preset::from_builtin(19, 128, 22, 21)
            .unwrap_err()
            .to_string();
        assert!(e.contains("match_bits = 21"), "{e}");
        assert!(Preset::from_builtin(19, 128, 12, 12).is_ok());
        let bigger = Preset {
            stats_bits: 24,
            ..d.clone()
        };
        assert_eq!(bigger.builtin_id(), None);
        assert_eq!(d.fitted(1000).builtin_id(), Some(19));
        let wide = Preset {
            name: "wide".into(),
            ffn: 8192,
            ..d.clone()
        };
        assert!(wide.validate().is_ok());
        let e = wide.check_custom().unwrap_err();
        assert!(
            e.contains("custom model of") && e.contains("2097152"),
            "{e}"
        );
        let e = Preset::read_from(&mut &wide.encoded()[..])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("unsupported model settings (a custom model"),
            "{e}"
        );
        // The built-in presets themselves are not custom, however large.
        assert!(Preset::load("paper").unwrap().check_custom().is_ok());
        // strong's model would be a valid custom one.
        assert!(Preset::load("strong").unwrap().canary().param_count() < MAX_CUSTOM_PARAMS);
    }

    #[test]
    fn side_config_names_every_context() {
        let mut p = Preset::load("default").unwrap();
        p.contexts = vec!["sparse".into(), "word".into()];
        let c = p.side();
        assert_eq!(c.contexts.len(), p.orders.len() + 2);
        assert_eq!(
            c.contexts[p.orders.len()..],
            [Context::Word, Context::Sparse]
        );
        assert_eq!(c.rows(), 1 + 2 * c.contexts.len());
        assert!(!Preset::load("paper").unwrap().side().any());
    }

    #[test]
    fn bad_presets_are_rejected() {
        assert!(Preset::load("nope").is_err());
        let good = include_str!("../models/default.toml");
        assert!(Preset::parse(&good.replace("lanes = 128", "lanes = 0")).is_err());
        assert!(Preset::parse(&good.replace("cache = 1024", "cache = 1000")).is_err());
        assert!(Preset::parse(&format!("{good}\nbogus = 1\n")).is_err());
    }
}
