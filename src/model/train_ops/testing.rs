//! Gradient checks shared by the op tests: a fused op against its composed
//! candle reference (values and gradients in f32) and against central finite
//! differences (in f64).

use candle_core::{DType, Device, Result, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Relative tolerance of fused vs composed, in f32.
pub const F32_TOL: f64 = 1e-5;

/// The inputs of one check: shapes, values (f64) and which inputs are
/// constants (no gradient checked, e.g. rotary tables).
pub struct Case {
    pub shapes: Vec<Vec<usize>>,
    pub values: Vec<Vec<f64>>,
    pub constant: Vec<bool>,
    seed: u64,
}

impl Case {
    /// Uniform values in [-1.5, 1.5].
    pub fn new(shapes: &[&[usize]], seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let values = shapes
            .iter()
            .map(|s| {
                (0..s.iter().product::<usize>())
                    .map(|_| rng.random_range(-1.5..1.5))
                    .collect()
            })
            .collect();
        Self {
            shapes: shapes.iter().map(|s| s.to_vec()).collect(),
            values,
            constant: vec![false; shapes.len()],
            seed,
        }
    }

    pub fn constant(mut self, i: usize) -> Self {
        self.constant[i] = true;
        self
    }

    pub fn scaled(mut self, i: usize, factor: f64) -> Self {
        for v in &mut self.values[i] {
            *v *= factor;
        }
        self
    }

    fn vars(&self, dtype: DType) -> Vec<Var> {
        self.values
            .iter()
            .zip(&self.shapes)
            .map(|(v, s)| {
                let t = Tensor::from_vec(v.clone(), s.as_slice(), &Device::Cpu).unwrap();
                Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
            })
            .collect()
    }
}

fn tensors(vars: &[Var]) -> Vec<Tensor> {
    vars.iter().map(|v| v.as_tensor().clone()).collect()
}

fn to_f64(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// `max|a − b| / max|b|` (0 when both are zero).
pub fn rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

/// Σ y·R for a fixed random R: a scalar whose gradient exercises every
/// output element with a different weight.
fn projection(y: &Tensor, seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9);
    let r: Vec<f64> = (0..y.elem_count())
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let r = Tensor::from_vec(r, y.shape(), y.device())
        .unwrap()
        .to_dtype(y.dtype())
        .unwrap();
    (y * r).unwrap().sum_all().unwrap()
}

/// Fused vs composed (f32 values and gradients within [`F32_TOL`]), and the
/// fused op's gradients vs central differences in f64.
pub fn check_op(
    name: &str,
    case: &Case,
    fused: impl Fn(&[Tensor]) -> Result<Tensor>,
    composed: impl Fn(&[Tensor]) -> Result<Tensor>,
) {
    // f32: fused against composed.
    let vars = case.vars(DType::F32);
    let ts = tensors(&vars);
    let yf = fused(&ts).unwrap();
    let yc = composed(&ts).unwrap();
    assert_eq!(yf.dims(), yc.dims(), "{name}: output shapes differ");
    let d = rel_diff(&to_f64(&yf), &to_f64(&yc));
    assert!(
        d <= F32_TOL,
        "{name}: f32 values differ by {d:.2e} (relative)"
    );
    let gf = projection(&yf, case.seed).backward().unwrap();
    let gc = projection(&yc, case.seed).backward().unwrap();
    for (i, v) in vars.iter().enumerate() {
        if case.constant[i] {
            continue;
        }
        let a = to_f64(gf.get(v.as_tensor()).expect("fused gradient"));
        let b = to_f64(gc.get(v.as_tensor()).expect("composed gradient"));
        let d = rel_diff(&a, &b);
        assert!(
            d <= F32_TOL,
            "{name}: f32 gradient of input {i} differs by {d:.2e} (relative)"
        );
    }

    // f64: fused against finite differences.
    let vars = case.vars(DType::F64);
    let ts = tensors(&vars);
    let yf = fused(&ts).unwrap();
    let yc = composed(&ts).unwrap();
    let d = rel_diff(&to_f64(&yf), &to_f64(&yc));
    assert!(
        d <= 1e-12,
        "{name}: f64 values differ by {d:.2e} (relative)"
    );
    let grads = projection(&yf, case.seed).backward().unwrap();
    let loss = |ts: &[Tensor]| -> f64 {
        projection(&fused(ts).unwrap(), case.seed)
            .to_scalar::<f64>()
            .unwrap()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(case.seed);
    for (i, v) in vars.iter().enumerate() {
        if case.constant[i] {
            continue;
        }
        let g = to_f64(grads.get(v.as_tensor()).expect("fused f64 gradient"));
        let gmax = g.iter().fold(0f64, |m, x| m.max(x.abs()));
        let argmax = (0..g.len())
            .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
            .unwrap_or(0);
        let mut picks = vec![0, g.len() - 1, argmax];
        picks.extend((0..5).map(|_| rng.random_range(0..g.len())));
        let orig = case.values[i].clone();
        for idx in picks {
            let h = 1e-5 * orig[idx].abs().max(1.0);
            let at = |delta: f64| {
                let mut vals = orig.clone();
                vals[idx] += delta;
                v.set(&Tensor::from_vec(vals, v.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                loss(&tensors(&vars))
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            v.set(&Tensor::from_vec(orig.clone(), v.shape(), &Device::Cpu).unwrap())
                .unwrap();
            let err = (numeric - g[idx]).abs();
            assert!(
                err <= 1e-6 * gmax.max(1e-3),
                "{name}: input {i}[{idx}]: analytic {} vs numeric {numeric} (max |g| {gmax})",
                g[idx]
            );
        }
    }
}
