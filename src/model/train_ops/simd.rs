//! Vectorisation of the ops' elementwise loops.
//!
//! The crate is built for baseline x86-64 (SSE2), and `f32::exp` is a libm
//! call, so the loops of the ops ran at one scalar `expf` per element. Two
//! pieces fix that without per-ISA code:
//! * [`simd_fn!`] compiles a function's body a second time with AVX-512
//!   enabled and picks that copy at run time, so the same generic loops
//!   autovectorise 16 lanes wide;
//! * [`exp_f32`] is `exp` in plain arithmetic and bit operations (Cephes'
//!   `expf`: range reduction by ln 2 and a degree-6 polynomial, ≤ 2 ulp), so
//!   it vectorises with the loop around it;
//! * [`sum_sq`], [`dot`] and [`max`] reduce through 16 independent partial
//!   results (a strict left-to-right float sum cannot be vectorised).

/// Whether the AVX-512 copies of [`simd_fn!`] functions can run.
pub(crate) fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `fn NAME<T: Real>(args) -> R { body }` whose body runs from a copy
/// compiled with AVX-512 (+FMA) when the CPU has it, else from the baseline
/// copy. The body is an ordinary safe block.
macro_rules! simd_fn {
    ($(#[$attr:meta])* $vis:vis fn $name:ident<$t:ident: Real>($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$attr])*
        $vis fn $name<$t: Real>($($arg: $ty),*) $(-> $ret)? {
            $(#[$attr])*
            #[inline(always)]
            fn body<$t: Real>($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                $(#[$attr])*
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")]
                unsafe fn avx512<$t: Real>($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if $crate::model::train_ops::simd::avx512() {
                    // SAFETY: the CPU has every feature `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// `e^x` in f32 without libm, written to vectorise: ≤ 2 ulp on
/// [−87.33, 88.37], `+inf` above (e^88.37 ≈ 2.4e38), `0` below (where the
/// result would be subnormal), NaN for NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const HI: f32 = 88.376_26;
    const LO: f32 = -87.336_55;
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split so that n·C1 is exact.
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let xc = x.clamp(LO, HI);
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let r = xc - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * (r * r) + r + 1.0;
    // 2^n from the integer in t's low bits (n ∈ [−126, 127] after the clamp).
    let ni = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let y = e * f32::from_bits(((ni + 127) as u32) << 23);
    if x > HI {
        f32::INFINITY
    } else if x < LO {
        0.0
    } else if x.is_nan() {
        x
    } else {
        y
    }
}

const LANES: usize = 16;

/// `Σ x²` through 16 partial sums.
#[inline(always)]
pub(crate) fn sum_sq<T: super::Real>(x: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    let mut s = T::zero();
    for &v in tail {
        s += v * v;
    }
    acc.iter().fold(s, |s, &a| s + a)
}

/// `Σ x` through 16 partial sums.
#[inline(always)]
pub(crate) fn sum<T: super::Real>(x: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    let mut s = T::zero();
    for &v in tail {
        s += v;
    }
    acc.iter().fold(s, |s, &a| s + a)
}

/// `Σ exp(x·scale − shift)` through 16 partial sums.
#[inline(always)]
pub(crate) fn sum_exp<T: super::Real>(x: &[T], scale: T, shift: T) -> T {
    let mut acc = [T::zero(); LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += (v * scale - shift).exp();
        }
    }
    let mut s = T::zero();
    for &v in tail {
        s += (v * scale - shift).exp();
    }
    acc.iter().fold(s, |s, &a| s + a)
}

/// `Σ a·b` through 16 partial sums.
#[inline(always)]
pub(crate) fn dot<T: super::Real>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((s, &u), &v) in acc.iter_mut().zip(x).zip(y) {
            *s += u * v;
        }
    }
    let mut s = T::zero();
    for (&u, &v) in ta.iter().zip(tb) {
        s += u * v;
    }
    acc.iter().fold(s, |s, &a| s + a)
}

/// The largest element (−∞ for an empty slice) through 16 partial maxima.
#[inline(always)]
pub(crate) fn max<T: super::Real>(x: &[T]) -> T {
    let mut acc = [T::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    let mut m = T::NEG_INFINITY;
    for &v in tail {
        m = if v > m { v } else { m };
    }
    acc.iter().fold(m, |m, &a| if a > m { a } else { m })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_f32_is_within_two_ulp_of_libm() {
        let mut worst = 0f64;
        let mut x = -87.3f32;
        while x < 88.37 {
            let (got, want) = (exp_f32(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
            x += 0.001_37;
        }
        assert!(worst < 2.5e-7, "relative error {worst:e}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert_eq!(exp_f32(200.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn reductions_match_plain_sums() {
        let x: Vec<f64> = (0..37).map(|i| (i as f64 * 0.37).sin()).collect();
        let y: Vec<f64> = (0..37).map(|i| (i as f64 * 0.11).cos()).collect();
        let ss: f64 = x.iter().map(|v| v * v).sum();
        let d: f64 = x.iter().zip(&y).map(|(a, b)| a * b).sum();
        let m = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert!((sum_sq(&x) - ss).abs() < 1e-12);
        assert!((sum(&x) - x.iter().sum::<f64>()).abs() < 1e-12);
        assert!((dot(&x, &y) - d).abs() < 1e-12);
        assert_eq!(max(&x), m);
        assert_eq!(max::<f64>(&[]), f64::NEG_INFINITY);
    }
}
