//! Matrices: `\begin{pmatrix} a & b \\ c & d \end{pmatrix}` (also `bmatrix`,
//! `matrix`, `Bmatrix`, `smallmatrix`). The cleaner turns the row separator
//! `\\` into [`ROW_SEP`] before anything else touches backslashes.

/// What the cleaner writes for a LaTeX row break `\\`.
pub const ROW_SEP: &str = r" \cr ";
const ENVS: &[&str] = &["pmatrix", "bmatrix", "matrix", "smallmatrix", "vmatrix"];
/// Largest matrix read (cells); bigger ones stay text.
pub const MAX_CELLS: usize = 256;

/// The rows of cells of a matrix environment spanning all of `s`
/// (already lower-cased by the cleaner).
pub fn matrix_cells(s: &str) -> Option<Vec<Vec<&str>>> {
    let env = ENVS
        .iter()
        .find(|e| s.starts_with(&format!(r"\begin{{{e}}}")))?;
    let body = s
        .strip_prefix(&format!(r"\begin{{{env}}}"))?
        .strip_suffix(&format!(r"\end{{{env}}}"))?;
    if *env == "vmatrix" {
        return None; // a determinant, not a matrix
    }
    let rows: Vec<Vec<&str>> = body
        .split(ROW_SEP.trim())
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(|r| r.split('&').map(str::trim).collect())
        .collect();
    let width = rows.first()?.len();
    let cells: usize = rows.iter().map(Vec::len).sum();
    (rows.iter().all(|r| r.len() == width) && cells <= MAX_CELLS).then_some(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_and_cells() {
        let s = r"\begin{pmatrix} 1 & 2 \cr 3 & 4 \end{pmatrix}";
        assert_eq!(matrix_cells(s), Some(vec![vec!["1", "2"], vec!["3", "4"]]));
        assert_eq!(
            matrix_cells(r"\begin{bmatrix}5\cr 6\cr\end{bmatrix}"),
            Some(vec![vec!["5"], vec!["6"]])
        );
        assert_eq!(
            matrix_cells(r"\begin{pmatrix}1 & 2\cr 3\end{pmatrix}"),
            None
        );
        assert_eq!(matrix_cells(r"\begin{vmatrix}1\end{vmatrix}"), None);
    }
}
