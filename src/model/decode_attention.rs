//! Fused single-token attention for decode (inference only).
//!
//! A decode step gives every sequence one new query token per head, attending
//! to its whole KV cache. Through candle that is two tiny GEMMs and a softmax
//! per sequence per layer, and at 32 rollouts the GEMM library's per-call
//! overhead (packing, dispatch) cost more than every weight matmul of the
//! step together (`perf`: 41% vs 23% of decode time). Here a layer's whole
//! step runs as two parallel loops reading the cache rows in place:
//!
//! 1. **Shared prefixes.** Sequences on the same shared prefix (the N
//!    rollouts of one prompt, see [`super::kv_cache::SharedKv`]) are taken
//!    together per KV head: each prefix K/V row is read once for all their
//!    query heads, giving each (sequence, head) a partial softmax state
//!    (running max, sum, unnormalized output). At N = 32 this reads the
//!    prompt's KV once instead of 32 times.
//! 2. **Own rows.** Per (sequence, KV head), the rows after the prefix, merged
//!    into that state (the online-softmax rescaling of FlashAttention), then
//!    normalized.
//!
//! K/V may be stored as f32, f16 or bf16; half-precision rows are widened to
//! f32 a tile at a time in L1. Each output depends only on its own sequence
//! (every dot product and sum runs in a fixed order over fixed tiles), so a
//! sequence's result is the same whatever batch it decodes in.

use std::collections::HashMap;

use candle_core::{CpuStorage, DType, Result, Storage, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;

use super::kv_cache::KvView;
use crate::kernels::attention::{Rows, Tiles, TILE};

/// One sequence's decode query and what it attends to.
pub(super) struct DecodeItem {
    /// `(heads, 1, d)` f32 (any layout with unit stride along d).
    pub q: Tensor,
    pub kv: KvView,
}

/// Borrowed cache storage in its dtype.
#[derive(Clone, Copy)]
enum Data<'a> {
    F32(&'a [f32]),
    F16(&'a [f16]),
    Bf16(&'a [bf16]),
}

/// A strided view: element `(a, b, c)` is at `start + a·s0 + b·s1 + c`.
struct View<'a> {
    data: Data<'a>,
    start: usize,
    s0: usize,
    s1: usize,
    len: usize,
}

impl View<'_> {
    /// Rows `t0..t0 + n` of head `a`: borrowed in their storage type when
    /// contiguous, else widened into `buf`.
    fn rows<'s>(
        &'s self,
        a: usize,
        t0: usize,
        n: usize,
        d: usize,
        buf: &'s mut Vec<f32>,
    ) -> Rows<'s> {
        let o = self.start + a * self.s0 + t0 * self.s1;
        if self.s1 == d {
            let span = o..o + n * d;
            return match self.data {
                Data::F32(x) => Rows::F32(&x[span]),
                Data::F16(x) => Rows::F16(&x[span]),
                Data::Bf16(x) => Rows::Bf16(&x[span]),
            };
        }
        buf.clear();
        let mut row = Vec::new();
        for i in 0..n {
            let r = o + i * self.s1..o + i * self.s1 + d;
            let wide = match self.data {
                Data::F32(x) => Rows::F32(&x[r]),
                Data::F16(x) => Rows::F16(&x[r]),
                Data::Bf16(x) => Rows::Bf16(&x[r]),
            }
            .widen(&mut row);
            buf.extend_from_slice(wide);
        }
        Rows::F32(buf)
    }
}

/// Borrowed storage of a `(a, len, d)` tensor (held for the kernel's duration).
fn view<'a>(storage: &'a Storage, t: &Tensor) -> Option<View<'a>> {
    let data = match storage {
        Storage::Cpu(CpuStorage::F32(x)) => Data::F32(x),
        Storage::Cpu(CpuStorage::F16(x)) => Data::F16(x),
        Storage::Cpu(CpuStorage::BF16(x)) => Data::Bf16(x),
        _ => return None,
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

/// Whether [`attend`] can run this item (CPU, f32 query, f32/f16/bf16 cache,
/// unit stride along d).
pub(super) fn supported(item: &DecodeItem) -> bool {
    let ok = |t: &Tensor, dtypes: &[DType]| {
        t.device().is_cpu() && dtypes.contains(&t.dtype()) && t.rank() == 3 && t.stride()[2] == 1
    };
    let cache = [DType::F32, DType::F16, DType::BF16];
    ok(&item.q, &[DType::F32])
        && ok(&item.kv.k, &cache)
        && ok(&item.kv.v, &cache)
        && item
            .kv
            .prefix
            .as_ref()
            .is_none_or(|p| ok(&p.k, &cache) && ok(&p.v, &cache))
}

/// One item's borrowed views.
struct Views<'a> {
    q: View<'a>,
    k: View<'a>,
    v: View<'a>,
    prefix: Option<(View<'a>, View<'a>)>,
}

/// Shape of the attention: query heads `g·group .. (g+1)·group` share KV head `g`.
#[derive(Clone, Copy)]
struct Shape {
    group: usize,
    d: usize,
    scale: f32,
}

/// Attention outputs `(items.len(), heads·d)` for single-token queries.
/// Callers check [`supported`] first.
pub(super) fn attend(
    items: &[DecodeItem],
    heads: usize,
    kv_heads: usize,
    d: usize,
    scale: f32,
) -> Result<Vec<f32>> {
    let shape = Shape {
        group: heads / kv_heads,
        d,
        scale,
    };
    let guards: Vec<_> = items
        .iter()
        .map(|it| {
            let p = it.kv.prefix.as_ref();
            (
                it.q.storage_and_layout().0,
                it.kv.k.storage_and_layout().0,
                it.kv.v.storage_and_layout().0,
                p.map(|p| (p.k.storage_and_layout().0, p.v.storage_and_layout().0)),
            )
        })
        .collect();
    let mut views = Vec::with_capacity(items.len());
    for (it, (qs, ks, vs, ps)) in items.iter().zip(&guards) {
        let prefix = match (&it.kv.prefix, ps) {
            (Some(p), Some((pk, pv))) => match (view(pk, &p.k), view(pv, &p.v)) {
                (Some(k), Some(v)) if k.len == v.len => Some((k, v)),
                _ => candle_core::bail!("decode attention: unsupported prefix layout"),
            },
            _ => None,
        };
        match (view(qs, &it.q), view(ks, &it.kv.k), view(vs, &it.kv.v)) {
            (Some(q), Some(k), Some(v))
                if k.len == v.len && q.len == 1 && matches!(q.data, Data::F32(_)) =>
            {
                views.push(Views { q, k, v, prefix })
            }
            _ => candle_core::bail!("decode attention: unsupported q/k/v layout"),
        }
    }
    let tiles = Tiles::select(d);

    // Phase 1: one task per (shared prefix, KV head) over all its sequences.
    let mut sharing: Vec<Vec<usize>> = Vec::new();
    let mut by_key: HashMap<(usize, usize), usize> = HashMap::new();
    for (i, it) in items.iter().enumerate() {
        if let Some(p) = &it.kv.prefix {
            let slot = *by_key.entry(p.key).or_insert_with(|| {
                sharing.push(Vec::new());
                sharing.len() - 1
            });
            sharing[slot].push(i);
        }
    }
    let state = shape.d + 2;
    let tasks: Vec<(usize, usize)> = (0..sharing.len())
        .flat_map(|s| (0..kv_heads).map(move |g| (s, g)))
        .collect();
    let partial: Vec<Vec<f32>> = tasks
        .par_iter()
        .map(|&(s, g)| {
            let members = &sharing[s];
            let (pk, pv) = views[members[0]]
                .prefix
                .as_ref()
                .expect("grouped by prefix");
            let qs: Vec<&[f32]> = members
                .iter()
                .flat_map(|&m| {
                    let q = &views[m].q;
                    (0..shape.group).map(move |j| q_row(q, g * shape.group + j, shape.d))
                })
                .collect();
            let mut out = vec![0f32; qs.len() * state];
            prefix(&qs, pk, pv, g, shape, tiles, &mut out);
            out
        })
        .collect();
    // Scatter the states to (item, head).
    let mut seeds: Vec<Option<Vec<f32>>> = (0..items.len()).map(|_| None).collect();
    for ((s, g), part) in tasks.iter().zip(&partial) {
        for (mi, &m) in sharing[*s].iter().enumerate() {
            let seed = seeds[m].get_or_insert_with(|| vec![0f32; heads * state]);
            let from = mi * shape.group * state;
            let to = g * shape.group * state;
            let n = shape.group * state;
            seed[to..to + n].copy_from_slice(&part[from..from + n]);
        }
    }

    // Phase 2: one task per (sequence, KV head) over its own rows.
    let mut out = vec![0f32; items.len() * heads * d];
    out.par_chunks_mut(shape.group * d)
        .enumerate()
        .for_each(|(task, dst)| {
            let (seq, g) = (task / kv_heads, task % kv_heads);
            let seed = seeds[seq].as_ref().map(|s| {
                let n = shape.group * state;
                &s[g * n..(g + 1) * n]
            });
            own(&views[seq], seed, g, shape, tiles, dst);
        });
    Ok(out)
}

fn q_row<'a>(q: &View<'a>, head: usize, d: usize) -> &'a [f32] {
    let Data::F32(x) = q.data else {
        unreachable!("queries are checked to be f32")
    };
    let o = q.start + head * q.s0;
    &x[o..o + d]
}

/// Phase 1: for each query row, `(max, sum, Σ exp(s − max)·v)` over the
/// prefix rows of KV head `g`, into `dst` (`rows · (d + 2)`).
fn prefix(
    qs: &[&[f32]],
    k: &View<'_>,
    v: &View<'_>,
    g: usize,
    shape: Shape,
    tiles: Tiles,
    dst: &mut [f32],
) {
    let (d, len) = (shape.d, k.len);
    let mut scores = vec![0f32; qs.len() * len];
    let (mut buf, mut wide) = (Vec::new(), Vec::new());
    for t0 in (0..len).step_by(TILE) {
        let n = TILE.min(len - t0);
        let rows = k.rows(g, t0, n, d, &mut buf);
        for (r, q) in qs.iter().enumerate() {
            let out = &mut scores[r * len + t0..r * len + t0 + n];
            tiles.scores(q, rows, d, shape.scale, out, &mut wide);
        }
    }
    for (s, st) in scores.chunks_mut(len).zip(dst.chunks_mut(d + 2)) {
        let (m, l) = exp_shifted(s, f32::NEG_INFINITY);
        st[0] = m;
        st[1] = l;
        st[2..].fill(0.0);
    }
    for t0 in (0..len).step_by(TILE) {
        let n = TILE.min(len - t0);
        let rows = v.rows(g, t0, n, d, &mut buf);
        for (s, st) in scores.chunks(len).zip(dst.chunks_mut(d + 2)) {
            tiles.accumulate(&s[t0..t0 + n], rows, d, &mut st[2..], &mut wide);
        }
    }
}

/// Phase 2: the `group` query heads of KV head `g` of one sequence over its
/// own rows, merged with the prefix states `seed` if any, into `dst`
/// (`group · d`, normalized).
fn own(
    it: &Views<'_>,
    seed: Option<&[f32]>,
    g: usize,
    shape: Shape,
    tiles: Tiles,
    dst: &mut [f32],
) {
    let (d, len) = (shape.d, it.k.len);
    let mut scores = vec![0f32; shape.group * len];
    let (mut buf, mut wide) = (Vec::new(), Vec::new());
    let qs: Vec<&[f32]> = (0..shape.group)
        .map(|j| q_row(&it.q, g * shape.group + j, d))
        .collect();
    for t0 in (0..len).step_by(TILE) {
        let n = TILE.min(len - t0);
        let rows = it.k.rows(g, t0, n, d, &mut buf);
        for (j, q) in qs.iter().enumerate() {
            let out = &mut scores[j * len + t0..j * len + t0 + n];
            tiles.scores(q, rows, d, shape.scale, out, &mut wide);
        }
    }
    let mut sums = vec![0f32; shape.group];
    for (j, o) in dst.chunks_mut(d).enumerate() {
        let s = &mut scores[j * len..(j + 1) * len];
        match seed {
            Some(seed) => {
                let st = &seed[j * (d + 2)..(j + 1) * (d + 2)];
                let (m, l) = exp_shifted(s, st[0]);
                // Rescale the prefix state to the joint max.
                let c = if st[0] == f32::NEG_INFINITY {
                    0.0
                } else {
                    (st[0] - m).exp()
                };
                sums[j] = l + st[1] * c;
                for (x, y) in o.iter_mut().zip(&st[2..]) {
                    *x = y * c;
                }
            }
            None => {
                sums[j] = exp_shifted(s, f32::NEG_INFINITY).1;
                o.fill(0.0);
            }
        }
    }
    for t0 in (0..len).step_by(TILE) {
        let n = TILE.min(len - t0);
        let rows = it.v.rows(g, t0, n, d, &mut buf);
        for (j, o) in dst.chunks_mut(d).enumerate() {
            tiles.accumulate(
                &scores[j * len + t0..j * len + t0 + n],
                rows,
                d,
                o,
                &mut wide,
            );
        }
    }
    for (o, sum) in dst.chunks_mut(d).zip(sums) {
        let inv = 1.0 / sum;
        o.iter_mut().for_each(|x| *x *= inv);
    }
}

/// Replace `s` by `exp(s − m)` with `m = max(floor, max s)`; returns `(m, Σ)`.
fn exp_shifted(s: &mut [f32], floor: f32) -> (f32, f32) {
    let m = s.iter().copied().fold(floor, f32::max);
    let mut sum = 0f32;
    for x in s.iter_mut() {
        *x = (*x - m).exp();
        sum += *x;
    }
    (m, sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::kv_cache::{KvCache, KvView};
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
    fn reference(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
        kvh: usize,
        scale: f64,
    ) -> Vec<f32> {
        let (k, v) = (
            k.to_dtype(DType::F32).unwrap(),
            v.to_dtype(DType::F32).unwrap(),
        );
        let d = k.dim(2).unwrap();
        let q = q.reshape((kvh, heads / kvh, d)).unwrap();
        let s = (q.matmul(&k.t().unwrap()).unwrap() * scale).unwrap();
        let p = candle_nn::ops::softmax(&s, D::Minus1).unwrap();
        p.matmul(&v.contiguous().unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    fn close(got: &[f32], want: &[f32], tol: f32, what: &str) {
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < tol, "{what}: {a} vs {b}");
        }
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
                    kv: KvView {
                        prefix: None,
                        k: k.narrow(1, 0, len).unwrap(),
                        v: v.narrow(1, 0, len).unwrap(),
                    },
                }
            })
            .collect();
        assert!(items.iter().all(supported));
        let got = attend(&items, heads, kvh, d, scale as f32).unwrap();
        for (i, it) in items.iter().enumerate() {
            let want = reference(&it.q, &it.kv.k, &it.kv.v, heads, kvh, scale);
            close(
                &got[i * heads * d..(i + 1) * heads * d],
                &want,
                1e-5,
                "plain",
            );
        }
        // A sequence alone gives bit-identical output.
        let alone = attend(&items[2..], heads, kvh, d, scale as f32).unwrap();
        assert_eq!(alone.as_slice(), &got[2 * heads * d..]);
    }

    /// Rollouts on a shared prompt prefix (plus a sequence without one), in
    /// every storage dtype: each matches candle's attention over its joined
    /// rows, and is bit-identical decoded alone.
    #[test]
    fn shared_prefix_sequences_match_attention_over_their_joined_rows() {
        let (heads, kvh, d) = (4, 2, 48);
        let scale = 1.0 / (d as f64).sqrt();
        for (dtype, tol) in [(DType::F32, 1e-5), (DType::F16, 1e-5), (DType::BF16, 1e-5)] {
            // A 70-token prompt (three tiles), frozen and shared.
            let mut prompt = KvCache::with_dtype(1, Some(dtype));
            prompt
                .append(0, &rand((kvh, 70, d), 1), &rand((kvh, 70, d), 2))
                .unwrap();
            prompt.commit(70);
            let shared = prompt.into_shared().unwrap();
            let mut caches: Vec<KvCache> = (0..3)
                .map(|_| KvCache::on_prefix(shared.clone(), 70))
                .collect();
            caches.push(KvCache::with_dtype(1, Some(dtype)));
            let mut items = Vec::new();
            for (i, c) in caches.iter_mut().enumerate() {
                let n = 1 + 20 * i; // own rows: 1, 21, 41, 61
                let kv = c
                    .append(
                        0,
                        &rand((kvh, n, d), 40 + i as u64),
                        &rand((kvh, n, d), 50 + i as u64),
                    )
                    .unwrap();
                items.push(DecodeItem {
                    q: rand((heads, 1, d), 60 + i as u64),
                    kv,
                });
            }
            assert!(items.iter().all(supported));
            let got = attend(&items, heads, kvh, d, scale as f32).unwrap();
            for (i, it) in items.iter().enumerate() {
                let (k, v) = it.kv.clone().joined(DType::F32).unwrap();
                let want = reference(&it.q, &k, &v, heads, kvh, scale);
                close(
                    &got[i * heads * d..(i + 1) * heads * d],
                    &want,
                    tol,
                    &format!("{dtype:?} seq {i}"),
                );
            }
            let alone = attend(&items[1..2], heads, kvh, d, scale as f32).unwrap();
            assert_eq!(
                alone.as_slice(),
                &got[heads * d..2 * heads * d],
                "{dtype:?}"
            );
        }
    }
}
