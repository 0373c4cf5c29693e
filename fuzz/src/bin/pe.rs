//! AFL entry point of the `pe` target (see `image_factory_fuzz::targets::pe`).

fn main() {
    afl::fuzz!(|data: &[u8]| image_factory_fuzz::targets::pe(data));
}
