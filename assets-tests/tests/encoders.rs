//! The encoders and containers on random sparse images (holes long and short, payload
//! compressible and not, odd sizes), checked by the standard tools: `zstd -t`, `xz -t`,
//! `gzip -t`, then each decoded by its tool and compared with the raw image; qcow2 with
//! `qemu-img check` and `qemu-img compare`.

use assets_tests::run;
use image_factory::format::{self, Compression, SparseImage, WriteSink};
use std::path::Path;
use std::process::Command;

/// xorshift64*: reproducible cases without a dependency.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

fn random_image(random: &mut Random) -> SparseImage {
    let size = (1 << 20) + random.below(40 << 20) + random.below(2) * 511;
    let mut image = SparseImage::new(size);
    for _ in 0..random.below(12) {
        let offset = random.below(size);
        let len = (1 + random.below(300_000)).min(size - offset) as usize;
        let packed = random.below(2) == 0;
        let bytes: Vec<u8> = if packed {
            (0..len).map(|_| random.next() as u8).collect()
        } else {
            let seed = random.next() as u8;
            (0..len).map(|i| seed ^ ((i / 97) as u8)).collect()
        };
        // Overlapping draws are skipped: the writer refuses them by design.
        let _ = if packed {
            image.put_packed(offset, bytes)
        } else {
            image.put(offset, bytes)
        };
    }
    image
}

fn write(image: &SparseImage, compression: Compression, path: &Path) {
    let file = std::fs::File::create(path).unwrap();
    let mut sink = WriteSink(std::io::BufWriter::new(file));
    format::encode(image, compression, &mut sink).unwrap();
    std::io::Write::flush(&mut sink.0).unwrap();
}

#[test]
fn standard_tools_decode_every_encoder_on_random_images() {
    let work = tempfile::tempdir().unwrap();
    let mut random = Random(0x1DEA_F00D_5EED_0001);
    for case in 0..12 {
        let image = random_image(&mut random);
        let raw = work.path().join("image.raw");
        write(&image, Compression::None, &raw);
        assert_eq!(std::fs::metadata(&raw).unwrap().len(), image.size());
        for (compression, tool, suffix) in [
            (Compression::Zstd, "zstd", "zst"),
            (Compression::Xz, "xz", "xz"),
            (Compression::Gzip, "gzip", "gz"),
        ] {
            let packed = work.path().join(format!("image.raw.{suffix}"));
            write(&image, compression, &packed);
            run(Command::new(tool).arg("-t").arg(&packed));
            let decoded = work.path().join("decoded.raw");
            let file = std::fs::File::create(&decoded).unwrap();
            let status = Command::new(tool)
                .arg("-dc")
                .arg(&packed)
                .stdout(file)
                .status()
                .unwrap();
            assert!(status.success(), "case {case}: {tool} -dc failed");
            run(Command::new("cmp").arg(&decoded).arg(&raw));
        }
        let qcow2 = work.path().join("image.qcow2");
        let container = format::qcow2::qcow2(&image, 13).unwrap();
        write(&container, Compression::None, &qcow2);
        run(Command::new("qemu-img")
            .args(["check", "-f", "qcow2"])
            .arg(&qcow2));
        run(Command::new("qemu-img")
            .args(["compare", "-f", "qcow2", "-F", "raw"])
            .arg(&qcow2)
            .arg(&raw));
    }
}
