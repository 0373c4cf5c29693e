//! A native `depmod`: computes the module dependency and alias files of a kernel module tree,
//! byte for byte as kmod 30's `depmod` writes them.
//!
//! Where depmod's result depends on the order in which the filesystem lists directories (two
//! modules of the same name and the same search priority), this one behaves as if every
//! directory were listed in name order. Unlike depmod, it refuses a module that is not a
//! readable ELF file (depmod warns and lists it without dependencies) and compressed modules.

mod facts;
mod index;

use crate::error::{Classify, ErrorKind};
use index::Index;
use std::collections::{BTreeMap, HashMap};

/// The search entry naming the kernel's own tree: everything no other entry claims.
const BUILT_IN: &str = "built-in";
/// depmod's search list when its configuration has none.
const DEFAULT_SEARCH: [&str; 2] = ["updates", BUILT_IN];
const SYMBOL_KEY_PREFIX: &[u8] = b"symbol:";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DepmodError {
    #[error("kernel release {0:?} does not start with <major>.<minor>")]
    BadRelease(String),
    #[error("{path}: not a valid kernel module: {reason}")]
    InvalidModule {
        path: String,
        reason: crate::engine::elf::ElfError,
    },
    #[error("{path}: compressed kernel modules are not supported")]
    CompressedModule { path: String },
    #[error("kernel modules depend on each other in a cycle: {}", .0.join(" -> "))]
    DependencyCycle(Vec<String>),
}

impl Classify for DepmodError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Internal
    }
}

/// Input: the contents of `lib/modules/<release>/` as relative paths → bytes, e.g.
/// "modules.order", "modules.builtin", "modules.builtin.modinfo",
/// "kernel/fs/squashfs/squashfs.ko", "extras/dummy.ko".
///
/// `search` is depmod.conf's `search` list, where `built-in` stands for every directory no
/// other entry names; an empty list means depmod's default, `updates built-in`. When two
/// modules share a name, the one under the earlier entry wins.
///
/// Returns the files depmod writes next to the modules: `modules.dep`, `modules.alias`,
/// `modules.softdep`, `modules.symbols`, `modules.devname` and the `.bin` indexes of the
/// first four, `modules.builtin.bin` and `modules.builtin.alias.bin`.
pub fn depmod(
    release: &str,
    tree: &BTreeMap<String, Vec<u8>>,
    search: &[&str],
) -> Result<BTreeMap<String, Vec<u8>>, DepmodError> {
    check_release(release)?;
    let modules = load_modules(tree, search)?;
    let dependencies = resolve_dependencies(&modules);
    let load_rank = load_order_ranks(&modules, &dependencies)?;

    let mut out = BTreeMap::new();
    let (dep, dep_bin) = write_dependencies(&modules, &dependencies, &load_rank);
    out.insert("modules.dep".to_string(), dep);
    out.insert("modules.dep.bin".to_string(), dep_bin);
    let (alias, alias_bin) = write_aliases(&modules);
    out.insert("modules.alias".to_string(), alias);
    out.insert("modules.alias.bin".to_string(), alias_bin);
    out.insert("modules.softdep".to_string(), write_softdeps(&modules));
    let (symbols, symbols_bin) = write_symbols(&modules);
    out.insert("modules.symbols".to_string(), symbols);
    out.insert("modules.symbols.bin".to_string(), symbols_bin);
    let builtin = tree.get("modules.builtin");
    out.insert("modules.builtin.bin".to_string(), write_builtin(builtin));
    let builtin_info = tree.get("modules.builtin.modinfo");
    out.insert(
        "modules.builtin.alias.bin".to_string(),
        write_builtin_aliases(builtin_info),
    );
    out.insert("modules.devname".to_string(), write_devnames(&modules));
    Ok(out)
}

/// depmod refuses a release that does not start like a kernel version, `<major>.<minor>`
/// as C's `sscanf("%u.%u")` reads it.
fn check_release(release: &str) -> Result<(), DepmodError> {
    let minor = scan_unsigned(release.as_bytes())
        .and_then(|(_, rest)| rest.strip_prefix(b"."))
        .and_then(scan_unsigned);
    match minor {
        Some(_) => Ok(()),
        None => Err(DepmodError::BadRelease(release.to_string())),
    }
}

/// One module that won its name, with what its ELF file says.
#[derive(Debug)]
struct Module<'a> {
    /// Path relative to `lib/modules/<release>/`.
    path: &'a str,
    name: String,
    facts: facts::ModuleFacts<'a>,
}

/// Finds the modules, keeps one per name, and sorts them in depmod's order: `modules.order`
/// first, the rest in the iteration order of kmod's name table.
fn load_modules<'a>(
    tree: &'a BTreeMap<String, Vec<u8>>,
    search: &[&str],
) -> Result<Vec<Module<'a>>, DepmodError> {
    let mut candidates: Vec<&str> = Vec::new();
    for path in tree.keys() {
        if is_skipped_directory(path) {
            continue;
        }
        if path.ends_with(".ko") {
            candidates.push(path);
        } else if [".ko.gz", ".ko.xz", ".ko.zst"]
            .iter()
            .any(|suffix| path.ends_with(suffix))
        {
            return Err(DepmodError::CompressedModule { path: path.clone() });
        }
    }
    // The order depmod would discover them in, with directories listed by name.
    candidates.sort_by(|a, b| a.split('/').cmp(b.split('/')));

    let search = SearchList::new(search);
    let mut winners: HashMap<String, &str> = HashMap::new();
    for path in candidates {
        let name = module_name(path.rsplit('/').next().unwrap_or(path));
        match winners.get(&name) {
            Some(current) if !search.replaces(current, path) => {}
            _ => {
                winners.insert(name, path);
            }
        }
    }

    let by_path: HashMap<&str, &str> = winners
        .iter()
        .map(|(name, path)| (*path, name.as_str()))
        .collect();
    let mut listed_at: HashMap<&str, usize> = HashMap::new();
    if let Some(order) = tree.get("modules.order") {
        for (line_number, line) in order.split(|&byte| byte == b'\n').enumerate() {
            let Ok(line) = std::str::from_utf8(until_nul(line)) else {
                continue;
            };
            if let Some(&name) = by_path.get(line) {
                listed_at.insert(name, line_number);
            }
        }
    }
    let mut names: Vec<(&str, &str)> = winners
        .iter()
        .map(|(name, path)| (name.as_str(), *path))
        .collect();
    names.sort_by(|a, b| kmod_table_order(a.0.as_bytes(), b.0.as_bytes(), MODULE_TABLE_BUCKETS));
    // Stable: unlisted modules keep the table order among themselves.
    names.sort_by_key(|(name, _)| listed_at.get(name).map_or((1, 0), |&line| (0, line)));

    names
        .into_iter()
        .map(|(name, path)| {
            // `path` is one of the tree's own keys.
            let data = tree.get(path).map_or(&[][..], Vec::as_slice);
            let facts = facts::read_module(data).map_err(|reason| DepmodError::InvalidModule {
                path: path.to_string(),
                reason,
            })?;
            Ok(Module {
                path,
                name: name.to_string(),
                facts,
            })
        })
        .collect()
}

/// depmod never descends into `build` or `source` directories (kernel headers links).
fn is_skipped_directory(path: &str) -> bool {
    let mut components = path.split('/');
    components.next_back();
    components.any(|directory| directory == "build" || directory == "source")
}

/// A module's name: its file name up to the first dot, with dashes as underscores.
fn module_name(file_name: &str) -> String {
    file_name
        .split('.')
        .next()
        .unwrap_or_default()
        .replace('-', "_")
}

/// The configured search list, with `built-in` appended if the configuration forgot it.
struct SearchList<'a> {
    entries: Vec<&'a str>,
}

impl<'a> SearchList<'a> {
    fn new(search: &[&'a str]) -> SearchList<'a> {
        let mut entries: Vec<&str> = if search.is_empty() {
            DEFAULT_SEARCH.to_vec()
        } else {
            search.to_vec()
        };
        if !entries.contains(&BUILT_IN) {
            entries.push(BUILT_IN);
        }
        SearchList { entries }
    }

    /// Whether a module found later at `newer` displaces the one at `current`.
    ///
    /// Each path ranks at the last entry containing it, else at `built-in`, with one quirk of
    /// depmod kept for identical output: an entry containing the newer path is not checked
    /// against the current one. So between two modules under the same entry the newer wins,
    /// while between two built-in ones the first found stays.
    fn replaces(&self, current: &str, newer: &str) -> bool {
        let contains = |entry: &str, path: &str| {
            path.strip_prefix(entry)
                .is_some_and(|rest| rest.starts_with('/'))
        };
        let (mut built_in, mut current_rank, mut newer_rank) = (None, None, None);
        for (rank, &entry) in self.entries.iter().enumerate() {
            if entry == BUILT_IN {
                built_in = Some(rank);
            } else if contains(entry, newer) {
                newer_rank = Some(rank);
            } else if contains(entry, current) {
                current_rank = Some(rank);
            }
        }
        newer_rank.or(built_in) < current_rank.or(built_in)
    }
}

/// For each module, the modules (by position) whose exports it uses, in first-use order.
fn resolve_dependencies(modules: &[Module]) -> Vec<Vec<usize>> {
    // A symbol exported twice belongs to the later module, as in depmod. A module needing a
    // symbol it exports itself (only a forged one can) depends on itself: a cycle.
    let owners = symbol_owners(modules);
    modules
        .iter()
        .map(|module| {
            let mut needs: Vec<usize> = Vec::new();
            for symbol in &module.facts.imports {
                if let Some(&owner) = owners.get(symbol)
                    && !needs.contains(&owner)
                {
                    needs.push(owner);
                }
            }
            needs
        })
        .collect()
}

fn symbol_owners<'a>(modules: &[Module<'a>]) -> HashMap<&'a [u8], usize> {
    let mut owners = HashMap::new();
    for (position, module) in modules.iter().enumerate() {
        for &symbol in &module.facts.exports {
            owners.insert(symbol, position);
        }
    }
    owners
}

/// Ranks the modules so that every module comes before the ones it needs: modprobe loads a
/// `modules.dep` line's dependencies from last to first. Modules nobody needs are taken in
/// module order, the most recently freed first.
// Indices are positions in `modules`, made by the resolution above, never read from a file.
#[allow(clippy::indexing_slicing)]
fn load_order_ranks(
    modules: &[Module],
    dependencies: &[Vec<usize>],
) -> Result<Vec<usize>, DepmodError> {
    let mut users = vec![0usize; modules.len()];
    for needs in dependencies {
        for &needed in needs {
            users[needed] += 1;
        }
    }
    let mut ready: Vec<usize> = (0..modules.len()).filter(|&m| users[m] == 0).collect();
    let mut rank = vec![usize::MAX; modules.len()];
    let mut next_rank = 0;
    while let Some(module) = ready.pop() {
        rank[module] = next_rank;
        next_rank += 1;
        for &needed in &dependencies[module] {
            users[needed] -= 1;
            if users[needed] == 0 {
                ready.push(needed);
            }
        }
    }
    if next_rank < modules.len() {
        return Err(DepmodError::DependencyCycle(find_cycle(
            modules,
            dependencies,
            &rank,
        )));
    }
    Ok(rank)
}

/// Names the modules of one dependency cycle among those the ranking could not place, each
/// followed by one it needs.
// Indices are positions in `modules`, made by the resolution above, never read from a file.
#[allow(clippy::indexing_slicing)]
fn find_cycle(modules: &[Module], dependencies: &[Vec<usize>], rank: &[usize]) -> Vec<String> {
    let unplaced = |module: usize| rank[module] == usize::MAX;
    let Some(start) = (0..modules.len()).find(|&m| unplaced(m)) else {
        return Vec::new();
    };
    // A module stays unplaced only while one of its users does, so walking from user to user
    // must come back round.
    let mut path = vec![start];
    loop {
        let current = path[path.len() - 1];
        let Some(user) = (0..modules.len())
            .find(|&user| unplaced(user) && dependencies[user].contains(&current))
        else {
            break;
        };
        if let Some(seen) = path.iter().position(|&m| m == user) {
            path.drain(..seen);
            path.push(user);
            break;
        }
        path.push(user);
    }
    path.reverse();
    path.into_iter()
        .map(|module| modules[module].name.clone())
        .collect()
}

/// `modules.dep` and its index: each module's path, then every module it needs directly or
/// not, in load-rank order.
// Indices are positions in `modules`, made by the resolution above, never read from a file.
#[allow(clippy::indexing_slicing)]
fn write_dependencies(
    modules: &[Module],
    dependencies: &[Vec<usize>],
    load_rank: &[usize],
) -> (Vec<u8>, Vec<u8>) {
    let mut text = Vec::new();
    let mut index = Index::default();
    for (position, module) in modules.iter().enumerate() {
        let mut line = format!("{}:", module.path);
        for needed in all_dependencies(position, dependencies, load_rank) {
            line.push(' ');
            line.push_str(modules[needed].path);
        }
        index.insert(module.name.as_bytes(), line.as_bytes(), priority(position));
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
    }
    (text, index.to_bytes())
}

/// Everything `module` needs, directly or through others, by load rank.
// Indices are positions in `modules`, made by the resolution above, never read from a file.
#[allow(clippy::indexing_slicing)]
fn all_dependencies(module: usize, dependencies: &[Vec<usize>], load_rank: &[usize]) -> Vec<usize> {
    let mut seen = vec![false; dependencies.len()];
    let mut found = Vec::new();
    let mut pending = dependencies[module].clone();
    while let Some(next) = pending.pop() {
        if !std::mem::replace(&mut seen[next], true) {
            found.push(next);
            pending.extend(&dependencies[next]);
        }
    }
    found.sort_by_key(|&m| load_rank[m]);
    found
}

/// Index priorities are module positions; a tree never holds 2^32 modules.
fn priority(position: usize) -> u32 {
    u32::try_from(position).unwrap_or(u32::MAX)
}

/// The values of one key's `.modinfo` entries, in section order; an entry without `=` has an
/// empty value.
fn modinfo_values<'a>(module: &Module<'a>, key: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
    module.facts.modinfo.iter().filter_map(move |&entry| {
        let (entry_key, value) = split_once(entry, b'=').unwrap_or((entry, &[][..]));
        (entry_key == key).then_some(value)
    })
}

fn write_aliases(modules: &[Module]) -> (Vec<u8>, Vec<u8>) {
    let mut text = b"# Aliases extracted from modules themselves.\n".to_vec();
    let mut index = Index::default();
    for (position, module) in modules.iter().enumerate() {
        for alias in modinfo_values(module, b"alias") {
            text.extend_from_slice(b"alias ");
            text.extend_from_slice(alias);
            text.push(b' ');
            text.extend_from_slice(module.name.as_bytes());
            text.push(b'\n');
            // depmod warns about and leaves out aliases whose brackets do not pair up.
            if let Some(key) = normalize_alias(alias) {
                index.insert(&key, module.name.as_bytes(), priority(position));
            }
        }
    }
    (text, index.to_bytes())
}

/// Dashes become underscores except inside `[...]` character classes; `None` if a bracket
/// is unmatched.
fn normalize_alias(alias: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(alias.len());
    let mut rest = alias;
    while let Some((&byte, tail)) = rest.split_first() {
        match byte {
            b'[' => {
                let (class, after) = split_once(tail, b']')?;
                out.push(b'[');
                out.extend_from_slice(class);
                out.push(b']');
                rest = after;
                continue;
            }
            b']' => return None,
            b'-' => out.push(b'_'),
            other => out.push(other),
        }
        rest = tail;
    }
    Some(out)
}

fn write_softdeps(modules: &[Module]) -> Vec<u8> {
    let mut text = b"# Soft dependencies extracted from modules themselves.\n".to_vec();
    for module in modules {
        for softdep in modinfo_values(module, b"softdep") {
            text.extend_from_slice(b"softdep ");
            text.extend_from_slice(module.name.as_bytes());
            text.push(b' ');
            text.extend_from_slice(softdep);
            text.push(b'\n');
        }
    }
    text
}

// Indices are positions in `modules`, made by the resolution above, never read from a file.
#[allow(clippy::indexing_slicing)]
fn write_symbols(modules: &[Module]) -> (Vec<u8>, Vec<u8>) {
    let owners = symbol_owners(modules);
    let mut symbols: Vec<(&[u8], usize)> = owners.into_iter().collect();
    symbols.sort_by(|a, b| kmod_table_order(a.0, b.0, SYMBOL_TABLE_BUCKETS));
    let mut text = b"# Aliases for symbols, used by symbol_request().\n".to_vec();
    let mut index = Index::default();
    for (symbol, owner) in symbols {
        let owner_name = modules[owner].name.as_bytes();
        let key = [SYMBOL_KEY_PREFIX, symbol].concat();
        text.extend_from_slice(b"alias ");
        text.extend_from_slice(&key);
        text.push(b' ');
        text.extend_from_slice(owner_name);
        text.push(b'\n');
        index.insert(&key, owner_name, priority(owner));
    }
    (text, index.to_bytes())
}

/// `modules.builtin.bin`: the names of the modules built into the kernel. depmod writes an
/// empty file when there is no `modules.builtin`.
fn write_builtin(list: Option<&Vec<u8>>) -> Vec<u8> {
    let Some(list) = list else {
        return Vec::new();
    };
    let mut index = Index::default();
    // depmod reads lines with their newline, so a line whose file name has no dot keeps it
    // in the name; lines not starting with a letter are rejected.
    for line in list.split_inclusive(|&byte| byte == b'\n') {
        let line = until_nul(line);
        if !line.first().is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let file_name = line.rsplit(|&byte| byte == b'/').next().unwrap_or(line);
        let stem = file_name
            .split(|&byte| byte == b'.')
            .next()
            .unwrap_or_default();
        let name: Vec<u8> = stem
            .iter()
            .map(|&byte| if byte == b'-' { b'_' } else { byte })
            .collect();
        index.insert(&name, b"", 0);
    }
    index.to_bytes()
}

/// `modules.builtin.alias.bin`, from the `<module>.alias=<alias>` entries of
/// `modules.builtin.modinfo`; an empty file when that is missing.
fn write_builtin_aliases(modinfo: Option<&Vec<u8>>) -> Vec<u8> {
    let Some(modinfo) = modinfo else {
        return Vec::new();
    };
    let mut index = Index::default();
    let mut entries: Vec<&[u8]> = modinfo.split(|&byte| byte == 0).collect();
    // Only NUL-terminated entries count.
    entries.pop();
    for entry in entries {
        let Some((module, key_value)) = split_once(entry, b'.') else {
            continue;
        };
        let Some(alias) = key_value.strip_prefix(b"alias=") else {
            continue;
        };
        if module.is_empty() || alias.is_empty() {
            continue;
        }
        if let Some(key) = normalize_alias(alias) {
            index.insert(&key, module, 0);
        }
    }
    index.to_bytes()
}

/// `modules.devname`: modules that name their device node (`devname:<name>`) and its number
/// (`char-major-<major>-<minor>` or `block-major-…`) let udev create the node before loading
/// them. The header only appears above a first entry.
fn write_devnames(modules: &[Module]) -> Vec<u8> {
    let mut text = Vec::new();
    for module in modules {
        let mut devname: Option<&[u8]> = None;
        let mut device: Option<(char, u32, u32)> = None;
        for alias in modinfo_values(module, b"alias") {
            if let Some(name) = alias.strip_prefix(b"devname:") {
                devname = Some(name);
            } else if let Some(numbers) = alias.strip_prefix(b"char-major-") {
                device = device_numbers(numbers)
                    .map(|(major, minor)| ('c', major, minor))
                    .or(device);
            } else if let Some(numbers) = alias.strip_prefix(b"block-major-") {
                device = device_numbers(numbers)
                    .map(|(major, minor)| ('b', major, minor))
                    .or(device);
            }
            if let (Some(name), Some((kind, major, minor))) = (devname, device) {
                if text.is_empty() {
                    text.extend_from_slice(
                        b"# Device nodes to trigger on-demand module loading.\n",
                    );
                }
                text.extend_from_slice(module.name.as_bytes());
                text.push(b' ');
                text.extend_from_slice(name);
                text.extend_from_slice(format!(" {kind}{major}:{minor}\n").as_bytes());
                break;
            }
        }
    }
    text
}

/// `<major>-<minor>` read the way C's `sscanf("%u-%u")` does: each number may follow
/// white space and a sign, and anything after the minor is ignored.
fn device_numbers(text: &[u8]) -> Option<(u32, u32)> {
    let (major, rest) = scan_unsigned(text)?;
    let (minor, _) = scan_unsigned(rest.strip_prefix(b"-")?)?;
    Some((major, minor))
}

fn scan_unsigned(text: &[u8]) -> Option<(u32, &[u8])> {
    let start = text
        .iter()
        .position(|&byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r'))?;
    let mut rest = text.get(start..)?;
    let negative = rest.first() == Some(&b'-');
    if let Some(unsigned) = rest.strip_prefix(b"-").or_else(|| rest.strip_prefix(b"+")) {
        rest = unsigned;
    }
    let digits = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let (number, after) = rest.split_at_checked(digits)?;
    let value = number.iter().fold(0u64, |value, &digit| {
        value
            .saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    });
    let value = if negative {
        value.wrapping_neg()
    } else {
        value
    };
    // The C conversion reads an unsigned long and stores its low 32 bits.
    Some(((value & 0xFFFF_FFFF) as u32, after))
}

/// A C string's view of `bytes`: everything before the first NUL.
fn until_nul(bytes: &[u8]) -> &[u8] {
    bytes.split(|&byte| byte == 0).next().unwrap_or(bytes)
}

/// The bytes before and after the first `separator`, if there is one.
fn split_once(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let mut parts = bytes.splitn(2, |&byte| byte == separator);
    Some((parts.next()?, parts.next()?))
}

/// Bucket counts of kmod's hash tables whose iteration order shows in the output: module
/// names (for modules missing from `modules.order`) and exported symbols.
const MODULE_TABLE_BUCKETS: u32 = 512;
const SYMBOL_TABLE_BUCKETS: u32 = 2048;

/// The order in which kmod's hash table walks its keys: by bucket, then by key within one.
fn kmod_table_order(a: &[u8], b: &[u8], buckets: u32) -> std::cmp::Ordering {
    let bucket = |key: &[u8]| super_fast_hash(key) & (buckets - 1);
    (bucket(a), a).cmp(&(bucket(b), b))
}

/// Paul Hsieh's SuperFastHash, the hash kmod's tables use.
fn super_fast_hash(key: &[u8]) -> u32 {
    let Ok(mut hash) = u32::try_from(key.len()) else {
        return 0;
    };
    let pair = |low: u8, high: u8| u32::from(u16::from_le_bytes([low, high]));
    // The tail byte is read as a C `signed char`.
    let signed = |byte: u8| i32::from(byte as i8) as u32;
    let mut chunks = key.chunks_exact(4);
    for chunk in &mut chunks {
        let &[a, b, c, d] = chunk else {
            continue;
        };
        hash = hash.wrapping_add(pair(a, b));
        let mixed = (pair(c, d) << 11) ^ hash;
        hash = (hash << 16) ^ mixed;
        hash = hash.wrapping_add(hash >> 11);
    }
    match *chunks.remainder() {
        [a, b, c] => {
            hash = hash.wrapping_add(pair(a, b));
            hash ^= hash << 16;
            hash ^= signed(c) << 18;
            hash = hash.wrapping_add(hash >> 11);
        }
        [a, b] => {
            hash = hash.wrapping_add(pair(a, b));
            hash ^= hash << 11;
            hash = hash.wrapping_add(hash >> 17);
        }
        [a] => {
            hash = hash.wrapping_add(signed(a));
            hash ^= hash << 10;
            hash = hash.wrapping_add(hash >> 1);
        }
        _ => {}
    }
    hash ^= hash << 3;
    hash = hash.wrapping_add(hash >> 5);
    hash ^= hash << 4;
    hash = hash.wrapping_add(hash >> 17);
    hash ^= hash << 25;
    hash.wrapping_add(hash >> 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_are_checked_as_depmod_reads_them() {
        for good in ["6.1.0-56-amd64", "6.1", "6.1abc", " 6.1", "+6.1", "6.-1"] {
            assert!(check_release(good).is_ok(), "{good:?}");
        }
        for bad in ["6", "6.x", "a.1", "6..1", ""] {
            assert_eq!(
                check_release(bad),
                Err(DepmodError::BadRelease(bad.to_string()))
            );
        }
    }

    #[test]
    fn device_numbers_follow_scanf() {
        assert_eq!(device_numbers(b"10-237"), Some((10, 237)));
        assert_eq!(device_numbers(b" 7-+8x"), Some((7, 8)));
        assert_eq!(device_numbers(b"10-*"), None);
        assert_eq!(device_numbers(b"-1-0"), Some((u32::MAX, 0)));
    }

    #[test]
    fn aliases_keep_dashes_only_in_brackets() {
        assert_eq!(
            normalize_alias(b"a-b[x-y]c-d").as_deref(),
            Some(&b"a_b[x-y]c_d"[..])
        );
        assert_eq!(
            normalize_alias(b"[a[b]-c").as_deref(),
            Some(&b"[a[b]_c"[..])
        );
        assert_eq!(normalize_alias(b"bad[open-"), None);
        assert_eq!(normalize_alias(b"[]-]"), None);
    }
}
