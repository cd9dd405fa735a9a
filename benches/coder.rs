//! Range coder and quantisation throughput: the CPU coding stage's cost per byte.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fade::__internals::coder::{cdf_from_floors, quantize, Cdf, Decoder, Encoder, Precision};
use fade::__internals::rng::SplitMix64;

fn tables(n: usize) -> (Vec<Vec<f32>>, Vec<u8>) {
    let mut g = SplitMix64::new(1);
    let logits = (0..n)
        .map(|_| (0..256).map(|_| g.normal(3.0)).collect())
        .collect();
    let syms = (0..n).map(|_| g.next_u64() as u8).collect();
    (logits, syms)
}

/// The precision of the tables fade writes (format v3).
const PREC: Precision = Precision::V3;

fn bench(c: &mut Criterion) {
    let n = 4096;
    let (logits, syms) = tables(n);
    let mut cdfs = vec![[0u32; 257]; n];
    for (l, c) in logits.iter().zip(cdfs.iter_mut()) {
        quantize(l, PREC, c);
    }
    let mut g = c.benchmark_group("coder");
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("quantize", |b| {
        let mut cdf: Cdf = [0; 257];
        b.iter(|| {
            for l in &logits {
                quantize(l, PREC, &mut cdf);
            }
        })
    });
    // What the coder does instead when the device quantises.
    let floors: Vec<Vec<u32>> = cdfs
        .iter()
        .map(|c| {
            let spread = (PREC.total() - 256) as f64 / PREC.total() as f64;
            c.windows(2)
                .map(|w| ((w[1] - w[0]) as f64 * spread) as u32)
                .collect()
        })
        .collect();
    g.bench_function("cdf_from_floors", |b| {
        let mut cdf: Cdf = [0; 257];
        b.iter(|| {
            for f in &floors {
                cdf_from_floors(f, PREC, &mut cdf);
            }
        })
    });
    g.bench_function("encode", |b| {
        b.iter(|| {
            let mut e = Encoder::new(PREC);
            for (c, &s) in cdfs.iter().zip(&syms) {
                e.encode(c, s);
            }
            e.finish()
        })
    });
    let mut e = Encoder::new(PREC);
    for (c, &s) in cdfs.iter().zip(&syms) {
        e.encode(c, s);
    }
    let bytes = e.finish();
    g.bench_function("decode", |b| {
        b.iter(|| {
            let mut d = Decoder::new(&bytes, PREC);
            for c in &cdfs {
                d.decode(c).unwrap();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
