//! fade's canonical matrix product at the default preset's largest shapes
//! (256 lanes; the fine refiner's GeGLU 128 -> 1024 and its read-back
//! 512 -> 128, forward and both backward forms), beside candle's matmul (the
//! run-time-dispatched gemm the model used before format v2). Throughput is
//! in multiply-adds.

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
    // (label, m, k, n, A transposed)
    for (label, m, k, n, at) in [
        ("fwd 256x128 * 128x1024", 256, 128, 1024, false),
        ("fwd 256x512 * 512x128", 256, 512, 128, false),
        ("dX 256x1024 * 1024x128", 256, 1024, 128, false),
        ("dW 128x256 * 256x1024 (A^T)", 128, 256, 1024, true),
    ] {
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
