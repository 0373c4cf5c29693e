//! Properties of the canonical form over arbitrary schematics: it parses back to the same
//! value, and it is a fixed point of parse-then-emit.

use image_factory::schematic::{
    Bootloader, Customization, DiskImageCustomization, MetaValue, Overlay, Schematic,
    SecureBootCustomization, SystemExtensions, Value,
};
use proptest::prelude::*;

/// Text that exercises the quoting rules: indicators, YAML words, numbers, line breaks,
/// tabs, control characters, quotes and non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9=._/-]{0,12}",
        "[ -~]{0,16}",
        "[ a-z:#\\-'\"\n\t]{0,16}",
        "(\n| |a|é|\u{1F600}|\r|\u{7}|\u{85}|\u{2028}|\u{feff}){0,8}",
        prop::sample::select(vec![
            "yes",
            "No",
            "on",
            "OFF",
            "y",
            "n",
            "~",
            "null",
            "true",
            "False",
            "0x10",
            "0o7",
            "1_000",
            "1.5",
            "1e3",
            ".5",
            "08",
            "1:20",
            "2001-12-14",
            "-",
            "- a",
            "? x",
            ": x",
            "@x",
            "`x",
            "---",
            "...",
            "<<",
            "",
            " ",
            "\n",
            "a\n",
            "a\n\n",
            "\na",
            " a\nb",
        ])
        .prop_map(String::from),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        ((i64::MAX as u64 + 1)..=u64::MAX).prop_map(Value::Uint),
        // Integral floats print like integers and read back as them, in Go too.
        (-1_000_000i64..1_000_000, 1u8..8)
            .prop_map(|(whole, eighths)| { Value::Float(whole as f64 + f64::from(eighths) / 8.0) }),
        text().prop_map(Value::Str),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Seq),
            prop::collection::vec(
                (
                    prop_oneof![
                        // String keys never read like the int and bool keys beside them: go-yaml refuses keys
                        // with equal text as duplicates even when their types differ.
                        "k[a-zA-Z0-9_]{0,5}".prop_map(Value::Str),
                        (0i64..100).prop_map(Value::Int),
                        any::<bool>().prop_map(Value::Bool),
                    ],
                    inner
                ),
                0..4
            )
            .prop_map(Value::map_from_entries),
        ]
    })
}

fn options() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec(("[ -~]{0,10}", value()), 0..4).prop_map(|entries| {
        let map = Value::map_from_entries(
            entries
                .into_iter()
                .map(|(key, value)| (Value::Str(key), value))
                .collect(),
        );
        match map {
            Value::Map(entries) => entries
                .into_iter()
                .filter_map(|(key, value)| match key {
                    Value::Str(key) => Some((key, value)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        }
    })
}

fn schematic() -> impl Strategy<Value = Schematic> {
    let overlay = (text(), text(), options()).prop_map(|(image, name, options)| Overlay {
        image,
        name,
        options,
    });
    let customization = (
        text(),
        prop::collection::vec(text(), 0..4),
        prop::collection::vec(
            (any::<u8>(), text()).prop_map(|(key, value)| MetaValue { key, value }),
            0..3,
        ),
        prop::collection::vec(text(), 0..3),
        prop::sample::select(Bootloader::ALL.to_vec()),
        (text(), any::<bool>()),
        prop_oneof![Just(0u64), Just(512), Just(4096), any::<u64>()],
    )
        .prop_map(
            |(config, args, meta, extensions, bootloader, (enroll, well_known), sector)| {
                Customization {
                    embedded_machine_configuration: config,
                    extra_kernel_args: args,
                    meta,
                    system_extensions: SystemExtensions {
                        official_extensions: extensions,
                    },
                    bootloader,
                    secureboot: SecureBootCustomization {
                        enroll_keys: enroll,
                        include_well_known_certificates: well_known,
                    },
                    disk_image: DiskImageCustomization {
                        sector_size: sector,
                    },
                }
            },
        );
    (text(), overlay, customization).prop_map(|(owner, overlay, customization)| Schematic {
        owner,
        overlay,
        customization,
    })
}

/// A value the emitter writes as a literal block, starting with a space, a line break or
/// anything else, and ending with no line break (strip), one (clip) or several (keep). Lines
/// that look like block headers or document markers try the reader of canonical text.
fn block_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        "( {1,3})?[a-z0-9#:|'\"-]([a-z0-9 #:|'\"-]{0,8}[a-z0-9#:|'\"-])?",
        prop::sample::select(vec![
            "", "- |4", "k: |4-", "- k: |+", "x: |", "...", "---", "- - |4-"
        ])
        .prop_map(String::from),
    ];
    (
        prop::sample::select(vec!["", " ", "  ", "\n", "\n\n", "\n "]),
        "[a-z|#-]{1,4}",
        prop::collection::vec(line, 1..4),
        prop::sample::select(vec!["", "\n", "\n\n", "\n\n\n"]),
    )
        .prop_map(|(lead, first, lines, tail)| format!("{lead}{first}\n{}{tail}", lines.join("\n")))
}

/// Where the block goes: every kind of node position the schematic has.
#[derive(Debug, Clone, Copy)]
enum Position {
    /// A mapping value at a multiple of the indentation width.
    EmbeddedConfiguration,
    /// Sequence items.
    KernelArg,
    Extension,
    OptionItem,
    /// A mapping value inside a sequence item, two columns in.
    MetaValue,
    /// A mapping value nested in the overlay options.
    OptionValue,
}

fn placed(text: &str, position: Position, before: bool, after: bool) -> Schematic {
    let mut schematic = Schematic::default();
    let earlier = |item: String| -> Vec<String> {
        if before {
            vec!["earlier".into(), item]
        } else {
            vec![item]
        }
    };
    let text = text.to_string();
    let customization = &mut schematic.customization;
    match position {
        Position::EmbeddedConfiguration => customization.embedded_machine_configuration = text,
        Position::KernelArg => customization.extra_kernel_args = earlier(text),
        Position::Extension => customization.system_extensions.official_extensions = earlier(text),
        Position::MetaValue => {
            customization.meta = earlier(text)
                .into_iter()
                .enumerate()
                .map(|(key, value)| MetaValue {
                    key: key as u8,
                    value,
                })
                .collect()
        }
        Position::OptionItem | Position::OptionValue => {
            let value = match position {
                Position::OptionItem => {
                    Value::Seq(earlier(text).into_iter().map(Value::Str).collect())
                }
                _ => Value::Str(text),
            };
            schematic.overlay = Overlay {
                image: "img".into(),
                name: "board".into(),
                options: vec![("k".into(), value)],
            };
        }
    }
    if after {
        schematic.customization.bootloader = Bootloader::Grub;
    }
    schematic
}

/// The header go-yaml writes for `text`: `|`, the indentation width before a leading space
/// or line break, then the chomping indicator.
fn expected_header(text: &str) -> String {
    let indicator = if text.starts_with([' ', '\n']) {
        "4"
    } else {
        ""
    };
    let chomp = match text.len() - text.trim_end_matches('\n').len() {
        0 => "-",
        1 => "",
        _ => "+",
    };
    format!("|{indicator}{chomp}\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn canonical_parses_back_to_the_same_schematic(original in schematic()) {
        let canonical = original.canonical();
        let parsed = Schematic::from_canonical(&canonical)
            .map_err(|error| TestCaseError::fail(format!("{error}\n--- canonical ---\n{canonical}")))?;
        prop_assert_eq!(&parsed, &original, "canonical:\n{}", canonical);
    }

    #[test]
    fn canonical_is_idempotent(original in schematic()) {
        let canonical = original.canonical();
        let again = Schematic::from_canonical(&canonical).map(|s| s.canonical());
        prop_assert_eq!(again.as_deref(), Ok(canonical.as_str()));
        // Only a `|+` block that ends the document leaves more than one line break, and no
        // document end marker follows it.
        prop_assert!(canonical.ends_with('\n') && !canonical.ends_with("\n...\n"));
    }

    #[test]
    fn block_scalars_read_back_in_every_position(
        text in block_text(),
        position in prop::sample::select(vec![
            Position::EmbeddedConfiguration,
            Position::KernelArg,
            Position::Extension,
            Position::OptionItem,
            Position::MetaValue,
            Position::OptionValue,
        ]),
        before in any::<bool>(),
        after in any::<bool>(),
    ) {
        let original = placed(&text, position, before, after);
        let canonical = original.canonical();
        let header = expected_header(&text);
        prop_assert!(canonical.contains(&header), "{:?} not written as {:?}:\n{}", text, header, canonical);
        if !after && !matches!(position, Position::OptionItem | Position::OptionValue) {
            // The block is the last node of the document: the text ends with its content and
            // its own line breaks, with no document end marker after them.
            let content = text.trim_end_matches('\n');
            let breaks = match &text[content.len()..] {
                "" => "\n",
                breaks => breaks,
            };
            let last_line = content.rsplit('\n').next().unwrap_or_default();
            prop_assert!(canonical.ends_with(&format!("{last_line}{breaks}")), "{}", canonical);
        }
        let read = Schematic::from_canonical(&canonical)
            .map_err(|error| TestCaseError::fail(format!("{error}\n--- canonical ---\n{canonical}")))?;
        prop_assert_eq!(&read, &original, "canonical:\n{}", canonical);
        prop_assert_eq!(read.canonical(), canonical);
    }
}
