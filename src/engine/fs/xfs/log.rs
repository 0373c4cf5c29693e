//! The internal log of a cleanly unmounted filesystem: one record at the head of the log
//! holding a single unmount operation, cycle 1, and zeros after it (cycle 0), which is
//! what the kernel and `xfs_repair` read as "clean, nothing to replay".

use super::encode::{be32, be64};

const RECORD_MAGIC: u32 = 0xfeed_babe;
const BASIC_BLOCK: usize = 512;
/// `sizeof(struct xlog_rec_header)`, the part of the header sector the CRC covers.
const HEADER_CRC_SPAN: usize = 328;
const CYCLE: u32 = 1;
/// Little-endian Linux log format.
const FORMAT_LINUX_LE: u32 = 1;
/// The in-core log buffer size recorded in v2 headers (32 KiB, the default).
const BUFFER_SIZE: u32 = 32 * 1024;
/// Transaction id of the unmount record; any value works, this one says "not the kernel".
const UNMOUNT_TID: u32 = 0xb0c0_d0d0;
const CLIENT_LOG: u8 = 0xaa;
const FLAG_UNMOUNT: u8 = 0x20;
const UNMOUNT_TYPE: u16 = 0x556e;

/// The first record of the log. `log_sector` is the log's sector size: the record covers at
/// least one whole log sector so it can be written atomically.
pub(super) fn clean_record(log_sector: usize, uuid: &[u8; 16]) -> Vec<u8> {
    let total = log_sector.max(2 * BASIC_BLOCK);
    let mut record = vec![0u8; total];
    let data_len = total - BASIC_BLOCK;

    // Data: one operation header and its 8-byte unmount payload.
    let data = &mut record[BASIC_BLOCK..];
    be32(data, 0, UNMOUNT_TID);
    be32(data, 4, 8);
    data[8] = CLIENT_LOG;
    data[9] = FLAG_UNMOUNT;
    // The payload is written in host order by Linux, so it is little-endian on disk.
    data[12..14].copy_from_slice(&UNMOUNT_TYPE.to_le_bytes());

    // Every basic block of the record starts with the cycle number; the words it displaces
    // are kept in the header's cycle data.
    let mut displaced = Vec::with_capacity(data_len / BASIC_BLOCK);
    for block in data.chunks_exact_mut(BASIC_BLOCK) {
        displaced.push([block[0], block[1], block[2], block[3]]);
        block[..4].copy_from_slice(&CYCLE.to_be_bytes());
    }

    let header = &mut record[..BASIC_BLOCK];
    be32(header, 0, RECORD_MAGIC);
    be32(header, 4, CYCLE);
    be32(header, 8, 2); // log version
    be32(header, 12, data_len as u32);
    let lsn = u64::from(CYCLE) << 32; // cycle 1, block 0
    be64(header, 16, lsn);
    be64(header, 24, lsn); // the tail is this record: nothing before it matters
    be32(header, 36, u32::MAX); // no previous record
    be32(header, 40, 1); // one operation
    for (index, word) in displaced.iter().enumerate() {
        header[44 + 4 * index..48 + 4 * index].copy_from_slice(word);
    }
    be32(header, 300, FORMAT_LINUX_LE);
    header[304..320].copy_from_slice(uuid);
    be32(header, 320, BUFFER_SIZE);

    let crc = record_crc(&record);
    record[32..36].copy_from_slice(&crc.to_le_bytes());
    record
}

/// The CRC of a record of at most 32 KiB (one header sector): the header structure with
/// its CRC field zeroed, then the data as written, cycle stamps included.
fn record_crc(record: &[u8]) -> u32 {
    let mut header = [0u8; HEADER_CRC_SPAN];
    header.copy_from_slice(&record[..HEADER_CRC_SPAN]);
    header[32..36].fill(0);
    crc32c::crc32c_append(crc32c::crc32c(&header), &record[BASIC_BLOCK..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_matches_the_mkfs_layout() {
        let uuid = [0x24u8; 16];
        let record = clean_record(512, &uuid);
        assert_eq!(record.len(), 1024);
        // Bytes as mkfs.xfs leaves them (apart from the CRC, which it does not fill in).
        assert_eq!(
            &record[..32],
            &[
                0xfe, 0xed, 0xba, 0xbe, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0,
                0, 0, 0, 1, 0, 0, 0, 0
            ]
        );
        assert_eq!(
            &record[36..48],
            &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0xb0, 0xc0, 0xd0, 0xd0]
        );
        assert_eq!(
            &record[512..528],
            &[0, 0, 0, 1, 0, 0, 0, 8, 0xaa, 0x20, 0, 0, 0x6e, 0x55, 0, 0]
        );
        assert_eq!(&record[304..320], &uuid);
        assert_eq!(
            u32::from_le_bytes(record[32..36].try_into().unwrap()),
            record_crc(&record)
        );
    }

    #[test]
    fn crc_agrees_with_a_record_linux_wrote() {
        // The unmount record Linux 6.18 wrote at block 11 of this writer's log after a
        // read-write mount: cycle 1, lsn 1/11, tail 1/9, previous record at block 9.
        let mut record = vec![0u8; 1024];
        be32(&mut record, 0, RECORD_MAGIC);
        be32(&mut record, 4, 1);
        be32(&mut record, 8, 2);
        be32(&mut record, 12, 512);
        be64(&mut record, 16, (1 << 32) | 11);
        be64(&mut record, 24, (1 << 32) | 9);
        record[32..36].copy_from_slice(&[0xc1, 0xb1, 0x3f, 0x92]);
        be32(&mut record, 36, 9);
        be32(&mut record, 40, 1);
        be32(&mut record, 44, 0x0d1f_9c65);
        be32(&mut record, 300, 1);
        record[304..320].copy_from_slice(&crate::engine::fs::gpt::guid_from_label("BOOT"));
        be32(&mut record, 320, 0x8000);
        record[512..528]
            .copy_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0xaa, 0x20, 0, 0, 0x6e, 0x55, 0, 0]);
        assert_eq!(record_crc(&record), 0x923f_b1c1);
    }

    #[test]
    fn four_kib_log_sectors_fill_the_sector() {
        let record = clean_record(4096, &[0; 16]);
        assert_eq!(record.len(), 4096);
        assert_eq!(&record[12..16], &(4096u32 - 512).to_be_bytes());
        for block in record[512..].chunks(512) {
            assert_eq!(&block[..4], &[0, 0, 0, 1]);
        }
    }
}
