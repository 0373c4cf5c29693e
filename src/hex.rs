//! Lowercase hexadecimal text of bytes, as digests, GUIDs and IDs are written.

use sha2::{Digest, Sha256};
use std::fmt::Write;

/// `bytes` as lowercase hex, two characters per byte.
pub fn encode(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        // Writing into a String cannot fail.
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// The OCI digest of `bytes`: `sha256:` and the hex SHA-256.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", encode(&Sha256::digest(bytes)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn lowercase_two_digits_per_byte() {
        assert_eq!(super::encode(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(super::encode(&[]), "");
    }

    #[test]
    fn digest_of_nothing() {
        assert_eq!(
            super::sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
