//! AFL entry point of the `config` target (see `image_factory_fuzz::targets::config`).

fn main() {
    afl::fuzz!(|data: &[u8]| image_factory_fuzz::targets::config(data));
}
