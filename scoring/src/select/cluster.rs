//! Clustering of answers by math equivalence.

use crate::equivalence::answers_equivalent;
use crate::math::answer::Answer;
use crate::math::number::Tolerance;
use std::collections::HashMap;

/// Answers grouped into equivalence clusters, in order of first appearance.
#[derive(Debug, Clone, PartialEq)]
pub struct Clustering {
    /// Cluster id per input position (`None` = no answer).
    pub cluster_of: Vec<Option<usize>>,
    /// Canonical rendering of each cluster's representative (first member).
    pub normalized: Vec<String>,
}

impl Clustering {
    pub fn len(&self) -> usize {
        self.normalized.len()
    }

    pub fn is_empty(&self) -> bool {
        self.normalized.is_empty()
    }
}

/// Clusters answers greedily: each answer joins the first cluster whose
/// representative it is equivalent to, else starts a new cluster.
/// Identical canonical renderings short-cut the pairwise comparison.
pub fn cluster_answers(answers: &[Option<String>], tol: &Tolerance) -> Clustering {
    let mut reps: Vec<Answer> = Vec::new();
    let mut normalized: Vec<String> = Vec::new();
    let mut by_text: HashMap<String, usize> = HashMap::new();
    let mut cluster_of = Vec::with_capacity(answers.len());
    for a in answers {
        let Some(a) = a else {
            cluster_of.push(None);
            continue;
        };
        let parsed = Answer::parse(a);
        let text = parsed.render();
        let id = match by_text.get(&text) {
            Some(&id) => id,
            None => {
                let id = reps
                    .iter()
                    .position(|r| answers_equivalent(r, &parsed, tol).equal)
                    .unwrap_or_else(|| {
                        reps.push(parsed);
                        normalized.push(text.clone());
                        reps.len() - 1
                    });
                by_text.insert(text, id);
                id
            }
        };
        cluster_of.push(Some(id));
    }
    Clustering {
        cluster_of,
        normalized,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equivalent_answers_share_a_cluster() {
        let answers: Vec<Option<String>> = vec![
            Some("1/2".into()),
            None,
            Some(r"\frac{1}{2}".into()),
            Some("0.5".into()),
            Some("2".into()),
        ];
        let c = cluster_answers(&answers, &Tolerance::default());
        assert_eq!(c.cluster_of, vec![Some(0), None, Some(0), Some(0), Some(1)]);
        assert_eq!(c.normalized, vec!["1/2".to_string(), "2".to_string()]);
    }
}
