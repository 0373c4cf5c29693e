//! The overlay protocol's messages (upstream-parity.md E1): what `get-options` and
//! `install` read on stdin and what `get-options` answers on stdout, as YAML.

use super::OverlayError;
use crate::schematic::Value;
use crate::yaml::emit::{Emit, to_string};
use crate::yaml::node::{Node, NodeKind, read_first_document};

pub const GET_OPTIONS: &str = "get-options";
pub const INSTALL: &str = "install";

/// The schematic's `overlay.options` as the installer reads them (`{}` when there are none).
pub fn options_yaml(options: &[(String, Value)]) -> String {
    to_string(&options_emit(options))
}

fn options_emit(options: &[(String, Value)]) -> Emit {
    Emit::Map(
        options
            .iter()
            .map(|(name, value)| (Emit::Str(name.clone()), value.to_emit()))
            .collect(),
    )
}

/// What `get-options` answers: the board's kernel arguments and the gap (in LBAs) its
/// firmware needs before the partition table's entries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct BoardOptions {
    pub name: String,
    pub kernel_args: Vec<String>,
    pub partition_offset: u64,
}

/// Reads the answer of `get-options`.
pub fn parse_board_options(program: &str, stdout: &[u8]) -> Result<BoardOptions, OverlayError> {
    let invalid = |reason: String| OverlayError::Protocol {
        program: program.to_string(),
        command: GET_OPTIONS,
        reason,
    };
    let text = std::str::from_utf8(stdout).map_err(|_| invalid("not UTF-8".into()))?;
    let Some(root) = read_first_document(text).map_err(|error| invalid(error.to_string()))? else {
        return Ok(BoardOptions::default());
    };
    if !matches!(root.kind, NodeKind::Mapping(_)) {
        return Err(invalid("the answer is not a mapping".into()));
    }
    let name = root
        .get("name")
        .and_then(Node::scalar_text)
        .unwrap_or_default()
        .to_string();
    let kernel_args = match root.get("kernelArgs").map(|node| &node.kind) {
        None => Vec::new(),
        Some(NodeKind::Sequence(items)) => items
            .iter()
            .map(|item| {
                item.scalar_text()
                    .map(str::to_string)
                    .ok_or_else(|| invalid("kernelArgs holds a non-string".into()))
            })
            .collect::<Result<_, _>>()?,
        Some(NodeKind::Scalar { text, .. }) if text.is_empty() || text == "null" => Vec::new(),
        Some(_) => return Err(invalid("kernelArgs is not a list".into())),
    };
    let partition_offset = match root
        .get("partitionOptions")
        .and_then(|options| options.get("offset"))
        .and_then(Node::scalar_text)
    {
        None => 0,
        Some(text) => text
            .parse()
            .map_err(|_| invalid(format!("partitionOptions.offset {text:?} is not a number")))?,
    };
    Ok(BoardOptions {
        name,
        kernel_args,
        partition_offset,
    })
}

/// What `install` reads: the disk image file, the tree whose `boot/EFI/` becomes ESP
/// content, the overlay's artifacts and the schematic's options.
pub fn install_yaml(
    install_disk: &str,
    mount_prefix: &str,
    artifacts_path: &str,
    options: &[(String, Value)],
) -> String {
    let mut entries = vec![
        (
            Emit::Str("installDisk".into()),
            Emit::Str(install_disk.into()),
        ),
        (
            Emit::Str("mountPrefix".into()),
            Emit::Str(mount_prefix.into()),
        ),
        (
            Emit::Str("artifactsPath".into()),
            Emit::Str(artifacts_path.into()),
        ),
    ];
    if !options.is_empty() {
        entries.push((Emit::Str("extraOptions".into()), options_emit(options)));
    }
    to_string(&Emit::Map(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_options_are_read_as_upstream_writes_them() {
        let answer = b"name: rockpi4\nkernelArgs:\n    - console=tty1\n    - console=ttyS2,1500000n8\npartitionOptions:\n    offset: 20480\n";
        let options = parse_board_options("rockpi4", answer).unwrap();
        assert_eq!(options.name, "rockpi4");
        assert_eq!(
            options.kernel_args,
            ["console=tty1", "console=ttyS2,1500000n8"]
        );
        assert_eq!(options.partition_offset, 20480);
        let bare = parse_board_options("rpi", b"name: rpi_generic\n").unwrap();
        assert_eq!(bare.partition_offset, 0);
        assert!(bare.kernel_args.is_empty());
    }

    #[test]
    fn malformed_answers_name_the_program() {
        for answer in [
            &b"- a list\n"[..],
            b"kernelArgs: {a: b}\n",
            b"partitionOptions: {offset: lots}\n",
            b"name: [unclosed\n",
        ] {
            let error = parse_board_options("board", answer)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("overlay installer board get-options"),
                "{error}"
            );
        }
    }

    #[test]
    fn install_input_carries_the_options_only_when_there_are_some() {
        let bare = install_yaml("/s/disk.raw", "/s/image", "/s/overlay/artifacts", &[]);
        assert_eq!(
            bare,
            "installDisk: /s/disk.raw\nmountPrefix: /s/image\nartifactsPath: /s/overlay/artifacts\n"
        );
        let options = vec![("configTxtAppend".to_string(), Value::Str("x=1".into()))];
        let with = install_yaml("/d", "/m", "/a", &options);
        assert!(
            with.ends_with("extraOptions:\n    configTxtAppend: x=1\n"),
            "{with}"
        );
        assert_eq!(options_yaml(&[]), "{}\n");
    }
}
