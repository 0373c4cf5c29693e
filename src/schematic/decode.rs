//! Strict decoding of a schematic document, with go-yaml's rules and error messages.
//!
//! Unknown fields and duplicate keys are errors at every level; type errors are collected in
//! document order and reported together, each with its line, as
//! `yaml: construct errors: line N: …; line M: …`.

use super::model::{
    Bootloader, Customization, DiskImageCustomization, MetaValue, Overlay, Schematic,
    SecureBootCustomization, SystemExtensions,
};
use super::value::Value;
use crate::yaml::emit::MAX_SIMPLE_KEY_CHARS;
use crate::yaml::node::{Node, NodeKind, SyntaxError, read_first_document};
use crate::yaml::resolve::{Resolved, old_bool_value, resolve_plain, timestamp_rfc3339};

/// Why a document did not decode into a schematic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body holds no YAML document at all (Go's `io.EOF`).
    #[error("EOF")]
    Empty,
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    /// Type, unknown-field and duplicate-key errors, each already prefixed with its line.
    #[error("yaml: construct errors: {}", .0.join("; "))]
    Construct(Vec<String>),
}

/// Decodes the first YAML (or JSON) document of `text` into a schematic.
pub fn decode(text: &str) -> Result<Schematic, DecodeError> {
    let Some(root) = read_first_document(text)? else {
        return Err(DecodeError::Empty);
    };
    let mut decoder = Decoder { errors: Vec::new() };
    let schematic = decoder.schematic(&root);
    if decoder.errors.is_empty() {
        Ok(schematic)
    } else {
        Err(DecodeError::Construct(decoder.errors))
    }
}

struct Decoder {
    errors: Vec<String>,
}

/// How a scalar reads, after its explicit tag (if any) is applied.
enum Scalar<'n> {
    Null,
    Resolved(Resolved, &'n str),
}

impl Decoder {
    fn error(&mut self, line: usize, message: impl AsRef<str>) {
        self.errors
            .push(format!("line {line}: {}", message.as_ref()));
    }

    /// `cannot construct !!int `256` into uint8`, value shortened as go-yaml does.
    fn type_error(&mut self, node: &Node, target: &str) {
        let tag = node_tag(node);
        let shown = match node.scalar_text() {
            Some(text) if text.len() > 10 => {
                let mut cut = 7;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                format!(" `{}...`", &text[..cut])
            }
            Some(text) => format!(" `{text}`"),
            None => String::new(),
        };
        self.error(
            node.line,
            format!("cannot construct {tag}{shown} into {target}"),
        );
    }

    fn scalar<'n>(&mut self, node: &'n Node, target: &str) -> Option<Scalar<'n>> {
        let NodeKind::Scalar { text, plain } = &node.kind else {
            self.type_error(node, target);
            return None;
        };
        let resolved = match node.tag.as_deref() {
            None if *plain => resolve_plain(text),
            None | Some("!!str") => Resolved::Str,
            Some(tag @ ("!!int" | "!!float" | "!!bool" | "!!null" | "!!timestamp")) => {
                let resolved = resolve_plain(text);
                let matches = resolved.tag() == tag
                    || (tag == "!!float"
                        && matches!(resolved, Resolved::Int(_) | Resolved::Uint(_)));
                if !matches {
                    self.type_error(node, target);
                    return None;
                }
                resolved
            }
            Some(_) => {
                self.type_error(node, target);
                return None;
            }
        };
        Some(match resolved {
            Resolved::Null => Scalar::Null,
            other => Scalar::Resolved(other, text),
        })
    }

    /// Any scalar into a string field keeps its text; null leaves the field empty.
    fn string(&mut self, node: &Node) -> String {
        match self.scalar(node, "string") {
            Some(Scalar::Resolved(_, text)) => text.to_string(),
            Some(Scalar::Null) | None => String::new(),
        }
    }

    fn strings(&mut self, node: &Node) -> Vec<String> {
        match &node.kind {
            NodeKind::Sequence(items) => items.iter().map(|item| self.string(item)).collect(),
            _ if is_null(node) => Vec::new(),
            _ => {
                self.type_error(node, "[]string");
                Vec::new()
            }
        }
    }

    fn unsigned(&mut self, node: &Node, max: u64, target: &str) -> u64 {
        let value = match self.scalar(node, target) {
            Some(Scalar::Null) | None => return 0,
            Some(Scalar::Resolved(resolved, _)) => match resolved {
                Resolved::Int(value) => u64::try_from(value).ok(),
                Resolved::Uint(value) => Some(value),
                Resolved::Float(value) if value.fract() == 0.0 && value >= 0.0 => {
                    Some(value as u64).filter(|v| (*v as f64) == value)
                }
                _ => None,
            },
        };
        match value.filter(|value| *value <= max) {
            Some(value) => value,
            None => {
                self.type_error(node, target);
                0
            }
        }
    }

    /// Typed bools also accept the YAML 1.1 words (`yes`, `off`, ...).
    fn boolean(&mut self, node: &Node) -> bool {
        match self.scalar(node, "bool") {
            Some(Scalar::Null) | None => false,
            Some(Scalar::Resolved(Resolved::Bool(value), _)) => value,
            Some(Scalar::Resolved(Resolved::Str, text)) if old_bool_value(text).is_some() => {
                old_bool_value(text).unwrap_or_default()
            }
            Some(Scalar::Resolved(..)) => {
                self.type_error(node, "bool");
                false
            }
        }
    }

    /// The entries of a mapping destined for a struct, after the duplicate-key check; `None`
    /// leaves the struct at its zero value.
    fn entries<'n>(&mut self, node: &'n Node, target: &str) -> Option<&'n [(Node, Node)]> {
        match &node.kind {
            NodeKind::Mapping(entries) if self.unique_keys(entries) => Some(entries),
            NodeKind::Mapping(_) => None,
            _ if is_null(node) => None,
            _ => {
                self.type_error(node, target);
                None
            }
        }
    }

    /// go-yaml refuses a mapping whose keys repeat (same kind, same text) and then does not
    /// construct it at all.
    fn unique_keys(&mut self, entries: &[(Node, Node)]) -> bool {
        let before = self.errors.len();
        let mut rest = entries;
        while let Some(((first, _), following)) = rest.split_first() {
            rest = following;
            for (later, _) in following {
                let same = match (&first.kind, &later.kind) {
                    (NodeKind::Scalar { text: a, .. }, NodeKind::Scalar { text: b, .. }) => a == b,
                    (NodeKind::Sequence(_), NodeKind::Sequence(_))
                    | (NodeKind::Mapping(_), NodeKind::Mapping(_)) => true,
                    _ => false,
                };
                if same {
                    let shown = first.scalar_text().unwrap_or("");
                    self.error(
                        later.line,
                        format!(
                            "mapping key {} already defined at line {}",
                            go_quote(shown),
                            first.line
                        ),
                    );
                }
            }
        }
        self.errors.len() == before
    }

    /// Walks a struct's fields: `decode_field` returns false for a name it does not know.
    fn fields(
        &mut self,
        node: &Node,
        target: &str,
        mut decode_field: impl FnMut(&mut Self, &str, &Node) -> bool,
    ) {
        let Some(entries) = self.entries(node, target) else {
            return;
        };
        for (key, value) in entries {
            let name = match self.scalar(key, "string") {
                Some(Scalar::Resolved(_, text)) => text.to_string(),
                // A null key names no field and is skipped, as go-yaml does.
                Some(Scalar::Null) | None => continue,
            };
            if !decode_field(self, &name, value) {
                self.error(key.line, format!("field {name} not found in type {target}"));
            }
        }
    }

    fn schematic(&mut self, node: &Node) -> Schematic {
        let mut schematic = Schematic::default();
        self.fields(node, "schematic.Schematic", |d, name, value| {
            match name {
                "owner" => schematic.owner = d.string(value),
                "overlay" => schematic.overlay = d.overlay(value),
                "customization" => schematic.customization = d.customization(value),
                _ => return false,
            }
            true
        });
        schematic
    }

    fn overlay(&mut self, node: &Node) -> Overlay {
        let mut overlay = Overlay::default();
        self.fields(node, "schematic.Overlay", |d, name, value| {
            match name {
                "image" => overlay.image = d.string(value),
                "name" => overlay.name = d.string(value),
                "options" => overlay.options = d.options(value),
                _ => return false,
            }
            true
        });
        overlay
    }

    /// `map[string]any`: keys become strings, values keep their YAML types.
    fn options(&mut self, node: &Node) -> Vec<(String, Value)> {
        let Some(entries) = self.entries(node, "map[string]interface {}") else {
            return Vec::new();
        };
        let mut options = Vec::new();
        for (key, value) in entries {
            let name = self.string(key);
            if !self.emittable_key(&name, key.line) {
                continue;
            }
            if let Some(value) = self.any(value) {
                options.push((Value::Str(name), value));
            }
        }
        match Value::map_from_entries(options) {
            Value::Map(entries) => entries
                .into_iter()
                .filter_map(|(key, value)| match key {
                    Value::Str(name) => Some((name, value)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A value decoded into `any`.
    fn any(&mut self, node: &Node) -> Option<Value> {
        match &node.kind {
            NodeKind::Scalar { .. } => Some(match self.scalar(node, "interface {}")? {
                Scalar::Null => Value::Null,
                Scalar::Resolved(resolved, text) => match resolved {
                    Resolved::Null => Value::Null,
                    Resolved::Bool(value) => Value::Bool(value),
                    Resolved::Int(value) => Value::Int(value),
                    Resolved::Uint(value) => Value::Uint(value),
                    Resolved::Float(value) => Value::Float(value),
                    Resolved::Timestamp => match timestamp_rfc3339(text) {
                        Some(stamp) => Value::Timestamp(stamp),
                        None => Value::Str(text.to_string()),
                    },
                    Resolved::Str => Value::Str(text.to_string()),
                },
            }),
            NodeKind::Sequence(items) => {
                let values: Vec<Value> = items.iter().filter_map(|item| self.any(item)).collect();
                Some(Value::Seq(values))
            }
            NodeKind::Mapping(entries) => {
                if !self.unique_keys(entries) {
                    return None;
                }
                let mut pairs = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    if !matches!(key.kind, NodeKind::Scalar { .. }) {
                        self.error(key.line, "invalid map key: a mapping key must be a scalar");
                        continue;
                    }
                    let (Some(key), Some(value)) = (self.any(key), self.any(value)) else {
                        continue;
                    };
                    if let Value::Str(name) = &key
                        && !self.emittable_key(name, node.line)
                    {
                        continue;
                    }
                    pairs.push((key, value));
                }
                Some(Value::map_from_entries(pairs))
            }
        }
    }

    /// Option keys must fit go-yaml's simple-key form, the only one the canonical emitter
    /// writes.
    fn emittable_key(&mut self, name: &str, line: usize) -> bool {
        if name.chars().count() <= MAX_SIMPLE_KEY_CHARS && !name.contains(['\n', '\r']) {
            return true;
        }
        self.error(
            line,
            format!(
                "overlay option key {} is longer than {MAX_SIMPLE_KEY_CHARS} characters or spans lines",
                go_quote(name)
            ),
        );
        false
    }

    fn customization(&mut self, node: &Node) -> Customization {
        let mut customization = Customization::default();
        self.fields(node, "schematic.Customization", |d, name, value| {
            match name {
                "embeddedMachineConfiguration" => {
                    customization.embedded_machine_configuration = d.string(value)
                }
                "extraKernelArgs" => customization.extra_kernel_args = d.strings(value),
                "meta" => customization.meta = d.meta(value),
                "systemExtensions" => customization.system_extensions = d.system_extensions(value),
                "bootloader" => customization.bootloader = d.bootloader(value),
                "secureboot" => customization.secureboot = d.secureboot(value),
                "diskImage" => customization.disk_image = d.disk_image(value),
                _ => return false,
            }
            true
        });
        customization
    }

    fn meta(&mut self, node: &Node) -> Vec<MetaValue> {
        let items = match &node.kind {
            NodeKind::Sequence(items) => items,
            _ if is_null(node) => return Vec::new(),
            _ => {
                self.type_error(node, "[]schematic.MetaValue");
                return Vec::new();
            }
        };
        items
            .iter()
            .map(|item| {
                let mut meta = MetaValue::default();
                self.fields(item, "schematic.MetaValue", |d, name, value| {
                    match name {
                        "key" => meta.key = d.unsigned(value, u64::from(u8::MAX), "uint8") as u8,
                        "value" => meta.value = d.string(value),
                        _ => return false,
                    }
                    true
                });
                meta
            })
            .collect()
    }

    fn system_extensions(&mut self, node: &Node) -> SystemExtensions {
        let mut extensions = SystemExtensions::default();
        self.fields(node, "schematic.SystemExtensions", |d, name, value| {
            match name {
                "officialExtensions" => extensions.official_extensions = d.strings(value),
                _ => return false,
            }
            true
        });
        extensions
    }

    /// Upstream's enum takes the raw scalar text, whatever it resolves to.
    fn bootloader(&mut self, node: &Node) -> Bootloader {
        const TARGET: &str = "imageropts.BootloaderKind (TextUnmarshaler)";
        match &node.kind {
            _ if is_null(node) => Bootloader::None,
            NodeKind::Scalar { text, .. } => Bootloader::parse(text).unwrap_or_else(|| {
                self.error(
                    node.line,
                    format!("{text} does not belong to BootloaderKind values"),
                );
                Bootloader::None
            }),
            _ => {
                self.type_error(node, TARGET);
                Bootloader::None
            }
        }
    }

    fn secureboot(&mut self, node: &Node) -> SecureBootCustomization {
        let mut secureboot = SecureBootCustomization::default();
        self.fields(
            node,
            "schematic.SecureBootCustomization",
            |d, name, value| {
                match name {
                    "enrollKeys" => secureboot.enroll_keys = d.string(value),
                    "includeWellKnownCertificates" => {
                        secureboot.include_well_known_certificates = d.boolean(value)
                    }
                    _ => return false,
                }
                true
            },
        );
        secureboot
    }

    fn disk_image(&mut self, node: &Node) -> DiskImageCustomization {
        let mut disk_image = DiskImageCustomization::default();
        self.fields(
            node,
            "schematic.DiskImageCustomization",
            |d, name, value| {
                match name {
                    "sectorSize" => disk_image.sector_size = d.unsigned(value, u64::MAX, "uint"),
                    _ => return false,
                }
                true
            },
        );
        disk_image
    }
}

fn is_null(node: &Node) -> bool {
    match (&node.kind, node.tag.as_deref()) {
        (NodeKind::Scalar { .. }, Some("!!null")) => true,
        (NodeKind::Scalar { text, plain: true }, None) => resolve_plain(text) == Resolved::Null,
        _ => false,
    }
}

/// The tag go-yaml reports for a node: explicit, else resolved.
fn node_tag(node: &Node) -> String {
    if let Some(tag) = &node.tag {
        return tag.clone();
    }
    match &node.kind {
        NodeKind::Scalar { text, plain: true } => resolve_plain(text).tag().to_string(),
        NodeKind::Scalar { .. } => "!!str".into(),
        NodeKind::Sequence(_) => "!!seq".into(),
        NodeKind::Mapping(_) => "!!map".into(),
    }
}

/// Go's `%#v` of a string: double-quoted with Go escapes.
fn go_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
