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

use candle_core::{DType, Device, Result, Tensor};

use super::kv_cache::KvCache;
pub use super::layers::{Attention, DecoderLayer, Loaders, Mlp, RmsNorm, SeqInput};
use super::layers::{BatchState, SeqState};
use super::linear::Linear;
use super::rope::RotaryEmbedding;
use super::{Architecture, Mode, ModelConfig};

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
