//! The GPT writer checked by sgdisk: the sd-boot layout of a 1.12 metal image.

use assets_tests::run;
use image_factory::engine::fs::gpt::{self, Partition};
use std::io::{Seek, SeekFrom, Write};
use std::process::Command;

#[test]
fn sgdisk_accepts_the_table_and_reads_the_layout() {
    for sector in [512u64, 4096] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.raw");
        let size = 2_355_101_696u64;
        let mib = 1024 * 1024 / sector;
        let partitions = [
            Partition {
                name: "EFI",
                type_guid: gpt::ESP_TYPE,
                first_lba: mib,
                last_lba: mib + 2101 * mib - 1,
                attributes: 0,
            },
            Partition {
                name: "META",
                type_guid: gpt::LINUX_DATA_TYPE,
                first_lba: mib + 2101 * mib,
                last_lba: mib + 2102 * mib - 1,
                attributes: 0,
            },
        ];
        let mut file = std::fs::File::create(&path).unwrap();
        file.set_len(size).unwrap();
        for (offset, bytes) in gpt::write(sector, size, &partitions) {
            file.seek(SeekFrom::Start(offset)).unwrap();
            file.write_all(&bytes).unwrap();
        }
        drop(file);
        if sector == 4096 {
            // sgdisk assumes 512-byte sectors for image files; fdisk can be told.
            let listing = run(Command::new("fdisk").args(["-l", "-b", "4096"]).arg(&path));
            assert!(listing.contains("Disklabel type: gpt"), "{listing}");
            assert!(
                listing.contains("EFI System") && listing.contains("Linux filesystem"),
                "{listing}"
            );
            assert!(!listing.to_lowercase().contains("corrupt"), "{listing}");
            continue;
        }
        let verify = run(Command::new("sgdisk").arg("-v").arg(&path));
        assert!(verify.contains("No problems found"), "{verify}");
        let print = run(Command::new("sgdisk").arg("-p").arg(&path));
        {
            // The worked example of the layout: EFI 2048–4304895, META 4304896–4306943.
            assert!(
                print.contains("   1            2048         4304895"),
                "{print}"
            );
            assert!(
                print.contains("   2         4304896         4306943"),
                "{print}"
            );
        }
        assert!(print.contains("EFI") && print.contains("META"), "{print}");
        assert!(
            print.contains(&format!("Sector size (logical): {sector} bytes")),
            "{print}"
        );
        let info = run(Command::new("sgdisk").arg("-i").arg("1").arg(&path));
        assert!(
            info.to_lowercase()
                .contains("bca5174b-0118-8a6a-af0b-2c6e1585acae"),
            "{info}"
        );
        let disk = run(Command::new("sgdisk").arg("-p").arg(&path));
        assert!(
            disk.to_lowercase()
                .contains("d92d45b3-cde9-8760-be9f-a2a71fac8d11"),
            "{disk}"
        );
    }
}
