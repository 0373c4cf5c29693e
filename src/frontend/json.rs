//! JSON text exactly as Go's `encoding/json` writes it, where byte-exact responses matter:
//! `<`, `>`, `&`, U+2028 and U+2029 are escaped, as are control characters.

/// Appends `text` as a Go-encoded JSON string (with quotes) to `out`.
pub fn push_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A flat JSON object of string fields, in the given order, followed by a newline as Go's
/// `json.Encoder` writes it.
pub fn object_line(fields: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (index, (key, value)) in fields.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_string(&mut out, key);
        out.push(':');
        push_string(&mut out, value);
    }
    out.push_str("}\n");
    out
}

/// Any serialisable value as Go's `json.Encoder` writes it: HTML-sensitive characters
/// escaped, a trailing newline. Safe because `<`, `>`, `&`, U+2028 and U+2029 can only occur
/// inside JSON strings.
pub fn encode_line<T: serde::Serialize>(value: &T) -> String {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match c {
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_encode_like_go() {
        assert_eq!(
            encode_line(&serde_json::json!(["a<b", "c&d"])),
            "[\"a\\u003cb\",\"c\\u0026d\"]\n"
        );
    }

    #[test]
    fn escapes_like_go() {
        assert_eq!(
            object_line(&[
                ("id", "x"),
                ("schematic", "a: '<b>' & \"c\"\n\t\u{1}\u{2028}é")
            ]),
            "{\"id\":\"x\",\"schematic\":\"a: '\\u003cb\\u003e' \\u0026 \\\"c\\\"\\n\\t\\u0001\\u2028é\"}\n"
        );
    }
}
