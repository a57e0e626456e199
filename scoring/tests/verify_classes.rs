//! Hand-checked pairs per answer class, through `compare` (the entry point
//! of `quorum verify`): answers inside prose, equations, symbolic forms,
//! units, sets and intervals, matrices, choices.

use quorum_scoring::compare;

fn check(class: &str, equal: &[(&str, &str)], unequal: &[(&str, &str)]) {
    let mut bad = Vec::new();
    for &(g, p) in equal {
        let c = compare(g, p);
        if !c.equal {
            bad.push(format!("[{class}] want equal: {g:?} vs {p:?}: {c:?}"));
        }
    }
    for &(g, p) in unequal {
        let c = compare(g, p);
        if c.equal {
            bad.push(format!("[{class}] want unequal: {g:?} vs {p:?}: {c:?}"));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn inline_math_in_prose() {
    check(
        "inline_math",
        &[
            (
                r"$\frac{3}{8}$",
                r"Using 2 points, the slope is $\tfrac{3}{8}$.",
            ),
            (r"$3\sqrt{5}$", r"a side of $\sqrt{45}$ metres"),
            (
                r"$6.02 \times 10^{23}$",
                r"about $6.02 \times 10^{23}$ atoms",
            ),
            ("$(2,-1)$", "the vertex is at $(2,-1)$"),
            ("$2$", "Since 5 > 3, we have \\(x = 2\\) as the root."),
            ("$7$", "After 3 steps:\n\\[ 7 \\]"),
            ("12", "It takes $12$ hours."),
        ],
        &[
            ("45", r"a side of $\sqrt{45}$ metres"),
            ("8", r"the slope is $\tfrac{3}{8}$."),
            // A plain number after the last span answers (as math-verify).
            ("12", "It takes $12$ hours, i.e. 720 minutes."),
        ],
    );
}

#[test]
fn equations_as_answers() {
    check(
        "equation",
        &[
            ("7", "so $y = 7$"),
            ("$y=7$", "so $y = 7$"),
            ("$y=7$", "7"),
            ("$4a-b=2$", "$-b+4a=2$"),
            ("$4a-b=2$", "$2 = 4a - b$"),
            ("$4a-b=2$", "$8a - 2b = 4$"),
            ("$y = 2x + 3$", "$2x - y + 3 = 0$"),
            ("$y = 2x + 3$", "$y = 3 + 2x$"),
            ("$7$", "$x + y = 7$"),
        ],
        &[
            ("$x=7$", "$y = 7$"),
            ("$4a-b=2$", "$4a-c=2$"),
            ("$4a-b=2$", "$4a-b=3$"),
            ("$4a-b=2$", "2"),
            ("$y = 2x + 3$", "$y = 2x - 3$"),
        ],
    );
}

#[test]
fn symbolic_equivalence() {
    check(
        "symbolic",
        &[
            ("$a^3b$", "$b a^3$"),
            ("$a^3b$", "$ba^3$"),
            ("$6c^3z^3$", r"$z^3\cdot 6c^3$"),
            (r"$5\sqrt{2}$", r"$\sqrt{50}$"),
            (r"$\frac{4\pi}{3}$", r"The volume is $\frac{4}{3}\pi$."),
            (r"$2\pi$", r"$\pi \cdot 2$"),
            ("$(x+1)^2$", "$x^2 + 2x + 1$"),
            ("$t^2 + 8t + 16$", "$16 + 8t + t^2$"),
        ],
        &[
            ("$a^3b$", "$a b^3$"),
            (r"$5\sqrt{2}$", r"$\sqrt{10}$"),
            (r"$2\pi$", r"$3\pi$"),
            ("$(x+1)^2$", "$x^2 + 1$"),
            // Prose words are not products of variables.
            ("yes", "sey"),
        ],
    );
}

#[test]
fn units_and_text_after_numbers() {
    check(
        "units_text",
        &[
            ("12", r"$12\text{ kg}$"),
            ("4", r"It takes $4 \text{ hours}$."),
            ("8", r"\boxed{8} cookies"),
            ("256", r"$\boxed{256\text{ cookies}}$"),
            ("15", "She needs 15 dollars in all."),
            ("90", r"The angle is $90^\circ$."),
        ],
        &[("12", r"$13\text{ kg}$"), ("8", r"\boxed{9} cookies")],
    );
}

#[test]
fn sets_and_intervals() {
    check(
        "sets_intervals",
        &[
            (r"$\{1,6\}$", "So $x = 1$ or $x = 6$."),
            (r"$\{1,6\}$", r"$x = 1 \text{ or } x = 6$"),
            (r"$\{1,6\}$", "The solutions are $6$ and $1$."),
            (r"$\{1,6\}$", r"$x \in \{6, 1\}$"),
            (r"$\{1,6\}$", r"$\{6, 1, 6\}$"),
            (r"$\pm 3$", r"$\{-3, 3\}$"),
            (r"$\pm 3$", r"$x = \pm 3$"),
            (r"$1 \pm \sqrt{2}$", r"$1 - \sqrt{2}, 1 + \sqrt{2}$"),
            (r"$\mathbb{R}$", r"$(-\infty, \infty)$"),
            ("$[2, 5)$", r"$x \in [2, 5)$"),
            (
                r"$(-\infty, 1) \cup (2, \infty)$",
                r"$(2,\infty)\cup(-\infty,1)$",
            ),
        ],
        &[
            (r"$\{1,6\}$", r"$\{1, 6, 7\}$"),
            (r"$\pm 3$", "$3$"),
            ("$[2, 5)$", "$[2, 5]$"),
            (r"$\mathbb{R}$", r"$[0, \infty)$"),
            ("$(1, 2)$", "$(2, 1)$"),
        ],
    );
}

#[test]
fn matrices_and_choices() {
    check(
        "matrix",
        &[(
            r"$\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}$",
            r"So the matrix is $\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}$.",
        )],
        &[(
            r"$\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}$",
            r"$\begin{pmatrix} 1 & 2 \\ 4 & 3 \end{pmatrix}$",
        )],
    );
    check(
        "choice",
        &[
            ("C", "The answer is (C)."),
            ("C", "Comparing the options, the correct one is C."),
            ("(B)", "**Answer: B**"),
            ("D", "Option C fails, so the answer is D."),
        ],
        &[("C", "The answer is D."), ("A", "no letter here")],
    );
}

#[test]
fn deliberate_departures_from_mathverify() {
    check(
        "deliberate",
        &[
            // math-verify: 6.02 (e-notation unread); \fbox unread outside math.
            (r"$6.02 \times 10^{23}$", "6.02e23"),
            ("109", r"\fbox{109}"),
            // math-verify unions both boxes into {96, 99}.
            ("96", r"We first try \boxed{99}; correcting, \boxed{96}."),
            // math-verify: 12.5% != 12.5 although 50% == 50.
            ("12.5", r"$12.5\%$"),
        ],
        &[
            // Exact decimals: math-verify rounds to 6 places and says equal.
            ("1/3", "0.3333333"),
            // A point is not a set (math-verify: equal).
            ("$(1,2)$", r"$\{1,2\}$"),
        ],
    );
}
