//! Assembly throughput of the boot-asset engine on the fixture release (`cargo xtask
//! fixtures` first): the initramfs with three extensions, and the UKI around it.

use criterion::{Criterion, criterion_group, criterion_main};
use image_factory::engine::extension::{self, Extension};
use image_factory::engine::initramfs::{self, ExtensionSet};
use image_factory::engine::uki;
use image_factory::profile::TalosVersion;
use image_factory::source::layout::OciLayout;
use image_factory::source::{ImageRef, Images, Source, Verifier};
use std::hint::black_box;

struct Inputs {
    base: Vec<u8>,
    kernel: Vec<u8>,
    stub: Vec<u8>,
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
        Inputs {
            base: file("usr/install/amd64/initramfs.xz"),
            kernel: file("usr/install/amd64/vmlinuz"),
            stub: file("usr/install/amd64/systemd-stub.efi"),
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

criterion_group!(benches, engine);
criterion_main!(benches);
