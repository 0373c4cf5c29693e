//! The last step of every disk image: the container a platform wants (raw, qcow2, fixed VHD,
//! OVA, a sparse tar for GCP) and the compression its file name asks for, with the disk
//! identity (VHD unique ID, VMDK content ID) derived from a fixed label so output is
//! reproducible.

use crate::engine::EngineError;
use crate::engine::fs::gpt::guid_from_label;
use crate::format::{self, Compression, SparseImage};
use crate::profile::{DiskFormat, ImageOptions, OutFormat};

/// The label the disk identity of every container derives from.
const DISK_LABEL: &str = "talos-image-disk";

/// qemu-img's default qcow2 cluster: 64 KiB.
const DEFAULT_QCOW2_CLUSTER_BITS: u32 = 16;

/// How a finished layout is wrapped, checked when a request is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Container {
    Raw,
    Qcow2 { cluster_bits: u32 },
    Vhd,
    Ova,
}

/// The container and the compression of one disk image file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Output {
    pub container: Container,
    /// `disk.raw` inside a tar archive (`.raw.tar.gz`).
    pub tarred: bool,
    pub compression: Compression,
}

impl Output {
    /// The output of a disk image profile; unsupported format options are invalid input.
    pub fn of_image(image: &ImageOptions, out_format: OutFormat) -> Result<Output, EngineError> {
        let container = match image.disk_format {
            DiskFormat::Raw => Container::Raw,
            DiskFormat::Qcow2 => Container::Qcow2 {
                cluster_bits: qcow2_cluster_bits(&image.disk_format_options)?,
            },
            DiskFormat::Vhd => Container::Vhd,
            DiskFormat::Ova => Container::Ova,
        };
        Ok(Output {
            container,
            tarred: out_format == OutFormat::TarGz,
            compression: compression_of(out_format),
        })
    }

    /// Wraps `layout` in the container (and the tar archive) of this output.
    pub fn contain(&self, layout: SparseImage, mtime: u32) -> Result<SparseImage, EngineError> {
        let disk_id = guid_from_label(DISK_LABEL);
        let contained = match self.container {
            Container::Raw => layout,
            Container::Qcow2 { cluster_bits } => format::qcow2::qcow2(&layout, cluster_bits)?,
            Container::Vhd => format::vhd::fixed(&layout, disk_id, mtime)?,
            Container::Ova => {
                let content_id =
                    u32::from_be_bytes([disk_id[0], disk_id[1], disk_id[2], disk_id[3]]);
                format::ova::ova(&layout, content_id, mtime)?
            }
        };
        if !self.tarred {
            return Ok(contained);
        }
        let disk = format::tar::Member {
            name: "disk.raw".into(),
            mode: 0o644,
            content: contained,
            sparse: true,
        };
        Ok(format::tar::archive(vec![disk], mtime)?)
    }
}

/// The compression a file name's final suffix asks for.
pub fn compression_of(out_format: OutFormat) -> Compression {
    match out_format {
        OutFormat::Zstd => Compression::Zstd,
        OutFormat::Xz => Compression::Xz,
        OutFormat::Gz | OutFormat::TarGz => Compression::Gzip,
        OutFormat::Raw => Compression::None,
    }
}

/// The cluster size of qemu-img's `cluster_size=<n>[k|M]` option (default 64 KiB).
fn qcow2_cluster_bits(options: &str) -> Result<u32, EngineError> {
    let mut bits = DEFAULT_QCOW2_CLUSTER_BITS;
    for option in options.split(',').filter(|o| !o.is_empty()) {
        let bad = || EngineError::InvalidInput(format!("unsupported qcow2 option {option:?}"));
        let value = option.strip_prefix("cluster_size=").ok_or_else(bad)?;
        let (digits, unit) = match value.strip_suffix(['k', 'K']) {
            Some(digits) => (digits, 1024u64),
            None => match value.strip_suffix('M') {
                Some(digits) => (digits, 1024 * 1024),
                None => (value, 1),
            },
        };
        let size = digits.parse::<u64>().map_err(|_| bad())? * unit;
        if !size.is_power_of_two() || !(512..=2 * 1024 * 1024).contains(&size) {
            return Err(bad());
        }
        bits = size.trailing_zeros();
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qcow2_cluster_options() {
        assert_eq!(qcow2_cluster_bits(""), Ok(16));
        assert_eq!(qcow2_cluster_bits("cluster_size=8k"), Ok(13));
        assert_eq!(qcow2_cluster_bits("cluster_size=2M"), Ok(21));
        assert_eq!(qcow2_cluster_bits("cluster_size=4096"), Ok(12));
        for bad in [
            "cluster_size=3k",
            "cluster_size=4M",
            "cluster_size=256",
            "preallocation=full",
            "cluster_size=k",
        ] {
            assert!(
                matches!(qcow2_cluster_bits(bad), Err(EngineError::InvalidInput(message)) if message.contains(bad)),
                "{bad}"
            );
        }
    }
}
