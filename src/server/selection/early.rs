//! Adaptive stopping (`selection.early_stop: true`): rollouts whose outcome
//! can no longer matter are cancelled through the request's
//! [`crate::engine::CancelSet`]; they end `cancelled`, abstain from the vote
//! and free their KV for other requests.
//!
//! - `majority`: after each rollout that finishes on its own, if the leading
//!   answer cluster can no longer be overtaken or tied by the rollouts still
//!   running ([`quorum_scoring::majority_decided`]), all of them are stopped.
//! - `confidence` (DeepConf online): the first `warmup` rollouts to finish
//!   set a threshold — the lowest-group confidence of the `keep_fraction`
//!   most confident of them (so the selector's own filter would keep them) —
//!   and from then on a running rollout is stopped as soon as the mean
//!   log-prob of its last `window` tokens falls below it, `window` being
//!   the strategy's `group_size` capped at `max_tokens`. All rollouts decode
//!   in lockstep here, so the warmup set is "the first to finish", not a
//!   separate first pass.
//!
//! Tokens saved: for every rollout stopped this way, the part of its
//! `max_tokens` budget it did not decode (an upper bound of the work
//! avoided; rollouts that would have hit EOS sooner save less).

use quorum_scoring::{
    after_think, extract, majority_decided, select::lowest_group_confidence, ExtractConfig,
    RolloutSummary, SelectionConfig,
};

use crate::engine::sequence::TokenLogprob;
use crate::engine::{CancelSet, EngineEvent, FinishReason, RolloutOutput};
use crate::server::openai::SelectionOptions;

/// What the driver keeps of one rollout while it runs.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Streamed pieces (text delta, token logprob), replayed once selected.
    pub pieces: Vec<(String, TokenLogprob)>,
    pub text: String,
    /// Prefix sums of token log-probs (`prefix[0] = 0`).
    pub prefix: Vec<f64>,
    pub logprobs: Vec<f32>,
    pub finish: Option<FinishReason>,
}

impl Trace {
    pub fn push(&mut self, text: String, lp: TokenLogprob) {
        if self.prefix.is_empty() {
            self.prefix.push(0.0);
        }
        let x = if lp.logprob.is_finite() {
            f64::from(lp.logprob)
        } else {
            f64::from(f32::MIN)
        };
        let last = self.prefix.last().copied().unwrap_or(0.0);
        self.prefix.push(last + x);
        self.logprobs.push(lp.logprob);
        self.text.push_str(&text);
        self.pieces.push((text, lp));
    }

    /// Mean log-prob of the last `window` tokens, once that many exist.
    fn recent_confidence(&self, window: usize) -> Option<f64> {
        let n = self.logprobs.len();
        (window > 0 && n >= window && self.prefix.len() == n + 1)
            .then(|| (self.prefix[n] - self.prefix[n - window]) / window as f64)
    }
}

/// The answer of a rollout's text (after the last `</think>`): with the
/// request's extractors, or the math chain — explicit markers only for a
/// truncated rollout, whose last number is not an answer.
pub fn answer(text: &str, finish: FinishReason, cfg: Option<&ExtractConfig>) -> Option<String> {
    let default = match finish {
        FinishReason::Length => ExtractConfig::explicit(),
        _ => ExtractConfig::math(),
    };
    let mut cfg = cfg.cloned().unwrap_or(default);
    cfg.after_think = true;
    extract(text, &cfg).map(|e| e.answer)
}

/// What a selector sees of finished rollouts (`outs` in rollout-index
/// order, `traces` by rollout index): the text after the think block, the
/// extracted answer (empty = abstain: a stopped rollout has no answer), the
/// token log-probs. The server's selection and `quorum bench selection`
/// both build them here.
pub fn summaries(
    outs: &[RolloutOutput],
    traces: &[Trace],
    extract: Option<&ExtractConfig>,
) -> Vec<RolloutSummary> {
    outs.iter()
        .map(|o| RolloutSummary {
            index: o.index,
            text: after_think(&o.text).to_string(),
            answer: Some(match o.finish_reason {
                FinishReason::Cancelled => String::new(),
                r => answer(&o.text, r, extract).unwrap_or_default(),
            }),
            mean_logprob: o.mean_logprob,
            token_logprobs: traces
                .get(o.index)
                .map(|t| t.logprobs.clone())
                .unwrap_or_default(),
            score: None,
            finish_reason: o.finish_reason.as_str().to_string(),
            tokens: o.token_ids.len(),
        })
        .collect()
}

enum Policy {
    Off,
    Majority,
    Confidence {
        window: usize,
        keep_fraction: f64,
        warmup: usize,
    },
}

/// The per-rollout traces of one request plus its early-stop policy, fed
/// from the engine's event stream (the server's selection driver and
/// `quorum bench selection` share it).
pub struct Watch {
    pub traces: Vec<Trace>,
    pub early: EarlyStop,
}

impl Watch {
    pub fn new(opts: &SelectionOptions, rollouts: usize, max_tokens: usize) -> Self {
        Self {
            traces: vec![Trace::default(); rollouts],
            early: EarlyStop::new(opts, rollouts, max_tokens),
        }
    }

    /// Records a token or a finished rollout and cancels (in `cancel`) what
    /// the policy stops; returns every other event for the caller.
    pub fn observe(&mut self, ev: EngineEvent, cancel: &CancelSet) -> Option<EngineEvent> {
        match ev {
            EngineEvent::Token {
                rollout,
                text,
                logprob,
                ..
            } => {
                if let Some(t) = self.traces.get_mut(rollout) {
                    t.push(text, logprob);
                }
                if self.early.on_token(&self.traces, rollout) {
                    cancel.cancel(rollout);
                }
                None
            }
            EngineEvent::RolloutFinished {
                rollout,
                finish_reason,
            } => {
                if let Some(t) = self.traces.get_mut(rollout) {
                    t.finish = Some(finish_reason);
                }
                if finish_reason != FinishReason::Cancelled {
                    for i in self.early.on_finished(&self.traces) {
                        cancel.cancel(i);
                    }
                }
                None
            }
            other => Some(other),
        }
    }

    /// Keeps in `early.stopped` only the rollouts that actually ended
    /// cancelled: a flag raised after a rollout had ended stopped nothing.
    pub fn settle(&mut self, outs: &[RolloutOutput]) {
        let cancelled = |i: usize| {
            outs.iter()
                .any(|o| o.index == i && o.finish_reason == FinishReason::Cancelled)
        };
        self.early.stopped.retain(|&i| cancelled(i));
    }
}

/// The early-stop state of one request.
pub struct EarlyStop {
    policy: Policy,
    extract: Option<ExtractConfig>,
    threshold: Option<f64>,
    /// Rollouts this request stopped, in order.
    pub stopped: Vec<usize>,
}

impl EarlyStop {
    pub fn new(opts: &SelectionOptions, rollouts: usize, max_tokens: usize) -> Self {
        let policy = match (&opts.config, opts.early_stop && rollouts > 1) {
            (_, false) => Policy::Off,
            (SelectionConfig::Majority, true) => Policy::Majority,
            (SelectionConfig::Confidence(c), true) => Policy::Confidence {
                window: c.group_size.min(max_tokens).max(1),
                keep_fraction: c.keep_fraction,
                warmup: opts
                    .warmup
                    .unwrap_or(rollouts.div_ceil(4))
                    .clamp(1, rollouts - 1),
            },
            // Other strategies need every rollout (scores, weights).
            _ => Policy::Off,
        };
        Self {
            policy,
            extract: opts.extract.clone(),
            threshold: None,
            stopped: Vec::new(),
        }
    }

    pub fn enabled(&self) -> bool {
        !matches!(self.policy, Policy::Off)
    }

    /// The DeepConf threshold, once set.
    pub fn threshold(&self) -> Option<f64> {
        self.threshold
    }

    /// A rollout finished on its own: the running rollouts to stop now.
    pub fn on_finished(&mut self, traces: &[Trace]) -> Vec<usize> {
        let done = || {
            traces
                .iter()
                .filter(|t| matches!(t.finish, Some(FinishReason::Stop | FinishReason::Length)))
        };
        let running: Vec<usize> = (0..traces.len())
            .filter(|&i| traces[i].finish.is_none())
            .collect();
        if running.is_empty() {
            return Vec::new();
        }
        let stop = match self.policy {
            Policy::Off => Vec::new(),
            Policy::Majority => {
                let answers: Vec<Option<String>> = done()
                    .map(|t| {
                        answer(
                            &t.text,
                            t.finish.unwrap_or(FinishReason::Stop),
                            self.extract.as_ref(),
                        )
                    })
                    .collect();
                if majority_decided(&answers, running.len()) {
                    running
                } else {
                    Vec::new()
                }
            }
            Policy::Confidence {
                window,
                keep_fraction,
                warmup,
            } => {
                if self.threshold.is_none() && done().count() >= warmup {
                    let mut confs: Vec<f64> = done()
                        .filter_map(|t| lowest_group_confidence(&t.logprobs, window))
                        .collect();
                    confs.sort_by(|a, b| b.total_cmp(a));
                    let keep = ((keep_fraction * confs.len() as f64).ceil() as usize)
                        .clamp(1, confs.len().max(1));
                    self.threshold = confs.get(keep - 1).copied();
                }
                running
                    .into_iter()
                    .filter(|&i| self.below_threshold(&traces[i]))
                    .collect()
            }
        };
        self.stopped.extend(&stop);
        stop
    }

    /// A token arrived for running rollout `i`: whether to stop it now.
    pub fn on_token(&mut self, traces: &[Trace], i: usize) -> bool {
        let stop = traces
            .get(i)
            .is_some_and(|t| t.finish.is_none() && self.below_threshold(t))
            && !self.stopped.contains(&i);
        if stop {
            self.stopped.push(i);
        }
        stop
    }

    fn below_threshold(&self, t: &Trace) -> bool {
        match (&self.policy, self.threshold) {
            (Policy::Confidence { window, .. }, Some(th)) => {
                t.recent_confidence(*window).is_some_and(|c| c < th)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(text: &str, finish: Option<FinishReason>) -> Trace {
        Trace {
            text: text.into(),
            finish,
            ..Trace::default()
        }
    }

    #[test]
    fn majority_stops_the_rest_once_decided() {
        let opts = SelectionOptions {
            early_stop: true,
            ..SelectionOptions::default()
        };
        let mut es = EarlyStop::new(&opts, 5, 100);
        let mut t = vec![trace("", None); 5];
        t[0] = trace("The answer is 4.", Some(FinishReason::Stop));
        t[1] = trace("\\boxed{4}", Some(FinishReason::Stop));
        assert!(es.on_finished(&t).is_empty()); // 2 vs 0 + 3 running
        t[2] = trace("4", Some(FinishReason::Stop));
        assert_eq!(es.on_finished(&t), vec![3, 4]); // 3 > 0 + 2
        assert_eq!(es.stopped, vec![3, 4]);
    }

    fn lp(logprob: f32) -> TokenLogprob {
        TokenLogprob {
            token: 1,
            logprob,
            top_logprobs: Vec::new(),
        }
    }

    #[test]
    fn confidence_stops_traces_below_the_warmup_threshold() {
        let cfg = quorum_scoring::ConfidenceSelector {
            group_size: 2,
            keep_fraction: 1.0,
            ..Default::default()
        };
        let opts = SelectionOptions {
            config: SelectionConfig::Confidence(cfg),
            early_stop: true,
            warmup: Some(2),
            ..SelectionOptions::default()
        };
        let mut es = EarlyStop::new(&opts, 4, 100);
        let mut t = vec![Trace::default(); 4];
        for (i, x) in [(0, -0.1), (1, -0.5)] {
            t[i].push("a".into(), lp(x));
            t[i].push("b".into(), lp(x));
        }
        t[0].finish = Some(FinishReason::Stop);
        assert!(es.on_finished(&t).is_empty() && es.threshold().is_none());
        t[1].finish = Some(FinishReason::Stop);
        assert!(es.on_finished(&t).is_empty());
        // keep_fraction 1: the least confident warmup trace sets the bar.
        assert_eq!(es.threshold(), Some(-0.5));
        t[2].push("x".into(), lp(-0.2));
        assert!(!es.on_token(&t, 2)); // window not full yet
        t[2].push("y".into(), lp(-2.0));
        assert!(es.on_token(&t, 2)); // mean -1.1 < -0.5
        t[3].push("x".into(), lp(-0.3));
        t[3].push("y".into(), lp(-0.3));
        assert!(!es.on_token(&t, 3));
        assert_eq!(es.stopped, vec![2]);
    }
}
