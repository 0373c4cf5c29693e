//! AFL entry point of the `asset_path` target (see `image_factory_fuzz::targets::asset_path`).

fn main() {
    afl::fuzz!(|data: &[u8]| image_factory_fuzz::targets::asset_path(data));
}
