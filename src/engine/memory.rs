//! Default memory budgets, derived from what the machine has free when the
//! engine starts (after the weights are loaded, so they are not counted).

/// `MemAvailable` from `/proc/meminfo`, in bytes; `None` where unknown.
pub fn mem_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_available(&text)
}

fn parse_mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Fraction of available memory given to live sequences' KV. Less than half:
/// caches grow in 256-token steps (up to ~1.5x their length), activations and
/// logits need room, and the prefix cache has its own share.
const KV_FRACTION: f64 = 0.4;
/// Fraction of available memory the prefix cache may keep.
const PREFIX_FRACTION: f64 = 0.1;
/// Used when `/proc/meminfo` cannot be read.
const FALLBACK_AVAILABLE: u64 = 4 << 30;

/// KV budget in tokens for `kv_bytes_per_token`, at least `min_tokens` (one
/// full-context sequence, so the engine can always serve something).
pub fn default_kv_budget_tokens(kv_bytes_per_token: usize, min_tokens: usize) -> usize {
    let avail = mem_available_bytes().unwrap_or(FALLBACK_AVAILABLE) as f64;
    let tokens = (avail * KV_FRACTION) / kv_bytes_per_token.max(1) as f64;
    (tokens as usize).max(min_tokens)
}

/// Prefix-cache byte budget.
pub fn default_prefix_cache_bytes() -> usize {
    (mem_available_bytes().unwrap_or(FALLBACK_AVAILABLE) as f64 * PREFIX_FRACTION) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_available_is_parsed_from_meminfo() {
        let text = "MemTotal:       16000000 kB\nMemFree:  100 kB\nMemAvailable:    8000000 kB\n";
        assert_eq!(parse_mem_available(text), Some(8_000_000 * 1024));
        assert_eq!(parse_mem_available("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn kv_budget_is_at_least_one_context() {
        assert!(default_kv_budget_tokens(usize::MAX, 4096) >= 4096);
    }
}
