use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::*;
use crate::model::init::TokenizerSource;
use crate::model::presets::preset;
use crate::model::tensor_plan::{plan_order, tensor_plan};
use crate::model::test_fixtures::write_model;
use crate::model::{load_model, load_trainable, Mode, Positions, SeqInput};

/// Write a training checkpoint: `tensors` in `dtype`, the tokenizer files of
/// `tokenizer_dir`, an existing `dir` replaced, files fsynced (what the trainers ask of
/// [`write_model_dir`]).
fn write_checkpoint(
    dir: &Path,
    config: &ModelConfig,
    tensors: &[(String, Tensor)],
    tokenizer_dir: Option<&Path>,
    dtype: CheckpointDType,
) -> Result<WriteReport, ModelError> {
    let opts = WriteOptions {
        tokenizer_dir,
        replace: true,
        sync: true,
        ..WriteOptions::new(dtype)
    };
    write_model_dir(dir, config, tensors, &opts, &|_| {})
}

/// The named tensors of a `VarMap` (from [`load_trainable`]), in the VarMap's (hash)
/// order; the writer puts them in HF order.
fn varmap_tensors(varmap: &candle_nn::VarMap) -> Result<Vec<(String, Tensor)>, ModelError> {
    let data = varmap.data().lock().map_err(|_| ModelError::Weight {
        name: "varmap".into(),
        message: "lock poisoned".into(),
    })?;
    Ok(data
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect())
}

/// Checks that `tensors` (name, shape) are exactly the checkpoint of `cfg` (what the
/// writer checks before writing anything).
fn check_tensors<'a, S: AsRef<[usize]> + 'a>(
    cfg: &ModelConfig,
    tensors: impl IntoIterator<Item = (&'a str, S)>,
) -> Result<(), ModelError> {
    plan_order(cfg, tensors).map(|_| ())
}

/// The tensors of a trainable model, in HF checkpoint order (embedding first, final norm
/// or head last), as a trainer hands them to the writer.
fn named_weights(vars: &candle_nn::VarMap, cfg: &ModelConfig) -> Vec<(String, Tensor)> {
    let mut tensors = varmap_tensors(vars).unwrap();
    let plan = tensor_plan(cfg, false).unwrap();
    let rank = |name: &str| plan.iter().position(|s| s.name == name);
    tensors.sort_by_key(|(name, _)| rank(name));
    tensors
}

/// The tiny preset with a small vocabulary (fast to write), tied or not.
fn small_config(tied: bool) -> ModelConfig {
    let mut cfg = preset("tiny").unwrap();
    cfg.vocab_size = 300;
    cfg.tie_word_embeddings = tied;
    cfg
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tokenizer")
}

/// A random model written by `init`, loaded trainable, with every weight shifted so
/// the values differ from anything init would write.
fn trained_model(
    dir: &Path,
    tied: bool,
) -> (crate::model::Transformer, candle_nn::VarMap, ModelConfig) {
    let src = dir.join(if tied { "init-tied" } else { "init-untied" });
    write_model("tiny", &src, |o| {
        o.config = small_config(tied);
        o.tokenizer = TokenizerSource::None;
    });
    let (model, varmap, cfg) = load_trainable(&src, DType::F32, &Device::Cpu).unwrap();
    for var in varmap.all_vars() {
        let shifted = ((var.as_tensor() * 1.5).unwrap() + 0.01).unwrap();
        var.set(&shifted).unwrap();
    }
    (model, varmap, cfg)
}

fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn logits(model: &crate::model::Transformer) -> Vec<f32> {
    let tokens = [1u32, 5, 77, 299, 0];
    let mut seqs = [SeqInput {
        tokens: &tokens,
        cache: None,
    }];
    values(
        &model
            .forward(&mut seqs, Positions::Last, Mode::Inference)
            .unwrap(),
    )
}

#[test]
fn a_checkpoint_reloads_with_identical_tensors_and_logits() {
    let dir = tempfile::tempdir().unwrap();
    for tied in [true, false] {
        let (model, vars, cfg) = trained_model(dir.path(), tied);
        let out = dir.path().join(format!("checkpoint-tied-{tied}"));
        let weights = named_weights(&vars, &cfg);
        let report =
            write_checkpoint(&out, &cfg, &weights, Some(&fixture()), CheckpointDType::F32).unwrap();
        assert!(report.warnings.len() == 1, "{:?}", report.warnings); // Qwen3 ids > 300
        let names: Vec<_> = report
            .files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "config.json",
                "generation_config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json"
            ]
        );
        let on_disk =
            candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
        assert_eq!(on_disk.len(), weights.len());
        assert_eq!(on_disk.contains_key("lm_head.weight"), !tied);
        for (name, t) in &weights {
            assert_eq!(on_disk[name].dims(), t.dims(), "{name}");
            assert!(values(&on_disk[name]) == values(t), "{name} differs");
        }
        let loaded = load_model(&out, None, &Device::Cpu).unwrap();
        assert_eq!(loaded.config.tie_word_embeddings, tied);
        assert_eq!(loaded.config.torch_dtype.as_deref(), Some("float32"));
        assert_eq!(loaded.config.architectures, ["Qwen3ForCausalLM"]);
        assert_eq!(loaded.eos_token_ids(), vec![151_645]);
        assert!(logits(&loaded.model) == logits(&model));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            if tied { 2 } else { 4 }
        );
    }
}

#[test]
fn half_precision_checkpoints_round_each_value_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_model, vars, cfg) = trained_model(dir.path(), true);
    let weights = named_weights(&vars, &cfg);
    for dtype in [CheckpointDType::Bf16, CheckpointDType::F16] {
        let out = dir.path().join(dtype.torch_name());
        write_checkpoint(&out, &cfg, &weights, None, dtype).unwrap();
        let on_disk =
            candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
        for (name, t) in &weights {
            assert_eq!(on_disk[name].dtype(), dtype.candle());
            assert!(values(&on_disk[name]) == values(&t.to_dtype(dtype.candle()).unwrap()));
        }
        let loaded = load_model(&out, None, &Device::Cpu).unwrap();
        assert_eq!(
            loaded.config.torch_dtype.as_deref(),
            Some(dtype.torch_name())
        );
    }
}

#[test]
fn sharded_checkpoints_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (model, vars, cfg) = trained_model(dir.path(), false);
    let opts = WriteOptions {
        shard_max_bytes: Some(40_000),
        ..WriteOptions::new(CheckpointDType::F32)
    };
    let index = |out: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(out.join("model.safetensors.index.json")).unwrap())
            .unwrap()
    };
    let out = dir.path().join("sharded");
    let report = write_model_dir(&out, &cfg, &named_weights(&vars, &cfg), &opts, &|_| {}).unwrap();
    let shards = report
        .files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".safetensors"))
        .count();
    assert!(shards >= 3, "{shards}");
    let first = format!("model-00001-of-{shards:05}.safetensors");
    assert_eq!(
        index(&out)["weight_map"]["model.embed_tokens.weight"],
        first.as_str()
    );
    let loaded = load_model(&out, None, &Device::Cpu).unwrap();
    assert!(logits(&loaded.model) == logits(&model));

    // A VarMap's tensors come in hash order; the files follow HF's order all the same.
    let from_vars = dir.path().join("from-varmap");
    let tensors = varmap_tensors(&vars).unwrap();
    write_model_dir(&from_vars, &cfg, &tensors, &opts, &|_| {}).unwrap();
    assert_eq!(index(&from_vars), index(&out));
    let loaded = load_model(&from_vars, None, &Device::Cpu).unwrap();
    assert!(logits(&loaded.model) == logits(&model));
}

#[test]
fn replacing_keeps_the_old_checkpoint_until_the_new_one_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (model, vars, cfg) = trained_model(dir.path(), true);
    let out = dir.path().join("checkpoint-000100");
    write_checkpoint(
        &out,
        &cfg,
        &named_weights(&vars, &cfg),
        None,
        CheckpointDType::F32,
    )
    .unwrap();
    let first = std::fs::read(out.join("model.safetensors")).unwrap();

    /// Fails on its third tensor, like a device error in the middle of a write.
    struct Failing<'a>(&'a (String, Tensor), usize);
    impl TensorData for Failing<'_> {
        fn name(&self) -> &str {
            self.0.name()
        }
        fn shape(&self) -> Vec<usize> {
            self.0.shape()
        }
        fn bytes(&self, dtype: CheckpointDType) -> Result<Vec<u8>, ModelError> {
            if self.1 == 2 {
                return Err(ModelError::Weight {
                    name: self.0 .0.clone(),
                    message: "device lost".into(),
                });
            }
            self.0.bytes(dtype)
        }
    }
    let weights = named_weights(&vars, &cfg);
    let failing: Vec<Failing> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| Failing(w, i))
        .collect();
    let opts = WriteOptions {
        replace: true,
        ..WriteOptions::new(CheckpointDType::F32)
    };
    let err = write_model_dir(&out, &cfg, &failing, &opts, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("device lost"), "{err}");
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), first);

    // Extra files land in the same rename; a failing extra aborts the whole write.
    for var in vars.all_vars() {
        var.set(&(var.as_tensor() * 2.0).unwrap()).unwrap();
    }
    let bad_extra = |_: &Path| -> std::io::Result<()> { Err(std::io::Error::other("disk full")) };
    let opts = WriteOptions {
        replace: true,
        extra_files: Some(&bad_extra),
        ..WriteOptions::new(CheckpointDType::F32)
    };
    let err = write_model_dir(&out, &cfg, &named_weights(&vars, &cfg), &opts, &|_| {}).unwrap_err();
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), first);

    let extra = |staging: &Path| std::fs::write(staging.join("optimizer.bin"), b"moments");
    let opts = WriteOptions {
        replace: true,
        sync: true,
        extra_files: Some(&extra),
        ..WriteOptions::new(CheckpointDType::F32)
    };
    let report = write_model_dir(&out, &cfg, &named_weights(&vars, &cfg), &opts, &|_| {}).unwrap();
    assert!(report.files.contains(&out.join("optimizer.bin")));
    assert_eq!(
        std::fs::read(out.join("optimizer.bin")).unwrap(),
        b"moments"
    );
    assert_ne!(std::fs::read(out.join("model.safetensors")).unwrap(), first);
    let loaded = load_model(&out, None, &Device::Cpu).unwrap();
    assert!(logits(&loaded.model) == logits(&model));
    // Only the init source and the checkpoint: no staging or parked directories.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
}

#[test]
fn tensors_that_do_not_match_the_config_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let (_model, vars, cfg) = trained_model(dir.path(), true);
    let out = dir.path().join("bad");
    let mut weights = named_weights(&vars, &cfg);
    let embed = weights[0].1.clone();
    let refuse = |w: &[(String, Tensor)], want: &str| {
        let err = write_checkpoint(&out, &cfg, w, None, CheckpointDType::F32)
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{err}");
        assert!(!out.exists());
    };
    weights.push(("lm_head.weight".into(), embed.clone()));
    refuse(
        &weights,
        "lm_head.weight`: not written when tie_word_embeddings",
    );
    weights.pop();
    weights.push(("model.extra.weight".into(), embed.clone()));
    refuse(
        &weights,
        "model.extra.weight`: not a tensor of a Qwen3ForCausalLM",
    );
    weights.pop();
    let norm = weights.pop().unwrap();
    refuse(&weights, "model.norm.weight`: missing");
    weights.push((norm.0, embed));
    refuse(&weights, "shape [300, 64], the config needs [64]");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let untied = small_config(false);
    let err = check_tensors(
        &untied,
        named_weights(&vars, &cfg)
            .iter()
            .map(|(n, t)| (n.as_str(), t.dims())),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("lm_head.weight`: missing") && err.contains("tie_word_embeddings"),
        "{err}"
    );
}

#[test]
fn an_existing_directory_is_kept_without_replace() {
    let dir = tempfile::tempdir().unwrap();
    let (_model, vars, cfg) = trained_model(dir.path(), true);
    let out = dir.path().join("m");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), "x").unwrap();
    let opts = WriteOptions::new(CheckpointDType::F32);
    let err = write_model_dir(&out, &cfg, &named_weights(&vars, &cfg), &opts, &|_| {}).unwrap_err();
    assert!(
        matches!(&err, ModelError::Io { source, .. }
        if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{err}"
    );
    assert!(out.join("keep.txt").exists());
}
