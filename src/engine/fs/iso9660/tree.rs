//! The directory tree of an ISO: ISO 9660 identifiers for every name, and the directories
//! in path-table order.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Dir(usize),
    File(usize),
}

#[derive(Debug, Clone)]
pub(super) struct Child {
    pub(super) name: String,
    pub(super) identifier: Vec<u8>,
    pub(super) kind: Kind,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Dir {
    pub(super) parent: usize,
    pub(super) children: Vec<Child>,
    /// 1-based number in the path table.
    pub(super) number: u16,
    /// Extent length in bytes.
    pub(super) size: u64,
    /// Block of the extent, per view.
    pub(super) lba: [u32; 2],
}

/// ISO 9660 identifiers: upper-case d-characters, `_` for anything else.
pub(super) fn d_characters(text: &str) -> String {
    text.chars()
        .map(|c| match c.to_ascii_uppercase() {
            upper @ ('A'..='Z' | '0'..='9' | '_') => upper,
            _ => '_',
        })
        .collect()
}

/// The level-3 identifier of `name`: `NAME.EXT;1` for files (at most 30 characters before
/// the version), `NAME` for directories (at most 31); `attempt` > 0 makes a clashing name
/// unique.
pub(super) fn identifier(name: &str, directory: bool, attempt: usize) -> Vec<u8> {
    let suffix = if attempt == 0 {
        String::new()
    } else {
        format!("_{attempt}")
    };
    let fit = |base: String, room: usize| -> String {
        let keep = room.saturating_sub(suffix.len());
        format!("{}{suffix}", &base[..base.len().min(keep)])
    };
    if directory {
        return fit(d_characters(name), 31).into_bytes();
    }
    let (base, extension) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot + 1..]),
        _ => (name, ""),
    };
    let extension: String = d_characters(extension).chars().take(8).collect();
    let base = fit(d_characters(base), 30 - extension.len());
    format!("{base}.{extension};1").into_bytes()
}

#[derive(Debug)]
pub(super) struct Tree {
    pub(super) dirs: Vec<Dir>,
    /// Directory indices in path-table order (breadth first, by identifier).
    pub(super) order: Vec<usize>,
}

pub(super) fn build_tree(files: &[IsoFile]) -> Result<Tree, EngineError> {
    let mut dirs = vec![Dir::default()];
    for (index, file) in files.iter().enumerate() {
        let parts: Vec<&str> = file.path.split('/').filter(|p| !p.is_empty()).collect();
        let bad =
            |reason: &str| EngineError::InvalidInput(format!("ISO path {:?} {reason}", file.path));
        if parts.is_empty() {
            return Err(bad("is empty"));
        }
        let mut current = 0usize;
        for (at, part) in parts.iter().enumerate() {
            if *part == "." || *part == ".." || part.contains('\0') {
                return Err(bad("has an invalid component"));
            }
            // Rock Ridge names live in the record with its other entries; keep well below
            // the 255-byte record limit.
            if part.len() > 120 {
                return Err(bad("has a component longer than 120 bytes"));
            }
            let last = at + 1 == parts.len();
            let existing = dirs[current]
                .children
                .iter()
                .find(|child| child.name == *part)
                .map(|child| child.kind);
            match existing {
                Some(Kind::Dir(dir)) if !last => current = dir,
                Some(_) => return Err(bad("collides with an existing entry")),
                None => {
                    let kind = if last {
                        Kind::File(index)
                    } else {
                        dirs.push(Dir {
                            parent: current,
                            ..Dir::default()
                        });
                        Kind::Dir(dirs.len() - 1)
                    };
                    let directory = !last;
                    let mut attempt = 0;
                    let identifier = loop {
                        let candidate = identifier(part, directory, attempt);
                        if !dirs[current]
                            .children
                            .iter()
                            .any(|child| child.identifier == candidate)
                        {
                            break candidate;
                        }
                        attempt += 1;
                    };
                    dirs[current].children.push(Child {
                        name: (*part).to_string(),
                        identifier,
                        kind,
                    });
                    if let Kind::Dir(dir) = kind {
                        current = dir;
                    }
                }
            }
        }
    }
    for dir in &mut dirs {
        dir.children.sort_by(|a, b| a.identifier.cmp(&b.identifier));
    }
    let mut order = vec![0usize];
    let mut at = 0;
    while at < order.len() {
        let dir = order[at];
        for child in &dirs[dir].children {
            if let Kind::Dir(sub) = child.kind {
                order.push(sub);
            }
        }
        at += 1;
    }
    for (number, dir) in order.iter().enumerate() {
        dirs[*dir].number = u16::try_from(number + 1).map_err(|_| {
            EngineError::InvalidInput("more than 65535 directories in an ISO".into())
        })?;
    }
    Ok(Tree { dirs, order })
}
