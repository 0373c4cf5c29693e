//! xz output (CRC32 check, LZMA2) with a hand-written container: payload runs are blocks
//! compressed by liblzma (already-compressed payload goes in stored LZMA2 chunks), holes are
//! blocks made of one precomputed LZMA2 chunk repeated, their CRC32 combined
//! arithmetically. One standard stream that `xz -d` reads.

use super::{Counting, Encoder};
use liblzma::stream::{Action, Filters, LzmaOptions, Status, Stream};
use std::io::{self, Write};
use std::sync::OnceLock;

const LZMA2_FILTER: u8 = 0x21;
const CHECK_CRC32: u8 = 0x01;
const STORED_CHUNK: usize = 64 * 1024;

/// LZMA2 chunk control bits (the low five hold the size's high bits): reset of state,
/// properties and dictionary; reset of state and properties only.
const CONTROL_RESET_ALL: u8 = 0xE0;
const CONTROL_RESET_STATE: u8 = 0xC0;

fn options(preset: u32) -> io::Result<LzmaOptions> {
    LzmaOptions::new_preset(preset).map_err(io::Error::other)
}

fn raw_encoder(preset: u32) -> io::Result<Stream> {
    let mut filters = Filters::new();
    filters.lzma2(&options(preset)?);
    Stream::new_raw_encoder(&filters).map_err(io::Error::other)
}

/// The LZMA2 dictionary-size property byte for the smallest size ≥ `size`.
fn dict_property(size: u32) -> u8 {
    (0u8..40)
        .find(|bits| {
            let dict = (2u64 | u64::from(bits & 1)) << (bits / 2 + 11);
            dict >= u64::from(size)
        })
        .unwrap_or(40)
}

/// Compresses `len` zeros as raw LZMA2 (ending with the 0x00 end marker).
fn raw_zeros(len: usize, preset: u32) -> io::Result<Vec<u8>> {
    let mut stream = raw_encoder(preset)?;
    let input = vec![0u8; len];
    let mut output = Vec::with_capacity(len / 64 + 1024);
    let mut consumed = 0usize;
    loop {
        if output.capacity() - output.len() < 4096 {
            output.reserve(64 * 1024);
        }
        let before = stream.total_in();
        let status = stream
            .process_vec(&input[consumed..], &mut output, Action::Finish)
            .map_err(io::Error::other)?;
        consumed += (stream.total_in() - before) as usize;
        if status == Status::StreamEnd {
            return Ok(output);
        }
    }
}

/// LZMA2 chunks (`control`, header+payload bytes, uncompressed size) of raw LZMA2 data.
fn chunks(data: &[u8]) -> Option<Vec<(usize, usize)>> {
    let mut at = 0usize;
    let mut out = Vec::new();
    loop {
        let control = *data.get(at)?;
        if control == 0 {
            return Some(out);
        }
        let length = if control >= 0x80 {
            let unpacked = ((usize::from(control & 0x1F) << 16)
                | (usize::from(*data.get(at + 1)?) << 8)
                | usize::from(*data.get(at + 2)?))
                + 1;
            let packed =
                ((usize::from(*data.get(at + 3)?) << 8) | usize::from(*data.get(at + 4)?)) + 1;
            let header = if control >= 0xC0 { 6 } else { 5 };
            out.push((at, unpacked));
            header + packed
        } else {
            let unpacked =
                ((usize::from(*data.get(at + 1)?) << 8) | usize::from(*data.get(at + 2)?)) + 1;
            out.push((at, unpacked));
            3 + unpacked
        };
        at += length;
    }
}

/// One LZMA2 chunk that decodes to `span` zeros on its own (state reset, no reference
/// before its start), so a hole is that chunk repeated.
#[derive(Debug)]
struct ZeroChunk {
    bytes: Vec<u8>,
    span: u64,
}

fn zero_chunk(preset: u32) -> io::Result<&'static ZeroChunk> {
    static CHUNK: OnceLock<ZeroChunk> = OnceLock::new();
    if let Some(chunk) = CHUNK.get() {
        return Ok(chunk);
    }
    // liblzma closes a chunk a little before 2 MiB; encoding exactly the first chunk's
    // length again yields a single chunk of that length.
    let probe = raw_zeros(2 * 1024 * 1024, preset)?;
    let first = chunks(&probe)
        .and_then(|list| list.first().copied())
        .ok_or_else(|| io::Error::other("liblzma produced no LZMA2 chunk"))?;
    let span = first.1;
    let single = raw_zeros(span, preset)?;
    match chunks(&single).as_deref() {
        Some([(0, unpacked)]) if *unpacked == span && single[0] & 0xE0 == CONTROL_RESET_ALL => {
            let bytes = single[..single.len() - 1].to_vec();
            Ok(CHUNK.get_or_init(|| ZeroChunk {
                bytes,
                span: span as u64,
            }))
        }
        _ => Err(io::Error::other(
            "liblzma did not encode zeros as one self-contained LZMA2 chunk",
        )),
    }
}

/// CRC32 of `len` zero bytes in O(log len), by doubling.
pub fn crc32_of_zeros(len: u64) -> u32 {
    let mut result = crc32fast::Hasher::new();
    let mut power = crc32fast::Hasher::new();
    power.update(&[0]);
    let mut remaining = len;
    while remaining > 0 {
        if remaining & 1 == 1 {
            result.combine(&power);
        }
        let copy = power.clone();
        power.combine(&copy);
        remaining >>= 1;
    }
    result.finalize()
}

enum Block<W: Write> {
    Compressed(liblzma::write::XzEncoder<Counting<W>>),
    Stored(Counting<W>, bool),
}

struct OpenBlock<W: Write> {
    block: Block<W>,
    start: u64,
    crc: crc32fast::Hasher,
    uncompressed: u64,
    packed: bool,
}

enum State<W: Write> {
    Idle(Counting<W>),
    Open(OpenBlock<W>),
    Gone,
}

pub struct XzEncoder<W: Write> {
    state: State<W>,
    preset: u32,
    /// (unpadded size, uncompressed size) per block, for the index.
    records: Vec<(u64, u64)>,
}

impl<W: Write> std::fmt::Debug for XzEncoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XzEncoder")
            .field("preset", &self.preset)
            .field("blocks", &self.records.len())
            .finish()
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

impl<W: Write> XzEncoder<W> {
    /// `preset` as in `xz -<preset>` (upstream uses 0).
    pub fn new(mut writer: W, preset: u32) -> io::Result<XzEncoder<W>> {
        let flags = [0u8, CHECK_CRC32];
        let mut header = vec![0xFD, b'7', b'z', b'X', b'Z', 0x00];
        header.extend_from_slice(&flags);
        header.extend_from_slice(&crc32fast::hash(&flags).to_le_bytes());
        writer.write_all(&header)?;
        let mut counting = Counting::new(writer);
        counting.written = header.len() as u64;
        Ok(XzEncoder {
            state: State::Idle(counting),
            preset,
            records: Vec::new(),
        })
    }

    fn block_header(&self) -> Vec<u8> {
        let mut header = vec![
            0u8,
            0x00,
            LZMA2_FILTER,
            0x01,
            dict_property(dictionary_size(self.preset)),
        ];
        while (header.len() + 4) % 4 != 0 {
            header.push(0);
        }
        header[0] = ((header.len() + 4) / 4 - 1) as u8;
        let crc = crc32fast::hash(&header);
        header.extend_from_slice(&crc.to_le_bytes());
        header
    }

    fn open(&mut self, mut writer: Counting<W>, packed: bool) -> io::Result<OpenBlock<W>> {
        let start = writer.written;
        writer.write_all(&self.block_header())?;
        let block = if packed {
            Block::Stored(writer, true)
        } else {
            Block::Compressed(liblzma::write::XzEncoder::new_stream(
                writer,
                raw_encoder(self.preset)?,
            ))
        };
        Ok(OpenBlock {
            block,
            start,
            crc: crc32fast::Hasher::new(),
            uncompressed: 0,
            packed,
        })
    }

    /// Ends the LZMA2 data of a block, pads it and appends the check.
    fn close(&mut self, open: OpenBlock<W>) -> io::Result<Counting<W>> {
        let mut writer = match open.block {
            Block::Compressed(encoder) => encoder.finish()?,
            Block::Stored(mut writer, _) => {
                writer.write_all(&[0])?;
                writer
            }
        };
        self.end_block(
            &mut writer,
            open.start,
            open.uncompressed,
            open.crc.finalize(),
        )?;
        Ok(writer)
    }

    fn end_block(
        &mut self,
        writer: &mut Counting<W>,
        start: u64,
        uncompressed: u64,
        crc: u32,
    ) -> io::Result<()> {
        let unpadded_without_check = writer.written - start;
        let padding = (4 - unpadded_without_check % 4) % 4;
        writer.write_all(&[0u8; 3][..padding as usize])?;
        writer.write_all(&crc.to_le_bytes())?;
        self.records
            .push((unpadded_without_check + 4, uncompressed));
        Ok(())
    }

    fn idle(&mut self) -> io::Result<Counting<W>> {
        match std::mem::replace(&mut self.state, State::Gone) {
            State::Idle(writer) => Ok(writer),
            State::Open(open) => self.close(open),
            State::Gone => Err(io::Error::other("xz encoder used after a failure")),
        }
    }
}

fn dictionary_size(preset: u32) -> u32 {
    // liblzma's presets: 0 → 256 KiB, 1 → 1 MiB, 2 → 2 MiB, 3–5 → 4/8 MiB, 6 → 8 MiB, …
    match preset & 0x1F {
        0 => 256 << 10,
        1 => 1 << 20,
        2 => 2 << 20,
        3 | 4 => 4 << 20,
        5 | 6 => 8 << 20,
        7 => 16 << 20,
        8 => 32 << 20,
        _ => 64 << 20,
    }
}

impl<W: Write> Encoder for XzEncoder<W> {
    type Output = W;

    fn data(&mut self, bytes: &[u8], packed: bool) -> io::Result<()> {
        let mut open = match std::mem::replace(&mut self.state, State::Gone) {
            State::Open(open) if open.packed == packed => open,
            State::Open(open) => {
                let writer = self.close(open)?;
                self.open(writer, packed)?
            }
            State::Idle(writer) => self.open(writer, packed)?,
            State::Gone => return Err(io::Error::other("xz encoder used after a failure")),
        };
        open.crc.update(bytes);
        open.uncompressed += bytes.len() as u64;
        match &mut open.block {
            Block::Compressed(encoder) => encoder.write_all(bytes)?,
            Block::Stored(writer, first) => {
                let mut first_chunk = *first;
                for piece in bytes.chunks(STORED_CHUNK) {
                    let control = if first_chunk { 0x01 } else { 0x02 };
                    first_chunk = false;
                    writer.write_all(&[control])?;
                    writer.write_all(&((piece.len() - 1) as u16).to_be_bytes())?;
                    writer.write_all(piece)?;
                }
                *first = first_chunk;
            }
        }
        self.state = State::Open(open);
        Ok(())
    }

    fn hole(&mut self, len: u64) -> io::Result<()> {
        let mut writer = self.idle()?;
        let chunk = zero_chunk(self.preset)?;
        let start = writer.written;
        writer.write_all(&self.block_header())?;
        let repeats = len / chunk.span;
        let tail = (len % chunk.span) as usize;
        let mut control = CONTROL_RESET_ALL;
        let mut piece = chunk.bytes.clone();
        for _ in 0..repeats {
            piece[0] = control | (chunk.bytes[0] & 0x1F);
            writer.write_all(&piece)?;
            control = CONTROL_RESET_STATE;
        }
        if tail > 0 {
            let mut encoded = raw_zeros(tail, self.preset)?;
            encoded.pop();
            if encoded
                .first()
                .is_some_and(|c| c & 0xE0 == CONTROL_RESET_ALL)
            {
                encoded[0] = control | (encoded[0] & 0x1F);
            }
            writer.write_all(&encoded)?;
        }
        writer.write_all(&[0])?;
        self.end_block(&mut writer, start, len, crc32_of_zeros(len))?;
        self.state = State::Idle(writer);
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        let mut writer = self.idle()?;
        let mut index = vec![0u8];
        put_varint(&mut index, self.records.len() as u64);
        for (unpadded, uncompressed) in &self.records {
            put_varint(&mut index, *unpadded);
            put_varint(&mut index, *uncompressed);
        }
        while index.len() % 4 != 0 {
            index.push(0);
        }
        let crc = crc32fast::hash(&index);
        index.extend_from_slice(&crc.to_le_bytes());
        writer.write_all(&index)?;
        let mut footer_body = Vec::new();
        footer_body.extend_from_slice(&((index.len() / 4 - 1) as u32).to_le_bytes());
        footer_body.extend_from_slice(&[0, CHECK_CRC32]);
        writer.write_all(&crc32fast::hash(&footer_body).to_le_bytes())?;
        writer.write_all(&footer_body)?;
        writer.write_all(b"YZ")?;
        writer.flush()?;
        Ok(writer.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_zeros_matches_hashing_them() {
        for len in [0u64, 1, 2, 3, 7, 1000, 65_536, 1_000_003] {
            assert_eq!(
                crc32_of_zeros(len),
                crc32fast::hash(&vec![0u8; len as usize]),
                "{len}"
            );
        }
    }

    #[test]
    fn dictionary_property_of_the_presets() {
        assert_eq!(dict_property(256 << 10), 12);
        assert_eq!(dict_property(8 << 20), 22);
        assert_eq!(dict_property(3 << 20), 19);
    }
}
