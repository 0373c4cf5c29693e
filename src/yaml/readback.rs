//! Reading back the canonical text that [`super::emit`] writes.
//!
//! go-yaml writes a literal block's indentation indicator as its indentation width (4),
//! whatever the content's real offset from the parent node. Where the content sits two
//! columns in (a sequence item, or a mapping that is one), a YAML 1.2 reader takes the
//! indicator at its word, finds the first content line under-indented and reads something
//! else or nothing; go-yaml's own scanner does the same, so upstream cannot read such text
//! back either. The canonical bytes must stay go-yaml's, since they are hashed into the ID,
//! so the factory reads its stored text through [`strict_form`]: the emitter's layout says
//! exactly where each block's content sits, which gives the indicator a strict reader needs.

use super::emit::nested_indent;
use std::borrow::Cow;

/// The canonical text with every literal block's indentation indicator set to the content's
/// real offset, so that a YAML 1.2 reader reads the document that was written. Text that
/// needs no change (every published vector) is returned as it is; text this emitter wrote
/// before it followed go-yaml (indicators already real) is left as it was.
pub fn strict_form(canonical: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    // The content column of the literal block whose lines are being passed over.
    let mut block: Option<usize> = None;
    let mut start = 0;
    for line in canonical.split_inclusive('\n') {
        let line_start = start;
        start += line.len();
        let body = line.strip_suffix('\n').unwrap_or(line);
        if let Some(indent) = block {
            // Content lines are empty or indented at least to the content column; the
            // emitter writes nothing else inside a block (trailing spaces forbid block style).
            if body.is_empty() || leading_spaces(body) >= indent {
                continue;
            }
            block = None;
        }
        let Some(header) = literal_header(body) else {
            continue;
        };
        block = Some(header.content);
        if let Some(at) = header.indicator {
            let real = header.content - header.parent;
            let at = line_start + at;
            if canonical.as_bytes().get(at) != Some(&(b'0' + real as u8)) {
                out.push_str(&canonical[copied..at]);
                out.push(char::from(b'0' + real as u8));
                copied = at + 1;
            }
        }
    }
    if copied == 0 {
        return Cow::Borrowed(canonical);
    }
    out.push_str(&canonical[copied..]);
    Cow::Owned(out)
}

/// Where a literal block header sits on a line of canonical text.
#[derive(Debug, PartialEq)]
struct Header {
    /// Column of the node the block belongs to: the `-` of a sequence item, or the key.
    parent: usize,
    /// Column of the block's content.
    content: usize,
    /// Byte offset of the indentation indicator digit in the line, if there is one.
    indicator: Option<usize>,
}

/// Recognises `<indent>(- )*|hints` and `<indent>(- )*key: |hints`. Outside a block every
/// scalar the emitter writes is on one line, and none can end like a header: a plain scalar
/// never starts with `|` nor holds `: `, a quoted one ends with its quote.
fn literal_header(line: &str) -> Option<Header> {
    let mut column = leading_spaces(line);
    let mut rest = &line[column..];
    let mut dash = None;
    while let Some(after) = rest.strip_prefix("- ") {
        dash = Some(column);
        column += 2;
        rest = after;
    }
    let (parent, sequence_item, hints) = match rest.strip_prefix('|') {
        Some(hints) => (dash?, true, hints),
        None => {
            let at = rest.rfind(": |")?;
            (column, false, &rest[at + 3..])
        }
    };
    let hint_bytes = hints.as_bytes();
    let (digit, chomp) = match hint_bytes.split_first() {
        Some((b'1'..=b'9', chomp)) => (true, chomp),
        _ => (false, hint_bytes),
    };
    if !matches!(chomp, [] | [b'-'] | [b'+']) {
        return None;
    }
    let content = nested_indent(parent, sequence_item);
    Some(Header {
        parent,
        content,
        indicator: digit.then(|| line.len() - hints.len()),
    })
}

fn leading_spaces(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_found_where_the_emitter_writes_them() {
        assert_eq!(
            literal_header("    - |4-"),
            Some(Header {
                parent: 4,
                content: 6,
                indicator: Some(7)
            })
        );
        assert_eq!(
            literal_header("          value: |4+"),
            Some(Header {
                parent: 10,
                content: 12,
                indicator: Some(18)
            })
        );
        assert_eq!(
            literal_header("    embeddedMachineConfiguration: |"),
            Some(Header {
                parent: 4,
                content: 8,
                indicator: None
            })
        );
        assert_eq!(
            literal_header("- - |"),
            Some(Header {
                parent: 2,
                content: 4,
                indicator: None
            })
        );
        assert_eq!(literal_header("  - 'a: |4': |-").map(|h| h.parent), Some(4));
        for line in [
            "k: a |4",
            "k: 'x: |4'",
            "'a: |4': b",
            "k:",
            "- x",
            "|4",
            "k: |x",
            "k: |4-+",
        ] {
            assert_eq!(literal_header(line), None, "{line:?}");
        }
    }

    #[test]
    fn indicators_become_real_offsets() {
        // A mapping value at a multiple of 4 already has the real offset.
        let text = "k: |4-\n     a\n    b\n";
        assert!(matches!(strict_form(text), Cow::Borrowed(_)));
        let text = "k:\n    - |4-\n\n      '\n";
        assert_eq!(strict_form(text), "k:\n    - |2-\n\n      '\n");
        let text = "m:\n    - key: 1\n      value: |4\n         x\n    - key: 2\n      value: |4+\n\n        y\n\n";
        assert_eq!(
            strict_form(text),
            "m:\n    - key: 1\n      value: |2\n         x\n    - key: 2\n      value: |2+\n\n        y\n\n"
        );
    }

    #[test]
    fn block_content_is_not_mistaken_for_headers() {
        let text = "k: |\n    - |4-\n    x: |4\nl:\n    - |4\n       - |4\n";
        assert_eq!(
            strict_form(text),
            "k: |\n    - |4-\n    x: |4\nl:\n    - |2\n       - |4\n"
        );
    }

    #[test]
    fn legacy_text_is_left_as_it_was() {
        let text = "k:\n    - |2-\n\n      '\nl: |+\n    a\n\n...\n";
        assert!(matches!(strict_form(text), Cow::Borrowed(_)));
    }
}
