//! Pre-built Secure Boot enrollment databases (`PK.auth`, `KEK.auth`, `db.auth`) that an
//! operator supplies instead of the generated ones, and the layout check they pass at
//! start-up: an `EFI_VARIABLE_AUTHENTICATION_2` header (EFI_TIME, `WIN_CERTIFICATE_UEFI_GUID`
//! with a PKCS#7 certificate type) followed by signature lists that fill the rest exactly.
//!
//! The check is about shape, not trust: the signature is the firmware's to verify, against
//! keys the factory does not know. It catches a truncated file, a `.esl` given for an `.auth`,
//! or a header firmware refuses before it reads the signature.

/// `EFI_CERT_TYPE_PKCS7_GUID` (`4aafd29d-68df-49ee-8aa9-347d375665a7`) in EFI byte order.
pub const EFI_CERT_TYPE_PKCS7: [u8; 16] = [
    0x9d, 0xd2, 0xaf, 0x4a, 0xdf, 0x68, 0xee, 0x49, 0x8a, 0xa9, 0x34, 0x7d, 0x37, 0x56, 0x65, 0xa7,
];
/// `WIN_CERT_REVISION_2_0`.
pub const WIN_CERT_REVISION: u16 = 0x0200;
/// `WIN_CERT_TYPE_EFI_GUID`.
pub const WIN_CERT_TYPE_EFI_GUID: u16 = 0x0EF1;
/// `EFI_TIME`.
pub const EFI_TIME_LEN: usize = 16;
/// `WIN_CERTIFICATE` (length, revision, type) and the `CertType` GUID.
pub const WIN_CERTIFICATE_UEFI_GUID_LEN: usize = 24;
/// `EFI_SIGNATURE_LIST` without its signature header and signatures.
pub const SIGNATURE_LIST_HEADER_LEN: usize = 28;
/// `EFI_SIGNATURE_DATA`'s `SignatureOwner`.
const OWNER_LEN: usize = 16;

/// The three databases as read, each checked by [`check_authenticated_write`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrebuiltDatabases {
    pub pk: Vec<u8>,
    pub kek: Vec<u8>,
    pub db: Vec<u8>,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<usize> {
    let value = u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
    usize::try_from(value).ok()
}

/// Whether `bytes` is a time-based authenticated write of a signature database; the error
/// says what is wrong, with the offset where it matters.
pub fn check_authenticated_write(bytes: &[u8]) -> Result<(), String> {
    let header = EFI_TIME_LEN + WIN_CERTIFICATE_UEFI_GUID_LEN;
    if bytes.len() < header {
        return Err(format!(
            "{} bytes, shorter than an EFI_VARIABLE_AUTHENTICATION_2 header ({header})",
            bytes.len()
        ));
    }
    let too_short = || "the header is truncated".to_string();
    // EDK2 refuses a time-based write whose EFI_TIME has any of these set.
    let time_tail = bytes.get(7..EFI_TIME_LEN).ok_or_else(too_short)?;
    if time_tail.iter().any(|&b| b != 0) {
        return Err("EFI_TIME has a nonzero pad, nanosecond, time zone or daylight field".into());
    }
    let cert_len = u32_at(bytes, EFI_TIME_LEN).ok_or_else(too_short)?;
    let revision = u16_at(bytes, EFI_TIME_LEN + 4).ok_or_else(too_short)?;
    let cert_type = u16_at(bytes, EFI_TIME_LEN + 6).ok_or_else(too_short)?;
    if revision != WIN_CERT_REVISION || cert_type != WIN_CERT_TYPE_EFI_GUID {
        return Err(format!(
            "WIN_CERTIFICATE revision {revision:#06x} type {cert_type:#06x}, not \
             {WIN_CERT_REVISION:#06x} {WIN_CERT_TYPE_EFI_GUID:#06x} (WIN_CERT_TYPE_EFI_GUID)"
        ));
    }
    if bytes.get(EFI_TIME_LEN + 8..header) != Some(EFI_CERT_TYPE_PKCS7.as_slice()) {
        return Err("the certificate type is not EFI_CERT_TYPE_PKCS7_GUID".into());
    }
    let data_at = EFI_TIME_LEN
        .checked_add(cert_len)
        .filter(|&end| cert_len > WIN_CERTIFICATE_UEFI_GUID_LEN && end <= bytes.len())
        .ok_or_else(|| {
            format!(
                "WIN_CERTIFICATE length {cert_len} does not fit the file ({} bytes)",
                bytes.len()
            )
        })?;
    check_signature_lists(bytes.get(data_at..).ok_or_else(too_short)?)
        .map_err(|reason| format!("signature list data at offset {data_at}: {reason}"))
}

/// Whether `data` is one or more `EFI_SIGNATURE_LIST`s, each with whole signatures, that end
/// exactly where `data` ends.
pub fn check_signature_lists(data: &[u8]) -> Result<(), String> {
    if data.is_empty() {
        return Err("no signature list (an empty write deletes the variable)".into());
    }
    let mut at = 0;
    while at < data.len() {
        let field = |offset: usize| {
            u32_at(data, at + offset).ok_or_else(|| format!("list at {at} is truncated"))
        };
        let list_size = field(16)?;
        let header_size = field(20)?;
        let signature_size = field(24)?;
        let signatures = list_size
            .checked_sub(SIGNATURE_LIST_HEADER_LEN)
            .and_then(|rest| rest.checked_sub(header_size))
            .ok_or_else(|| format!("list at {at}: size {list_size} is smaller than its headers"))?;
        if signature_size <= OWNER_LEN || signatures == 0 || signatures % signature_size != 0 {
            return Err(format!(
                "list at {at}: {signatures} bytes of signatures of {signature_size} bytes each"
            ));
        }
        at = at
            .checked_add(list_size)
            .filter(|&end| end <= data.len())
            .ok_or_else(|| format!("list at {at}: size {list_size} runs past the end"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(signature_size: u32, count: u32) -> Vec<u8> {
        let mut out = vec![0xA5; 16];
        out.extend_from_slice(&(28 + signature_size * count).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&signature_size.to_le_bytes());
        out.resize(out.len() + (signature_size * count) as usize, 7);
        out
    }

    fn write(signature: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = vec![0xE3, 0x07, 6, 1, 21, 34, 52, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        out.extend_from_slice(&(24 + signature.len() as u32).to_le_bytes());
        out.extend_from_slice(&WIN_CERT_REVISION.to_le_bytes());
        out.extend_from_slice(&WIN_CERT_TYPE_EFI_GUID.to_le_bytes());
        out.extend_from_slice(&EFI_CERT_TYPE_PKCS7);
        out.extend_from_slice(signature);
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn well_formed_writes_pass() {
        let data = [list(100, 1), list(50, 2)].concat();
        check_authenticated_write(&write(&[0x30; 40], &data)).unwrap();
    }

    #[test]
    fn broken_writes_say_why() {
        let good = write(&[0x30; 40], &list(100, 1));
        let reason = |bytes: &[u8]| check_authenticated_write(bytes).unwrap_err();
        assert!(reason(&good[..30]).contains("shorter than"));
        assert!(reason(&good[..good.len() - 1]).contains("runs past the end"));
        assert!(reason(&write(&[0x30; 40], &[])).contains("no signature list"));
        let mut time = good.clone();
        time[12] = 1;
        assert!(reason(&time).contains("time zone"));
        let mut kind = good.clone();
        kind[22] = 2;
        assert!(reason(&kind).contains("WIN_CERT_TYPE_EFI_GUID"));
        let mut guid = good.clone();
        guid[30] ^= 1;
        assert!(reason(&guid).contains("EFI_CERT_TYPE_PKCS7_GUID"));
        let mut length = good.clone();
        length[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(reason(&length).contains("does not fit"));
        // An .esl given where an .auth belongs.
        assert!(reason(&[list(100, 1), list(100, 1)].concat()).contains("nonzero"));
        let mut partial = list(100, 1);
        partial[24..28].copy_from_slice(&30u32.to_le_bytes());
        assert!(reason(&write(&[0x30; 40], &partial)).contains("of 30 bytes each"));
    }
}
