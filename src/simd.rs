//! Wider vectors for the kernels, chosen at run time, never changing results.
//!
//! fade's release build targets baseline x86-64 (SSE2). [`wide_kernel!`]
//! compiles a kernel three times, for baseline, AVX2 + FMA and AVX-512, and
//! calls the widest copy the CPU runs. Results never depend on the copy: every
//! kernel is written as a fixed sequence of IEEE operations per output element
//! (add, mul, div, sqrt, min, max, and `f32::mul_add`, the fused multiply-add
//! rounded once), and vectorising only computes several elements side by side.
//! Rust never contracts `a * b + c` into an FMA on its own, and a CPU without
//! FMA computes `mul_add` in software (slowly, with the same bits). The
//! arithmetic of every kernel is specified in docs/FORMAT.md.
//!
//! `FADE_SIMD=baseline|avx2|avx512` caps the level (to compare paths, or to
//! decode on a machine whose vector unit is suspect); tests cap it per thread
//! with [`with_level`].

// Off x86-64 every kernel has one copy, and nothing asks for a level.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use std::cell::Cell;
use std::sync::OnceLock;

/// A vector instruction level a kernel copy is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Whatever the target guarantees (SSE2 on x86-64, NEON on aarch64).
    Baseline,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512F (and AVX2, FMA).
    Avx512,
}

impl Level {
    /// Every level, narrowest first.
    #[cfg(test)]
    pub const ALL: [Level; 3] = [Level::Baseline, Level::Avx2, Level::Avx512];
}

fn detect() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
            return Level::Avx512;
        }
        if avx2 {
            return Level::Avx2;
        }
    }
    Level::Baseline
}

/// The widest level this CPU runs, capped by `FADE_SIMD`.
fn machine_level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = match std::env::var("FADE_SIMD").as_deref() {
            Ok("baseline") | Ok("scalar") => Level::Baseline,
            Ok("avx2") => Level::Avx2,
            _ => Level::Avx512,
        };
        detect().min(cap)
    })
}

thread_local! {
    static CAP: Cell<Level> = const { Cell::new(Level::Avx512) };
}

/// The level kernels called from this thread run at.
pub fn level() -> Level {
    machine_level().min(CAP.with(Cell::get))
}

/// Whether this machine runs `l` (tests skip the levels it does not).
#[cfg(test)]
pub fn supported(l: Level) -> bool {
    l <= machine_level()
}

/// Runs `f` with this thread's kernels capped at `l`.
#[cfg(test)]
pub fn with_level<R>(l: Level, f: impl FnOnce() -> R) -> R {
    let old = CAP.with(|c| c.replace(l));
    let r = f();
    CAP.with(|c| c.set(old));
    r
}

/// Defines `fn name(args)` whose body runs compiled for the widest [`Level`]
/// the CPU has (see [`level`]).
macro_rules! wide_kernel {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident : $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) {
            #[inline(always)]
            fn body($($a: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($a: $t),*) {
                    body($($a),*)
                }
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512($($a: $t),*) {
                    body($($a),*)
                }
                match $crate::simd::level() {
                    // SAFETY: `level` only names levels the CPU was found to run.
                    $crate::simd::Level::Avx512 => return unsafe { avx512($($a),*) },
                    $crate::simd::Level::Avx2 => return unsafe { avx2($($a),*) },
                    $crate::simd::Level::Baseline => {}
                }
            }
            body($($a),*)
        }
    };
}

pub(crate) use wide_kernel;
