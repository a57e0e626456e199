//! KV cache owned by the engine: one (K, V) pair per layer, laid out
//! (kv_heads, capacity, head_dim) so a step appends in place and attention
//! reads a prefix view without copying.
//!
//! A cache may start on a **shared prefix**: an immutable [`SharedKv`] (a
//! prompt's KV fanned out to a group's N rollouts, a prefix-cache entry) that
//! any number of caches read and none copies. Each cache stores only the
//! tokens after it. Forking a prompt to N rollouts is therefore free, N
//! rollouts hold the prompt once, and decode attention reads the shared rows
//! once for every sequence on them (see `decode_attention`).
//!
//! The storage dtype may be narrower than the activations (`f16`/`bf16`, as
//! llama.cpp's default f16 cache): K/V are converted when appended and widened
//! by whoever reads them.

use std::sync::Arc;

use candle_core::{DType, Result, Tensor};

/// Immutable K/V of a token prefix, shared by reference.
#[derive(Debug)]
pub struct SharedKv {
    /// Per layer `(kv_heads, len, d)` views (row stride `d`).
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
    bytes: usize,
}

impl SharedKv {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of storage kept alive (including spare capacity).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn dtype(&self) -> Option<DType> {
        self.layers.iter().flatten().next().map(|(k, _)| k.dtype())
    }
}

/// The shared prefix a cache reads, as seen by one layer.
#[derive(Debug, Clone)]
pub struct PrefixView {
    /// `(kv_heads, prefix_len, d)`.
    pub k: Tensor,
    pub v: Tensor,
    /// Equal for every cache reading the same rows (same [`SharedKv`], same
    /// length): attention may read them once for all of those caches.
    pub key: (usize, usize),
}

/// What attention reads for one sequence at one layer after an append.
#[derive(Debug, Clone)]
pub struct KvView {
    pub prefix: Option<PrefixView>,
    /// The cache's own rows, `(kv_heads, own_len, d)`, new tokens last.
    pub k: Tensor,
    pub v: Tensor,
}

impl KvView {
    /// Every row (prefix then own) as one `(K, V)` pair in `dtype`. Copies
    /// only when there is a prefix or the storage dtype differs.
    pub fn joined(self, dtype: DType) -> Result<(Tensor, Tensor)> {
        let (k, v) = match self.prefix {
            None => (self.k, self.v),
            Some(p) => (
                Tensor::cat(&[&p.k, &self.k], 1)?,
                Tensor::cat(&[&p.v, &self.v], 1)?,
            ),
        };
        Ok((k.to_dtype(dtype)?, v.to_dtype(dtype)?))
    }
}

#[derive(Debug)]
pub struct KvCache {
    prefix: Option<Arc<SharedKv>>,
    /// Tokens of `prefix` this cache sees (≤ its length).
    prefix_len: usize,
    /// This cache's own tokens after the prefix.
    layers: Vec<Option<(Tensor, Tensor)>>,
    /// Own tokens committed (visible to attention).
    own_len: usize,
    capacity: usize,
    /// Storage dtype; `None` keeps what is appended.
    dtype: Option<DType>,
}

/// Capacity grows in steps of this many tokens (rounded up), so a decode step
/// rarely reallocates and a short prompt does not reserve a whole context.
const GROW_STEP: usize = 256;

impl KvCache {
    /// An empty cache storing K/V as they come.
    pub fn new(num_layers: usize) -> Self {
        Self::with_dtype(num_layers, None)
    }

    /// An empty cache storing K/V in `dtype` (`None`: as they come).
    pub fn with_dtype(num_layers: usize, dtype: Option<DType>) -> Self {
        Self {
            prefix: None,
            prefix_len: 0,
            layers: vec![None; num_layers],
            own_len: 0,
            capacity: 0,
            dtype,
        }
    }

    /// A cache whose first `len` tokens are `prefix`'s (no copy).
    pub fn on_prefix(prefix: Arc<SharedKv>, len: usize) -> Self {
        let mut c = Self::with_dtype(prefix.layers.len(), prefix.dtype());
        c.prefix_len = len.min(prefix.len);
        c.prefix = Some(prefix);
        c
    }

    /// Tokens whose K/V are visible (shared prefix and own).
    pub fn len(&self) -> usize {
        self.prefix_len + self.own_len
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes this cache reserves for its own tokens (capacity, not just
    /// length). A shared prefix is not counted: its holder accounts for it.
    pub fn reserved_bytes(&self) -> usize {
        reserved(&self.layers)
    }

    /// Write `k`, `v` (kv_heads, n, head_dim) for layer `layer` at positions
    /// `len..len + n` and return what attention reads: the shared prefix and
    /// the own rows up to `len + n`. The new tokens become visible to later
    /// calls only after [`KvCache::commit`].
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<KvView> {
        let (kv_heads, n, head_dim) = k.dims3()?;
        let needed = self.own_len + n;
        if needed > self.capacity {
            self.grow(needed)?;
        }
        let dtype = self.dtype.unwrap_or(k.dtype());
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| candle_core::Error::Msg(format!("kv cache has no layer {layer}")))?;
        let (ck, cv) = match slot {
            Some(kv) => kv,
            None => {
                let shape = (kv_heads, self.capacity, head_dim);
                *slot = Some((
                    Tensor::zeros(shape, dtype, k.device())?,
                    Tensor::zeros(shape, dtype, k.device())?,
                ));
                slot.as_mut().expect("just set")
            }
        };
        ck.slice_set(&narrow_to(k, dtype)?, 1, self.own_len)?;
        cv.slice_set(&narrow_to(v, dtype)?, 1, self.own_len)?;
        let (own_k, own_v) = (ck.narrow(1, 0, needed)?, cv.narrow(1, 0, needed)?);
        let prefix = match &self.prefix {
            Some(p) if self.prefix_len > 0 => {
                let Some(Some((pk, pv))) = p.layers.get(layer) else {
                    candle_core::bail!("shared kv prefix has no layer {layer}");
                };
                Some(PrefixView {
                    k: pk.narrow(1, 0, self.prefix_len)?,
                    v: pv.narrow(1, 0, self.prefix_len)?,
                    key: (Arc::as_ptr(p) as usize, self.prefix_len),
                })
            }
            _ => None,
        };
        Ok(KvView {
            prefix,
            k: own_k,
            v: own_v,
        })
    }

    /// Make `n` appended tokens visible (called once per forward, after all layers).
    pub fn commit(&mut self, n: usize) {
        self.own_len += n;
    }

    /// Forget everything after the first `len` tokens (rollback).
    pub fn truncate(&mut self, len: usize) {
        if len <= self.prefix_len {
            self.prefix_len = len;
            self.own_len = 0;
        } else {
            self.own_len = self.own_len.min(len - self.prefix_len);
        }
    }

    /// Freeze the committed tokens into a [`SharedKv`] that many caches can
    /// start on. Own tokens are kept in place; a cache that itself starts on
    /// a prefix and added tokens is flattened into one copy.
    pub fn into_shared(self) -> Result<Arc<SharedKv>> {
        let len = self.len();
        match self.prefix {
            Some(p) if self.own_len == 0 && self.prefix_len == p.len => return Ok(p),
            Some(p) if self.own_len == 0 => {
                // A shorter view of a prefix: narrow it, sharing the storage.
                let layers = p
                    .layers
                    .iter()
                    .map(|kv| match kv {
                        Some((k, v)) => Ok(Some((k.narrow(1, 0, len)?, v.narrow(1, 0, len)?))),
                        None => Ok(None),
                    })
                    .collect::<Result<Vec<_>>>()?;
                return Ok(Arc::new(SharedKv {
                    layers,
                    len,
                    bytes: p.bytes,
                }));
            }
            _ => {}
        }
        let prefix = self.prefix.as_ref().map(|p| (p, self.prefix_len));
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, own) in self.layers.iter().enumerate() {
            let own = match own {
                Some((k, v)) => {
                    Some((k.narrow(1, 0, self.own_len)?, v.narrow(1, 0, self.own_len)?))
                }
                None => None,
            };
            let pre = match prefix {
                Some((p, n)) if n > 0 => match p.layers.get(i) {
                    Some(Some((k, v))) => Some((k.narrow(1, 0, n)?, v.narrow(1, 0, n)?)),
                    _ => candle_core::bail!("shared kv prefix has no layer {i}"),
                },
                _ => None,
            };
            layers.push(match (pre, own) {
                (None, own) => own,
                (Some(pre), None) => Some(pre),
                (Some((pk, pv)), Some((ok, ov))) => {
                    Some((Tensor::cat(&[&pk, &ok], 1)?, Tensor::cat(&[&pv, &ov], 1)?))
                }
            });
        }
        // Flattened rows are exact-size copies; own rows keep their capacity alive.
        let bytes = if prefix.is_some_and(|(_, n)| n > 0) {
            reserved(&layers)
        } else {
            reserved(&self.layers)
        };
        Ok(Arc::new(SharedKv { layers, len, bytes }))
    }

    fn grow(&mut self, needed: usize) -> Result<()> {
        let capacity = round_up(needed.max(self.capacity * 3 / 2));
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = copy_prefix(k, self.own_len, capacity)?;
            *v = copy_prefix(v, self.own_len, capacity)?;
        }
        self.capacity = capacity;
        Ok(())
    }
}

/// `t` as a contiguous tensor of `dtype`. f32 → f16/bf16 on the CPU is done
/// here, single-threaded: a decode step stores one token per layer per
/// sequence, far too little for candle's parallel cast to pay for waking
/// the thread pool hundreds of times per step.
fn narrow_to(t: &Tensor, dtype: DType) -> Result<Tensor> {
    use half::slice::HalfFloatSliceExt;
    if t.dtype() == dtype {
        return t.contiguous();
    }
    if t.dtype() != DType::F32 || !t.device().is_cpu() {
        return t.to_dtype(dtype)?.contiguous();
    }
    let src: Vec<f32> = t.flatten_all()?.to_vec1()?;
    match dtype {
        DType::F16 => {
            let mut out = vec![half::f16::ZERO; src.len()];
            out.convert_from_f32_slice(&src);
            Tensor::from_vec(out, t.shape(), t.device())
        }
        DType::BF16 => {
            let mut out = vec![half::bf16::ZERO; src.len()];
            out.convert_from_f32_slice(&src);
            Tensor::from_vec(out, t.shape(), t.device())
        }
        _ => t.to_dtype(dtype)?.contiguous(),
    }
}

fn reserved(layers: &[Option<(Tensor, Tensor)>]) -> usize {
    layers
        .iter()
        .flatten()
        .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
        .sum()
}

fn round_up(n: usize) -> usize {
    n.div_ceil(GROW_STEP) * GROW_STEP
}

/// A (heads, capacity, d) tensor whose first `len` positions per head are
/// `t`'s. On CPU this is one pass over the prefix (no zero-fill of the copied
/// part, no intermediate contiguous copy).
fn copy_prefix(t: &Tensor, len: usize, capacity: usize) -> Result<Tensor> {
    let (h, old_cap, d) = t.dims3()?;
    if t.device().is_cpu() && t.is_contiguous() {
        let (storage, layout) = t.storage_and_layout();
        if let candle_core::Storage::Cpu(cpu) = &*storage {
            let off = layout.start_offset();
            macro_rules! copy {
                ($ty:ty) => {{
                    let src = cpu.as_slice::<$ty>()?;
                    let mut out: Vec<$ty> = Vec::with_capacity(h * capacity * d);
                    for head in 0..h {
                        let start = off + head * old_cap * d;
                        out.extend_from_slice(&src[start..start + len * d]);
                        out.resize(
                            (head + 1) * capacity * d,
                            <$ty as candle_core::WithDType>::from_f64(0.0),
                        );
                    }
                    return Tensor::from_vec(out, (h, capacity, d), t.device());
                }};
            }
            match t.dtype() {
                candle_core::DType::F32 => copy!(f32),
                candle_core::DType::BF16 => copy!(half::bf16),
                candle_core::DType::F16 => copy!(half::f16),
                candle_core::DType::F64 => copy!(f64),
                _ => {}
            }
        }
    }
    let out = Tensor::zeros((h, capacity, d), t.dtype(), t.device())?;
    if len > 0 {
        out.slice_set(&t.narrow(1, 0, len)?.contiguous()?, 1, 0)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn kv(n: usize, seed: f32) -> Tensor {
        let data: Vec<f32> = (0..2 * n * 3).map(|i| seed + i as f32).collect();
        Tensor::from_vec(data, (2, n, 3), &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a.to_dtype(DType::F32).unwrap() - b.to_dtype(DType::F32).unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn filled(n: usize, seed: f32) -> KvCache {
        let mut c = KvCache::new(1);
        c.append(0, &kv(n, seed), &kv(n, seed + 100.0)).unwrap();
        c.commit(n);
        c
    }

    #[test]
    fn caches_on_a_shared_prefix_read_it_in_place_and_append_privately() {
        let shared = filled(5, 0.0).into_shared().unwrap();
        assert_eq!(shared.len(), 5);
        let mut a = KvCache::on_prefix(shared.clone(), 5);
        let mut b = KvCache::on_prefix(shared.clone(), 5);
        assert_eq!((a.len(), a.reserved_bytes()), (5, 0));
        let va = a.append(0, &kv(1, 1000.0), &kv(1, 2000.0)).unwrap();
        let vb = b.append(0, &kv(1, 7.0), &kv(1, 8.0)).unwrap();
        let (pa, pb) = (va.prefix.clone().unwrap(), vb.prefix.clone().unwrap());
        assert_eq!(pa.key, pb.key, "one prefix, one identity");
        assert_eq!(max_diff(&pa.k, &kv(5, 0.0)), 0.0);
        assert_eq!(max_diff(&pa.v, &kv(5, 100.0)), 0.0);
        assert_eq!(max_diff(&va.k, &kv(1, 1000.0)), 0.0);
        assert_eq!(max_diff(&vb.k, &kv(1, 7.0)), 0.0);
        let (jk, _) = va.joined(DType::F32).unwrap();
        let want = Tensor::cat(&[&kv(5, 0.0), &kv(1, 1000.0)], 1).unwrap();
        assert_eq!(max_diff(&jk, &want), 0.0);
        a.commit(1);
        assert_eq!(a.len(), 6);
        assert!(a.reserved_bytes() > 0);
        // Rolling back into the prefix leaves the shared rows alone.
        a.truncate(3);
        assert_eq!(a.len(), 3);
        let v = a.append(0, &kv(1, 0.0), &kv(1, 0.0)).unwrap();
        assert_eq!(v.prefix.unwrap().k.dim(1).unwrap(), 3);
        assert_eq!(shared.len(), 5);
    }

    #[test]
    fn freezing_a_cache_on_a_prefix_flattens_prefix_and_own_rows() {
        let shared = filled(4, 0.0).into_shared().unwrap();
        let mut c = KvCache::on_prefix(shared, 3);
        c.append(0, &kv(2, 50.0), &kv(2, 60.0)).unwrap();
        c.commit(2);
        let flat = c.into_shared().unwrap();
        assert_eq!(flat.len(), 5);
        let mut d = KvCache::on_prefix(flat, 5);
        let p = d
            .append(0, &kv(1, 0.0), &kv(1, 0.0))
            .unwrap()
            .prefix
            .unwrap();
        let want = Tensor::cat(&[&kv(4, 0.0).narrow(1, 0, 3).unwrap(), &kv(2, 50.0)], 1).unwrap();
        assert_eq!(max_diff(&p.k, &want), 0.0);
    }

    #[test]
    fn half_precision_storage_converts_on_append() {
        let mut c = KvCache::with_dtype(1, Some(DType::F16));
        let k = (kv(3, 0.5) / 7.0).unwrap();
        let view = c.append(0, &k, &k).unwrap();
        assert_eq!(view.k.dtype(), DType::F16);
        assert_eq!(c.reserved_bytes(), 2 * 2 * 256 * 3 * 2);
        let (jk, _) = view.joined(DType::F32).unwrap();
        assert_eq!(jk.dtype(), DType::F32);
        assert!(max_diff(&jk, &k) < 2e-3);
    }

    #[test]
    fn growth_keeps_contents_across_reallocations() {
        let mut c = KvCache::new(2);
        let mut all = Vec::new();
        for step in 0..3 {
            let n = 200;
            let (k, v) = (kv(n, step as f32 * 10.0), kv(n, -(step as f32)));
            for layer in 0..2 {
                c.append(layer, &k, &v).unwrap();
            }
            c.commit(n);
            all.push(k);
        }
        let expected = Tensor::cat(&all, 1).unwrap();
        let view = c.append(0, &kv(1, 0.0), &kv(1, 0.0)).unwrap();
        assert_eq!(max_diff(&view.k.narrow(1, 0, 600).unwrap(), &expected), 0.0);
        assert!(c.reserved_bytes() >= 2 * 2 * 601 * 3 * DType::F32.size_in_bytes());
    }
}
