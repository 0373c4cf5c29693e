//! Byte-level helpers: XFS stores every multi-byte field big-endian, and every v5 metadata
//! structure carries a CRC32C of itself.

pub(super) fn be16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

pub(super) fn be32(buf: &mut [u8], at: usize, value: u32) {
    buf[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

pub(super) fn be64(buf: &mut [u8], at: usize, value: u64) {
    buf[at..at + 8].copy_from_slice(&value.to_be_bytes());
}

/// Stores the checksum of `buf` at `crc_at`. XFS computes it with the field itself zeroed
/// and stores it little-endian, unlike everything around it.
pub(super) fn seal(buf: &mut [u8], crc_at: usize) {
    buf[crc_at..crc_at + 4].fill(0);
    let crc = crc32c::crc32c(buf);
    buf[crc_at..crc_at + 4].copy_from_slice(&crc.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_is_crc32c_of_the_zeroed_field() {
        // The CRC-32C check value of "123456789" is 0xE3069283.
        let mut buf = *b"1234\xff\xff\xff\xff56789";
        seal(&mut buf, 4);
        let stored = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        let mut zeroed = buf;
        zeroed[4..8].fill(0);
        assert_eq!(stored, crc32c::crc32c(&zeroed));
        let mut again = buf;
        seal(&mut again, 4);
        assert_eq!(again, buf, "sealing is idempotent");
        assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
    }
}
