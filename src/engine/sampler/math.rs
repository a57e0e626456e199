//! The numeric kernels of [`super::Sampler::sample`] over one logits row:
//! temperature scaling with sanitising and the max, a vectorisable `exp`
//! and the softmax normaliser, log-softmax at one token, the bounded top-k
//! buffer, and the nucleus (top-p) selection without a full sort. Ties are
//! broken by the lower token id everywhere ([`by_prob_desc`]).

use std::cmp::Ordering;

/// Tokens examined (selected and sorted) before the nucleus (top-p) search
/// switches to a histogram.
pub(super) const NUCLEUS_FIRST_CHUNK: usize = 64;

/// Lanes of the manually unrolled reductions below: independent accumulators
/// let LLVM vectorise loops that would otherwise be a serial dependency chain.
const LANES: usize = 8;

/// Multiplies by `inv_t` in place, maps NaN to -inf and +inf to `f32::MAX`,
/// and returns the maximum (-inf when nothing is finite).
pub(super) fn scale_sanitize_max(row: &mut [f32], inv_t: f32) -> f32 {
    #[inline(always)]
    fn step(l: &mut f32, acc: &mut f32, inv_t: f32) {
        let v = *l * inv_t;
        #[allow(clippy::eq_op)] // `v != v` is the branch-free NaN test
        let v = if v != v {
            f32::NEG_INFINITY
        } else if v > f32::MAX {
            f32::MAX
        } else {
            v
        };
        *l = v;
        *acc = if v > *acc { v } else { *acc };
    }
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for chunk in &mut chunks {
        for (l, a) in chunk.iter_mut().zip(acc.iter_mut()) {
            step(l, a, inv_t);
        }
    }
    let mut max = f32::NEG_INFINITY;
    for l in chunks.into_remainder() {
        step(l, &mut max, inv_t);
    }
    acc.into_iter().fold(max, |m, a| if a > m { a } else { m })
}

/// `log_softmax(row · inv_t)[token]`, with the same sanitising and
/// arithmetic as [`super::Sampler::sample`]; `row` is scratch afterwards.
pub(super) fn log_softmax_at(row: &mut [f32], inv_t: f32, token: usize) -> f32 {
    let max = scale_sanitize_max(row, inv_t);
    let x = row.get(token).copied().unwrap_or(f32::NEG_INFINITY);
    let ln_z = exp_shifted_in_place(row, max).ln();
    (f64::from(x - max) - ln_z) as f32
}

/// Replaces every `v` with `exp(v - max)` and returns the sum (in f64).
pub(super) fn exp_shifted_in_place(row: &mut [f32], max: f32) -> f64 {
    // Two simple loops vectorise; one fused loop with f64 accumulators did not.
    for l in row.iter_mut() {
        *l = exp_nonpositive(*l - max);
    }
    let mut acc = [0f64; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (&p, a) in chunk.iter().zip(acc.iter_mut()) {
            *a += f64::from(p);
        }
    }
    let rest: f64 = chunks.remainder().iter().map(|&p| f64::from(p)).sum();
    rest + acc.iter().sum::<f64>()
}

/// `exp(x)` for `x <= 0` (including -inf), within about 2 ulp, returning
/// exactly `1` at `0` and exactly `0` below -87 (where `expf` leaves the
/// normal range anyway).
///
/// Why not `f32::exp`: it is a libm call per element and made the exp pass
/// over a 151k vocabulary the most expensive part of sampling. This is the
/// Cephes `expf` polynomial with branch-free range reduction, which LLVM
/// vectorises.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 * 2^23: adding it rounds to an integer held in the low mantissa bits.
    const ROUND: f32 = 12_582_912.0;
    let xc = if x >= -87.0 { x } else { -87.0 };
    let t = xc * LOG2E + ROUND;
    let n = t - ROUND;
    let k = (t.to_bits() as i32).wrapping_sub(ROUND.to_bits() as i32);
    let r = xc - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(((k + 127) << 23) as u32);
    if x >= -87.0 {
        y * scale
    } else {
        0.0
    }
}

/// Descending by value, ties by ascending id: a total order, so partial
/// selections are deterministic.
pub(super) fn by_prob_desc(a: &(u32, f32), b: &(u32, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// Inserts `(id, v)` into `buf` (sorted by [`by_prob_desc`], at most `cap`
/// long). Ids must arrive in ascending order, so an equal value ranks after
/// the ones already present. O(cap) per insert, O(1) for the common reject.
pub(super) fn push_top(buf: &mut Vec<(u32, f32)>, cap: usize, id: u32, v: f32) {
    if buf.len() >= cap {
        match buf.last() {
            Some(&(_, last)) if v > last => {
                buf.pop();
            }
            _ => return,
        }
    }
    let pos = buf.partition_point(|&(_, b)| b >= v);
    buf.insert(pos, (id, v));
}

/// Length of the smallest prefix, in [`by_prob_desc`] order, whose mass
/// reaches `target` (at least 1), after rearranging `cands` so that this
/// nucleus is `cands[..len]` (in no particular but deterministic order).
///
/// Avoids sorting the vocabulary. A peaked distribution is settled by the
/// first [`NUCLEUS_FIRST_CHUNK`] tokens (one O(n) selection and a tiny
/// sort). A flat one, whose nucleus can be tens of thousands of tokens, is
/// settled with a histogram of probabilities over log-spaced bins: every bin
/// above the one where the mass crosses the target is kept whole, and only
/// that crossing bin is sorted.
pub(super) fn nucleus_len(cands: &mut [(u32, f32)], target: f64) -> usize {
    // A prefix whose mass equals the target up to rounding counts as reaching
    // it, so an exact boundary (probs 0.5, 0.3, … with top_p 0.5) does not
    // pull in one more token because of the last bit of a sum.
    let target = target * (1.0 - 1e-6);
    let len = cands.len();
    let head = NUCLEUS_FIRST_CHUNK.min(len);
    if head < len {
        cands.select_nth_unstable_by(head - 1, by_prob_desc);
    }
    cands[..head].sort_unstable_by(by_prob_desc);
    let mut cum = 0f64;
    for (i, &(_, p)) in cands[..head].iter().enumerate() {
        cum += f64::from(p);
        if cum >= target {
            return i + 1;
        }
    }

    let rest = &mut cands[head..];
    let mut mass = [0f64; NUCLEUS_BINS];
    for &(_, p) in rest.iter() {
        mass[prob_bin(p)] += f64::from(p);
    }
    // The crossing bin: the highest bin at which the cumulative mass
    // (from the top) reaches the target.
    let mut crossing = None;
    for (bin, &m) in mass.iter().enumerate().rev() {
        if cum + m >= target {
            crossing = Some(bin);
            break;
        }
        cum += m;
    }
    let Some(crossing) = crossing else {
        return len.max(1); // rounding: the whole list is the nucleus
    };
    // Move the bins above the crossing to the front, then the crossing bin.
    let above = partition_in_place(rest, |p| prob_bin(p) > crossing);
    let at = above + partition_in_place(&mut rest[above..], |p| prob_bin(p) == crossing);
    let bin = &mut rest[above..at];
    bin.sort_unstable_by(by_prob_desc);
    for (i, &(_, p)) in bin.iter().enumerate() {
        cum += f64::from(p);
        if cum >= target {
            return head + above + i + 1;
        }
    }
    head + at
}

/// Number of histogram bins of [`prob_bin`].
const NUCLEUS_BINS: usize = 1024;

/// A bin index that is monotone in `p` for `p` in `(0, 1]`: the float's
/// exponent and top 3 mantissa bits (8 bins per octave), at most 1016.
fn prob_bin(p: f32) -> usize {
    ((p.to_bits() >> 20) as usize).min(NUCLEUS_BINS - 1)
}

/// Moves the elements whose probability satisfies `keep` to the front
/// (order not preserved) and returns how many there are.
fn partition_in_place(items: &mut [(u32, f32)], keep: impl Fn(f32) -> bool) -> usize {
    let mut w = 0;
    for r in 0..items.len() {
        if keep(items[r].1) {
            items.swap(w, r);
            w += 1;
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_is_accurate_to_a_few_ulp() {
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert_eq!(exp_nonpositive(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(-100.0), 0.0);
        let mut worst = 0f64;
        for i in 0..=870_000 {
            // down to -87.0 inclusive
            let x = -(i as f32) * 1e-4;
            let exact = (x as f64).exp();
            let rel = ((exp_nonpositive(x) as f64 - exact) / exact).abs();
            worst = worst.max(rel);
        }
        assert!(
            worst < 3.0 * f32::EPSILON as f64,
            "worst relative error {worst}"
        );
    }

    #[test]
    fn nucleus_selection_equals_sorted_prefix_definition() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut rand01 = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32
        };
        for (n, spread) in [
            (10, 1.0),
            (300, 4.0),
            (5000, 2.0),
            (5000, 20.0),
            (20_000, 0.5),
        ] {
            // Quantised logits so that equal probabilities (ties) occur.
            let probs: Vec<f32> = (0..n)
                .map(|_| exp_nonpositive(-((rand01() * spread * 8.0).round() / 8.0)))
                .collect();
            for top_p in [0.1f64, 0.5, 0.9, 0.99] {
                let mut sorted: Vec<(u32, f32)> = probs
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| (i as u32, p))
                    .collect();
                sorted.sort_by(by_prob_desc);
                let total: f64 = sorted.iter().map(|&(_, p)| f64::from(p)).sum();
                let target = top_p * total;
                let mut cum = 0.0;
                let mut expect_len = sorted.len();
                for (i, &(_, p)) in sorted.iter().enumerate() {
                    cum += f64::from(p);
                    if cum >= target * (1.0 - 1e-6) {
                        expect_len = i + 1;
                        break;
                    }
                }
                let mut expect: Vec<u32> = sorted[..expect_len].iter().map(|c| c.0).collect();
                expect.sort_unstable();

                let mut cands: Vec<(u32, f32)> = probs
                    .iter()
                    .enumerate()
                    .map(|(i, &p)| (i as u32, p))
                    .collect();
                let len = nucleus_len(&mut cands, target);
                let mut got: Vec<u32> = cands[..len].iter().map(|c| c.0).collect();
                got.sort_unstable();
                assert_eq!(got, expect, "n {n} spread {spread} top_p {top_p}");
            }
        }
    }
}
