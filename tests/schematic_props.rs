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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn canonical_parses_back_to_the_same_schematic(original in schematic()) {
        let canonical = original.canonical();
        let parsed = Schematic::parse(canonical.as_bytes())
            .map_err(|error| TestCaseError::fail(format!("{error}\n--- canonical ---\n{canonical}")))?;
        prop_assert_eq!(&parsed, &original, "canonical:\n{}", canonical);
    }

    #[test]
    fn canonical_is_idempotent(original in schematic()) {
        let canonical = original.canonical();
        let again = Schematic::parse(canonical.as_bytes()).map(|s| s.canonical());
        prop_assert_eq!(again.as_deref(), Ok(canonical.as_str()));
        prop_assert!(canonical.ends_with('\n') && !canonical.ends_with("\n\n") || canonical.ends_with("...\n"));
    }
}
