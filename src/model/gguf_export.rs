//! `quorum model gguf`: an HF Qwen3 causal-LM directory as a GGUF v3 file
//! that llama.cpp loads (arch `qwen3`): its hyper-parameters under `qwen3.*`,
//! the tensors under llama.cpp's names (`token_embd`, `blk.N.attn_q`, ...)
//! and the byte-level BPE as a `gpt2` vocabulary ([`super::gguf_vocab`]).
//! The file is written by candle's GGUF writer.
//!
//! Qwen3 uses NeoX-style rotary embeddings in both HF and llama.cpp, so the
//! q/k projections are copied as they are (no permutation, unlike Llama).

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device};

use super::config::Architecture;
use super::gguf_vocab::{read_vocab, GgufVocab};
use super::loader::{weight_files, GenerationConfig};
use super::{ModelConfig, ModelError};

/// Storage type of the exported matrices (`--dtype`); norms stay f32, as
/// llama.cpp's converter keeps every 1-D tensor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum GgufDType {
    #[default]
    F32,
    F16,
}

impl GgufDType {
    fn ggml(self) -> GgmlDType {
        match self {
            Self::F32 => GgmlDType::F32,
            Self::F16 => GgmlDType::F16,
        }
    }

    /// `general.file_type` (llama.cpp's `llama_ftype`: ALL_F32, MOSTLY_F16).
    fn file_type(self) -> u32 {
        match self {
            Self::F32 => 0,
            Self::F16 => 1,
        }
    }
}

/// What [`export_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct GgufReport {
    pub path: PathBuf,
    pub tensors: usize,
    pub params: u64,
    pub bytes: u64,
    pub vocab_size: usize,
    pub merges: usize,
}

/// llama.cpp's name for an HF Qwen3 tensor, or None for one it has no slot for.
pub fn gguf_tensor_name(hf: &str) -> Option<String> {
    let fixed = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(n) = fixed {
        return Some(n.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, leaf) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let leaf = match leaf {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "self_attn.q_norm.weight" => "attn_q_norm.weight",
        "self_attn.k_norm.weight" => "attn_k_norm.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        _ => return None,
    };
    Some(format!("blk.{layer}.{leaf}"))
}

/// The tensors llama.cpp's `qwen3` graph requires, in the converter's order.
fn required_tensors(cfg: &ModelConfig) -> Vec<String> {
    let mut names = vec!["token_embd.weight".to_string()];
    for l in 0..cfg.num_hidden_layers {
        for leaf in [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "attn_q_norm",
            "attn_k_norm",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
        ] {
            names.push(format!("blk.{l}.{leaf}.weight"));
        }
    }
    names.push("output_norm.weight".into());
    if !cfg.tie_word_embeddings {
        names.push("output.weight".into());
    }
    names
}

fn check_exportable(cfg: &ModelConfig, cfg_path: &Path) -> Result<(), ModelError> {
    let unsupported = |found: String| ModelError::UnsupportedArchitecture {
        found,
        supported: "Qwen3ForCausalLM (GGUF export)".into(),
    };
    let arch = cfg.architecture()?;
    let names = if cfg.architectures.is_empty() {
        cfg.model_type.clone().unwrap_or_default()
    } else {
        cfg.architectures.join(", ")
    };
    if arch != Architecture::Qwen3 {
        return Err(unsupported(names));
    }
    if cfg
        .architectures
        .iter()
        .any(|a| a.ends_with("ForSequenceClassification"))
    {
        return Err(unsupported(format!(
            "{names} (a reward/classification head is not a llama.cpp causal LM)"
        )));
    }
    let bad = |field: &str, message: &str| ModelError::InvalidField {
        path: cfg_path.to_path_buf(),
        field: field.into(),
        message: message.into(),
    };
    if cfg.attention_bias == Some(true) {
        return Err(bad(
            "attention_bias",
            "llama.cpp's qwen3 has no q/k/v bias; GGUF export needs attention_bias = false",
        ));
    }
    if cfg
        .rope_scaling
        .as_ref()
        .is_some_and(|r| r.rope_type != "default")
    {
        return Err(bad(
            "rope_scaling",
            "GGUF export writes plain rotary embeddings only",
        ));
    }
    Ok(())
}

fn u32_of(v: usize, what: &str) -> Result<Value, ModelError> {
    u32::try_from(v)
        .map(Value::U32)
        .map_err(|_| ModelError::Weight {
            name: what.into(),
            message: format!("{v} does not fit the GGUF u32 field"),
        })
}

/// The GGUF key/value metadata for `cfg` and `vocab`, in writing order.
fn metadata(
    cfg: &ModelConfig,
    gen: &GenerationConfig,
    vocab: &GgufVocab,
    name: &str,
    dtype: GgufDType,
) -> Result<Vec<(String, Value)>, ModelError> {
    let a = "qwen3";
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(a.into())),
        ("general.type".into(), Value::String("model".into())),
    ];
    // The recommended sampling of generation_config.json, as llama.cpp's
    // converter writes it (llama.cpp takes these as its defaults).
    if gen.do_sample != Some(false) {
        if let Some(k) = gen.top_k.and_then(|k| i32::try_from(k).ok()) {
            md.push(("general.sampling.top_k".into(), Value::I32(k)));
        }
        for (key, v) in [
            ("top_p", gen.top_p),
            ("min_p", gen.min_p),
            ("temp", gen.temperature),
            ("penalty_repeat", gen.repetition_penalty),
        ] {
            if let Some(v) = v {
                md.push((format!("general.sampling.{key}"), Value::F32(v)));
            }
        }
    }
    md.extend([
        ("general.name".into(), Value::String(name.into())),
        (
            format!("{a}.context_length"),
            u32_of(cfg.max_position_embeddings, "max_position_embeddings")?,
        ),
        (
            format!("{a}.embedding_length"),
            u32_of(cfg.hidden_size, "hidden_size")?,
        ),
        (
            format!("{a}.block_count"),
            u32_of(cfg.num_hidden_layers, "num_hidden_layers")?,
        ),
        (
            format!("{a}.feed_forward_length"),
            u32_of(cfg.intermediate_size, "intermediate_size")?,
        ),
        (
            format!("{a}.attention.head_count"),
            u32_of(cfg.num_attention_heads, "num_attention_heads")?,
        ),
        (
            format!("{a}.attention.head_count_kv"),
            u32_of(cfg.num_kv_heads(), "num_key_value_heads")?,
        ),
        (
            format!("{a}.rope.freq_base"),
            Value::F32(cfg.rope_theta as f32),
        ),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(cfg.rms_norm_eps as f32),
        ),
        (
            format!("{a}.attention.key_length"),
            u32_of(cfg.head_dim(), "head_dim")?,
        ),
        (
            format!("{a}.attention.value_length"),
            u32_of(cfg.head_dim(), "head_dim")?,
        ),
        ("general.file_type".into(), Value::U32(dtype.file_type())),
        ("general.quantization_version".into(), Value::U32(2)),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(vocab.pre.into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(vocab.tokens.iter().cloned().map(Value::String).collect()),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(
                vocab
                    .token_types
                    .iter()
                    .map(|&t| Value::I32(t as i32))
                    .collect(),
            ),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(vocab.merges.iter().cloned().map(Value::String).collect()),
        ),
    ]);
    for (key, id) in [
        ("bos", vocab.bos),
        ("eos", vocab.eos),
        ("unknown", vocab.unk),
        ("padding", vocab.pad),
    ] {
        if let Some(id) = id {
            md.push((format!("tokenizer.ggml.{key}_token_id"), Value::U32(id)));
        }
    }
    for (key, on) in [("bos", vocab.add_bos), ("eos", vocab.add_eos)] {
        if let Some(on) = on {
            md.push((format!("tokenizer.ggml.add_{key}_token"), Value::Bool(on)));
        }
    }
    if let Some(t) = &vocab.chat_template {
        md.push(("tokenizer.chat_template".into(), Value::String(t.clone())));
    }
    Ok(md)
}

/// Export the HF Qwen3 model directory `dir` to the GGUF file `out`.
pub fn export_gguf(dir: &Path, out: &Path, dtype: GgufDType) -> Result<GgufReport, ModelError> {
    let cfg_path = dir.join("config.json");
    if !cfg_path.is_file() {
        return Err(ModelError::MissingFile {
            dir: dir.to_path_buf(),
            file: "config.json".into(),
        });
    }
    let cfg = ModelConfig::from_file(&cfg_path)?;
    check_exportable(&cfg, &cfg_path)?;
    let vocab = read_vocab(
        dir,
        cfg.vocab_size,
        [
            cfg.bos_token_id,
            cfg.eos_token_ids().first().copied(),
            cfg.pad_token_id,
        ],
    )?;

    let files = weight_files(dir)?;
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&files) }?;
    let mut by_name: std::collections::HashMap<String, QTensor> = Default::default();
    let mut params = 0u64;
    let mut hf_names: Vec<String> = st.tensors().into_iter().map(|(n, _)| n).collect();
    hf_names.sort();
    for hf in hf_names {
        let Some(name) = gguf_tensor_name(&hf) else {
            return Err(ModelError::Weight {
                name: hf,
                message: "has no llama.cpp qwen3 tensor to go to (GGUF export)".into(),
            });
        };
        if name == "output.weight" && cfg.tie_word_embeddings {
            // Tied: llama.cpp reuses token_embd when `output` is absent.
            continue;
        }
        let t = st.load(&hf, &Device::Cpu)?.to_dtype(DType::F32)?;
        let ggml = if t.rank() == 1 {
            GgmlDType::F32
        } else {
            dtype.ggml()
        };
        params += t.elem_count() as u64;
        let q = QTensor::quantize(&t, ggml).map_err(|e| ModelError::Weight {
            name: hf.clone(),
            message: e.to_string(),
        })?;
        by_name.insert(name, q);
    }
    let order = required_tensors(&cfg);
    let mut tensors: Vec<(&str, &QTensor)> = Vec::with_capacity(order.len());
    for name in &order {
        let t = by_name.get(name).ok_or_else(|| ModelError::Weight {
            name: name.clone(),
            message: format!(
                "missing: {} has no tensor for it (GGUF export needs every Qwen3 weight)",
                dir.display()
            ),
        })?;
        tensors.push((name.as_str(), t));
    }
    if tensors.len() != by_name.len() {
        let extra: Vec<&String> = by_name.keys().filter(|n| !order.contains(n)).collect();
        return Err(ModelError::Weight {
            name: format!("{extra:?}"),
            message: format!(
                "outside the model's {} layers (config.json num_hidden_layers)",
                cfg.num_hidden_layers
            ),
        });
    }
    let name = dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "model".into());
    let gen_path = dir.join("generation_config.json");
    let gen: GenerationConfig = if gen_path.is_file() {
        let text = std::fs::read_to_string(&gen_path).map_err(|e| ModelError::Io {
            path: gen_path.clone(),
            source: e,
        })?;
        serde_json::from_str(&text).map_err(|e| ModelError::Malformed {
            path: gen_path.clone(),
            message: e.to_string(),
        })?
    } else {
        GenerationConfig::default()
    };
    let md = metadata(&cfg, &gen, &vocab, &name, dtype)?;
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();

    let io = |e: std::io::Error| ModelError::Io {
        path: out.to_path_buf(),
        source: e,
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let tmp = out.with_extension("gguf.partial");
    let written = (|| -> Result<u64, ModelError> {
        let file = std::fs::File::create(&tmp).map_err(io)?;
        let mut w = std::io::BufWriter::new(file);
        candle_core::quantized::gguf_file::write(&mut w, &md_refs, &tensors)?;
        // candle's writer stamps version 2; v3 only added big-endian files,
        // so a little-endian v2 file is a v3 file with another number.
        w.seek(SeekFrom::Start(4)).map_err(io)?;
        w.write_all(&3u32.to_le_bytes()).map_err(io)?;
        let mut file = w.into_inner().map_err(|e| io(e.into_error()))?;
        let len = file.seek(SeekFrom::End(0)).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(len)
    })();
    let bytes = match written {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, out).map_err(io)?;
    Ok(GgufReport {
        path: out.to_path_buf(),
        tensors: tensors.len(),
        params,
        bytes,
        vocab_size: vocab.tokens.len(),
        merges: vocab.merges.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_fixtures::write_model;
    use candle_core::quantized::gguf_file::Content;

    fn tiny(dir: &Path, reward_head: bool) {
        write_model("tiny", dir, |o| o.reward_head = reward_head);
    }

    fn read(path: &Path) -> (Content, std::fs::File) {
        let mut f = std::fs::File::open(path).unwrap();
        (Content::read(&mut f).unwrap(), f)
    }

    #[test]
    fn tensor_names() {
        assert_eq!(
            gguf_tensor_name("model.layers.3.self_attn.k_norm.weight").as_deref(),
            Some("blk.3.attn_k_norm.weight")
        );
        assert_eq!(
            gguf_tensor_name("model.layers.0.mlp.down_proj.weight").as_deref(),
            Some("blk.0.ffn_down.weight")
        );
        assert_eq!(gguf_tensor_name("score.weight"), None);
        assert_eq!(gguf_tensor_name("model.layers.x.mlp.up_proj.weight"), None);
    }

    #[test]
    fn round_trip_through_candles_reader() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        tiny(&dir, false);
        let cfg = ModelConfig::from_file(&dir.join("config.json")).unwrap();
        let out = tmp.path().join("m.gguf");
        let report = export_gguf(&dir, &out, GgufDType::F32).unwrap();
        assert_eq!(report.tensors, required_tensors(&cfg).len());

        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(&bytes[..4], b"GGUF");
        assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);

        let (content, mut f) = read(&out);
        let md = &content.metadata;
        let u = |k: &str| md[k].to_u32().unwrap() as usize;
        assert_eq!(md["general.architecture"].to_string().unwrap(), "qwen3");
        assert_eq!(u("qwen3.block_count"), cfg.num_hidden_layers);
        assert_eq!(u("qwen3.embedding_length"), cfg.hidden_size);
        assert_eq!(u("qwen3.feed_forward_length"), cfg.intermediate_size);
        assert_eq!(u("qwen3.context_length"), cfg.max_position_embeddings);
        assert_eq!(u("qwen3.attention.head_count"), cfg.num_attention_heads);
        assert_eq!(u("qwen3.attention.head_count_kv"), cfg.num_kv_heads());
        assert_eq!(u("qwen3.attention.key_length"), cfg.head_dim());
        assert_eq!(u("qwen3.attention.value_length"), cfg.head_dim());
        assert_eq!(
            md["qwen3.rope.freq_base"].to_f32().unwrap(),
            cfg.rope_theta as f32
        );
        assert_eq!(
            md["qwen3.attention.layer_norm_rms_epsilon"]
                .to_f32()
                .unwrap(),
            cfg.rms_norm_eps as f32
        );
        assert_eq!(md["general.file_type"].to_u32().unwrap(), 0);
        assert_eq!(md["tokenizer.ggml.model"].to_string().unwrap(), "gpt2");
        assert_eq!(md["tokenizer.ggml.pre"].to_string().unwrap(), "qwen2");
        let n_tokens = md["tokenizer.ggml.tokens"].to_vec().unwrap().len();
        assert_eq!(n_tokens, cfg.vocab_size);
        assert_eq!(
            md["tokenizer.ggml.token_type"].to_vec().unwrap().len(),
            n_tokens
        );
        assert!(md.contains_key("tokenizer.chat_template"));
        assert_eq!(
            md["tokenizer.ggml.eos_token_id"].to_u32().unwrap(),
            cfg.eos_token_ids()[0]
        );

        // Shapes in HF (row-major) order, and the values bit for bit.
        let st =
            candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
        assert_eq!(content.tensor_infos.len(), report.tensors);
        for (hf, t) in &st {
            let name = gguf_tensor_name(hf).unwrap();
            if name == "output.weight" && cfg.tie_word_embeddings {
                assert!(!content.tensor_infos.contains_key("output.weight"));
                continue;
            }
            let info = &content.tensor_infos[&name];
            assert_eq!(info.shape.dims(), t.dims(), "{name}");
            assert_eq!(info.ggml_dtype, GgmlDType::F32, "{name}");
        }
        for (hf, name) in [
            (
                "model.layers.1.self_attn.q_proj.weight",
                "blk.1.attn_q.weight",
            ),
            ("model.embed_tokens.weight", "token_embd.weight"),
            (
                "model.layers.0.self_attn.k_norm.weight",
                "blk.0.attn_k_norm.weight",
            ),
        ] {
            let want: Vec<f32> = st[hf]
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got: Vec<f32> = content
                .tensor(&mut f, name, &Device::Cpu)
                .unwrap()
                .dequantize(&Device::Cpu)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn vocab_matches_tokenizer_json() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        tiny(&dir, false);
        let out = tmp.path().join("m.gguf");
        export_gguf(&dir, &out, GgufDType::F32).unwrap();
        let (content, _) = read(&out);
        let md = &content.metadata;

        let tok: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
                .unwrap();
        let tokens: Vec<&str> = md["tokenizer.ggml.tokens"]
            .to_vec()
            .unwrap()
            .iter()
            .map(|v| v.to_string().unwrap().as_str())
            .collect();
        let types: Vec<i32> = md["tokenizer.ggml.token_type"]
            .to_vec()
            .unwrap()
            .iter()
            .map(|v| v.to_i32().unwrap())
            .collect();
        for (text, id) in tok["model"]["vocab"].as_object().unwrap() {
            assert_eq!(tokens[id.as_u64().unwrap() as usize], text);
        }
        for t in tok["added_tokens"].as_array().unwrap() {
            let id = t["id"].as_u64().unwrap() as usize;
            assert_eq!(tokens[id], t["content"].as_str().unwrap());
            let content = t["content"].as_str().unwrap();
            let control =
                t["special"] == true || (content.starts_with("<|") && content.ends_with("|>"));
            assert_eq!(types[id], if control { 3 } else { 4 }, "{content}");
        }
        let merges: Vec<String> = md["tokenizer.ggml.merges"]
            .to_vec()
            .unwrap()
            .iter()
            .map(|v| v.to_string().unwrap().clone())
            .collect();
        let want: Vec<String> = tok["model"]["merges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| match m {
                serde_json::Value::String(s) => s.clone(),
                m => format!("{} {}", m[0].as_str().unwrap(), m[1].as_str().unwrap()),
            })
            .collect();
        assert!(!want.is_empty());
        assert_eq!(merges, want);
    }

    #[test]
    fn f16_matrices_f32_norms() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        tiny(&dir, false);
        let out = tmp.path().join("m16.gguf");
        export_gguf(&dir, &out, GgufDType::F16).unwrap();
        let (content, _) = read(&out);
        assert_eq!(content.metadata["general.file_type"].to_u32().unwrap(), 1);
        let ti = &content.tensor_infos;
        assert_eq!(ti["blk.0.attn_q.weight"].ggml_dtype, GgmlDType::F16);
        assert_eq!(ti["token_embd.weight"].ggml_dtype, GgmlDType::F16);
        assert_eq!(ti["blk.0.attn_norm.weight"].ggml_dtype, GgmlDType::F32);
        assert_eq!(ti["output_norm.weight"].ggml_dtype, GgmlDType::F32);
    }

    #[test]
    fn unsupported_models_are_refused_clearly() {
        let tmp = tempfile::tempdir().unwrap();
        let rm = tmp.path().join("rm");
        tiny(&rm, true);
        let err = export_gguf(&rm, &tmp.path().join("rm.gguf"), GgufDType::F32)
            .unwrap_err()
            .to_string();
        assert!(err.contains("ForSequenceClassification"), "{err}");
        assert!(!tmp.path().join("rm.gguf").exists());

        let llama = tmp.path().join("llama");
        write_model("tiny-llama", &llama, |_| {});
        let err = export_gguf(&llama, &tmp.path().join("l.gguf"), GgufDType::F32)
            .unwrap_err()
            .to_string();
        assert!(err.contains("LlamaForCausalLM"), "{err}");
        assert!(err.contains("Qwen3ForCausalLM"), "{err}");

        let err = export_gguf(tmp.path(), &tmp.path().join("x.gguf"), GgufDType::F32)
            .unwrap_err()
            .to_string();
        assert!(err.contains("config.json"), "{err}");
    }
}
