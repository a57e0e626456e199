//! `countdown`: reach a target from a few numbers with `+ - * /`, each
//! number used at most once (the `countdown` verifier judges it).
//!
//! `Make 24 from 3 5 7 8.` → trace (a short search: failed attempts, each
//! a full reduction ending in `no`, then the one that works, then the
//! expression) and the answer `\boxed{(8-5)*7+3}`:
//!
//! ```text
//! 8*7=56 56-5=51 51+3=54 no
//! 8-5=3 3*7=21 21+3=24 yes
//! a:(8-5)*7+3
//! ```
//!
//! The reference answer is the solution expression: its literals are the
//! numbers and its value the target.

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::span::Span;
use super::{GenError, Problem, TaskGenerator};

/// Countdown knobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CountdownConfig {
    /// How many numbers a problem gives.
    pub numbers: Span,
    /// Numbers are drawn from 1..=max_number.
    pub max_number: u32,
    pub min_target: u32,
    pub max_target: u32,
    /// Failed attempts shown before the solution.
    pub dead_ends: Span,
}

impl Default for CountdownConfig {
    fn default() -> Self {
        CountdownConfig {
            numbers: Span::new(3, 4),
            max_number: 25,
            min_target: 10,
            max_target: 100,
            dead_ends: Span::new(0, 2),
        }
    }
}

/// Draws of one operation before a reduction gives up.
const OP_TRIES: usize = 20;

#[derive(Debug, Clone)]
enum Node {
    Num(u64),
    Bin(char, Box<Node>, Box<Node>),
}

fn prec(n: &Node) -> u8 {
    match n {
        Node::Num(_) => 3,
        Node::Bin('+' | '-', ..) => 1,
        Node::Bin(..) => 2,
    }
}

/// Infix with the parentheses the order of operations needs.
fn render(n: &Node) -> String {
    match n {
        Node::Num(v) => v.to_string(),
        Node::Bin(op, l, r) => {
            let p = prec(n);
            let ls = render(l);
            let rs = render(r);
            let ls = if prec(l) < p { format!("({ls})") } else { ls };
            let right_paren = prec(r) < p || (prec(r) == p && matches!(op, '-' | '/'));
            let rs = if right_paren { format!("({rs})") } else { rs };
            format!("{ls}{op}{rs}")
        }
    }
}

/// One random full reduction of `nums`.
struct Reduction {
    steps: Vec<String>,
    /// The value after each step; the last is the result.
    values: Vec<u64>,
    tree: Node,
}

impl Reduction {
    fn result(&self) -> u64 {
        self.values.last().copied().unwrap_or(0)
    }

    /// Whether a step before the last already gives `v`.
    fn passes(&self, v: u64) -> bool {
        self.values[..self.values.len().saturating_sub(1)].contains(&v)
    }
}

/// Combines two values at a time into their result until one is left.
/// Every value stays a positive integer no larger than `max_value`; no
/// `*1`, `/1` or `x-x`.
fn reduce(rng: &mut Rng, nums: &[u64], max_value: u64) -> Option<Reduction> {
    let mut pool: Vec<(u64, Node)> = nums.iter().map(|&v| (v, Node::Num(v))).collect();
    let mut steps = Vec::with_capacity(nums.len().saturating_sub(1));
    let mut values = Vec::with_capacity(nums.len().saturating_sub(1));
    while pool.len() > 1 {
        let mut chosen = None;
        for _ in 0..OP_TRIES {
            let i = rng.below(pool.len() as u64) as usize;
            let mut j = rng.below(pool.len() as u64 - 1) as usize;
            if j >= i {
                j += 1;
            }
            let (a, b) = (pool[i].0, pool[j].0);
            let (hi, lo) = if a >= b { (i, j) } else { (j, i) };
            let (vh, vl) = (pool[hi].0, pool[lo].0);
            let op = *rng.pick(&['+', '-', '*', '/']);
            let done = match op {
                '+' => Some((i, j, vh + vl)),
                '-' if vh != vl => Some((hi, lo, vh - vl)),
                '*' if vh > 1 && vl > 1 => Some((i, j, vh * vl)),
                '/' if vl > 1 && vh % vl == 0 => Some((hi, lo, vh / vl)),
                _ => None,
            };
            if let Some((x, y, v)) = done.filter(|&(_, _, v)| v <= max_value) {
                chosen = Some((x, y, op, v));
                break;
            }
        }
        let (x, y, op, v) = chosen?;
        steps.push(format!("{}{op}{}={v}", pool[x].0, pool[y].0));
        values.push(v);
        let node = Node::Bin(op, Box::new(pool[x].1.clone()), Box::new(pool[y].1.clone()));
        let (first, second) = (x.max(y), x.min(y));
        pool.swap_remove(first);
        pool.swap_remove(second);
        pool.push((v, node));
    }
    let (_, tree) = pool.pop()?;
    Some(Reduction {
        steps,
        values,
        tree,
    })
}

/// The `countdown` generator.
#[derive(Debug, Clone)]
pub struct Countdown {
    cfg: CountdownConfig,
}

impl Countdown {
    pub fn new(cfg: CountdownConfig) -> Result<Self, GenError> {
        cfg.numbers.check("numbers", 2, 6)?;
        cfg.dead_ends.check("dead_ends", 0, 5)?;
        if !(2..=1000).contains(&cfg.max_number) {
            return Err(GenError::BadConfig(format!(
                "max_number {} must lie within 2-1000",
                cfg.max_number
            )));
        }
        if cfg.min_target > cfg.max_target || cfg.max_target > 1_000_000 {
            return Err(GenError::BadConfig(format!(
                "targets {}-{} must be ordered and at most 1000000",
                cfg.min_target, cfg.max_target
            )));
        }
        Ok(Countdown { cfg })
    }

    pub fn config(&self) -> &CountdownConfig {
        &self.cfg
    }
}

impl TaskGenerator for Countdown {
    fn kind(&self) -> &'static str {
        "countdown"
    }

    fn draw(&self, rng: &mut Rng) -> Problem {
        let cfg = &self.cfg;
        let max_value = u64::from(cfg.max_target) * 10;
        loop {
            let k = cfg.numbers.draw(rng) as usize;
            let nums: Vec<u64> = (0..k)
                .map(|_| rng.range(1, u64::from(cfg.max_number)))
                .collect();
            let Some(solution) = reduce(rng, &nums, max_value) else {
                continue;
            };
            let target = solution.result();
            let in_range =
                (u64::from(cfg.min_target)..=u64::from(cfg.max_target)).contains(&target);
            if !in_range || nums.contains(&target) || solution.passes(target) {
                continue;
            }
            let mut lines = Vec::new();
            let dead_ends = cfg.dead_ends.draw(rng);
            for _ in 0..dead_ends {
                // A failed attempt never passes through the target.
                let attempt = (0..OP_TRIES)
                    .filter_map(|_| reduce(rng, &nums, max_value))
                    .find(|r| !r.values.contains(&target));
                if let Some(r) = attempt {
                    lines.push(format!("{} no", r.steps.join(" ")));
                }
            }
            lines.push(format!("{} yes", solution.steps.join(" ")));
            let expr = render(&solution.tree);
            lines.push(format!("a:{expr}"));
            let mut sorted = nums.clone();
            sorted.sort_unstable();
            let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>();
            return Problem {
                canonical: format!("countdown {} = {target}", list(&sorted).join(",")),
                prompt: format!("Make {target} from {}.", list(&nums).join(" ")),
                trace: lines.join("\n"),
                answer: expr,
                verifier: "countdown",
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parentheses_follow_the_order_of_operations() {
        use Node::*;
        let n = |v| Box::new(Num(v));
        let sub = Bin('-', n(8), n(5));
        let t = Bin('+', Box::new(Bin('*', Box::new(sub.clone()), n(7))), n(3));
        assert_eq!(render(&t), "(8-5)*7+3");
        let t = Bin('-', n(9), Box::new(Bin('+', n(2), n(3))));
        assert_eq!(render(&t), "9-(2+3)");
        let t = Bin('/', n(8), Box::new(Bin('*', n(2), n(2))));
        assert_eq!(render(&t), "8/(2*2)");
        let t = Bin('+', n(1), Box::new(Bin('+', n(2), n(3))));
        assert_eq!(render(&t), "1+2+3");
    }
}
