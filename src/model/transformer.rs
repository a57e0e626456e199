//! Decoder-only transformer covering Qwen3 (`Qwen3ForCausalLM`, q/k RMSNorm),
//! Qwen2 (`Qwen2ForCausalLM`, qkv bias) and Llama (`LlamaForCausalLM`, Llama-3
//! rope scaling), following the HF `modeling_*.py` references: pre-norm
//! blocks, GQA attention with rotary embeddings, SwiGLU MLP, optional tied
//! embeddings and an optional scalar `score` head (`*ForSequenceClassification`).
//!
//! One struct serves inference and training. A forward takes a *ragged* batch:
//! each sequence brings its own new tokens and (optionally) its own KV cache,
//! so prefill, batched decode of many rollouts and training on variable-length
//! sequences are the same code. Linear layers run over all rows of the batch at
//! once; attention runs per sequence. [`Mode`] picks fused, gradient-free
//! kernels for inference or differentiable ops for training.

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::decode_attention::{self, DecodeItem};
use super::kv_cache::{KvCache, KvView};
use super::linear::Linear;
use super::rope::RotaryEmbedding;
use super::train_ops;
use super::{Architecture, Mode, ModelConfig};

#[derive(Debug, Clone)]
pub struct RmsNorm {
    pub weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn load(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
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
    fn pp(&self, s: &str) -> Self {
        Self {
            weights: self.weights.pp(s),
            small: self.small.pp(s),
        }
    }
    fn linear(&self, name: &str, in_dim: usize, out_dim: usize, bias: bool) -> Result<Linear> {
        linear(
            &self.weights.pp(name),
            in_dim,
            out_dim,
            bias,
            &self.small.pp(name),
        )
    }
    fn norm(&self, name: &str, size: usize, eps: f64) -> Result<RmsNorm> {
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
    fn load(cfg: &ModelConfig, arch: Architecture, vb: &Loaders) -> Result<Self> {
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
    fn forward(
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
    fn forward_fused(&self, x: &Tensor, batch: &BatchState) -> Result<Tensor> {
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
    fn load(cfg: &ModelConfig, vb: &Loaders) -> Result<Self> {
        let (hs, is) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: vb.linear("gate_proj", hs, is, false)?,
            up_proj: vb.linear("up_proj", hs, is, false)?,
            down_proj: vb.linear("down_proj", is, hs, false)?,
        })
    }

    fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
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
    fn forward_fused(&self, x: &Tensor) -> Result<Tensor> {
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
    fn load(cfg: &ModelConfig, arch: Architecture, vb: &Loaders) -> Result<Self> {
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

    fn forward(
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
    fn forward_fused(&self, x: &Tensor, batch: &BatchState) -> Result<Tensor> {
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
struct SeqState<'a> {
    offset: usize,
    len: usize,
    mask: Option<Tensor>,
    cache: Option<&'a mut KvCache>,
}

struct BatchState<'a> {
    seqs: Vec<SeqState<'a>>,
    /// Training without KV caches: each layer runs
    /// [`DecoderLayer::forward_fused`] (no per-sequence masks).
    fused_attention: bool,
    /// Rotary tables for every token of the batch, (tokens, head_dim/2).
    cos: Tensor,
    sin: Tensor,
}

/// Which positions' outputs a forward returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// The last new token of each sequence: (num_seqs, ·). Decode and prefill.
    Last,
    /// Every new token, sequences concatenated: (total_tokens, ·). Training, prompt logprobs.
    All,
}

#[derive(Debug, Clone)]
pub struct Transformer {
    pub embed_tokens: Tensor,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// Language-model head; shares `embed_tokens` when embeddings are tied.
    pub lm_head: Option<Linear>,
    /// Scalar head of reward models (`score.weight`, num_labels rows).
    pub score: Option<Linear>,
    rotary: RotaryEmbedding,
    cfg: ModelConfig,
    arch: Architecture,
    act_dtype: DType,
    /// Storage dtype of new KV caches (`None`: the activation dtype).
    kv_dtype: Option<DType>,
    device: Device,
}

impl Transformer {
    /// Build from a [`VarBuilder`] whose paths mirror HF checkpoint keys.
    /// `loaders.weights` yields matrices in their storage dtype, `loaders.small`
    /// norms and biases in the activation dtype.
    pub fn load(cfg: &ModelConfig, loaders: Loaders, act_dtype: DType) -> Result<Self> {
        let arch = cfg
            .architecture()
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let device = loaders.weights.device().clone();
        let m = loaders.pp("model");
        let embed_tokens = m
            .weights
            .pp("embed_tokens")
            .get((cfg.vocab_size, cfg.hidden_size), "weight")?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            layers.push(DecoderLayer::load(
                cfg,
                arch,
                &m.pp(&format!("layers.{i}")),
            )?);
        }
        let norm = m.norm("norm", cfg.hidden_size, cfg.rms_norm_eps)?;
        let is_reward_model = cfg
            .architectures
            .iter()
            .any(|a| a.ends_with("ForSequenceClassification"));
        let score = if is_reward_model {
            let labels = cfg.num_labels.unwrap_or(1);
            Some(loaders.linear("score", cfg.hidden_size, labels, false)?)
        } else {
            None
        };
        let lm_head = if is_reward_model {
            None
        } else if cfg.tie_word_embeddings || !loaders.weights.contains_tensor("lm_head.weight") {
            Some(Linear::new(embed_tokens.clone(), None))
        } else {
            Some(loaders.linear("lm_head", cfg.hidden_size, cfg.vocab_size, false)?)
        };
        let rotary = RotaryEmbedding::new(cfg, cfg.max_position_embeddings, &device)?;
        Ok(Self {
            embed_tokens,
            layers,
            norm,
            lm_head,
            score,
            rotary,
            cfg: cfg.clone(),
            arch,
            act_dtype,
            kv_dtype: None,
            device,
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    pub fn architecture(&self) -> Architecture {
        self.arch
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn activation_dtype(&self) -> DType {
        self.act_dtype
    }

    /// Longest sequence (prompt + generated) the position table covers.
    pub fn max_positions(&self) -> usize {
        self.rotary.max_positions()
    }

    /// An empty KV cache in this model's KV storage dtype.
    pub fn new_cache(&self) -> KvCache {
        KvCache::with_dtype(self.layers.len(), self.kv_dtype)
    }

    /// Store new KV caches as `mode` resolves for this model's weights.
    pub fn set_kv_dtype(&mut self, mode: super::KvCacheDType) {
        let dtype = mode.resolve(self.embed_tokens.dtype(), self.act_dtype);
        self.kv_dtype = Some(dtype);
    }

    /// Storage dtype of new KV caches.
    pub fn kv_dtype(&self) -> DType {
        self.kv_dtype.unwrap_or(self.act_dtype)
    }

    /// Run the new tokens of each sequence and return final-norm hidden
    /// states at `positions`. Caches are appended to and committed.
    pub fn forward_hidden(
        &self,
        seqs: &mut [SeqInput],
        positions: Positions,
        mode: Mode,
    ) -> Result<Tensor> {
        let mut ids = Vec::new();
        let mut states = Vec::with_capacity(seqs.len());
        let mut last_rows = Vec::with_capacity(seqs.len());
        let mut positions_all: Vec<u32> = Vec::new();
        let fused_attention = mode == Mode::Train && seqs.iter().all(|s| s.cache.is_none());
        for seq in seqs.iter_mut() {
            let len = seq.tokens.len();
            if len == 0 {
                candle_core::bail!("every sequence in a forward needs at least one new token");
            }
            let past = seq.cache.as_ref().map_or(0, |c| c.len());
            if past + len > self.max_positions() {
                candle_core::bail!(
                    "sequence of {} tokens exceeds max_position_embeddings = {}",
                    past + len,
                    self.max_positions()
                );
            }
            positions_all.extend((past..past + len).map(|p| p as u32));
            let mask = if len > 1 && !fused_attention {
                Some(causal_mask(
                    len,
                    past,
                    self.num_kv_groups(),
                    self.act_dtype,
                    &self.device,
                )?)
            } else {
                None
            };
            last_rows.push((ids.len() + len - 1) as u32);
            states.push(SeqState {
                offset: ids.len(),
                len,
                mask,
                cache: seq.cache.as_deref_mut(),
            });
            ids.extend_from_slice(seq.tokens);
        }
        let ids = Tensor::new(ids.as_slice(), &self.device)?;
        let mut x = self
            .embed_tokens
            .embedding(&ids)?
            .to_dtype(self.act_dtype)?;
        let (cos, sin) = self.rotary.gather(&positions_all, self.act_dtype)?;
        let mut batch = BatchState {
            seqs: states,
            fused_attention,
            cos,
            sin,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x, &mut batch, i, mode)?;
        }
        for seq in batch.seqs.iter_mut() {
            if let Some(cache) = seq.cache.as_deref_mut() {
                cache.commit(seq.len);
            }
        }
        if positions == Positions::Last {
            let rows = Tensor::new(last_rows.as_slice(), &self.device)?;
            x = x.index_select(&rows, 0)?;
        }
        self.norm.forward(&x, mode)
    }

    /// Logits (f32) at `positions`; see [`Transformer::forward_hidden`].
    pub fn forward(
        &self,
        seqs: &mut [SeqInput],
        positions: Positions,
        mode: Mode,
    ) -> Result<Tensor> {
        let head = self
            .lm_head
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("reward model has no lm_head".into()))?;
        let h = self.forward_hidden(seqs, positions, mode)?;
        widen(head.forward(&h, mode)?)
    }

    /// Reward-model scores (num_seqs, num_labels) read at each sequence's last token.
    pub fn score(&self, seqs: &mut [SeqInput], mode: Mode) -> Result<Tensor> {
        let head = self
            .score
            .as_ref()
            .ok_or_else(|| candle_core::Error::Msg("model has no score head".into()))?;
        let h = self.forward_hidden(seqs, Positions::Last, mode)?;
        widen(head.forward(&h, mode)?)
    }

    /// Whether the LM head is the (still dense) input embedding.
    pub fn tied_embeddings(&self) -> bool {
        self.lm_head
            .as_ref()
            .and_then(Linear::dense)
            .is_some_and(|w| w.id() == self.embed_tokens.id())
    }

    fn num_kv_groups(&self) -> usize {
        self.cfg.num_attention_heads / self.cfg.num_kv_heads()
    }
}

/// Half-precision outputs are returned as f32; f32/f64 stay as they are.
fn widen(t: Tensor) -> Result<Tensor> {
    match t.dtype() {
        DType::F16 | DType::BF16 => t.to_dtype(DType::F32),
        _ => Ok(t),
    }
}

/// Additive causal mask for `len` new queries after `past` cached tokens,
/// tiled for `groups` query heads stacked per KV head: (groups*len, past+len).
fn causal_mask(
    len: usize,
    past: usize,
    groups: usize,
    dtype: DType,
    device: &Device,
) -> Result<Tensor> {
    let total = past + len;
    let mut data = Vec::with_capacity(groups * len * total);
    for _ in 0..groups {
        for i in 0..len {
            for j in 0..total {
                data.push(if j > past + i { f32::NEG_INFINITY } else { 0.0 });
            }
        }
    }
    Tensor::from_vec(data, (groups * len, total), device)?.to_dtype(dtype)
}
