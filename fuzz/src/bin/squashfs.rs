//! AFL entry point of the `squashfs` target (see `image_factory_fuzz::targets::squashfs`).

fn main() {
    afl::fuzz!(|data: &[u8]| image_factory_fuzz::targets::squashfs(data));
}
