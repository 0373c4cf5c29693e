//! Our native depmod against kmod's own `depmod`, on the real Debian kernel modules of the
//! fixture cache: every file it writes must come out byte for byte the same.

use assets_tests::{run, workspace};
use image_factory::engine::initramfs::depmod::{DepmodError, depmod};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The search list Talos configures (`/etc/modules.d/10-extra-modules.conf`).
const TALOS_SEARCH: [&str; 2] = ["extras", "built-in"];

/// Modules of a small but realistic tree: the Talos boot path, plus modules with aliases, a
/// soft dependency and device names.
const SMALL_SET: [&str; 18] = [
    "loop",
    "squashfs",
    "virtio_pci",
    "virtio_blk",
    "ata_piix",
    "ahci",
    "sd_mod",
    "sr_mod",
    "isofs",
    "nvme",
    "fuse",
    "tun",
    "btrfs",
    "ext4",
    "dummy",
    "overlay",
    "xfs",
    "vfat",
];

/// `lib/modules/<release>` of the unpacked Debian kernel package for `arch`.
fn kernel_modules(arch: &str) -> (String, PathBuf) {
    let base = workspace().join(format!("fixtures/.cache/root-{arch}/lib/modules"));
    let releases: Vec<PathBuf> = std::fs::read_dir(&base)
        .unwrap_or_else(|error| {
            panic!(
                "{} is missing ({error}): run `cargo xtask fixtures` to fetch the Debian kernels",
                base.display()
            )
        })
        .map(|entry| entry.expect("readable directory entry").path())
        .collect();
    assert_eq!(
        releases.len(),
        1,
        "expected one kernel release in {}: run `cargo xtask fixtures`",
        base.display()
    );
    let release = releases[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    (release, releases[0].clone())
}

fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap();
    file.split('.').next().unwrap().replace('-', "_")
}

/// The inputs depmod reads besides the modules.
fn with_module_lists(
    dir: &Path,
    order: &[String],
    modules: BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Vec<u8>> {
    let mut tree = modules;
    let order_text: String = order.iter().map(|path| format!("{path}\n")).collect();
    tree.insert("modules.order".into(), order_text.into_bytes());
    for list in ["modules.builtin", "modules.builtin.modinfo"] {
        tree.insert(
            list.into(),
            std::fs::read(dir.join(list)).expect("kernel module list"),
        );
    }
    tree
}

fn read_order(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("modules.order"))
        .expect("modules.order")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The [`SMALL_SET`] modules and everything they depend on (per `modinfo -F depends`), plus
/// `drivers/net/dummy.ko` again as `extras/dummy.ko`.
fn small_tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let order = read_order(dir);
    let by_name: BTreeMap<String, &String> =
        order.iter().map(|path| (module_name(path), path)).collect();
    let mut wanted: Vec<String> = SMALL_SET
        .iter()
        .filter(|name| by_name.contains_key(**name))
        .map(|name| name.to_string())
        .collect();
    assert!(
        wanted.len() >= 15,
        "too few of {SMALL_SET:?} in {}",
        dir.display()
    );
    let mut included = BTreeSet::new();
    while let Some(name) = wanted.pop() {
        if !included.insert(name.clone()) {
            continue;
        }
        let path = dir.join(by_name[&name]);
        let depends = run(Command::new("modinfo").args(["-F", "depends"]).arg(&path));
        wanted.extend(
            depends
                .trim()
                .split(',')
                .filter(|dep| !dep.is_empty())
                .map(|dep| dep.replace('-', "_")),
        );
    }

    let kept: Vec<String> = order
        .iter()
        .filter(|path| included.contains(&module_name(path)))
        .cloned()
        .collect();
    let mut modules: BTreeMap<String, Vec<u8>> = kept
        .iter()
        .map(|path| {
            (
                path.clone(),
                std::fs::read(dir.join(path)).expect("module readable"),
            )
        })
        .collect();
    // As in Talos: the in-tree module stays, listed in modules.order, and the extension's
    // copy in extras/ must win over it.
    let dummy = modules["kernel/drivers/net/dummy.ko"].clone();
    modules.insert("extras/dummy.ko".into(), dummy);
    with_module_lists(dir, &kept, modules)
}

/// Every module under `prefixes` (all if empty), linked rather than copied where possible.
fn large_tree(dir: &Path, prefixes: &[&str], keep_order: bool) -> BTreeMap<String, Vec<u8>> {
    let order = read_order(dir);
    let kept: Vec<String> = order
        .into_iter()
        .filter(|path| {
            prefixes.is_empty() || prefixes.iter().any(|prefix| path.starts_with(prefix))
        })
        .collect();
    let modules = kept
        .iter()
        .map(|path| {
            (
                path.clone(),
                std::fs::read(dir.join(path)).expect("module readable"),
            )
        })
        .collect();
    with_module_lists(dir, if keep_order { &kept } else { &[] }, modules)
}

/// Runs kmod's depmod on `tree` with `search` as its configuration and returns the files it
/// wrote, or its complaint if it failed. Modules that `tree` holds unchanged from
/// `modules_from` are hard-linked from there where possible, to spare writing a whole kernel.
fn real_depmod(
    release: &str,
    tree: &BTreeMap<String, Vec<u8>>,
    search: &[&str],
    modules_from: Option<&Path>,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let root = tempfile::tempdir().expect("temporary directory");
    let dir = root.path().join("lib/modules").join(release);
    for (path, bytes) in tree {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        let linked = path.ends_with(".ko")
            && modules_from
                .is_some_and(|from| std::fs::hard_link(from.join(path), &target).is_ok());
        if !linked {
            std::fs::write(&target, bytes).unwrap();
        }
    }
    let config = root.path().join("depmod.d");
    std::fs::create_dir(&config).unwrap();
    if !search.is_empty() {
        let line = format!("search {}\n", search.join(" "));
        std::fs::write(config.join("10-extra-modules.conf"), line).unwrap();
    }
    let output = Command::new("depmod")
        .arg("-b")
        .arg(root.path())
        .arg("-C")
        .arg(&config)
        .arg(release)
        .output()
        .expect("depmod runs (apt-get install kmod)");
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).to_string());
    }

    let mut written = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if entry.file_type().unwrap().is_file() && !tree.contains_key(&name) {
            written.insert(name, std::fs::read(entry.path()).unwrap());
        }
    }
    Ok(written)
}

/// The first difference between two versions of a file, readably.
fn describe_difference(name: &str, ours: &[u8], theirs: &[u8]) -> String {
    if !name.ends_with(".bin") {
        let ours_lines: Vec<&[u8]> = ours.split(|&b| b == b'\n').collect();
        let theirs_lines: Vec<&[u8]> = theirs.split(|&b| b == b'\n').collect();
        let at = ours_lines
            .iter()
            .zip(&theirs_lines)
            .take_while(|(a, b)| a == b)
            .count();
        let show = |lines: &[&[u8]]| -> String {
            lines[at.saturating_sub(2)..(at + 3).min(lines.len())]
                .iter()
                .map(|line| format!("    {}\n", String::from_utf8_lossy(line)))
                .collect()
        };
        return format!(
            "{name} differs at line {} (ours {} lines, depmod's {}):\n  ours:\n{}  depmod:\n{}",
            at + 1,
            ours_lines.len(),
            theirs_lines.len(),
            show(&ours_lines),
            show(&theirs_lines)
        );
    }
    let at = ours.iter().zip(theirs).take_while(|(a, b)| a == b).count();
    let hex = |bytes: &[u8]| -> String {
        bytes[at.saturating_sub(16)..(at + 32).min(bytes.len())]
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "{name} differs at byte {at} (ours {} bytes, depmod's {}):\n  ours:   {}\n  depmod: {}",
        ours.len(),
        theirs.len(),
        hex(ours),
        hex(theirs)
    )
}

/// Runs both and asserts identical outputs; returns them for further checks.
fn compare(
    label: &str,
    release: &str,
    tree: &BTreeMap<String, Vec<u8>>,
) -> BTreeMap<String, Vec<u8>> {
    compare_with_search(label, release, tree, &TALOS_SEARCH, None)
}

fn compare_with_search(
    label: &str,
    release: &str,
    tree: &BTreeMap<String, Vec<u8>>,
    search: &[&str],
    modules_from: Option<&Path>,
) -> BTreeMap<String, Vec<u8>> {
    let started = Instant::now();
    let theirs = real_depmod(release, tree, search, modules_from)
        .unwrap_or_else(|error| panic!("{label}: depmod failed: {error}"));
    let theirs_took = started.elapsed();
    let started = Instant::now();
    let ours = depmod(release, tree, search).unwrap_or_else(|error| panic!("{label}: {error}"));
    let ours_took = started.elapsed();
    eprintln!(
        "{label}: {} modules, kmod depmod {theirs_took:?} (with setting up its tree), ours {ours_took:?}",
        tree.keys().filter(|path| path.ends_with(".ko")).count()
    );
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{label}: different sets of output files"
    );
    for (name, theirs_bytes) in &theirs {
        let ours_bytes = &ours[name];
        assert!(
            ours_bytes == theirs_bytes,
            "{label}: {}",
            describe_difference(name, ours_bytes, theirs_bytes)
        );
    }
    ours
}

fn text(outputs: &BTreeMap<String, Vec<u8>>, name: &str) -> String {
    String::from_utf8_lossy(&outputs[name]).to_string()
}

fn small_tree_matches(arch: &str) {
    let (release, dir) = kernel_modules(arch);
    let tree = small_tree(&dir);
    let outputs = compare(&format!("{arch} small tree"), &release, &tree);
    // The comparison only means something if the tree exercises every kind of entry.
    let dep = text(&outputs, "modules.dep");
    assert!(
        dep.lines().any(|line| line.starts_with("extras/dummy.ko:")),
        "{dep}"
    );
    assert!(!dep.contains("kernel/drivers/net/dummy.ko"), "{dep}");
    assert!(dep.lines().any(|line| line.split(' ').count() > 3), "{dep}");
    assert!(text(&outputs, "modules.devname").contains("loop loop-control c10:237"));
    assert!(text(&outputs, "modules.softdep").lines().count() > 1);
    assert!(text(&outputs, "modules.alias").lines().count() > 20);
    assert!(text(&outputs, "modules.symbols").lines().count() > 100);
}

#[test]
fn small_tree_matches_kmod_amd64() {
    small_tree_matches("amd64");
}

#[test]
fn small_tree_matches_kmod_arm64() {
    small_tree_matches("arm64");
}

#[test]
fn whole_kernel_matches_kmod() {
    for arch in ["amd64", "arm64"] {
        let (release, dir) = kernel_modules(arch);
        let tree = large_tree(&dir, &[], true);
        let label = format!("{arch} whole tree");
        compare_with_search(&label, &release, &tree, &TALOS_SEARCH, Some(&dir));
    }
}

/// Without modules.order every module is placed by kmod's module-name hash table instead.
#[test]
fn unordered_tree_matches_kmod() {
    let (release, dir) = kernel_modules("amd64");
    let tree = large_tree(&dir, &["kernel/drivers/", "kernel/sound/"], false);
    let label = "amd64 tree without modules.order";
    compare_with_search(label, &release, &tree, &TALOS_SEARCH, Some(&dir));
}

#[test]
fn broken_module_is_named_in_the_error() {
    let (release, dir) = kernel_modules("amd64");
    let mut tree = small_tree(&dir);
    tree.insert("extras/broken.ko".into(), b"not an ELF file".to_vec());
    match depmod(&release, &tree, &TALOS_SEARCH) {
        Err(DepmodError::InvalidModule { path, .. }) => assert_eq!(path, "extras/broken.ko"),
        other => panic!("expected an invalid-module error, got {other:?}"),
    }
    let mut truncated = small_tree(&dir);
    let loop_module = truncated["kernel/drivers/block/loop.ko"].clone();
    truncated.insert(
        "kernel/drivers/block/loop.ko".into(),
        loop_module[..loop_module.len() / 2].to_vec(),
    );
    let error = depmod(&release, &truncated, &TALOS_SEARCH).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("kernel/drivers/block/loop.ko: "),
        "{error}"
    );
}

/// A minimal relocatable ELF64 file holding only what depmod reads, so that corner cases the
/// Debian modules never show can be put to the real tool.
#[derive(Default)]
struct SyntheticModule<'a> {
    modinfo: &'a [&'a str],
    /// Exported the way kernels with symbol versions do it: one `__crc_<name>` symbol each.
    versioned_exports: &'a [&'a str],
    /// The `__ksymtab_strings` section, if any.
    export_strings: Option<&'a [&'a str]>,
    imports: &'a [&'a str],
    weak_imports: &'a [&'a str],
}

impl SyntheticModule<'_> {
    fn build(&self) -> Vec<u8> {
        const SHN_ABS: u16 = 0xfff1;
        let nul_joined = |strings: &[&str]| -> Vec<u8> {
            strings.iter().flat_map(|s| s.bytes().chain([0])).collect()
        };
        let mut names = vec![0u8];
        let mut symbols = vec![0u8; 24];
        let mut add_symbol = |name: &str, binding: u8, section: u16| {
            let offset = names.len() as u32;
            names.extend(name.bytes().chain([0]));
            symbols.extend(offset.to_le_bytes());
            symbols.push(binding << 4);
            symbols.push(0);
            symbols.extend(section.to_le_bytes());
            symbols.extend([0; 16]);
        };
        for export in self.versioned_exports {
            add_symbol(&format!("__crc_{export}"), 1, SHN_ABS);
        }
        for import in self.imports {
            add_symbol(import, 1, 0);
        }
        for import in self.weak_imports {
            add_symbol(import, 2, 0);
        }

        const PROGBITS: u32 = 1;
        const SYMTAB: u32 = 2;
        const STRTAB: u32 = 3;
        let section = |name, kind, contents| SyntheticSection {
            name,
            kind,
            contents,
            link: 0,
            info: 0,
            entry_size: 0,
        };
        let mut sections = vec![section(".modinfo", PROGBITS, nul_joined(self.modinfo))];
        if let Some(strings) = self.export_strings {
            sections.push(section("__ksymtab_strings", PROGBITS, nul_joined(strings)));
        }
        sections.push(SyntheticSection {
            // Section 0 is the null section, .strtab follows .symtab.
            link: sections.len() as u32 + 2,
            info: 1,
            entry_size: 24,
            ..section(".symtab", SYMTAB, symbols)
        });
        sections.push(section(".strtab", STRTAB, names));
        sections.push(section(".shstrtab", STRTAB, Vec::new()));
        let mut section_names = vec![0u8];
        let name_offsets: Vec<u32> = sections
            .iter()
            .map(|section| {
                let offset = section_names.len() as u32;
                section_names.extend(section.name.bytes().chain([0]));
                offset
            })
            .collect();
        if let Some(last) = sections.last_mut() {
            last.contents = section_names;
        }

        let mut out = vec![0u8; 64];
        let mut headers = vec![0u8; 64];
        for (section, name) in sections.iter().zip(name_offsets) {
            out.resize(out.len().next_multiple_of(8), 0);
            let offset = out.len() as u64;
            out.extend(&section.contents);
            headers.extend(name.to_le_bytes());
            headers.extend(section.kind.to_le_bytes());
            headers.extend(0u64.to_le_bytes());
            headers.extend(0u64.to_le_bytes());
            headers.extend(offset.to_le_bytes());
            headers.extend((section.contents.len() as u64).to_le_bytes());
            headers.extend(section.link.to_le_bytes());
            headers.extend(section.info.to_le_bytes());
            headers.extend(8u64.to_le_bytes());
            headers.extend(section.entry_size.to_le_bytes());
        }
        out.resize(out.len().next_multiple_of(8), 0);
        let table_offset = out.len() as u64;
        out.extend(headers);
        let section_count = sections.len() as u16 + 1;
        let header = &mut out[..64];
        header[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        header[16..18].copy_from_slice(&1u16.to_le_bytes()); // relocatable
        header[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86-64
        header[20..24].copy_from_slice(&1u32.to_le_bytes());
        header[40..48].copy_from_slice(&table_offset.to_le_bytes());
        header[52..54].copy_from_slice(&64u16.to_le_bytes());
        header[58..60].copy_from_slice(&64u16.to_le_bytes());
        header[60..62].copy_from_slice(&section_count.to_le_bytes());
        header[62..64].copy_from_slice(&(section_count - 1).to_le_bytes());
        out
    }
}

struct SyntheticSection {
    name: &'static str,
    kind: u32,
    contents: Vec<u8>,
    link: u32,
    info: u32,
    entry_size: u64,
}

const SYNTHETIC_RELEASE: &str = "6.1.0-synthetic";

fn synthetic_tree(
    modules: &[(&str, SyntheticModule)],
    extra_files: &[(&str, &[u8])],
) -> BTreeMap<String, Vec<u8>> {
    let mut tree: BTreeMap<String, Vec<u8>> = modules
        .iter()
        .map(|(path, module)| (path.to_string(), module.build()))
        .collect();
    for (path, bytes) in extra_files {
        tree.insert(path.to_string(), bytes.to_vec());
    }
    tree
}

#[test]
fn symbol_resolution_corner_cases_match_kmod() {
    let tree = synthetic_tree(
        &[
            ("kernel/core.ko", SyntheticModule {
                versioned_exports: &["core_a", "core_b", "shared"],
                // Namespaces share this table; with versions present they are not exports.
                export_strings: Some(&["core_a", "CORE_NS", "core_b", "shared"]),
                modinfo: &["license=GPL", "alias=core-alias"],
                ..Default::default()
            }),
            ("kernel/drivers/strings-only.ko", SyntheticModule {
                export_strings: Some(&["str_x", "", "shared"]),
                imports: &["core_a"],
                ..Default::default()
            }),
            ("kernel/weak_user.ko", SyntheticModule {
                weak_imports: &["str_x"],
                imports: &["core_b", "printk_nowhere"],
                ..Default::default()
            }),
            ("kernel/chain1.ko", SyntheticModule {
                versioned_exports: &["c1"],
                imports: &["str_x", "shared"],
                ..Default::default()
            }),
            ("extras/chain1.ko", SyntheticModule {
                versioned_exports: &["c1", "extra_only"],
                imports: &["core_a"],
                ..Default::default()
            }),
            ("kernel/chain2.ko", SyntheticModule {
                versioned_exports: &["c2"],
                imports: &["c1", "core_a", "str_x", "shared"],
                ..Default::default()
            }),
            ("kernel/top.ko", SyntheticModule {
                imports: &["c2", "c1", "x_new", "u_b"],
                ..Default::default()
            }),
            ("kernel/self.ko", SyntheticModule {
                versioned_exports: &["self_sym", "shared"],
                imports: &["__crc_self_sym"],
                ..Default::default()
            }),
            ("extras/x_new.ko", SyntheticModule { versioned_exports: &["x_new"], ..Default::default() }),
            ("kernel/misc/unlisted_a.ko", SyntheticModule { imports: &["u_b"], ..Default::default() }),
            ("kernel/misc/unlisted-b.ko", SyntheticModule { versioned_exports: &["u_b"], ..Default::default() }),
            ("kernel/nothing.ko", SyntheticModule::default()),
            ("build/ignored.ko", SyntheticModule { versioned_exports: &["core_a"], ..Default::default() }),
            ("kernel/source/ignored.ko", SyntheticModule { versioned_exports: &["c2"], ..Default::default() }),
        ],
        &[
            ("kernel/readme.txt", b"not a module"),
            // Present but empty: header-only indexes, unlike missing ones.
            ("modules.builtin", b""),
            ("modules.builtin.modinfo", b""),
            (
                "modules.order",
                b"kernel/core.ko\nkernel/top.ko\n\nkernel/gone.ko\nkernel/drivers/strings-only.ko\n\
                  kernel/weak_user.ko\nkernel/chain1.ko\nkernel/chain2.ko\nkernel/self.ko\nkernel/nothing.ko\nkernel/core.ko\n",
            ),
        ],
    );
    let outputs = compare("synthetic symbols", SYNTHETIC_RELEASE, &tree);
    let dep = text(&outputs, "modules.dep");
    assert!(dep.contains("extras/chain1.ko:"), "{dep}");
    assert!(!dep.contains("ignored"), "{dep}");
}

#[test]
fn modinfo_and_builtin_corner_cases_match_kmod() {
    let tree = synthetic_tree(
        &[
            (
                "kernel/info.ko",
                SyntheticModule {
                    modinfo: &[
                        "alias=a-b[x-y]c-d",
                        "alias=bad[alias-x",
                        "alias=bad]alias-y",
                        "alias=[a[b]-c",
                        "alias=dup-al",
                        "alias=dup-al",
                        "alias=devname:first",
                        "alias=char-major-1-2",
                        "alias=devname:second",
                        "alias=block-major-3-4",
                        "softdep=pre: foo post: bar",
                        "softdep=",
                        "softdep",
                        "aliasx=nope",
                        "alias",
                        "alias=",
                        "alias=dup_al",
                        "description=first = second",
                    ],
                    ..Default::default()
                },
            ),
            (
                "kernel/info-2.ko",
                SyntheticModule {
                    modinfo: &[
                        "alias=dup-al",
                        "alias=devname:only",
                        "alias=char-major-10-*",
                        "alias=devname:x2",
                        "alias=char-major- 7-+8x",
                    ],
                    ..Default::default()
                },
            ),
            (
                "kernel/blockdev.ko",
                SyntheticModule {
                    modinfo: &[
                        "alias=block-major-7-*",
                        "alias=block-major-259-0",
                        "alias=devname:blk",
                    ],
                    ..Default::default()
                },
            ),
            (
                "kernel/no-devname.ko",
                SyntheticModule {
                    modinfo: &["alias=char-major-5-1", "softdep=post: info"],
                    ..Default::default()
                },
            ),
        ],
        &[
            ("modules.order", b"kernel/info-2.ko\nkernel/info.ko\n"),
            (
                "modules.builtin",
                b"kernel/fs/ext4/ext4.ko\n\nkernel/a/b-c.ko\nkernel/x/y\nkernel/z.ko.xz\nfoo.ko\n\
                  kernel/dupe.ko\nkernel/dupe.ko\n  spaced.ko  \nx/.ko\n#comment.ko\n/abs.ko\n\
                  kernel/mid dle.ko\nkernel/last-no-newline",
            ),
            (
                "modules.builtin.modinfo",
                b"m1.alias=x-y\0m2.alias=x-y\0\0m1.alias=x-y\0m3.alias\0noperiod=3\0.alias=emp\0\
                  m4.alias=\0m5.softdep=pre: a\0m6.aliasx=q\0m7.x.alias=dot\0m8.alias=ab[c\0\
                  foo-bar.alias=fb\0m9.alias=a=b\0m10.alias=unterminated",
            ),
        ],
    );
    let outputs = compare("synthetic modinfo", SYNTHETIC_RELEASE, &tree);
    assert!(text(&outputs, "modules.devname").contains("info first c1:2"));
}

/// Without builtin lists depmod writes empty builtin indexes; without a search list it
/// prefers `updates/` over the kernel's own modules.
#[test]
fn default_search_and_missing_lists_match_kmod() {
    let tree = synthetic_tree(
        &[
            (
                "kernel/core.ko",
                SyntheticModule {
                    versioned_exports: &["old"],
                    ..Default::default()
                },
            ),
            (
                "updates/core.ko",
                SyntheticModule {
                    versioned_exports: &["new"],
                    ..Default::default()
                },
            ),
            (
                "extras/user.ko",
                SyntheticModule {
                    imports: &["new", "old"],
                    ..Default::default()
                },
            ),
        ],
        &[("modules.order", b"kernel/core.ko\n")],
    );
    let outputs = compare_with_search(
        "synthetic default search",
        SYNTHETIC_RELEASE,
        &tree,
        &[],
        None,
    );
    assert!(outputs["modules.builtin.bin"].is_empty());
    assert!(text(&outputs, "modules.dep").contains("extras/user.ko: updates/core.ko"));
}

#[test]
fn dependency_cycles_fail_like_kmod() {
    let ring = synthetic_tree(
        &[
            (
                "kernel/ring-a.ko",
                SyntheticModule {
                    versioned_exports: &["ring_a"],
                    imports: &["ring_b", "base"],
                    ..Default::default()
                },
            ),
            (
                "kernel/base.ko",
                SyntheticModule {
                    versioned_exports: &["base"],
                    ..Default::default()
                },
            ),
            (
                "kernel/ring-b.ko",
                SyntheticModule {
                    versioned_exports: &["ring_b"],
                    imports: &["ring_a"],
                    ..Default::default()
                },
            ),
            (
                "kernel/outside.ko",
                SyntheticModule {
                    imports: &["ring_a"],
                    ..Default::default()
                },
            ),
        ],
        // Listed first, the module the cycle needs is the first one left unplaced.
        &[("modules.order", b"kernel/base.ko\n")],
    );
    // A module needing a symbol it exports itself is a cycle of one for depmod.
    let selfish = synthetic_tree(
        &[(
            "kernel/selfish.ko",
            SyntheticModule {
                versioned_exports: &["mine"],
                imports: &["mine"],
                ..Default::default()
            },
        )],
        &[],
    );
    for (tree, members) in [(ring, vec!["ring_a", "ring_b"]), (selfish, vec!["selfish"])] {
        let theirs = real_depmod(SYNTHETIC_RELEASE, &tree, &TALOS_SEARCH, None);
        assert!(
            theirs
                .as_ref()
                .is_err_and(|error| error.contains("Cycle detected")),
            "{theirs:?}"
        );
        match depmod(SYNTHETIC_RELEASE, &tree, &TALOS_SEARCH) {
            Err(DepmodError::DependencyCycle(cycle)) => {
                assert_eq!(cycle.first(), cycle.last(), "{cycle:?}");
                let mut found = cycle[1..].to_vec();
                found.sort();
                assert_eq!(found, members, "{cycle:?}");
            }
            other => panic!("expected a cycle, got {other:?}"),
        }
    }
}

/// Damaged modules give errors (or, where the damage misses what depmod reads, output);
/// never a panic.
#[test]
fn damaged_modules_never_panic() {
    let (release, dir) = kernel_modules("amd64");
    let original = std::fs::read(dir.join("kernel/drivers/block/loop.ko")).unwrap();
    let section_table = u64::from_le_bytes(original[40..48].try_into().unwrap()) as usize;
    let mut damaged: Vec<Vec<u8>> = (0..original.len())
        .step_by(397)
        .map(|cut| original[..cut].to_vec())
        .collect();
    // Every byte of the ELF header, every third of the section table, a sample of the rest.
    let header_and_table = (0..64).chain((section_table..original.len()).step_by(3));
    for at in header_and_table.chain((64..section_table).step_by(211)) {
        for value in [0x00, 0x80, 0xff] {
            let mut bytes = original.clone();
            bytes[at] = value;
            damaged.push(bytes);
        }
    }
    let mut rejected = 0;
    for bytes in damaged {
        let tree = BTreeMap::from([("kernel/loop.ko".to_string(), bytes)]);
        if let Err(error) = depmod(&release, &tree, &TALOS_SEARCH) {
            assert!(error.to_string().starts_with("kernel/loop.ko: "), "{error}");
            rejected += 1;
        }
    }
    assert!(
        rejected > 100,
        "only {rejected} damaged modules were rejected"
    );
}
