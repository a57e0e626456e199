//! `nn.Linear` (`y = x·Wᵀ + b`): dense weights run through Quorum's small-m
//! kernels for inference and candle's differentiable matmul for training;
//! quantized weights (Q8_0 / Q4K, candle's `QMatMul`) are inference only.

use std::sync::Arc;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Module, Result, Tensor};

use super::Mode;

/// Storage of a linear layer's weight (n × k).
#[derive(Debug, Clone)]
pub enum Weight {
    Dense(Tensor),
    Quantized {
        matmul: Arc<QMatMul>,
        bytes: usize,
    },
    /// bf16 weight reordered for Intel AMX tiles (inference only).
    #[cfg(target_arch = "x86_64")]
    Amx(Arc<crate::kernels::amx::PackedBf16>),
    /// Q8_0 weight in AMX tile order (inference only).
    #[cfg(target_arch = "x86_64")]
    AmxQ8(Arc<crate::kernels::amx_q8::PackedQ8>),
    /// f32 weight in AVX-512 GEMM panels (inference only).
    #[cfg(target_arch = "x86_64")]
    PackedF32(Arc<crate::kernels::packed_f32::PackedF32>),
}

#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Weight,
    pub bias: Option<Tensor>,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self {
            weight: Weight::Dense(weight),
            bias,
        }
    }

    /// The dense weight, if not quantized.
    pub fn dense(&self) -> Option<&Tensor> {
        match &self.weight {
            Weight::Dense(w) => Some(w),
            _ => None,
        }
    }

    /// Bytes of weight streamed per forward.
    pub fn weight_bytes(&self) -> usize {
        match &self.weight {
            Weight::Dense(w) => w.elem_count() * w.dtype().size_in_bytes(),
            Weight::Quantized { bytes, .. } => *bytes,
            #[cfg(target_arch = "x86_64")]
            Weight::Amx(p) => p.bytes(),
            #[cfg(target_arch = "x86_64")]
            Weight::AmxQ8(p) => p.bytes(),
            #[cfg(target_arch = "x86_64")]
            Weight::PackedF32(p) => p.bytes(),
        }
    }

    /// Where the weight lives in host memory: `(address, bytes)` per buffer
    /// (none for device or candle-quantized storage).
    pub fn memory(&self) -> Vec<(usize, usize)> {
        match &self.weight {
            Weight::Dense(w) => tensor_memory(w).into_iter().collect(),
            Weight::Quantized { .. } => Vec::new(),
            #[cfg(target_arch = "x86_64")]
            Weight::Amx(p) => p.memory(),
            #[cfg(target_arch = "x86_64")]
            Weight::AmxQ8(p) => p.memory(),
            #[cfg(target_arch = "x86_64")]
            Weight::PackedF32(p) => p.memory(),
        }
    }

    /// Replace a dense weight by its quantized form (GGML block format).
    pub fn quantize(&mut self, dtype: GgmlDType) -> Result<()> {
        if let Weight::Dense(w) = &self.weight {
            let q = QTensor::quantize(&w.to_dtype(candle_core::DType::F32)?, dtype)?;
            let bytes = q.storage_size_in_bytes();
            self.weight = Weight::Quantized {
                matmul: Arc::new(QMatMul::from_qtensor(q)?),
                bytes,
            };
        }
        Ok(())
    }

    /// Replace a dense bf16 CPU weight by its AMX tile-packed copy (see
    /// [`crate::kernels::amx`]); other weights are left as they are. Returns
    /// whether this layer was packed.
    #[cfg(target_arch = "x86_64")]
    pub fn pack_amx(&mut self) -> Result<bool> {
        self.repack_dense_cpu(|data: &[half::bf16], n, k| {
            crate::kernels::amx::PackedBf16::pack(data, n, k).map(|p| Weight::Amx(Arc::new(p)))
        })
    }

    /// Replace a dense f32 CPU weight by its AVX-512 panel-packed copy (see
    /// [`crate::kernels::packed_f32`]); other weights are left as they are.
    /// Returns whether this layer was packed.
    #[cfg(target_arch = "x86_64")]
    pub fn pack_f32(&mut self) -> Result<bool> {
        self.repack_dense_cpu(|data: &[f32], n, k| {
            crate::kernels::packed_f32::PackedF32::pack(data, n, k)
                .map(|p| Weight::PackedF32(Arc::new(p)))
        })
    }

    /// If the weight is a dense CPU `(n, k)` tensor of element type `T`,
    /// replace it by `pack(elements, n, k)`; returns whether it did.
    #[cfg(target_arch = "x86_64")]
    fn repack_dense_cpu<T: candle_core::WithDType>(
        &mut self,
        pack: impl FnOnce(
            &[T],
            usize,
            usize,
        ) -> std::result::Result<Weight, crate::kernels::KernelError>,
    ) -> Result<bool> {
        let Weight::Dense(w) = &self.weight else {
            return Ok(false);
        };
        if w.dtype() != T::DTYPE || !w.device().is_cpu() {
            return Ok(false);
        }
        let (n, k) = w.dims2()?;
        let data: Vec<T> = w.flatten_all()?.to_vec1()?;
        self.weight = pack(&data, n, k).map_err(candle_core::Error::wrap)?;
        Ok(true)
    }

    /// Replace a dense weight by its Q8_0 quantization in AMX tile order (see
    /// [`crate::kernels::amx_q8`]); returns whether this layer was converted.
    #[cfg(target_arch = "x86_64")]
    pub fn quantize_q8_amx(&mut self) -> Result<bool> {
        let Weight::Dense(w) = &self.weight else {
            return Ok(false);
        };
        let (n, k) = w.dims2()?;
        let data: Vec<f32> = w
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let packed = crate::kernels::amx_q8::PackedQ8::quantize(&data, n, k)
            .map_err(candle_core::Error::wrap)?;
        self.weight = Weight::AmxQ8(Arc::new(packed));
        Ok(true)
    }

    /// The dense weight in `dtype` for a differentiable forward (a cast
    /// stays in the graph); errors for quantized or packed weights.
    pub fn train_weight(&self, dtype: candle_core::DType) -> Result<Tensor> {
        match &self.weight {
            Weight::Dense(w) if w.dtype() == dtype => Ok(w.clone()),
            Weight::Dense(w) => w.to_dtype(dtype),
            _ => candle_core::bail!("quantized or packed weights cannot be trained"),
        }
    }

    /// `x`: (rows, in) → (rows, out).
    pub fn forward(&self, x: &Tensor, mode: Mode) -> Result<Tensor> {
        let y = match (&self.weight, mode) {
            (Weight::Dense(w), Mode::Inference) => crate::kernels::linear(x, w)?,
            (Weight::Dense(_), Mode::Train) => {
                super::train_ops::linear(x, &self.train_weight(x.dtype())?)?
            }
            (Weight::Dense(_), Mode::TrainComposed) => {
                candle_nn::Linear::new(self.train_weight(x.dtype())?, None).forward(x)?
            }
            (Weight::Quantized { matmul, .. }, Mode::Inference) => matmul.forward(x)?,
            #[cfg(target_arch = "x86_64")]
            (Weight::Amx(p), Mode::Inference) => crate::kernels::linear_packed(x, p.as_ref())?,
            #[cfg(target_arch = "x86_64")]
            (Weight::AmxQ8(p), Mode::Inference) => crate::kernels::linear_packed(x, p.as_ref())?,
            #[cfg(target_arch = "x86_64")]
            (Weight::PackedF32(p), Mode::Inference) => {
                crate::kernels::linear_packed(x, p.as_ref())?
            }
            (_, Mode::Train | Mode::TrainComposed) => {
                candle_core::bail!("quantized or packed weights cannot be trained")
            }
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// `(address, bytes)` of a CPU tensor's elements.
pub fn tensor_memory(t: &Tensor) -> Option<(usize, usize)> {
    use candle_core::{CpuStorage, Storage};
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return None;
    };
    let size = t.dtype().size_in_bytes();
    let base = match cpu {
        CpuStorage::F32(v) => v.as_ptr() as usize,
        CpuStorage::BF16(v) => v.as_ptr() as usize,
        CpuStorage::F16(v) => v.as_ptr() as usize,
        CpuStorage::F64(v) => v.as_ptr() as usize,
        _ => return None,
    };
    Some((base + layout.start_offset() * size, t.elem_count() * size))
}
