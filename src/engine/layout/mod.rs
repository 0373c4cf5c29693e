//! Whole images: which boot pieces go where on which file systems. A disk image (GPT with ESP,
//! BIOS boot, BOOT and META partitions), a hybrid ISO, and the installer image.

pub mod disk;
pub mod installer;
pub mod iso;
