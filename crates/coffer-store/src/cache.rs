//! A read cache in front of the store, for the single-writer embedded deployment.
//!
//! Safe only when this process is the store's only writer (SQLite in the data directory): every
//! write goes through [`crate::StoreHandle::write`], which invalidates the keys it touched once
//! the transaction has committed, before the caller answers its client. A generation counter
//! keeps a read that raced with a write from caching the value it read before that write.
//! Scans are cached per table and dropped whenever anything in the table changes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::Record;

const MAX_GETS: usize = 100_000;
const MAX_SCANS: usize = 4_096;

type ScanKey = (String, String, Option<String>, usize);

#[derive(Default)]
struct State {
    generation: u64,
    gets: HashMap<(String, String), Option<Arc<Vec<u8>>>>,
    scans: HashMap<ScanKey, Arc<Vec<Record>>>,
    table_generation: HashMap<String, u64>,
}

#[derive(Default)]
pub(crate) struct ReadCache {
    state: RwLock<State>,
}

impl ReadCache {
    pub fn generation(&self) -> u64 {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .generation
    }

    pub fn get(&self, table: &str, key: &str) -> Option<Option<Arc<Vec<u8>>>> {
        let s = self.state.read().unwrap_or_else(|e| e.into_inner());
        s.gets.get(&(table.to_string(), key.to_string())).cloned()
    }

    /// Remembers a value read at `generation`, unless a write happened since.
    pub fn fill_get(&self, generation: u64, table: &str, key: &str, value: Option<Arc<Vec<u8>>>) {
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        if s.generation != generation {
            return;
        }
        if s.gets.len() >= MAX_GETS {
            s.gets.clear();
        }
        s.gets.insert((table.to_string(), key.to_string()), value);
    }

    pub fn scan(&self, key: &ScanKey) -> Option<Arc<Vec<Record>>> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .scans
            .get(key)
            .cloned()
    }

    pub fn fill_scan(&self, generation: u64, key: ScanKey, rows: Arc<Vec<Record>>) {
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        if s.generation != generation {
            return;
        }
        if s.scans.len() >= MAX_SCANS {
            s.scans.clear();
        }
        s.scans.insert(key, rows);
    }

    /// Forgets everything cached about the given (table, key) pairs.
    pub fn invalidate(&self, touched: &[(String, String)]) {
        if touched.is_empty() {
            return;
        }
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        s.generation += 1;
        for (table, key) in touched {
            s.gets.remove(&(table.clone(), key.clone()));
            *s.table_generation.entry(table.clone()).or_default() += 1;
            s.scans.retain(|k, _| &k.0 != table);
        }
    }

    pub fn clear(&self) {
        let mut s = self.state.write().unwrap_or_else(|e| e.into_inner());
        s.generation += 1;
        s.gets.clear();
        s.scans.clear();
    }
}
