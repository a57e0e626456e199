//! A model ready to serve: weights, tokenizer, chat template and stop ids,
//! loaded together from one HF model directory, plus the reward model that
//! scores its completions (if any), which runs on the same engine thread.

use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::chat::{ChatMessage, ChatTemplate};
use crate::model::{load_model, LoadedModel, WeightDType};
use crate::tokenizer::Tokenizer;

pub struct ModelBundle {
    pub loaded: LoadedModel,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    /// EOS ids from config.json, generation_config.json and tokenizer_config.json.
    pub eos_token_ids: Vec<u32>,
    /// The reward model of this policy (`--reward-model`): the engine that
    /// owns the bundle also runs its score jobs, between decode steps.
    pub reward: Option<super::reward::RewardModel>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    #[error(transparent)]
    Template(#[from] crate::chat::ChatTemplateError),
    #[error(transparent)]
    Prompt(#[from] crate::chat::PromptError),
    /// The reward model at `dir` ([`ModelBundle::load_reward`]) failed to load.
    #[error("reward model {}: {source}", dir.display())]
    Reward {
        dir: PathBuf,
        #[source]
        source: super::reward::RewardError,
    },
}

/// `ids` (from config.json and generation_config.json) followed by the
/// tokenizer's EOS token when it is not among them.
fn with_tokenizer_eos(mut ids: Vec<u32>, tok: &Tokenizer) -> Vec<u32> {
    for id in tok.eos_token_ids() {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The stop ids the server uses for the model directory `dir` (config.json,
/// generation_config.json, then the tokenizer's EOS), without loading its
/// weights: for callers that load the model another way (the trainers'
/// [`crate::model::load_trainable`]).
pub fn eos_token_ids(dir: &Path, tok: &Tokenizer) -> Result<Vec<u32>, crate::model::ModelError> {
    use crate::model::{GenerationConfig, ModelConfig, ModelError};
    let config = ModelConfig::from_file(&dir.join("config.json"))?;
    let gen_path = dir.join("generation_config.json");
    let mut ids: std::collections::BTreeSet<u32> = config.eos_token_ids().into_iter().collect();
    if gen_path.is_file() {
        let text = std::fs::read_to_string(&gen_path).map_err(|source| ModelError::Io {
            path: gen_path.clone(),
            source,
        })?;
        let generation: GenerationConfig =
            serde_json::from_str(&text).map_err(|e| ModelError::Malformed {
                path: gen_path.clone(),
                message: e.to_string(),
            })?;
        if let Some(g) = &generation.eos_token_id {
            ids.extend(g.to_vec());
        }
    }
    Ok(with_tokenizer_eos(ids.into_iter().collect(), tok))
}

impl ModelBundle {
    pub fn load(
        dir: &Path,
        dtype: Option<WeightDType>,
        device: &Device,
    ) -> Result<Self, BundleError> {
        let loaded = load_model(dir, dtype, device)?;
        let tokenizer = Tokenizer::from_dir(dir)?;
        let template = ChatTemplate::from_tokenizer(&tokenizer)?;
        let eos_token_ids = with_tokenizer_eos(loaded.eos_token_ids(), &tokenizer);
        Ok(Self {
            loaded,
            tokenizer,
            template,
            eos_token_ids,
            reward: None,
        })
    }

    /// Loads the reward model at `dir` and attaches it to this bundle.
    pub fn load_reward(
        &mut self,
        dir: &Path,
        dtype: Option<WeightDType>,
        device: &Device,
    ) -> Result<(), BundleError> {
        let rm = super::reward::RewardModel::load(dir, dtype, device).map_err(|source| {
            BundleError::Reward {
                dir: dir.to_path_buf(),
                source,
            }
        })?;
        self.reward = Some(rm);
        Ok(())
    }

    /// Back the weights (policy and reward model) with transparent huge
    /// pages once they are in their final form (after packing or
    /// quantizing); returns the bytes collapsed. See
    /// [`crate::alloc::back_with_huge_pages`].
    pub fn back_with_huge_pages(&mut self) -> usize {
        let mut bytes = self.loaded.model.back_with_huge_pages();
        if let Some(rm) = &mut self.reward {
            bytes += rm.loaded.model.back_with_huge_pages();
        }
        bytes
    }

    /// Store KV caches (policy and reward model) as `mode` resolves.
    pub fn set_kv_dtype(&mut self, mode: crate::model::KvCacheDType) {
        self.loaded.model.set_kv_dtype(mode);
        if let Some(rm) = &mut self.reward {
            rm.loaded.model.set_kv_dtype(mode);
        }
    }

    /// Pack the bf16 weight matrices (policy and reward model, if loaded) for
    /// Intel AMX per `mode` (see [`crate::model::AmxMode`]); returns how many
    /// layers were packed.
    pub fn pack_amx(&mut self, mode: crate::model::AmxMode) -> Result<usize, BundleError> {
        use crate::model::AmxMode;
        let wrap = |e| BundleError::Model(crate::model::ModelError::Candle(e));
        #[cfg(target_arch = "x86_64")]
        let available = crate::kernels::amx::available();
        #[cfg(not(target_arch = "x86_64"))]
        let available = false;
        match mode {
            AmxMode::Off => Ok(0),
            AmxMode::Auto if !available => Ok(0),
            #[cfg(target_arch = "x86_64")]
            AmxMode::Auto | AmxMode::On => {
                let mut packed = self.loaded.model.pack_amx().map_err(wrap)?;
                if let Some(rm) = &mut self.reward {
                    packed += rm.loaded.model.pack_amx().map_err(wrap)?;
                }
                if packed == 0 && mode == AmxMode::On {
                    return Err(wrap(candle_core::Error::Msg(
                        "--amx on needs bf16 weight matrices (a bf16 checkpoint or --dtype bf16)"
                            .into(),
                    )));
                }
                Ok(packed)
            }
            #[cfg(not(target_arch = "x86_64"))]
            AmxMode::Auto | AmxMode::On => Err(wrap(candle_core::Error::Msg(
                "Intel AMX is only available on x86-64".into(),
            ))),
        }
    }

    /// Put the weights in their serving form: quantized (`quantize`, see
    /// [`ModelBundle::quantize`]), else bf16 matrices packed for AMX per
    /// `amx` and, with `pack_f32`, f32 matrices packed for the AVX-512 GEMM
    /// kernel ([`crate::kernels::packed_f32`]; off keeps them row-major,
    /// for A/B runs: `--pack-f32 off`). Returns how many layers were packed.
    pub fn prepare_for_serving(
        &mut self,
        quantize: Option<crate::model::Quantization>,
        amx: crate::model::AmxMode,
        pack_f32: bool,
    ) -> Result<usize, BundleError> {
        if let Some(q) = quantize {
            self.quantize(q, amx)?;
            return Ok(0);
        }
        let packed = self.pack_amx(amx)?;
        Ok(packed + if pack_f32 { self.pack_f32()? } else { 0 })
    }

    /// Pack the f32 weight matrices (policy and reward model) for the AVX-512
    /// GEMM kernel; 0 layers where the CPU lacks AVX-512.
    pub fn pack_f32(&mut self) -> Result<usize, BundleError> {
        #[cfg(target_arch = "x86_64")]
        {
            let wrap = |e| BundleError::Model(crate::model::ModelError::Candle(e));
            let mut packed = self.loaded.model.pack_f32().map_err(wrap)?;
            if let Some(rm) = &mut self.reward {
                packed += rm.loaded.model.pack_f32().map_err(wrap)?;
            }
            self.loaded.weight_bytes = self.loaded.model.weight_bytes_per_step();
            Ok(packed)
        }
        #[cfg(not(target_arch = "x86_64"))]
        Ok(0)
    }

    /// Quantize the weight matrices for serving (see
    /// [`crate::model::Transformer::quantize`]).
    /// With `q8_0` and `--amx on`, the weights go to Quorum's AMX Q8_0 kernel
    /// ([`crate::kernels::amx_q8`]: the weight is streamed once per call for
    /// any batch; 5.0x the single-stream rate at N = 8); otherwise to candle's
    /// `QMatMul`, which is faster for a single stream (measured 27.7 vs 17.7
    /// tok/s on Qwen3-0.6B: the AMX path pays for dequantizing to bf16) but
    /// streams the weight once per row of the batch — so `auto` keeps it.
    pub fn quantize(
        &mut self,
        q: crate::model::Quantization,
        amx: crate::model::AmxMode,
    ) -> Result<(), BundleError> {
        use crate::model::{AmxMode, Quantization};
        let wrap = |e| BundleError::Model(crate::model::ModelError::Candle(e));
        let use_amx = match (q, amx) {
            (_, AmxMode::Off) => false,
            (Quantization::Q8_0, AmxMode::Auto) => false,
            (Quantization::Q8_0, AmxMode::On) => true,
            (Quantization::Q4k, AmxMode::Auto) => false,
            (Quantization::Q4k, AmxMode::On) => {
                return Err(wrap(candle_core::Error::Msg(
                    "--amx on supports --quantize q8_0 only".into(),
                )))
            }
        };
        if use_amx {
            #[cfg(target_arch = "x86_64")]
            self.loaded.model.quantize_q8_amx().map_err(wrap)?;
            #[cfg(not(target_arch = "x86_64"))]
            return Err(wrap(candle_core::Error::Msg(
                "Intel AMX is only available on x86-64".into(),
            )));
        } else {
            self.loaded.model.quantize(q.ggml()).map_err(wrap)?;
        }
        self.loaded.weight_bytes = self.loaded.model.weight_bytes_per_step();
        Ok(())
    }

    /// Render a conversation with the chat template and tokenize it; user
    /// and tool contents are plain text (see [`crate::chat::prompt`]).
    pub fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        kwargs: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(String, Vec<u32>), BundleError> {
        let rendered = crate::chat::prompt::render(
            &self.template,
            &self.tokenizer,
            messages,
            true,
            kwargs,
            crate::chat::SpecialTokenPolicy::default(),
        )?;
        let ids = rendered.encode(&self.tokenizer, None)?;
        Ok((rendered.text, ids))
    }
}
