//! Fused single-token attention for decode (inference only).
//!
//! A decode step gives every sequence one new query token per head, attending
//! to its whole KV cache. Through candle that is two tiny GEMMs and a softmax
//! per sequence per layer, and at 32 rollouts the GEMM library's per-call
//! overhead (packing, dispatch) cost more than every weight matmul of the
//! step together (`perf`: 41% vs 23% of decode time). Here all sequences'
//! (sequence, KV head) pairs of a layer run as one parallel loop: for each
//! query head sharing that KV head, `softmax(q·Kᵀ/√d)·V` reading the cache
//! rows in place (the cache is `(kv_heads, capacity, d)`, so each head's
//! keys are contiguous rows).
//!
//! Each output depends only on its own sequence, so a sequence's result is
//! the same whatever batch it decodes in.

use candle_core::{CpuStorage, Result, Storage, Tensor};
use rayon::prelude::*;

/// One sequence's decode query and its KV views.
pub(super) struct DecodeItem {
    /// `(heads, 1, d)` (any layout with unit stride along d).
    pub q: Tensor,
    /// `(kv_heads, len, d)` views into the KV cache.
    pub k: Tensor,
    pub v: Tensor,
}

/// A strided f32 view: element `(a, b, c)` is at `start + a·s0 + b·s1 + c`.
struct View<'a> {
    data: &'a [f32],
    start: usize,
    s0: usize,
    s1: usize,
    len: usize,
}

impl View<'_> {
    fn row(&self, a: usize, b: usize, d: usize) -> &[f32] {
        let o = self.start + a * self.s0 + b * self.s1;
        &self.data[o..o + d]
    }
}

/// Borrowed f32 storage of a tensor (held for the duration of the kernel).
fn f32_view<'a>(storage: &'a Storage, t: &Tensor) -> Option<View<'a>> {
    let Storage::Cpu(CpuStorage::F32(data)) = storage else {
        return None;
    };
    let layout = t.layout();
    let (_, len, _) = t.dims3().ok()?;
    match layout.stride() {
        [s0, s1, 1] => Some(View {
            data,
            start: layout.start_offset(),
            s0: *s0,
            s1: *s1,
            len,
        }),
        _ => None,
    }
}

/// Whether [`attend`] can run these tensors (CPU, f32, unit stride along d).
pub(super) fn supported(item: &DecodeItem) -> bool {
    [&item.q, &item.k, &item.v].iter().all(|t| {
        t.device().is_cpu()
            && t.dtype() == candle_core::DType::F32
            && t.rank() == 3
            && t.stride()[2] == 1
    })
}

/// Attention outputs `(items.len(), heads·d)` for single-token queries;
/// query heads `g·group .. (g+1)·group` share KV head `g`. Callers check
/// [`supported`] first.
pub(super) fn attend(
    items: &[DecodeItem],
    heads: usize,
    kv_heads: usize,
    d: usize,
    scale: f32,
) -> Result<Vec<f32>> {
    let group = heads / kv_heads;
    let guards: Vec<_> = items
        .iter()
        .map(|it| {
            (
                it.q.storage_and_layout().0,
                it.k.storage_and_layout().0,
                it.v.storage_and_layout().0,
            )
        })
        .collect();
    let mut views = Vec::with_capacity(items.len());
    for (it, (qs, ks, vs)) in items.iter().zip(&guards) {
        match (
            f32_view(qs, &it.q),
            f32_view(ks, &it.k),
            f32_view(vs, &it.v),
        ) {
            (Some(q), Some(k), Some(v)) if k.len == v.len && q.len == 1 => views.push((q, k, v)),
            _ => candle_core::bail!("decode attention: unsupported q/k/v layout"),
        }
    }
    let mut out = vec![0f32; items.len() * heads * d];
    let isa = Isa::detect();
    // One task per (sequence, KV head): `group · d` contiguous outputs.
    out.par_chunks_mut(group * d)
        .enumerate()
        .for_each(|(task, dst)| {
            let (seq, g) = (task / kv_heads, task % kv_heads);
            let (q, k, v) = &views[seq];
            let args = (q, k, v, g, group, d, scale);
            match isa {
                // SAFETY: `Isa::detect` checked the CPU features.
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => unsafe { head_avx512(args, dst) },
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => unsafe { head_avx2(args, dst) },
                Isa::Portable => head(args, dst),
            }
        });
    Ok(out)
}

/// Arguments of one (sequence, KV head) task.
type HeadArgs<'a, 'b> = (
    &'b View<'a>,
    &'b View<'a>,
    &'b View<'a>,
    usize,
    usize,
    usize,
    f32,
);

/// Instruction sets the head loop is compiled for (the crate's baseline is
/// plain x86-64, so without this the loops would vectorize to 4 lanes).
#[derive(Clone, Copy)]
enum Isa {
    #[cfg(target_arch = "x86_64")]
    Avx512,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    Portable,
}

impl Isa {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }
}

/// [`head`] compiled for AVX-512.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn head_avx512(args: HeadArgs<'_, '_>, dst: &mut [f32]) {
    head(args, dst)
}

/// [`head`] compiled for AVX2 + FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn head_avx2(args: HeadArgs<'_, '_>, dst: &mut [f32]) {
    head(args, dst)
}

/// Attention of the `group` query heads sharing KV head `g` of one sequence
/// into `dst` (`group · d`).
#[inline(always)]
fn head((q, k, v, g, group, d, scale): HeadArgs<'_, '_>, dst: &mut [f32]) {
    let len = k.len;
    // All `group` query heads of this KV head in one pass over its
    // K and V rows (each row is read once, not once per head).
    let qs: Vec<&[f32]> = (0..group).map(|j| q.row(g * group + j, 0, d)).collect();
    let mut scores = vec![0f32; group * len];
    for t in 0..len {
        let kr = k.row(g, t, d);
        for (j, qh) in qs.iter().enumerate() {
            scores[j * len + t] = dot(qh, kr) * scale;
        }
    }
    for s in scores.chunks_mut(len.max(1)) {
        let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for x in s.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        let inv = 1.0 / sum;
        s.iter_mut().for_each(|x| *x *= inv);
    }
    dst.fill(0.0);
    for t in 0..len {
        let vr = v.row(g, t, d);
        for (j, o) in dst.chunks_mut(d).enumerate() {
            axpy(o, scores[j * len + t], vr);
        }
    }
}

/// `a · b` with 16 independent lanes (vectorizes; the lane sums are added
/// in a fixed order, so results don't depend on the caller).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let (ac, bc) = (a.chunks_exact(16), b.chunks_exact(16));
    let tail: f32 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..16 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `o += p · v`.
#[inline(always)]
fn axpy(o: &mut [f32], p: f32, v: &[f32]) {
    for (x, y) in o.iter_mut().zip(v) {
        *x += p * y;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, D};

    fn rand(shape: (usize, usize, usize), seed: u64) -> Tensor {
        let n = shape.0 * shape.1 * shape.2;
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// candle's composed attention for one query token per head.
    fn reference(it: &DecodeItem, heads: usize, kvh: usize, d: usize, scale: f64) -> Vec<f32> {
        let group = heads / kvh;
        let q = it.q.reshape((kvh, group, d)).unwrap();
        let s = (q.matmul(&it.k.t().unwrap()).unwrap() * scale).unwrap();
        let p = candle_nn::ops::softmax(&s, D::Minus1).unwrap();
        p.matmul(&it.v.contiguous().unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn matches_candle_attention_on_strided_cache_views() {
        let (heads, kvh, d) = (8, 2, 40);
        let scale = 1.0 / (d as f64).sqrt();
        // Cache tensors with spare capacity, narrowed like KvCache::append.
        let items: Vec<DecodeItem> = [(5usize, 9usize), (1, 4), (33, 40)]
            .iter()
            .enumerate()
            .map(|(i, &(len, cap))| {
                let k = rand((kvh, cap, d), 10 + i as u64);
                let v = rand((kvh, cap, d), 20 + i as u64);
                DecodeItem {
                    q: rand((heads, 1, d), 30 + i as u64),
                    k: k.narrow(1, 0, len).unwrap(),
                    v: v.narrow(1, 0, len).unwrap(),
                }
            })
            .collect();
        assert!(items.iter().all(supported));
        let got = attend(&items, heads, kvh, d, scale as f32).unwrap();
        for (i, it) in items.iter().enumerate() {
            let want = reference(it, heads, kvh, d, scale);
            let row = &got[i * heads * d..(i + 1) * heads * d];
            for (a, b) in row.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "seq {i}: {a} vs {b}");
            }
        }
        // A sequence alone gives bit-identical output.
        let alone = attend(&items[2..], heads, kvh, d, scale as f32).unwrap();
        assert_eq!(alone.as_slice(), &got[2 * heads * d..]);
    }
}
