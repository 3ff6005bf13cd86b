//! The login facts cache. A login needs a token, its owner and its usage: five
//! queries. While the database is unchanged those answers are the same, so they are
//! kept in memory and served again. "Unchanged" is SQLite's `PRAGMA data_version`,
//! read on a connection of its own that never writes: it moves whenever any other
//! connection, in this process or another (the admin CLI), commits. The whole cache is
//! dropped on any change, so nothing stale is ever served; in steady state (devices
//! bound, no admin activity) a login reads no table at all.
//!
//! The version is read before the facts, so facts stored under a version are at
//! least as new as that version.

use super::tokens::Facts;
use super::{Store, StoreError};
use rusqlite::Connection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Codes kept at most (unknown codes included, so a flood of guesses does not reach
/// the database either); past this the cache starts over.
const MAX_ENTRIES: usize = 200_000;

#[derive(Debug, Default)]
struct State {
    /// The `data_version` the entries belong to.
    version: i64,
    /// (business, code) -> facts, `None` for a code that does not exist.
    entries: HashMap<(i64, String), Option<Arc<Facts>>>,
}

#[derive(Debug)]
pub(super) struct FactsCache {
    /// Reads `data_version` and nothing else.
    probe: Mutex<Connection>,
    state: Mutex<State>,
}

impl FactsCache {
    pub(super) fn new(probe: Connection) -> Self {
        Self {
            probe: Mutex::new(probe),
            state: Mutex::new(State::default()),
        }
    }

    /// The database's version now.
    pub(super) fn version(&self, store: &Store) -> Result<i64, StoreError> {
        let probe = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        probe
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| store.sql(e))
    }

    pub(super) fn get(
        &self,
        version: i64,
        business_id: i64,
        code: &str,
    ) -> Option<Option<Arc<Facts>>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.version != version {
            state.entries.clear();
            state.version = version;
            return None;
        }
        state.entries.get(&(business_id, code.to_string())).cloned()
    }

    pub(super) fn put(
        &self,
        version: i64,
        business_id: i64,
        code: &str,
        facts: Option<Arc<Facts>>,
    ) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.version != version {
            return; // the database moved on while these were read
        }
        if state.entries.len() >= MAX_ENTRIES {
            state.entries.clear();
        }
        state.entries.insert((business_id, code.to_string()), facts);
    }
}
