//! The `grub.cfg` text GRUB reads from BOOT (imager.md §5.4) or from an ISO (§6.2).

use std::fmt::Write as _;

/// `Q()` of imager.md §5.4: GRUB's special characters behind a backslash.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(
            c,
            '\\' | '{' | '}' | '&' | '$' | '|' | ';' | '<' | '>' | '"'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `/boot/grub/grub.cfg` of an ISO (imager.md §6.2); `reset_entry` adds the entry that wipes
/// the system disk (Talos 1.4 and later).
pub fn iso_grub_cfg(cmdline: &str, reset_entry: bool) -> String {
    let cmdline = quote(cmdline);
    let mut out = String::from(
        "set default=0\nset timeout=3\n\ninsmod all_video\n\nterminal_input console\nterminal_output console\n",
    );
    let mut entry = |title: &str, extra: &str| {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "\nmenuentry \"{title}\" {{\n\tset gfxmode=auto\n\tset gfxpayload=text\n\tlinux /boot/vmlinuz {cmdline}{extra}\n\tinitrd /boot/initramfs.xz\n}}\n"
        );
    };
    entry("Talos ISO", "");
    if reset_entry {
        entry(
            "Reset Talos installation",
            " talos.experimental.wipe=system",
        );
    }
    out
}

/// `/grub/grub.cfg` of imager.md §5.4: `version` like "v1.12.0", `cmdline` the kernel command
/// line, `reset_entry` whether to add the reset menu entry.
pub fn grub_cfg(version: &str, cmdline: &str, reset_entry: bool) -> String {
    let name = format!("A - Talos {version}");
    let cmdline = quote(cmdline);
    let mut out = String::new();
    let entry = |out: &mut String, title: &str, extra: &str| {
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "menuentry \"{title}\" {{\n  set gfxmode=auto\n  set gfxpayload=text\n  linux /A/vmlinuz {cmdline}{extra}\n  initrd /A/initramfs.xz\n}}\n"
        );
    };
    let _ = write!(
        out,
        "set default=\"{name}\"\n\nset timeout=3\n\ninsmod all_video\n\nterminal_input console\nterminal_output console\n\n"
    );
    entry(&mut out, &name, "");
    if reset_entry {
        entry(
            &mut out,
            "Reset Talos installation and return to maintenance mode",
            " talos.experimental.wipe=system:EPHEMERAL,STATE",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_bytes() {
        let expected = "set default=\"A - Talos v1.12.0\"\n\
\n\
set timeout=3\n\
\n\
insmod all_video\n\
\n\
terminal_input console\n\
terminal_output console\n\
\n\
menuentry \"A - Talos v1.12.0\" {\n\
\x20 set gfxmode=auto\n\
\x20 set gfxpayload=text\n\
\x20 linux /A/vmlinuz talos.platform=metal console=ttyS0 a=\\$b\n\
\x20 initrd /A/initramfs.xz\n\
}\n\
menuentry \"Reset Talos installation and return to maintenance mode\" {\n\
\x20 set gfxmode=auto\n\
\x20 set gfxpayload=text\n\
\x20 linux /A/vmlinuz talos.platform=metal console=ttyS0 a=\\$b talos.experimental.wipe=system:EPHEMERAL,STATE\n\
\x20 initrd /A/initramfs.xz\n\
}\n";
        let cfg = grub_cfg("v1.12.0", "talos.platform=metal console=ttyS0 a=$b", true);
        assert_eq!(cfg, expected);
        let without = grub_cfg("v1.12.0", "talos.platform=metal console=ttyS0 a=$b", false);
        let cut = expected
            .find("menuentry \"Reset")
            .expect("reset entry in the sample");
        assert_eq!(without, &expected[..cut]);
    }

    #[test]
    fn quoting_escapes_exactly_grub_specials() {
        assert_eq!(
            quote(r#"a\b{c}d&e$f|g;h<i>j"k"#),
            r#"a\\b\{c\}d\&e\$f\|g\;h\<i\>j\"k"#
        );
        let plain = "talos.config=http://x/y?a=1 'q' (p) [b] #h ~ * ! , = : % @ ` é";
        assert_eq!(quote(plain), plain);
    }
}
