//! AFL entry point of the `schematic` target (see `image_factory_fuzz::targets::schematic`).

fn main() {
    afl::fuzz!(|data: &[u8]| image_factory_fuzz::targets::schematic(data));
}
