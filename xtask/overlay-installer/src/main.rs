//! The fixture release's overlay installer. It speaks the overlay protocol the way the
//! boards' own installers do (`get-options` and `install`, YAML on stdin, YAML on stdout,
//! a non-zero exit with the reason on stderr), and behaves like the board it is installed
//! as (the file name under `installers/`):
//!
//! - `qemu_arm64`: QEMU's `virt` board. Asks for a 10 MiB gap before the first partition
//!   (as Rockchip boards do), writes U-Boot raw at byte 32768 of the disk, and copies the
//!   firmware files, U-Boot and a `config.txt` into the ESP (as the Raspberry Pi does).
//! - `rpi_generic`: the Raspberry Pi's kernel arguments and ESP files, no gap.
//! - `fails`, `sleeps`, `escapes`: installers that misbehave on `install` (exit 1, never
//!   finish, try to write outside their tree and to reach the network), for the factory's
//!   confinement tests.
//!
//! On a node the installer runs as `installers/default`; that name behaves like `qemu_arm64`.
//! The YAML it reads is the small subset the protocol uses: flat `key: value` maps, one
//! nested map (`extraOptions`), plain or quoted scalars.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::ExitCode;

/// Where `qemu_arm64` writes U-Boot, as Rockchip's installer does (LBA 64).
const UBOOT_OFFSET: u64 = 32768;
/// The partition gap `qemu_arm64` asks for, in LBAs (Rockchip's 2048 × 10).
const QEMU_ARM64_OFFSET: u64 = 20480;

type Map = BTreeMap<String, Value>;

#[derive(Debug, Clone)]
enum Value {
    Scalar(String),
    Map(Map),
}

impl Value {
    fn scalar(&self) -> Option<&str> {
        match self {
            Value::Scalar(text) => Some(text),
            Value::Map(_) => None,
        }
    }
}

fn unquote(text: &str) -> String {
    let text = text.trim();
    if text.len() >= 2 && text.starts_with('\'') && text.ends_with('\'') {
        return text[1..text.len() - 1].replace("''", "'");
    }
    if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
        return text[1..text.len() - 1]
            .replace("\\\"", "\"")
            .replace("\\\\", "\\");
    }
    text.to_string()
}

/// Parses the protocol's YAML: `{}` or lines of `key: value`, a key alone opening a map of
/// the more indented lines below it.
fn parse(text: &str) -> Result<Map, String> {
    let mut root = Map::new();
    let mut open: Option<(String, Map)> = None;
    for line in text.lines() {
        let content = line.trim_end();
        if content.trim().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        if content.trim() == "{}" && root.is_empty() && open.is_none() {
            continue;
        }
        let nested = content.starts_with(' ');
        let (key, value) = content
            .trim()
            .split_once(':')
            .ok_or_else(|| format!("cannot read YAML line {content:?}"))?;
        let key = unquote(key);
        let value = value.trim();
        if nested {
            let (_, map) = open
                .as_mut()
                .ok_or_else(|| format!("unexpected indented line {content:?}"))?;
            map.insert(key, Value::Scalar(unquote(value)));
            continue;
        }
        if let Some((name, map)) = open.take() {
            root.insert(name, Value::Map(map));
        }
        if value.is_empty() {
            open = Some((key, Map::new()));
        } else if value == "{}" {
            root.insert(key, Value::Map(Map::new()));
        } else {
            root.insert(key, Value::Scalar(unquote(value)));
        }
    }
    if let Some((name, map)) = open {
        root.insert(name, Value::Map(map));
    }
    Ok(root)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Board {
    QemuArm64,
    RpiGeneric,
    Fails,
    Sleeps,
    Escapes,
}

impl Board {
    fn from_program(name: &str) -> Option<Board> {
        Some(match name {
            "qemu_arm64" | "default" => Board::QemuArm64,
            "rpi_generic" => Board::RpiGeneric,
            "fails" => Board::Fails,
            "sleeps" => Board::Sleeps,
            "escapes" => Board::Escapes,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Board::QemuArm64 => "qemu_arm64",
            Board::RpiGeneric => "rpi_generic",
            Board::Fails => "fails",
            Board::Sleeps => "sleeps",
            Board::Escapes => "escapes",
        }
    }

    fn known_options(self) -> &'static [&'static str] {
        match self {
            Board::QemuArm64 | Board::RpiGeneric => &["configTxtAppend"],
            Board::Escapes => &["writeTo", "connectTo"],
            Board::Fails | Board::Sleeps => &[],
        }
    }

    fn kernel_args(self) -> &'static [&'static str] {
        match self {
            Board::QemuArm64 => &[
                "console=ttyAMA0,115200",
                "fixture.overlay=qemu_arm64",
                "talos.dashboard.disabled=1",
            ],
            Board::RpiGeneric => &[
                "console=tty0",
                "console=ttyAMA0,115200",
                "sysctl.kernel.kexec_load_disabled=1",
                "talos.dashboard.disabled=1",
            ],
            _ => &[],
        }
    }
}

fn check_options(board: Board, options: &Map) -> Result<(), String> {
    for key in options.keys() {
        if !board.known_options().contains(&key.as_str()) {
            return Err(format!(
                "{}: unknown option {key:?} (known: {})",
                board.name(),
                board.known_options().join(", ")
            ));
        }
    }
    Ok(())
}

fn get_options(board: Board, options: &Map) -> Result<String, String> {
    check_options(board, options)?;
    let mut out = format!("name: {}\n", board.name());
    if !board.kernel_args().is_empty() {
        out.push_str("kernelArgs:\n");
        for arg in board.kernel_args() {
            out.push_str(&format!("    - {arg}\n"));
        }
    }
    if board == Board::QemuArm64 {
        out.push_str(&format!(
            "partitionOptions:\n    offset: {QEMU_ARM64_OFFSET}\n"
        ));
    }
    Ok(out)
}

fn required<'a>(input: &'a Map, key: &str) -> Result<&'a str, String> {
    input
        .get(key)
        .and_then(Value::scalar)
        .ok_or_else(|| format!("install: missing {key}"))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let mut entries: Vec<_> = fs::read_dir(from)
        .map_err(|e| format!("{}: {e}", from.display()))?
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target).map_err(|e| format!("{}: {e}", target.display()))?;
        }
    }
    Ok(())
}

/// The ESP files every Raspberry-Pi-like board gets: firmware, U-Boot, `config.txt`.
fn install_esp_files(
    board: Board,
    artifacts: &Path,
    esp: &Path,
    options: &Map,
) -> Result<(), String> {
    copy_dir(&artifacts.join("arm64/firmware/boot"), esp)?;
    let uboot = artifacts.join(format!("arm64/u-boot/{}/u-boot.bin", board.name()));
    fs::copy(&uboot, esp.join("u-boot.bin")).map_err(|e| format!("{}: {e}", uboot.display()))?;
    let base = artifacts.join("arm64/firmware/boot/config.txt");
    let mut config = fs::read_to_string(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    if let Some(extra) = options.get("configTxtAppend").and_then(Value::scalar) {
        config.push_str(extra);
        config.push('\n');
    }
    fs::write(esp.join("config.txt"), config).map_err(|e| format!("config.txt: {e}"))
}

fn install(board: Board, input: &Map) -> Result<(), String> {
    let disk = required(input, "installDisk")?;
    let prefix = Path::new(required(input, "mountPrefix")?);
    let artifacts = Path::new(required(input, "artifactsPath")?);
    let empty = Map::new();
    let options = match input.get("extraOptions") {
        Some(Value::Map(map)) => map,
        _ => &empty,
    };
    check_options(board, options)?;
    let esp = prefix.join("boot/EFI");
    match board {
        Board::QemuArm64 => {
            let uboot = artifacts.join("arm64/u-boot/qemu_arm64/u-boot.bin");
            let bytes = fs::read(&uboot).map_err(|e| format!("{}: {e}", uboot.display()))?;
            let file = fs::OpenOptions::new()
                .write(true)
                .open(disk)
                .map_err(|e| format!("{disk}: {e}"))?;
            file.write_all_at(&bytes, UBOOT_OFFSET)
                .map_err(|e| format!("{disk}: {e}"))?;
            install_esp_files(board, artifacts, &esp, options)
        }
        Board::RpiGeneric => install_esp_files(board, artifacts, &esp, options),
        Board::Fails => {
            Err("fails: the board refuses to install (a fixture that always fails)".into())
        }
        Board::Sleeps => {
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(())
        }
        Board::Escapes => {
            let mut escaped = Vec::new();
            let mut refused = Vec::new();
            if let Some(address) = options.get("connectTo").and_then(Value::scalar) {
                match std::net::TcpStream::connect(address) {
                    Ok(_) => escaped.push(format!("connected to {address}")),
                    Err(error) => refused.push(format!("connect {address}: {error}")),
                }
            }
            if let Some(path) = options.get("writeTo").and_then(Value::scalar) {
                match fs::write(path, "written by the escapes fixture installer\n") {
                    Ok(()) => escaped.push(format!("wrote {path}")),
                    Err(error) => refused.push(format!("write {path}: {error}")),
                }
            }
            // Success only when it got out: the factory must then notice nothing.
            if escaped.is_empty() {
                Err(format!("escapes: {}", refused.join("; ")))
            } else {
                Ok(())
            }
        }
    }
}

fn main() -> ExitCode {
    let program = std::env::args().next().unwrap_or_default();
    let name = Path::new(&program)
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let command = std::env::args().nth(1).unwrap_or_default();
    let result = (|| {
        let board = Board::from_program(&name).ok_or_else(|| format!("unknown board {name:?}"))?;
        let mut stdin = String::new();
        std::io::stdin()
            .read_to_string(&mut stdin)
            .map_err(|e| format!("stdin: {e}"))?;
        let input = parse(&stdin)?;
        match command.as_str() {
            "get-options" => get_options(board, &input),
            "install" => install(board, &input).map(|()| String::new()),
            other => Err(format!(
                "unknown command {other:?} (get-options or install)"
            )),
        }
    })();
    match result {
        Ok(out) => {
            if std::io::stdout().write_all(out.as_bytes()).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "{message}");
            ExitCode::FAILURE
        }
    }
}
