//! An overlay's board profile (`profiles/<name>.yaml`): of it upstream keeps only what is
//! not the request's own (input, arch, platform, overlay, version, secureboot, kind, output
//! format, disk format and size are zeroed before the merge), which in practice is the
//! bootloader. That is what the factory reads; the rest is ignored as upstream ignores it.

use super::OverlayError;
use crate::schematic::Bootloader;
use crate::yaml::node::{Node, NodeKind, read_first_document};

/// What a board profile contributes to the request's profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BoardProfile {
    /// `output.imageOptions.bootloader`; `None` when the profile names none.
    pub bootloader: Bootloader,
}

/// Reads `profiles/<name>.yaml` of overlay `image`.
pub fn parse(image: &str, name: &str, bytes: &[u8]) -> Result<BoardProfile, OverlayError> {
    let invalid = |reason: String| OverlayError::Image {
        image: image.to_string(),
        reason: format!("profiles/{name}.yaml: {reason}"),
    };
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8".into()))?;
    let root = read_first_document(text).map_err(|error| invalid(error.to_string()))?;
    let Some(root) = root else {
        return Ok(BoardProfile::default());
    };
    if !matches!(root.kind, NodeKind::Mapping(_)) {
        return Err(invalid("not a mapping".into()));
    }
    let bootloader = match root
        .get("output")
        .and_then(|output| output.get("imageOptions"))
        .and_then(|options| options.get("bootloader"))
        .and_then(Node::scalar_text)
    {
        None => Bootloader::None,
        Some(text) => Bootloader::parse(text)
            .ok_or_else(|| invalid(format!("unknown bootloader {text:?}")))?,
    };
    Ok(BoardProfile { bootloader })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_board_profile_contributes_its_bootloader_only() {
        let rpi = b"arch: arm64\nplatform: metal\nsecureboot: false\noutput:\n  kind: image\n  outFormat: .xz\n  imageOptions:\n    diskSize: 1306525696\n    diskFormat: raw\n    bootloader: grub\n";
        assert_eq!(
            parse("sbc", "rpi_generic", rpi).unwrap().bootloader,
            Bootloader::Grub
        );
        assert_eq!(
            parse("sbc", "bare", b"arch: arm64\n").unwrap().bootloader,
            Bootloader::None
        );
        let error = parse(
            "sbc",
            "odd",
            b"output: {imageOptions: {bootloader: lilo}}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("profiles/odd.yaml: unknown bootloader \"lilo\""),
            "{error}"
        );
    }
}
