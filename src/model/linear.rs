//! `nn.Linear` (`y = x·Wᵀ + b`) with an inference path through Quorum's
//! small-m kernels and a differentiable path through candle's matmul.

use candle_core::{Module, Result, Tensor};

use super::Mode;

#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// `x`: (rows, in) → (rows, out).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = match mode {
            Mode::Inference => crate::kernels::linear(x, &self.weight)?,
            Mode::Train => {
                let w = if self.weight.dtype() == x.dtype() {
                    self.weight.clone()
                } else {
                    self.weight.to_dtype(x.dtype())?
                };
                candle_nn::Linear::new(w, None).forward(x)?
            }
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}
