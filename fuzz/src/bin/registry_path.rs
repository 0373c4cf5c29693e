//! AFL entry point of the `registry_path` target (see `image_factory_fuzz::targets::registry_path`).

fn main() {
    afl::fuzz!(|data: &[u8]| image_factory_fuzz::targets::registry_path(data));
}
