//! GRUB's modules: the lists each image embeds (imager.md §5.4), their order through
//! `moddep.lst` as `grub-mkimage` resolves it, and the module area appended to every core
//! image, BIOS or EFI.

use super::{invalid_in, missing_in, size_u32};
use crate::engine::EngineError;
use std::collections::HashMap;

/// Modules of imager.md §5.4 that every GRUB image carries.
pub const COMMON_MODULES: &[&str] = &[
    "part_gpt",
    "ext2",
    "fat",
    "xfs",
    "normal",
    "configfile",
    "linux",
    "boot",
    "search",
    "search_fs_uuid",
    "search_fs_file",
    "ls",
    "cat",
    "echo",
    "test",
    "help",
    "reboot",
    "halt",
    "all_video",
];

/// What the i386-pc image adds to [`COMMON_MODULES`]: BIOS disk access and MBR tables.
pub const BIOS_EXTRA_MODULES: &[&str] = &["biosdisk", "part_msdos"];

/// The i386-pc module list: [`COMMON_MODULES`] then [`BIOS_EXTRA_MODULES`].
pub const BIOS_MODULES: &[&str] = &BIOS_LIST;
const BIOS_LIST: [&str; COMMON_MODULES.len() + BIOS_EXTRA_MODULES.len()] =
    concat(COMMON_MODULES, BIOS_EXTRA_MODULES);

/// What GRUB images on an ISO need beyond the disk lists ([`BIOS_MODULES`] for the El
/// Torito image): every module its `grub.cfg` needs is linked in, so the ISO carries no
/// module directory.
pub const ISO_MODULES: &[&str] = &["iso9660"];

/// On an ISO, GRUB's root is the boot CD (or the disk it was written to).
pub const ISO_PREFIX: &str = "/boot/grub";

/// GRUB's EFI application on an ISO's ESP: `()` is the drive it was loaded from, without the
/// ESP's partition, which holds the ISO 9660 file system.
pub const ISO_EFI_PREFIX: &str = "()/boot/grub";
/// Modules the EFI application needs on an ISO beyond [`COMMON_MODULES`].
pub const ISO_EFI_EXTRA_MODULES: &[&str] = &["iso9660", "part_msdos"];

/// The El Torito image's list: [`BIOS_MODULES`] then [`ISO_MODULES`].
pub const ISO_BIOS_MODULES: &[&str] = &ISO_BIOS_LIST;
const ISO_BIOS_LIST: [&str; BIOS_MODULES.len() + ISO_MODULES.len()] =
    concat(BIOS_MODULES, ISO_MODULES);

/// The ISO's EFI application list: [`COMMON_MODULES`] then [`ISO_EFI_EXTRA_MODULES`].
pub const ISO_EFI_MODULES: &[&str] = &ISO_EFI_LIST;
const ISO_EFI_LIST: [&str; COMMON_MODULES.len() + ISO_EFI_EXTRA_MODULES.len()] =
    concat(COMMON_MODULES, ISO_EFI_EXTRA_MODULES);

/// `first` then `second`, at compile time.
// Only evaluated in constants: an index out of range would fail the build, not a request.
#[allow(clippy::indexing_slicing)]
const fn concat<const N: usize>(
    first: &[&'static str],
    second: &[&'static str],
) -> [&'static str; N] {
    assert!(first.len() + second.len() == N);
    let mut out = [""; N];
    let mut index = 0;
    while index < first.len() {
        out[index] = first[index];
        index += 1;
    }
    while index < N {
        out[index] = second[index - first.len()];
        index += 1;
    }
    out
}

/// BOOT is always partition 3 of the disk GRUB was loaded from.
pub const PREFIX: &str = "(hd0,gpt3)/grub";

/// `grub_module_info32` magic ("mimg" little-endian).
pub const MODULE_MAGIC: u32 = 0x676D_696D;
/// Module header types of the module area.
pub const OBJ_TYPE_ELF: u32 = 0;
pub const OBJ_TYPE_CONFIG: u32 = 2;
pub const OBJ_TYPE_PREFIX: u32 = 3;

/// `moddep.lst` problems are the same whatever the platform.
const MODULE_FILES: &str = "GRUB modules";

/// `moddep.lst`: `name: dep dep …` per line.
fn parse_moddep(text: &str) -> Result<HashMap<&str, Vec<&str>>, EngineError> {
    let mut deps = HashMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (name, list) = line.split_once(':').ok_or_else(|| {
            invalid_in(MODULE_FILES, format!("moddep.lst: invalid line {line:?}"))
        })?;
        // A later line for the same module wins, as in grub-mkimage.
        deps.insert(name, list.split_whitespace().collect());
    }
    Ok(deps)
}

fn module_name(name: &str) -> Result<&str, EngineError> {
    let base = name.strip_suffix(".mod").unwrap_or(name);
    if base.is_empty() || base.contains(['/', '\0']) || base.chars().any(char::is_whitespace) {
        return Err(EngineError::InvalidInput(format!(
            "invalid GRUB module name {name:?}"
        )));
    }
    Ok(base)
}

/// Modules in the order grub-mkimage embeds them: depth first, each module after its
/// dependencies, a module's dependencies taken from the last one listed to the first.
pub fn resolve_modules(moddep: &str, modules: &[&str]) -> Result<Vec<String>, EngineError> {
    fn add<'a>(
        deps: &HashMap<&'a str, Vec<&'a str>>,
        name: &'a str,
        order: &mut Vec<String>,
        visiting: &mut Vec<&'a str>,
    ) -> Result<(), EngineError> {
        let name = module_name(name)?;
        if order.iter().any(|done| done == name) {
            return Ok(());
        }
        if visiting.contains(&name) {
            return Err(invalid_in(
                MODULE_FILES,
                format!(
                    "moddep.lst: dependency cycle through {}",
                    visiting.join(" → ")
                ),
            ));
        }
        visiting.push(name);
        if let Some(list) = deps.get(name) {
            for dep in list.iter().rev() {
                add(deps, dep, order, visiting)?;
            }
        }
        visiting.pop();
        order.push(name.to_string());
        Ok(())
    }
    let deps = parse_moddep(moddep)?;
    let mut order = Vec::new();
    for module in modules {
        add(&deps, module, &mut order, &mut Vec::new())?;
    }
    Ok(order)
}

/// The module area grub-mkimage appends to the loaded kernel: `grub_module_info32`
/// (`{magic, offset, size}`, 12 bytes) or, for 64-bit targets, `grub_module_info64`
/// (`{magic, padding, offset: u64, size: u64}`, 24 bytes), then each module and the prefix
/// (NUL-terminated) behind an 8-byte `{type, size}` header, each padded to `word` bytes (the
/// target's pointer size). `size` counts the whole area, headers included.
pub(super) fn module_area(
    modules: &[(String, Vec<u8>)],
    config: Option<&str>,
    prefix: &str,
    word: usize,
) -> Result<Vec<u8>, EngineError> {
    let align = |value: usize| value.div_ceil(word) * word;
    let info_size = if word == 8 { 24 } else { 12 };
    let prefix_size = align(prefix.len() + 1);
    let config_size = config.map_or(0, |config| align(config.len() + 1) + 8);
    let total_module_size = info_size
        + modules
            .iter()
            .map(|(_, bytes)| align(bytes.len()) + 8)
            .sum::<usize>()
        + config_size
        + prefix_size
        + 8;
    let mut out = Vec::with_capacity(total_module_size);
    out.extend_from_slice(&MODULE_MAGIC.to_le_bytes());
    if word == 8 {
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(info_size as u64).to_le_bytes());
        out.extend_from_slice(&(total_module_size as u64).to_le_bytes());
    } else {
        out.extend_from_slice(&(info_size as u32).to_le_bytes());
        out.extend_from_slice(&size_u32(total_module_size, "module area")?.to_le_bytes());
    }
    let mut entry = |kind: u32, bytes: &[u8], padded: usize| -> Result<(), EngineError> {
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&size_u32(padded + 8, "module")?.to_le_bytes());
        out.extend_from_slice(bytes);
        out.resize(out.len() + padded - bytes.len(), 0);
        Ok(())
    };
    for (_, bytes) in modules {
        entry(OBJ_TYPE_ELF, bytes, align(bytes.len()))?;
    }
    if let Some(config) = config {
        // NUL-terminated, like the prefix.
        entry(OBJ_TYPE_CONFIG, config.as_bytes(), align(config.len() + 1))?;
    }
    entry(OBJ_TYPE_PREFIX, prefix.as_bytes(), prefix_size)?;
    debug_assert_eq!(out.len(), total_module_size);
    Ok(out)
}

/// `platform_files` names the directory in errors.
pub(super) fn load_modules(
    files: &dyn Fn(&str) -> Option<Vec<u8>>,
    modules: &[&str],
    platform_files: &'static str,
) -> Result<Vec<(String, Vec<u8>)>, EngineError> {
    let moddep = files("moddep.lst").ok_or_else(|| missing_in(platform_files, "moddep.lst"))?;
    let moddep = std::str::from_utf8(&moddep)
        .map_err(|_| invalid_in(platform_files, "moddep.lst is not UTF-8".into()))?;
    let order = resolve_modules(moddep, modules)?;
    let mut loaded = Vec::with_capacity(order.len());
    for name in order {
        let file = format!("{name}.mod");
        let bytes = files(&file)
            .ok_or_else(|| missing_in(platform_files, &format!("GRUB module {name} ({file})")))?;
        loaded.push((name, bytes));
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bios_modules_are_the_common_list_plus_disk_drivers() {
        assert_eq!(&BIOS_MODULES[..COMMON_MODULES.len()], COMMON_MODULES);
        assert_eq!(
            &BIOS_MODULES[COMMON_MODULES.len()..],
            ["biosdisk", "part_msdos"]
        );
    }

    #[test]
    fn iso_lists_extend_the_disk_lists() {
        assert_eq!(ISO_BIOS_MODULES, [BIOS_MODULES, ISO_MODULES].concat());
        assert_eq!(
            ISO_EFI_MODULES,
            [COMMON_MODULES, ISO_EFI_EXTRA_MODULES].concat()
        );
    }

    #[test]
    fn dependencies_resolve_in_grub_mkimage_order() {
        let moddep = "normal: extcmd crypto boot\nextcmd:\ncrypto:\nboot:\nxfs: fshelp\nfshelp:\n";
        assert_eq!(
            resolve_modules(moddep, &["xfs", "normal", "boot.mod", "fshelp"]).unwrap(),
            ["fshelp", "xfs", "boot", "crypto", "extcmd", "normal"]
        );
        assert!(resolve_modules("a: b\nb: a\n", &["a"]).is_err());
        assert!(resolve_modules("no colon\n", &["a"]).is_err());
        assert!(resolve_modules("", &["../x"]).is_err());
    }
}
