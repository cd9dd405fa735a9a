//! The predictor: everything between a step's contexts and the coder's
//! frequency tables.
//!
//! It owns the network ([`Model`]), the device policy (where the tables are
//! built), the model-to-coder contract
//! ([`Tables`]) and the fingerprint of its arithmetic. The engine's one step
//! loop only calls [`Predictor::begin_segment`], [`Predictor::predict`] and
//! [`Predictor::learn`]; side models that mix with the network belong here.

use crate::coder::{cdf_from_floors, quantize, Cdf, Precision};
use crate::error::{model_error, Error, Result};
use crate::layout::Layout;
use crate::model::Model;
use crate::plan::Plan;
pub use crate::plan::Quantiser;
use crate::preset::Preset;
use crate::rng::SplitMix64;
use crate::side::sse::{Hint, Sse};
use crate::side::{Side, SideInputs};
use candle_core::Device;
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::sync::Arc;
use xxhash_rust::xxh3::Xxh3;

/// One step's probabilities for every lane, as the coder receives them, and
/// the precision of the tables made of them.
pub struct Tables(Probs, Precision);

enum Probs {
    /// B x 256 logits, row-major.
    Logits(Vec<f32>),
    /// B x 256 floors of the scaled softmax, row-major.
    Floors(Vec<u32>),
    /// The tables themselves (refined by [`Sse`]).
    Cdfs(Vec<Cdf>),
}

impl Tables {
    /// The cumulative tables of lanes `first..first + cdfs.len()`.
    pub fn cdfs(&self, first: usize, cdfs: &mut [Cdf]) {
        let rows = first * 256..(first + cdfs.len()) * 256;
        match &self.0 {
            Probs::Logits(l) => crate::coder::quantize_rows(&l[rows], self.1, cdfs),
            Probs::Floors(f) => {
                for (row, cdf) in f[rows].chunks_exact(256).zip(cdfs) {
                    cdf_from_floors(row, self.1, cdf);
                }
            }
            Probs::Cdfs(c) => cdfs.copy_from_slice(&c[first..first + cdfs.len()]),
        }
    }

    /// The cumulative table of lane `b`.
    pub fn cdf(&self, b: usize, cdf: &mut Cdf) {
        let row = b * 256..(b + 1) * 256;
        match &self.0 {
            Probs::Logits(l) => quantize(&l[row], self.1, cdf),
            Probs::Floors(f) => cdf_from_floors(&f[row], self.1, cdf),
            Probs::Cdfs(c) => *cdf = c[b],
        }
    }
}

/// The side models, run on the model's thread or on one of their own.
enum Sides {
    None,
    Inline(Box<Side>),
    Thread(SideThread),
}

/// Side models on a thread of their own: while the network learns step t,
/// they learn its bytes and predict step t + 1 (they need nothing from the
/// network), so their table lookups leave the model's critical path.
struct SideThread {
    jobs: Sender<SideJob>,
    done: Receiver<SideInputs>,
    /// Predictions asked for and not yet taken.
    pending: usize,
}

enum SideJob {
    Begin(Layout),
    Learn(Vec<u8>),
}

impl SideThread {
    fn start(mut side: Side) -> Result<Self> {
        let (jobs, rx) = unbounded::<SideJob>();
        let (tx, done) = unbounded();
        std::thread::Builder::new()
            .name("fade-side".into())
            .spawn(move || {
                for job in rx {
                    match job {
                        SideJob::Begin(lay) => side.begin_segment(&lay),
                        SideJob::Learn(bytes) => side.learn(&bytes),
                    }
                    if tx.send(side.predict()).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Self {
            jobs,
            done,
            pending: 0,
        })
    }

    fn send(&mut self, job: SideJob) -> Result<()> {
        self.jobs.send(job).map_err(|_| STOPPED)?;
        self.pending += 1;
        Ok(())
    }

    fn take(&mut self) -> Result<SideInputs> {
        if self.pending == 0 {
            return Err(Error::Internal("side prediction without a step"));
        }
        self.pending -= 1;
        self.done.recv().map_err(|_| STOPPED)
    }
}

const STOPPED: Error = Error::Internal("side-model thread stopped");

/// Predicts every lane's next byte and learns from the true ones.
pub struct Predictor {
    model: Model,
    side: Sides,
    quantiser: Quantiser,
    /// Whether the model holds the forward pass of a step predicted but not
    /// yet learned.
    pending: bool,
    /// The threads the model's kernels share (and, decoding on the CPU, the
    /// range decoders: see [`Predictor::pool`]).
    pool: Arc<crate::par::Pool>,
    /// The secondary estimation of the tables, if the preset asks for it.
    sse: Option<Box<Sse>>,
    /// Context length T (the last byte of a lane's context row is its last byte).
    context: usize,
    /// The frame's decisions (precision, quantiser, threads).
    plan: Plan,
}

impl Predictor {
    /// A fresh predictor for `p` on `dev` (weights from `p.seed`), as `plan`
    /// says: its tables' precision and quantiser, the step that runs the
    /// model, its kernels' threads and the side models' thread. The output
    /// is the same for any number of threads.
    pub fn new(p: &Preset, dev: &Device, plan: Plan) -> Result<Self> {
        // The model before the side models: the statistics' table, handed
        // over zeroed, is then allocated last. In the other order, strong's
        // 512 MB table was resident in full before any byte was coded
        // (657 MB peak instead of 161 MB for a one-block frame).
        let model = Model::with_step(p, dev, plan.host_step).map_err(model_error)?;
        let side = match Side::new(&p.side()) {
            Some(s) if plan.side_thread => Sides::Thread(SideThread::start(s)?),
            Some(s) => Sides::Inline(Box::new(s)),
            None => Sides::None,
        };
        Ok(Self {
            model,
            side,
            quantiser: plan.quantiser,
            pending: false,
            pool: Arc::new(crate::par::Pool::new(plan.kernel_threads)),
            sse: p.sse.then(|| {
                let contexts = if p.sse_counts {
                    p.side().contexts.len()
                } else {
                    0
                };
                Box::new(Sse::new(contexts))
            }),
            context: p.context as usize,
            plan,
        })
    }

    /// The model's threads. Decoding on the CPU, a step's range decoders
    /// run on them between the model's passes: the model waits for the
    /// decoded bytes anyway, and its threads are idle then.
    pub fn pool(&self) -> Arc<crate::par::Pool> {
        self.pool.clone()
    }

    /// The plan it was built with.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The precision of its tables.
    pub fn precision(&self) -> Precision {
        self.plan.precision
    }

    /// Splits the model's kernels (and a decoder's tables) over `threads`.
    #[cfg(test)]
    pub(crate) fn pool_for_tests(&mut self, threads: usize) {
        self.pool = Arc::new(crate::par::Pool::new(threads));
    }

    /// Called before the first step of every segment.
    pub fn begin_segment(&mut self, lay: &Layout) -> Result<()> {
        self.pending = false;
        match &mut self.side {
            Sides::None => {}
            Sides::Inline(s) => s.begin_segment(lay),
            Sides::Thread(t) => {
                // A segment's last step leaves a prediction nobody takes.
                while t.pending > 0 {
                    t.take()?;
                }
                t.send(SideJob::Begin(*lay))?;
            }
        }
        Ok(())
    }

    /// The tables of the next step from every lane's context (B rows of T bytes).
    pub fn predict(&mut self, ctx: &[u8]) -> Result<Arc<Tables>> {
        let side = match &mut self.side {
            Sides::None => None,
            Sides::Inline(s) => Some(s.predict()),
            Sides::Thread(t) => Some(t.take()?),
        };
        let mut side = side;
        let (hints, seen) = side
            .as_mut()
            .map(|s| (std::mem::take(&mut s.hints), std::mem::take(&mut s.seen)))
            .unwrap_or_default();
        let model = &mut self.model;
        self.pool
            .run(|| model.forward(ctx, side))
            .map_err(model_error)?;
        let model = &self.model;
        let probs = match (self.quantiser, &mut self.sse) {
            (_, Some(sse)) => {
                // The SSE refines the tables on the model's threads: its
                // curves learn each step before the next is refined.
                let logits = model.logits().map_err(model_error)?;
                let t = self.context;
                let last: Vec<u16> = ctx
                    .chunks_exact(t)
                    .map(|row| u16::from_le_bytes([row[t - 1], if t > 1 { row[t - 2] } else { 0 }]))
                    .collect();
                let mut hints = hints;
                hints.resize(last.len(), Hint::default());
                let mut cdfs = vec![[0u32; 257]; last.len()];
                self.pool.run(|| {
                    sse.refine(&logits, &last, &hints, seen, self.plan.precision, &mut cdfs)
                });
                Probs::Cdfs(cdfs)
            }
            (Quantiser::Host, None) => {
                Probs::Logits(model.logits().map_err(model_error)?.into_owned())
            }
            (Quantiser::Device, None) => {
                Probs::Floors(model.floors(self.plan.precision).map_err(model_error)?)
            }
        };
        self.pending = true;
        Ok(Arc::new(Tables(probs, self.plan.precision)))
    }

    /// Learns the true bytes of the step predicted last (one per lane).
    pub fn learn(&mut self, targets: &[u8]) -> Result<()> {
        if !std::mem::take(&mut self.pending) {
            return Err(Error::Internal("learn without a prediction"));
        }
        if let Sides::Thread(t) = &mut self.side {
            t.send(SideJob::Learn(targets.to_vec()))?;
        }
        let model = &mut self.model;
        self.pool
            .run(|| model.learn(targets))
            .map_err(model_error)?;
        if let Some(sse) = &mut self.sse {
            self.pool.run(|| sse.learn(targets));
        }
        if let Sides::Inline(s) = &mut self.side {
            s.learn(targets);
        }
        Ok(())
    }

    /// Hash of a canary run: two whole training steps (forward, quantised
    /// tables, cross-entropy backward, AdamW update) and a third forward of a
    /// fresh predictor of this preset on a few lanes of fixed bytes. Every
    /// kernel a step uses runs on its real shapes (only the lane count is
    /// smaller), so a machine that would compute any part of a step
    /// differently is refused before any work with "device mismatch", never
    /// mid-file with "corrupt data".
    pub fn fingerprint(p: &Preset, dev: &Device, version: u8) -> Result<u64> {
        let canary = p.canary();
        let plan = Plan::new(&canary, version, dev, 1);
        let mut pred = Predictor::new(&canary, dev, plan)?;
        let (b, t) = (canary.lanes as usize, canary.context as usize);
        pred.begin_segment(&Layout::new(b * 3, b, t))?;
        let mut g = SplitMix64::new(0xFADE_F1A6);
        let mut h = Xxh3::new();
        let mut cdf: Cdf = [0; 257];
        for round in 0..3 {
            let ctx: Vec<u8> = (0..b * t).map(|_| g.next_u64() as u8).collect();
            let targets: Vec<u8> = (0..b).map(|_| g.next_u64() as u8).collect();
            let tables = pred.predict(&ctx)?;
            if pred.pending {
                for l in pred.model.logits().map_err(model_error)?.iter() {
                    h.update(&l.to_bits().to_le_bytes());
                }
            }
            for lane in 0..b {
                tables.cdf(lane, &mut cdf);
                for c in cdf {
                    h.update(&c.to_le_bytes());
                }
            }
            if round < 2 {
                pred.learn(&targets)?;
            }
        }
        Ok(h.digest())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Side models on their own thread (two threads allowed) give the tables
    /// they give on the model's thread, across segments and a segment left
    /// early.
    #[test]
    fn side_models_on_their_thread_give_the_same_tables() {
        let mut p = Preset::parse(include_str!("../tests/data/tiny.toml")).unwrap();
        p.orders = vec![1, 2, 3];
        p.contexts = vec!["word".into()];
        p.stats_bits = 12;
        p.match_short = 4;
        p.match_long = 8;
        p.match_bits = 12;
        let run = |threads: usize| -> Vec<Cdf> {
            let plan = Plan::new(&p, crate::format::VERSION, &Device::Cpu, threads);
            let mut pred = Predictor::new(&p, &Device::Cpu, plan).unwrap();
            assert_eq!(matches!(pred.side, Sides::Thread(_)), threads > 1);
            let mut g = SplitMix64::new(5);
            let mut out = Vec::new();
            let (b, t) = (p.lanes as usize, p.context as usize);
            for steps in [7, 3, 9] {
                pred.begin_segment(&Layout::new(b * steps, b, t)).unwrap();
                for _ in 0..steps {
                    let ctx: Vec<u8> = (0..b * t)
                        .map(|_| b'a' + (g.next_u64() % 5) as u8)
                        .collect();
                    let tables = pred.predict(&ctx).unwrap();
                    let mut cdf: Cdf = [0; 257];
                    tables.cdf(b - 1, &mut cdf);
                    out.push(cdf);
                    let tg: Vec<u8> = (0..b).map(|_| b'a' + (g.next_u64() % 5) as u8).collect();
                    pred.learn(&tg).unwrap();
                }
            }
            out
        };
        assert!(run(1) == run(2));
    }
}
