//! AFL entry point of the `elf` target (see `image_factory_fuzz::targets::elf`).

fn main() {
    afl::fuzz!(|data: &[u8]| image_factory_fuzz::targets::elf(data));
}
