//! The engine's [`GroupSink`]: streams a rollout group's events to its
//! request's channel; a closed channel means the client went away.

use std::sync::Arc;

use tokio::sync::mpsc::UnboundedSender;

use super::api::EngineEvent;
use super::cancel::CancelSet;
use super::group::GroupSink;
use super::output::TokenEvent;
use super::sequence::FinishReason;

/// Streams a group's events to its request's channel.
pub(super) struct ChannelSink {
    pub(super) events: UnboundedSender<EngineEvent>,
    pub(super) cancel: Option<Arc<CancelSet>>,
}

impl GroupSink for ChannelSink {
    fn started(&mut self, prompt_tokens: usize, cached_tokens: usize) -> bool {
        self.events
            .send(EngineEvent::Started {
                prompt_tokens,
                cached_tokens,
            })
            .is_ok()
    }

    fn token(&mut self, ev: TokenEvent<'_>) -> bool {
        let logprob = super::sequence::TokenLogprob {
            token: ev.token,
            logprob: ev.logprob,
            top_logprobs: ev.top_logprobs.to_vec(),
        };
        let mut alive = self
            .events
            .send(EngineEvent::Token {
                rollout: ev.rollout,
                token: ev.token,
                text: ev.text.to_string(),
                logprob,
            })
            .is_ok();
        if let Some(finish_reason) = ev.finish {
            alive &= self
                .events
                .send(EngineEvent::RolloutFinished {
                    rollout: ev.rollout,
                    finish_reason,
                })
                .is_ok();
        }
        alive
    }

    fn is_closed(&self) -> bool {
        self.events.is_closed()
    }

    fn cancel_set(&self) -> Option<&CancelSet> {
        self.cancel.as_deref()
    }

    fn rollout_finished(&mut self, rollout: usize, finish_reason: FinishReason) -> bool {
        let ev = EngineEvent::RolloutFinished {
            rollout,
            finish_reason,
        };
        self.events.send(ev).is_ok()
    }
}
