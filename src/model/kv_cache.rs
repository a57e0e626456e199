//! Per-sequence KV cache owned by the engine: one (K, V) pair per layer, laid
//! out (kv_heads, capacity, head_dim) so a step appends in place and attention
//! reads a prefix view without copying.

use candle_core::{Result, Tensor};

#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    /// Tokens committed (visible to attention).
    len: usize,
    capacity: usize,
}

/// Capacity grows in steps of this many tokens (rounded up), so a decode step
/// rarely reallocates and a short prompt does not reserve a whole context.
const GROW_STEP: usize = 256;

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            len: 0,
            capacity: 0,
        }
    }

    /// Tokens whose K/V are stored.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes currently reserved (capacity, not just length).
    pub fn reserved_bytes(&self) -> usize {
        self.layers
            .iter()
            .flatten()
            .map(|(k, v)| (k.elem_count() + v.elem_count()) * k.dtype().size_in_bytes())
            .sum()
    }

    /// Bytes used by the committed tokens.
    pub fn used_bytes(&self) -> usize {
        match self.layers.iter().flatten().next() {
            Some((k, _)) if self.capacity > 0 => self.reserved_bytes() / self.capacity * self.len,
            _ => 0,
        }
    }

    /// Write `k`, `v` (kv_heads, n, head_dim) for layer `layer` at positions
    /// `len..len + n` and return the K/V views over `0..len + n`. The new
    /// tokens become visible to later calls only after [`KvCache::commit`].
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (kv_heads, n, head_dim) = k.dims3()?;
        let needed = self.len + n;
        if needed > self.capacity {
            self.grow(needed)?;
        }
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| candle_core::Error::Msg(format!("kv cache has no layer {layer}")))?;
        let (ck, cv) = match slot {
            Some(kv) => kv,
            None => {
                let shape = (kv_heads, self.capacity, head_dim);
                *slot = Some((
                    Tensor::zeros(shape, k.dtype(), k.device())?,
                    Tensor::zeros(shape, k.dtype(), k.device())?,
                ));
                slot.as_mut().expect("just set")
            }
        };
        ck.slice_set(&k.contiguous()?, 1, self.len)?;
        cv.slice_set(&v.contiguous()?, 1, self.len)?;
        Ok((ck.narrow(1, 0, needed)?, cv.narrow(1, 0, needed)?))
    }

    /// Make `n` appended tokens visible (called once per forward, after all layers).
    pub fn commit(&mut self, n: usize) {
        self.len += n;
    }

    /// Forget everything after the first `len` tokens (prefix reuse, rollback).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// An independent copy of the committed prefix (fan a prefill out to rollouts).
    pub fn fork(&self) -> Result<Self> {
        let capacity = round_up(self.len.max(1) + GROW_STEP / 2);
        let mut layers = Vec::with_capacity(self.layers.len());
        for kv in &self.layers {
            layers.push(match kv {
                None => None,
                Some((k, v)) => Some((
                    copy_prefix(k, self.len, capacity)?,
                    copy_prefix(v, self.len, capacity)?,
                )),
            });
        }
        Ok(Self {
            layers,
            len: self.len,
            capacity,
        })
    }

    fn grow(&mut self, needed: usize) -> Result<()> {
        let capacity = round_up(needed.max(self.capacity * 3 / 2));
        for (k, v) in self.layers.iter_mut().flatten() {
            *k = copy_prefix(k, self.len, capacity)?;
            *v = copy_prefix(v, self.len, capacity)?;
        }
        self.capacity = capacity;
        Ok(())
    }
}

fn round_up(n: usize) -> usize {
    n.div_ceil(GROW_STEP) * GROW_STEP
}

/// A (heads, capacity, d) tensor whose first `len` positions per head are
/// `t`'s. On CPU this is one pass over the prefix (no zero-fill of the copied
/// part, no intermediate contiguous copy): forking a prompt's KV to N
/// rollouts is on the time-to-first-token path.
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
    use candle_core::{DType, Device};

    fn kv(n: usize, seed: f32) -> Tensor {
        let data: Vec<f32> = (0..2 * n * 3).map(|i| seed + i as f32).collect();
        Tensor::from_vec(data, (2, n, 3), &Device::Cpu).unwrap()
    }

    #[test]
    fn fork_copies_the_committed_prefix_and_is_independent() {
        let mut c = KvCache::new(1);
        let (k, v) = (kv(5, 0.0), kv(5, 100.0));
        c.append(0, &k, &v).unwrap();
        c.commit(5);
        let mut f = c.fork().unwrap();
        assert_eq!(f.len(), 5);
        let (fk, fv) = f.append(0, &kv(1, 1000.0), &kv(1, 2000.0)).unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert_eq!(diff(&fk.narrow(1, 0, 5).unwrap(), &k), 0.0);
        assert_eq!(diff(&fv.narrow(1, 0, 5).unwrap(), &v), 0.0);
        // The original did not see the fork's token.
        let (ok, _) = c.append(0, &kv(1, 7.0), &kv(1, 8.0)).unwrap();
        assert_eq!(diff(&ok.narrow(1, 5, 1).unwrap(), &kv(1, 7.0)), 0.0);
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
        let (k, _) = c.append(0, &kv(1, 0.0), &kv(1, 0.0)).unwrap();
        let got = k.narrow(1, 0, 600).unwrap();
        let d = (got - expected)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0);
        assert!(c.reserved_bytes() >= 2 * 2 * 601 * 3 * DType::F32.size_in_bytes());
    }
}
