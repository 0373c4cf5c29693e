//! Whole images: which boot pieces go where on which file systems. A disk image (GPT with ESP,
//! BIOS boot, BOOT and META partitions), a hybrid ISO, and the installer image; then the
//! output step that wraps a disk image in its platform's container.

pub mod disk;
pub mod installer;
pub mod iso;
pub mod output;
