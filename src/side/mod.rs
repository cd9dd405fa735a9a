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

pub mod context;
pub mod history;
pub mod matcher;
pub mod sse;
pub mod stats;

use crate::layout::Layout;
pub use context::Context;
use context::Keys;
use history::History;
use matcher::{len_bucket, Matcher, LEN_BUCKETS};
use stats::{log2q, Place, Seen, Stats};

/// Starts loading `v` into the cache: the side tables are far larger than
/// the caches, and asking for every lane's entries first lets the misses
/// overlap instead of waiting on each in turn.
#[inline]
pub(crate) fn prefetch<T>(v: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(v as *const T as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = v;
}

/// Confidence features per context order.
const ORDER_CONF: usize = 4;

/// The side models of a frame, as the side models see them: built from the
/// frame's preset by `Preset::side`, so this module needs nothing of the
/// preset's, and owns the accounting of its rows, features and memory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The contexts of the statistics, in header order.
    pub contexts: Vec<Context>,
    /// log2 of the statistics' slots.
    pub stats_bits: u32,
    /// Minimum lengths of the match model's short and long matches (0: none).
    pub match_short: u32,
    pub match_long: u32,
    /// log2 of each match table's entries.
    pub match_bits: u32,
    /// Bytes of a segment (the history's size).
    pub segment: usize,
    /// Lanes at most (each keeps its own context state).
    pub lanes: u32,
    /// Whether [`SideInputs::seen`] is kept (for the SSE stage's counts).
    pub sse_counts: bool,
}

impl Config {
    fn matching(&self) -> bool {
        self.match_short > 0 || self.match_long > 0
    }

    /// Whether there are side models at all (every preset but `paper`).
    pub fn any(&self) -> bool {
        self.matching() || !self.contexts.is_empty()
    }

    /// Predictions per lane: the match model and each context (0 without
    /// side models).
    pub fn sources(&self) -> usize {
        usize::from(self.matching()) + self.contexts.len()
    }

    /// Score rows per lane: the match model's one-hot, and for each context
    /// the candidates it has seen (1 each) and their counts (log2), so the
    /// network can weigh having seen a byte at all apart from how often.
    pub fn rows(&self) -> usize {
        usize::from(self.matching()) + 2 * self.contexts.len()
    }

    /// Confidence features per lane.
    pub fn conf_width(&self) -> usize {
        let m = if self.matching() {
            LEN_BUCKETS.len()
        } else {
            0
        };
        m + ORDER_CONF * self.contexts.len()
    }

    /// Bytes the side models allocate.
    pub fn memory(&self) -> u64 {
        if !self.any() {
            return 0;
        }
        let mut m = History::size(self.segment) as u64;
        if self.matching() {
            m += 8u64 << self.match_bits.min(40);
        }
        if !self.contexts.is_empty() {
            m += 32u64 << self.stats_bits.min(40);
        }
        m + context::memory(&self.contexts, self.lanes as u64)
    }
}

/// One step's side predictions for every lane, row-major.
pub struct SideInputs {
    /// B x rows x 256 scores, sparse.
    pub scores: Scores,
    /// B x conf features.
    pub conf: Vec<f32>,
    /// B x sources: each source's predicted byte (the match's, or a context's
    /// most counted candidate), 256 for none.
    pub picks: Vec<u32>,
    /// Per lane, the match model's prediction for [`sse::Sse`] (empty without
    /// a match model).
    pub hints: Vec<sse::Hint>,
    /// B x contexts: what each context of the statistics has seen, for
    /// [`sse::Sse`]'s count maps (empty unless the preset asks for them).
    pub seen: Vec<Seen>,
}

/// The score rows of every lane, sparse: a row holds at most
/// [`stats::CANDIDATES`] non-zero scores of 256 (one for the match model's), so the
/// mixer reads a few hundred values per lane instead of `rows` x 256, and
/// nothing of that size is zeroed and built every step.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Score rows per lane.
    pub rows: usize,
    /// Lane b's entries are `entries[starts[b]..starts[b + 1]]`.
    pub starts: Vec<usize>,
    /// `(row * 256 + byte, score)`, ascending in the first, non-zero scores.
    pub entries: Vec<(u32, f32)>,
}

impl Scores {
    fn new(rows: usize, lanes: usize) -> Self {
        let mut starts = Vec::with_capacity(lanes + 1);
        starts.push(0);
        Self {
            rows,
            starts,
            entries: Vec::new(),
        }
    }

    /// Lanes held.
    pub fn lanes(&self) -> usize {
        self.starts.len() - 1
    }

    /// Lane `b`'s entries.
    pub fn lane(&self, b: usize) -> &[(u32, f32)] {
        &self.entries[self.starts[b]..self.starts[b + 1]]
    }

    /// Closes the current lane.
    fn end_lane(&mut self) {
        self.starts.push(self.entries.len());
    }

    /// The same scores as B x rows x 256 dense values (for the tensor-op
    /// path of other devices).
    pub fn dense(&self) -> Vec<f32> {
        let width = self.rows * 256;
        let mut d = vec![0f32; self.lanes() * width];
        for b in 0..self.lanes() {
            for &(i, v) in self.lane(b) {
                d[b * width + i as usize] = v;
            }
        }
        d
    }

    /// The non-zero values of B x rows x 256 dense scores.
    pub fn from_dense(rows: usize, dense: &[f32]) -> Self {
        let width = rows * 256;
        let mut s = Scores::new(rows, dense.len() / width.max(1));
        for lane in dense.chunks_exact(width.max(1)) {
            for (i, &v) in lane.iter().enumerate() {
                if v != 0.0 {
                    s.entries.push((i as u32, v));
                }
            }
            s.end_lane();
        }
        s
    }
}

/// The side models of a frame.
pub struct Side {
    hist: History,
    matcher: Option<Matcher>,
    stats: Option<Stats>,
    contexts: Vec<Context>,
    keys: Keys,
    lanes: usize,
    matches: Vec<(u8, u32)>,
    /// Every lane's contexts in the statistics, lane-major, and whether they
    /// are those of the current keys.
    places: Vec<Place>,
    located: bool,
    /// Whether [`SideInputs::seen`] is filled.
    keep_seen: bool,
}

impl Side {
    /// The side models `c` asks for, or None for the pure network.
    pub fn new(c: &Config) -> Option<Self> {
        if !c.any() {
            return None;
        }
        Some(Self {
            hist: History::new(c.segment),
            matcher: c
                .matching()
                .then(|| Matcher::new(c.match_short as usize, c.match_long as usize, c.match_bits)),
            stats: (!c.contexts.is_empty()).then(|| Stats::new(c.stats_bits)),
            contexts: c.contexts.clone(),
            keys: Keys::new(&[], 0),
            lanes: 0,
            matches: Vec::new(),
            places: Vec::new(),
            located: false,
            keep_seen: c.sse_counts,
        })
    }

    pub fn begin_segment(&mut self, lay: &Layout) {
        self.hist.begin_segment(lay);
        self.lanes = lay.lanes;
        self.keys = Keys::new(&self.contexts, lay.lanes);
        self.matches = vec![(0, 0); lay.lanes];
        self.located = false;
        if let Some(m) = &mut self.matcher {
            m.begin_segment(lay.lanes);
        }
    }

    /// Locates every lane's contexts in the statistics (once a step: the
    /// prediction reads these places and [`Side::learn`] updates them) and
    /// starts loading them.
    fn locate(&mut self, lanes: usize) {
        self.places.clear();
        if let Some(st) = &self.stats {
            for b in 0..lanes {
                for &k in &self.contexts {
                    let at = st.locate(self.keys.key(b, k), k.tag());
                    st.prefetch(at);
                    self.places.push(at);
                }
            }
        }
        self.located = true;
    }

    /// The side predictions of the next step.
    pub fn predict(&mut self) -> SideInputs {
        let sources = usize::from(self.matcher.is_some()) + self.contexts.len();
        let rows = usize::from(self.matcher.is_some()) + 2 * self.contexts.len();
        let cw = if self.matcher.is_some() {
            LEN_BUCKETS.len()
        } else {
            0
        } + ORDER_CONF * self.contexts.len();
        let mut scores = Scores::new(rows, self.lanes);
        let mut conf = vec![0f32; self.lanes * cw];
        let mut picks = vec![256u32; self.lanes * sources];
        let mut hints = Vec::new();
        let mut all_seen = Vec::new();
        if self.keep_seen {
            all_seen.reserve(self.lanes * self.contexts.len());
        }
        self.locate(self.lanes);
        if let Some(m) = &mut self.matcher {
            m.predict(&self.hist, &mut self.matches);
        }
        let nctx = self.contexts.len();
        let mut count = [0u8; 256];
        for b in 0..self.lanes {
            let cf = &mut conf[b * cw..(b + 1) * cw];
            let (mut row, mut c, mut src) = (0u32, 0, 0);
            if self.matcher.is_some() {
                let (byte, len) = self.matches[b];
                hints.push(sse::Hint((len > 0).then(|| (byte, len_bucket(len) as u8))));
                if len > 0 {
                    picks[b * sources] = byte as u32;
                    scores.entries.push((byte as u32, 1.0));
                    cf[len_bucket(len)] = 1.0;
                }
                row += 1;
                src += 1;
                c += LEN_BUCKETS.len();
            }
            if let Some(st) = &self.stats {
                for &at in &self.places[b * nctx..(b + 1) * nctx] {
                    let seen = st.seen(at);
                    if self.keep_seen {
                        all_seen.push(seen);
                    }
                    if seen.found {
                        let top = candidates(&seen, row, &mut count, &mut scores.entries);
                        picks[b * sources + src] = seen.sym[top] as u32;
                        cf[c] = 1.0;
                        cf[c + 1] = log2q(seen.total()) / 8.0;
                        cf[c + 2] = seen.distinct() as f32 / 16.0;
                        cf[c + 3] = log2q(seen.cnt[top] as u32) / 8.0;
                    }
                    row += 2;
                    src += 1;
                    c += ORDER_CONF;
                }
            }
            scores.end_lane();
        }
        SideInputs {
            scores,
            conf,
            picks,
            hints,
            seen: all_seen,
        }
    }

    /// Learns the true bytes of the step predicted last, lane by lane.
    pub fn learn(&mut self, bytes: &[u8]) {
        self.hist.push_step(bytes);
        if let Some(m) = &mut self.matcher {
            m.learn(&self.hist, bytes);
        }
        if !self.located || self.places.len() != bytes.len() * self.contexts.len() {
            self.locate(bytes.len());
        } else if let Some(st) = &self.stats {
            // Loaded by the prediction, but the network's step came between:
            // load them again before counting.
            self.places.iter().for_each(|&at| st.prefetch(at));
        }
        if let Some(st) = &mut self.stats {
            let nctx = self.contexts.len();
            for (b, &v) in bytes.iter().enumerate() {
                for &at in &self.places[b * nctx..(b + 1) * nctx] {
                    st.update(at, v);
                }
            }
        }
        self.keys.push(bytes);
        self.located = false;
    }
}

/// Writes a context's two score rows: from `row * 256`, 1 for each
/// candidate with a count; from `(row + 1) * 256`, the log2 of its count;
/// each by ascending byte, as [`Scores`] keeps them. Returns the index of
/// the first most counted candidate. A slot lists a byte at most once with
/// a count ([`Stats::update`] counts a byte where it is listed, and a new
/// one only where no count is left), so its candidates are distinct bytes.
/// `count` is scratch, read only where this call wrote it (so never
/// cleared).
fn candidates(
    seen: &stats::Seen,
    row: u32,
    count: &mut [u8; 256],
    out: &mut Vec<(u32, f32)>,
) -> usize {
    let mut set = [0u64; 4];
    let mut top = 0;
    for (j, (&v, &n)) in seen.sym.iter().zip(&seen.cnt).enumerate() {
        if n > 0 {
            set[v as usize >> 6] |= 1 << (v & 63);
            count[v as usize] = n;
        }
        if n > seen.cnt[top] {
            top = j;
        }
    }
    debug_assert_eq!(
        set.iter().map(|w| w.count_ones()).sum::<u32>(),
        seen.distinct()
    );
    let (seen_row, count_row) = (row * 256, (row + 1) * 256);
    let first = out.len();
    for (w, &word) in set.iter().enumerate() {
        let mut bits = word;
        while bits != 0 {
            out.push((seen_row + (w as u32) * 64 + bits.trailing_zeros(), 1.0));
            bits &= bits - 1;
        }
    }
    for i in first..out.len() {
        let v = out[i].0 - seen_row;
        out.push((count_row + v, log2q(count[v as usize] as u32)));
    }
    top
}
