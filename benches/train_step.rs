//! One training step — `load_trainable` + `forward(Mode::Train)` +
//! `token_logprobs` loss + backward + AdamW — on the Qwen3-shape models of
//! issue 13's speed goal, against HF transformers on PyTorch eager
//! (`benches/train_step_torch.py`) on the same model directory and batch.
//!
//! ```text
//! cargo bench --bench train_step -- [--models small,large] [--steps 3] [--warmup 1]
//!     [--seqs 32] [--len 128] [--dir DIR] [--composed] [--profile]
//!     [--python /work/pyenv/bin/python | --no-python] [--torch-json FILE]
//! ```
//!
//! * `small`: vocab 512, hidden 256, 4 layers, 4 heads / 2 KV heads,
//!   head_dim 64, intermediate 768, tied embeddings (3.3M parameters).
//! * `large`: the same with hidden 512, 8 heads / 4 KV heads, intermediate
//!   1536 (12.9M parameters, 3.9x).
//!
//! The batch is `--seqs` random sequences of `--len` tokens (seeded); the
//! loss is the next-token NLL averaged over every predicted token, as in the
//! Python script. The optimiser is candle-nn's `AdamW` with its defaults (lr
//! 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01, the same as torch's).
//! Per model it prints tokens/s of the median step, the median forward /
//! backward / update seconds, peak RSS, and, when the Python side ran (the
//! interpreter given by `--python`, default `/work/pyenv/bin/python` if it
//! exists), the same for PyTorch and the ratio Quorum/PyTorch. `--composed`
//! also times `Mode::TrainComposed` (candle's composed ops: the path before
//! the fused ops). `--profile` prints where the fused step's time goes.
//! `--torch-json FILE` reads PyTorch results (one JSON line per model, with a
//! `"model"` key) instead of running Python.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use quorum::model::init::{init_model, InitOptions, TokenizerSource};
use quorum::model::presets::preset;
use quorum::model::train_ops::{profile, token_logprobs};
use quorum::model::{load_trainable, Mode, ModelConfig, Positions, SeqInput};
use rand::{Rng, SeedableRng};

struct Args {
    models: Vec<String>,
    steps: usize,
    warmup: usize,
    seqs: usize,
    len: usize,
    dir: PathBuf,
    composed: bool,
    profile: bool,
    python: Option<PathBuf>,
    torch_json: Option<PathBuf>,
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let num =
        |name: &str, default: usize| value(name).and_then(|v| v.parse().ok()).unwrap_or(default);
    let flag = |name: &str| args.iter().any(|a| a == name);
    let default_python = PathBuf::from("/work/pyenv/bin/python");
    let python = if flag("--no-python") {
        None
    } else {
        value("--python")
            .map(PathBuf::from)
            .or_else(|| default_python.is_file().then_some(default_python))
    };
    Args {
        models: value("--models")
            .unwrap_or_else(|| "small,large".into())
            .split(',')
            .map(str::to_string)
            .collect(),
        steps: num("--steps", 3).max(1),
        warmup: num("--warmup", 1),
        seqs: num("--seqs", 32),
        len: num("--len", 128),
        dir: value("--dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("quorum-train-step")),
        composed: flag("--composed"),
        profile: flag("--profile"),
        python,
        torch_json: value("--torch-json").map(PathBuf::from),
    }
}

fn model_config(name: &str) -> ModelConfig {
    let mut cfg = preset("tiny").expect("tiny preset");
    cfg.vocab_size = 512;
    cfg.num_hidden_layers = 4;
    cfg.head_dim = Some(64);
    cfg.tie_word_embeddings = true;
    cfg.max_position_embeddings = 2048;
    cfg.eos_token_id = None;
    cfg.bos_token_id = None;
    let (hidden, heads, kv, inter) = match name {
        "small" => (256, 4, 2, 768),
        "large" => (512, 8, 4, 1536),
        other => panic!("unknown model `{other}` (small, large)"),
    };
    cfg.hidden_size = hidden;
    cfg.num_attention_heads = heads;
    cfg.num_key_value_heads = Some(kv);
    cfg.intermediate_size = inter;
    cfg
}

#[derive(Default, Clone, Copy)]
struct Step {
    forward: f64,
    backward: f64,
    update: f64,
    loss: f64,
}

impl Step {
    fn total(&self) -> f64 {
        self.forward + self.backward + self.update
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Report {
    tokens_per_s: f64,
    forward: f64,
    backward: f64,
    update: f64,
    load: f64,
    peak_rss_mb: f64,
    loss: f64,
}

/// Peak resident set size of this process since the last reset, in MiB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Reset the peak RSS counter (Linux `clear_refs` 5).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn run_quorum(dir: &Path, batch: &[Vec<u32>], args: &Args, mode: Mode) -> Report {
    reset_peak_rss();
    let dev = Device::Cpu;
    let t0 = Instant::now();
    let (model, varmap, _) = load_trainable(dir, DType::F32, &dev).expect("load_trainable");
    let load = t0.elapsed().as_secs_f64();
    let mut opt = AdamW::new(varmap.all_vars(), ParamsAdamW::default()).expect("adamw");
    // Next-token targets; the last position of each sequence predicts nothing.
    let mut targets = Vec::new();
    let mut weights = Vec::new();
    for s in batch {
        targets.extend(s[1..].iter().copied());
        targets.push(0);
        weights.extend(std::iter::repeat_n(1f32, s.len() - 1));
        weights.push(0.0);
    }
    let n_pred: f32 = weights.iter().sum();
    let targets = Tensor::new(targets.as_slice(), &dev).unwrap();
    let weights = (Tensor::new(weights.as_slice(), &dev).unwrap() / n_pred as f64).unwrap();
    let mut steps = Vec::new();
    for i in 0..args.warmup + args.steps {
        if i == args.warmup {
            profile::enable(args.profile && mode == Mode::Train);
        }
        let t = Instant::now();
        let mut seqs: Vec<SeqInput> = batch
            .iter()
            .map(|s| SeqInput {
                tokens: s,
                cache: None,
            })
            .collect();
        let logits = model
            .forward(&mut seqs, Positions::All, mode)
            .expect("forward");
        let lp = token_logprobs(&logits, &targets).expect("token_logprobs");
        let loss = (lp * &weights).unwrap().sum_all().unwrap().neg().unwrap();
        let loss_value = loss.to_scalar::<f32>().unwrap() as f64;
        let forward = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let grads = loss.backward().expect("backward");
        let backward = t.elapsed().as_secs_f64();
        let t = Instant::now();
        opt.step(&grads).expect("adamw step");
        drop(grads);
        let update = t.elapsed().as_secs_f64();
        steps.push(Step {
            forward,
            backward,
            update,
            loss: loss_value,
        });
    }
    let first_loss = steps[0].loss;
    if args.profile && mode == Mode::Train {
        print_profile(&steps[args.warmup..]);
        profile::enable(false);
    }
    let timed = &steps[args.warmup..];
    let tokens: usize = batch.iter().map(Vec::len).sum();
    Report {
        tokens_per_s: tokens as f64 / median(timed.iter().map(Step::total).collect()),
        forward: median(timed.iter().map(|s| s.forward).collect()),
        backward: median(timed.iter().map(|s| s.backward).collect()),
        update: median(timed.iter().map(|s| s.update).collect()),
        load,
        peak_rss_mb: peak_rss_mb(),
        loss: first_loss,
    }
}

/// PyTorch's result: the faster of OpenMP's default (spinning) wait policy
/// and `OMP_WAIT_POLICY=PASSIVE` (on a shared, loaded machine spinning
/// threads lose their cores and a step can take 4x longer), with the policy
/// that won recorded under `"omp_wait_policy"`.
fn run_torch(
    python: &Path,
    dir: &Path,
    batch_file: &Path,
    args: &Args,
) -> Option<serde_json::Value> {
    let mut best: Option<serde_json::Value> = None;
    for policy in [None, Some("PASSIVE")] {
        let Some(mut r) = run_torch_once(python, dir, batch_file, args, policy) else {
            continue;
        };
        r["omp_wait_policy"] = serde_json::json!(policy.unwrap_or("default"));
        let tps = |v: &serde_json::Value| v["tokens_per_s"].as_f64().unwrap_or(0.0);
        if best.as_ref().is_none_or(|b| tps(&r) > tps(b)) {
            best = Some(r);
        }
    }
    best
}

fn run_torch_once(
    python: &Path,
    dir: &Path,
    batch_file: &Path,
    args: &Args,
    omp_wait_policy: Option<&str>,
) -> Option<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/train_step_torch.py");
    let mut cmd = std::process::Command::new(python);
    if let Some(p) = omp_wait_policy {
        cmd.env("OMP_WAIT_POLICY", p);
    }
    let out = cmd
        .arg(&script)
        .arg("--model")
        .arg(dir)
        .arg("--batch")
        .arg(batch_file)
        .arg("--steps")
        .arg(args.steps.to_string())
        .arg("--warmup")
        .arg(args.warmup.to_string())
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout);
            let line = text
                .lines()
                .rev()
                .find(|l| l.trim_start().starts_with('{'))?;
            serde_json::from_str(line).ok()
        }
        Ok(o) => {
            eprintln!(
                "train_step: python failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("train_step: cannot run {}: {e}", python.display());
            None
        }
    }
}

fn torch_from_file(file: &Path, model: &str) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["model"].as_str() == Some(model))
}

/// Per-op totals of the timed steps, per step, and what is left outside them.
fn print_profile(steps: &[Step]) {
    let n = steps.len() as f64;
    let (mut fwd_ops, mut bwd_ops) = (0.0, 0.0);
    println!("  per step, fused ops (forward / backward seconds, calls):");
    for t in profile::totals() {
        if t.forward_calls == 0 && t.backward_calls == 0 {
            continue;
        }
        fwd_ops += t.forward_s / n;
        bwd_ops += t.backward_s / n;
        println!(
            "    {:<18} {:>7.4} s / {:>7.4} s   ({} / {} calls)",
            t.op.name(),
            t.forward_s / n,
            t.backward_s / n,
            t.forward_calls as f64 / n,
            t.backward_calls as f64 / n
        );
    }
    let fwd: f64 = steps.iter().map(|s| s.forward).sum::<f64>() / n;
    let bwd: f64 = steps.iter().map(|s| s.backward).sum::<f64>() / n;
    println!(
        "    outside the ops:   {:>7.4} s / {:>7.4} s   (candle autograd, residual adds, embedding)",
        fwd - fwd_ops,
        bwd - bwd_ops
    );
}

fn print_row(who: &str, r: &Report) {
    println!(
        "  {who:<16} {:>9.0} tok/s   forward {:>6.3} s   backward {:>6.3} s   update {:>6.3} s   peak RSS {:>6.0} MiB   loss {:.5}   (load {:.3} s)",
        r.tokens_per_s, r.forward, r.backward, r.update, r.peak_rss_mb, r.loss, r.load
    );
}

fn main() {
    // Before any candle op: see the function's docs (the trainer does the same).
    quorum::model::train_ops::single_threaded_candle_elementwise();
    let args = parse_args();
    // As `quorum serve` does: keep freed buffers mapped instead of paying
    // page faults for every step's fresh activations and gradients.
    quorum::alloc::keep_freed_memory();
    std::fs::create_dir_all(&args.dir).expect("bench dir");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(13);
    println!(
        "train_step: {} seqs x {} tokens, {} rayon threads, {} timed steps after {} warmup",
        args.seqs,
        args.len,
        rayon::current_num_threads(),
        args.steps,
        args.warmup
    );
    for name in &args.models {
        let cfg = model_config(name);
        let dir = args.dir.join(name);
        let mut opts = InitOptions::new(cfg.clone(), &dir);
        opts.seed = 7;
        opts.force = true;
        opts.tokenizer = TokenizerSource::None;
        let report = init_model(&opts, &|_| {}).expect("init_model");
        let batch: Vec<Vec<u32>> = (0..args.seqs)
            .map(|_| {
                (0..args.len)
                    .map(|_| rng.random_range(0..cfg.vocab_size as u32))
                    .collect()
            })
            .collect();
        let batch_file = args.dir.join(format!("{name}-batch.json"));
        std::fs::write(
            &batch_file,
            serde_json::to_string(&serde_json::json!({ "seqs": batch })).unwrap(),
        )
        .expect("write batch");
        println!(
            "{name}: hidden {}, {} layers, {} heads / {} KV heads, intermediate {}, vocab {}: {:.2}M parameters ({})",
            cfg.hidden_size,
            cfg.num_hidden_layers,
            cfg.num_attention_heads,
            cfg.num_key_value_heads.unwrap_or(cfg.num_attention_heads),
            cfg.intermediate_size,
            cfg.vocab_size,
            report.params as f64 / 1e6,
            dir.display()
        );
        let ours = run_quorum(&dir, &batch, &args, Mode::Train);
        print_row("quorum (fused)", &ours);
        if args.composed {
            let composed = run_quorum(&dir, &batch, &args, Mode::TrainComposed);
            print_row("quorum (composed)", &composed);
        }
        let torch = match (&args.torch_json, &args.python) {
            (Some(f), _) => torch_from_file(f, name),
            (None, Some(py)) => run_torch(py, &dir, &batch_file, &args),
            (None, None) => None,
        };
        match torch {
            Some(t) => {
                let f = |k: &str| t[k].as_f64().unwrap_or(f64::NAN);
                let r = Report {
                    tokens_per_s: f("tokens_per_s"),
                    forward: f("forward_s"),
                    backward: f("backward_s"),
                    update: f("update_s"),
                    load: f64::NAN,
                    peak_rss_mb: f("peak_rss_mb"),
                    loss: f("loss"),
                };
                print_row("pytorch eager", &r);
                println!(
                    "  (pytorch: OMP_WAIT_POLICY {}, the faster of default and PASSIVE)",
                    t["omp_wait_policy"].as_str().unwrap_or("default")
                );
                println!(
                    "  ratio quorum/pytorch: {:.2}x tokens/s (first-step losses {:.5} vs {:.5})",
                    ours.tokens_per_s / r.tokens_per_s,
                    ours.loss,
                    r.loss
                );
            }
            None => println!("  (no PyTorch result: pass --python or --torch-json)"),
        }
    }
}
