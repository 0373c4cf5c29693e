//! The directory tree the caller asked for: path validation, implied directories, collisions,
//! and a stable order (names sorted bytewise) so the same tree always gives the same image
//! whatever order it was listed in.

use super::{XfsDir, XfsFile};
use crate::engine::EngineError;
use bytes::Bytes;

/// Longest name a directory entry holds (its length is one byte).
pub(super) const MAX_NAME: usize = 255;
const DEFAULT_DIR_MODE: u32 = 0o755;

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Dir { children: Vec<usize> },
    File { bytes: Bytes, packed: bool },
}

#[derive(Debug, Clone)]
pub(super) struct Node {
    pub name: Vec<u8>,
    pub mode: u32,
    pub parent: usize,
    pub kind: Kind,
    /// Whether a directory's mode came from the caller (a second listing is an error).
    listed: bool,
}

impl Node {
    pub fn children(&self) -> &[usize] {
        match &self.kind {
            Kind::Dir { children } => children,
            Kind::File { .. } => &[],
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir { .. })
    }
}

/// Node 0 is the root; children are sorted by name.
#[derive(Debug, Clone)]
pub(super) struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    pub fn build(dirs: &[XfsDir], files: &[XfsFile]) -> Result<Tree, EngineError> {
        let mut tree = Tree {
            nodes: vec![Node {
                name: Vec::new(),
                mode: DEFAULT_DIR_MODE,
                parent: 0,
                kind: Kind::Dir {
                    children: Vec::new(),
                },
                listed: true,
            }],
        };
        for dir in dirs {
            check_mode(&dir.path, dir.mode)?;
            let (parent, name) = tree.parent_of(&dir.path)?;
            match tree.child(parent, name) {
                Some(index) if tree.nodes[index].is_dir() && !tree.nodes[index].listed => {
                    tree.nodes[index].mode = dir.mode;
                    tree.nodes[index].listed = true;
                }
                Some(_) => return Err(collision(&dir.path)),
                None => {
                    tree.add(parent, name, dir.mode, true, dir_kind());
                }
            }
        }
        for file in files {
            check_mode(&file.path, file.mode)?;
            let (parent, name) = tree.parent_of(&file.path)?;
            if tree.child(parent, name).is_some() {
                return Err(collision(&file.path));
            }
            let kind = Kind::File {
                bytes: file.bytes.clone(),
                packed: file.packed,
            };
            tree.add(parent, name, file.mode, true, kind);
        }
        for index in 0..tree.nodes.len() {
            if let Kind::Dir { children } = &tree.nodes[index].kind {
                let mut sorted = children.clone();
                sorted.sort_by(|a, b| tree.nodes[*a].name.cmp(&tree.nodes[*b].name));
                tree.nodes[index].kind = Kind::Dir { children: sorted };
            }
        }
        Ok(tree)
    }

    /// Nodes in the order they get inodes: depth first, each directory before its entries.
    pub fn preorder(&self) -> Vec<usize> {
        let mut order = Vec::with_capacity(self.nodes.len());
        let mut stack = vec![0usize];
        while let Some(index) = stack.pop() {
            order.push(index);
            stack.extend(self.nodes[index].children().iter().rev());
        }
        order
    }

    /// Walks (creating implied directories) to the parent of `path`'s last component.
    fn parent_of<'a>(&mut self, path: &'a str) -> Result<(usize, &'a [u8]), EngineError> {
        let trimmed = path.strip_prefix('/').unwrap_or(path);
        let parts: Vec<&str> = trimmed.split('/').collect();
        for part in &parts {
            if part.is_empty()
                || *part == "."
                || *part == ".."
                || part.len() > MAX_NAME
                || part.contains('\0')
            {
                return Err(EngineError::InvalidInput(format!(
                    "XFS path {path:?} has an invalid component {part:?} (empty, `.`, `..`, \
                     a NUL byte, or longer than {MAX_NAME} bytes)"
                )));
            }
        }
        let Some((last, ancestors)) = parts.split_last() else {
            return Err(EngineError::InvalidInput(format!(
                "XFS path {path:?} is empty"
            )));
        };
        let mut current = 0usize;
        for part in ancestors {
            current = match self.child(current, part.as_bytes()) {
                Some(index) if self.nodes[index].is_dir() => index,
                Some(_) => return Err(collision(path)),
                None => self.add(
                    current,
                    part.as_bytes(),
                    DEFAULT_DIR_MODE,
                    false,
                    dir_kind(),
                ),
            };
        }
        Ok((current, last.as_bytes()))
    }

    fn child(&self, parent: usize, name: &[u8]) -> Option<usize> {
        self.nodes[parent]
            .children()
            .iter()
            .copied()
            .find(|child| self.nodes[*child].name == name)
    }

    fn add(&mut self, parent: usize, name: &[u8], mode: u32, listed: bool, kind: Kind) -> usize {
        self.nodes.push(Node {
            name: name.to_vec(),
            mode,
            parent,
            kind,
            listed,
        });
        let index = self.nodes.len() - 1;
        if let Kind::Dir { children } = &mut self.nodes[parent].kind {
            children.push(index);
        }
        index
    }
}

fn dir_kind() -> Kind {
    Kind::Dir {
        children: Vec::new(),
    }
}

fn check_mode(path: &str, mode: u32) -> Result<(), EngineError> {
    if mode & !0o7777 != 0 {
        return Err(EngineError::InvalidInput(format!(
            "XFS mode {mode:#o} of {path:?} has bits beyond the permission bits (0o7777)"
        )));
    }
    Ok(())
}

fn collision(path: &str) -> EngineError {
    EngineError::InvalidInput(format!("XFS path {path:?} collides with an existing entry"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> XfsFile {
        XfsFile {
            path: path.into(),
            bytes: Bytes::from_static(b"x"),
            mode: 0o644,
            packed: false,
        }
    }

    fn dir(path: &str, mode: u32) -> XfsDir {
        XfsDir {
            path: path.into(),
            mode,
        }
    }

    fn names(tree: &Tree) -> Vec<String> {
        tree.preorder()
            .iter()
            .map(|index| String::from_utf8_lossy(&tree.nodes[*index].name).to_string())
            .collect()
    }

    #[test]
    fn implied_directories_and_sorted_order() {
        let tree = Tree::build(
            &[dir("grub", 0o700)],
            &[
                file("grub/grub.cfg"),
                file("A/vmlinuz"),
                file("/A/initramfs.xz"),
            ],
        )
        .unwrap();
        assert_eq!(
            names(&tree),
            ["", "A", "initramfs.xz", "vmlinuz", "grub", "grub.cfg"]
        );
        let a = tree.preorder()[1];
        assert_eq!(tree.nodes[a].mode, 0o755);
        let grub = tree.preorder()[4];
        assert_eq!(tree.nodes[grub].mode, 0o700);
    }

    #[test]
    fn a_listed_directory_sets_the_mode_of_an_implied_one() {
        let tree = Tree::build(&[dir("a/b", 0o711), dir("a", 0o700)], &[]).unwrap();
        let order = tree.preorder();
        assert_eq!(tree.nodes[order[1]].mode, 0o700);
        assert_eq!(tree.nodes[order[2]].mode, 0o711);
    }

    #[test]
    fn invalid_components_are_refused() {
        let long = "n".repeat(256);
        for path in ["", "a//b", "a/./b", "../a", "a/", "a\0b", long.as_str()] {
            let error = Tree::build(&[], &[file(path)]).unwrap_err();
            assert!(
                matches!(&error, EngineError::InvalidInput(message) if message.contains(&format!("{path:?}"))),
                "{path:?}: {error}"
            );
        }
    }

    #[test]
    fn collisions_are_refused() {
        let cases: [(&[XfsDir], &[XfsFile]); 4] = [
            (&[], &[file("a"), file("a")]),
            (&[dir("a", 0o755)], &[file("a")]),
            (&[], &[file("a"), file("a/b")]),
            (&[dir("a", 0o755), dir("a", 0o700)], &[]),
        ];
        for (dirs, files) in cases {
            let error = Tree::build(dirs, files).unwrap_err();
            assert!(error.to_string().contains("\"a"), "{error}");
            assert!(error.to_string().contains("collides"), "{error}");
        }
    }

    #[test]
    fn modes_beyond_permission_bits_are_refused() {
        let error = Tree::build(&[dir("a", 0o40755)], &[]).unwrap_err();
        assert!(error.to_string().contains("0o40755"), "{error}");
    }
}
