//! Free space per allocation group: what the fixed metadata leaves, carved as inode chunks,
//! directory blocks and file data are placed, and what remains for the free-space btrees.

use super::geometry::{AGFL_FILL, Geometry};

/// Longest extent a block map record describes (21-bit length).
pub(super) const MAX_EXTENT: u32 = (1 << 21) - 1;

/// A run of blocks inside one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Run {
    pub agno: u32,
    pub agbno: u32,
    pub len: u32,
}

#[derive(Debug, Clone)]
pub(super) struct FreeSpace {
    /// Per group, free `(start, len)` in block order.
    groups: Vec<Vec<(u32, u32)>>,
}

impl FreeSpace {
    /// Everything except the headers, btree roots, free-list blocks and the log.
    pub fn new(geometry: &Geometry) -> FreeSpace {
        let groups = (0..geometry.agcount)
            .map(|agno| {
                let start = geometry.agfl_start(agno) + AGFL_FILL;
                let length = geometry.ag_length(agno);
                vec![(start, length.saturating_sub(start))]
            })
            .collect();
        FreeSpace { groups }
    }

    /// Removes a known range (inode chunks at their fixed places); false if not all free.
    pub fn claim(&mut self, run: Run) -> bool {
        let Some(group) = self.groups.get_mut(run.agno as usize) else {
            return false;
        };
        let end = run.agbno + run.len;
        let Some(at) = group
            .iter()
            .position(|(start, len)| *start <= run.agbno && end <= start + len)
        else {
            return false;
        };
        let (start, len) = group[at];
        let mut pieces = Vec::with_capacity(2);
        if run.agbno > start {
            pieces.push((start, run.agbno - start));
        }
        if start + len > end {
            pieces.push((end, start + len - end));
        }
        group.splice(at..=at, pieces);
        true
    }

    /// `blocks` blocks as few runs as first fit and largest-first give: the first free run
    /// that holds what is left, else the largest free run, again until done. None if there
    /// is not enough space.
    pub fn allocate(&mut self, blocks: u64) -> Option<Vec<Run>> {
        if self.free() < blocks {
            return None;
        }
        let mut runs = Vec::new();
        let mut left = blocks;
        while left > 0 {
            let run = self.first_fit(left).or_else(|| self.largest(left))?;
            self.claim(run);
            runs.push(run);
            left -= u64::from(run.len);
        }
        Some(runs)
    }

    fn first_fit(&self, blocks: u64) -> Option<Run> {
        if blocks > u64::from(MAX_EXTENT) {
            return None;
        }
        self.groups.iter().enumerate().find_map(|(agno, group)| {
            group
                .iter()
                .find(|(_, len)| u64::from(*len) >= blocks)
                .map(|(start, _)| Run {
                    agno: agno as u32,
                    agbno: *start,
                    len: blocks as u32,
                })
        })
    }

    fn largest(&self, blocks: u64) -> Option<Run> {
        let mut best: Option<Run> = None;
        for (agno, group) in self.groups.iter().enumerate() {
            for (start, len) in group {
                if best.is_none_or(|run| *len > run.len) {
                    best = Some(Run {
                        agno: agno as u32,
                        agbno: *start,
                        len: *len,
                    });
                }
            }
        }
        best.filter(|run| run.len > 0).map(|run| Run {
            len: u64::from(run.len).min(blocks).min(u64::from(MAX_EXTENT)) as u32,
            ..run
        })
    }

    pub fn free(&self) -> u64 {
        self.groups
            .iter()
            .flatten()
            .map(|(_, len)| u64::from(*len))
            .sum()
    }

    /// Free runs of group `agno` in block order.
    pub fn group(&self, agno: u32) -> &[(u32, u32)] {
        self.groups
            .get(agno as usize)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> (Geometry, FreeSpace) {
        let geometry = Geometry::new(1000 * 1024 * 1024, 512).unwrap();
        let space = FreeSpace::new(&geometry);
        (geometry, space)
    }

    #[test]
    fn initial_space_skips_headers_free_lists_and_log() {
        let (geometry, space) = space();
        assert_eq!(space.group(0), &[(9, 64000 - 9)]);
        assert_eq!(
            space.group(2),
            &[(9 + geometry.logblocks, 64000 - 9 - 16384)]
        );
        assert_eq!(space.free(), 4 * (64000 - 9) - 16384);
    }

    #[test]
    fn claims_split_runs() {
        let (_, mut space) = space();
        assert!(space.claim(Run {
            agno: 0,
            agbno: 12,
            len: 8
        }));
        assert_eq!(space.group(0), &[(9, 3), (20, 64000 - 20)]);
        assert!(!space.claim(Run {
            agno: 0,
            agbno: 10,
            len: 4
        }));
    }

    #[test]
    fn first_fit_then_pieces() {
        let (_, mut space) = space();
        space.claim(Run {
            agno: 0,
            agbno: 12,
            len: 8,
        });
        // One block fits the gap before the inode chunk.
        let small = space.allocate(1).unwrap();
        assert_eq!(
            small,
            [Run {
                agno: 0,
                agbno: 9,
                len: 1
            }]
        );
        // A file larger than any group takes the largest run, then the first that fits.
        let big = space.allocate(70_000).unwrap();
        assert_eq!(
            big,
            [
                Run {
                    agno: 1,
                    agbno: 9,
                    len: 63_991
                },
                Run {
                    agno: 0,
                    agbno: 20,
                    len: 70_000 - 63_991
                }
            ]
        );
        assert!(space.allocate(space.free() + 1).is_none());
    }
}
