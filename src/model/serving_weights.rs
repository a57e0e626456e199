//! The serving-only forms of a [`Transformer`]'s weights: ggml quantization, Intel AMX
//! tile order (bf16 and Q8_0), AVX-512 f32 GEMM panels, transparent huge pages, and the
//! bytes a decode step streams. Each conversion runs once at load, rewrites the linear
//! layers in place and leaves the model inference-only; training never calls them.

use candle_core::Result;

use super::linear::Linear;
use super::transformer::Transformer;

impl Transformer {
    /// Every linear layer (projections, MLP, heads).
    fn linears_mut(&mut self) -> impl Iterator<Item = &mut Linear> {
        self.layers
            .iter_mut()
            .flat_map(|l| {
                let a = &mut l.self_attn;
                let m = &mut l.mlp;
                [
                    &mut a.q_proj,
                    &mut a.k_proj,
                    &mut a.v_proj,
                    &mut a.o_proj,
                    &mut m.gate_proj,
                    &mut m.up_proj,
                    &mut m.down_proj,
                ]
            })
            .chain(self.lm_head.iter_mut())
            .chain(self.score.iter_mut())
    }

    /// Quantize every linear layer (and the LM head; a tied head gets its own
    /// quantized copy while the embedding table stays dense for lookups).
    /// Inference only. Every input dimension must be a multiple of the
    /// format's block size (32 for Q8_0, 256 for Q4K).
    pub fn quantize(&mut self, dtype: candle_core::quantized::GgmlDType) -> Result<()> {
        let block = dtype.block_size();
        for l in self.linears_mut() {
            if let Some(w) = l.dense() {
                let k = w.dim(1)?;
                if k % block != 0 {
                    candle_core::bail!(
                        "cannot quantize to {dtype:?}: input dimension {k} is not a multiple of the block size {block}"
                    );
                }
            }
        }
        for l in self.linears_mut() {
            l.quantize(dtype)?;
        }
        Ok(())
    }

    /// Reorder every dense bf16 linear layer (and the LM head; a tied head
    /// gets its own packed copy while the embedding table stays dense for
    /// lookups) into Intel AMX tile order, so inference matmuls run on the
    /// tile unit (see [`crate::kernels::amx`]). Inference only. Returns the
    /// number of layers packed; errors if AMX is not available.
    #[cfg(target_arch = "x86_64")]
    pub fn pack_amx(&mut self) -> Result<usize> {
        self.convert_for_amx(Linear::pack_amx)
    }

    /// Reorder every dense f32 linear layer (and the LM head; a tied head
    /// gets its own packed copy while the embedding table stays dense for
    /// lookups) into AVX-512 GEMM panels ([`crate::kernels::packed_f32`]), so
    /// batched decode runs at FMA speed instead of L2 speed. Inference only.
    /// Returns the number of layers packed (0 without AVX-512).
    #[cfg(target_arch = "x86_64")]
    pub fn pack_f32(&mut self) -> Result<usize> {
        if !crate::kernels::packed_f32::available() {
            return Ok(0);
        }
        self.convert_linears(Linear::pack_f32)
    }

    /// Quantize every dense linear layer (and the LM head, as in
    /// [`Transformer::quantize`]) to Q8_0 in Intel AMX tile order
    /// ([`crate::kernels::amx_q8`]). Inference only. Returns the number of
    /// layers converted; errors if AMX is not available.
    #[cfg(target_arch = "x86_64")]
    pub fn quantize_q8_amx(&mut self) -> Result<usize> {
        self.convert_for_amx(Linear::quantize_q8_amx)
    }

    /// Apply `convert` to every linear layer once AMX is known to be
    /// available; returns how many layers it converted.
    #[cfg(target_arch = "x86_64")]
    fn convert_for_amx(
        &mut self,
        convert: impl FnMut(&mut Linear) -> Result<bool>,
    ) -> Result<usize> {
        if !crate::kernels::amx::available() {
            candle_core::bail!("Intel AMX (amx-tile + amx-bf16) is not available on this CPU/OS")
        }
        self.convert_linears(convert)
    }

    /// Apply `convert` to every linear layer; returns how many it converted.
    #[cfg(target_arch = "x86_64")]
    fn convert_linears(
        &mut self,
        mut convert: impl FnMut(&mut Linear) -> Result<bool>,
    ) -> Result<usize> {
        let mut converted = 0;
        for l in self.linears_mut() {
            converted += usize::from(convert(l)?);
        }
        Ok(converted)
    }

    /// Back every weight buffer (linear layers and the embedding table) with
    /// transparent huge pages ([`crate::alloc::back_with_huge_pages`]);
    /// call once the weights are in their final form. Returns the bytes
    /// collapsed (0 where the OS does not support it).
    pub fn back_with_huge_pages(&mut self) -> usize {
        let mut ranges: Vec<(usize, usize)> = self.linears_mut().flat_map(|l| l.memory()).collect();
        ranges.extend(super::linear::tensor_memory(&self.embed_tokens));
        crate::alloc::back_with_huge_pages(&ranges)
    }

    /// Bytes of weights one decode step streams: every linear layer once
    /// (a tied LM head is the embedding table; an untied input embedding is
    /// only gathered, so it does not count).
    pub fn weight_bytes_per_step(&self) -> u64 {
        let layers = self.layers.iter().flat_map(|l| {
            let (a, m) = (&l.self_attn, &l.mlp);
            [
                &a.q_proj,
                &a.k_proj,
                &a.v_proj,
                &a.o_proj,
                &m.gate_proj,
                &m.up_proj,
                &m.down_proj,
            ]
        });
        layers
            .chain(self.lm_head.iter())
            .chain(self.score.iter())
            .map(|l| l.weight_bytes() as u64)
            .sum()
    }
}
