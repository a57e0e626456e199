//! HF's `tojson` filter: Python's `json.dumps(x, ensure_ascii=False)`.
//!
//! minijinja's built-in `tojson` is Jinja's HTML-safe variant (compact, with
//! `<`, `>`, `&`, `'` escaped as `\u003c`...). HF overrides it, and models are
//! trained on Python's formatting: `", "` and `": "` separators, non-ASCII
//! verbatim, Python float repr (`1e-05`, `1e+16`). Tool definitions rendered
//! into a prompt must match that byte for byte.

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Error, ErrorKind, Value};
use std::fmt::Write;

/// Options of `json.dumps` that HF's `tojson` exposes.
struct Opts {
    indent: Option<String>,
    item_sep: String,
    key_sep: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

/// The `tojson` filter: `x | tojson(indent=None, separators=None,
/// sort_keys=False, ensure_ascii=False)`.
pub(crate) fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent = match kwargs.get::<Option<Value>>("indent")? {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => Some(match (v.as_i64(), v.as_str()) {
            (Some(n), _) => " ".repeat(usize::try_from(n).unwrap_or(0)),
            (None, Some(s)) => s.to_string(),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: bad indent",
                ))
            }
        }),
    };
    // Python's default item separator drops the space when indenting.
    let (mut item_sep, mut key_sep) = match indent {
        Some(_) => (",".to_string(), ": ".to_string()),
        None => (", ".to_string(), ": ".to_string()),
    };
    if let Some(seps) = kwargs.get::<Option<Value>>("separators")? {
        if !seps.is_none() {
            let parts: Vec<Value> = seps.try_iter()?.collect();
            match parts.as_slice() {
                [a, b] if a.as_str().is_some() && b.as_str().is_some() => {
                    item_sep = a.as_str().unwrap_or_default().to_string();
                    key_sep = b.as_str().unwrap_or_default().to_string();
                }
                _ => {
                    let msg = "tojson: separators must be two strings";
                    return Err(Error::new(ErrorKind::InvalidOperation, msg));
                }
            }
        }
    }
    let opts = Opts {
        indent,
        item_sep,
        key_sep,
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_value(&mut out, value, &opts, 0)?;
    Ok(Value::from_safe_string(out))
}

fn newline_indent(out: &mut String, opts: &Opts, depth: usize) {
    if let Some(ind) = &opts.indent {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(ind);
        }
    }
}

fn write_value(out: &mut String, v: &Value, opts: &Opts, depth: usize) -> Result<(), Error> {
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => write_number(out, v),
        ValueKind::String => write_str(out, v.as_str().unwrap_or_default(), opts.ensure_ascii),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            write_container(out, opts, depth, '[', ']', &items, |out, item, d| {
                write_value(out, item, opts, d)
            })?;
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if opts.sort_keys {
                keys.sort();
            }
            write_container(out, opts, depth, '{', '}', &keys, |out, key, d| {
                match key.as_str() {
                    Some(s) => write_str(out, s, opts.ensure_ascii),
                    // Python stringifies non-string keys (`1` -> `"1"`).
                    None => {
                        let mut k = String::new();
                        write_value(&mut k, key, opts, d)?;
                        write_str(out, &k, opts.ensure_ascii);
                    }
                }
                out.push_str(&opts.key_sep);
                write_value(out, &v.get_item(key)?, opts, d)
            })?;
        }
        _ => {
            let msg = format!("tojson: cannot serialize a {} value", v.kind());
            return Err(Error::new(ErrorKind::InvalidOperation, msg));
        }
    }
    Ok(())
}

fn write_container<F>(
    out: &mut String,
    opts: &Opts,
    depth: usize,
    open: char,
    close: char,
    items: &[Value],
    mut each: F,
) -> Result<(), Error>
where
    F: FnMut(&mut String, &Value, usize) -> Result<(), Error>,
{
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return Ok(());
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(&opts.item_sep);
        }
        newline_indent(out, opts, depth + 1);
        each(out, item, depth + 1)?;
    }
    newline_indent(out, opts, depth);
    out.push(close);
    Ok(())
}

fn write_number(out: &mut String, v: &Value) {
    if v.is_integer() {
        // Integers print the same in Python and minijinja (i128 included).
        let _ = write!(out, "{v}");
    } else {
        let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
        out.push_str(&python_float_repr(f));
    }
}

/// Python's `repr(float)`: shortest round-trip digits, scientific notation
/// when the exponent is < -4 or >= 16, with a sign and at least two exponent
/// digits; integral values keep a `.0`.
pub(crate) fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // `{:e}` gives the shortest round-trip digits: "-1.2345e-5".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat(point.unsigned_abs() as usize), digits)
        } else if point as usize >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            let (int, frac) = digits.split_at(point as usize);
            format!("{int}.{frac}")
        };
        format!("{sign}{body}")
    } else {
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exp_sign}{:02}", exp.unsigned_abs())
    }
}

/// Python's JSON string escaping (`ensure_ascii` additionally escapes every
/// non-ASCII character as UTF-16 `\uXXXX` units).
fn write_str(out: &mut String, s: &str, ensure_ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0C}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (ensure_ascii && !c.is_ascii()) => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123.456, "123.456"),
            (1.5e300, "1.5e+300"),
            (-0.0, "-0.0"),
        ];
        for (f, want) in cases {
            assert_eq!(python_float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn strings_escape_like_python() {
        let mut out = String::new();
        write_str(&mut out, "a\"b\\c\n\u{1}é🦀", false);
        assert_eq!(out, r#""a\"b\\c\n\u0001é🦀""#);
        out.clear();
        write_str(&mut out, "é🦀", true);
        assert_eq!(out, r#""\u00e9\ud83e\udd80""#);
    }
}
