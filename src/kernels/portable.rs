//! Portable fallback: plain safe Rust shaped so LLVM autovectorizes it.
//!
//! Each (x-row, w-row) pair keeps `L` independent per-lane partial sums; a
//! per-lane multiply-add needs no reassociation, so the compiler vectorizes
//! it to whatever the baseline target offers (SSE2 on x86-64, NEON on
//! aarch64) without fast-math. Tiles are `MB × 2` (fewer accumulators than
//! the AVX paths, since baseline x86-64 has only 16 vector registers).

use half::bf16;

use super::tile::{check_chunk, MB};

/// Lanes of partial sums per dot product.
const L: usize = 8;
/// Rows of `W` per tile on this path.
const NB_PORTABLE: usize = 2;

/// f32 weights: `out[i][j] = x[i] · w[j]` for this chunk's rows of `w`.
pub(super) fn chunk_f32(x: &[f32], m: usize, k: usize, w: &[f32], out: &mut [&mut [f32]]) {
    chunk(x, m, k, w, out, |dst: &mut [f32; L], src: &[f32]| {
        dst[..src.len()].copy_from_slice(src)
    });
}

/// bf16 weights, upcast to f32 (a 16-bit shift) in L-sized pieces.
/// Loaders write `dst[..src.len()]` so the same closure serves the k tail.
pub(super) fn chunk_bf16(x: &[f32], m: usize, k: usize, w: &[bf16], out: &mut [&mut [f32]]) {
    chunk(x, m, k, w, out, |dst: &mut [f32; L], src: &[bf16]| {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = f32::from_bits(u32::from(s.to_bits()) << 16);
        }
    });
}

/// Shared driver: walks W in `NB_PORTABLE`-row blocks, x in `MB`-row blocks.
fn chunk<T: Copy>(
    x: &[f32],
    m: usize,
    k: usize,
    w: &[T],
    out: &mut [&mut [f32]],
    load: impl Fn(&mut [f32; L], &[T]) + Copy,
) {
    let rows = check_chunk(x, m, k, w, out);
    let mut j = 0;
    while j < rows {
        let nb = NB_PORTABLE.min(rows - j);
        let mut i = 0;
        while i < m {
            let mb = MB.min(m - i);
            let xs = &x[i * k..(i + mb) * k];
            let ws = &w[j * k..(j + nb) * k];
            match (mb, nb) {
                (4, 2) => tile::<4, 2, T>(xs, ws, k, out, i, j, load),
                (4, 1) => tile::<4, 1, T>(xs, ws, k, out, i, j, load),
                (3, 2) => tile::<3, 2, T>(xs, ws, k, out, i, j, load),
                (3, 1) => tile::<3, 1, T>(xs, ws, k, out, i, j, load),
                (2, 2) => tile::<2, 2, T>(xs, ws, k, out, i, j, load),
                (2, 1) => tile::<2, 1, T>(xs, ws, k, out, i, j, load),
                (1, 2) => tile::<1, 2, T>(xs, ws, k, out, i, j, load),
                (1, 1) => tile::<1, 1, T>(xs, ws, k, out, i, j, load),
                _ => unreachable!("tile shape out of range"),
            }
            i += mb;
        }
        j += nb;
    }
}

/// One `M × N` tile over the full k: `xs` is `M × k`, `ws` is `N × k`.
#[inline(always)]
fn tile<const M: usize, const N: usize, T: Copy>(
    xs: &[f32],
    ws: &[T],
    k: usize,
    out: &mut [&mut [f32]],
    i0: usize,
    j0: usize,
    load: impl Fn(&mut [f32; L], &[T]),
) {
    let mut acc = [[[0f32; L]; N]; M];
    let kv = k - k % L;
    let mut wbuf = [[0f32; L]; N];
    for p in (0..kv).step_by(L) {
        for (jj, wb) in wbuf.iter_mut().enumerate() {
            load(wb, &ws[jj * k + p..jj * k + p + L]);
        }
        for (ii, acc_i) in acc.iter_mut().enumerate() {
            let xv: &[f32; L] = xs[ii * k + p..ii * k + p + L]
                .try_into()
                .expect("L-sized slice");
            for (a, wb) in acc_i.iter_mut().zip(&wbuf) {
                for l in 0..L {
                    a[l] += xv[l] * wb[l];
                }
            }
        }
    }
    // k tail: the loaders fill only `src.len()` lanes, the rest stay zero.
    let tail = k - kv;
    if tail > 0 {
        for (jj, wb) in wbuf.iter_mut().enumerate() {
            *wb = [0f32; L];
            load(wb, &ws[jj * k + kv..jj * k + k]);
        }
        for (ii, acc_i) in acc.iter_mut().enumerate() {
            let mut xt = [0f32; L];
            xt[..tail].copy_from_slice(&xs[ii * k + kv..ii * k + k]);
            for (a, wb) in acc_i.iter_mut().zip(&wbuf) {
                for l in 0..L {
                    a[l] += xt[l] * wb[l];
                }
            }
        }
    }
    for (ii, acc_i) in acc.iter().enumerate() {
        for (jj, a) in acc_i.iter().enumerate() {
            out[i0 + ii][j0 + jj] = a.iter().sum();
        }
    }
}
