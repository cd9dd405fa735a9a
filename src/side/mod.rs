//! Side models: integer statistics shared by all lanes, whose predictions the
//! network learns to mix (it decides; they remember).
//!
//! The network sees only the last T bytes of its own lane and learns by one
//! gradient step per step, so it is slow to pick up what a file says once and
//! cannot copy a string it saw long ago. The side models do exactly that:
//! - [`matcher`]: the byte that followed the longest recent match of the lane's
//!   last bytes anywhere in the frame's history;
//! - [`stats`]: counts of the bytes that followed each order-k context.
//!
//! They are updated after every step, lane by lane in lane order, with every
//! lane's byte, so each lane profits from what all lanes have seen, and the
//! decoder, which learns the same bytes in the same order, repeats them
//! exactly. All of it is integer arithmetic; what the network gets is built
//! from small integers and powers of two, so it is the same on every machine.
//!
//! For every lane a step gives the network [`SideInputs`]: `rows` vectors of
//! 256 scores (one per side prediction; the network adds each, times a weight
//! it computes, to its logits) and `conf` features saying how much each
//! prediction has behind it (match length, context counts).

pub mod history;
pub mod matcher;
pub mod stats;

use crate::layout::Layout;
use crate::preset::Preset;
use history::History;
use matcher::{len_bucket, Matcher, LEN_BUCKETS};
use stats::{log2q, Stats, CANDIDATES};

/// Confidence features per context order.
const ORDER_CONF: usize = 4;

/// One step's side predictions for every lane, row-major.
pub struct SideInputs {
    /// B x rows x 256 scores.
    pub scores: Vec<f32>,
    /// B x conf features.
    pub conf: Vec<f32>,
}

/// The side models of a frame.
pub struct Side {
    hist: History,
    matcher: Option<Matcher>,
    stats: Option<Stats>,
    orders: Vec<u32>,
    /// Per lane, its last 8 bytes (newest lowest).
    recent: Vec<u64>,
    lanes: usize,
    matches: Vec<(u8, u32)>,
}

impl Side {
    /// The side models `p` asks for, or None for the pure network.
    pub fn new(p: &Preset) -> Option<Self> {
        if !p.has_side_models() {
            return None;
        }
        Some(Self {
            hist: History::new(p.segment as usize),
            matcher: (p.match_short > 0 || p.match_long > 0)
                .then(|| Matcher::new(p.match_short as usize, p.match_long as usize, p.match_bits)),
            stats: (!p.orders.is_empty()).then(|| Stats::new(p.stats_bits)),
            orders: p.orders.clone(),
            recent: Vec::new(),
            lanes: 0,
            matches: Vec::new(),
        })
    }

    /// Score rows per lane for `p` (0 without side models).
    pub fn rows(p: &Preset) -> usize {
        usize::from(p.match_short > 0 || p.match_long > 0) + p.orders.len()
    }

    /// Confidence features per lane for `p`.
    pub fn conf_width(p: &Preset) -> usize {
        let m = if p.match_short > 0 || p.match_long > 0 {
            LEN_BUCKETS.len()
        } else {
            0
        };
        m + ORDER_CONF * p.orders.len()
    }

    /// Bytes the side models of `p` allocate.
    pub fn memory(p: &Preset) -> u64 {
        if !p.has_side_models() {
            return 0;
        }
        let mut m = History::size(p.segment as usize) as u64;
        if p.match_short > 0 || p.match_long > 0 {
            m += 8u64 << p.match_bits.min(40);
        }
        if !p.orders.is_empty() {
            m += 32u64 << p.stats_bits.min(40);
        }
        m
    }

    pub fn begin_segment(&mut self, lay: &Layout) {
        self.hist.begin_segment(lay);
        self.lanes = lay.lanes;
        self.recent = vec![0; lay.lanes];
        self.matches = vec![(0, 0); lay.lanes];
        if let Some(m) = &mut self.matcher {
            m.begin_segment(lay.lanes);
        }
    }

    /// The side predictions of the next step.
    pub fn predict(&mut self) -> SideInputs {
        let rows = usize::from(self.matcher.is_some()) + self.orders.len();
        let cw = if self.matcher.is_some() {
            LEN_BUCKETS.len()
        } else {
            0
        } + ORDER_CONF * self.orders.len();
        let mut scores = vec![0f32; self.lanes * rows * 256];
        let mut conf = vec![0f32; self.lanes * cw];
        if let Some(m) = &mut self.matcher {
            m.predict(&self.hist, &mut self.matches);
        }
        for b in 0..self.lanes {
            let sc = &mut scores[b * rows * 256..(b + 1) * rows * 256];
            let cf = &mut conf[b * cw..(b + 1) * cw];
            let (mut row, mut c) = (0, 0);
            if self.matcher.is_some() {
                let (byte, len) = self.matches[b];
                if len > 0 {
                    sc[byte as usize] = 1.0;
                    cf[len_bucket(len)] = 1.0;
                }
                row += 1;
                c += LEN_BUCKETS.len();
            }
            if let Some(st) = &self.stats {
                for &k in &self.orders {
                    let seen = st.seen(self.recent[b], k);
                    if seen.found {
                        let r = &mut sc[row * 256..(row + 1) * 256];
                        for j in 0..CANDIDATES {
                            if seen.cnt[j] > 0 {
                                r[seen.sym[j] as usize] = log2q(seen.cnt[j] as u32);
                            }
                        }
                        cf[c] = 1.0;
                        cf[c + 1] = log2q(seen.total()) / 8.0;
                        cf[c + 2] = seen.distinct() as f32 / 16.0;
                        cf[c + 3] = log2q(seen.top() as u32) / 8.0;
                    }
                    row += 1;
                    c += ORDER_CONF;
                }
            }
        }
        SideInputs { scores, conf }
    }

    /// Learns the true bytes of the step predicted last, lane by lane.
    pub fn learn(&mut self, bytes: &[u8]) {
        self.hist.push_step(bytes);
        if let Some(m) = &mut self.matcher {
            m.learn(&self.hist, bytes);
        }
        for (b, &v) in bytes.iter().enumerate() {
            if let Some(st) = &mut self.stats {
                for &k in &self.orders {
                    st.update(self.recent[b], k, v);
                }
            }
            self.recent[b] = (self.recent[b] << 8) | v as u64;
        }
    }
}
