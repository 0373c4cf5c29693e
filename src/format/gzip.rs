//! gzip output as concatenated members (RFC 1952 §2.2): payload runs are deflated, holes are
//! copies of one member holding 1 MiB of zeros, made once per process.

use super::Encoder;
use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::{self, Write};
use std::sync::OnceLock;

const ZERO_MEMBER_SPAN: u64 = 1024 * 1024;

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

fn cached_zero_member() -> io::Result<&'static [u8]> {
    static MEMBER: OnceLock<Vec<u8>> = OnceLock::new();
    if let Some(member) = MEMBER.get() {
        return Ok(member);
    }
    let member = zero_member(ZERO_MEMBER_SPAN, 6)?;
    Ok(MEMBER.get_or_init(|| member))
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
            let member = cached_zero_member()?;
            for _ in 0..len / ZERO_MEMBER_SPAN {
                writer.write_all(member)?;
            }
            let tail = len % ZERO_MEMBER_SPAN;
            if tail > 0 {
                writer.write_all(&zero_member(tail, self.level)?)?;
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
