//! zstd output as a sequence of standard frames: payload runs go through libzstd, holes
//! become frames of RLE blocks (4 bytes per 128 KiB of zeros) that cost nothing to make.

use super::Encoder;
use std::io::{self, Write};

/// Level for payload that is already compressed: a deep search finds nothing in it.
const PACKED_LEVEL: i32 = 3;
const BLOCK: u64 = 128 * 1024;

enum State<W: Write> {
    Idle(W),
    Frame(zstd::stream::write::Encoder<'static, W>, bool),
    Gone,
}

pub struct ZstdEncoder<W: Write> {
    state: State<W>,
    level: i32,
}

impl<W: Write> std::fmt::Debug for ZstdEncoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdEncoder")
            .field("level", &self.level)
            .finish()
    }
}

fn gone() -> io::Error {
    io::Error::other("zstd encoder used after a failure")
}

impl<W: Write> ZstdEncoder<W> {
    /// Payload runs are compressed at `level` (upstream uses 18).
    pub fn new(writer: W, level: i32) -> ZstdEncoder<W> {
        ZstdEncoder {
            state: State::Idle(writer),
            level,
        }
    }

    fn idle(&mut self) -> io::Result<W> {
        match std::mem::replace(&mut self.state, State::Gone) {
            State::Idle(writer) => Ok(writer),
            State::Frame(encoder, _) => encoder.finish(),
            State::Gone => Err(gone()),
        }
    }
}

/// A frame holding `len` zeros as RLE blocks, with a 128 KiB window.
pub fn zero_frame(len: u64) -> Vec<u8> {
    let blocks = len.div_ceil(BLOCK).max(1);
    let mut frame = Vec::with_capacity(14 + blocks as usize * 4);
    frame.extend_from_slice(&0xFD2F_B528u32.to_le_bytes());
    frame.push(0xC0); // 8-byte content size, no checksum, not single-segment
    frame.push(7 << 3); // window 1 << (10 + 7)
    frame.extend_from_slice(&len.to_le_bytes());
    let mut left = len;
    loop {
        let size = left.min(BLOCK);
        left -= size;
        let last = u32::from(left == 0);
        let header = last | (1 << 1) | ((size as u32) << 3);
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
        frame.push(0);
        if left == 0 {
            break;
        }
    }
    frame
}

impl<W: Write> Encoder for ZstdEncoder<W> {
    type Output = W;

    fn data(&mut self, bytes: &[u8], packed: bool) -> io::Result<()> {
        if let State::Frame(encoder, current) = &mut self.state
            && *current == packed
        {
            return encoder.write_all(bytes);
        }
        let writer = self.idle()?;
        let level = if packed { PACKED_LEVEL } else { self.level };
        let mut encoder = zstd::stream::write::Encoder::new(writer, level)?;
        encoder.write_all(bytes)?;
        self.state = State::Frame(encoder, packed);
        Ok(())
    }

    fn hole(&mut self, len: u64) -> io::Result<()> {
        let mut writer = self.idle()?;
        let result = writer.write_all(&zero_frame(len));
        self.state = State::Idle(writer);
        result
    }

    fn finish(mut self) -> io::Result<W> {
        self.idle()
    }
}
