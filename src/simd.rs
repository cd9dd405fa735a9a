//! Wider vectors for the element-wise kernels, chosen at run time.
//!
//! fade's release build targets baseline x86-64, so loops vectorise four floats
//! wide (SSE2). [`wide_kernel!`] compiles a kernel a second time with AVX2 and
//! calls that copy when the CPU has it. This changes speed only, never results:
//! every kernel uses plain IEEE add, mul, div, sqrt, min and max, which give the
//! same bits at any width, and Rust never fuses a multiply and an add into an
//! FMA on its own. The FMA feature is deliberately not enabled.

/// Defines `fn name(args)` whose body runs AVX2-compiled when available.
macro_rules! wide_kernel {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($a:ident : $t:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        $vis fn $name($($a: $t),*) {
            #[inline(always)]
            fn body($($a: $t),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn wide($($a: $t),*) {
                    body($($a),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU was just checked to support AVX2.
                    return unsafe { wide($($a),*) };
                }
            }
            body($($a),*)
        }
    };
}

pub(crate) use wide_kernel;
