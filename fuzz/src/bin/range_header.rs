//! AFL entry point of the `range_header` target (see `image_factory_fuzz::targets::range_header`).

fn main() {
    afl::fuzz!(|data: &[u8]| image_factory_fuzz::targets::range_header(data));
}
