//! Prompt KV reuse across requests. After a group's prompt is prefilled, its
//! KV (the same [`SharedKv`] its rollouts read) is kept here keyed by the
//! prompt tokens; a later prompt sharing a prefix (a system prompt, a
//! few-shot header, the same question again) starts a cache on the longest
//! match, without copying it, and prefills only the rest.
//!
//! Entries are whole prompts and lookup is a longest-common-prefix scan over
//! them. That is deliberate: every entry holds megabytes of KV, so the byte
//! budget keeps the count small, and comparing a few thousand token ids per
//! entry costs far less than prefilling one token. Eviction is LRU.

use std::sync::Arc;

use crate::model::{KvCache, SharedKv};

struct Entry {
    tokens: Vec<u32>,
    kv: Arc<SharedKv>,
    bytes: usize,
    last_used: u64,
}

/// A byte-bounded LRU map from token prefixes to KV snapshots.
pub struct PrefixCache {
    entries: Vec<Entry>,
    budget_bytes: usize,
    bytes: usize,
    clock: u64,
}

/// A prefix found in the cache.
pub struct PrefixHit {
    /// A cache on the entry's shared KV seeing exactly `tokens` tokens.
    pub cache: KvCache,
    pub tokens: usize,
}

impl PrefixCache {
    /// `budget_bytes == 0` disables the cache.
    pub fn new(budget_bytes: usize) -> Self {
        Self {
            entries: Vec::new(),
            budget_bytes,
            bytes: 0,
            clock: 0,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.budget_bytes > 0
    }

    /// Bytes held by cached snapshots.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The longest cached prefix of `prompt`, at most `max_tokens` long, as a
    /// cache reading the entry in place. `None` on a miss.
    pub fn lookup(&mut self, prompt: &[u32], max_tokens: usize) -> Option<PrefixHit> {
        let best = self
            .entries
            .iter_mut()
            .map(|e| (common_prefix(&e.tokens, prompt).min(max_tokens), e))
            .max_by_key(|(len, _)| *len);
        let (len, entry) = best?;
        if len == 0 {
            return None;
        }
        self.clock += 1;
        entry.last_used = self.clock;
        Some(PrefixHit {
            cache: KvCache::on_prefix(entry.kv.clone(), len),
            tokens: len,
        })
    }

    /// Keep `kv` (holding exactly `tokens`) for later prompts. Entries
    /// that are a prefix of it are dropped; if an entry already extends
    /// `tokens`, only its recency is refreshed.
    pub fn insert(&mut self, tokens: &[u32], kv: Arc<SharedKv>) {
        if !self.is_enabled() || tokens.is_empty() {
            return;
        }
        self.clock += 1;
        let now = self.clock;
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.tokens.len() >= tokens.len() && e.tokens.starts_with(tokens))
        {
            e.last_used = now;
            return;
        }
        let bytes = kv.bytes();
        if bytes > self.budget_bytes {
            return;
        }
        let mut freed = 0;
        self.entries.retain(|e| {
            let covered = tokens.starts_with(&e.tokens);
            if covered {
                freed += e.bytes;
            }
            !covered
        });
        self.bytes -= freed;
        self.entries.push(Entry {
            tokens: tokens.to_vec(),
            kv,
            bytes,
            last_used: now,
        });
        self.bytes += bytes;
        self.evict_to(self.budget_bytes);
    }

    /// Drop least-recently-used entries until at most `budget` bytes remain.
    pub fn evict_to(&mut self, budget: usize) {
        while self.bytes > budget {
            let Some(i) = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
            else {
                break;
            };
            let e = self.entries.swap_remove(i);
            self.bytes -= e.bytes;
        }
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// A one-layer cache of `len` tokens whose K rows hold their position.
    fn cache(len: usize) -> Arc<SharedKv> {
        let mut c = KvCache::new(1);
        let k = Tensor::arange(0f32, len as f32, &Device::Cpu)
            .unwrap()
            .reshape((1, len, 1))
            .unwrap();
        c.append(0, &k, &k).unwrap();
        c.commit(len);
        c.into_shared().unwrap()
    }

    #[test]
    fn longest_shared_prefix_is_returned_as_a_private_copy() {
        let mut pc = PrefixCache::new(1 << 20);
        pc.insert(&[1, 2, 3, 4], cache(4));
        pc.insert(&[1, 2, 9, 9, 9], cache(5));
        let hit = pc.lookup(&[1, 2, 3, 7], 10).unwrap();
        assert_eq!(hit.tokens, 3);
        assert_eq!(hit.cache.len(), 3);
        assert!(pc.lookup(&[5, 6], 10).is_none());
        // Capped so that at least one token is left to prefill.
        assert_eq!(pc.lookup(&[1, 2, 3, 4], 3).unwrap().tokens, 3);
    }

    #[test]
    fn extending_prompt_replaces_its_prefix_entry_and_lru_evicts() {
        let one = cache(4).bytes();
        let mut pc = PrefixCache::new(2 * one);
        pc.insert(&[1, 2], cache(2));
        pc.insert(&[1, 2, 3], cache(3));
        assert_eq!(pc.len(), 1, "[1,2] is covered by [1,2,3]");
        pc.insert(&[1, 2], cache(2));
        assert_eq!(pc.len(), 1, "already covered");
        pc.insert(&[7, 7], cache(2));
        pc.lookup(&[1, 2, 3], 3).unwrap();
        pc.insert(&[8, 8], cache(2));
        assert_eq!(pc.len(), 2);
        assert!(pc.lookup(&[7, 7], 2).is_none(), "LRU entry evicted");
        assert!(pc.bytes() <= 2 * one);
    }

    #[test]
    fn disabled_cache_stores_nothing() {
        let mut pc = PrefixCache::new(0);
        pc.insert(&[1, 2], cache(2));
        assert!(pc.is_empty());
    }
}
