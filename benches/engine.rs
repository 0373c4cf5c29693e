//! Assembly throughput of the engine on the fixture release (`cargo xtask fixtures` first):
//! the initramfs with three extensions, the UKI around it, the ESP (FAT32), the BOOT
//! partition (XFS), the GPT, the hybrid ISO, the whole dual-boot layout, and each container and encoder
//! over that 4.4 GB layout.

use criterion::{Criterion, criterion_group, criterion_main};
use image_factory::engine::boot::{BiosGrub, Bootloader, grub, uki};
use image_factory::engine::fs::fat::{self, FatFile, FatOptions};
use image_factory::engine::fs::gpt;
use image_factory::engine::fs::xfs::{self, XfsFile, XfsOptions};
use image_factory::engine::initramfs::extension::{self, Extension};
use image_factory::engine::initramfs::{self, ExtensionSet};
use image_factory::engine::layout::disk::{self, DiskInputs};
use image_factory::engine::layout::iso::{self, BiosEltorito, IsoBoot, IsoInputs};
use image_factory::format::{self, Compression, Sink};
use image_factory::profile::Arch;
use image_factory::profile::TalosVersion;
use image_factory::source::layout::OciLayout;
use image_factory::source::{ImageRef, Images, Source, Verifier};
use std::hint::black_box;

struct Inputs {
    base: Vec<u8>,
    kernel: Vec<u8>,
    stub: Vec<u8>,
    sd_boot: Vec<u8>,
    boot_img: Vec<u8>,
    core_img: Vec<u8>,
    eltorito: BiosEltorito,
    extensions: Vec<Extension>,
    version: TalosVersion,
}

fn inputs() -> Inputs {
    let release = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/release");
    let images = Images::new(
        Source::Layout(
            OciLayout::open(std::path::Path::new(release))
                .expect("run `cargo xtask fixtures` first"),
        ),
        Verifier::Disabled,
    );
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let imager = images
            .pull(
                &ImageRef::with_tag("ghcr.io", "siderolabs/imager", "v1.12.0"),
                "amd64",
            )
            .await
            .expect("imager");
        let mut extensions = Vec::new();
        for name in ["amd-ucode", "gvisor", "realtek-firmware"] {
            let image = ImageRef::parse(&format!(
                "ghcr.io/siderolabs/{name}:{}-v1.12.0",
                match name {
                    "gvisor" => "20250505.0",
                    _ => "20250509",
                }
            ))
            .expect("reference");
            let pulled = images.pull(&image, "amd64").await.expect("extension");
            extensions.push(extension::checkout(name, &pulled.tree).expect("checkout"));
        }
        let file = |path: &str| imager.tree.file(path).expect(path).to_vec();
        let grub_file = |name: &str| {
            imager
                .tree
                .file(&format!("usr/lib/grub/i386-pc/{name}"))
                .map(<[u8]>::to_vec)
        };
        Inputs {
            base: file("usr/install/amd64/initramfs.xz"),
            kernel: file("usr/install/amd64/vmlinuz"),
            stub: file("usr/install/amd64/systemd-stub.efi"),
            sd_boot: file("usr/install/amd64/systemd-boot.efi"),
            boot_img: file("usr/lib/grub/i386-pc/boot.img"),
            core_img: grub::bios_core_image(&grub_file, grub::PREFIX, grub::BIOS_MODULES)
                .expect("core.img"),
            eltorito: BiosEltorito {
                eltorito_img: grub::eltorito_image(
                    &grub_file,
                    grub::ISO_PREFIX,
                    &[grub::BIOS_MODULES, grub::ISO_MODULES].concat(),
                    None,
                )
                .expect("eltorito.img"),
                boot_hybrid_img: file("usr/lib/grub/i386-pc/boot_hybrid.img"),
            },
            extensions,
            version: TalosVersion::new(semver::Version::new(1, 12, 0)),
        }
    })
}

fn engine(c: &mut Criterion) {
    let inputs = inputs();
    let set = ExtensionSet {
        extensions: inputs.extensions.clone(),
        modules_dep: None,
    };
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    group.bench_function("initramfs/3-extensions", |b| {
        b.iter(|| initramfs::build(black_box(&inputs.base), &inputs.version, &set).expect("builds"))
    });
    let initrd = initramfs::build(&inputs.base, &inputs.version, &set).expect("builds");
    group.bench_function("uki/assemble", |b| {
        b.iter(|| {
            uki::assemble(
                black_box(&inputs.stub),
                &[
                    uki::Section {
                        name: ".osrel",
                        data: uki::os_release("v1.12.0").into_bytes(),
                    },
                    uki::Section {
                        name: ".cmdline",
                        data: b"talos.platform=metal".to_vec(),
                    },
                    uki::Section {
                        name: ".splash",
                        data: uki::splash(),
                    },
                    uki::Section {
                        name: ".linux",
                        data: inputs.kernel.clone(),
                    },
                    uki::Section {
                        name: ".initrd",
                        data: initrd.clone(),
                    },
                ],
            )
            .expect("assembles")
        })
    });
    group.finish();
}

/// Bytes an encoder produces, without keeping them.
struct Discard(u64);

impl Sink for Discard {
    fn data(&mut self, bytes: &[u8], _packed: bool) -> std::io::Result<()> {
        self.0 += bytes.len() as u64;
        Ok(())
    }

    fn zeros(&mut self, len: u64) -> std::io::Result<()> {
        self.0 += len;
        Ok(())
    }
}

fn disk(c: &mut Criterion) {
    let inputs = inputs();
    let set = ExtensionSet {
        extensions: inputs.extensions.clone(),
        modules_dep: None,
    };
    let initrd = initramfs::build(&inputs.base, &inputs.version, &set).expect("builds");
    let cmdline = "talos.platform=metal console=ttyS0";
    let sections = uki::talos_sections(
        &inputs.version,
        cmdline,
        inputs.kernel.clone(),
        initrd.clone(),
        Some(uki::RESET_MAINTENANCE),
    );
    let uki_bytes = uki::assemble(&inputs.stub, &sections).expect("assembles");
    let disk_inputs = DiskInputs {
        arch: Arch::Amd64,
        version: inputs.version.clone(),
        bootloader: Bootloader::DualBoot,
        disk_size: disk::disk_size(1246 << 20, Bootloader::DualBoot, &inputs.version),
        sector_size: 512,
        sd_boot: inputs.sd_boot.clone().into(),
        uki: uki_bytes.clone().into(),
        kernel: inputs.kernel.clone().into(),
        initramfs: initrd.clone().into(),
        cmdline: cmdline.into(),
        grub_efi: Default::default(),
        bios: Some(BiosGrub {
            boot_img: inputs.boot_img.clone(),
            core_img: inputs.core_img.clone(),
        }),
        meta: Vec::new(),
        enrollment: None,
        mtime: 0,
        overlay: None,
    };
    let mut group = c.benchmark_group("disk");
    group.sample_size(10);
    group.bench_function("esp/fat32-2101MiB", |b| {
        let files = [
            FatFile {
                path: "EFI/boot/BOOTX64.efi".into(),
                bytes: inputs.sd_boot.clone().into(),
                packed: false,
                read_only: false,
            },
            FatFile {
                path: "EFI/Linux/Talos-v1.12.0.efi".into(),
                bytes: uki_bytes.clone().into(),
                packed: true,
                read_only: false,
            },
        ];
        let options = FatOptions {
            size: 2101 << 20,
            sector_size: 512,
            label: "EFI".into(),
            volume_id: fat::INVARIANT_VOLUME_ID,
            mtime: 0,
        };
        b.iter(|| fat::build(black_box(&options), &files).expect("fat"))
    });
    group.bench_function("boot/xfs-2000MiB", |b| {
        let files = [
            XfsFile {
                path: "A/vmlinuz".into(),
                bytes: inputs.kernel.clone().into(),
                mode: 0o644,
                packed: true,
            },
            XfsFile {
                path: "A/initramfs.xz".into(),
                bytes: initrd.clone().into(),
                mode: 0o644,
                packed: true,
            },
        ];
        let options = XfsOptions {
            size: 2000 << 20,
            sector_size: 512,
            label: "BOOT".into(),
            uuid: gpt::guid_from_label("BOOT"),
            mtime: 0,
        };
        b.iter(|| xfs::build(black_box(&options), &[], &files).expect("xfs"))
    });
    group.bench_function("gpt/write", |b| {
        let partitions = [gpt::Partition {
            name: "EFI",
            type_guid: gpt::ESP_TYPE,
            first_lba: 2048,
            last_lba: 4_304_895,
            attributes: 0,
        }];
        b.iter(|| gpt::write(512, black_box(4_453_302_272), &partitions))
    });
    let iso_inputs = IsoInputs {
        arch: Arch::Amd64,
        version: inputs.version.clone(),
        boot: IsoBoot::Hybrid,
        kernel: inputs.kernel.clone().into(),
        initramfs: initrd.clone().into(),
        cmdline: cmdline.into(),
        sd_boot: inputs.sd_boot.clone().into(),
        uki: uki_bytes.clone().into(),
        grub_efi: Default::default(),
        bios: Some(inputs.eltorito.clone()),
        enrollment: None,
        mtime: 0,
    };
    group.bench_function("layout/iso-hybrid", |b| {
        b.iter(|| iso::build(black_box(&iso_inputs)).expect("iso"))
    });
    group.bench_function("layout/dual-boot", |b| {
        b.iter(|| disk::build(black_box(&disk_inputs)).expect("layout"))
    });
    let layout = disk::build(&disk_inputs).expect("layout");
    for (name, compression) in [
        ("encode/raw", Compression::None),
        ("encode/zstd-18", Compression::Zstd),
        ("encode/xz-0", Compression::Xz),
        ("encode/gzip-6", Compression::Gzip),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut sink = Discard(0);
                format::encode(black_box(&layout), compression, &mut sink).expect("encodes");
                sink.0
            })
        });
    }
    group.bench_function("container/qcow2-8k", |b| {
        b.iter(|| format::qcow2::qcow2(black_box(&layout), 13).expect("qcow2"))
    });
    group.bench_function("container/vmdk-stream", |b| {
        b.iter(|| format::vmdk::stream_optimized(black_box(&layout), 1).expect("vmdk"))
    });
    group.finish();
}

criterion_group!(benches, engine, disk);
criterion_main!(benches);
