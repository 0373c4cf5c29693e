//! The kmod binary index (`modules.*.bin`): a radix trie from keys to prioritised values
//! that `modprobe` searches without parsing the text files.
//!
//! Layout, all integers big-endian u32: magic `B007F457`, version 2.1, the root node's
//! reference, then the nodes, every child written before its parent. A node reference is the
//! node's file offset with flags in the top nibble saying which parts the node has:
//! a prefix (NUL-terminated rest of its label), a child table (first and last child byte, then
//! one reference per byte in that range, 0 for none) and values (count, then per value its
//! priority and NUL-terminated text). The root never has a prefix.
// A writer of the trie it built: every index is bounded by the node it walks, none comes
// from a module file.
#![allow(clippy::indexing_slicing)]

use std::collections::BTreeMap;

const MAGIC: u32 = 0xB007_F457;
const VERSION: u32 = 0x0002_0001;
const HAS_PREFIX: u32 = 0x8000_0000;
const HAS_VALUES: u32 = 0x4000_0000;
const HAS_CHILDREN: u32 = 0x2000_0000;
const HEADER_LEN: usize = 12;

#[derive(Debug, Default)]
pub(super) struct Index {
    root: Node,
}

#[derive(Debug, Default)]
struct Node {
    /// The label bytes after the one that selects this node in its parent.
    prefix: Vec<u8>,
    children: BTreeMap<u8, Node>,
    /// By ascending priority; among equal priorities the latest insertion comes first.
    values: Vec<(u32, Vec<u8>)>,
}

impl Index {
    pub(super) fn insert(&mut self, key: &[u8], value: &[u8], priority: u32) {
        let mut node = &mut self.root;
        let mut key = key;
        loop {
            let shared = node
                .prefix
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count();
            if shared < node.prefix.len() {
                node.split_at(shared);
            }
            key = &key[shared..];
            let Some((&branch, rest)) = key.split_first() else {
                let at = node
                    .values
                    .partition_point(|(existing, _)| *existing < priority);
                node.values.insert(at, (priority, value.to_vec()));
                return;
            };
            node = node.children.entry(branch).or_insert_with(|| Node {
                prefix: rest.to_vec(),
                ..Node::default()
            });
            // A fresh node takes the whole remaining key as its prefix; the next turn of
            // the loop finds it fully shared and stores the value there.
            key = rest;
        }
    }

    pub(super) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 4096);
        out.extend_from_slice(&MAGIC.to_be_bytes());
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&[0; 4]);
        let root = self.root.write(&mut out);
        out[8..12].copy_from_slice(&root.to_be_bytes());
        out
    }
}

impl Node {
    /// Cuts the prefix after `len` bytes; what follows moves, with the children and values,
    /// into a new child.
    fn split_at(&mut self, len: usize) {
        let mut tail = self.prefix.split_off(len);
        let branch = tail.remove(0);
        let moved = Node {
            prefix: tail,
            children: std::mem::take(&mut self.children),
            values: std::mem::take(&mut self.values),
        };
        self.children.insert(branch, moved);
    }

    /// Appends the subtree, children first, and returns this node's reference.
    fn write(&self, out: &mut Vec<u8>) -> u32 {
        let children: Vec<(u8, u32)> = self
            .children
            .iter()
            .map(|(&branch, child)| (branch, child.write(out)))
            .collect();
        // Offsets share a u32 with the flags; modules.*.bin files stay far below 256 MiB.
        let offset = u32::try_from(out.len()).unwrap_or(u32::MAX) & 0x0FFF_FFFF;
        let mut flags = 0;
        if !self.prefix.is_empty() {
            flags |= HAS_PREFIX;
            out.extend_from_slice(&self.prefix);
            out.push(0);
        }
        if let (Some(&(first, _)), Some(&(last, _))) = (children.first(), children.last()) {
            flags |= HAS_CHILDREN;
            out.push(first);
            out.push(last);
            let mut table = vec![0u32; usize::from(last - first) + 1];
            for (branch, reference) in children {
                table[usize::from(branch - first)] = reference;
            }
            for reference in table {
                out.extend_from_slice(&reference.to_be_bytes());
            }
        }
        if !self.values.is_empty() {
            flags |= HAS_VALUES;
            let count = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&count.to_be_bytes());
            for (priority, value) in &self.values {
                out.extend_from_slice(&priority.to_be_bytes());
                out.extend_from_slice(value);
                out.push(0);
            }
        }
        offset | flags
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks a serialized index and returns every (key, priority, value), depth first.
    fn entries(bytes: &[u8]) -> Vec<(Vec<u8>, u32, Vec<u8>)> {
        fn u32_at(bytes: &[u8], at: usize) -> u32 {
            u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap())
        }
        fn c_str(bytes: &[u8], at: usize) -> (Vec<u8>, usize) {
            let end = at + bytes[at..].iter().position(|&b| b == 0).unwrap();
            (bytes[at..end].to_vec(), end + 1)
        }
        fn walk(
            bytes: &[u8],
            reference: u32,
            key: Vec<u8>,
            out: &mut Vec<(Vec<u8>, u32, Vec<u8>)>,
        ) {
            let mut at = (reference & 0x0FFF_FFFF) as usize;
            let mut key = key;
            if reference & HAS_PREFIX != 0 {
                let (prefix, next) = c_str(bytes, at);
                key.extend(prefix);
                at = next;
            }
            let mut children = Vec::new();
            if reference & HAS_CHILDREN != 0 {
                let (first, last) = (bytes[at], bytes[at + 1]);
                at += 2;
                for branch in first..=last {
                    let child = u32_at(bytes, at);
                    at += 4;
                    if child != 0 {
                        children.push((branch, child));
                    }
                }
            }
            if reference & HAS_VALUES != 0 {
                let count = u32_at(bytes, at);
                at += 4;
                for _ in 0..count {
                    let priority = u32_at(bytes, at);
                    let (value, next) = c_str(bytes, at + 4);
                    at = next;
                    out.push((key.clone(), priority, value));
                }
            }
            for (branch, child) in children {
                let mut child_key = key.clone();
                child_key.push(branch);
                walk(bytes, child, child_key, out);
            }
        }
        assert_eq!(u32_at(bytes, 0), MAGIC);
        let mut out = Vec::new();
        walk(bytes, u32_at(bytes, 8), Vec::new(), &mut out);
        out
    }

    #[test]
    fn empty_index_is_only_a_header() {
        let bytes = Index::default().to_bytes();
        assert_eq!(bytes, [0xB0, 0x07, 0xF4, 0x57, 0, 2, 0, 1, 0, 0, 0, 12]);
    }

    #[test]
    fn keys_round_trip_whatever_the_insertion_order() {
        let keys: [&[u8]; 7] = [b"once", b"ask", b"", b"on", b"one", b"ate", b"o"];
        let mut forward = Index::default();
        let mut backward = Index::default();
        for (priority, key) in keys.iter().enumerate() {
            forward.insert(key, b"v", priority as u32);
        }
        for (priority, key) in keys.iter().enumerate().rev() {
            backward.insert(key, b"v", priority as u32);
        }
        assert_eq!(forward.to_bytes(), backward.to_bytes());
        let mut found: Vec<Vec<u8>> = entries(&forward.to_bytes())
            .into_iter()
            .map(|(key, _, _)| key)
            .collect();
        found.sort();
        let mut expected: Vec<Vec<u8>> = keys.iter().map(|key| key.to_vec()).collect();
        expected.sort();
        assert_eq!(found, expected);
    }

    #[test]
    fn values_sort_by_priority_and_latest_first_among_equals() {
        let mut index = Index::default();
        index.insert(b"k", b"b", 1);
        index.insert(b"k", b"a", 0);
        index.insert(b"k", b"c", 1);
        let values: Vec<(u32, Vec<u8>)> = entries(&index.to_bytes())
            .into_iter()
            .map(|(_, priority, value)| (priority, value))
            .collect();
        assert_eq!(
            values,
            [(0, b"a".to_vec()), (1, b"c".to_vec()), (1, b"b".to_vec())]
        );
    }
}
