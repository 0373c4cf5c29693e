//! Sparse files on disk: where their data lies (`SEEK_DATA`/`SEEK_HOLE`), so cached disk
//! images are hashed and copied without reading their holes.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The `[start, end)` ranges of `file` that hold data, in order. Filesystems without hole
/// support report the whole file as data.
pub fn data_ranges(file: &File) -> io::Result<Vec<(u64, u64)>> {
    let len = file.metadata()?.len();
    let mut ranges = Vec::new();
    let mut position = 0u64;
    while position < len {
        let start = match rustix::fs::seek(file, rustix::fs::SeekFrom::Data(position)) {
            Ok(start) => start,
            Err(rustix::io::Errno::NXIO) => break,
            Err(error) => return Err(error.into()),
        };
        let end = rustix::fs::seek(file, rustix::fs::SeekFrom::Hole(start))?.min(len);
        if end <= start {
            break;
        }
        ranges.push((start, end));
        position = end;
    }
    Ok(ranges)
}

/// Copies `from` to `to` (created or truncated), writing only the data ranges, so holes stay
/// holes.
pub fn copy_sparse(from: &Path, to: &Path) -> io::Result<()> {
    let mut input = File::open(from)?;
    let len = input.metadata()?.len();
    let mut output = File::create(to)?;
    let mut buffer = vec![0u8; 1 << 20];
    for (start, end) in data_ranges(&input)? {
        input.seek(SeekFrom::Start(start))?;
        output.seek(SeekFrom::Start(start))?;
        let mut left = end - start;
        while left > 0 {
            let step = left.min(buffer.len() as u64) as usize;
            input.read_exact(&mut buffer[..step])?;
            output.write_all(&buffer[..step])?;
            left -= step as u64;
        }
    }
    output.set_len(len)?;
    output.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_are_found_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"head").unwrap();
        file.seek(SeekFrom::Start(64 << 20)).unwrap();
        file.write_all(b"tail").unwrap();
        file.set_len(128 << 20).unwrap();
        drop(file);
        let ranges = data_ranges(&File::open(&path).unwrap()).unwrap();
        assert!(!ranges.is_empty());
        let covered: u64 = ranges.iter().map(|(start, end)| end - start).sum();
        assert!(covered < 1 << 20, "{ranges:?}");
        let copy = dir.path().join("copy");
        copy_sparse(&path, &copy).unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), std::fs::read(&path).unwrap());
        let copied = data_ranges(&File::open(&copy).unwrap()).unwrap();
        assert_eq!(copied, ranges);
    }
}
