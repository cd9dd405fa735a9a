//! One coded step (forward + learn) of each built-in preset: the model stage's
//! cost. Throughput is in lane bytes, so it reads as the preset's KB/s ceiling.

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fade::model::Model;
use fade::rng::SplitMix64;
use fade::Preset;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("model_step");
    g.sample_size(10);
    for name in Preset::builtin_names() {
        let p = Preset::load(name).unwrap();
        let mut m = Model::new(&p, &Device::Cpu).unwrap();
        let mut r = SplitMix64::new(2);
        let ctx: Vec<u8> = (0..p.lanes * p.context)
            .map(|_| r.next_u64() as u8)
            .collect();
        let tg: Vec<u8> = (0..p.lanes).map(|_| r.next_u64() as u8).collect();
        g.throughput(Throughput::Bytes(p.lanes as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let s = m.forward(&ctx).unwrap();
                let _ = s.logits().unwrap();
                m.learn(s, &tg).unwrap();
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
