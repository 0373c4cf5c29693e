//! The targets: each takes arbitrary bytes, feeds them to one parser the factory exposes to
//! users, registries or release inputs, and checks the invariants that are cheap to check.
//! A target panics (and AFL records a crash) when the parser panics or an invariant breaks;
//! an input the parser refuses cleanly is not a finding.

mod binaries;
mod containers;
mod text;

pub use binaries::{elf, pe};
pub use containers::{cpio, oci_manifest, squashfs, tar_layer};
pub use text::{asset_path, config, range_header, registry_path, schematic};

use std::path::PathBuf;

/// A target: bytes in, a panic when the parser or an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target by name: the name is the AFL binary, and the directory under
/// `fuzz/corpus/` and `fuzz/regressions/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("schematic", schematic),
    ("asset_path", asset_path),
    ("config", config),
    ("oci_manifest", oci_manifest),
    ("tar_layer", tar_layer),
    ("cpio", cpio),
    ("squashfs", squashfs),
    ("elf", elf),
    ("pe", pe),
    ("registry_path", registry_path),
    ("range_header", range_header),
];

/// The directory a target that must go through files (the configuration loader, the OCI
/// layout reader) writes its input into. `cargo xtask fuzz` names one per fuzzer; otherwise
/// it is per process. Each target uses its own names inside, so replay tests running side by
/// side do not collide.
fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("IMAGE_FACTORY_FUZZ_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("image-factory-fuzz-{}", std::process::id()))
        });
    let path = base.join(name);
    if let Err(error) = std::fs::create_dir_all(&path) {
        panic!(
            "cannot create the scratch directory {}: {error}",
            path.display()
        );
    }
    path
}
