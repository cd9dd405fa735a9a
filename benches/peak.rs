//! The machine's peak: fused multiply-adds per second at each vector level
//! this CPU has, on one thread and on every core, from a loop of independent
//! FMA chains that keeps the FMA units busy and touches no memory. The cost
//! model (`fade::cost`, docs/PERFORMANCE.md) sets a preset's multiply-adds
//! per byte against these to give each stage's fraction of peak.
//!
//! `cargo bench --bench peak`

use std::time::Instant;

/// Independent accumulator chains per loop: enough to cover the FMA latency
/// (4 cycles) on two FMA ports.
const CHAINS: usize = 12;
const ITERS: usize = 20_000_000;

/// Multiply-adds per call of the kernel at `level` (lanes x chains x iterations).
fn madds(width: usize) -> f64 {
    (width * CHAINS * ITERS) as f64
}

fn scalar() -> f32 {
    let mut acc = [0f32; CHAINS];
    let (a, b) = (
        std::hint::black_box(0.999_9f32),
        std::hint::black_box(1e-7f32),
    );
    for _ in 0..ITERS {
        for x in acc.iter_mut() {
            *x = x.mul_add(a, b);
        }
    }
    acc.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2() -> f32 {
    use std::arch::x86_64::*;
    let a = _mm256_set1_ps(std::hint::black_box(0.999_9));
    let b = _mm256_set1_ps(std::hint::black_box(1e-7));
    let mut acc = [_mm256_setzero_ps(); CHAINS];
    for _ in 0..ITERS {
        for x in acc.iter_mut() {
            *x = _mm256_fmadd_ps(*x, a, b);
        }
    }
    let mut out = [0f32; 8];
    let mut sum = _mm256_setzero_ps();
    for x in acc {
        sum = _mm256_add_ps(sum, x);
    }
    _mm256_storeu_ps(out.as_mut_ptr(), sum);
    out.iter().sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512() -> f32 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_ps(std::hint::black_box(0.999_9));
    let b = _mm512_set1_ps(std::hint::black_box(1e-7));
    let mut acc = [_mm512_setzero_ps(); CHAINS];
    for _ in 0..ITERS {
        for x in acc.iter_mut() {
            *x = _mm512_fmadd_ps(*x, a, b);
        }
    }
    let mut sum = _mm512_setzero_ps();
    for x in acc {
        sum = _mm512_add_ps(sum, x);
    }
    _mm512_reduce_add_ps(sum)
}

/// Runs `kernel` on `threads` threads at once and returns the multiply-adds
/// per second of all of them together.
fn rate(kernel: fn() -> f32, width: usize, threads: usize) -> f64 {
    let t0 = Instant::now();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads).map(|_| s.spawn(kernel)).collect();
        for h in hs {
            std::hint::black_box(h.join().unwrap());
        }
    });
    madds(width) * threads as f64 / t0.elapsed().as_secs_f64()
}

/// A kernel by name, with its vector width.
type Kernel = (&'static str, fn() -> f32, usize);

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut levels: Vec<Kernel> = vec![("scalar (f32::mul_add)", scalar, 1)];
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the features were detected just above.
            levels.push(("AVX2 + FMA, 8 lanes", || unsafe { avx2() }, 8));
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the feature was detected just above.
            levels.push(("AVX-512, 16 lanes", || unsafe { avx512() }, 16));
        }
    }
    println!("| vector level | 1 thread, G multiply-adds/s | {cores} threads, G multiply-adds/s |");
    println!("|---|---:|---:|");
    for (name, kernel, width) in levels {
        let one = rate(kernel, width, 1);
        let all = rate(kernel, width, cores);
        println!("| {name} | {:.1} | {:.1} |", one / 1e9, all / 1e9);
    }
}
