//! AFL entry point of the `oci_manifest` target (see `image_factory_fuzz::targets::oci_manifest`).

fn main() {
    afl::fuzz!(|data: &[u8]| image_factory_fuzz::targets::oci_manifest(data));
}
