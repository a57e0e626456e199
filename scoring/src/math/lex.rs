//! Tokenizer for the expression parser. A run of ASCII letters (outside a
//! backslash command) is a product of variables (`ba^3`, `2xy`) when it is
//! at most [`MAX_LETTER_RUN`] letters long and the input has a digit or an
//! operator; otherwise (`yes`, `odd`, `monday`) it is prose and rejected.

/// Longest run of letters read as a product of single-letter variables.
const MAX_LETTER_RUN: usize = 3;

fn has_math_char(s: &str) -> bool {
    s.bytes()
        .any(|b| b.is_ascii_digit() || b"^_+-*/(){}\\|=".contains(&b))
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Num(String),
    Var(char),
    Pi,
    Infty,
    Plus,
    Minus,
    Mul,
    Div,
    Caret,
    Bang,
    Open(char),
    Close(char),
    Bar,
    Frac,
    Sqrt,
    Func(Func),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Func {
    Sin,
    Cos,
    Tan,
    Ln,
    Log,
    Exp,
    Abs,
}

pub(crate) fn tokenize(s: &str) -> Option<Vec<Tok>> {
    let mathy = has_math_char(s);
    let chars: Vec<char> = s.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            if i < chars.len() && chars[i] == '.' {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
            }
            // Scientific notation: e/E, optional sign, at least one digit.
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            toks.push(Tok::Num(chars[start..i].iter().collect()));
            continue;
        }
        if c == '\\' {
            let start = i + 1;
            let mut j = start;
            while j < chars.len() && chars[j].is_ascii_alphabetic() {
                j += 1;
            }
            if j == start {
                // Escaped bracket like `\{` or `\}`.
                match chars.get(start) {
                    Some('{') => toks.push(Tok::Open('{')),
                    Some('}') => toks.push(Tok::Close('}')),
                    _ => return None,
                }
                i = start + 1;
                continue;
            }
            let name: String = chars[start..j].iter().collect();
            let tok = match name.as_str() {
                "frac" | "dfrac" | "tfrac" | "cfrac" => Tok::Frac,
                "sqrt" => Tok::Sqrt,
                "pi" => Tok::Pi,
                "infty" | "infinity" => Tok::Infty,
                "cdot" | "times" | "ast" => Tok::Mul,
                "div" => Tok::Div,
                "sin" => Tok::Func(Func::Sin),
                "cos" => Tok::Func(Func::Cos),
                "tan" => Tok::Func(Func::Tan),
                "ln" => Tok::Func(Func::Ln),
                "log" => Tok::Func(Func::Log),
                "exp" => Tok::Func(Func::Exp),
                _ => return None,
            };
            toks.push(tok);
            i = j;
            continue;
        }
        if c.is_ascii_alphabetic() {
            let run = chars[i..]
                .iter()
                .take_while(|d| d.is_ascii_alphabetic())
                .count();
            if run > 1 && !(mathy && run <= MAX_LETTER_RUN) {
                return None; // prose, not algebra
            }
            toks.extend(chars[i..i + run].iter().map(|&v| Tok::Var(v)));
            i += run;
            continue;
        }
        let tok = match c {
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Mul,
            '/' => Tok::Div,
            '^' => Tok::Caret,
            '!' => Tok::Bang,
            '|' => Tok::Bar,
            '(' | '[' | '{' => Tok::Open(c),
            ')' | ']' | '}' => Tok::Close(c),
            _ => return None,
        };
        toks.push(tok);
        i += 1;
    }
    Some(toks)
}
