//! `quorum model init`: write a random-weight model directory in Hugging Face format.
//!
//! Tests and benchmarks need real architectures (real tensor names, shapes, dtypes,
//! sharding) without downloading checkpoints. This module decides *what* is written: the
//! tensor layout of a config ([`super::tensor_plan`]) and deterministic random values for it; the
//! directory itself — `config.json`, `generation_config.json`, `model.safetensors` (or
//! `model-0000X-of-0000Y.safetensors` + `model.safetensors.index.json`), the tokenizer files,
//! written atomically — comes from [`super::checkpoint`], the same writer training uses, so
//! the same loader path serves random, initial and trained weights.
//!
//! Design points:
//! - **Deterministic, order-independent values.** Every tensor has its own ChaCha8 key,
//!   derived from the seed and the tensor *name*. Element `i` of a tensor always consumes
//!   keystream word `i`, so a tensor's bytes depend only on (seed, name, shape, dtype):
//!   not on write order, sharding or thread count.
//! - **Streaming.** Tensors are generated lazily when the writer reaches them, one at a
//!   time, so peak memory is one tensor (the embedding), never the whole model.

#[cfg(test)]
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::checkpoint::{write_model_dir, TensorData, WriteOptions};
use super::tensor_plan::{hf_architecture_name, tensor_plan, InitKind, TensorSpec};
use super::{ModelConfig, ModelError};

use super::checkpoint::max_token_id;

pub use super::checkpoint::{
    CheckpointDType as InitDType, WriteProgress as InitProgress, WriteReport as InitReport,
};

/// Standard deviation of weight matrices, embeddings and biases (HF `initializer_range`).
const INIT_STD: f32 = 0.02;
/// RMSNorm weights are `1 + N(0, NORM_NOISE_STD)`: close to the trained regime, but not all
/// exactly 1 so a loader that drops or misplaces a norm weight shows up in outputs.
const NORM_NOISE_STD: f32 = 0.02;
/// Elements per parallel generation chunk (even, so Box–Muller pairs never straddle chunks).
const CHUNK: usize = 1 << 16;

/// Where the tokenizer files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerSource {
    /// A directory holding `tokenizer.json` and `tokenizer_config.json` (the Qwen3
    /// tokenizer fixture, a `quorum train tokenizer` output, or any override); both are
    /// copied into the model directory, with the optional files of
    /// [`super::checkpoint::OPTIONAL_TOKENIZER_FILES`] it has.
    Qwen3Fixture(PathBuf),
    /// Write weights and configs only.
    None,
}

impl TokenizerSource {
    /// The repository's Qwen3 tokenizer fixture, resolved relative to this crate's sources
    /// so it works from any working directory (of a binary built from this checkout).
    pub fn default_fixture() -> Self {
        Self::Qwen3Fixture(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/qwen3-tokenizer"),
        )
    }
}

/// Everything `init_model` needs.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Shape and metadata; `architectures`, `model_type`, `torch_dtype` and (with
    /// `reward_head`) `num_labels` are overwritten to match what is written.
    pub config: ModelConfig,
    /// The model directory to create.
    pub out: PathBuf,
    pub seed: u64,
    pub dtype: InitDType,
    /// Largest tensor-data size of one safetensors file; `None` =
    /// [`super::checkpoint::DEFAULT_SHARD_MAX_BYTES`].
    pub shard_max_bytes: Option<u64>,
    pub tokenizer: TokenizerSource,
    /// Write a sequence-classification (reward model) head `score.weight` of shape
    /// `(1, hidden)` instead of an LM head.
    pub reward_head: bool,
    /// Replace `out` if it exists and is not empty.
    pub force: bool,
}

impl InitOptions {
    /// Defaults: seed 0, f32, HF shard size, the repo's tokenizer fixture, LM head, no force.
    pub fn new(config: ModelConfig, out: impl Into<PathBuf>) -> Self {
        Self {
            config,
            out: out.into(),
            seed: 0,
            dtype: InitDType::F32,
            shard_max_bytes: None,
            tokenizer: TokenizerSource::default_fixture(),
            reward_head: false,
            force: false,
        }
    }
}

/// The normal distribution `(mean, std)` a tensor of this kind is drawn from.
fn mean_std(kind: InitKind) -> (f32, f32) {
    match kind {
        InitKind::Matrix | InitKind::Bias => (0.0, INIT_STD),
        InitKind::Norm => (1.0, NORM_NOISE_STD),
    }
}

/// Reads a model config file for `model init --config`. With `tokenizer_dir`, the fields a
/// tokenizer determines may be left out of the file and are then taken from it:
/// `vocab_size` (largest token id + 1), and `eos_token_id` / `pad_token_id` /
/// `bos_token_id` (the ids of `tokenizer_config.json`'s `eos_token`, `pad_token`,
/// `bos_token`). Fields the file sets are kept as they are.
pub fn config_for_tokenizer(
    path: &Path,
    tokenizer_dir: Option<&Path>,
) -> Result<ModelConfig, ModelError> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let Some(dir) = tokenizer_dir else {
        return ModelConfig::from_json_str(&text, path);
    };
    let mut v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| ModelError::Malformed {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let Some(map) = v.as_object_mut() else {
        return Err(ModelError::Malformed {
            path: path.to_path_buf(),
            message: "top level is not a JSON object".into(),
        });
    };
    let tok = crate::tokenizer::Tokenizer::from_dir(dir).map_err(|e| ModelError::Malformed {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    if !map.contains_key("vocab_size") {
        let tok_path = dir.join("tokenizer.json");
        let max_id = max_token_id(&tok_path)?.ok_or_else(|| ModelError::Malformed {
            path: tok_path.clone(),
            message: "has no tokens".into(),
        })?;
        map.insert("vocab_size".into(), (max_id + 1).into());
    }
    let ids = [
        ("eos_token_id", tok.eos_token_ids().first().copied()),
        ("pad_token_id", tok.pad_token_id()),
        ("bos_token_id", tok.bos_token_id()),
    ];
    for (field, id) in ids {
        if let (false, Some(id)) = (map.contains_key(field), id) {
            map.insert(field.into(), id.into());
        }
    }
    ModelConfig::from_json_str(&v.to_string(), path)
}

/// Write a random-weight HF model directory at `opts.out`.
///
/// `progress` is called on this thread (never from worker threads), so a non-`Sync`
/// progress bar handle is fine.
pub fn init_model(
    opts: &InitOptions,
    progress: &dyn Fn(InitProgress<'_>),
) -> Result<InitReport, ModelError> {
    let cfg = output_config(opts)?;
    let plan = tensor_plan(&cfg, opts.reward_head)?;
    let tensors: Vec<GeneratedTensor> = plan
        .iter()
        .map(|spec| GeneratedTensor {
            spec,
            seed: opts.seed,
        })
        .collect();
    let write = WriteOptions {
        shard_max_bytes: opts.shard_max_bytes,
        tokenizer_dir: match &opts.tokenizer {
            TokenizerSource::Qwen3Fixture(dir) => Some(dir.as_path()),
            TokenizerSource::None => None,
        },
        replace: opts.force,
        ..WriteOptions::new(opts.dtype)
    };
    write_model_dir(&opts.out, &cfg, &tensors, &write, progress)
}

/// The config as written: `architectures`, `model_type`, `torch_dtype`, `num_labels`
/// describe the files actually produced.
fn output_config(opts: &InitOptions) -> Result<ModelConfig, ModelError> {
    let mut cfg = opts.config.clone();
    let arch = cfg.architecture()?;
    cfg.architectures = vec![hf_architecture_name(arch, opts.reward_head)];
    cfg.model_type = Some(arch.model_type().to_string());
    cfg.torch_dtype = Some(opts.dtype.torch_name().to_string());
    cfg.num_labels = opts.reward_head.then_some(1);
    Ok(cfg)
}

/// A tensor of the plan whose values are drawn when the writer asks for its bytes.
struct GeneratedTensor<'a> {
    spec: &'a TensorSpec,
    seed: u64,
}

impl TensorData for GeneratedTensor<'_> {
    fn name(&self) -> &str {
        &self.spec.name
    }

    fn shape(&self) -> Vec<usize> {
        self.spec.shape.clone()
    }

    fn bytes(&self, dtype: InitDType) -> Result<Vec<u8>, ModelError> {
        Ok(generate(self.spec, self.seed, dtype))
    }
}

/// SplitMix64 step: a well-mixed 64-bit sequence from any state, used to expand
/// (seed, name) into a ChaCha key.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The ChaCha8 key of one tensor: a function of the seed and the tensor name only.
fn tensor_key(seed: u64, name: &str) -> [u8; 32] {
    // FNV-1a of the name: stable across Rust versions, unlike `DefaultHasher`.
    let name_hash = name.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    });
    let mut state = seed;
    let mixed_seed = splitmix64(&mut state);
    let mut state = mixed_seed ^ name_hash;
    let mut key = [0u8; 32];
    for word in key.chunks_exact_mut(8) {
        word.copy_from_slice(&splitmix64(&mut state).to_le_bytes());
    }
    key
}

/// The little-endian bytes of one tensor's values.
///
/// Element `i` is drawn from keystream words `2⌊i/2⌋` and `2⌊i/2⌋+1` (one Box–Muller pair
/// per two elements), so chunks can seek to their start and run in parallel with results
/// independent of chunking and thread count. Byte-identical across runs of one build on
/// one platform; across platforms the last bit may differ where libm's `logf`/`sincosf` do.
fn generate(spec: &TensorSpec, seed: u64, dtype: InitDType) -> Vec<u8> {
    let n = spec.shape.iter().product::<usize>();
    let esize = dtype.size();
    let key = tensor_key(seed, &spec.name);
    let (mean, std) = mean_std(spec.kind);
    let mut out = vec![0u8; n * esize];
    out.par_chunks_mut(CHUNK * esize)
        .enumerate()
        .for_each(|(ci, bytes)| {
            let mut rng = ChaCha8Rng::from_seed(key);
            rng.set_word_pos((ci * CHUNK) as u128);
            match dtype {
                InitDType::F32 => fill(bytes, &mut rng, mean, std, f32::to_le_bytes),
                InitDType::Bf16 => fill(bytes, &mut rng, mean, std, |v| {
                    half::bf16::from_f32(v).to_le_bytes()
                }),
                InitDType::F16 => fill(bytes, &mut rng, mean, std, |v| {
                    half::f16::from_f32(v).to_le_bytes()
                }),
            }
        });
    out
}

/// Two independent standard normals from two uniform 32-bit words.
fn box_muller(a: u32, b: u32) -> (f32, f32) {
    const SCALE: f32 = 1.0 / (1u32 << 24) as f32;
    // u1 in (0, 1] so ln(u1) is finite; u2 in [0, 1).
    let u1 = ((a >> 8) + 1) as f32 * SCALE;
    let u2 = (b >> 8) as f32 * SCALE;
    let r = (-2.0 * u1.ln()).sqrt();
    let (s, c) = (std::f32::consts::TAU * u2).sin_cos();
    (r * c, r * s)
}

/// Fill `out` with `mean + std * N(0, 1)` values encoded by `enc` (`N` bytes each), one
/// Box–Muller pair per two elements; an odd last element uses the pair's first value.
/// Encodes straight into the output bytes: no intermediate f32 buffer.
fn fill<const N: usize>(
    out: &mut [u8],
    rng: &mut ChaCha8Rng,
    mean: f32,
    std: f32,
    enc: impl Fn(f32) -> [u8; N],
) {
    let mut pairs = out.chunks_exact_mut(2 * N);
    for pair in &mut pairs {
        let (z0, z1) = box_muller(rng.next_u32(), rng.next_u32());
        pair[..N].copy_from_slice(&enc(mean + std * z0));
        pair[N..].copy_from_slice(&enc(mean + std * z1));
    }
    let rest = pairs.into_remainder();
    if !rest.is_empty() {
        let (z0, _) = box_muller(rng.next_u32(), rng.next_u32());
        rest.copy_from_slice(&enc(mean + std * z0));
    }
}

/// Number of weight elements [`init_model`] writes for `cfg` (for the tests' parameter
/// counts).
#[cfg(test)]
fn param_count(cfg: &ModelConfig, reward_head: bool) -> Result<u64, ModelError> {
    Ok(tensor_plan(cfg, reward_head)?
        .iter()
        .map(|s| s.shape.iter().map(|&d| d as u64).product::<u64>())
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::presets::preset;
    use candle_core::{DType, Device, Tensor};
    use std::collections::HashSet;

    fn fixture() -> TokenizerSource {
        TokenizerSource::default_fixture()
    }

    fn opts(name: &str, out: &Path) -> InitOptions {
        InitOptions::new(preset(name).unwrap(), out)
    }

    fn quiet(_: InitProgress<'_>) {}

    fn load(path: &Path) -> HashMap<String, Tensor> {
        candle_core::safetensors::load(path, &Device::Cpu).unwrap()
    }

    /// The tiny preset's tensors, spelled out independently of `tensor_plan`.
    fn expected_tiny() -> BTreeMap<String, Vec<usize>> {
        let mut m = BTreeMap::new();
        m.insert("model.embed_tokens.weight".to_string(), vec![151_936, 64]);
        m.insert("model.norm.weight".to_string(), vec![64]);
        for i in 0..2 {
            let p = format!("model.layers.{i}");
            for (n, s) in [
                ("self_attn.q_proj.weight", vec![64, 64]),
                ("self_attn.k_proj.weight", vec![32, 64]),
                ("self_attn.v_proj.weight", vec![32, 64]),
                ("self_attn.o_proj.weight", vec![64, 64]),
                ("self_attn.q_norm.weight", vec![16]),
                ("self_attn.k_norm.weight", vec![16]),
                ("mlp.gate_proj.weight", vec![128, 64]),
                ("mlp.up_proj.weight", vec![128, 64]),
                ("mlp.down_proj.weight", vec![64, 128]),
                ("input_layernorm.weight", vec![64]),
                ("post_attention_layernorm.weight", vec![64]),
            ] {
                m.insert(format!("{p}.{n}"), s);
            }
        }
        m
    }

    fn shapes(tensors: &HashMap<String, Tensor>) -> BTreeMap<String, Vec<usize>> {
        tensors
            .iter()
            .map(|(k, v)| (k.clone(), v.dims().to_vec()))
            .collect()
    }

    #[test]
    fn tiny_writes_hf_names_shapes_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tiny");
        let events = std::cell::RefCell::new(Vec::new());
        let report = init_model(&opts("tiny", &out), &|p| {
            events.borrow_mut().push(format!("{p:?}"))
        })
        .unwrap();

        let tensors = load(&out.join("model.safetensors"));
        assert_eq!(shapes(&tensors), expected_tiny());
        assert!(tensors.values().all(|t| t.dtype() == DType::F32));
        let params: usize = expected_tiny()
            .values()
            .map(|s| s.iter().product::<usize>())
            .sum();
        assert_eq!(report.params, params as u64);
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);

        let names: Vec<_> = report
            .files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap().to_string())
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
        let on_disk: u64 = report
            .files
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len())
            .sum();
        assert_eq!(report.bytes, on_disk);

        let cfg = ModelConfig::from_file(&out.join("config.json")).unwrap();
        assert_eq!(cfg.architectures, ["Qwen3ForCausalLM"]);
        assert_eq!(cfg.model_type.as_deref(), Some("qwen3"));
        assert_eq!(cfg.torch_dtype.as_deref(), Some("float32"));
        assert_eq!(cfg.num_labels, None);
        let raw = std::fs::read_to_string(out.join("config.json")).unwrap();
        assert!(!raw.contains("null"), "{raw}");
        let gen: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out.join("generation_config.json")).unwrap())
                .unwrap();
        assert_eq!(gen["eos_token_id"], serde_json::json!([151_645]));
        assert!(gen.get("bos_token_id").is_none());
        assert_eq!(gen["top_k"], 20);
        let fixture_tok = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/qwen3-tokenizer/tokenizer_config.json");
        assert_eq!(
            std::fs::read(out.join("tokenizer_config.json")).unwrap(),
            std::fs::read(fixture_tok).unwrap()
        );

        // Progress: one Start, one Tensor per tensor, one File; no temp dirs left behind.
        let events = events.into_inner();
        assert!(events[0].starts_with("Start"));
        let n_tensor = events.iter().filter(|e| e.starts_with("Tensor")).count();
        assert_eq!(n_tensor, expected_tiny().len());
        assert!(events.last().unwrap().starts_with("File"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1);
    }

    #[test]
    fn values_have_the_intended_distributions() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m");
        init_model(&opts("tiny", &out), &quiet).unwrap();
        let t = load(&out.join("model.safetensors"));
        let stats = |name: &str| {
            let v: Vec<f32> = t[name].flatten_all().unwrap().to_vec1().unwrap();
            let n = v.len() as f64;
            let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
            let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
            (mean, var.sqrt())
        };
        let (m, s) = stats("model.embed_tokens.weight");
        assert!(m.abs() < 1e-3 && (s - 0.02).abs() < 1e-3, "{m} {s}");
        let (m, s) = stats("model.layers.0.mlp.down_proj.weight");
        assert!(m.abs() < 2e-3 && (s - 0.02).abs() < 2e-3, "{m} {s}");
        let (m, s) = stats("model.layers.1.input_layernorm.weight");
        assert!((m - 1.0).abs() < 0.01 && s > 0.01 && s < 0.03, "{m} {s}");
        // Distinct tensors get distinct streams.
        let q0: Vec<f32> = t["model.layers.0.self_attn.q_proj.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let q1: Vec<f32> = t["model.layers.1.self_attn.q_proj.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_ne!(q0, q1);
    }

    #[test]
    fn same_seed_is_byte_identical_and_other_seed_differs() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, seed: u64| {
            let out = dir.path().join(name);
            let mut o = opts("tiny-qwen2", &out);
            o.seed = seed;
            o.tokenizer = TokenizerSource::None;
            init_model(&o, &quiet).unwrap();
            std::fs::read(out.join("model.safetensors")).unwrap()
        };
        let a = write("a", 7);
        let b = write("b", 7);
        let c = write("c", 8);
        assert!(a == b, "same seed must give identical bytes");
        assert_eq!(a.len(), c.len());
        assert!(a != c, "different seeds must differ");
    }

    #[test]
    fn sharding_writes_an_index_covering_every_tensor_once() {
        let dir = tempfile::tempdir().unwrap();
        let single = dir.path().join("single");
        let mut o = opts("tiny", &single);
        o.tokenizer = TokenizerSource::None;
        init_model(&o, &quiet).unwrap();
        let whole = load(&single.join("model.safetensors"));

        let sharded = dir.path().join("sharded");
        o.out = sharded.clone();
        // Smaller than the embedding (38.9 MB) and larger than one layer: 3+ files.
        o.shard_max_bytes = Some(200_000);
        let report = init_model(&o, &quiet).unwrap();
        assert!(!sharded.join("model.safetensors").exists());
        let index: serde_json::Value = serde_json::from_slice(
            &std::fs::read(sharded.join("model.safetensors.index.json")).unwrap(),
        )
        .unwrap();
        let map = index["weight_map"].as_object().unwrap();
        let files: HashSet<&str> = map.values().map(|v| v.as_str().unwrap()).collect();
        let count = files.len();
        assert!(count >= 3, "{count} shards");
        for i in 1..=count {
            assert!(files.contains(format!("model-{i:05}-of-{count:05}.safetensors").as_str()));
        }

        let mut seen = BTreeMap::new();
        let mut total = 0u64;
        for file in &files {
            for (name, t) in load(&sharded.join(file)) {
                assert_eq!(map[&name].as_str(), Some(*file), "{name}");
                total += (t.elem_count() * t.dtype().size_in_bytes()) as u64;
                assert!(seen.insert(name, t).is_none(), "tensor in two shards");
            }
        }
        assert_eq!(map.len(), seen.len());
        assert_eq!(shapes(&seen.clone().into_iter().collect()), expected_tiny());
        assert_eq!(index["metadata"]["total_size"].as_u64(), Some(total));
        assert_eq!(total, report.params * 4);
        // Sharding (hence write order and grouping) does not change any value.
        for (name, t) in &seen {
            let a: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f32> = whole[name].flatten_all().unwrap().to_vec1().unwrap();
            assert!(a == b, "{name} differs between sharded and single-file");
        }
    }

    #[test]
    fn half_dtypes_write_half_tensors_matching_f32_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts("tiny", &dir.path().join("f32"));
        o.tokenizer = TokenizerSource::None;
        init_model(&o, &quiet).unwrap();
        let f32s = load(&dir.path().join("f32/model.safetensors"));
        for (dtype, name, torch) in [
            (InitDType::Bf16, "bf16", "bfloat16"),
            (InitDType::F16, "f16", "float16"),
        ] {
            let out = dir.path().join(name);
            o.out = out.clone();
            o.dtype = dtype;
            let report = init_model(&o, &quiet).unwrap();
            let t = load(&out.join("model.safetensors"));
            let want = if dtype == InitDType::Bf16 {
                DType::BF16
            } else {
                DType::F16
            };
            assert!(t.values().all(|t| t.dtype() == want));
            let cfg = ModelConfig::from_file(&out.join("config.json")).unwrap();
            assert_eq!(cfg.torch_dtype.as_deref(), Some(torch));
            // Same draws, rounded: the dtype changes precision, not the model.
            let key = "model.layers.0.self_attn.k_proj.weight";
            let a: Vec<f32> = t[key]
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let b: Vec<f32> = f32s[key].flatten_all().unwrap().to_vec1().unwrap();
            assert!(a
                .iter()
                .zip(&b)
                .all(|(x, y)| (x - y).abs() <= y.abs() / 128.0));
            let st_bytes = std::fs::metadata(out.join("model.safetensors"))
                .unwrap()
                .len();
            assert!(st_bytes >= report.params * 2 && st_bytes < report.params * 2 + 65_536);
        }
    }

    #[test]
    fn reward_head_writes_score_and_no_lm_head() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["tiny", "tiny-llama"] {
            let out = dir.path().join(name);
            let mut o = opts(name, &out);
            o.reward_head = true;
            o.tokenizer = TokenizerSource::None;
            init_model(&o, &quiet).unwrap();
            let t = load(&out.join("model.safetensors"));
            assert_eq!(t["score.weight"].dims(), &[1, 64]);
            assert!(!t.contains_key("lm_head.weight"));
            let cfg = ModelConfig::from_file(&out.join("config.json")).unwrap();
            assert_eq!(cfg.num_labels, Some(1));
            assert!(cfg.architectures[0].ends_with("ForSequenceClassification"));
        }
        let cfg = ModelConfig::from_file(&dir.path().join("tiny/config.json")).unwrap();
        assert_eq!(cfg.architectures, ["Qwen3ForSequenceClassification"]);
    }

    #[test]
    fn qwen2_and_llama_layouts() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("q");
        let mut o = opts("tiny-qwen2", &q);
        o.tokenizer = TokenizerSource::None;
        init_model(&o, &quiet).unwrap();
        let t = load(&q.join("model.safetensors"));
        assert_eq!(t["model.layers.1.self_attn.q_proj.bias"].dims(), &[64]);
        assert_eq!(t["model.layers.1.self_attn.k_proj.bias"].dims(), &[32]);
        assert_eq!(t["model.layers.1.self_attn.v_proj.bias"].dims(), &[32]);
        assert!(!t.contains_key("model.layers.0.self_attn.o_proj.bias"));
        assert!(!t.contains_key("model.layers.0.self_attn.q_norm.weight"));
        assert_eq!(t["lm_head.weight"].dims(), &[151_936, 64]);

        let l = dir.path().join("l");
        o = opts("tiny-llama", &l);
        o.tokenizer = TokenizerSource::None;
        init_model(&o, &quiet).unwrap();
        let t = load(&l.join("model.safetensors"));
        assert!(!t
            .keys()
            .any(|k| k.ends_with(".bias") || k.contains("_norm.")));
        assert_eq!(t["lm_head.weight"].dims(), &[151_936, 64]);
        let cfg = ModelConfig::from_file(&l.join("config.json")).unwrap();
        assert_eq!(cfg.rope_scaling, preset("tiny-llama").unwrap().rope_scaling);
    }

    #[test]
    fn refuses_to_overwrite_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m");
        // An existing empty directory is fine to fill.
        std::fs::create_dir(&out).unwrap();
        let mut o = opts("tiny", &out);
        o.tokenizer = TokenizerSource::None;
        init_model(&o, &quiet).unwrap();
        let before = std::fs::read(out.join("model.safetensors")).unwrap();

        o.seed = 99;
        let err = init_model(&o, &quiet).unwrap_err();
        assert!(
            matches!(&err, ModelError::Io { source, .. }
                if source.kind() == std::io::ErrorKind::AlreadyExists),
            "{err}"
        );
        assert_eq!(
            std::fs::read(out.join("model.safetensors")).unwrap(),
            before
        );

        std::fs::write(out.join("stale.txt"), "x").unwrap();
        o.force = true;
        init_model(&o, &quiet).unwrap();
        assert!(!out.join("stale.txt").exists());
        assert_ne!(
            std::fs::read(out.join("model.safetensors")).unwrap(),
            before
        );
        let entries: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(entries.len(), 1, "no staging or parked dirs left");

        // A file at `out` is never replaced, even with force.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        o.out = file;
        assert!(init_model(&o, &quiet).is_err());
    }

    #[test]
    fn failures_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("m");
        let mut o = opts("tiny", &out);
        o.tokenizer = TokenizerSource::Qwen3Fixture(dir.path().join("no-such-tokenizer"));
        let err = init_model(&o, &quiet).unwrap_err();
        assert!(matches!(err, ModelError::MissingFile { .. }), "{err}");

        // A config the loader would reject fails fast and names the final path.
        o.tokenizer = TokenizerSource::None;
        o.config.num_key_value_heads = Some(3);
        let err = init_model(&o, &quiet).unwrap_err();
        assert!(
            matches!(&err, ModelError::InvalidField { path, .. } if path == &out.join("config.json")),
            "{err}"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn tokenizer_wider_than_vocab_is_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = preset("tiny-llama").unwrap();
        cfg.vocab_size = 128_256;
        let mut o = InitOptions::new(cfg, dir.path().join("m"));
        o.tokenizer = fixture();
        let report = init_model(&o, &quiet).unwrap();
        assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    }

    #[test]
    fn public_presets_have_the_published_parameter_counts() {
        // Published: Qwen3-0.6B 0.6B (0.44B non-embedding), Qwen2.5-0.5B 0.49B,
        // Llama-3.2-1B 1.24B. No files are written.
        let qwen3 = preset("qwen3-0.6b").unwrap();
        let total = param_count(&qwen3, false).unwrap();
        let embed = 151_936 * 1024;
        assert_eq!(total, 596_049_920);
        assert_eq!((total - embed) / 10_000_000, 44);
        let q25 = param_count(&preset("qwen2.5-0.5b").unwrap(), false).unwrap();
        assert_eq!(q25 / 10_000_000, 49);
        let llama = param_count(&preset("llama-3.2-1b").unwrap(), false).unwrap();
        assert_eq!(llama / 10_000_000, 123);
    }

    #[test]
    fn generation_is_chunk_independent() {
        // A tensor spanning several parallel chunks with an odd length equals its prefix
        // generated as a smaller tensor of the same name: element i depends on i only.
        let big = TensorSpec {
            name: "x".into(),
            shape: vec![3 * CHUNK + 5],
            kind: InitKind::Matrix,
        };
        let small = TensorSpec {
            shape: vec![CHUNK + 3],
            ..big.clone()
        };
        let a = generate(&big, 1, InitDType::F32);
        let b = generate(&small, 1, InitDType::F32);
        assert_eq!(&a[..b.len()], &b[..]);
    }

    #[test]
    fn dtype_parses_short_and_torch_names() {
        assert_eq!("bf16".parse::<InitDType>(), Ok(InitDType::Bf16));
        assert_eq!("float16".parse::<InitDType>(), Ok(InitDType::F16));
        assert_eq!("F32".parse::<InitDType>(), Ok(InitDType::F32));
        assert!("int8".parse::<InitDType>().is_err());
    }
}

#[cfg(test)]
mod perf {
    use super::*;

    /// Manual check: `cargo test --release --lib model::init::perf -- --ignored --nocapture`.
    #[test]
    #[ignore = "writes 1.2 GB; run by hand to time the 0.6B preset"]
    fn qwen3_0_6b_bf16_write_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = InitOptions::new(
            crate::model::presets::preset("qwen3-0.6b").unwrap(),
            dir.path().join("m"),
        );
        o.dtype = InitDType::Bf16;
        let t = std::time::Instant::now();
        let r = init_model(&o, &|_| {}).unwrap();
        eprintln!(
            "qwen3-0.6b bf16: {} params, {} bytes in {:.2?}",
            r.params,
            r.bytes,
            t.elapsed()
        );
    }
}

#[cfg(test)]
mod small_tokenizer_tests {
    use super::*;
    use crate::model::{load_model, Mode, Positions, SeqInput};
    use crate::tokenizer::train::{train_tokenizer_from_texts, TokenizerTrainOptions};
    use candle_core::Device;

    fn tiny_reasoner() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config/models/tiny-reasoner.json")
    }

    #[test]
    fn a_small_tokenizer_gives_a_few_million_parameter_model() {
        let dir = tempfile::tempdir().unwrap();
        let tok_dir = dir.path().join("tok");
        let texts = (0..2000).map(|i| format!("What is {i} + {i}? The answer is {}.", 2 * i));
        train_tokenizer_from_texts(texts, &TokenizerTrainOptions::new(300))
            .unwrap()
            .save(&tok_dir, false)
            .unwrap();

        let cfg = config_for_tokenizer(&tiny_reasoner(), Some(&tok_dir)).unwrap();
        let vocab = cfg.vocab_size;
        assert!(vocab > 261 && vocab <= 300, "{vocab}");
        assert_eq!(cfg.eos_token_ids(), vec![2]);
        assert_eq!(cfg.pad_token_id, Some(0));
        assert_eq!(cfg.bos_token_id, None);
        assert!(cfg.tie_word_embeddings);
        // Embedding + 4 layers of (q 256x256, k/v 128x256, o 256x256, MLP 3x256x768,
        // q/k norms 64, two norms 256) + final norm; tied, so no head.
        let layer = 256 * 256 * 2 + 128 * 256 * 2 + 3 * 256 * 768 + 2 * 64 + 2 * 256;
        let want = (vocab * 256 + 4 * layer + 256) as u64;
        assert_eq!(param_count(&cfg, false).unwrap(), want);
        assert!((3_000_000..4_000_000).contains(&want), "{want}");

        // Without a tokenizer the file lacks vocab_size: an error naming it.
        let err = config_for_tokenizer(&tiny_reasoner(), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vocab_size"), "{err}");

        let out = dir.path().join("model");
        let mut o = InitOptions::new(cfg, &out);
        o.tokenizer = TokenizerSource::Qwen3Fixture(tok_dir);
        let report = init_model(&o, &|_| {}).unwrap();
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(report.params, want);
        let loaded = load_model(&out, None, &Device::Cpu).unwrap();
        assert_eq!(loaded.eos_token_ids(), vec![2]);
        let tokens = [1u32, 100, 7, 2];
        let mut seqs = [SeqInput {
            tokens: &tokens,
            cache: None,
        }];
        let logits = loaded
            .model
            .forward(&mut seqs, Positions::Last, Mode::Inference)
            .unwrap();
        assert_eq!(logits.dims(), &[1, vocab]);
        let tok = crate::tokenizer::Tokenizer::from_dir(&out).unwrap();
        assert_eq!(tok.vocab_size(), vocab);
    }
}
