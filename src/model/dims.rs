//! The network's sizes, derived from a preset in one place.
//!
//! Every implementation of the step ([`super::Network`]), the parameter list
//! ([`super::init`]) and the tests read these; none derives a size from the
//! [`Preset`] itself, so a new size field changes this file and the code
//! that uses it, nothing else.

use crate::preset::{GlobalRead, Preset};

/// Sizes of one model (the letters of docs/FORMAT.md and the model's diagram).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    /// B: lanes, the batch of every step.
    pub b: usize,
    /// T: context bytes per lane.
    pub t: usize,
    /// D: embedding width.
    pub d: usize,
    /// F = T * D: features per lane.
    pub f: usize,
    /// G: features in the rolling global cache.
    pub g: usize,
    /// S: features the cache gains per step.
    pub s: usize,
    /// G / S: steps the cache spans (attention's keys).
    pub slots: usize,
    /// R: rank of the coarse refiner's per-lane matrices.
    pub r: usize,
    /// Branches of the coarse refiner.
    pub nb: usize,
    /// F / branches: features per branch.
    pub fb: usize,
    /// H: hidden width of the fine refiner.
    pub h: usize,
    /// How the global stream reads the cache.
    pub global: GlobalRead,
    /// The side-model mixer's sizes, where the preset has side models.
    pub mixer: Option<MixDims>,
}

/// Sizes of the mixer that weighs the side models' score rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MixDims {
    /// Score rows per lane.
    pub rows: usize,
    /// Confidence features per lane.
    pub conf: usize,
    /// Side models that predict a byte (their picks are embedded).
    pub sources: usize,
    /// Whether row 0 is the match model's one-hot.
    pub matching: bool,
}

impl Dims {
    /// The sizes of `p`'s model (a validated preset: F divides into branches).
    pub fn of(p: &Preset) -> Self {
        let (t, d) = (p.context as usize, p.embed as usize);
        let f = t * d;
        let nb = p.refiner_branches as usize;
        let side = p.side();
        let rows = side.rows();
        Self {
            b: p.lanes as usize,
            t,
            d,
            f,
            g: p.cache as usize,
            s: p.cache_step as usize,
            slots: p.cache_slots(),
            r: p.refiner_rank as usize,
            nb,
            fb: f / nb,
            h: p.ffn as usize,
            global: p.global,
            mixer: (rows > 0).then(|| MixDims {
                rows,
                conf: side.conf_width(),
                sources: side.sources(),
                matching: p.match_short > 0 || p.match_long > 0,
            }),
        }
    }
}
