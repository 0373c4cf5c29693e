//! Sparse images: a size and the byte ranges that hold data. Everything else is a hole that
//! reads as zeros and is never materialised, so a layout costs what its payload costs.

use super::{FormatError, Sink};
use bytes::Bytes;
use std::collections::BTreeMap;

/// One stored range and whether its bytes are already compressed (kernels, initramfs,
/// squashfs), which tells encoders not to spend a deep search on them.
#[derive(Debug, Clone)]
struct Extent {
    bytes: Bytes,
    packed: bool,
}

/// A piece of an image in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    Data { bytes: &'a [u8], packed: bool },
    Zero(u64),
}

#[derive(Debug, Clone, Default)]
pub struct SparseImage {
    size: u64,
    extents: BTreeMap<u64, Extent>,
}

impl SparseImage {
    pub fn new(size: u64) -> SparseImage {
        SparseImage {
            size,
            extents: BTreeMap::new(),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes held in extents.
    pub fn payload(&self) -> u64 {
        self.extents.values().map(|e| e.bytes.len() as u64).sum()
    }

    /// Stores `bytes` at `offset`; ranges may not overlap or pass the end.
    pub fn put(&mut self, offset: u64, bytes: impl Into<Bytes>) -> Result<(), FormatError> {
        self.insert(offset, bytes.into(), false)
    }

    /// Like [`SparseImage::put`], for bytes that are already compressed.
    pub fn put_packed(&mut self, offset: u64, bytes: impl Into<Bytes>) -> Result<(), FormatError> {
        self.insert(offset, bytes.into(), true)
    }

    fn insert(&mut self, offset: u64, bytes: Bytes, packed: bool) -> Result<(), FormatError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(bytes.len() as u64)
            .filter(|end| *end <= self.size)
            .ok_or(FormatError::OutOfRange {
                offset,
                len: bytes.len() as u64,
                size: self.size,
            })?;
        let before = self
            .extents
            .range(..=offset)
            .next_back()
            .filter(|(start, extent)| *start + extent.bytes.len() as u64 > offset);
        let after = self.extents.range(offset..end).next();
        if let Some((other, _)) = before.or(after) {
            return Err(FormatError::Overlap {
                offset,
                other: *other,
            });
        }
        self.extents.insert(offset, Extent { bytes, packed });
        Ok(())
    }

    /// Copies every extent of `inner` into this image at `offset` (a partition into a disk).
    pub fn place(&mut self, offset: u64, inner: SparseImage) -> Result<(), FormatError> {
        if offset
            .checked_add(inner.size)
            .is_none_or(|end| end > self.size)
        {
            return Err(FormatError::OutOfRange {
                offset,
                len: inner.size,
                size: self.size,
            });
        }
        for (start, extent) in inner.extents {
            self.insert(offset + start, extent.bytes, extent.packed)?;
        }
        Ok(())
    }

    /// The stored ranges in order: offset, bytes, packed.
    pub fn extents(&self) -> impl Iterator<Item = (u64, &Bytes, bool)> {
        self.extents
            .iter()
            .map(|(offset, extent)| (*offset, &extent.bytes, extent.packed))
    }

    /// Data and holes in order, covering the whole image.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> {
        let mut position = 0u64;
        let mut extents = self.extents.iter().peekable();
        let size = self.size;
        std::iter::from_fn(move || {
            if position >= size {
                return None;
            }
            match extents.peek() {
                Some((start, _)) if **start > position => {
                    let hole = **start - position;
                    position = **start;
                    Some(Segment::Zero(hole))
                }
                Some((_, extent)) => {
                    position += extent.bytes.len() as u64;
                    let extent = extents.next().map(|(_, extent)| extent)?;
                    Some(Segment::Data {
                        bytes: &extent.bytes,
                        packed: extent.packed,
                    })
                }
                None => {
                    let hole = size - position;
                    position = size;
                    Some(Segment::Zero(hole))
                }
            }
        })
    }

    /// The image in order, holes as [`Sink::zeros`].
    pub fn write_to(&self, sink: &mut dyn Sink) -> std::io::Result<()> {
        for segment in self.segments() {
            match segment {
                Segment::Data { bytes, packed } => sink.data(bytes, packed)?,
                Segment::Zero(len) => sink.zeros(len)?,
            }
        }
        Ok(())
    }

    /// `len` bytes at `offset`, holes as zeros (small reads, for headers and tests).
    pub fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let end = offset + len as u64;
        let first = self
            .extents
            .range(..=offset)
            .next_back()
            .map(|(start, _)| *start)
            .unwrap_or(0);
        for (start, extent) in self.extents.range(first..end) {
            let extent_end = start + extent.bytes.len() as u64;
            let from = offset.max(*start);
            let to = end.min(extent_end);
            if from < to {
                out[(from - offset) as usize..(to - offset) as usize]
                    .copy_from_slice(&extent.bytes[(from - start) as usize..(to - start) as usize]);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cover_the_image_in_order() {
        let mut image = SparseImage::new(100);
        image.put(10, vec![1u8; 5]).unwrap();
        image.put_packed(15, vec![2u8; 5]).unwrap();
        image.put(90, vec![3u8; 10]).unwrap();
        let segments: Vec<_> = image.segments().collect();
        assert_eq!(
            segments,
            vec![
                Segment::Zero(10),
                Segment::Data {
                    bytes: &[1; 5],
                    packed: false
                },
                Segment::Data {
                    bytes: &[2; 5],
                    packed: true
                },
                Segment::Zero(70),
                Segment::Data {
                    bytes: &[3; 10],
                    packed: false
                },
            ]
        );
        assert_eq!(image.payload(), 20);
        assert_eq!(image.read_at(8, 4), vec![0, 0, 1, 1]);
        assert_eq!(image.read_at(18, 4), vec![2, 2, 0, 0]);
    }

    #[test]
    fn overlaps_and_overruns_are_refused() {
        let mut image = SparseImage::new(100);
        image.put(10, vec![1u8; 10]).unwrap();
        assert!(image.put(15, vec![1u8; 2]).is_err());
        assert!(image.put(5, vec![1u8; 6]).is_err());
        assert!(image.put(95, vec![1u8; 6]).is_err());
        let mut inner = SparseImage::new(20);
        inner.put(0, vec![9u8; 1]).unwrap();
        assert!(image.place(90, inner.clone()).is_err());
        image.place(50, inner).unwrap();
        assert_eq!(image.read_at(50, 1), vec![9]);
    }
}
