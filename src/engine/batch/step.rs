//! Executing one planned step: build the ragged forward from every group's
//! prefill span and decoding rollouts, run it once, then sample each row
//! (in parallel across rollouts) and hand tokens back to their groups.

use rayon::prelude::*;

use super::Batcher;
use crate::engine::sampler::{Sampled, SamplingError};
use crate::engine::scheduler::{GroupId, Work};
use crate::engine::EngineError;
use crate::model::{Mode, Positions, SeqInput};

impl Batcher<'_> {
    /// Run one planned forward, then sample and stream its tokens.
    pub(super) fn run(&mut self, work: &[Work]) -> Result<(), EngineError> {
        // Per admitted group: its prefill span and how many rollouts decode.
        let mut prefill: Vec<Option<(usize, usize, bool)>> = vec![None; self.groups.len()];
        let mut masks: Vec<Vec<bool>> = vec![Vec::new(); self.groups.len()];
        for w in work {
            let (Work::Prefill { group, .. } | Work::Decode { group, .. }) = *w;
            let Some(gi) = self.groups.iter().position(|g| g.id == group) else {
                continue;
            };
            match *w {
                Work::Prefill {
                    start, len, last, ..
                } => prefill[gi] = Some((start, len, last)),
                Work::Decode { count, .. } => self.groups[gi].pick_decode(count, &mut masks[gi]),
            }
        }
        let decoding: usize = masks.iter().map(|m| m.iter().filter(|x| **x).count()).sum();
        let logits = {
            let mut inputs: Vec<SeqInput> = Vec::with_capacity(decoding + 4);
            for (gi, g) in self.groups.iter_mut().enumerate() {
                let span = prefill[gi].map(|(s, l, _)| (s, l));
                g.push_inputs(span, &masks[gi], &mut inputs);
            }
            if inputs.is_empty() {
                return Ok(());
            }
            self.model
                .forward(&mut inputs, Positions::Last, Mode::Inference)?
        };
        let vocab = logits.dim(1)?;
        copy_logits(&logits, &mut self.logits)?;

        // Pair each row with its consumer, in input order.
        let mut rows = self.logits.chunks_mut(vocab);
        let mut forks = Vec::new();
        let mut jobs = Vec::with_capacity(decoding);
        for (gi, g) in self.groups.iter_mut().enumerate() {
            if let Some((_, _, last)) = prefill[gi] {
                let row = rows.next();
                if let (true, Some(row)) = (last, row) {
                    forks.push((gi, row));
                }
            }
            let marked = g.seqs.iter_mut().enumerate().zip(&masks[gi]);
            for ((si, seq), _) in marked.filter(|(_, m)| **m) {
                if let Some(row) = rows.next() {
                    jobs.push((gi, si, &mut seq.sampler, row));
                }
            }
        }
        let sampled: Vec<(usize, usize, Result<Sampled, SamplingError>)> = if jobs.len() >= 2 {
            jobs.into_par_iter()
                .map(|(gi, si, s, row)| (gi, si, s.sample(row)))
                .collect()
        } else {
            jobs.into_iter()
                .map(|(gi, si, s, row)| (gi, si, s.sample(row)))
                .collect()
        };
        let mut failed: Vec<(GroupId, EngineError)> = Vec::new();
        for (gi, si, res) in sampled {
            let g = &mut self.groups[gi];
            if g.cancelled || failed.iter().any(|(id, _)| *id == g.id) {
                continue;
            }
            match res
                .map_err(EngineError::from)
                .and_then(|s| g.accept(si, s, self.tok))
            {
                Ok(true) => {}
                Ok(false) => g.cancelled = true,
                Err(e) => failed.push((g.id, e)),
            }
        }
        for (gi, row) in forks {
            let g = &mut self.groups[gi];
            if let Err(e) = g.fork_rollouts(self.tok, row, &mut self.prefix) {
                failed.push((g.id, e));
            }
        }
        for g in &self.groups {
            if g.cache.is_none() {
                self.sched.set_live(g.id, g.live());
            }
        }
        for (id, e) in failed {
            self.fail(id, e);
        }
        Ok(())
    }
}

/// Copy a forward's (rows, vocab) f32 logits into a reused buffer: one
/// memcpy, no per-step allocation of rows × vocab floats.
fn copy_logits(t: &candle_core::Tensor, buf: &mut Vec<f32>) -> candle_core::Result<()> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    buf.clear();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => {
            let all = cpu.as_slice::<f32>()?;
            let start = layout.start_offset();
            buf.extend_from_slice(&all[start..start + t.elem_count()]);
        }
        _ => {
            drop(storage);
            buf.extend(t.flatten_all()?.to_vec1::<f32>()?);
        }
    }
    Ok(())
}
