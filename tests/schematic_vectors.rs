//! Every schematic vector of the specification: input → canonical bytes → ID, and the
//! decode errors with upstream's exact messages.

use image_factory::schematic::{Schematic, SchematicError};

fn check(input: &str, canonical: &str, id: &str) {
    let schematic = Schematic::parse(input.as_bytes())
        .unwrap_or_else(|error| panic!("{input:?} should parse: {error}"));
    assert_eq!(
        schematic.canonical(),
        canonical,
        "canonical form of {input:?}"
    );
    assert_eq!(schematic.id().to_string(), id, "ID of {input:?}");
    // The canonical form is a fixed point, read back as the store's text is.
    let again = Schematic::from_canonical(canonical).expect("canonical form reads back");
    assert_eq!(
        again, schematic,
        "canonical form of {input:?} re-parses to the same value"
    );
    assert_eq!(again.canonical(), canonical);
}

fn error_of(input: &str) -> String {
    match Schematic::parse(input.as_bytes()).and_then(|s| s.validate().map(|()| s)) {
        Ok(schematic) => panic!("{input:?} should be refused, got {schematic:?}"),
        Err(error) => error.to_string(),
    }
}

const VANILLA: &str = "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba";

#[test]
fn v1_vanilla_inputs() {
    for input in [
        "{}",
        "customization: {}",
        "customization: {\"extraKernelArgs\": []}",
        "null",
        "customization:\n  bootloader: none",
        "customization:\n  secureboot:\n    includeWellKnownCertificates: false",
        "---\n",
    ] {
        check(input, "customization: {}\n", VANILLA);
    }
    assert_eq!(Schematic::default().id().to_string(), VANILLA);
}

#[test]
fn v2_extra_kernel_args() {
    for input in [
        r#"{"customization": {"extraKernelArgs": ["noapic", "nolapic"]}}"#,
        r#"{"customization": {"extraKernelArgs": ["noapic", "nolapic"], "systemExtensions": {}}}"#,
    ] {
        check(
            input,
            "customization:\n    extraKernelArgs:\n        - noapic\n        - nolapic\n",
            "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c",
        );
    }
}

#[test]
fn v3_meta() {
    check(
        r#"{"customization": {"meta": [{"key": 10, "value": "foo"}], "extraKernelArgs": [], "systemExtensions": {}}}"#,
        "customization:\n    meta:\n        - key: 10\n          value: foo\n",
        "d308a2a5ee2277bed5fbaa104fcbc8d59122abfa737df987a95b4ca763459a7f",
    );
}

#[test]
fn v4_overlay() {
    for input in [
        r#"{"overlay": {"name": "rpi_generic", "image": "siderolabs/sbc-raspberrypi"}}"#,
        r#"{"overlay": {"name": "rpi_generic", "image": "siderolabs/sbc-raspberrypi"},"customization":{}}"#,
    ] {
        check(
            input,
            "overlay:\n    image: siderolabs/sbc-raspberrypi\n    name: rpi_generic\ncustomization: {}\n",
            "ee21ef4a5ef808a9b7484cc0dda0f25075021691c8c09a276591eedb638ea1f9",
        );
    }
}

#[test]
fn v5_secureboot() {
    check(
        r#"{"customization":{"secureboot": {"includeWellKnownCertificates": true}}}"#,
        "customization:\n    secureboot:\n        includeWellKnownCertificates: true\n",
        "fa8e05f142a851d3ee568eb0a8e5841eaf6b0ebc8df9a63df16ac5ed2c04f3e6",
    );
}

#[test]
fn v6_sector_size() {
    check(
        "customization:\n  diskImage:\n    sectorSize: 4096\n",
        "customization:\n    diskImage:\n        sectorSize: 4096\n",
        "92833e9ddd9bb9e11b2464fa5525429f01866306d52ebd882ee08d7918f6d1ea",
    );
}

#[test]
fn v7_extensions_args_meta() {
    check(
        include_str!("../fixtures/schematics/extensions.yaml"),
        "customization:\n    extraKernelArgs:\n        - noapic\n        - nolapic\n    meta:\n        - key: 10\n          value: foo\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/amd-ucode\n            - siderolabs/intel-ucode\n",
        "6ba13d510dcc57f233b9b498d34a3c919c1abdd5675b46ad53cf4f2e66362f82",
    );
}

#[test]
fn v8_overlay_with_extensions() {
    check(
        "customization:\n  systemExtensions:\n    officialExtensions: [siderolabs/amd-ucode, siderolabs/intel-ucode]\n  extraKernelArgs: [noapic, nolapic]\noverlay:\n  name: rpi_generic\n  image: ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0\n",
        "overlay:\n    image: ghcr.io/siderolabs/sbc-raspberrypi:v0.1.0\n    name: rpi_generic\ncustomization:\n    extraKernelArgs:\n        - noapic\n        - nolapic\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/amd-ucode\n            - siderolabs/intel-ucode\n",
        "1da25204d18e6db95cb65ce2e38424b2ad94b2519a53aef34e45f07cc73ca5e8",
    );
}

#[test]
fn v9_extension_order_is_kept() {
    let names = [
        "siderolabs/nvidia-container-toolkit",
        "siderolabs/nvidia-open-gpu-kernel-modules",
        "siderolabs/nonfree-kmod-nvidia",
        "siderolabs/nvidia-fabricmanager",
        "siderolabs/i915-ucode",
        "siderolabs/amdgpu-firmware",
    ];
    let input = format!(
        "customization:\n  systemExtensions:\n    officialExtensions: [{}]\n",
        names.join(", ")
    );
    let canonical = format!(
        "customization:\n    systemExtensions:\n        officialExtensions:\n{}",
        names
            .iter()
            .map(|name| format!("            - {name}\n"))
            .collect::<String>()
    );
    check(
        &input,
        &canonical,
        "42c5a897579913a97ad7edc56c0d858bc4dd8639951e02b084edbb2e190a7898",
    );
}

#[test]
fn v10_embedded_configuration_without_trailing_newline() {
    check(
        r#"{"customization": {"embeddedMachineConfiguration": "apiVersion: v1alpha1\nkind: HostnameConfig\nhostname: worker-33"}}"#,
        "customization:\n    embeddedMachineConfiguration: |-\n        apiVersion: v1alpha1\n        kind: HostnameConfig\n        hostname: worker-33\n",
        "02f29f9a702fceec4fc2e2e51314d63710fc1b192ebb1629ac12301949d49c8c",
    );
}

#[test]
fn integration_suite_schematics() {
    let cases = [
        (
            "customization:\n  extraKernelArgs: [nolapic, nomodeset]",
            "customization:\n    extraKernelArgs:\n        - nolapic\n        - nomodeset\n",
            "e0fb1129bbbdfb5d002e94af4cdce712a8370e850950a33a242d4c3f178c532d",
        ),
        (
            "customization:\n  systemExtensions:\n    officialExtensions: [siderolabs/amd-ucode, siderolabs/gvisor, siderolabs/gasket-driver]",
            "customization:\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/amd-ucode\n            - siderolabs/gvisor\n            - siderolabs/gasket-driver\n",
            "51ff3e49313773332729a5c04e57af0dbe2e6d3f65ff638e6d4c3a05065fefff",
        ),
        (
            "customization:\n  meta:\n    - key: 0xa\n      value: '{\"externalIPs\":[\"1.2.3.4\"]}'",
            "customization:\n    meta:\n        - key: 10\n          value: '{\"externalIPs\":[\"1.2.3.4\"]}'\n",
            "fe866116408a5a13dab7d5003eb57a00954ea81ebeec3fbbcd1a6d4462a00036",
        ),
        (
            "customization:\n  bootloader: grub",
            "customization:\n    bootloader: grub\n",
            "39d496b2cbdb6265d3b714514c5334bf010f1b4d31b23b9e38c80fb2f3ad7ecb",
        ),
        (
            "customization:\n  bootloader: sd-boot",
            "customization:\n    bootloader: sd-boot\n",
            "9ed5fecdacb36b5c5427b87d409f1065cfb2df69b0f71c58b868d9d466d8dab3",
        ),
        (
            "customization:\n  embeddedMachineConfiguration: 'apiVersion: v1alpha1/nkind: HostnameConfig/nhostname: my-custom-hostname/nauto: off'",
            "customization:\n    embeddedMachineConfiguration: 'apiVersion: v1alpha1/nkind: HostnameConfig/nhostname: my-custom-hostname/nauto: off'\n",
            "79312a00a1ccfee2c4ecad20fcb972ef75fce4e62053384d97885de26852c413",
        ),
        (
            "customization:\n  systemExtensions:\n    officialExtensions: [extension-testing/my-extension]",
            "customization:\n    systemExtensions:\n        officialExtensions:\n            - extension-testing/my-extension\n",
            "9414259a4d71e1c9ab92bfaf673f83ac85afe39839ed91e28ca6e1177f576437",
        ),
        (
            "customization:\n  extraKernelArgs: [vga=791]",
            "customization:\n    extraKernelArgs:\n        - vga=791\n",
            "eea1f9534c46d95c4715a2f13d17eacb927c13a42ef087c79b22c3bd0c49d073",
        ),
    ];
    for (input, canonical, id) in cases {
        check(input, canonical, id);
    }
}

#[test]
fn full_documentation_example() {
    check(
        include_str!("../fixtures/schematics/full.yaml"),
        "overlay:\n    image: ghcr.io/siderolabs/sbc-raspberry-pi\n    name: rpi_generic\n    options:\n        data: mydata\ncustomization:\n    embeddedMachineConfiguration: |\n        apiVersion: v1alpha1\n        kind: HostnameConfig\n        hostname: my-custom-hostname\n        auto: off\n        ---\n        apiVersion: v1alpha1\n        kind: KmsgLogConfig\n        name: remote-log\n        url: tcp://10.0.0.50:5044/\n    extraKernelArgs:\n        - vga=791\n    meta:\n        - key: 10\n          value: '{}'\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/gvisor\n            - siderolabs/amd-ucode\n    bootloader: sd-boot\n    secureboot:\n        enrollKeys: force\n        includeWellKnownCertificates: true\n    diskImage:\n        sectorSize: 4096\n",
        "7dc6a7fa48654d7b3f4782189b422b50ebde04737857153996fa2af4ff6a8a28",
    );
}

#[test]
fn edge_cases() {
    let long_arg = format!("{} {}", "a".repeat(115), "b".repeat(18));
    let cases: Vec<(String, String, &str)> = vec![
        (
            "customization:\n  meta:\n    - key: 0xff\n      value: \"x\"".into(),
            "customization:\n    meta:\n        - key: 255\n          value: x\n".into(),
            "930cf1c08f5344172cdf1f5c4c63fc4157127acf3662ed2bf3acc4e1a41a33ba",
        ),
        (
            "customization:\n  bootloader: DUAL-BOOT".into(),
            "customization:\n    bootloader: dual-boot\n".into(),
            "43a1a6104d8dcd6547983f4ed13abb6f5e8a1b2fdad796c69e7db6e95d122884",
        ),
        (
            "customization:\n  secureboot:\n    enrollKeys: bogus".into(),
            "customization:\n    secureboot:\n        enrollKeys: bogus\n".into(),
            "ba69434bb339f6da6b0611e172d3f95d01af1ea07611bb99e98807059591af7f",
        ),
        (
            "customization:\n  extraKernelArgs: [a]\n---\ncustomization:\n  extraKernelArgs: [b]\n"
                .into(),
            "customization:\n    extraKernelArgs:\n        - a\n".into(),
            "b768f3ce41d4c6a93b0b20f96413eb41e9ba05148ddc4bde45beed428ce27cba",
        ),
        (
            "overlay:\n  name: foo".into(),
            "overlay:\n    image: \"\"\n    name: foo\ncustomization: {}\n".into(),
            "340f37594556703d7fc77a12b891ac4f4dd397221cd51ed2d5618d3286561526",
        ),
        (
            r#"{"customization": {"embeddedMachineConfiguration": "apiVersion: v1alpha1\nkind: HostnameConfig\n"}}"#.into(),
            "customization:\n    embeddedMachineConfiguration: |\n        apiVersion: v1alpha1\n        kind: HostnameConfig\n".into(),
            "cb0ab67ea7e832406dd7f94ceee823f64b4ac801ec27655b0fb19c344b38d272",
        ),
        (
            r#"{"customization": {"meta": [{"key": 12, "value": "line1\nline2"}]}}"#.into(),
            "customization:\n    meta:\n        - key: 12\n          value: |-\n            line1\n            line2\n".into(),
            "228cd99782d167f03e25593690584996654e9bfcefca6e3ad257f6c3164cdd5e",
        ),
        (
            format!("customization:\n  extraKernelArgs: [\"{long_arg}\"]"),
            format!("customization:\n    extraKernelArgs:\n        - {long_arg}\n"),
            "f40d9de6332b2ffacfd763ef6de3d36cfb118c91e263c35c0601e9caaec3cac2",
        ),
    ];
    for (input, canonical, id) in &cases {
        check(input, canonical, id);
    }
}

#[test]
fn e10_every_field_scrambled() {
    // The owner is refused by validation, not by parsing; the ID is still defined.
    check(
        "customization:\n  diskImage: {sectorSize: 4096}\n  bootloader: grub\n  systemExtensions: {officialExtensions: [siderolabs/zfs]}\n  secureboot: {enrollKeys: force, includeWellKnownCertificates: true}\n  meta: [{value: v, key: 1}]\n  extraKernelArgs: [x]\n  embeddedMachineConfiguration: cfg\noverlay: {options: {k: v}, name: n, image: i}\nowner: bob\n",
        "owner: bob\noverlay:\n    image: i\n    name: 'n'\n    options:\n        k: v\ncustomization:\n    embeddedMachineConfiguration: cfg\n    extraKernelArgs:\n        - x\n    meta:\n        - key: 1\n          value: v\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/zfs\n    bootloader: grub\n    secureboot:\n        enrollKeys: force\n        includeWellKnownCertificates: true\n    diskImage:\n        sectorSize: 4096\n",
        "46b7b3437defb4acff7f2a128ee3560f21eda00f8a2bf4dede5a9c6ed85011cd",
    );
    check(
        "owner: alice\ncustomization: {}",
        "owner: alice\ncustomization: {}\n",
        "325e789382e85e76ab77e38cb320a816e2c9550cb5afe960b21f75e06605e2e9",
    );
}

#[test]
fn e11_overlay_options() {
    check(
        "overlay:\n  name: rpi_generic\n  image: siderolabs/sbc-raspberrypi\n  options:\n    zeta: 1\n    alpha:\n      - x\n      - 2\n      - true\n    mid: {b: \"1\", a: null}\n    configTxtAppend: \"dtoverlay=vc4-kms-v3d\\ngpu_mem=128\\n\"\n",
        "overlay:\n    image: siderolabs/sbc-raspberrypi\n    name: rpi_generic\n    options:\n        alpha:\n            - x\n            - 2\n            - true\n        configTxtAppend: |\n            dtoverlay=vc4-kms-v3d\n            gpu_mem=128\n        mid:\n            a: null\n            b: \"1\"\n        zeta: 1\ncustomization: {}\n",
        "772517c0302d740724294b1cef6d0636ca00b62f8f0a9727a312181472366527",
    );
}

#[test]
fn e12_quoting_battery() {
    check(
        "customization:\n  extraKernelArgs: [\"1\", \"true\", \"null\", \"~\", \"a: b\", \"-x\", \"#c\", \"\", \"yes\", \"on\", \"0x10\", \"1.5\", \"é\", \"a'b\", \"tab\\there\"]\n",
        "customization:\n    extraKernelArgs:\n        - \"1\"\n        - \"true\"\n        - \"null\"\n        - \"~\"\n        - 'a: b'\n        - -x\n        - '#c'\n        - \"\"\n        - 'yes'\n        - 'on'\n        - \"0x10\"\n        - \"1.5\"\n        - é\n        - a'b\n        - \"tab\\there\"\n",
        "daa6b27d3431c6f2fbbed4967b80a0b8d00c77ad8b8d4a63ab35e670a916659b",
    );
}

/// Literal blocks as go-yaml v4 writes them: no document end after a `|+` block that ends
/// the document, and an indentation indicator of 4 (its indentation width) before text that
/// starts with a space or a line break, wherever the block sits. Each ID is the SHA-256 of
/// the canonical bytes shown; those without a leading line break were also produced by
/// go-yaml's encoder (v3 writes one line break fewer before a leading line break, which v4
/// fixed).
#[test]
fn block_scalars_are_written_as_go_yaml_writes_them() {
    let cases = [
        // Keep chomping at the very end of the document: no `...`.
        (
            r#"{"customization": {"embeddedMachineConfiguration": "a\nb\n\n"}}"#,
            "customization:\n    embeddedMachineConfiguration: |+\n        a\n        b\n\n",
            "030333c36808103ed922df5c10faaabbd50fa775fc8b00a9ead63ef380bd6755",
        ),
        (
            r#"{"customization": {"meta": [{"key": 10, "value": "foo\n\n"}]}}"#,
            "customization:\n    meta:\n        - key: 10\n          value: |+\n            foo\n\n",
            "236973f0034aa289cd68db10525669a3f0411c6f0add97e4d6336ec51c7ad668",
        ),
        (
            r#"{"customization": {"embeddedMachineConfiguration": "a\n\n", "extraKernelArgs": ["x"]}}"#,
            "customization:\n    embeddedMachineConfiguration: |+\n        a\n\n    extraKernelArgs:\n        - x\n",
            "033ca41aee5a929599396b8a61b73613a3dc08809186a792bd1a5b8f81ac95c5",
        ),
        // A leading space or line break: the indicator is 4, even two columns in.
        (
            r#"{"customization": {"meta": [{"key": 12, "value": " indented\nline\n"}]}}"#,
            "customization:\n    meta:\n        - key: 12\n          value: |4\n             indented\n            line\n",
            "abb78e62ec6284bf4a6e8a98790ed6d79583dfcd9bdb1776343ed942524fa1a3",
        ),
        (
            r#"{"customization": {"extraKernelArgs": ["\nx"]}}"#,
            "customization:\n    extraKernelArgs:\n        - |4-\n\n          x\n",
            "545c14b340d1701f0199a22fe25dcb9b63790d68788c2750e3111f4e6996c8ec",
        ),
        (
            r#"{"overlay": {"name": "rpi", "image": "img", "options": {"txt": " c\n", "list": [" a\nb"]}}}"#,
            "overlay:\n    image: img\n    name: rpi\n    options:\n        list:\n            - |4-\n               a\n              b\n        txt: |4\n             c\ncustomization: {}\n",
            "ce4b97479fd5fefd5c702e0aa4e9d03220121e217f80759807c1081b74f41a7b",
        ),
        // Both at once, as a sequence item and as a mapping value, at the end of the document.
        (
            r#"{"customization": {"systemExtensions": {"officialExtensions": ["  x\n\n"]}}}"#,
            "customization:\n    systemExtensions:\n        officialExtensions:\n            - |4+\n                x\n\n",
            "a1fae4b4eaae479435ab256e997bad3ed275094f57a3c60a2827ceb41339c987",
        ),
        (
            r#"{"customization": {"embeddedMachineConfiguration": "\nhostname: a\n\n"}}"#,
            "customization:\n    embeddedMachineConfiguration: |4+\n\n        hostname: a\n\n",
            "c95dad1cccb0c058c893f4e01e9b63bf1735610a0b20901ec5ca3187e4e7c507",
        ),
    ];
    for (input, canonical, id) in cases {
        check(input, canonical, id);
    }
}

/// go-yaml's indicator inside a sequence item is not the content's offset, so a strict
/// YAML 1.2 reader does not read the canonical text back; the factory's reader of its own
/// stored text does.
#[test]
fn canonical_text_with_an_unreal_indicator_needs_the_canonical_reader() {
    let canonical = "customization:\n    meta:\n        - key: 12\n          value: |4\n             indented\n            line\n";
    let written = Schematic::parse(
        br#"{"customization": {"meta": [{"key": 12, "value": " indented\nline\n"}]}}"#,
    )
    .unwrap();
    assert_ne!(
        Schematic::parse(canonical.as_bytes()).ok(),
        Some(written.clone())
    );
    assert_eq!(Schematic::from_canonical(canonical), Ok(written));
}

#[test]
fn decode_errors_match_upstream() {
    let cases = [
        (
            "something:",
            "yaml: construct errors: line 1: field something not found in type schematic.Schematic",
        ),
        (
            "customization:\n  foo: bar",
            "yaml: construct errors: line 2: field foo not found in type schematic.Customization",
        ),
        (
            "customization:\n  meta:\n    - key: 256\n      value: x",
            "yaml: construct errors: line 3: cannot construct !!int `256` into uint8",
        ),
        (
            "customization:\n  meta:\n    - key: -1\n      value: x",
            "yaml: construct errors: line 3: cannot construct !!int `-1` into uint8",
        ),
        (
            "customization:\n  meta:\n    - key: \"10\"\n      value: x",
            "yaml: construct errors: line 3: cannot construct !!str `10` into uint8",
        ),
        (
            "customization:\n  bootloader: auto",
            "yaml: construct errors: line 2: auto does not belong to BootloaderKind values",
        ),
        (
            "customization:\n  bootloader: 2",
            "yaml: construct errors: line 2: 2 does not belong to BootloaderKind values",
        ),
        (
            "customization:\n  diskImage:\n    sectorSize: -1",
            "yaml: construct errors: line 3: cannot construct !!int `-1` into uint",
        ),
        (
            "customization: {}\ncustomization: {}",
            "yaml: construct errors: line 2: mapping key \"customization\" already defined at line 1",
        ),
        (
            "customization:\n  extraKernelArgs: {a: b}",
            "yaml: construct errors: line 2: cannot construct !!map into []string",
        ),
        (
            "customization:\n  extraKernelArgs: [x]\n  foo: 1\n  meta: [{key: 1, value: v, extra: 2}]",
            "yaml: construct errors: line 3: field foo not found in type schematic.Customization; line 4: field extra not found in type schematic.MetaValue",
        ),
        (
            "customization:\n  secureboot:\n    includeWellKnownCertificates: maybe-later",
            "yaml: construct errors: line 3: cannot construct !!str `maybe-l...` into bool",
        ),
        ("", "EOF"),
        ("  \n# nothing here\n", "EOF"),
        (
            "owner: alice",
            "owner field is only supported in Enterprise edition",
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(error_of(input), expected, "input {input:?}");
    }
}

#[test]
fn malformed_yaml_is_a_syntax_error_with_a_line() {
    let message = error_of("customization:\n  extraKernelArgs: [a, b\n  meta: x\n");
    assert!(
        message.starts_with("go-yaml load error in parser at L"),
        "{message}"
    );
    let message = error_of("a: b: c");
    assert!(
        message.starts_with("go-yaml load error in parser at L1."),
        "{message}"
    );
}

#[test]
fn non_utf8_is_refused() {
    let error = Schematic::parse(b"customization: {extraKernelArgs: [\xff]}").unwrap_err();
    assert!(matches!(error, SchematicError::NotUtf8(_)), "{error}");
}

#[test]
fn yaml_1_1_words_are_bools_only_for_bool_fields() {
    let schematic = Schematic::parse(
        b"customization:\n  secureboot:\n    includeWellKnownCertificates: yes\n  extraKernelArgs: [yes, 0x10, ~]\n",
    )
    .unwrap();
    assert!(
        schematic
            .customization
            .secureboot
            .include_well_known_certificates
    );
    assert_eq!(
        schematic.customization.extra_kernel_args,
        ["yes", "0x10", ""]
    );
}

#[test]
fn meta_keys_accept_every_yaml_integer_form() {
    for form in ["10", "0xa", "0o12", "0b1010", "012", "1_0"] {
        let input = format!("customization:\n  meta:\n    - key: {form}\n      value: v\n");
        let schematic = Schematic::parse(input.as_bytes()).unwrap();
        assert_eq!(schematic.customization.meta[0].key, 10, "{form}");
    }
}
