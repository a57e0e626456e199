//! serde's error messages in a client's words. serde describes what it
//! expected in Rust terms (`expected struct WireMessage`, `expected usize`,
//! `data did not match any variant of untagged enum Stop`, `a sequence`);
//! an API client knows JSON, so [`plain`] rewrites the expected and found
//! parts into JSON terms and never names a Rust type. Everything else
//! (field names, `unknown variant`, positions) is kept as serde wrote it.

/// `msg` with Rust type names replaced by JSON terms.
pub fn plain(msg: &str) -> String {
    let (body, position) = split_position(msg);
    if body.starts_with("data did not match any variant of untagged enum ") {
        return format!("has none of the accepted shapes{position}");
    }
    let Some(i) = body.rfind("expected ") else {
        return msg.to_string();
    };
    let (head, exp) = body.split_at(i);
    let exp = &exp["expected ".len()..];
    format!("{}expected {}{position}", found(head), expected(exp))
}

/// Splits serde_json's ` at line L column C` suffix off.
fn split_position(msg: &str) -> (&str, &str) {
    match msg.rfind(" at line ") {
        Some(i)
            if msg[i + " at line ".len()..]
                .split(" column ")
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            msg.split_at(i)
        }
        _ => (msg, ""),
    }
}

/// The `invalid type: <found>, ` part in JSON terms.
fn found(head: &str) -> String {
    let Some(rest) = head.strip_prefix("invalid type: ") else {
        return head.to_string();
    };
    let Some(what) = rest.strip_suffix(", ") else {
        return head.to_string();
    };
    let what = match what {
        "map" => "object",
        "sequence" => "array",
        "unit value" => "null",
        "newtype struct" | "unit variant" | "newtype variant" | "tuple variant"
        | "struct variant" | "enum" => "value",
        w => match w.strip_prefix("floating point ") {
            Some(n) => return format!("invalid type: number {n}, "),
            None => w,
        },
    };
    format!("invalid type: {what}, ")
}

/// serde's "expected ..." phrase in JSON terms; phrases already in plain
/// language (`one of ...`, a custom `expecting`) pass through.
fn expected(exp: &str) -> String {
    let phrase = match exp {
        "u8" => "an integer from 0 to 255",
        "u16" => "an integer from 0 to 65535",
        "u32" => "an integer from 0 to 4294967295",
        "u64" | "u128" | "usize" => "a non-negative integer",
        "i8" => "an integer from -128 to 127",
        "i16" => "an integer from -32768 to 32767",
        "i32" => "an integer from -2147483648 to 2147483647",
        "i64" | "i128" | "isize" => "an integer",
        "f32" | "f64" => "a number",
        "a sequence" | "sequence" => "an array",
        "a map" | "map" => "an object",
        "a borrowed string" | "a string" | "string" => "a string",
        "a boolean" | "bool" => "a boolean",
        "unit" => "null",
        "a character" | "char" => "a single character",
        "option" => "a value or null",
        e if [
            "struct ",
            "internally tagged enum ",
            "adjacently tagged enum ",
            "struct variant ",
        ]
        .iter()
        .any(|p| e.starts_with(p)) =>
        {
            "an object"
        }
        e if ["tuple struct ", "tuple variant ", "a tuple of size "]
            .iter()
            .any(|p| e.starts_with(p)) =>
        {
            "an array"
        }
        e if e.starts_with("enum ")
            || e.starts_with("variant ")
            || e == "string or map"
            || e == "field identifier"
            || e == "variant identifier" =>
        {
            "one of the accepted names (a string)"
        }
        e if e.starts_with("newtype struct ") || e.starts_with("unit struct ") => "a value",
        e => return e.to_string(),
    };
    phrase.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_type_names_become_json_terms() {
        for (raw, want) in [
            (
                "invalid type: string \"hi\", expected struct WireMessage",
                "invalid type: string \"hi\", expected an object",
            ),
            (
                "invalid type: map, expected a sequence at line 1 column 40",
                "invalid type: object, expected an array at line 1 column 40",
            ),
            (
                "data did not match any variant of untagged enum Stop",
                "has none of the accepted shapes",
            ),
            (
                "invalid value: integer `-1`, expected usize",
                "invalid value: integer `-1`, expected a non-negative integer",
            ),
            (
                "invalid type: floating point `1.5`, expected u32",
                "invalid type: number `1.5`, expected an integer from 0 to 4294967295",
            ),
            (
                "invalid type: integer `3`, expected enum ConfidenceMetric",
                "invalid type: integer `3`, expected one of the accepted names (a string)",
            ),
            (
                "invalid type: sequence, expected internally tagged enum SelectionConfig",
                "invalid type: array, expected an object",
            ),
            (
                "invalid type: unit value, expected f32",
                "invalid type: null, expected a number",
            ),
            (
                "invalid type: integer `3`, expected string or map",
                "invalid type: integer `3`, expected one of the accepted names (a string)",
            ),
        ] {
            assert_eq!(plain(raw), want, "{raw}");
        }
    }

    #[test]
    fn plain_messages_pass_through() {
        for m in [
            "missing field `model`",
            "unknown variant `vibes`, expected one of `first`, `majority`",
            "invalid type: null, expected a string",
            "expected value at line 1 column 1",
            "trailing characters at line 1 column 9",
            "EOF while parsing an object at line 1 column 8",
            "expected a string or an array of strings",
        ] {
            assert_eq!(plain(m), m);
        }
    }
}
