//! Container formats and encoders over sparse images. A disk layout is a [`SparseImage`];
//! a container (raw, qcow2, VHD, OVA, tar) writes it in output order into a [`Sink`], and an
//! encoder (zstd, xz, gzip) is itself a sink that turns hole runs into their known encoded
//! form instead of compressing zeros byte by byte.
// Encoders of the factory's own output: every index here is computed from the layout or the
// buffer the writer sized itself; nothing under `format` parses outside input.
#![allow(clippy::indexing_slicing)]

pub mod gzip;
pub mod holes;
pub mod ova;
pub mod qcow2;
pub mod sparse;
pub mod tar;
pub mod vhd;
pub mod vmdk;
pub mod xz;
pub mod zstd;

pub use sparse::{Segment, SparseImage};
use std::io::{self, Write};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("extent at {offset} of {len} bytes passes the end of a {size}-byte image")]
    OutOfRange { offset: u64, len: u64, size: u64 },
    #[error("extent at {offset} overlaps the extent at {other}")]
    Overlap { offset: u64, other: u64 },
    #[error("archive member name {0:?} is longer than 100 bytes")]
    Name(String),
    #[error("encoding: {0}")]
    Encoding(String),
}

/// Where an image's bytes go, in order. `zeros` lets a receiver skip or encode a hole
/// without being handed its bytes; `packed` marks data that is already compressed.
pub trait Sink {
    fn data(&mut self, bytes: &[u8], packed: bool) -> io::Result<()>;
    fn zeros(&mut self, len: u64) -> io::Result<()>;
}

static ZERO_BLOCK: [u8; 64 * 1024] = [0; 64 * 1024];

/// Writes `len` zero bytes to `writer` from a shared zero block.
pub fn write_zeros(writer: &mut dyn Write, mut len: u64) -> io::Result<()> {
    while len > 0 {
        let step = len.min(ZERO_BLOCK.len() as u64) as usize;
        writer.write_all(&ZERO_BLOCK[..step])?;
        len -= step as u64;
    }
    Ok(())
}

/// A sink over any writer: holes are written out as zeros.
#[derive(Debug)]
pub struct WriteSink<W: Write>(pub W);

impl<W: Write> Sink for WriteSink<W> {
    fn data(&mut self, bytes: &[u8], _packed: bool) -> io::Result<()> {
        self.0.write_all(bytes)
    }

    fn zeros(&mut self, len: u64) -> io::Result<()> {
        write_zeros(&mut self.0, len)
    }
}

/// Hole runs shorter than this are compressed as data: a frame or block boundary costs more
/// than the zeros.
pub const MIN_ENCODED_HOLE: u64 = 1024 * 1024;

/// A compressor that knows the encoded form of a run of zeros.
pub trait Encoder {
    type Output;
    /// Payload bytes, in order.
    fn data(&mut self, bytes: &[u8], packed: bool) -> io::Result<()>;
    /// A run of at least [`MIN_ENCODED_HOLE`] zeros.
    fn hole(&mut self, len: u64) -> io::Result<()>;
    fn finish(self) -> io::Result<Self::Output>;
}

/// Adapts an [`Encoder`] to a [`Sink`], sending short zero runs as data.
#[derive(Debug)]
pub struct Encoding<E: Encoder>(pub E);

impl<E: Encoder> Sink for Encoding<E> {
    fn data(&mut self, bytes: &[u8], packed: bool) -> io::Result<()> {
        self.0.data(bytes, packed)
    }

    fn zeros(&mut self, mut len: u64) -> io::Result<()> {
        if len >= MIN_ENCODED_HOLE {
            return self.0.hole(len);
        }
        while len > 0 {
            let step = len.min(ZERO_BLOCK.len() as u64) as usize;
            self.0.data(&ZERO_BLOCK[..step], false)?;
            len -= step as u64;
        }
        Ok(())
    }
}

/// A writer that counts the bytes it passes on.
#[derive(Debug)]
pub struct Counting<W: Write> {
    pub inner: W,
    pub written: u64,
}

impl<W: Write> Counting<W> {
    pub fn new(inner: W) -> Counting<W> {
        Counting { inner, written: 0 }
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Compression applied after the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    /// zstd at upstream's level 18.
    Zstd,
    /// xz at upstream's preset 0.
    Xz,
    /// gzip at pigz's default level 6.
    Gzip,
}

/// Passes a sink's data on as a plain writer (encoders produce no holes of their own).
struct SinkWriter<'a>(&'a mut dyn Sink);

impl Write for SinkWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.data(buf, true)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `image` into `sink` with `compression`.
pub fn encode(
    image: &SparseImage,
    compression: Compression,
    sink: &mut dyn Sink,
) -> io::Result<()> {
    fn run<E: Encoder>(image: &SparseImage, encoder: E) -> io::Result<()> {
        let mut encoding = Encoding(encoder);
        image.write_to(&mut encoding)?;
        encoding.0.finish().map(drop)
    }
    // Buffered so the encoders' many small writes reach the sink in large pieces.
    let writer = io::BufWriter::with_capacity(1 << 20, SinkWriter(sink));
    match compression {
        Compression::None => {
            drop(writer);
            image.write_to(sink)
        }
        Compression::Zstd => run(image, zstd::ZstdEncoder::new(writer, 18)?),
        Compression::Xz => run(image, xz::XzEncoder::new(writer, 0)?),
        Compression::Gzip => run(image, gzip::GzipEncoder::new(writer, 6)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Read;

    fn raw(image: &SparseImage) -> Vec<u8> {
        let mut sink = WriteSink(Vec::new());
        image.write_to(&mut sink).unwrap();
        sink.0
    }

    fn encoded(image: &SparseImage, compression: Compression) -> Vec<u8> {
        let mut sink = WriteSink(Vec::new());
        encode(image, compression, &mut sink).unwrap();
        sink.0
    }

    fn decoded(bytes: &[u8], compression: Compression) -> Vec<u8> {
        let mut out = Vec::new();
        match compression {
            Compression::None => out.extend_from_slice(bytes),
            Compression::Zstd => out = ::zstd::stream::decode_all(bytes).unwrap(),
            Compression::Xz => {
                liblzma::read::XzDecoder::new(bytes)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Compression::Gzip => {
                flate2::read::MultiGzDecoder::new(bytes)
                    .read_to_end(&mut out)
                    .unwrap();
            }
        }
        out
    }

    fn image_strategy() -> impl Strategy<Value = SparseImage> {
        let extent = (0u64..6 << 20, 1usize..40_000, any::<u8>(), any::<bool>());
        (1u64..8 << 20, prop::collection::vec(extent, 0..8)).prop_map(|(size, extents)| {
            let mut image = SparseImage::new(size + 3);
            for (offset, len, seed, packed) in extents {
                let bytes: Vec<u8> = (0..len)
                    .map(|i| seed.wrapping_mul(i as u8) ^ (i >> 7) as u8)
                    .collect();
                let _ = if packed {
                    image.put_packed(offset, bytes)
                } else {
                    image.put(offset, bytes)
                };
            }
            image
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn every_encoder_round_trips(image in image_strategy()) {
            let expected = raw(&image);
            for compression in [Compression::Zstd, Compression::Xz, Compression::Gzip] {
                let bytes = encoded(&image, compression);
                prop_assert!(decoded(&bytes, compression) == expected, "{compression:?}");
            }
        }
    }

    #[test]
    fn holes_spanning_many_chunks_round_trip() {
        let mut image = SparseImage::new((21 << 20) + 517);
        image.put(1 << 20, vec![3u8; 5000]).unwrap();
        image.put_packed(15 << 20, vec![9u8; 70_000]).unwrap();
        let expected = raw(&image);
        for compression in [Compression::Zstd, Compression::Xz, Compression::Gzip] {
            assert!(
                decoded(&encoded(&image, compression), compression) == expected,
                "{compression:?}"
            );
        }
    }

    #[test]
    fn large_holes_cost_next_to_nothing() {
        let mut image = SparseImage::new(3 << 30);
        image.put(1 << 30, vec![7u8; 4096]).unwrap();
        for compression in [Compression::Zstd, Compression::Xz, Compression::Gzip] {
            let bytes = encoded(&image, compression);
            assert!(
                bytes.len() < 4 << 20,
                "{compression:?}: {} bytes",
                bytes.len()
            );
        }
    }
}
