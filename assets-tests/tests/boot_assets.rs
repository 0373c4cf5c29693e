//! Boot assets served over HTTP and checked with tools we did not write: the kernel,
//! initramfs and command line boot in QEMU under SeaBIOS, the UKI boots under OVMF, the
//! initramfs layout reads with cpio and unsquashfs, the UKI with objdump and pefile.

use assets_tests::{
    TestFactory, boot_kernel, boot_uefi_disk, esp_with_loader, expect_fixture_boot, fixture_lines,
    run,
};
use image_factory::schematic::VANILLA_ID;
use std::process::Command;

const VERSION: &str = "v1.12.0";

/// Two extensions (one with a kernel module), extra args (the serial console first: from
/// 1.8 Talos drops `console=ttyS0` on metal) and META.
const SCHEMATIC: &str = "customization:
  extraKernelArgs:
    - console=ttyS0
    - fixture.marker=42
  meta:
    - key: 0xa
      value: '{\"externalIPs\":[\"1.2.3.4\"]}'
    - key: 0xc
      value: fixture-meta
  systemExtensions:
    officialExtensions:
      - siderolabs/gvisor
      - siderolabs/dummy-driver
";

async fn download(
    factory: &TestFactory,
    id: &str,
    path: &str,
) -> (reqwest::header::HeaderMap, Vec<u8>) {
    let response = reqwest::get(format!("{}/image/{id}/{VERSION}/{path}", factory.base))
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap().to_vec();
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    (headers, body)
}

fn expect_boot(lines: &[String], id: &str, extensions: &[&str], meta: bool) {
    let meta_lines: &[&str] = if meta {
        &[
            "FIXTURE-META 0xa={\"externalIPs\":[\"1.2.3.4\"]}",
            "FIXTURE-META 0xc=fixture-meta",
        ]
    } else {
        &[]
    };
    expect_fixture_boot(
        lines,
        VERSION,
        id,
        " fixture.marker=42",
        extensions,
        meta_lines,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kernel_initramfs_and_cmdline_boot_under_seabios() {
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SCHEMATIC).await;
    let work = tempfile::tempdir().unwrap();
    let (_, kernel) = download(&factory, &id, "kernel-amd64").await;
    let (headers, initramfs) = download(&factory, &id, "initramfs-amd64.xz").await;
    assert_eq!(headers["content-type"], "application/x-xz");
    let (_, cmdline) = download(&factory, &id, "cmdline-metal-amd64").await;
    let cmdline = String::from_utf8(cmdline).unwrap();
    assert!(
        cmdline.contains("talos.environment=INSTALLER_META_BASE64="),
        "{cmdline}"
    );
    std::fs::write(work.path().join("kernel"), kernel).unwrap();
    std::fs::write(work.path().join("initramfs"), &initramfs).unwrap();
    let log = boot_kernel(
        &work.path().join("kernel"),
        &work.path().join("initramfs"),
        &cmdline,
    );
    expect_boot(
        &fixture_lines(&log),
        &id,
        &["gvisor", "dummy-driver", "modules.dep"],
        true,
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn uki_boots_under_ovmf_and_reads_as_a_pe() {
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SCHEMATIC).await;
    let work = tempfile::tempdir().unwrap();
    let (headers, uki) = download(&factory, &id, "metal-amd64-uki.efi").await;
    assert_eq!(headers["content-type"], "application/efi");
    let path = work.path().join("uki.efi");
    std::fs::write(&path, &uki).unwrap();

    let sections = [
        ".osrel", ".cmdline", ".uname", ".splash", ".linux", ".initrd", ".profile",
    ];
    let objdump = run(Command::new("objdump").arg("-h").arg(&path));
    for section in sections {
        assert!(
            objdump.contains(section),
            "objdump lists {section}:\n{objdump}"
        );
    }
    let pefile = run(Command::new("/usr/bin/python3").args([
        "-c",
        "import pefile,sys; pe=pefile.PE(sys.argv[1]); print('\\n'.join(s.Name.rstrip(b'\\0').decode() for s in pe.sections))",
    ]).arg(&path));
    for section in sections {
        assert!(
            pefile.lines().any(|line| line == section),
            "pefile lists {section}:\n{pefile}"
        );
    }

    let esp = esp_with_loader(&path, work.path());
    let log = boot_uefi_disk(&esp, work.path());
    // A UKI never carries META on its command line (upstream leaves it out).
    expect_boot(
        &fixture_lines(&log),
        &id,
        &["gvisor", "dummy-driver", "modules.dep"],
        false,
    );
}

/// Splits `[early cpio][base][compressed cpio]` using the release's base initramfs.
async fn split_initramfs(factory: &TestFactory, initramfs: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let imager = factory.imager(VERSION).await;
    let base = imager.file("usr/install/amd64/initramfs.xz").unwrap();
    let at = initramfs
        .windows(base.len())
        .position(|window| window == base)
        .expect("the base initramfs is included unchanged");
    (
        initramfs[..at].to_vec(),
        initramfs[at + base.len()..].to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn initramfs_layout_reads_with_cpio_and_unsquashfs() {
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(
        "customization:\n  systemExtensions:\n    officialExtensions: [siderolabs/amd-ucode, siderolabs/gvisor, siderolabs/realtek-firmware]\n",
    )
    .await;
    let (_, initramfs) = download(&factory, &id, "initramfs-amd64.xz").await;
    let (early, tail) = split_initramfs(&factory, &initramfs).await;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(dir.join("early.cpio"), &early).unwrap();
    let listing = run(Command::new("sh")
        .arg("-c")
        .arg("cpio -itv < early.cpio")
        .current_dir(dir));
    assert!(
        listing.contains("kernel/x86/microcode/AuthenticAMD.bin"),
        "{listing}"
    );

    std::fs::write(dir.join("tail.zst"), &tail).unwrap();
    run(Command::new("zstd")
        .args(["-t", "-q"])
        .arg(dir.join("tail.zst")));
    run(Command::new("zstd")
        .args(["-d", "-q", "-o"])
        .arg(dir.join("tail.cpio"))
        .arg(dir.join("tail.zst")));
    let listing = run(Command::new("sh")
        .arg("-c")
        .arg("cpio -itv < tail.cpio")
        .current_dir(dir));
    for member in [
        "0.sqsh",
        "1.sqsh",
        "2.sqsh",
        "3.sqsh",
        "extensions.yaml",
        "usr/lib/firmware/rtl_nic/rtl8125b-2.fw",
    ] {
        assert!(listing.contains(member), "{member} in:\n{listing}");
    }
    assert!(
        !listing.contains("amd-ucode/microcode_amd"),
        "microcode moved out:\n{listing}"
    );
    run(Command::new("sh")
        .arg("-c")
        .arg("cpio -id --quiet < tail.cpio")
        .current_dir(dir));
    for index in 0..4 {
        let image = dir.join(format!("{index}.sqsh"));
        let files = run(Command::new("unsquashfs").arg("-lls").arg(&image));
        assert!(files.contains("squashfs-root"), "{files}");
    }
    let gvisor = run(Command::new("unsquashfs")
        .arg("-lls")
        .arg(dir.join("1.sqsh")));
    assert!(
        gvisor.contains("squashfs-root/usr/local/bin/runsc"),
        "{gvisor}"
    );
    assert!(gvisor.contains("root/root"), "all-root: {gvisor}");
    let schematic = run(Command::new("unsquashfs")
        .arg("-lls")
        .arg(dir.join("3.sqsh")));
    assert!(
        schematic.contains(&format!("usr/local/share/schematic/{id}")),
        "{schematic}"
    );
    let yaml = std::fs::read_to_string(dir.join("extensions.yaml")).unwrap();
    assert!(yaml.starts_with("layers:\n    - image: 0.sqsh\n"), "{yaml}");
    assert!(yaml.contains("extraInfo: |\n"), "{yaml}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ipxe_script_matches_the_template() {
    let factory = TestFactory::start(|config| {
        config.http.external_pxe_url = "http://pxe.test:8080/".into();
    })
    .await;
    factory.create_schematic("{}").await;
    let (_, cmdline) = download(&factory, VANILLA_ID, "cmdline-metal-amd64").await;
    let cmdline = String::from_utf8(cmdline).unwrap();
    assert_eq!(
        cmdline,
        "talos.platform=metal console=tty0 init_on_alloc=1 slab_nomerge pti=on consoleblank=0 nvme_core.io_timeout=4294967295 printk.devkmsg=on selinux=1 module.sig_enforce=1"
    );
    for arch in ["amd64", "x86_64"] {
        let script = reqwest::get(format!(
            "{}/pxe/{VANILLA_ID}/{VERSION}/metal-{arch}",
            factory.base
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
        assert_eq!(
            script,
            format!(
                "#!ipxe\n\nimgfree\nkernel http://pxe.test:8080/image/{VANILLA_ID}/{VERSION}/kernel-amd64 {cmdline}\ninitrd http://pxe.test:8080/image/{VANILLA_ID}/{VERSION}/initramfs-amd64.xz\nboot\n"
            )
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_cold_requests_run_one_build() {
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SCHEMATIC).await;
    let before = factory.factory.builds.started();
    let url = format!("{}/image/{id}/{VERSION}/initramfs-amd64.xz", factory.base);
    let requests = (0..32).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { reqwest::get(url).await.unwrap().bytes().await.unwrap() })
    });
    let bodies: Vec<_> = futures_join(requests).await;
    assert_eq!(
        factory.factory.builds.started() - before,
        1,
        "one build for 32 requests"
    );
    assert!(
        bodies
            .iter()
            .all(|body| body == &bodies[0] && !body.is_empty())
    );
}

async fn futures_join<T>(handles: impl Iterator<Item = tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for handle in handles.collect::<Vec<_>>() {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuilding_gives_identical_bytes() {
    let factory = TestFactory::start(|_| {}).await;
    let id = factory.create_schematic(SCHEMATIC).await;
    let mut first = Vec::new();
    for path in ["initramfs-amd64.xz", "metal-amd64-uki.efi"] {
        first.push(download(&factory, &id, path).await.1);
    }
    factory.factory.builds.cache.clear().unwrap();
    let before = factory.factory.builds.started();
    for (index, path) in ["initramfs-amd64.xz", "metal-amd64-uki.efi"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            download(&factory, &id, path).await.1,
            first[index],
            "{path} is reproducible"
        );
    }
    assert!(
        factory.factory.builds.started() > before,
        "the cache was really cleared"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn image_route_statuses_and_headers() {
    let factory = TestFactory::start(|_| {}).await;
    factory.create_schematic("{}").await;
    let client = reqwest::Client::new();
    let get = |path: String| {
        let client = client.clone();
        async move { client.get(path).send().await.unwrap() }
    };
    let base = &factory.base;

    let response = get(format!("{base}/image/aaaaaaaaaaaa/v1.5.0/metal-amd64.iso")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.text().await.unwrap(),
        "schematic ID \"aaaaaaaaaaaa\" not found\n"
    );
    let response = get(format!("{base}/image/{VANILLA_ID}/v1.5.0/metal-amd64.ssd")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.text().await.unwrap(),
        "error parsing profile from path: invalid profile path: \"metal-amd64.ssd\"\n"
    );
    let response = get(format!("{base}/image/{VANILLA_ID}/1.x/kernel-amd64")).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("1.x"));
    let response = get(format!("{base}/image/{VANILLA_ID}/v1.10.0/kernel-amd64")).await;
    assert_eq!(
        (response.status().as_u16(), response.text().await.unwrap()),
        (404, "version 1.10.0 is not available\n".to_string())
    );
    // Checksums in `sha256sum` format, checked by coreutils against the asset itself.
    let checksums = tempfile::tempdir().unwrap();
    let kernel = get(format!("{base}/image/{VANILLA_ID}/{VERSION}/kernel-amd64"))
        .await
        .bytes()
        .await
        .unwrap();
    std::fs::write(checksums.path().join("kernel-amd64"), &kernel).unwrap();
    for (suffix, tool) in [("sha256", "sha256sum"), ("sha512", "sha512sum")] {
        let response = get(format!(
            "{base}/image/{VANILLA_ID}/{VERSION}/kernel-amd64.{suffix}"
        ))
        .await;
        assert_eq!(response.status(), 200);
        let line = response.text().await.unwrap();
        assert!(line.ends_with("  kernel-amd64\n"), "{line}");
        std::fs::write(checksums.path().join(suffix), &line).unwrap();
        let checked = assets_tests::run(
            std::process::Command::new(tool)
                .args(["-c", suffix])
                .current_dir(checksums.path()),
        );
        assert!(checked.contains("kernel-amd64: OK"), "{checked}");
    }
    let response = get(format!(
        "{base}/image/{VANILLA_ID}/{VERSION}/kernel-amd64.sigstore.json"
    ))
    .await;
    assert_eq!(response.status(), 402);
    let response = get(format!(
        "{base}/image/{VANILLA_ID}/{VERSION}/initramfs-amd64.xz?x=1"
    ))
    .await;
    assert_eq!(response.status(), 200);
    let id = factory.create_schematic(
        "customization:\n  systemExtensions:\n    officialExtensions: [siderolabs/nonexistent]\n",
    )
    .await;
    let response = get(format!("{base}/image/{id}/{VERSION}/initramfs-amd64.xz")).await;
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.text().await.unwrap(),
        format!(
            "official extension \"siderolabs/nonexistent\" is not available for Talos version {VERSION}\n"
        )
    );

    let response = get(format!(
        "{base}/image/{VANILLA_ID}/{VERSION}/kernel-amd64?filename=vmlinuz"
    ))
    .await;
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"vmlinuz\""
    );
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    let size: u64 = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let kernel = response.bytes().await.unwrap();
    assert_eq!(kernel.len() as u64, size);
    assert_eq!(&kernel[0x202..0x206], b"HdrS", "a bzImage");

    let response = client
        .head(format!("{base}/image/{VANILLA_ID}/{VERSION}/kernel-amd64"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-length"],
        size.to_string().as_str()
    );

    let response = client
        .get(format!("{base}/image/{VANILLA_ID}/{VERSION}/kernel-amd64"))
        .header("Range", "bytes=512-1023")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 206);
    assert_eq!(
        response.headers()["content-range"],
        format!("bytes 512-1023/{size}").as_str()
    );
    assert_eq!(response.bytes().await.unwrap(), kernel.slice(512..1024));

    // Several ranges are not served as parts: the whole body, 200.
    for (range, status) in [
        ("bytes=0-1,5-9", 200),
        ("bytes=9-1", 200),
        ("bytes=-0", 416),
        ("bytes=999999999999-", 416),
    ] {
        let response = client
            .get(format!("{base}/image/{VANILLA_ID}/{VERSION}/kernel-amd64"))
            .header("Range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{range}");
        if status == 200 {
            assert_eq!(response.bytes().await.unwrap(), kernel, "{range}");
        }
    }

    // A download name cannot inject headers or break out of its quotes.
    let response = get(format!(
        "{base}/image/{VANILLA_ID}/{VERSION}/cmdline-metal-amd64?filename=a%0d%0aSet-Cookie:%20x=1"
    ))
    .await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("set-cookie").is_none());
    let message = response.text().await.unwrap();
    assert!(
        message.contains("invalid filename") && message.contains("Set-Cookie"),
        "{message}"
    );
    let response = get(format!(
        "{base}/image/{VANILLA_ID}/{VERSION}/cmdline-metal-amd64?filename=a%22%3B%20b"
    ))
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"a\\\"; b\""
    );
}
