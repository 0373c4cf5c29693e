//! A block-style YAML emitter that writes exactly what go-yaml's `Marshal` writes with the
//! defaults the schematic ID depends on: 4-space indentation, sequences indented inside their
//! parent mapping, unlimited line width, empty collections in flow style.
//!
//! Scalar style follows the same two-step decision as go-yaml: the encoder asks for a style
//! from what the string would resolve to, then the emitter's analysis of the characters may
//! demote it (plain → single-quoted → double-quoted, literal → double-quoted).

use super::resolve::{Resolved, format_go_float, is_base60_float, is_old_bool, resolve_plain};

const INDENT: usize = 4;
/// go-yaml writes longer (or multi-line) mapping keys in the `? key` form, which this emitter
/// does not produce; callers reject such keys before emitting.
pub const MAX_SIMPLE_KEY_CHARS: usize = 128;

/// A value to emit. Mapping entries are written in the given order.
#[derive(Debug, Clone, PartialEq)]
pub enum Emit {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    Str(String),
    /// Text written plain whatever it resolves to, as go-yaml writes a `time.Time`.
    Plain(String),
    Seq(Vec<Emit>),
    Map(Vec<(Emit, Emit)>),
}

/// Emits one document.
pub fn to_string(root: &Emit) -> String {
    let mut emitter = Emitter {
        out: String::new(),
        column: 0,
        whitespace: true,
        indention: true,
    };
    emitter.node(root, None, Context::Root);
    emitter.write_indent(0);
    // No `...` after a `|+` literal that ends the document: go-yaml's encoder clears the
    // emitter's open-ended flag before the stream end, and its bytes are the ones hashed.
    emitter.out
}

#[derive(Clone, Copy, PartialEq)]
enum Context {
    Root,
    MappingKey,
    MappingValue,
    SequenceItem,
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
}

struct Emitter {
    out: String,
    column: usize,
    /// The last character written was whitespace (or nothing yet on this line).
    whitespace: bool,
    /// Only indentation and `-` indicators have been written on this line.
    indention: bool,
}

/// go-yaml's indentation rule: the first level inside a sequence item skips past `- `,
/// everything else aligns to the next multiple of the indentation width.
fn child_indent(parent: Option<usize>, context: Context) -> usize {
    match parent {
        None => 0,
        Some(parent) => nested_indent(parent, context == Context::SequenceItem),
    }
}

/// The column where a node nested in the node at column `parent` starts (its content, for a
/// literal block): two columns in for a sequence item, else the next multiple of the
/// indentation width. The reader of canonical text relies on the same rule.
pub(super) fn nested_indent(parent: usize, sequence_item: bool) -> usize {
    if sequence_item {
        parent + 2
    } else {
        INDENT * ((parent + INDENT) / INDENT)
    }
}

impl Emitter {
    fn node(&mut self, node: &Emit, parent: Option<usize>, context: Context) {
        match node {
            Emit::Map(entries) if entries.is_empty() => self.flow_empty("{}"),
            Emit::Seq(items) if items.is_empty() => self.flow_empty("[]"),
            Emit::Map(entries) => {
                let indent = child_indent(parent, context);
                for (key, value) in entries {
                    self.write_indent(indent);
                    self.node(key, Some(indent), Context::MappingKey);
                    self.write_indicator(":", false, false, false);
                    self.node(value, Some(indent), Context::MappingValue);
                }
            }
            Emit::Seq(items) => {
                let indent = child_indent(parent, context);
                for item in items {
                    self.write_indent(indent);
                    self.write_indicator("-", true, false, true);
                    self.node(item, Some(indent), Context::SequenceItem);
                }
            }
            Emit::Null => self.plain("null"),
            Emit::Bool(value) => self.plain(if *value { "true" } else { "false" }),
            Emit::Int(value) => self.plain(&value.to_string()),
            Emit::Uint(value) => self.plain(&value.to_string()),
            Emit::Float(value) => self.plain(&format_go_float(*value)),
            Emit::Plain(text) => self.plain(text),
            Emit::Str(text) => {
                let style = select_style(text, context == Context::MappingKey);
                match style {
                    Style::Plain => self.plain(text),
                    Style::SingleQuoted => self.single_quoted(text),
                    Style::DoubleQuoted => self.double_quoted(text),
                    Style::Literal => self.literal(text, child_indent(parent, context)),
                }
            }
        }
    }

    fn flow_empty(&mut self, text: &str) {
        self.write_indicator(&text[..1], true, true, false);
        self.write_indicator(&text[1..], false, false, false);
    }

    fn write_indent(&mut self, indent: usize) {
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.out.push(' ');
            self.column += 1;
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
        self.indention = true;
    }

    fn write_indicator(
        &mut self,
        indicator: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.push(" ");
        }
        self.push(indicator);
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn push(&mut self, text: &str) {
        self.out.push_str(text);
        self.column += text.chars().count();
    }

    fn plain(&mut self, text: &str) {
        if !self.whitespace {
            self.push(" ");
        }
        self.push(text);
        self.whitespace = false;
        self.indention = false;
    }

    fn single_quoted(&mut self, text: &str) {
        self.write_indicator("'", true, false, false);
        self.push(&text.replace('\'', "''"));
        self.write_indicator("'", false, false, false);
    }

    fn double_quoted(&mut self, text: &str) {
        self.write_indicator("\"", true, false, false);
        let mut escaped = String::with_capacity(text.len());
        for c in text.chars() {
            if is_printable(c) && !is_break(c) && c != '"' && c != '\\' {
                escaped.push(c);
                continue;
            }
            escaped.push('\\');
            match c {
                '\0' => escaped.push('0'),
                '\x07' => escaped.push('a'),
                '\x08' => escaped.push('b'),
                '\t' => escaped.push('t'),
                '\n' => escaped.push('n'),
                '\x0b' => escaped.push('v'),
                '\x0c' => escaped.push('f'),
                '\r' => escaped.push('r'),
                '\x1b' => escaped.push('e'),
                '"' => escaped.push('"'),
                '\\' => escaped.push('\\'),
                '\u{85}' => escaped.push('N'),
                '\u{a0}' => escaped.push('_'),
                '\u{2028}' => escaped.push('L'),
                '\u{2029}' => escaped.push('P'),
                c if (c as u32) <= 0xff => escaped.push_str(&format!("x{:02X}", c as u32)),
                c if (c as u32) <= 0xffff => escaped.push_str(&format!("u{:04X}", c as u32)),
                c => escaped.push_str(&format!("U{:08X}", c as u32)),
            }
        }
        self.push(&escaped);
        self.write_indicator("\"", false, false, false);
    }

    /// The content is written at `indent`. A leading space or line break needs an
    /// indentation indicator; go-yaml writes its indentation width there, not the content's
    /// offset from the parent node, which differs inside sequence items (see
    /// [`super::readback`] for how such text is read back).
    fn literal(&mut self, text: &str, indent: usize) {
        self.write_indicator("|", true, false, false);
        let mut hints = String::new();
        if text.starts_with(' ') || text.starts_with(is_break) {
            hints.push_str(&INDENT.to_string());
        }
        let trailing_breaks = text.chars().rev().take_while(|&c| is_break(c)).count();
        let keep = trailing_breaks > 1 || (trailing_breaks == 1 && text.chars().count() == 1);
        if trailing_breaks == 0 {
            hints.push('-');
        } else if keep {
            hints.push('+');
        }
        if !hints.is_empty() {
            self.write_indicator(&hints, false, false, false);
        }
        // The header line ends here even when the text starts with a line break, as in
        // go-yaml v4 (v3 let that break end the header, and the text lost it).
        self.put_break();
        self.whitespace = true;
        let mut at_line_start = true;
        for c in text.chars() {
            if is_break(c) {
                let mut buffer = [0u8; 4];
                self.out.push_str(c.encode_utf8(&mut buffer));
                self.column = 0;
                self.indention = true;
                at_line_start = true;
            } else {
                if at_line_start {
                    self.write_indent(indent);
                }
                self.out.push(c);
                self.column += 1;
                self.indention = false;
                at_line_start = false;
            }
        }
    }
}

/// The encoder's request, then the emitter's analysis, as in go-yaml.
fn select_style(text: &str, simple_key: bool) -> Style {
    let requested = if text.contains('\n') {
        if text.chars().all(char::is_whitespace) {
            Style::DoubleQuoted
        } else {
            Style::Literal
        }
    } else if resolve_plain(text) != Resolved::Str {
        Style::DoubleQuoted
    } else if is_old_bool(text) || is_base60_float(text) || text == "<<" {
        Style::SingleQuoted
    } else {
        Style::Plain
    };
    let analysis = analyze(text);
    let mut style = requested;
    if style == Style::Plain && (!analysis.block_plain_allowed || (text.is_empty() && simple_key)) {
        style = Style::SingleQuoted;
    }
    if style == Style::SingleQuoted && !analysis.single_quoted_allowed {
        style = Style::DoubleQuoted;
    }
    // YAML 1.2 readers do not take U+0085, U+2028 and U+2029 as line breaks, so a literal
    // block holding one would not read back; go-yaml (YAML 1.1) would write it raw.
    let unicode_break = text.contains(['\u{85}', '\u{2028}', '\u{2029}']);
    if style == Style::Literal && (!analysis.block_allowed || simple_key || unicode_break) {
        style = Style::DoubleQuoted;
    }
    style
}

struct Analysis {
    block_plain_allowed: bool,
    single_quoted_allowed: bool,
    block_allowed: bool,
}

/// go-yaml's scalar analysis, restricted to block context (the only one we emit scalars in).
fn analyze(text: &str) -> Analysis {
    if text.is_empty() {
        return Analysis {
            block_plain_allowed: true,
            single_quoted_allowed: true,
            block_allowed: false,
        };
    }
    let chars: Vec<char> = text.chars().collect();
    let mut block_indicators = text.starts_with("---") || text.starts_with("...");
    let mut special_characters = false;
    let mut line_breaks = false;
    let (mut leading_space, mut leading_break) = (false, false);
    let (mut trailing_space, mut trailing_break) = (false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    let last = chars.len() - 1;
    for (index, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = chars.get(index + 1).is_none_or(|&next| is_blankz(next));
        if index == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special_characters = true;
        }
        if c == ' ' {
            if index == 0 {
                leading_space = true;
            }
            if index == last {
                trailing_space = true;
            }
            if previous_break {
                break_space = true;
            }
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            if index == 0 {
                leading_break = true;
            }
            if index == last {
                trailing_break = true;
            }
            if previous_space {
                space_break = true;
            }
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = is_blankz(c);
    }
    let mut analysis = Analysis {
        block_plain_allowed: true,
        single_quoted_allowed: true,
        block_allowed: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        analysis.block_plain_allowed = false;
    }
    if trailing_space {
        analysis.block_allowed = false;
    }
    if break_space {
        analysis.block_plain_allowed = false;
        analysis.single_quoted_allowed = false;
    }
    if space_break || special_characters {
        analysis = Analysis {
            block_plain_allowed: false,
            single_quoted_allowed: false,
            block_allowed: false,
        };
    }
    if line_breaks || block_indicators {
        analysis.block_plain_allowed = false;
    }
    analysis
}

fn is_printable(c: char) -> bool {
    let code = c as u32;
    code == 0x0a
        || (0x20..=0x7e).contains(&code)
        || (0xa0..=0xd7ff).contains(&code)
        || ((0xe000..=0xfffd).contains(&code) && code != 0xfeff)
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

fn is_blankz(c: char) -> bool {
    c == ' ' || c == '\t' || is_break(c) || c == '\0'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Emit {
        Emit::Str(text.into())
    }

    fn map(entries: Vec<(&str, Emit)>) -> Emit {
        Emit::Map(entries.into_iter().map(|(k, v)| (s(k), v)).collect())
    }

    #[test]
    fn quoting_battery() {
        let cases: &[(&str, &str)] = &[
            ("1", "\"1\""),
            ("true", "\"true\""),
            ("null", "\"null\""),
            ("~", "\"~\""),
            ("a: b", "'a: b'"),
            ("-x", "-x"),
            ("- x", "'- x'"),
            ("#c", "'#c'"),
            ("a #c", "'a #c'"),
            ("a#c", "a#c"),
            ("", "\"\""),
            ("yes", "'yes'"),
            ("n", "'n'"),
            ("1:20", "'1:20'"),
            ("0x10", "\"0x10\""),
            ("1.5", "\"1.5\""),
            ("2001-12-14", "\"2001-12-14\""),
            ("é", "é"),
            ("a'b", "a'b"),
            ("'a", "'''a'"),
            ("tab\there", "\"tab\\there\""),
            (" lead", "' lead'"),
            ("trail ", "'trail '"),
            ("key:value", "key:value"),
            ("end:", "'end:'"),
            ("{}", "'{}'"),
            ("\u{1F600}", "\"\\U0001F600\""),
            ("bell\x07", "\"bell\\a\""),
            ("vga=791", "vga=791"),
            ("---x", "'---x'"),
            ("<<", "'<<'"),
            ("\n", "\"\\n\""),
        ];
        for (input, expected) in cases {
            let text = to_string(&map(vec![("k", s(input))]));
            assert_eq!(text, format!("k: {expected}\n"), "{input:?}");
        }
    }

    #[test]
    fn literal_blocks() {
        let text = to_string(&map(vec![("k", s("a\nb"))]));
        assert_eq!(text, "k: |-\n    a\n    b\n");
        let text = to_string(&map(vec![("k", s("a\n\nb\n"))]));
        assert_eq!(text, "k: |\n    a\n\n    b\n");
        // Keep chomping at the very end: no document end marker, as go-yaml's encoder.
        let text = to_string(&map(vec![("k", s("a\n\n"))]));
        assert_eq!(text, "k: |+\n    a\n\n");
        let text = to_string(&map(vec![("k", s("a\n\n")), ("l", s("b"))]));
        assert_eq!(text, "k: |+\n    a\n\nl: b\n");
        let text = to_string(&map(vec![("k", s(" a\nb"))]));
        assert_eq!(text, "k: |4-\n     a\n    b\n");
        // Inside a sequence item the content sits two columns in, yet go-yaml's indicator is
        // its indentation width, 4.
        let text = to_string(&map(vec![("k", Emit::Seq(vec![s("\n'")]))]));
        assert_eq!(text, "k:\n    - |4-\n\n      '\n");
        let item = map(vec![("key", Emit::Int(1)), ("value", s(" x\n"))]);
        let text = to_string(&map(vec![("k", Emit::Seq(vec![item]))]));
        assert_eq!(text, "k:\n    - key: 1\n      value: |4\n         x\n");
        // Trailing space on a line forbids block style.
        let text = to_string(&map(vec![("k", s("a \nb"))]));
        assert_eq!(text, "k: \"a \\nb\"\n");
    }

    #[test]
    fn nested_layout() {
        let tree = map(vec![
            (
                "list",
                Emit::Seq(vec![
                    map(vec![("a", Emit::Int(1)), ("b", s("x\ny"))]),
                    Emit::Seq(vec![s("p"), s("q")]),
                    Emit::Map(vec![]),
                ]),
            ),
            ("m", map(vec![("v", map(vec![("o", Emit::Null)]))])),
            ("e", Emit::Seq(vec![])),
        ]);
        assert_eq!(
            to_string(&tree),
            "list:\n    - a: 1\n      b: |-\n        x\n        y\n    - - p\n      - q\n    - {}\nm:\n    v:\n        o: null\ne: []\n"
        );
    }
}
