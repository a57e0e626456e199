//! The layers of the decoder ([`DecoderLayer`]: pre-norm attention and
//! SwiGLU MLP, [`RmsNorm`], GQA [`Attention`] with rotary embeddings) and
//! the per-forward state they share ([`SeqInput`], the per-sequence masks
//! and caches, the batch's rotary tables). Each layer has an inference
//! path (fused kernels, KV caches) and a training path (differentiable
//! ops); [`super::transformer`] stacks them.

use candle_core::{Result, Tensor, D};
use candle_nn::VarBuilder;

use super::decode_attention::{self, DecodeItem};
use super::kv_cache::{KvCache, KvView};
use super::linear::Linear;
use super::train_ops;
use super::{Architecture, Mode, ModelConfig};

#[derive(Debug, Clone)]
pub struct RmsNorm {
    pub weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    pub(super) fn load(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get(size, "weight")?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        match mode {
            Mode::Inference => candle_nn::ops::rms_norm(x, &self.weight, self.eps as f32),
            Mode::Train => train_ops::rms_norm(x, &self.weight, self.eps),
            Mode::TrainComposed => train_ops::composed::rms_norm(x, &self.weight, self.eps),
        }
    }
}

fn linear(
    vb: &VarBuilder,
    in_dim: usize,
    out_dim: usize,
    bias: bool,
    norm_vb: &VarBuilder,
) -> Result<Linear> {
    let weight = vb.get((out_dim, in_dim), "weight")?;
    let bias = if bias {
        Some(norm_vb.get(out_dim, "bias")?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}

/// Weights come from `vb` in the storage dtype; norms and biases from `vb_f32`
/// in the activation dtype.
#[derive(Clone)]
pub struct Loaders<'a> {
    pub weights: VarBuilder<'a>,
    pub small: VarBuilder<'a>,
}

impl<'a> Loaders<'a> {
    pub(super) fn pp(&self, s: &str) -> Self {
        Self {
            weights: self.weights.pp(s),
            small: self.small.pp(s),
        }
    }
    pub(super) fn linear(
        &self,
        name: &str,
        in_dim: usize,
        out_dim: usize,
        bias: bool,
    ) -> Result<Linear> {
        linear(
            &self.weights.pp(name),
            in_dim,
            out_dim,
            bias,
            &self.small.pp(name),
        )
    }
    pub(super) fn norm(&self, name: &str, size: usize, eps: f64) -> Result<RmsNorm> {
        RmsNorm::load(size, eps, self.small.pp(name))
    }
}

#[derive(Debug, Clone)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    pub(super) fn load(cfg: &ModelConfig, arch: Architecture, vb: &Loaders) -> Result<Self> {
        let (h, kvh, d) = (cfg.num_attention_heads, cfg.num_kv_heads(), cfg.head_dim());
        let bias = cfg.qkv_bias();
        let (q_norm, k_norm) = if arch == Architecture::Qwen3 {
            (
                Some(vb.norm("q_norm", d, cfg.rms_norm_eps)?),
                Some(vb.norm("k_norm", d, cfg.rms_norm_eps)?),
            )
        } else {
            (None, None)
        };
        Ok(Self {
            q_proj: vb.linear("q_proj", cfg.hidden_size, h * d, bias)?,
            k_proj: vb.linear("k_proj", cfg.hidden_size, kvh * d, bias)?,
            v_proj: vb.linear("v_proj", cfg.hidden_size, kvh * d, bias)?,
            // o_proj never has a bias in these families.
            o_proj: vb.linear("o_proj", h * d, cfg.hidden_size, false)?,
            q_norm,
            k_norm,
            num_heads: h,
            num_kv_heads: kvh,
            head_dim: d,
        })
    }

    /// `x`: (total_tokens, hidden) for the whole ragged batch.
    pub(super) fn forward(
        &self,
        x: &Tensor,
        batch: &mut BatchState,
        layer: usize,
        mode: Mode,
    ) -> Result<Tensor> {
        let total = x.dim(0)?;
        let (h, kvh, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let mut q = self.q_proj.forward(x, mode)?;
        let mut k = self.k_proj.forward(x, mode)?;
        let v = self.v_proj.forward(x, mode)?;
        if let Some(n) = &self.q_norm {
            q = n
                .forward(&q.reshape((total * h, d))?, mode)?
                .reshape((total, h * d))?;
        }
        if let Some(n) = &self.k_norm {
            k = n
                .forward(&k.reshape((total * kvh, d))?, mode)?
                .reshape((total, kvh * d))?;
        }
        // Rotary embeddings for every token of the batch in one op: each row
        // has its own position, gathered into `batch.cos` / `batch.sin`.
        let q = rope_rows(&q.reshape((total, h, d))?, &batch.cos, &batch.sin, mode)?;
        let k = rope_rows(&k.reshape((total, kvh, d))?, &batch.cos, &batch.sin, mode)?;
        let v = v.reshape((total, kvh, d))?;
        let group = h / kvh;
        let scale = 1.0 / (d as f64).sqrt();
        // Per sequence: its attention output, or (inference, one new token,
        // no mask) a slot filled by the fused decode kernel afterwards.
        let mut outs: Vec<Option<Tensor>> = Vec::with_capacity(batch.seqs.len());
        let mut decode: Vec<(usize, DecodeItem)> = Vec::new();
        for seq in batch.seqs.iter_mut() {
            let len = seq.len;
            // (len, n, d) -> (n, len, d); a free reshape for one token.
            let heads_first = |t: &Tensor, n: usize| -> Result<Tensor> {
                let rows = t.narrow(0, seq.offset, len)?;
                if len == 1 {
                    rows.reshape((n, 1, d))
                } else {
                    rows.transpose(0, 1)?.contiguous()
                }
            };
            let qs = heads_first(&q, h)?;
            let ks = heads_first(&k, kvh)?;
            let vs = heads_first(&v, kvh)?;
            let kv = match seq.cache.as_deref_mut() {
                Some(cache) => cache.append(layer, &ks, &vs)?,
                None => KvView {
                    prefix: None,
                    k: ks,
                    v: vs,
                },
            };
            let item = DecodeItem { q: qs, kv };
            if mode == Mode::Inference
                && len == 1
                && seq.mask.is_none()
                && decode_attention::supported(&item)
            {
                decode.push((outs.len(), item));
                outs.push(None);
                continue;
            }
            let DecodeItem { q: qs, kv } = item;
            let (keys, values) = kv.joined(qs.dtype())?;
            // Query heads sharing a KV head are stacked: (kvh, group*len, d).
            let qs = qs.reshape((kvh, group * len, d))?;
            let mut scores = (qs.matmul(&keys.t()?)? * scale)?;
            if let Some(mask) = &seq.mask {
                scores = scores.broadcast_add(mask)?;
            }
            let probs = match mode {
                Mode::Inference => candle_nn::ops::softmax_last_dim(&scores)?,
                Mode::Train | Mode::TrainComposed => candle_nn::ops::softmax(&scores, D::Minus1)?,
            };
            let out = probs.matmul(&values)?; // (kvh, group*len, d)
            outs.push(Some(
                out.reshape((h, len, d))?
                    .transpose(0, 1)?
                    .reshape((len, h * d))?,
            ));
        }
        let attn = if decode.is_empty() {
            let mut outs: Vec<Tensor> = outs.into_iter().flatten().collect();
            if outs.len() == 1 {
                outs.pop().expect("one output")
            } else {
                Tensor::cat(&outs, 0)?
            }
        } else {
            let (slots, items): (Vec<usize>, Vec<DecodeItem>) = decode.into_iter().unzip();
            let rows = decode_attention::attend(&items, h, kvh, d, scale as f32)?;
            let rows = Tensor::from_vec(rows, (items.len(), h * d), x.device())?;
            if slots.len() == outs.len() {
                rows
            } else {
                for (r, slot) in slots.iter().enumerate() {
                    outs[*slot] = Some(rows.narrow(0, r, 1)?);
                }
                let outs: Vec<Tensor> = outs.into_iter().flatten().collect();
                Tensor::cat(&outs, 0)?
            }
        };
        self.o_proj.forward(&attn, mode)
    }
}

impl Attention {
    /// Training forward without KV caches, as few graph nodes as possible:
    /// one GEMM over the concatenated q/k/v weights, then
    /// [`train_ops::qkv_attention`] (q/k norms, rope, causal attention over
    /// the whole ragged batch). Returns the attention output before `o_proj`.
    pub(super) fn forward_fused(&self, x: &Tensor, batch: &BatchState) -> Result<Tensor> {
        let dtype = x.dtype();
        let w = Tensor::cat(
            &[
                self.q_proj.train_weight(dtype)?,
                self.k_proj.train_weight(dtype)?,
                self.v_proj.train_weight(dtype)?,
            ],
            0,
        )?;
        let mut qkv = train_ops::linear(x, &w)?;
        if let (Some(bq), Some(bk), Some(bv)) =
            (&self.q_proj.bias, &self.k_proj.bias, &self.v_proj.bias)
        {
            qkv = qkv.broadcast_add(&Tensor::cat(&[bq, bk, bv], 0)?)?;
        }
        let norms = match (&self.q_norm, &self.k_norm) {
            (Some(q), Some(k)) => Some(train_ops::QkNorms {
                q: &q.weight,
                k: &k.weight,
                eps: q.eps,
            }),
            _ => None,
        };
        let heads = train_ops::QkvHeads {
            heads: self.num_heads,
            kv_heads: self.num_kv_heads,
            head_dim: self.head_dim,
        };
        let lens: Vec<usize> = batch.seqs.iter().map(|s| s.len).collect();
        let scale = 1.0 / (self.head_dim as f64).sqrt();
        train_ops::qkv_attention(&qkv, norms, (&batch.cos, &batch.sin), heads, &lens, scale)
    }
}

/// Rotary embedding of `x` (tokens, heads, d), each token at its own
/// position; `cos`/`sin` are (tokens, d/2).
fn rope_rows(x: &Tensor, cos: &Tensor, sin: &Tensor, mode: Mode) -> Result<Tensor> {
    match mode {
        Mode::Inference => {
            candle_nn::rotary_emb::rope_thd(&x.unsqueeze(0)?.contiguous()?, cos, sin)?.squeeze(0)
        }
        Mode::Train => train_ops::rope(x, cos, sin),
        Mode::TrainComposed => train_ops::composed::rope(x, cos, sin),
    }
}

#[derive(Debug, Clone)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    pub(super) fn load(cfg: &ModelConfig, vb: &Loaders) -> Result<Self> {
        let (hs, is) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: vb.linear("gate_proj", hs, is, false)?,
            up_proj: vb.linear("up_proj", hs, is, false)?,
            down_proj: vb.linear("down_proj", is, hs, false)?,
        })
    }

    pub(super) fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let gate = self.gate_proj.forward(x, mode)?;
        let up = self.up_proj.forward(x, mode)?;
        let act = match mode {
            Mode::Train => train_ops::silu_mul(&gate, &up)?,
            Mode::Inference | Mode::TrainComposed => (candle_nn::ops::silu(&gate)? * up)?,
        };
        self.down_proj.forward(&act, mode)
    }
}

impl Mlp {
    /// Training forward: one GEMM over the concatenated gate/up weights and
    /// [`train_ops::silu_mul_packed`]; returns the activation before `down_proj`.
    pub(super) fn forward_fused(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        let w = Tensor::cat(
            &[
                self.gate_proj.train_weight(dtype)?,
                self.up_proj.train_weight(dtype)?,
            ],
            0,
        )?;
        train_ops::silu_mul_packed(&train_ops::linear(x, &w)?)
    }
}

#[derive(Debug, Clone)]
pub struct DecoderLayer {
    pub self_attn: Attention,
    pub mlp: Mlp,
    pub input_layernorm: RmsNorm,
    pub post_attention_layernorm: RmsNorm,
}

impl DecoderLayer {
    pub(super) fn load(cfg: &ModelConfig, arch: Architecture, vb: &Loaders) -> Result<Self> {
        Ok(Self {
            self_attn: Attention::load(cfg, arch, &vb.pp("self_attn"))?,
            mlp: Mlp::load(cfg, &vb.pp("mlp"))?,
            input_layernorm: vb.norm("input_layernorm", cfg.hidden_size, cfg.rms_norm_eps)?,
            post_attention_layernorm: vb.norm(
                "post_attention_layernorm",
                cfg.hidden_size,
                cfg.rms_norm_eps,
            )?,
        })
    }

    pub(super) fn forward(
        &self,
        x: &Tensor,
        batch: &mut BatchState,
        layer: usize,
        mode: Mode,
    ) -> Result<Tensor> {
        if mode == Mode::Train && batch.fused_attention && self.fusable() {
            return self.forward_fused(x, batch);
        }
        let h = self.input_layernorm.forward(x, mode)?;
        let x = (x + self.self_attn.forward(&h, batch, layer, mode)?)?;
        let h = self.post_attention_layernorm.forward(&x, mode)?;
        x + self.mlp.forward(&h, mode)?
    }
}

impl DecoderLayer {
    /// Whether [`DecoderLayer::forward_fused`] applies: dense weights, and
    /// no bias on the output projections.
    fn fusable(&self) -> bool {
        let (a, m) = (&self.self_attn, &self.mlp);
        [
            &a.q_proj,
            &a.k_proj,
            &a.v_proj,
            &a.o_proj,
            &m.gate_proj,
            &m.up_proj,
            &m.down_proj,
        ]
        .iter()
        .all(|l| l.dense().is_some())
            && a.o_proj.bias.is_none()
            && m.down_proj.bias.is_none()
    }

    /// [`Mode::Train`] without KV caches: the layer in eight graph nodes
    /// (two norms, the fused attention core and activation, four GEMMs, the
    /// residual adds folded into the output projections).
    pub(super) fn forward_fused(&self, x: &Tensor, batch: &BatchState) -> Result<Tensor> {
        let dtype = x.dtype();
        let h = self.input_layernorm.forward(x, Mode::Train)?;
        let attn = self.self_attn.forward_fused(&h, batch)?;
        let o = self.self_attn.o_proj.train_weight(dtype)?;
        let x = train_ops::linear_residual(&attn, &o, x)?;
        let h = self.post_attention_layernorm.forward(&x, Mode::Train)?;
        let act = self.mlp.forward_fused(&h)?;
        let down = self.mlp.down_proj.train_weight(dtype)?;
        train_ops::linear_residual(&act, &down, &x)
    }
}

/// One sequence of a ragged batch: the new tokens to run and, for inference,
/// the KV cache holding everything before them.
pub struct SeqInput<'a> {
    pub tokens: &'a [u32],
    pub cache: Option<&'a mut KvCache>,
}

/// Per-sequence state of one forward, shared by all layers.
pub(super) struct SeqState<'a> {
    pub(super) offset: usize,
    pub(super) len: usize,
    pub(super) mask: Option<Tensor>,
    pub(super) cache: Option<&'a mut KvCache>,
}

pub(super) struct BatchState<'a> {
    pub(super) seqs: Vec<SeqState<'a>>,
    /// Training without KV caches: each layer runs
    /// [`DecoderLayer::forward_fused`] (no per-sequence masks).
    pub(super) fused_attention: bool,
    /// Rotary tables for every token of the batch, (tokens, head_dim/2).
    pub(super) cos: Tensor,
    pub(super) sin: Tensor,
}
