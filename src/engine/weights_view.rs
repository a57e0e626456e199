//! Views of a model's weights for rollouts on a model that is being trained.
//!
//! A [`Transformer`] from [`crate::model::load_trainable`] holds candle
//! `Var`s. Every op on a `Var` records a backprop graph, so an inference
//! forward on it would keep every intermediate activation of the step alive
//! until the logits are dropped (for a batched prefill, gigabytes) and pay
//! for the bookkeeping. [`inference_view`] gives the same model with every
//! weight *detached*: a new tensor handle on the **same storage**, so the
//! optimizer's in-place `Var::set` updates are seen by the next forward and
//! nothing weights-derived is cached. [`snapshot`] copies the weights
//! instead, for rollouts that must not see updates (one-step-off-policy
//! rollouts running while the next step trains).

use candle_core::{Result, Tensor};

use crate::model::linear::{Linear, Weight};
use crate::model::transformer::RmsNorm;
use crate::model::Transformer;

/// `model` with every dense weight detached from the autograd graph, still
/// reading the original storage (no copy). Packed or quantized layers are
/// kept as they are: they are never `Var`s and do not follow updates.
pub fn inference_view(model: &Transformer) -> Transformer {
    map_weights(model, &mut |t| Ok(t.detach())).unwrap_or_else(|_| model.clone())
}

/// A deep copy of `model`'s dense weights, detached: later updates to the
/// original do not reach it.
pub fn snapshot(model: &Transformer) -> Result<Transformer> {
    map_weights(model, &mut |t| Ok(t.copy()?.detach()))
}

/// `model` with `f` applied to every dense weight tensor (embedding, norms,
/// projections, biases, heads); a tied LM head maps with the embedding, so
/// it stays the same tensor as the embedding.
fn map_weights(
    model: &Transformer,
    f: &mut dyn FnMut(&Tensor) -> Result<Tensor>,
) -> Result<Transformer> {
    let tied = model.tied_embeddings();
    let mut m = model.clone();
    m.embed_tokens = f(&model.embed_tokens)?;
    for layer in &mut m.layers {
        let a = &mut layer.self_attn;
        for l in [&mut a.q_proj, &mut a.k_proj, &mut a.v_proj, &mut a.o_proj] {
            map_linear(l, f)?;
        }
        for n in [&mut a.q_norm, &mut a.k_norm].into_iter().flatten() {
            map_norm(n, f)?;
        }
        let mlp = &mut layer.mlp;
        for l in [&mut mlp.gate_proj, &mut mlp.up_proj, &mut mlp.down_proj] {
            map_linear(l, f)?;
        }
        map_norm(&mut layer.input_layernorm, f)?;
        map_norm(&mut layer.post_attention_layernorm, f)?;
    }
    map_norm(&mut m.norm, f)?;
    match (&mut m.lm_head, tied) {
        (Some(head), true) => head.weight = Weight::Dense(m.embed_tokens.clone()),
        (Some(head), false) => map_linear(head, f)?,
        (None, _) => {}
    }
    if let Some(score) = &mut m.score {
        map_linear(score, f)?;
    }
    Ok(m)
}

fn map_linear(l: &mut Linear, f: &mut dyn FnMut(&Tensor) -> Result<Tensor>) -> Result<()> {
    if let Weight::Dense(w) = &l.weight {
        l.weight = Weight::Dense(f(w)?);
    }
    if let Some(b) = &l.bias {
        l.bias = Some(f(b)?);
    }
    Ok(())
}

fn map_norm(n: &mut RmsNorm, f: &mut dyn FnMut(&Tensor) -> Result<Tensor>) -> Result<()> {
    n.weight = f(&n.weight)?;
    Ok(())
}

/// Whether every tensor of `model` is a plain tensor (no `Var`, no graph):
/// what [`inference_view`] guarantees.
#[cfg(test)]
fn is_detached(model: &Transformer) -> bool {
    let mut all = true;
    let _ = map_weights(model, &mut |t| {
        all &= !t.is_variable() && !t.track_op();
        Ok(t.clone())
    });
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::batching_tests::fixture;
    use candle_core::{DType, Device};

    #[test]
    fn the_view_is_detached_and_shares_storage_with_the_vars() {
        let f = fixture();
        let (model, varmap, _) =
            crate::model::load_trainable(&f.dir, DType::F32, &Device::Cpu).expect("load");
        assert!(!is_detached(&model), "a trainable model holds vars");
        let view = inference_view(&model);
        assert!(is_detached(&view));
        assert!(view.tied_embeddings(), "the tied head stays the embedding");
        // An in-place update of a var is visible through the view.
        let name = "model.layers.0.mlp.down_proj.weight";
        let var = varmap.data().lock().unwrap()[name].clone();
        var.set(&var.as_tensor().ones_like().unwrap()).unwrap();
        let w = view.layers[0].mlp.down_proj.dense().unwrap();
        let sum: f32 = w.sum_all().unwrap().to_scalar().unwrap();
        assert_eq!(sum as usize, w.elem_count());
        // A snapshot does not follow later updates.
        let snap = snapshot(&model).unwrap();
        var.set(&var.as_tensor().zeros_like().unwrap()).unwrap();
        let w = snap.layers[0].mlp.down_proj.dense().unwrap();
        let sum: f32 = w.sum_all().unwrap().to_scalar().unwrap();
        assert_eq!(sum as usize, w.elem_count());
        assert!(is_detached(&snap));
    }
}
