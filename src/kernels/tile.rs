//! The register-tile shape and the argument contract shared by the per-ISA
//! chunk kernels (`portable`, `avx2`, `avx512`).
//!
//! A leaf: [`super::matmul`] validates, splits the work and dispatches to the
//! ISA modules, and those depend only on this module, never back on
//! `matmul`.

/// Rows of `x` per register tile.
pub const MB: usize = 4;
/// Rows of `W` per register tile.
pub const NB: usize = 4;

/// Shared argument checks for the per-ISA chunk kernels: `x` holds `m × k`,
/// `out` has `m` rows of equal length `rows`, and `w` holds `rows × k`.
/// Returns `rows`. Panics on mismatch (the public entry points validate
/// first, so a panic here is a bug in the kernels).
pub(super) fn check_chunk<X, W>(x: &[X], m: usize, k: usize, w: &[W], out: &[&mut [f32]]) -> usize {
    assert_eq!(out.len(), m, "one output slice per row of x");
    let rows = out.first().map_or(0, |r| r.len());
    assert!(out.iter().all(|r| r.len() == rows), "ragged output rows");
    assert!(x.len() >= m * k, "x too short");
    assert_eq!(w.len(), rows * k, "weight chunk / output width mismatch");
    rows
}
