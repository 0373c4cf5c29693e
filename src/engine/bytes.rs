//! Little-endian fields of the binary headers the engine reads and patches (PE, GRUB images):
//! reads are bounds-checked and say `None` past the end; writes go into buffers the caller
//! sized for them.

pub fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    let field = bytes.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(field.try_into().ok()?))
}

pub fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let field = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(field.try_into().ok()?))
}

pub fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    let field = bytes.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(field.try_into().ok()?))
}

// The caller sized `bytes` for the field, or checked the length of the file it patches.
#[allow(clippy::indexing_slicing)]
pub fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

// The caller sized `bytes` for the field, or checked the length of the file it patches.
#[allow(clippy::indexing_slicing)]
pub fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

// The caller sized `bytes` for the field, or checked the length of the file it patches.
#[allow(clippy::indexing_slicing)]
pub fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stop_at_the_end() {
        let mut buffer = [0u8; 8];
        put_u32(&mut buffer, 4, 0x0403_0201);
        assert_eq!(le_u32(&buffer, 4), Some(0x0403_0201));
        assert_eq!(le_u16(&buffer, 4), Some(0x0201));
        assert_eq!(le_u32(&buffer, 5), None);
        assert_eq!(le_u64(&buffer, usize::MAX), None);
    }
}
