//! AFL entry point of the `tar_layer` target (see `image_factory_fuzz::targets::tar_layer`).

fn main() {
    afl::fuzz!(|data: &[u8]| image_factory_fuzz::targets::tar_layer(data));
}
