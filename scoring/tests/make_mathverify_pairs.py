#!/usr/bin/env python3
"""Generate and label the (gold, prediction) agreement set for Quorum's verifier.

Labels come from HF math-verify: ``verify(parse(gold), parse(pred))`` with the
default extraction configs (LaTeX + expression). The ``choice`` class is
labelled with ``StringExtractionConfig`` (letters A-E) on both sides, the way
math-verify is used for multiple-choice tasks; with the default configs a bare
letter never parses and every choice pair would be "not equal".

Pinned: math-verify==0.9.0 (latex2sympy2_extended 1.11.0, sympy 1.14.0).
Run (deterministic, seed 16):

    python3 -m venv /work/tmp/verify-venv
    /work/tmp/verify-venv/bin/pip install math-verify==0.9.0
    /work/tmp/verify-venv/bin/python scoring/tests/make_mathverify_pairs.py \
        > scoring/tests/mathverify_pairs.jsonl

Golds are written the way datasets store them: bare numbers (GSM8K), or LaTeX
inside ``$...$`` / ``\\boxed{}`` (MATH-style answers; math-verify only parses
LaTeX golds inside math delimiters). Predictions are written the way models
write them: prose around the answer, inline math, display math, boxed, units.

Each output line: {"id", "class", "gold", "pred", "mathverify"} plus, for the
pairs where Quorum deliberately disagrees, "quorum_expected" and "why"
(see DELIBERATE below).
"""

import json
import re
import random
import sys
from decimal import Decimal
from fractions import Fraction

from math_verify import StringExtractionConfig, parse, verify

SEED = 16
rng = random.Random(SEED)

# ---------------------------------------------------------------- prose wrappers

LEADS = [
    "",
    "Let's compute step by step. ",
    "First we simplify the expression. ",
    "Combining the two cases, ",
    "After substituting back, ",
    "Solving the system gives the result. ",
]


def inline(x, noun="the answer"):
    """The answer inside inline / display math, in prose."""
    t = rng.choice(
        [
            "So {noun} is ${x}$.",
            "Therefore {noun} is $ {x} $.",
            "We find that \\({x}\\) is {noun}.",
            "Thus {noun} equals \\( {x} \\).",
            "Hence\n\\[ {x} \\]",
            "This gives $$ {x} $$",
            "Putting it together, we get ${x}$ as {noun}.",
            "{noun_c} turns out to be ${x}$, as required.",
        ]
    )
    return rng.choice(LEADS) + t.format(x=x, noun=noun, noun_c=noun.capitalize())


def boxed(x):
    t = rng.choice(
        [
            "The final answer is $\\boxed{{{x}}}$.",
            "Therefore, the answer is \\boxed{{{x}}}.",
            "$$\\boxed{{{x}}}$$",
            "\\boxed{{{x}}}",
            "So we get $\\boxed{{ {x} }}$ in the end.",
            "**Final Answer**\n\\[\n\\boxed{{{x}}}\n\\]",
        ]
    )
    return rng.choice(LEADS) + t.format(x=x)


def any_wrap(x, noun="the answer"):
    return inline(x, noun) if rng.random() < 0.6 else boxed(x)


def gold_wrap(x):
    """A LaTeX gold the way datasets store it."""
    return rng.choice([f"${x}$", f"${x}$", f"\\boxed{{{x}}}"])


def num_gold(x):
    return rng.choice([str(x), str(x), f"${x}$", f"\\boxed{{{x}}}"])


# ---------------------------------------------------------------- classes


def frac_tex(f, style=None):
    style = style or rng.choice(["frac", "dfrac", "tfrac", "slash"])
    n, d = f.numerator, f.denominator
    sign = "-" if n < 0 else ""
    n = abs(n)
    if style == "slash":
        return f"{sign}{n}/{d}"
    return f"{sign}\\{style}{{{n}}}{{{d}}}"


def cls_fraction():
    out = []
    for _ in range(90):
        d = rng.randint(2, 19)
        n = rng.randint(-20, 30)
        f = Fraction(n, d)
        if f.denominator == 1:
            f += Fraction(1, 7)
        g = gold_wrap(frac_tex(f, rng.choice(["frac", "dfrac"])))
        k = rng.randint(2, 5)
        same = [
            frac_tex(f),
            f"\\frac{{{f.numerator * k}}}{{{f.denominator * k}}}",
            f"{f.numerator}/{f.denominator}",
        ]
        other = [
            frac_tex(f + Fraction(1, f.denominator)),
            frac_tex(1 / f) if f != 0 else "1",
            f"\\frac{{{f.denominator}}}{{{f.numerator}}}" if f.numerator else "2",
            frac_tex(-f) if f != 0 else "1",
        ]
        if f.denominator in (2, 4, 5, 8, 10, 20, 25):
            same.append(str(float(f)))
        if f > 1 and rng.random() < 0.5:
            w = f.numerator // f.denominator
            r = f - w
            same.append(f"{w}\\frac{{{r.numerator}}}{{{r.denominator}}}")
        eq = rng.random() < 0.5
        p = rng.choice(same if eq else other)
        out.append((g, any_wrap(p)))
    return out


def cls_decimal():
    out = []
    for _ in range(85):
        cents = rng.randint(1, 99999)
        places = rng.choice([1, 2, 2, 3])
        x = Fraction(cents, 10**places)
        s = f"{float(x):.{places}f}"
        g = num_gold(s)
        same = [s + "0", s.rstrip("0").rstrip(".") if "." in s else s, frac_tex(x, "frac")]
        if s.startswith("0."):
            same.append(s[1:])
        other = [
            f"{float(x) + 10 ** -places:.{places}f}",
            f"{float(x) * 10:.{places}f}",
            f"{float(x):.{places + 1}f}"[:-1] + "1",
        ]
        p = rng.choice(same if rng.random() < 0.5 else other)
        out.append((g, any_wrap(p) if rng.random() < 0.7 or "\\" in p else p))
    return out


def cls_percent():
    out = []
    for _ in range(80):
        v = rng.choice([5, 10, 12.5, 20, 25, 30, 37.5, 40, 45, 50, 60, 62.5, 75, 80, 90, 120])
        vs = f"{v:g}"
        g = rng.choice([f"${vs}\\%$", f"{vs}%", vs, f"\\boxed{{{vs}\\%}}"])
        same = [f"{vs}\\%", f"{vs}%", vs, f"{vs} percent", f"{v / 100:g}"]
        other = [f"{v + 5:g}\\%", f"{v / 10:g}", f"{v + 10:g}", f"{v / 1000:g}"]
        p = rng.choice(same if rng.random() < 0.5 else other)
        wrap = rng.random()
        if wrap < 0.4:
            p = any_wrap(p, "the percentage")
        elif wrap < 0.7 or "\\" in p:
            p = f"The discount is {p}." if "\\" not in p else inline(p, "the percentage")
        out.append((g, p))
    return out


def cls_scientific():
    out = []
    for _ in range(80):
        m = rng.choice(["1.5", "2.5", "3", "6.02", "9.8", "1.2", "4.56", "7"])
        e = rng.choice([-6, -4, -3, 3, 4, 5, 6, 8, 12, 23])
        g = gold_wrap(f"{m} \\times 10^{{{e}}}")
        val = Fraction(m) * Fraction(10) ** e
        plain = (
            str(val.numerator)
            if val.denominator == 1
            else f"{float(val):.{abs(e) + 3}f}".rstrip("0")
        )
        same = [
            f"{m}\\times10^{{{e}}}",
            f"{m} \\cdot 10^{{{e}}}",
            plain,
            f"{m}e{e}",
        ]
        other = [
            f"{m} \\times 10^{{{e + 1}}}",
            f"{m} \\times 10^{{{-e}}}",
            f"{Fraction(m) + 1} \\times 10^{{{e}}}",
        ]
        p = rng.choice(same if rng.random() < 0.5 else other)
        r = rng.random()
        if r < 0.4:
            p = f"There are about ${p}$ atoms."
        elif r < 0.7 or "\\" in p:
            p = any_wrap(p)
        out.append((g, p))
    return out


def cls_boxed():
    out = []
    for _ in range(85):
        n = rng.randint(-50, 500)
        g = num_gold(n)
        v = n if rng.random() < 0.5 else n + rng.choice([1, -1, 10, 2])
        inner = rng.choice([str(v), f"{v}.0", f"\\text{{{v}}}", f"{v}"])
        t = rng.choice(
            [
                "We first try \\boxed{{{w}}} but that is wrong; correcting, \\boxed{{{x}}}.",
                "The answer is $\\boxed{{{x}}}$.",
                "\\fbox{{{x}}}",
                "So $\\fbox{{{x}}}$ is it.",
                "\\[\\boxed{{\\displaystyle {x}}}\\]",
                "Thus \\boxed{{{x}}} is the count, using {w} as a check.",
                "<think>maybe \\boxed{{{w}}}</think>The result is \\boxed{{{x}}}.",
            ]
        )
        out.append((g, t.format(x=inner, w=n + 3)))
    return out


def gsm_steps(ans):
    a = rng.randint(2, 40)
    b = rng.randint(2, 9)
    return (
        f"She buys {a} packs of {b} pencils, so {a} * {b} = {a * b} pencils. "
        f"After giving some away she keeps {ans}.\n"
    )


def cls_gsm8k():
    out = []
    for _ in range(85):
        n = rng.randint(1, 20000)
        g = str(n) if rng.random() < 0.8 else f"{n:,}"
        v = n if rng.random() < 0.5 else n + rng.choice([1, -1, 100, 5])
        vs = rng.choice([str(v), f"{v:,}", f"${v}", f"{v}.00"])
        t = rng.choice(
            [
                "{steps}#### {v}",
                "{steps}#### {v}\n",
                "{steps}The answer is {v}.",
                "{steps}So she has {v} pencils left.\n#### {v}",
                "{steps}Answer: {v}",
            ]
        )
        out.append((g, t.format(steps=gsm_steps(v), v=vs)))
    return out


def cls_choice():
    out = []
    letters = "ABCDE"
    for _ in range(80):
        c = rng.choice(letters)
        o = rng.choice([x for x in letters if x != c])
        v = c if rng.random() < 0.5 else o
        g = rng.choice([c, c, f"({c})"])
        t = rng.choice(
            [
                "The answer is {v}.",
                "Answer: {v}",
                "**Answer: {v}**",
                "Comparing the options, the correct one is {v}.",
                "{v}",
                "Therefore the final answer is {v}. I hope it is correct.",
                "Option {o} fails the test, so the answer is {v}.",
            ]
        )
        out.append((g, t.format(v=v, o=o if v != o else c)))
    return out


def cls_tuple():
    out = []
    for _ in range(80):
        a, b = rng.randint(-9, 9), rng.randint(-9, 9)
        if a == b:
            b += 1
        k = rng.random()
        if k < 0.3:
            g = gold_wrap(f"({a}, {b})")
            same = [f"({a},{b})", f"\\left( {a}, {b} \\right)", f"({a}.0, {b})"]
            other = [f"({b}, {a})", f"({a}, {b + 1})", f"({-a}, {b})"]
        elif k < 0.6:
            c = rng.randint(-5, 5)
            g = gold_wrap(f"({a}, {b}, {c})")
            same = [f"({a},{b},{c})", f"\\left({a}, {b}, {c}\\right)"]
            other = [f"({a}, {c}, {b})", f"({a}, {b}, {c + 2})", f"({a}, {b})"]
        else:
            f = Fraction(a, 2) if a % 2 else Fraction(a, 3)
            g = gold_wrap(f"\\left(\\frac{{{f.numerator}}}{{{f.denominator}}}, {b}\\right)")
            same = [f"({f.numerator}/{f.denominator}, {b})", f"(\\frac{{{f.numerator}}}{{{f.denominator}}},{b})"]
            if f.denominator == 2:
                same.append(f"({float(f)}, {b})")
            other = [f"({b}, \\frac{{{f.numerator}}}{{{f.denominator}}})", f"({f.numerator}, {b})"]
        p = rng.choice(same if rng.random() < 0.5 else other)
        p = inline(p, rng.choice(["the vertex", "the point", "the ordered pair", "the answer"])) if rng.random() < 0.7 else boxed(p)
        out.append((g, p))
    return out


def cls_inline_math():
    """Answers in inline math inside prose with other numbers around."""
    out = []
    for _ in range(100):
        kind = rng.choice(["frac", "sqrt", "sci", "point", "int", "pi"])
        if kind == "frac":
            n, d = rng.randint(1, 9), rng.randint(2, 12)
            f = Fraction(n, d)
            g = f"$\\frac{{{f.numerator}}}{{{f.denominator}}}$"
            eq = f"\\tfrac{{{f.numerator}}}{{{f.denominator}}}"
            ne = f"\\tfrac{{{f.denominator}}}{{{f.numerator + 1}}}"
            noun = "the slope"
        elif kind == "sqrt":
            k, m = rng.randint(2, 6), rng.choice([2, 3, 5, 6, 7])
            g = f"${k}\\sqrt{{{m}}}$"
            eq = f"\\sqrt{{{k * k * m}}}"
            ne = f"\\sqrt{{{k * m}}}"
            noun = "the side length"
        elif kind == "sci":
            m, e = rng.choice(["6.02", "3.0", "1.6", "9.11"]), rng.randint(5, 30)
            g = f"${m} \\times 10^{{{e}}}$"
            eq = f"{m} \\times 10^{{{e}}}"
            ne = f"{m} \\times 10^{{{e - 1}}}"
            noun = "the count"
        elif kind == "point":
            a, b = rng.randint(-6, 6), rng.randint(-6, 6)
            g = f"$({a},{b})$"
            eq = f"({a}, {b})"
            ne = f"({a}, {b + 2})"
            noun = "the vertex"
        elif kind == "int":
            n = rng.randint(10, 99)
            g = f"${n}$"
            eq = f"{n}"
            ne = f"{n + 1}"
            noun = "the total"
        else:
            k = rng.randint(2, 9)
            g = f"${k}\\pi$"
            eq = f"{k}\\pi"
            ne = f"{k + 1}\\pi"
            noun = "the area"
        x = eq if rng.random() < 0.5 else ne
        t = rng.choice(
            [
                "Using 2 points and 3 steps, {noun} is ${x}$.",
                "Since 12 > 5, {noun} equals ${x}$ metres.",
                "We get \\({x}\\) for {noun}, which took 4 tries.",
                "After 3 iterations:\n\\[{x}\\]",
                "With 7 terms, we obtain $ {x} $ as {noun}.",
                "{noun_c} is about ${x}$ units.",
                "For the 2 cases, {noun} is ${x}$ (we checked both).",
            ]
        )
        out.append((g, t.format(x=x, noun=noun, noun_c=noun.capitalize())))
    return out


def lin(coefs, vars_):
    """A linear combination as LaTeX, terms in the given order."""
    s = ""
    for c, v in zip(coefs, vars_):
        if c == 0:
            continue
        term = ("" if abs(c) == 1 and v else str(abs(c))) + v
        if not s:
            s = ("-" if c < 0 else "") + term
        else:
            s += (" - " if c < 0 else " + ") + term
    return s or "0"


def cls_equation():
    out = []
    for _ in range(100):
        k = rng.random()
        v = rng.choice("xyzabn")
        w = rng.choice([c for c in "xyzabt" if c != v])
        n = rng.randint(-12, 30)
        if k < 0.35:
            # assignment vs value / assignment
            g = rng.choice([f"${n}$", f"${v}={n}$", f"$ {v} = {n} $"])
            p_val = n if rng.random() < 0.6 else n + 1
            p = rng.choice([f"{v} = {p_val}", f"{v}={p_val}", f"{p_val}", f"{w} = {p_val}"])
            p = inline(p) if rng.random() < 0.7 else boxed(p)
        elif k < 0.7:
            # linear equation, sides / terms reordered, scaled, other variable
            a, b, c = rng.randint(1, 6), rng.randint(-5, 5) or 1, rng.randint(-9, 9)
            u1, u2 = rng.sample("abxyst", 2)
            g = gold_wrap(f"{lin([a, b], [u1, u2])} = {c}")
            r = rng.random()
            if r < 0.25:
                p = f"{lin([b, a], [u2, u1])} = {c}"
            elif r < 0.4:
                p = f"{c} = {lin([a, b], [u1, u2])}"
            elif r < 0.55:
                p = f"{lin([2 * a, 2 * b], [u1, u2])} = {2 * c}"
            elif r < 0.7:
                p = f"{lin([a, b], [u1, u2])} = {c + 1}"
            elif r < 0.85:
                u3 = rng.choice([q for q in "pqrm" if q not in (u1, u2)])
                p = f"{lin([a, b], [u1, u3])} = {c}"
            else:
                p = f"{lin([b, a], [u1, u2])} = {c}"
            p = inline(p, "the equation") if rng.random() < 0.7 else boxed(p)
        else:
            # line y = mx + q in several forms
            m, q = rng.randint(-5, 5) or 2, rng.randint(-9, 9)
            g = gold_wrap(f"y = {lin([m, q], ['x', ''])}")
            r = rng.random()
            if r < 0.3:
                p = f"y = {lin([q, m], ['', 'x'])}"
            elif r < 0.45:
                p = lin([m, q], ["x", ""])
            elif r < 0.6:
                p = f"{lin([m, -1, q], ['x', 'y', ''])} = 0"
            elif r < 0.8:
                p = f"y = {lin([m, q + 1], ['x', ''])}"
            else:
                p = f"y = {lin([-m, q], ['x', ''])}"
            p = inline(p, "the line") if rng.random() < 0.7 else boxed(p)
        out.append((g, p))
    return out


def cls_symbolic():
    out = []
    for _ in range(100):
        k = rng.random()
        if k < 0.3:
            a, b = rng.sample("abcxyz", 2)
            e1, e2 = rng.randint(2, 4), rng.randint(1, 3)
            c = rng.randint(2, 9)
            g = gold_wrap(f"{c}{a}^{e1}{b}" + (f"^{e2}" if e2 > 1 else ""))
            same = [f"{c} {b}" + (f"^{e2}" if e2 > 1 else "") + f" {a}^{e1}", f"{b}" + (f"^{e2}" if e2 > 1 else "") + f"\\cdot {c}{a}^{e1}"]
            other = [f"{c}{a}^{e2}{b}^{e1}", f"{c + 1}{a}^{e1}{b}" + (f"^{e2}" if e2 > 1 else ""), f"{c}{a}^{e1}"]
        elif k < 0.55:
            kk, m = rng.randint(2, 7), rng.choice([2, 3, 5, 6, 7, 10, 11])
            g = gold_wrap(f"{kk}\\sqrt{{{m}}}")
            same = [f"\\sqrt{{{kk * kk * m}}}", f"\\sqrt{{{m}}} \\cdot {kk}", f"{kk}\\sqrt {m}" if m < 10 else f"{kk}\\sqrt{{{m}}}"]
            other = [f"\\sqrt{{{kk * m}}}", f"{kk + 1}\\sqrt{{{m}}}", f"{kk}\\sqrt{{{m + 1}}}"]
        elif k < 0.8:
            n, d = rng.randint(1, 7), rng.choice([1, 2, 3, 4, 6])
            f = Fraction(n, d)
            tex = (f"\\frac{{{f.numerator}\\pi}}{{{f.denominator}}}" if f.denominator > 1 else f"{f.numerator}\\pi")
            g = gold_wrap(tex)
            same = [
                f"\\frac{{{f.numerator}}}{{{f.denominator}}}\\pi" if f.denominator > 1 else f"\\pi \\cdot {f.numerator}",
                f"{f.numerator}\\pi/{f.denominator}" if f.denominator > 1 else f"{f.numerator} \\pi",
                f"{float(f * Fraction(355, 113)):.2f}",
            ]
            other = [
                f"\\frac{{{f.numerator + 1}\\pi}}{{{f.denominator}}}",
                f"\\frac{{{f.numerator}}}{{{f.denominator}}}" if f.denominator > 1 else f"{f.numerator}",
                f"{float(f) * 3.14159265:.6f}",
            ]
        else:
            a, b = rng.randint(1, 5), rng.randint(-6, 6) or 3
            x = rng.choice("xt")
            g = gold_wrap(f"{x}^2 + {2 * a if a else ''}{x} + {a * a}".replace("+ -", "- "))
            same = [f"({x} + {a})^2", f"{a * a} + {2 * a}{x} + {x}^2", f"({x}+{a})({a}+{x})"]
            other = [f"({x} - {a})^2", f"({x} + {a + 1})^2", f"{x}^2 + {a * a}"]
        p = rng.choice(same if rng.random() < 0.5 else other)
        out.append((g, any_wrap(p)))
    return out


UNITS = [
    ("\\text{ kg}", "kg"),
    ("\\text{ hours}", "hours"),
    ("\\text{ cm}^2", "square centimeters"),
    ("\\text{ m}", "metres"),
    ("\\,\\text{km}", "km"),
    ("\\text{ dollars}", "dollars"),
    ("\\text{ cookies}", "cookies"),
    ("^\\circ", "degrees"),
    ("\\text{ minutes}", "minutes"),
]


def cls_units_text():
    out = []
    for _ in range(90):
        n = rng.randint(2, 400)
        tex, word = rng.choice(UNITS)
        g = num_gold(n)
        v = n if rng.random() < 0.5 else n + rng.choice([1, 2, -1, 10])
        t = rng.choice(
            [
                "The mass is ${v}{tex}$.",
                "So it takes ${v}{tex}$.",
                "\\boxed{{{v}}} {word}",
                "The answer is \\boxed{{{v}{tex}}}.",
                "It is {v} {word}.",
                "In total: ${v}$ {word}.",
                "She needs {v} {word} in all.",
                "$\\boxed{{{v}\\text{{ {word}}}}}$",
            ]
        )
        out.append((g, t.format(v=v, tex=tex, word=word)))
    return out


def cls_sets_intervals():
    out = []
    for _ in range(110):
        k = rng.random()
        a, b = sorted(rng.sample(range(-9, 12), 2))
        if k < 0.25:
            c = rng.choice([x for x in range(-9, 12) if x not in (a, b)])
            g = gold_wrap(f"\\{{{a}, {b}, {c}\\}}")
            same = [f"\\{{{c}, {a}, {b}\\}}", f"\\{{{b}, {c}, {a}, {b}\\}}", f"x \\in \\{{{b}, {a}, {c}\\}}", f"{c}, {b}, {a}"]
            other = [f"\\{{{a}, {b}\\}}", f"\\{{{a}, {b}, {c + 20}\\}}", f"\\{{{a}, {b}, {c}, {c + 20}\\}}"]
            p = rng.choice(same if rng.random() < 0.5 else other)
            p = any_wrap(p, "the solution set")
        elif k < 0.4:
            m = rng.randint(1, 9)
            g = gold_wrap(rng.choice([f"\\pm {m}", f"\\{{-{m}, {m}\\}}"]))
            same = [f"\\pm {m}", f"x = \\pm {m}", f"{m}, -{m}", f"\\{{{m}, -{m}\\}}"]
            other = [f"{m}", f"\\pm {m + 1}", f"-{m}"]
            p = rng.choice(same if rng.random() < 0.5 else other)
            p = any_wrap(p, "the solution")
        elif k < 0.55:
            # "x = 1 or x = 6"
            g = gold_wrap(rng.choice([f"\\{{{a}, {b}\\}}", f"{a}, {b}"]))
            bb = b if rng.random() < 0.5 else b + 1
            t = rng.choice(
                [
                    "So $x = {a}$ or $x = {b}$.",
                    "The roots are $x={b}$ and $x={a}$.",
                    "The solutions are ${a}$ and ${b}$.",
                    "We get $x = {a} \\text{{ or }} x = {b}$.",
                    "Hence $x \\in \\{{{b}, {a}\\}}$.",
                    "Hence $x = {b}, {a}$.",
                ]
            )
            p = t.format(a=a, b=bb)
        elif k < 0.85:
            lo = rng.choice(["(", "["])
            hi = rng.choice([")", "]"])
            left = rng.choice([str(a), "-\\infty"])
            right = rng.choice([str(b), "\\infty"])
            lo = "(" if left == "-\\infty" else lo
            hi = ")" if right == "\\infty" else hi
            if left == "-\\infty" and right == "\\infty" and rng.random() < 0.5:
                g = gold_wrap("\\mathbb{R}")
            else:
                g = gold_wrap(f"{lo}{left}, {right}{hi}")
            r = rng.random()
            if r < 0.35:
                p = f"{lo}{left},{right}{hi}"
            elif r < 0.5:
                p = f"x \\in \\left{lo}{left}, {right}\\right{hi}"
            elif r < 0.6:
                p = "(-\\infty, \\infty)" if g.find("mathbb") >= 0 else "\\mathbb{R}"
            elif r < 0.8:
                flip = {"(": "[", "[": "("}
                if left == "-\\infty":
                    p = f"{lo}{left}, {right}{']' if hi == ')' else ')'}" if right != "\\infty" else f"[0, \\infty)"
                else:
                    p = f"{flip[lo]}{left}, {right}{hi}"
            else:
                p = f"{lo}{left}, {int(b) + 1 if right != chr(92) + 'infty' else 5}{hi}" if right != "\\infty" else f"{lo}{a + 1}, \\infty)"
            p = any_wrap(p, "the interval")
        else:
            c = b + rng.randint(1, 4)
            g = gold_wrap(f"(-\\infty, {a}) \\cup ({c}, \\infty)")
            same = [f"({c}, \\infty) \\cup (-\\infty, {a})", f"(-\\infty,{a})\\cup({c},\\infty)"]
            other = [f"(-\\infty, {a}] \\cup [{c}, \\infty)", f"(-\\infty, {a}) \\cup ({c + 1}, \\infty)", f"({a}, {c})"]
            p = rng.choice(same if rng.random() < 0.5 else other)
            p = any_wrap(p, "the domain")
        out.append((g, p))
    return out


def cls_matrix():
    out = []
    for _ in range(40):
        m = [[rng.randint(-5, 9) for _ in range(2)] for _ in range(2)]
        env = rng.choice(["pmatrix", "bmatrix"])
        tex = lambda mm, e=env: f"\\begin{{{e}}} {mm[0][0]} & {mm[0][1]} \\\\ {mm[1][0]} & {mm[1][1]} \\end{{{e}}}"
        g = gold_wrap(tex(m))
        if rng.random() < 0.5:
            p = tex(m, rng.choice(["pmatrix", "bmatrix"]))
        else:
            mm = [row[:] for row in m]
            mm[rng.randint(0, 1)][rng.randint(0, 1)] += 1
            p = tex(mm)
        out.append((g, any_wrap(p, "the matrix")))
    return out


def cls_mixed_prose():
    """Whole completions: think blocks, Minerva-style endings, answer lines,
    trailing remarks with numbers, plain-prose answers without math."""
    out = []
    for _ in range(120):
        n = rng.randint(2, 60)
        f = Fraction(rng.randint(1, 9), rng.randint(2, 9))
        k = rng.random()
        v = n if rng.random() < 0.5 else n + rng.choice([1, 2, -3])
        fv = f if rng.random() < 0.5 else f + Fraction(1, 3)
        ftex = f"\\frac{{{fv.numerator}}}{{{fv.denominator}}}"
        if k < 0.2:
            g = num_gold(n)
            p = f"<think>Maybe {n + 5}? Let me recheck: {n + 5} - 5 = {n}.</think>\nThe total is ${v}$."
        elif k < 0.35:
            g = gold_wrap(f"\\frac{{{f.numerator}}}{{{f.denominator}}}")
            p = f"Final Answer: The final answer is ${ftex}$. I hope it is correct."
        elif k < 0.5:
            g = num_gold(n)
            p = rng.choice([f"Answer: ${v}$", f"**Answer:** {v}", f"ANSWER: {v}"])
        elif k < 0.62:
            g = num_gold(n)
            p = f"So we need ${v}$ boxes, since each holds {rng.randint(2, 9)} items."
        elif k < 0.74:
            g = num_gold(n)
            p = f"Adding {n - 1} and 1 gives {v} apples."
        elif k < 0.86:
            g = gold_wrap(f"\\frac{{{f.numerator}}}{{{f.denominator}}}")
            p = rng.choice([
                f"The probability is ${ftex}$, about {float(fv):.2f}.",
                f"The probability is ${ftex} \\approx {float(fv):.3f}$.",
                f"We get $P = {ftex}$.",
            ])
        else:
            g = num_gold(-n)
            p = rng.choice([f"The temperature drops to $-{v}$ degrees.", f"It ends at \\(-{v}\\).", f"x = -{v}"])
        out.append((g, p))
    return out


CLASSES = {
    "fraction": cls_fraction,
    "decimal": cls_decimal,
    "percent": cls_percent,
    "scientific": cls_scientific,
    "boxed": cls_boxed,
    "gsm8k": cls_gsm8k,
    "choice": cls_choice,
    "tuple": cls_tuple,
    "matrix": cls_matrix,
    "inline_math": cls_inline_math,
    "equation": cls_equation,
    "symbolic": cls_symbolic,
    "units_text": cls_units_text,
    "sets_intervals": cls_sets_intervals,
    "mixed_prose": cls_mixed_prose,
}

CHOICE_CFG = [StringExtractionConfig(strings=tuple("ABCDE"))]

# Where Quorum deliberately gives another verdict than math-verify, the pair is
# re-labelled by math-verify itself on a corrected input (the known bug removed
# from the text), and the reason is recorded. Each entry: (reason, rewrite of
# (class, gold, pred) -> (gold, pred) or None when it does not apply).
E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)e(-?\d+)\b")
PERCENT = re.compile(r"\s*(?:\\%|%|\s*percent\b)")
BOXED_ARG = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
SCI = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:\\times|\\cdot)\s*10\^\{(-?\d+)\}")
# Single letters in latex2sympy2_extended's unit list (math_normalization.units),
# stripped after a digit, `}` or space at the end of an expression.
UNIT_LETTERS = "cdghlmost"
UNIT_LETTER = re.compile(rf"(?<![\\a-zA-Z])([{UNIT_LETTERS}])(?![a-zA-Z])")


def plain_decimal(m, e):
    return format(Decimal(f"{m}e{e}").normalize(), "f")


def fix_fbox(cls, g, p):
    return (g.replace("\\fbox", "\\boxed"), p.replace("\\fbox", "\\boxed")) if "\\fbox" in g + p else None


def fix_several_boxes(cls, g, p):
    boxes = list(BOXED_ARG.finditer(p))
    if len(boxes) < 2:
        return None
    last = boxes[-1]
    head = BOXED_ARG.sub(lambda m: m.group(1), p[: last.start()])
    return g, head + p[last.start():]


def fix_e_notation(cls, g, p):
    sub = lambda t: E_NOTATION.sub(lambda m: plain_decimal(m.group(1), m.group(2)), t)
    return (sub(g), sub(p)) if E_NOTATION.search(g + p) else None


def fix_float_times_power(cls, g, p):
    """9.8 \\times 10^{8} is a binary float times 10^8 in math-verify, not 980000000."""
    sub = lambda t: SCI.sub(lambda m: plain_decimal(m.group(1), m.group(2)), t)
    return (sub(g), sub(p)) if SCI.search(g + p) else None


def fix_unit_letter(cls, g, p):
    """math-verify's unit stripping reads a trailing variable such as t, s or c
    as a unit (tonnes, seconds, ...): 5t -> 5, 6x^2c -> 6x^2."""
    if cls not in ("equation", "symbolic") or not UNIT_LETTER.search(g + p):
        return None
    used = set(re.findall(r"(?<![\\a-zA-Z])[a-z](?![a-zA-Z])", g + p))
    fresh = iter(c for c in "uvwkqprnj" if c not in used)
    names = {}
    rename = lambda m: names.setdefault(m.group(1), next(fresh))
    return UNIT_LETTER.sub(rename, g), UNIT_LETTER.sub(rename, p)


def fix_choice_parens(cls, g, p):
    return (g.strip("()"), p) if cls == "choice" and g.startswith("(") else None


def fix_percent_sign(cls, g, p):
    """50% = 50 holds in math-verify only for integers (and \\boxed{62.5%} reads
    the % as a LaTeX comment); Quorum treats a percent sign the same for all numbers."""
    if cls != "percent" or bool(PERCENT.search(g)) == bool(PERCENT.search(p)):
        return None
    return PERCENT.sub("", g), PERCENT.sub("", p)


# (reason, fix, only when the corrected verdict is this value or None for any)
DELIBERATE = [
    ("math-verify does not read \\fbox{} outside math delimiters", fix_fbox, None),
    ("math-verify unions several \\boxed{} into a set; Quorum takes the last box", fix_several_boxes, None),
    ("math-verify reads 6.02e23 as 6.02 (or 6.02*e*23); Quorum reads scientific e-notation", fix_e_notation, None),
    ("math-verify multiplies the binary float 9.8 by 10^8 and misses 980000000; Quorum is exact", fix_float_times_power, None),
    ("math-verify's unit stripping drops a trailing variable read as a unit (t tonnes, s seconds, c: 5t -> 5, 6x^2c -> 6x^2)", fix_unit_letter, None),
    ("math-verify's string extraction does not read a parenthesised gold letter like (C)", fix_choice_parens, None),
    ("math-verify equates 50% with 50 but not 12.5% with 12.5 (and reads % inside math as a comment)", fix_percent_sign, True),
]


def label(cls, gold, pred):
    if cls == "choice":
        return verify(parse(gold, CHOICE_CFG), parse(pred, CHOICE_CFG))
    return verify(parse(gold), parse(pred))


def deliberate(cls, gold, pred, mathverify):
    """(quorum_expected, why) where Quorum deliberately disagrees, else None.
    The fixes are applied one after another (a pair can hit two bugs); the
    verdict is math-verify's on the corrected pair."""
    whys = []
    for why, fix, only in DELIBERATE:
        fixed = fix(cls, gold, pred)
        if fixed is None:
            continue
        gold, pred = fixed
        whys.append(why)
        expected = bool(label(cls, gold, pred))
        if expected != mathverify and only in (None, expected):
            return expected, "; ".join(whys)
    return None


def main():
    seen = set()
    n = 0
    for cls, make in CLASSES.items():
        for gold, pred in make():
            if (gold, pred) in seen:
                continue
            seen.add((gold, pred))
            row = {"id": n, "class": cls, "gold": gold, "pred": pred, "mathverify": bool(label(cls, gold, pred))}
            d = deliberate(cls, gold, pred, row["mathverify"])
            if d is not None:
                row["quorum_expected"], row["why"] = d
            print(json.dumps(row, ensure_ascii=False))
            n += 1
    print(f"{n} pairs", file=sys.stderr)


if __name__ == "__main__":
    main()
