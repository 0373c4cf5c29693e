//! gzip output as concatenated members (RFC 1952 §2.2): payload runs are deflated, holes are
//! copies of members holding 1 MiB of zeros and, for the rest, power-of-two runs from
//! 512 bytes up, all made once per process.

use super::Encoder;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::{self, Write};
use std::sync::OnceLock;

const ZERO_MEMBER_SPAN: u64 = 1024 * 1024;
const SMALLEST_CACHED: u32 = 9;

enum State<W: Write> {
    Idle(W),
    Member(GzEncoder<W>),
    Gone,
}

pub struct GzipEncoder<W: Write> {
    state: State<W>,
    level: u32,
}

impl<W: Write> std::fmt::Debug for GzipEncoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipEncoder")
            .field("level", &self.level)
            .finish()
    }
}

/// A member holding `len` zeros (no name, no time, like `pigz --no-time`).
fn zero_member(len: u64, level: u32) -> io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::new(level));
    super::write_zeros(&mut encoder, len)?;
    encoder.finish()
}

/// Members of zeros of 512 bytes × 2^k, up to [`ZERO_MEMBER_SPAN`].
fn cached_zero_members() -> io::Result<&'static [Vec<u8>]> {
    static MEMBERS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    if let Some(members) = MEMBERS.get() {
        return Ok(members);
    }
    let members = (SMALLEST_CACHED..=ZERO_MEMBER_SPAN.trailing_zeros())
        .map(|bits| zero_member(1 << bits, 6))
        .collect::<io::Result<Vec<_>>>()?;
    Ok(MEMBERS.get_or_init(|| members))
}

impl<W: Write> GzipEncoder<W> {
    pub fn new(writer: W, level: u32) -> GzipEncoder<W> {
        GzipEncoder {
            state: State::Idle(writer),
            level,
        }
    }

    fn idle(&mut self) -> io::Result<W> {
        match std::mem::replace(&mut self.state, State::Gone) {
            State::Idle(writer) => Ok(writer),
            State::Member(encoder) => encoder.finish(),
            State::Gone => Err(io::Error::other("gzip encoder used after a failure")),
        }
    }
}

impl<W: Write> Encoder for GzipEncoder<W> {
    type Output = W;

    fn data(&mut self, bytes: &[u8], _packed: bool) -> io::Result<()> {
        if let State::Member(encoder) = &mut self.state {
            return encoder.write_all(bytes);
        }
        let writer = self.idle()?;
        let mut encoder = GzEncoder::new(writer, Compression::new(self.level));
        encoder.write_all(bytes)?;
        self.state = State::Member(encoder);
        Ok(())
    }

    fn hole(&mut self, len: u64) -> io::Result<()> {
        let mut writer = self.idle()?;
        let result = (|| {
            let members = cached_zero_members()?;
            let whole = members
                .last()
                .ok_or_else(|| io::Error::other("no zero members"))?;
            for _ in 0..len / ZERO_MEMBER_SPAN {
                writer.write_all(whole)?;
            }
            let tail = len % ZERO_MEMBER_SPAN;
            for (index, member) in members.iter().enumerate() {
                if tail & (1 << (SMALLEST_CACHED as usize + index)) != 0 {
                    writer.write_all(member)?;
                }
            }
            let odd = tail & ((1 << SMALLEST_CACHED) - 1);
            if odd > 0 {
                writer.write_all(&zero_member(odd, self.level)?)?;
            }
            Ok(())
        })();
        self.state = State::Idle(writer);
        result
    }

    fn finish(mut self) -> io::Result<W> {
        self.idle()
    }
}
