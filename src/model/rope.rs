//! Rotary position embeddings (non-interleaved, "rotate half" as in HF Llama/Qwen),
//! with Llama-3 frequency scaling.

use candle_core::{DType, Device, Result, Tensor};

use super::config::ModelConfig;

#[derive(Debug, Clone)]
pub struct RotaryEmbedding {
    /// (max_positions, head_dim / 2), f32.
    cos: Tensor,
    sin: Tensor,
}

/// Inverse frequencies, with Llama-3 `rope_scaling` applied when configured
/// (same formula as HF `_compute_llama3_parameters`).
pub fn inv_freqs(cfg: &ModelConfig) -> Vec<f64> {
    let dim = cfg.head_dim();
    let base: Vec<f64> = (0..dim)
        .step_by(2)
        .map(|i| 1.0 / cfg.rope_theta.powf(i as f64 / dim as f64))
        .collect();
    let Some(rs) = cfg
        .rope_scaling
        .as_ref()
        .filter(|r| r.rope_type == "llama3")
    else {
        return base;
    };
    let old_ctx = rs
        .original_max_position_embeddings
        .unwrap_or(cfg.max_position_embeddings) as f64;
    let low_wavelen = old_ctx / rs.low_freq_factor;
    let high_wavelen = old_ctx / rs.high_freq_factor;
    base.into_iter()
        .map(|f| {
            let wavelen = 2.0 * std::f64::consts::PI / f;
            if wavelen < high_wavelen {
                f
            } else if wavelen > low_wavelen {
                f / rs.factor
            } else {
                let smooth = (old_ctx / wavelen - rs.low_freq_factor)
                    / (rs.high_freq_factor - rs.low_freq_factor);
                (1.0 - smooth) * f / rs.factor + smooth * f
            }
        })
        .collect()
}

impl RotaryEmbedding {
    pub fn new(cfg: &ModelConfig, max_positions: usize, device: &Device) -> Result<Self> {
        let inv = inv_freqs(cfg);
        let half = inv.len();
        let mut cos = Vec::with_capacity(max_positions * half);
        let mut sin = Vec::with_capacity(max_positions * half);
        for p in 0..max_positions {
            for f in &inv {
                // Computed in f32 like the HF reference (positions · inv_freq in f32).
                let angle = (p as f32) * (*f as f32);
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        Ok(Self {
            cos: Tensor::from_vec(cos, (max_positions, half), device)?,
            sin: Tensor::from_vec(sin, (max_positions, half), device)?,
        })
    }

    pub fn max_positions(&self) -> usize {
        self.cos.dims()[0]
    }

    /// cos/sin rows for arbitrary positions (one per token of a ragged batch).
    pub fn gather(&self, positions: &[u32], dtype: DType) -> Result<(Tensor, Tensor)> {
        let idx = Tensor::new(positions, self.cos.device())?;
        let cos = self.cos.index_select(&idx, 0)?.to_dtype(dtype)?;
        let sin = self.sin.index_select(&idx, 0)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }

    /// cos/sin rows for positions `start..start + len`, in `dtype`.
    pub fn tables(&self, start: usize, len: usize, dtype: DType) -> Result<(Tensor, Tensor)> {
        let cos = self.cos.narrow(0, start, len)?.to_dtype(dtype)?;
        let sin = self.sin.narrow(0, start, len)?.to_dtype(dtype)?;
        Ok((cos, sin))
    }
}
