//! A YAML document read into a tree of nodes that remember the line they start on.
//!
//! Decoding errors must name lines the way go-yaml does, so the strict decoders work on this
//! tree rather than on serde: every node keeps its 1-based line, its explicit tag, and whether
//! a scalar was written plain (only plain scalars are subject to type resolution).

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag};
use std::collections::HashMap;

/// Upper bound on nodes in one document, alias expansions included, so that a small
/// "billion laughs" body cannot exhaust memory.
const MAX_NODES: usize = 100_000;
/// Upper bound on nesting, so that recursive decoders and emitters stay within the stack.
const MAX_DEPTH: usize = 64;

/// One YAML node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    /// 1-based line on which the node starts.
    pub line: usize,
    /// Explicit tag in short form (`!!str`, `!local`), if the document carried one.
    pub tag: Option<String>,
}

/// The three kinds of YAML node.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Scalar { text: String, plain: bool },
    Sequence(Vec<Node>),
    Mapping(Vec<(Node, Node)>),
}

/// A document that is not well-formed YAML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("go-yaml load error in parser at L{line}.C{column}: {problem}")]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    pub problem: String,
}

impl Node {
    /// The value under `key`, if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Mapping(entries) => entries
                .iter()
                .find(|(name, _)| name.scalar_text() == Some(key))
                .map(|(_, value)| value),
            _ => None,
        }
    }

    /// The scalar text, if this is a scalar.
    pub fn scalar_text(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

/// Reads the first document of `text`; later documents are ignored, as go-yaml's decoder does.
/// Returns `None` when the stream holds no document at all.
pub fn read_first_document(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        anchors: HashMap::new(),
        nodes: 0,
    };
    loop {
        let (event, span) = reader.next()?;
        match event {
            Event::StreamEnd => return Ok(None),
            Event::DocumentStart(_) => {
                let (event, span) = reader.next()?;
                return reader.node(event, span, 0).map(Some);
            }
            _ => {}
        }
        let _ = span;
    }
}

struct Reader<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
    nodes: usize,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        match self.parser.next_event() {
            Some(Ok(pair)) => Ok(pair),
            Some(Err(error)) => Err(SyntaxError {
                line: error.marker().line(),
                column: error.marker().col() + 1,
                problem: error.info().to_string(),
            }),
            None => Err(SyntaxError {
                line: 0,
                column: 0,
                problem: "unexpected end of stream".into(),
            }),
        }
    }

    fn count(&mut self, node: &Node, line: usize) -> Result<(), SyntaxError> {
        self.nodes += node_count(node);
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                line,
                column: 1,
                problem: format!("document has more than {MAX_NODES} nodes"),
            });
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, SyntaxError> {
        let line = span.start.line();
        let column = span.start.col() + 1;
        if depth > MAX_DEPTH {
            return Err(SyntaxError {
                line,
                column,
                problem: format!("document is nested deeper than {MAX_DEPTH} levels"),
            });
        }
        let (node, anchor) = match event {
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    line,
                    column,
                    problem: "unknown anchor referenced".into(),
                })?;
                self.count(&node, line)?;
                return Ok(Node { line, ..node });
            }
            Event::Scalar(text, style, anchor, tag) => (
                Node {
                    kind: NodeKind::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                    line,
                    tag: tag.map(|tag| short_tag(&tag)),
                },
                anchor,
            ),
            Event::SequenceStart(anchor, tag) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span, depth + 1)?);
                }
                (
                    Node {
                        kind: NodeKind::Sequence(items),
                        line,
                        tag: tag.map(|tag| short_tag(&tag)),
                    },
                    anchor,
                )
            }
            Event::MappingStart(anchor, tag) => {
                let mut entries = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(event, span, depth + 1)?;
                    let (event, span) = self.next()?;
                    let value = self.node(event, span, depth + 1)?;
                    entries.push((key, value));
                }
                (
                    Node {
                        kind: NodeKind::Mapping(entries),
                        line,
                        tag: tag.map(|tag| short_tag(&tag)),
                    },
                    anchor,
                )
            }
            other => {
                return Err(SyntaxError {
                    line,
                    column,
                    problem: format!("unexpected event {other:?}"),
                });
            }
        };
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(SyntaxError {
                line,
                column,
                problem: format!("document has more than {MAX_NODES} nodes"),
            });
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

fn node_count(node: &Node) -> usize {
    1 + match &node.kind {
        NodeKind::Scalar { .. } => 0,
        NodeKind::Sequence(items) => items.iter().map(node_count).sum(),
        NodeKind::Mapping(entries) => entries
            .iter()
            .map(|(key, value)| node_count(key) + node_count(value))
            .sum(),
    }
}

fn short_tag(tag: &Tag) -> String {
    if tag.is_yaml_core_schema() || tag.handle == "!!" {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_one_based_and_per_node() {
        let node = read_first_document("a: 1\nb:\n  - x\n").unwrap().unwrap();
        let NodeKind::Mapping(entries) = &node.kind else {
            panic!("not a mapping")
        };
        assert_eq!(entries[0].0.line, 1);
        assert_eq!(entries[1].0.line, 2);
        let NodeKind::Sequence(items) = &entries[1].1.kind else {
            panic!("not a sequence")
        };
        assert_eq!(items[0].line, 3);
    }

    #[test]
    fn empty_stream_has_no_document() {
        assert_eq!(read_first_document("").unwrap(), None);
        assert_eq!(read_first_document("# only a comment\n").unwrap(), None);
    }

    #[test]
    fn only_the_first_document_is_read() {
        let node = read_first_document("a\n---\n: : bad [\n").unwrap().unwrap();
        assert_eq!(node.scalar_text(), Some("a"));
    }

    #[test]
    fn aliases_expand_and_are_bounded() {
        let node = read_first_document("a: &x [1, 2]\nb: *x\n")
            .unwrap()
            .unwrap();
        let NodeKind::Mapping(entries) = &node.kind else {
            panic!("not a mapping")
        };
        assert_eq!(entries[0].1.kind, entries[1].1.kind);
        assert_eq!(entries[1].1.line, 2);

        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..8 {
            let previous = (b'a' + level - 1) as char;
            let name = (b'a' + level) as char;
            let refs = vec![format!("*{previous}"); 10].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let error = read_first_document(&bomb).unwrap_err();
        assert!(error.problem.contains("more than"), "{error}");
    }

    #[test]
    fn syntax_errors_name_a_line() {
        let error = read_first_document("a: [1, 2\nb: c\n").unwrap_err();
        assert!(error.line >= 1);
        assert!(
            error
                .to_string()
                .starts_with("go-yaml load error in parser at L")
        );
    }

    #[test]
    fn tags_are_shortened() {
        let node = read_first_document("!!str 10").unwrap().unwrap();
        assert_eq!(node.tag.as_deref(), Some("!!str"));
    }
}
