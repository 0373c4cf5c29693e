//! AFL entry point of the `cpio` target (see `image_factory_fuzz::targets::cpio`).

fn main() {
    afl::fuzz!(|data: &[u8]| image_factory_fuzz::targets::cpio(data));
}
