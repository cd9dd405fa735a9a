//! fade's canonical matrix product on the shapes today's presets run,
//! beside candle's matmul (the run-time-dispatched gemm the model used
//! before format v2). The default codes a 1 MiB file in 128 lanes of F = 128
//! features: its fine refiner's GeGLU (128 -> 2 x 256) and read-back (256 ->
//! 128), the gate (128 -> 128) and the output layer (128 -> 256), forward
//! and both backward forms (dX = dY W^T; dW = X^T dY, A transposed); fast
//! codes in 256 lanes of F = 48: its output layer. Throughput is in
//! multiply-adds: set against `cargo bench --bench peak` it gives each
//! shape's fraction of the machine's peak (docs/PERFORMANCE.md).
//! `FADE_SIMD=avx2` measures the AVX2 path on an AVX-512 machine.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fade::__internals::model::{gemm, View};
use fade::__internals::rng::SplitMix64;

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut g = SplitMix64::new(seed);
    (0..n).map(|_| g.normal(0.1)).collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("gemm");
    g.sample_size(20);
    // (part, m, k, n, A transposed): the label adds the shapes.
    for (label, m, k, n, at) in [
        ("default fine in, fwd", 128, 128, 512, false),
        ("default fine in, dX", 128, 512, 128, false),
        ("default fine in, dW", 128, 128, 512, true),
        ("default fine out, fwd", 128, 256, 128, false),
        ("default gate, fwd", 128, 128, 128, false),
        ("default output, fwd", 128, 128, 256, false),
        ("default output, dX", 128, 256, 128, false),
        ("default output, dW", 128, 128, 256, true),
        ("fast output, fwd", 256, 48, 256, false),
        ("fast output, dW", 48, 256, 256, true),
    ] {
        let t = if at { " (A^T)" } else { "" };
        let label = format!("{label} {m}x{k} * {k}x{n}{t}");
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        g.throughput(Throughput::Elements((m * k * n) as u64));
        let va = if at {
            View {
                data: &a,
                off: 0,
                rs: 1,
                cs: m,
            }
        } else {
            View {
                data: &a,
                off: 0,
                rs: k,
                cs: 1,
            }
        };
        let vb = View {
            data: &b,
            off: 0,
            rs: n,
            cs: 1,
        };
        let mut out = vec![0f32; m * n];
        g.bench_function(format!("fade {label}"), |bch| {
            bch.iter(|| gemm(m, n, k, va, vb, &mut out))
        });
        let ta = Tensor::from_vec(a.clone(), (m, k), &Device::Cpu).unwrap();
        let ta = if at {
            ta.reshape((k, m)).unwrap().t().unwrap()
        } else {
            ta
        };
        let tb = Tensor::from_vec(b.clone(), (k, n), &Device::Cpu).unwrap();
        g.bench_function(format!("candle {label}"), |bch| {
            bch.iter(|| ta.matmul(&tb).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
