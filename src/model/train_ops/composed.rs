//! The same ops composed from candle's differentiable primitives: the
//! fallback for devices and dtypes without a fused kernel, the reference the
//! fused ops are tested against, and the whole forward of
//! [`crate::model::Mode::TrainComposed`].

use candle_core::{DType, Device, Result, Tensor, D};

/// `x / sqrt(mean(x²) + eps) · w` over the last dimension.
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    candle_nn::ops::rms_norm_slow(x, w, eps as f32)
}

/// Rotate-half rotary embedding of x (tokens, heads, d) with cos/sin (tokens, d/2).
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    // rope_slow wants (batch, heads, tokens, d).
    let x = x.unsqueeze(0)?.transpose(1, 2)?;
    candle_nn::rotary_emb::rope_slow(&x, cos, sin)?
        .transpose(1, 2)?
        .squeeze(0)
}

/// `silu(gate) · up`.
pub fn silu_mul(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    candle_nn::ops::silu(gate)? * up
}

/// `x · wᵀ`.
pub fn linear(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.matmul(&w.t()?)
}

/// `log_softmax(logits / temperature)[t, targets[t]]`.
pub fn token_logprobs(logits: &Tensor, targets: &Tensor, temperature: f64) -> Result<Tensor> {
    let z = if temperature == 1.0 {
        logits.clone()
    } else {
        (logits / temperature)?
    };
    candle_nn::ops::log_softmax(&z, D::Minus1)?
        .gather(&targets.to_dtype(DType::U32)?.unsqueeze(1)?, 1)?
        .squeeze(1)
}

/// Causal attention per packed sequence (q (T, h, d), k/v (T, kvh, d)):
/// per sequence, query heads of one KV head stacked, an additive causal
/// mask, softmax, and the concatenated outputs (T, h, d).
pub fn causal_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    seq_lens: &[usize],
    scale: f64,
) -> Result<Tensor> {
    let (_t, h, d) = q.dims3()?;
    let kvh = k.dim(1)?;
    let group = h / kvh;
    let mut outs = Vec::with_capacity(seq_lens.len());
    let mut offset = 0;
    for &len in seq_lens {
        let heads_first = |t: &Tensor| -> Result<Tensor> {
            t.narrow(0, offset, len)?.transpose(0, 1)?.contiguous()
        };
        let (qs, ks, vs) = (heads_first(q)?, heads_first(k)?, heads_first(v)?);
        let qs = qs.reshape((kvh, group * len, d))?;
        let scores = (qs.matmul(&ks.t()?)? * scale)?;
        let mask = causal_mask(len, group, q.dtype(), q.device())?;
        let probs = candle_nn::ops::softmax(&scores.broadcast_add(&mask)?, D::Minus1)?;
        let out = probs.matmul(&vs)?; // (kvh, group·len, d)
        outs.push(out.reshape((h, len, d))?.transpose(0, 1)?);
        offset += len;
    }
    Tensor::cat(&outs, 0)
}

/// Additive causal mask for `len` queries, tiled for `groups` stacked query
/// heads: (groups·len, len).
fn causal_mask(len: usize, groups: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let mut data = Vec::with_capacity(groups * len * len);
    for _ in 0..groups {
        for i in 0..len {
            data.extend((0..len).map(|j| if j > i { f32::NEG_INFINITY } else { 0.0 }));
        }
    }
    Tensor::from_vec(data, (groups * len, len), device)?.to_dtype(dtype)
}
