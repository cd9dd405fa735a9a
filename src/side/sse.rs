//! Secondary estimation (SSE; an "APM" in paq's terms): adaptive tables that
//! learn how far to trust the network's byte distribution, the last stage
//! before the frequency tables.
//!
//! The network learns by one gradient step per step, so its probabilities are
//! often over- or under-confident in ways that counts correct at once, on
//! predictable data most of all. A byte is read as eight binary choices, its
//! bits from the highest (a tree of 255 nodes). For each node, the network's
//! probability of a 1 is looked up on curves over its log-odds: piecewise
//! linear, [`POINTS`] points, one curve per node and context, for four
//! contexts (none, the lane's last byte, its last two bytes hashed, and the
//! match model's state). A small mixer per tree depth and match state weighs
//! the network's log-odds and the four curves' into the node's probability;
//! the byte's probability is the product of its bits'. The curves and the
//! mixer learn every lane's true byte after each step, in lane order, so
//! every lane profits from what all have seen, and the decoder repeats it.
//!
//! Measured on the 128 KiB set with the default network (215,964 bytes
//! without it): context-free curves alone -1.1%, last-byte curves alone
//! -0.5%, both averaged -1.75%; with the match curves, the mixer and the
//! two-byte curves -2.2% (211,132). A three-byte curve added only 0.06%, the
//! two-byte curves' 1,024 rows cost 0.04% against 4,096. Refining only the
//! nodes with at least 1/256 of the mass costs 0.05% against 1/4096 and
//! saves a little time: as built, 211,338 (-2.1%). It costs the default 11% more CPU time (`-T1`, 256 KiB
//! of dickens: 9.76 s against 8.80 s) and fast 25%, so of the built-in
//! presets only strong, whose step is the most expensive, uses it.
//!
//! With `sse_counts` (header bit 17) the mixer also reads the context
//! statistics at bit level: for each context, the counts of the candidates
//! below the node's 0 and 1 sides, bucketed, select a cell (per tree depth)
//! whose adaptive probability becomes one more input, and the number of
//! contexts that know the node picks one of four weight sets. The network
//! already weighs the counts at byte level; this lets the mixer learn what
//! "3 against 1 in the order-4 context" means at each node. The default
//! network with it on the 128 KiB set: 211,994 -> 211,458 bytes (-0.25%;
//! the weight sets by known contexts another -0.03%); strong with it, order
//! 5 and the sparse context on the first MiB of dickens, nci and xml: -0.18%.
//! A count-selected curve over the network's log-odds instead of a fixed
//! cell measured nothing more.
//!
//! Everything is integer arithmetic, our own `exp` and IEEE f64 operations in
//! a fixed order, so every machine builds the same tables.

use super::prefetch;
use super::stats::Seen;
use crate::coder::{shifted_exps, table_of, Cdf, Precision};
use crate::math::exp;
use crate::par::{rows_mut, SharedMut};
use std::sync::Mutex;

/// Log-odds units per nat.
const UNIT: i32 = 256;
/// The curves span log-odds -12 to 12 nats.
const SPAN: i32 = 12;
/// Points per curve, one a nat.
const POINTS: usize = 2 * SPAN as usize + 1;
/// Nodes of a byte's binary tree.
const NODES: usize = 255;
/// Values of a context's curves: one per node and point.
const ROW: usize = NODES * POINTS;
/// A point's probability has 22 bits; its low 10 bits count its updates.
const COUNT_BITS: u32 = 10;
const ONE: i64 = 1 << 22;
/// Updates after which a point adapts at its slowest rate, 1/256.
const LIMIT: u32 = 255;
/// Rows of the two-byte curves (the 65,536 contexts hashed; 4,096 rows were
/// 0.04% smaller on the 128 KiB set, for 100 MB instead of 26).
const PAIR_ROWS: usize = 1024;
/// Match contexts: none, or one of 8 length buckets times 3 node states.
const MATCH_ROWS: usize = 1 + 8 * 3;
/// Mixer inputs: the network's log-odds and the four curves', then one per
/// context of the statistics (up to 11) when they are asked for.
const CURVES: usize = 5;
const INPUTS: usize = CURVES + MAX_COUNTED;
/// Contexts of the statistics the count maps read at most (a preset with
/// more and `sse_counts` is refused).
pub const MAX_COUNTED: usize = 11;
/// Buckets of a node's counts under one context (see [`bucket`]).
const BUCKETS: usize = 12;
/// Values of one context's count map: depth x bucket of the 0 side x bucket
/// of the 1 side.
const CMAP: usize = 8 * BUCKETS * BUCKETS;
/// Mixer weight sets: tree depth times match state times how many contexts
/// know the node (0, 1-2, 3-5, 6 or more; always 0 without count maps).
const SETS: usize = 8 * 3 * 4;
/// The mixer's learning rate and initial weights.
const MIX_RATE: f64 = 0.0005 / UNIT as f64;
const MIX_INIT: f64 = 0.2;
/// The share of the network's mass below which a node is not refined.
const REACH: f64 = 1.0 / 256.0;
/// Marks a node left unrefined in [`Sse::inputs`].
const UNREFINED: i16 = i16::MIN;

/// What the match model says about a lane's next byte: the byte it predicts
/// and its length bucket (0 to 7, `side::matcher::len_bucket`), if it has a
/// match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hint(pub Option<(u8, u8)>);

impl Hint {
    /// The match row of node `n` (1 to 255): 0 without a match; else the
    /// bucket and whether the node is off the predicted byte's path (state
    /// 0) or on it with the predicted bit 0 or 1 (states 1, 2).
    fn row(self, n: usize) -> usize {
        let Some((e, bucket)) = self.0 else { return 0 };
        1 + bucket.min(7) as usize * 3 + on_path(e, n)
    }
}

/// 0 if node `n` is off byte `e`'s path, else 1 + the bit `e` takes there.
fn on_path(e: u8, n: usize) -> usize {
    let d = depth(n);
    let e = e as usize;
    if e >> (8 - d) == n - (1 << d) {
        1 + ((e >> (7 - d)) & 1)
    } else {
        0
    }
}

/// Depth of node `n` in the tree (the root, 1, is 0).
fn depth(n: usize) -> usize {
    (usize::BITS - 1 - n.leading_zeros()) as usize
}

/// A lane's contexts for one step.
#[derive(Clone, Copy, Default)]
struct Lane {
    /// Where the last-byte and two-byte curves' rows start, and the match
    /// model's hint.
    last: usize,
    pair: usize,
    hint: Hint,
}

/// The refinement's state, shared by all lanes.
pub struct Sse {
    /// Log-odds (in 1/[`UNIT`] nats, clamped to the span) of p = i / 2^16.
    stretch: Vec<i16>,
    /// squash(x) at every log-odds of the span, in 1/[`UNIT`] nats.
    squash: Vec<f32>,
    /// 2^17 / (2n + 3): the step of a point updated n times, in 1/2^16.
    rate: Vec<u32>,
    /// The points a fresh curve starts from (a table value of 0 stands for
    /// them, so the large tables start as untouched zero pages).
    init: [u32; POINTS],
    /// Curves: context-free, per last byte, per last two bytes (hashed), per
    /// match state; each `rows x ROW` points.
    none: Vec<u32>,
    byte: Vec<u32>,
    pair: Vec<u32>,
    matched: Vec<u32>,
    /// Per context of the statistics, a node's probability of a 1 by depth
    /// and how much the context counted on each side of it (empty without).
    cmap: Vec<u32>,
    /// Contexts of the statistics read, and mixer inputs in use.
    contexts: usize,
    used: usize,
    /// Mixer weights per set.
    weights: Vec<[f64; INPUTS]>,
    /// Of the step refined last: what every lane's contexts had seen.
    seen: Vec<Seen>,
    /// Of the step refined last: every lane's contexts, and the mixer
    /// inputs of every node of every lane (the curves' positions follow from
    /// the first, the network's log-odds).
    lanes: Vec<Lane>,
    inputs: Vec<[i16; INPUTS]>,
}

impl Default for Sse {
    fn default() -> Self {
        Self::new(0)
    }
}

impl Sse {
    /// The stage, reading the counts of `contexts` contexts of the statistics
    /// (0: none) as well as the network's probabilities.
    pub fn new(contexts: usize) -> Self {
        assert!(contexts <= INPUTS - CURVES);
        // The inverse of squash(x) = 1 / (1 + e^-x), from our own exp.
        let mut stretch = vec![(SPAN * UNIT) as i16; 65536];
        let mut p = 0usize;
        for x in -SPAN * UNIT..=SPAN * UNIT {
            let s = (65536.0 * squash(x as f32 / UNIT as f32)) as usize;
            while p < s.min(65536) {
                stretch[p] = x as i16;
                p += 1;
            }
        }
        let mut init = [0u32; POINTS];
        for (j, v) in init.iter_mut().enumerate() {
            let p = (ONE as f32 * squash((j as i32 - SPAN) as f32)) as i64;
            *v = point(p, 0);
        }
        Self {
            stretch,
            squash: (-SPAN * UNIT..=SPAN * UNIT)
                .map(|x| squash(x as f32 / UNIT as f32))
                .collect(),
            rate: (0..=LIMIT).map(|n| (1 << 17) / (2 * n + 3)).collect(),
            init,
            none: vec![0; ROW],
            byte: vec![0; 256 * ROW],
            pair: vec![0; PAIR_ROWS * ROW],
            matched: vec![0; MATCH_ROWS * ROW],
            cmap: (0..contexts * CMAP).map(|i| cmap_init(i % CMAP)).collect(),
            contexts,
            used: CURVES + contexts,
            weights: vec![
                std::array::from_fn(|i| if i < CURVES { MIX_INIT } else { COUNT_INIT });
                SETS
            ],
            seen: Vec::new(),
            lanes: Vec::new(),
            inputs: Vec::new(),
        }
    }

    /// Bytes of its buffers per lane: every node's mixer inputs, what the
    /// lane's contexts have seen, and its table.
    pub fn lane_memory() -> u64 {
        (NODES * INPUTS * 2 + MAX_COUNTED * std::mem::size_of::<Seen>() + 1028) as u64
    }

    /// Bytes it allocates, apart from its per-lane buffers.
    pub fn memory() -> u64 {
        (4 * (1 + 256 + PAIR_ROWS + MATCH_ROWS) * ROW + 2 * 65536 + 4 * MAX_COUNTED * CMAP) as u64
    }

    /// Every lane's refined table from its logits (B x 256), its last two
    /// bytes (the newest lowest), the match model's hint and what its
    /// contexts of the statistics have seen (B x contexts; empty for none).
    /// Lanes run on the current pool's threads.
    pub fn refine(
        &mut self,
        logits: &[f32],
        last: &[u16],
        hints: &[Hint],
        seen: Vec<Seen>,
        prec: Precision,
        cdfs: &mut [Cdf],
    ) {
        self.seen = seen;
        self.seen
            .resize(last.len() * self.contexts, Seen::default());
        self.lanes.clear();
        self.lanes
            .extend(last.iter().zip(hints).map(|(&c, &hint)| Lane {
                last: (c & 0xFF) as usize * ROW,
                pair: pair_row(c) * ROW,
                hint,
            }));
        // Out of `self` while the lanes write it, so that they share the rest.
        let mut all = std::mem::take(&mut self.inputs);
        all.resize(last.len() * NODES, [0; INPUTS]);
        let inputs = SharedMut(all.as_mut_ptr());
        let me = &*self;
        rows_mut(cdfs, 1, 256 * 64, |l0, rows| {
            let mut under = Under::new(me.contexts);
            for (l, cdf) in (l0..).zip(rows.iter_mut()) {
                // SAFETY: lane l's nodes, which only this range writes.
                let inputs = unsafe { inputs.slice(l * NODES, NODES) };
                let seen = &me.seen[l * me.contexts..(l + 1) * me.contexts];
                under.fill(seen);
                me.refine_lane(
                    &logits[l * 256..(l + 1) * 256],
                    me.lanes[l],
                    &under,
                    inputs,
                    prec,
                    cdf,
                );
                under.clear(seen);
            }
        });
        self.inputs = all;
    }

    fn refine_lane(
        &self,
        logits: &[f32],
        lane: Lane,
        under: &Under,
        inputs: &mut [[i16; INPUTS]],
        prec: Precision,
        cdf: &mut Cdf,
    ) {
        let mut sums = [0f64; 512];
        let leaves: &mut [f64; 256] = (&mut sums[256..]).try_into().unwrap();
        shifted_exps(logits, leaves);
        // Node n (1 to 255) sums its children 2n and 2n + 1; 256 + s is byte s.
        for n in (1..256).rev() {
            sums[n] = sums[2 * n] + sums[2 * n + 1];
        }
        // Only nodes with at least REACH of the network's mass are refined:
        // a few dozen of the 255, and nearly every byte coded passes only
        // through them. They are found breadth first from the root, so in
        // ascending order (parents first), with their places on the curves;
        // the curves' points are asked for at once (the tables are larger
        // than the caches, and the misses then overlap).
        let reach = sums[1] * REACH;
        let refined = |n: usize| sums[n] >= reach && sums[n] > 0.0;
        let mut queue = [(0u8, 0i16); NODES];
        let mut len = 0;
        if refined(1) {
            queue[0].0 = 1;
            len = 1;
        } else {
            inputs[0][0] = UNREFINED;
        }
        let mut k = 0;
        while k < len {
            let n = queue[k].0 as usize;
            let x = self.stretch[((sums[2 * n + 1] / sums[n] * 65536.0) as usize).min(65535)];
            queue[k].1 = x;
            let i = (n - 1) * POINTS + point_at(x).0;
            prefetch(&self.byte[lane.last + i]);
            prefetch(&self.pair[lane.pair + i]);
            if n < 128 {
                for c in [2 * n, 2 * n + 1] {
                    if refined(c) {
                        queue[len].0 = c as u8;
                        len += 1;
                    } else {
                        inputs[c - 1][0] = UNREFINED;
                    }
                }
            }
            k += 1;
        }
        // A node's refined probability is `scale[n] * sums[n]`, a byte's
        // `below[s] * sums[256 + s]`: a node not refined passes its scale on
        // to everything below it.
        let mut scale = [0f64; 256];
        scale[1] = if sums[1] > 0.0 { 1.0 / sums[1] } else { 0.0 };
        let mut below = [scale[1]; 256];
        for &(n, x) in &queue[..len] {
            let n = n as usize;
            let at = point_at(x);
            let mut v = [0i16; INPUTS];
            v[..CURVES].copy_from_slice(&[
                x,
                self.curve(&self.none, n, at),
                self.curve(&self.byte[lane.last..], n, at),
                self.curve(&self.matched[lane.hint.row(n) * ROW..], n, at),
                self.curve(&self.pair[lane.pair..], n, at),
            ]);
            for c in 0..self.contexts {
                if let Some(i) = under.cell(c, n) {
                    v[CURVES + c] =
                        self.stretch[(self.cmap[c * CMAP + i] >> (COUNT_BITS + 6)) as usize];
                }
            }
            inputs[n - 1] = v;
            let set = &self.weights[mix_set(n, lane.hint, &v)];
            let q = self.squash[mix(set, self.used, &v)] as f64;
            let here = scale[n] * sums[n];
            let d = 7 - depth(n);
            for (c, p) in [(2 * n, here * (1.0 - q)), (2 * n + 1, here * q)] {
                let sc = if sums[c] > 0.0 { p / sums[c] } else { 0.0 };
                if c < 256 {
                    scale[c] = sc;
                }
                let first = (c << d) - 256;
                below[first..first + (1 << d)].fill(sc);
            }
        }
        let mut probs = [0f64; 256];
        for ((p, &b), &e) in probs.iter_mut().zip(&below).zip(&sums[256..]) {
            *p = b * e;
        }
        // Four sums side by side, then added pairwise: a fixed order that
        // does not wait on every add.
        let (mut part, mut top) = ([0f64; 4], 0f64);
        for p in probs.chunks_exact(4) {
            for (s, &p) in part.iter_mut().zip(p) {
                *s += p;
                top = if p > top { p } else { top };
            }
        }
        let sum = (part[0] + part[1]) + (part[2] + part[3]);
        let arg = probs.iter().position(|&p| p == top).unwrap_or(0);
        table_of(&probs, sum, arg, prec, cdf);
    }

    /// Node `n`'s curve of the context whose row starts `t`, at position
    /// `at` = (point, weight of the next in 1/256), as log-odds.
    fn curve(&self, t: &[u32], n: usize, (j, w): (usize, u32)) -> i16 {
        let i = (n - 1) * POINTS + j;
        let (a, b) = (self.value(t[i], j), self.value(t[i + 1], j + 1));
        let p = (a * (256 - w) + b * w) >> 8;
        self.stretch[(p >> 6) as usize]
    }

    /// A point's probability in 1/2^22 (0 stands for the initial curve).
    fn value(&self, e: u32, j: usize) -> u32 {
        let e = if e == 0 { self.init[j] } else { e };
        e >> COUNT_BITS
    }

    /// Learns every lane's true byte of the step refined last, in lane order:
    /// the nearest point of each curve on the byte's path, the count maps and
    /// the mixer. The curves are one piece of work and the count maps with
    /// the mixer another: they are separate tables (the mixer's inputs were
    /// kept at refining), so the two can run side by side on the model's
    /// threads, each in lane order, and give the same tables as one after the
    /// other. Only the count maps make the second piece worth a thread:
    /// without them, on the default, the split measured nothing
    /// (docs/PERFORMANCE.md, "Default 19").
    pub fn learn(&mut self, bytes: &[u8]) {
        let Sse {
            none,
            byte,
            pair,
            matched,
            cmap,
            weights,
            lanes,
            seen,
            inputs,
            init,
            rate,
            squash,
            contexts,
            used,
            ..
        } = self;
        let (contexts, used) = (*contexts, *used);
        let (lanes, inputs) = (&lanes[..], &inputs[..]);
        let curves = Mutex::new((none, byte, matched, pair));
        let mixer = Mutex::new((cmap, weights));
        let work = if contexts > 0 { 1 << 20 } else { 0 };
        crate::par::for_ranges(2, work, 1, |r| {
            for piece in r {
                if piece == 0 {
                    let mut held = curves.lock().unwrap_or_else(|e| e.into_inner());
                    let (none, byte, matched, pair) = &mut *held;
                    for (l, &v) in bytes.iter().enumerate() {
                        let lane = lanes[l];
                        for (n, bit, x) in path(inputs, l, v) {
                            let (j, w) = point_at(x[0]);
                            let j = j + usize::from(w >= 128);
                            let i = (n - 1) * POINTS + j;
                            let init = init[j];
                            update(&mut none[i], init, bit, rate);
                            update(&mut byte[lane.last + i], init, bit, rate);
                            update(&mut matched[lane.hint.row(n) * ROW + i], init, bit, rate);
                            update(&mut pair[lane.pair + i], init, bit, rate);
                        }
                    }
                } else {
                    let mut held = mixer.lock().unwrap_or_else(|e| e.into_inner());
                    let (cmap, weights) = &mut *held;
                    for (l, &v) in bytes.iter().enumerate() {
                        let hint = lanes[l].hint;
                        let seen = &seen[l * contexts..(l + 1) * contexts];
                        let mut cells = [[None; 8]; MAX_COUNTED];
                        for (cells, s) in cells.iter_mut().zip(seen) {
                            *cells = path_cells(s, v);
                        }
                        for (n, bit, x) in path(inputs, l, v) {
                            let d = depth(n);
                            for (c, cells) in cells[..contexts].iter().enumerate() {
                                if let Some(i) = cells[d] {
                                    let e = &mut cmap[c * CMAP + i];
                                    update(e, *e, bit, rate);
                                }
                            }
                            let w = &mut weights[mix_set(n, hint, x)];
                            let err = bit as f64 - squash[mix(w, used, x)] as f64;
                            for (w, &x) in w[..used].iter_mut().zip(x) {
                                *w += MIX_RATE * err * x as f64;
                            }
                        }
                    }
                }
            }
        });
    }
}

/// The mixer's log-odds of weights `w` (the first `used`) for `inputs`, as
/// an index of [`Sse::squash`].
fn mix(w: &[f64; INPUTS], used: usize, inputs: &[i16; INPUTS]) -> usize {
    let mut dot = 0f64;
    for (w, &x) in w[..used].iter().zip(inputs) {
        dot += w * x as f64;
    }
    (dot.clamp(-(SPAN * UNIT) as f64, (SPAN * UNIT) as f64) as i32 + SPAN * UNIT) as usize
}

/// The refined nodes on byte `v`'s path in lane `l`, from the root: each
/// node, the bit `v` takes there and the node's mixer inputs. The path ends
/// at the first node left unrefined (so are the nodes below it).
fn path(
    inputs: &[[i16; INPUTS]],
    l: usize,
    v: u8,
) -> impl Iterator<Item = (usize, u8, &[i16; INPUTS])> {
    let mut n = 1usize;
    (0..8).rev().map_while(move |k| {
        let x = &inputs[l * NODES + n - 1];
        if x[0] == UNREFINED {
            return None;
        }
        let bit = (v >> k) & 1;
        let here = n;
        n = 2 * n + bit as usize;
        Some((here, bit, x))
    })
}

/// The initial weight of a count map's log-odds.
const COUNT_INIT: f64 = 0.03;

/// Bucket of a count: exact to 4, then about a factor of 1.5 a step.
fn bucket(n: u32) -> usize {
    match n {
        0..=4 => n as usize,
        5..=6 => 5,
        7..=9 => 6,
        10..=14 => 7,
        15..=22 => 8,
        23..=35 => 9,
        36..=63 => 10,
        _ => 11,
    }
}

/// The count map cell of node `n` under a context that has seen `s`: its
/// depth and the buckets of the counts of the candidates below its 0 and 1
/// sides; None if it has none below the node. This scan is the definition
/// (docs/FORMAT.md); [`Under`] and [`path_cells`] compute it faster, and the
/// tests hold them to it.
#[cfg(test)]
fn cmap_cell(s: &Seen, n: usize) -> Option<usize> {
    let d = depth(n);
    let prefix = n - (1 << d);
    let (mut n0, mut n1) = (0u32, 0u32);
    for (&v, &c) in s.sym.iter().zip(&s.cnt) {
        let (v, c) = (v as usize, c as u32);
        if c > 0 && v >> (8 - d) == prefix {
            if (v >> (7 - d)) & 1 == 0 {
                n0 += c;
            } else {
                n1 += c;
            }
        }
    }
    cell_of(d, n0, n1)
}

/// The count map cell at depth `d` for counts `n0` and `n1` below a node's
/// 0 and 1 sides; None if both are 0.
fn cell_of(d: usize, n0: u32, n1: u32) -> Option<usize> {
    (n0 + n1 > 0).then(|| (d * BUCKETS + bucket(n0)) * BUCKETS + bucket(n1))
}

/// `cmap_cell` of the eight nodes on byte `v`'s path, by depth: what
/// learning asks. A candidate leaves the path at the depth of its first bit
/// unlike `v`'s, so one pass over the candidates gives every depth's counts.
fn path_cells(s: &Seen, v: u8) -> [Option<usize>; 8] {
    // Counts by the number of leading bits a candidate shares with v (8: v).
    let mut shared = [0u32; 9];
    for (&b, &c) in s.sym.iter().zip(&s.cnt) {
        if c > 0 {
            shared[(b ^ v).leading_zeros() as usize] += c as u32;
        }
    }
    let mut out = [None; 8];
    // Below node d of the path: on v's side, what shares more than d bits.
    let mut on = shared[8];
    for d in (0..8).rev() {
        let (n0, n1) = if (v >> (7 - d)) & 1 == 0 {
            (on, shared[d])
        } else {
            (shared[d], on)
        };
        out[d] = cell_of(d, n0, n1);
        on += shared[d];
    }
    out
}

/// Of one lane and step, the counts of every context's candidates below
/// each node of the tree: `cmap_cell` for every node at once. Refining
/// asks a few dozen nodes per context; summing the candidates once along
/// their paths (eight nodes each) costs less than scanning them per node, and
/// integer sums are the same in any order.
struct Under {
    /// Per context, the count below node m (2 to 511; 256 + s is byte s).
    below: Vec<u32>,
}

impl Under {
    fn new(contexts: usize) -> Self {
        Self {
            below: vec![0; contexts * 512],
        }
    }

    /// Adds every candidate's count to the nodes on its path.
    fn fill(&mut self, seen: &[Seen]) {
        self.walk(seen, |e, c| *e += c);
    }

    /// Zeroes what [`Under::fill`] wrote, and nothing more.
    fn clear(&mut self, seen: &[Seen]) {
        self.walk(seen, |e, _| *e = 0);
    }

    fn walk(&mut self, seen: &[Seen], mut f: impl FnMut(&mut u32, u32)) {
        for (s, below) in seen.iter().zip(self.below.chunks_exact_mut(512)) {
            for (&v, &c) in s.sym.iter().zip(&s.cnt) {
                if c > 0 {
                    for d in 1..=8 {
                        f(&mut below[(1 << d) | (v as usize >> (8 - d))], c as u32);
                    }
                }
            }
        }
    }

    /// `cmap_cell` of context `c`'s candidates at node `n`.
    fn cell(&self, c: usize, n: usize) -> Option<usize> {
        let below = &self.below[c * 512..(c + 1) * 512];
        cell_of(depth(n), below[2 * n], below[2 * n + 1])
    }
}

/// The initial point of count map cell `i`: (n1 + 0.4) / (n0 + n1 + 0.8)
/// of the buckets' smallest counts, as if updated 4 times.
fn cmap_init(i: usize) -> u32 {
    const LOW: [i64; BUCKETS] = [0, 1, 2, 3, 4, 5, 7, 10, 15, 23, 36, 64];
    let (b0, b1) = ((i / BUCKETS) % BUCKETS, i % BUCKETS);
    let (n0, n1) = (LOW[b0] * 10, LOW[b1] * 10);
    point((n1 + 4) * ONE / (n0 + n1 + 8), 4)
}

/// 1 / (1 + e^-x).
fn squash(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// Where log-odds `x` falls on a curve: the point below and the weight of
/// the one above, in 1/256.
fn point_at(x: i16) -> (usize, u32) {
    let at = (x as i32 + SPAN * UNIT) as u32;
    let j = (at >> 8) as usize;
    if j >= POINTS - 1 {
        (POINTS - 2, 256)
    } else {
        (j, at & 255)
    }
}

/// The two-byte curves' row of the last two bytes `c`.
fn pair_row(c: u16) -> usize {
    ((c as u32).wrapping_mul(0x9E37_79B1) >> 20) as usize % PAIR_ROWS
}

/// The mixer's weight set of node `n`: its depth, match state, and how many
/// count inputs `v` has (non-zero ones).
fn mix_set(n: usize, hint: Hint, v: &[i16; INPUTS]) -> usize {
    let state = hint.0.map_or(0, |(e, _)| on_path(e, n));
    let known = v[CURVES..].iter().filter(|&&x| x != 0).count();
    let k = match known {
        0 => 0,
        1..=2 => 1,
        3..=5 => 2,
        _ => 3,
    };
    (depth(n) * 3 + state) * 4 + k
}

/// A point of probability `p` (in 1/2^22) updated `n` times.
fn point(p: i64, n: u32) -> u32 {
    ((p.clamp(1, ONE - 1) as u32) << COUNT_BITS) | n
}

/// Moves point `e` (0: `init`) toward `bit` by 1 / (n + 1.5) of the way, n
/// its updates so far (up to [`LIMIT`]).
fn update(e: &mut u32, init: u32, bit: u8, rate: &[u32]) {
    let v = if *e == 0 { init } else { *e };
    let n = v & ((1 << COUNT_BITS) - 1);
    let p = (v >> COUNT_BITS) as i64;
    let target = if bit == 1 { ONE - 1 } else { 0 };
    let p = p + (((target - p) * rate[n as usize] as i64) >> 16);
    *e = point(p, (n + 1).min(LIMIT));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// stretch(p) is the log-odds whose squash is p, to the table's
    /// resolution (a 1/65536 step of p near the ends spans many units).
    #[test]
    fn stretch_inverts_squash() {
        let s = Sse::new(0);
        assert!(s.stretch[32768].abs() <= 1);
        for p in 1..65535usize {
            let x = s.stretch[p];
            // The first log-odds (in steps of 1/256) whose squash is above p.
            let back = 65536.0 * squash(x as f32 / UNIT as f32);
            let q = p as f32 / 65536.0;
            let step = 65536.0 * q * (1.0 - q) / UNIT as f32;
            assert!(back > p as f32 && back <= p as f32 + 2.0 + step, "{p}: {x}");
        }
        assert!(s.stretch.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn nodes_on_a_bytes_path() {
        // 0b1010_0000: root bit 1, then 0, then 1.
        let e = 0xA0;
        assert_eq!(on_path(e, 1), 2);
        assert_eq!(on_path(e, 3), 1);
        assert_eq!(on_path(e, 2), 0);
        assert_eq!(on_path(e, 6), 2);
        assert_eq!(Hint(None).row(6), 0);
        assert_eq!(Hint(Some((e, 2))).row(6), 1 + 2 * 3 + 2);
    }

    /// A byte that always follows learns to take most of the table after a
    /// few steps, from a network that says nothing (flat logits).
    #[test]
    fn learns_a_certain_byte() {
        let mut s = Sse::new(0);
        let flat = vec![0f32; 2 * 256];
        let mut cdfs = [[0u32; 257]; 2];
        let share = |cdf: &Cdf| cdf[b'x' as usize + 1] - cdf[b'x' as usize];
        s.refine(
            &flat,
            &[7, 7],
            &[Hint(None); 2],
            Vec::new(),
            Precision::V3,
            &mut cdfs,
        );
        let first = share(&cdfs[0]);
        for _ in 0..20 {
            s.refine(
                &flat,
                &[7, 7],
                &[Hint(None); 2],
                Vec::new(),
                Precision::V3,
                &mut cdfs,
            );
            s.learn(b"xx");
        }
        s.refine(
            &flat,
            &[7, 7],
            &[Hint(None); 2],
            Vec::new(),
            Precision::V3,
            &mut cdfs,
        );
        assert!(share(&cdfs[0]) > 40_000, "{first} -> {}", share(&cdfs[0]));
        assert_eq!(cdfs[0], cdfs[1]);
    }

    /// The counts summed once along the candidates' paths give every node
    /// the cell a scan of the candidates gives it, and clearing leaves the
    /// table as it found it; so do the counts by shared leading bits on a
    /// byte's path.
    #[test]
    fn counts_below_the_nodes_give_the_scanned_cells() {
        let mut g = crate::rng::SplitMix64::new(7);
        let mut under = Under::new(3);
        for _ in 0..200 {
            let seen: Vec<Seen> = (0..3)
                .map(|_| {
                    let mut s = Seen::default();
                    for j in 0..s.sym.len() {
                        // Few distinct bytes, so that paths share nodes.
                        s.sym[j] = (g.next_u64() % 24) as u8 * 11;
                        s.cnt[j] = (g.next_u64() % 4 * 60) as u8;
                    }
                    s
                })
                .collect();
            under.fill(&seen);
            for (c, s) in seen.iter().enumerate() {
                for n in 1..256 {
                    assert_eq!(under.cell(c, n), cmap_cell(s, n), "context {c}, node {n}");
                }
            }
            under.clear(&seen);
            assert!(under.below.iter().all(|&x| x == 0));
            let v = (g.next_u64() % 24) as u8 * 11;
            for s in &seen {
                let cells = path_cells(s, v);
                for (d, &cell) in cells.iter().enumerate() {
                    let n = (1 << d) | (v as usize >> (8 - d));
                    assert_eq!(cell, cmap_cell(s, n), "byte {v}, depth {d}");
                }
            }
        }
    }

    /// A node's count cell holds the counts below each of its sides.
    #[test]
    fn count_cells_split_a_contexts_counts_at_the_node() {
        let mut seen = Seen {
            found: true,
            ..Seen::default()
        };
        (seen.sym[0], seen.cnt[0]) = (0x41, 3);
        (seen.sym[1], seen.cnt[1]) = (0x42, 1);
        // Both bytes take 0 at the root.
        assert_eq!(cmap_cell(&seen, 1), Some(4 * BUCKETS));
        // 0x41 and 0x42 part at depth 6 (their bit 1), below node 64 + 16.
        assert_eq!(cmap_cell(&seen, 80), Some((6 * BUCKETS + 3) * BUCKETS + 1));
        // Nothing lies below the root's 1 side.
        assert_eq!(cmap_cell(&seen, 3), None);
        assert_eq!(cmap_cell(&Seen::default(), 1), None);
    }

    /// Lanes refined on a pool's threads give the tables and the learning
    /// they give on one, step after step, with count maps of two contexts.
    #[test]
    fn refines_and_learns_the_same_on_any_number_of_threads() {
        let lanes = 300;
        let run = |threads: usize| -> Vec<Cdf> {
            let pool = crate::par::Pool::new(threads);
            let mut s = Sse::new(2);
            let mut g = crate::rng::SplitMix64::new(11);
            let mut out = Vec::new();
            for _ in 0..6 {
                let logits: Vec<f32> = (0..lanes * 256)
                    .map(|_| (g.next_u64() % 1000) as f32 / 100.0 - 5.0)
                    .collect();
                let last: Vec<u16> = (0..lanes).map(|_| g.next_u64() as u16).collect();
                let hints: Vec<Hint> = (0..lanes)
                    .map(|_| {
                        let v = g.next_u64();
                        Hint(
                            (!v.is_multiple_of(3)).then_some(((v >> 8) as u8, (v >> 16) as u8 % 8)),
                        )
                    })
                    .collect();
                let mut cdfs = vec![[0u32; 257]; lanes];
                let seen: Vec<Seen> = (0..lanes * 2)
                    .map(|_| {
                        let mut v = Seen::default();
                        for j in 0..(g.next_u64() % 4) as usize {
                            v.sym[j] = g.next_u64() as u8;
                            v.cnt[j] = (g.next_u64() % 40) as u8;
                        }
                        v
                    })
                    .collect();
                pool.run(|| s.refine(&logits, &last, &hints, seen, Precision::V3, &mut cdfs));
                let bytes: Vec<u8> = (0..lanes).map(|_| g.next_u64() as u8).collect();
                pool.run(|| s.learn(&bytes));
                out.extend(cdfs);
            }
            out
        };
        assert!(run(1) == run(3));
    }
}
