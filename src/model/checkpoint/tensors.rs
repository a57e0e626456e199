//! What the writer writes: the element type of the files ([`CheckpointDType`]) and the
//! tensors themselves, through [`TensorData`] (a name, a shape and bytes produced on
//! demand), implemented here for in-memory candle tensors.

use std::str::FromStr;

use candle_core::{DType, Tensor};
use safetensors::Dtype;

use crate::model::ModelError;

/// Element type of the written tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointDType {
    F32,
    Bf16,
    F16,
}

impl CheckpointDType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::Bf16 | Self::F16 => 2,
        }
    }

    /// The `torch_dtype` string HF writes into `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
            Self::F16 => "float16",
        }
    }

    /// The candle dtype of the same name.
    pub fn candle(self) -> DType {
        match self {
            Self::F32 => DType::F32,
            Self::Bf16 => DType::BF16,
            Self::F16 => DType::F16,
        }
    }

    pub(crate) fn safetensors(self) -> Dtype {
        match self {
            Self::F32 => Dtype::F32,
            Self::Bf16 => Dtype::BF16,
            Self::F16 => Dtype::F16,
        }
    }
}

/// Accepts the short names (`f32`, `bf16`, `f16`) and the torch names (`float32`, ...), so
/// a CLI flag can take either and a preset's `torch_dtype` can be parsed directly.
impl FromStr for CheckpointDType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "float" => Ok(Self::F32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "f16" | "float16" | "half" => Ok(Self::F16),
            other => Err(format!(
                "unknown dtype `{other}`; expected f32, bf16 or f16"
            )),
        }
    }
}

/// One tensor to write: its HF name, its shape, and its bytes when the writer reaches it.
pub trait TensorData {
    fn name(&self) -> &str;
    fn shape(&self) -> Vec<usize>;
    /// The little-endian bytes of the tensor in `dtype` (exactly `numel * dtype.size()`).
    /// Called once per write, in file order.
    fn bytes(&self, dtype: CheckpointDType) -> Result<Vec<u8>, ModelError>;
}

/// An in-memory tensor, such as a trainable parameter of a `VarMap`: converted to the
/// checkpoint dtype (on its device) when written.
impl TensorData for (String, Tensor) {
    fn name(&self) -> &str {
        &self.0
    }

    fn shape(&self) -> Vec<usize> {
        self.1.dims().to_vec()
    }

    fn bytes(&self, dtype: CheckpointDType) -> Result<Vec<u8>, ModelError> {
        tensor_bytes(&self.1, dtype).map_err(|e| ModelError::Weight {
            name: self.0.clone(),
            message: e.to_string(),
        })
    }
}

fn tensor_bytes(t: &Tensor, dtype: CheckpointDType) -> candle_core::Result<Vec<u8>> {
    let flat = t.flatten_all()?.to_dtype(dtype.candle())?;
    Ok(match dtype {
        CheckpointDType::F32 => le_bytes(flat.to_vec1::<f32>()?, f32::to_le_bytes),
        CheckpointDType::Bf16 => le_bytes(flat.to_vec1::<half::bf16>()?, half::bf16::to_le_bytes),
        CheckpointDType::F16 => le_bytes(flat.to_vec1::<half::f16>()?, half::f16::to_le_bytes),
    })
}

fn le_bytes<T: Copy, const N: usize>(v: Vec<T>, enc: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * N);
    for x in v {
        out.extend_from_slice(&enc(x));
    }
    out
}
