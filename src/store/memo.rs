//! The in-memory cache in front of a schematic store: found schematics are kept (least
//! recently used evicted beyond the capacity) and never expire, since an ID names its
//! content; "not found" is remembered for a short while only, so a schematic another replica
//! stores is seen soon; a put overrides a remembered miss. Concurrent lookups of one ID reach
//! the store once.

use super::{SchematicStore, StoreError, Stored};
use crate::schematic::SchematicId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug)]
enum Entry {
    Found { bytes: Arc<Vec<u8>>, used: u64 },
    Missing { until: Instant },
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<SchematicId, Entry>,
    clock: u64,
    found: usize,
}

#[derive(Debug)]
pub struct MemoSchematicStore {
    inner: Arc<dyn SchematicStore>,
    capacity: usize,
    negative_ttl: Duration,
    table: Mutex<Table>,
    /// One lock per ID being looked up in the store.
    lookups: Mutex<HashMap<SchematicId, Arc<Mutex<()>>>>,
}

impl MemoSchematicStore {
    pub fn new(
        inner: Arc<dyn SchematicStore>,
        capacity: usize,
        negative_ttl: Duration,
    ) -> MemoSchematicStore {
        MemoSchematicStore {
            inner,
            capacity: capacity.max(1),
            negative_ttl,
            table: Mutex::new(Table::default()),
            lookups: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(Some(bytes))` found, `Some(None)` recently missing, `None` unknown.
    fn remembered(&self, id: &SchematicId) -> Option<Option<Vec<u8>>> {
        let mut table = self.table.lock().ok()?;
        table.clock += 1;
        let now = table.clock;
        match table.entries.get_mut(id)? {
            Entry::Found { bytes, used } => {
                *used = now;
                Some(Some(bytes.as_ref().clone()))
            }
            Entry::Missing { until } if *until > Instant::now() => Some(None),
            Entry::Missing { .. } => None,
        }
    }

    fn remember(&self, id: SchematicId, bytes: Option<Vec<u8>>) {
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        table.clock += 1;
        let entry = match bytes {
            Some(bytes) => Entry::Found {
                bytes: Arc::new(bytes),
                used: table.clock,
            },
            None if self.negative_ttl.is_zero() => {
                table.entries.remove(&id);
                return;
            }
            None => Entry::Missing {
                until: Instant::now() + self.negative_ttl,
            },
        };
        let was_found = matches!(table.entries.get(&id), Some(Entry::Found { .. }));
        let is_found = matches!(entry, Entry::Found { .. });
        table.entries.insert(id, entry);
        table.found = table.found + usize::from(is_found) - usize::from(was_found);
        if table.found > self.capacity {
            evict(&mut table, self.capacity);
        }
    }
}

/// Drops expired misses and the least recently used found entries down to `capacity`;
/// runs when the table overflows, evicting a tenth at once so it runs rarely.
fn evict(table: &mut Table, capacity: usize) {
    let now = Instant::now();
    table
        .entries
        .retain(|_, entry| !matches!(entry, Entry::Missing { until } if *until <= now));
    let mut uses: Vec<u64> = table
        .entries
        .values()
        .filter_map(|entry| match entry {
            Entry::Found { used, .. } => Some(*used),
            Entry::Missing { .. } => None,
        })
        .collect();
    let keep = capacity - capacity / 10;
    if uses.len() <= keep {
        return;
    }
    uses.sort_unstable();
    let Some(&cutoff) = uses.get(uses.len() - keep) else {
        return;
    };
    table
        .entries
        .retain(|_, entry| !matches!(entry, Entry::Found { used, .. } if *used < cutoff));
    table.found = table
        .entries
        .values()
        .filter(|entry| matches!(entry, Entry::Found { .. }))
        .count();
}

impl SchematicStore for MemoSchematicStore {
    fn put(&self, id: &SchematicId, canonical: &[u8]) -> Result<Stored, StoreError> {
        if let Some(Some(_)) = self.remembered(id) {
            return Ok(Stored::AlreadyPresent);
        }
        let stored = self.inner.put(id, canonical)?;
        self.remember(*id, Some(canonical.to_vec()));
        Ok(stored)
    }

    fn get(&self, id: &SchematicId) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(known) = self.remembered(id) {
            return Ok(known);
        }
        let lock = self
            .lookups
            .lock()
            .map(|mut lookups| lookups.entry(*id).or_default().clone())
            .unwrap_or_default();
        let _only_one = lock.lock();
        // Whoever held the lock before may have answered for us.
        if let Some(known) = self.remembered(id) {
            return Ok(known);
        }
        let found = self.inner.get(id);
        if let Ok(found) = &found {
            self.remember(*id, found.clone());
        }
        if let Ok(mut lookups) = self.lookups.lock() {
            lookups.remove(id);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Debug, Default)]
    struct Counting {
        stored: Mutex<HashMap<SchematicId, Vec<u8>>>,
        gets: AtomicUsize,
    }

    impl SchematicStore for Counting {
        fn put(&self, id: &SchematicId, canonical: &[u8]) -> Result<Stored, StoreError> {
            self.stored.lock().unwrap().insert(*id, canonical.to_vec());
            Ok(Stored::Created)
        }
        fn get(&self, id: &SchematicId) -> Result<Option<Vec<u8>>, StoreError> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            Ok(self.stored.lock().unwrap().get(id).cloned())
        }
    }

    fn id(text: &str) -> (SchematicId, Vec<u8>) {
        (
            SchematicId::of_canonical(text.as_bytes()),
            text.as_bytes().to_vec(),
        )
    }

    #[test]
    fn hits_misses_and_capacity() {
        let inner = Arc::new(Counting::default());
        let memo = MemoSchematicStore::new(inner.clone(), 10, Duration::from_secs(60));
        let (a, a_bytes) = id("a: 1\n");
        assert_eq!(memo.get(&a).unwrap(), None);
        assert_eq!(memo.get(&a).unwrap(), None, "the miss is remembered");
        assert_eq!(inner.gets.load(Ordering::SeqCst), 1);
        // Another replica stores it: the remembered miss hides it until a put here.
        inner.put(&a, &a_bytes).unwrap();
        assert_eq!(memo.get(&a).unwrap(), None);
        memo.put(&a, &a_bytes).unwrap();
        assert_eq!(memo.get(&a).unwrap(), Some(a_bytes.clone()));
        assert_eq!(inner.gets.load(Ordering::SeqCst), 1);
        for n in 0..50 {
            let (other, bytes) = id(&format!("n: {n}\n"));
            memo.put(&other, &bytes).unwrap();
            memo.get(&a).unwrap();
        }
        let table = memo.table.lock().unwrap();
        assert!(table.found <= 10, "{} kept", table.found);
        assert!(
            matches!(table.entries.get(&a), Some(Entry::Found { .. })),
            "the most used entry stays"
        );
    }

    #[test]
    fn misses_expire() {
        let inner = Arc::new(Counting::default());
        let memo = MemoSchematicStore::new(inner.clone(), 10, Duration::from_millis(20));
        let (a, a_bytes) = id("a: 2\n");
        assert_eq!(memo.get(&a).unwrap(), None);
        inner.put(&a, &a_bytes).unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(memo.get(&a).unwrap(), Some(a_bytes));
    }
}
