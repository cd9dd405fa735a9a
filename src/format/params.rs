//! A preset as a frame header carries it: in full (every decoding parameter
//! in a fixed little-endian layout), or in short as a built-in preset's
//! identifier with the lanes and table sizes that may differ from it. The
//! header's rules on presets live here too: a custom preset's bound, and
//! that a short form may only shrink the built-in's tables.

use crate::error::{Error, Result};
use crate::preset::{GlobalRead, Preset, MAX_CUSTOM_PARAMS};
use crate::side::Context;

/// The bit of the header's context mask that turns on [`Preset::sse`].
const SSE_BIT: u32 = 1 << 16;
/// The bit of the header's context mask that turns on [`Preset::sse_counts`].
const SSE_COUNTS_BIT: u32 = 1 << 17;

impl Preset {
    /// Refuses a custom (not built-in) preset whose canary would be larger
    /// than [`MAX_CUSTOM_PARAMS`]: fade neither writes nor reads such a file.
    pub(crate) fn check_custom(&self) -> std::result::Result<(), String> {
        let n = self.canary().param_count();
        if self.builtin_id().is_none() && n > MAX_CUSTOM_PARAMS {
            return Err(format!(
                "a custom model of {n} parameters (on the canary's lanes) is above this build's {MAX_CUSTOM_PARAMS}"
            ));
        }
        Ok(())
    }

    /// Serialises every decoding parameter in a fixed little-endian layout.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        out.push(self.name.len() as u8);
        out.extend_from_slice(self.name.as_bytes());
        for v in [
            self.lanes,
            self.context,
            self.embed,
            match self.global {
                GlobalRead::Linear => 0,
                GlobalRead::Attention => 1,
            },
            self.cache,
            self.cache_step,
            self.refiner_branches,
            self.refiner_rank,
            self.ffn,
            self.segment,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.lr, self.weight_decay, self.beta1, self.beta2, self.eps] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.seed.to_le_bytes());
        let mut mask: u32 = self.orders.iter().map(|k| 1 << (k - 1)).sum();
        for (_, name, bit) in Context::EXTRA {
            if self.contexts.iter().any(|n| n == name) {
                mask |= 1 << bit;
            }
        }
        if self.sse {
            mask |= SSE_BIT;
        }
        if self.sse_counts {
            mask |= SSE_COUNTS_BIT;
        }
        for v in [
            mask,
            self.stats_bits,
            self.match_short,
            self.match_long,
            self.match_bits,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// The frame-header identifier of this preset if it is a built-in one,
    /// possibly fitted or with other lanes (the built-in list in `src/preset.rs`).
    /// Only `lanes`, `stats_bits` and `match_bits` may differ from the
    /// built-in's values (they travel beside the identifier, see
    /// [`Preset::from_builtin`]); anything else makes it a custom preset, whose
    /// header stores every value.
    pub fn builtin_id(&self) -> Option<u8> {
        let mine = self.encoded();
        // Newest first: where two identifiers differ only in their largest
        // tables (default 17 and 18), an input that fills neither gets the
        // one its level writes.
        Self::builtin_ids().rev().find_map(|id| {
            let base = Self::builtin(id)?;
            if base.name != self.name {
                return None;
            }
            // Tables only ever shrink from the built-in's (`fitted`); a
            // reader refuses larger ones in this form (see `from_builtin`).
            if self.stats_bits > base.stats_bits || self.match_bits > base.match_bits {
                return None;
            }
            let rebuilt = base.adjusted(self.lanes, self.stats_bits, self.match_bits);
            (rebuilt.encoded() == mine).then_some(id)
        })
    }

    /// The built-in preset `id` (see [`Preset::builtin_id`]) with the lanes and
    /// table sizes a frame header gives, validated.
    pub fn from_builtin(id: u8, lanes: u32, stats_bits: u32, match_bits: u32) -> Result<Self> {
        let base = Self::builtin(id).ok_or(Error::Corrupt("unknown built-in preset"))?;
        for (field, v, own) in [
            ("stats_bits", stats_bits, base.stats_bits),
            ("match_bits", match_bits, base.match_bits),
        ] {
            if v > own {
                return Err(Error::Unsupported(format!(
                    "{field} = {v} is above built-in preset {}'s {own}",
                    base.name
                )));
            }
        }
        let p = base.adjusted(lanes, stats_bits, match_bits);
        p.validate().map_err(Error::Unsupported)?;
        Ok(p)
    }

    fn adjusted(self, lanes: u32, stats_bits: u32, match_bits: u32) -> Self {
        Preset {
            lanes,
            stats_bits,
            match_bits,
            ..self
        }
    }

    /// Every decoding parameter, as [`Preset::write_to`] lays them out.
    pub(crate) fn encoded(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }

    /// Reads what [`Preset::write_to`] wrote, validating it; `input` is advanced.
    pub(crate) fn read_from(input: &mut &[u8]) -> Result<Self> {
        fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8]> {
            if input.len() < n {
                return Err(Error::Corrupt("header too short"));
            }
            let (a, b) = input.split_at(n);
            *input = b;
            Ok(a)
        }
        let u32_ = |i: &mut &[u8]| -> Result<u32> {
            Ok(u32::from_le_bytes(take(i, 4)?.try_into().unwrap()))
        };
        let f32_ = |i: &mut &[u8]| -> Result<f32> {
            Ok(f32::from_le_bytes(take(i, 4)?.try_into().unwrap()))
        };
        let n = take(input, 1)?[0] as usize;
        let name = String::from_utf8(take(input, n)?.to_vec())
            .map_err(|_| Error::Corrupt("preset name"))?;
        let lanes = u32_(input)?;
        let context = u32_(input)?;
        let embed = u32_(input)?;
        let global = match u32_(input)? {
            0 => GlobalRead::Linear,
            1 => GlobalRead::Attention,
            _ => return Err(Error::Corrupt("unknown global read")),
        };
        let p = Preset {
            name,
            description: String::new(),
            lanes,
            context,
            embed,
            global,
            cache: u32_(input)?,
            cache_step: u32_(input)?,
            refiner_branches: u32_(input)?,
            refiner_rank: u32_(input)?,
            ffn: u32_(input)?,
            segment: u32_(input)?,
            lr: f32_(input)?,
            weight_decay: f32_(input)?,
            beta1: f32_(input)?,
            beta2: f32_(input)?,
            eps: f32_(input)?,
            seed: u64::from_le_bytes(take(input, 8)?.try_into().unwrap()),
            fit_lanes: true,
            lane_bytes: 2048,
            orders: Vec::new(),
            contexts: Vec::new(),
            stats_bits: 0,
            match_short: 0,
            match_long: 0,
            match_bits: 0,
            sse: false,
            sse_counts: false,
        };
        let mask = u32_(input)?;
        if mask & !(SSE_BIT | SSE_COUNTS_BIT | 0x4FFFF) != 0 {
            return Err(Error::Unsupported(format!("context mask {mask:#x}")));
        }
        let p = Preset {
            orders: (1..=8).filter(|k| mask & (1 << (k - 1)) != 0).collect(),
            contexts: Context::EXTRA
                .iter()
                .filter(|e| mask & (1 << e.2) != 0)
                .map(|e| e.1.to_string())
                .collect(),
            stats_bits: u32_(input)?,
            match_short: u32_(input)?,
            match_long: u32_(input)?,
            match_bits: u32_(input)?,
            sse: mask & SSE_BIT != 0,
            sse_counts: mask & SSE_COUNTS_BIT != 0,
            ..p
        };
        p.validate().map_err(Error::Unsupported)?;
        p.check_custom().map_err(Error::Unsupported)?;
        Ok(p)
    }
}
