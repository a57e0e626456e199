//! Gradients across micro-batches, global-norm clipping, and AdamW with
//! decoupled weight decay whose state (m, v, t) is saved and restored
//! exactly on resume.

use std::collections::HashMap;

use candle_core::{backprop::GradStore, DType, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Summed gradients of named parameters over the micro-batches of a step.
#[derive(Default)]
pub struct Grads {
    sums: Vec<(String, Tensor)>,
}

impl Grads {
    /// Add the gradients of `params` from one backward pass. A parameter the
    /// loss does not reach gets no entry until one does.
    pub fn accumulate(&mut self, params: &[(String, Var)], store: &GradStore) -> Result<()> {
        for (name, var) in params {
            let Some(g) = store.get(var.as_tensor()) else {
                continue;
            };
            match self.sums.iter_mut().find(|(n, _)| n == name) {
                Some((_, sum)) => *sum = (&*sum + g)?,
                None => self.sums.push((name.clone(), g.clone())),
            }
        }
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.sums.iter().find(|(n, _)| n == name).map(|(_, g)| g)
    }

    /// ‖g‖₂ over every parameter (f64 accumulation).
    pub fn global_norm(&self) -> Result<f64> {
        let mut sq = 0f64;
        for (_, g) in &self.sums {
            sq += g
                .to_dtype(DType::F64)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f64>()?;
        }
        Ok(sq.sqrt())
    }

    /// Scale every gradient by `min(1, max_norm/‖g‖)`; returns the norm
    /// before clipping.
    pub fn clip_global_norm(&mut self, max_norm: f64) -> Result<f64> {
        let norm = self.global_norm()?;
        if norm.is_finite() && norm > max_norm && norm > 0.0 {
            let scale = max_norm / norm;
            for (_, g) in self.sums.iter_mut() {
                *g = (&*g * scale)?;
            }
        }
        Ok(norm)
    }
}

/// AdamW hyper-parameters (the learning rate comes from the schedule).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled decay λ, applied to matrices only (not to norms/biases).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    decay: bool,
}

/// AdamW (Loshchilov & Hutter): `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
/// `θ ← θ − lr·(m̂/(√v̂ + ε) + λ·θ)` with bias-corrected `m̂`, `v̂`.
pub struct AdamW {
    cfg: AdamWConfig,
    slots: Vec<Slot>,
    t: u64,
}

impl AdamW {
    /// Parameters with fewer than two dimensions (norm weights, biases) are
    /// not decayed.
    pub fn new(params: Vec<(String, Var)>, cfg: AdamWConfig) -> Result<Self> {
        let mut slots = Vec::with_capacity(params.len());
        for (name, var) in params {
            let m = var.zeros_like()?;
            let v = var.zeros_like()?;
            let decay = var.rank() >= 2;
            slots.push(Slot {
                name,
                var,
                m,
                v,
                decay,
            });
        }
        Ok(Self { cfg, slots, t: 0 })
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.t
    }

    pub fn config(&self) -> &AdamWConfig {
        &self.cfg
    }

    /// One update with learning rate `lr`. Parameters without a gradient
    /// keep their moments and are not moved (not even decayed).
    pub fn step(&mut self, grads: &Grads, lr: f64) -> Result<()> {
        self.t += 1;
        let AdamWConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.cfg;
        let bc1 = 1.0 - beta1.powi(self.t as i32);
        let bc2 = 1.0 - beta2.powi(self.t as i32);
        for slot in self.slots.iter_mut() {
            let Some(g) = grads.get(&slot.name) else {
                continue;
            };
            let g = g.to_dtype(slot.m.dtype())?;
            slot.m = ((&slot.m * beta1)? + (&g * (1.0 - beta1))?)?;
            slot.v = ((&slot.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let m_hat = (&slot.m / bc1)?;
            let v_hat = (&slot.v / bc2)?;
            let mut update = (m_hat / (v_hat.sqrt()? + eps)?)?;
            let theta = slot.var.as_tensor();
            if slot.decay && weight_decay != 0.0 {
                update = (update + (theta * weight_decay)?)?;
            }
            let next = (theta - (update * lr)?)?;
            slot.var.set(&next)?;
        }
        Ok(())
    }

    /// The moments by name (`m.NAME`, `v.NAME`), for a checkpoint.
    pub fn state_tensors(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::with_capacity(self.slots.len() * 2);
        for s in &self.slots {
            out.insert(format!("m.{}", s.name), s.m.clone());
            out.insert(format!("v.{}", s.name), s.v.clone());
        }
        out
    }

    /// Restore moments saved by [`AdamW::state_tensors`] after `t` steps.
    /// Every parameter must be present with its shape.
    pub fn load_state(&mut self, tensors: &HashMap<String, Tensor>, t: u64) -> Result<()> {
        for s in self.slots.iter_mut() {
            for (key, dst) in [("m", &mut s.m), ("v", &mut s.v)] {
                let name = format!("{key}.{}", s.name);
                let src = tensors
                    .get(&name)
                    .ok_or_else(|| TrainError::Batch(format!("optimizer state has no `{name}`")))?;
                if src.dims() != dst.dims() {
                    return Err(TrainError::Batch(format!(
                        "optimizer state `{name}` has shape {:?}, the parameter {:?}",
                        src.dims(),
                        dst.dims()
                    )));
                }
                *dst = src.to_dtype(dst.dtype())?.to_device(dst.device())?;
            }
        }
        self.t = t;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn var(v: &[f32], shape: &[usize]) -> Var {
        Var::from_tensor(&Tensor::from_slice(v, shape, &Device::Cpu).unwrap()).unwrap()
    }

    fn grads(name: &str, g: &[f32], shape: &[usize]) -> Grads {
        Grads {
            sums: vec![(
                name.into(),
                Tensor::from_slice(g, shape, &Device::Cpu).unwrap(),
            )],
        }
    }

    #[test]
    fn adamw_matches_hand_computed_steps() {
        // θ = [1, -2] (a 1x2 matrix: decayed), g = [0.5, 0.1], lr 0.1,
        // β1 0.9, β2 0.999, ε 1e-8, λ 0.01.
        let w = var(&[1.0, -2.0], &[1, 2]);
        let cfg = AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        };
        let mut opt = AdamW::new(vec![("w".into(), w.clone())], cfg).unwrap();
        opt.step(&grads("w", &[0.5, 0.1], &[1, 2]), 0.1).unwrap();
        // Step 1: m̂ = g, v̂ = g², update = g/(|g|+ε) ≈ sign(g) = 1;
        // θ -= 0.1·(1 + 0.01·θ): 1 → 1 − 0.1·1.01 = 0.899; −2 → −2 − 0.1·(1 − 0.02) = −2.098.
        let got = w
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!((got[0] - 0.899).abs() < 1e-6, "{got:?}");
        assert!((got[1] + 2.098).abs() < 1e-6, "{got:?}");
        // Step 2 with g = [-0.5, 0.1]:
        // m = 0.9·0.05 + 0.1·(−0.5) = −0.005 (m̂ = −0.005/0.19)
        // v = 0.999·0.00025 + 0.001·0.25 = 0.00049975 (v̂ = v/(1−0.999²))
        opt.step(&grads("w", &[-0.5, 0.1], &[1, 2]), 0.1).unwrap();
        let m_hat = -0.005f64 / 0.19;
        let v_hat = 0.000_499_75f64 / (1.0 - 0.999f64 * 0.999);
        let want0 = 0.899 - 0.1 * (m_hat / (v_hat.sqrt() + 1e-8) + 0.01 * 0.899);
        let got = w
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!((got[0] as f64 - want0).abs() < 1e-5, "{got:?} vs {want0}");
        // The second coordinate saw the same gradient twice: m̂ = 0.1, v̂ = 0.01 → update 1.
        let want1 = -2.098 - 0.1 * (1.0 + 0.01 * -2.098);
        assert!((got[1] as f64 - want1).abs() < 1e-5, "{got:?} vs {want1}");
        assert_eq!(opt.steps(), 2);
    }

    #[test]
    fn vectors_are_not_decayed() {
        let b = var(&[1.0], &[1]);
        let cfg = AdamWConfig {
            weight_decay: 0.5,
            ..AdamWConfig::default()
        };
        let mut opt = AdamW::new(vec![("norm.weight".into(), b.clone())], cfg).unwrap();
        opt.step(&grads("norm.weight", &[0.0], &[1]), 0.1).unwrap();
        // zero gradient, no decay: unchanged
        assert_eq!(b.as_tensor().to_vec1::<f32>().unwrap(), vec![1.0]);
    }

    #[test]
    fn clipping_scales_to_the_max_norm() {
        let mut g = grads("w", &[3.0, 4.0], &[2]);
        let norm = g.clip_global_norm(1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-9);
        let v = g.get("w").unwrap().to_vec1::<f32>().unwrap();
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        // under the limit: untouched
        let mut g = grads("w", &[0.3, 0.4], &[2]);
        assert!((g.clip_global_norm(1.0).unwrap() - 0.5).abs() < 1e-7);
        assert_eq!(
            g.get("w").unwrap().to_vec1::<f32>().unwrap(),
            vec![0.3, 0.4]
        );
    }

    #[test]
    fn state_round_trips_and_continues_identically() {
        let cfg = AdamWConfig::default();
        let gs = [[0.3f32, -0.2], [0.1, 0.4], [-0.6, 0.05]];
        // uninterrupted: three steps
        let w1 = var(&[0.5, 0.5], &[2]);
        let mut a = AdamW::new(vec![("w".into(), w1.clone())], cfg).unwrap();
        for g in &gs {
            a.step(&grads("w", g, &[2]), 0.01).unwrap();
        }
        // interrupted after one step, state moved to a fresh optimizer
        let w2 = var(&[0.5, 0.5], &[2]);
        let mut b = AdamW::new(vec![("w".into(), w2.clone())], cfg).unwrap();
        b.step(&grads("w", &gs[0], &[2]), 0.01).unwrap();
        let saved = b.state_tensors();
        let w3 = Var::from_tensor(w2.as_tensor()).unwrap();
        let mut c = AdamW::new(vec![("w".into(), w3.clone())], cfg).unwrap();
        c.load_state(&saved, b.steps()).unwrap();
        for g in &gs[1..] {
            c.step(&grads("w", g, &[2]), 0.01).unwrap();
        }
        assert_eq!(
            w1.as_tensor().to_vec1::<f32>().unwrap(),
            w3.as_tensor().to_vec1::<f32>().unwrap()
        );
        // a missing entry is an error naming it
        let err = c.load_state(&HashMap::new(), 1).unwrap_err().to_string();
        assert!(err.contains("m.w"), "{err}");
    }
}
