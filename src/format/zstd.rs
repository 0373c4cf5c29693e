//! zstd output as a sequence of standard frames: payload runs are compressed by libzstd in
//! frames of at most 8 MiB (reusing one context per level, since setting up a level-18
//! context costs more than compressing a small run), holes become frames of RLE blocks
//! (4 bytes per 128 KiB of zeros) that cost nothing to make.

use super::Encoder;
use std::io::{self, Write};

/// Level for payload that is already compressed: a deep search finds nothing in it.
const PACKED_LEVEL: i32 = 3;
const BLOCK: u64 = 128 * 1024;
const MAX_FRAME: usize = 8 << 20;

pub struct ZstdEncoder<W: Write> {
    writer: W,
    pending: Vec<u8>,
    pending_packed: bool,
    level: i32,
    deep: zstd::bulk::Compressor<'static>,
    fast: zstd::bulk::Compressor<'static>,
}

impl<W: Write> std::fmt::Debug for ZstdEncoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZstdEncoder")
            .field("level", &self.level)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl<W: Write> ZstdEncoder<W> {
    /// Payload runs are compressed at `level` (upstream uses 18).
    pub fn new(writer: W, level: i32) -> io::Result<ZstdEncoder<W>> {
        Ok(ZstdEncoder {
            writer,
            pending: Vec::new(),
            pending_packed: false,
            level,
            deep: zstd::bulk::Compressor::new(level)?,
            fast: zstd::bulk::Compressor::new(PACKED_LEVEL)?,
        })
    }

    /// Writes the pending run as one frame.
    fn flush_run(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let compressor = if self.pending_packed {
            &mut self.fast
        } else {
            &mut self.deep
        };
        let frame = compressor.compress(&self.pending)?;
        self.writer.write_all(&frame)?;
        self.pending.clear();
        Ok(())
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

    fn data(&mut self, mut bytes: &[u8], packed: bool) -> io::Result<()> {
        if packed != self.pending_packed {
            self.flush_run()?;
            self.pending_packed = packed;
        }
        while !bytes.is_empty() {
            let room = MAX_FRAME - self.pending.len();
            let step = bytes.len().min(room);
            self.pending.extend_from_slice(&bytes[..step]);
            bytes = &bytes[step..];
            if self.pending.len() == MAX_FRAME {
                self.flush_run()?;
            }
        }
        Ok(())
    }

    fn hole(&mut self, len: u64) -> io::Result<()> {
        self.flush_run()?;
        self.writer.write_all(&zero_frame(len))
    }

    fn finish(mut self) -> io::Result<W> {
        self.flush_run()?;
        self.writer.flush()?;
        Ok(self.writer)
    }
}
