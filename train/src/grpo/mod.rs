//! GRPO / RLVR (TRAINING.md): group-relative [`advantage`]s, the clipped
//! surrogate with optional k3 KL and three token aggregations
//! ([`objective`]), DAPO dynamic sampling ([`dynamic`]) and the update
//! over rollouts ([`update`]). Rollouts and rewards come from the root
//! crate's engine and the `scoring` verifiers; everything here runs on any
//! [`crate::policy::Policy`].

pub mod advantage;
pub mod dynamic;
pub mod objective;
pub mod update;

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::advantage::{advantages, StdScaling};
    use super::objective::{Aggregation, Objective};
    use super::update::{grpo_update, RolloutSeq, UpdateConfig};
    use crate::batch::{Example, PackedBatch};
    use crate::optim::{AdamW, AdamWConfig};
    use crate::policy::toy::BigramPolicy;
    use crate::policy::Policy;

    /// Sample one token after `prev` from the bigram table's softmax row.
    fn sample(p: &BigramPolicy, prev: u32, rng: &mut ChaCha8Rng) -> (u32, f32) {
        let row: Vec<f32> = p
            .table
            .as_tensor()
            .get(prev as usize)
            .unwrap()
            .to_vec1()
            .unwrap();
        let m = row.iter().cloned().fold(f32::MIN, f32::max);
        let z: f32 = row.iter().map(|x| (x - m).exp()).sum();
        let u: f32 = rng.random();
        let mut acc = 0.0;
        for (j, x) in row.iter().enumerate() {
            let pj = (x - m).exp() / z;
            acc += pj;
            if u <= acc || j == row.len() - 1 {
                return (j as u32, pj.ln());
            }
        }
        unreachable!()
    }

    /// The whole loop on a toy task: reward 1 when the two-token completion
    /// after prompt `0` ends in token 3. GRPO must raise the mean reward.
    #[test]
    fn grpo_raises_the_reward_of_a_toy_task() {
        let p = BigramPolicy::new(5, 3).unwrap();
        let params = p.params();
        let mut opt = AdamW::new(params.clone(), AdamWConfig::default()).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let cfg = UpdateConfig {
            objective: Objective {
                clip_low: 0.2,
                clip_high: 0.28,
                kl_beta: 0.0,
            },
            aggregation: Aggregation::Token,
            max_completion_tokens: 2,
            temperature: 1.0,
            micro_batch_tokens: 1024,
            iterations: 1,
            max_grad_norm: Some(1.0),
        };
        let mut curve = Vec::new();
        for _ in 0..40 {
            let mut seqs = Vec::new();
            let mut rewards = Vec::new();
            for _ in 0..4 {
                let mut group = Vec::new();
                let mut r = Vec::new();
                for _ in 0..8 {
                    let (a, la) = sample(&p, 0, &mut rng);
                    let (b, lb) = sample(&p, a, &mut rng);
                    r.push(f64::from(u8::from(b == 3)));
                    group.push((vec![0, a, b], vec![la, lb]));
                }
                rewards.push(r);
                seqs.push(group);
            }
            let mean: f64 = rewards.iter().flatten().sum::<f64>() / 32.0;
            curve.push(mean);
            let adv = advantages(&rewards, StdScaling::Group, 1e-4);
            let batch: Vec<RolloutSeq> = seqs
                .into_iter()
                .zip(adv)
                .flat_map(|(g, a)| g.into_iter().zip(a))
                .map(|((ids, lp), a)| {
                    let ex = Example::new(ids, vec![0.0, 1.0, 1.0]).unwrap();
                    RolloutSeq::new(ex, lp, a as f32).unwrap()
                })
                .collect();
            // the sampler's log-probs are the policy's: ρ = 1 on-policy
            let pb = PackedBatch::pack(batch.iter().map(|s| &s.example));
            let lp: Vec<f32> = p.token_logprobs(&pb, 1.0).unwrap().to_vec1().unwrap();
            assert!((lp[0] - batch[0].old_logprobs[0]).abs() < 1e-5);
            grpo_update(&p, &params, &mut opt, &batch, None, &cfg, 0.1).unwrap();
        }
        let first: f64 = curve[..5].iter().sum::<f64>() / 5.0;
        let last: f64 = curve[35..].iter().sum::<f64>() / 5.0;
        assert!(first < 0.4, "{curve:?}");
        assert!(last > 0.85, "{first} -> {last}: {curve:?}");
    }
}
