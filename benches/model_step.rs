//! One coded step (forward + learn) of each built-in preset: the model stage's
//! cost. Throughput is in lane bytes, so it reads as the preset's KB/s ceiling.

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fade::__internals::model::Model;
use fade::__internals::rng::SplitMix64;
use fade::Preset;

// The fade binary's allocator: a step allocates many short-lived tensors.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn bench(c: &mut Criterion) {
    // As the fade binary does without -T: one thread for the matrix products.
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let mut g = c.benchmark_group("model_step");
    g.sample_size(10);
    for name in Preset::builtin_names() {
        let p = Preset::load(name).unwrap();
        let mut m = Model::new(&p, &Device::Cpu).unwrap();
        // Text-like lanes (a skewed 27-letter alphabet) that the model walks
        // through step by step, as in real coding: a step repeated on the
        // same uniform random bytes trains towards unusual weights.
        let mut r = SplitMix64::new(2);
        let (b, t) = (p.lanes as usize, p.context as usize);
        let span = 4096;
        let text: Vec<u8> = (0..b * span)
            .map(|_| {
                b" etaoinshrdlucmfwypvbgkjqxz"
                    [(r.next_u64() % 27 * (r.next_u64() % 27) / 27) as usize]
            })
            .collect();
        let mut step = 0usize;
        let mut ctx = vec![0u8; b * t];
        let mut tg = vec![0u8; b];
        g.throughput(Throughput::Bytes(p.lanes as u64));
        g.bench_function(name, |bench| {
            bench.iter(|| {
                let at = step % (span - t);
                for l in 0..b {
                    ctx[l * t..(l + 1) * t]
                        .copy_from_slice(&text[l * span + at..l * span + at + t]);
                    tg[l] = text[l * span + at + t];
                }
                step += 1;
                m.forward(&ctx, None).unwrap();
                let _ = m.logits().unwrap();
                m.learn(&tg).unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
