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
//!
//! Reading `data_version` is a read transaction (two file-lock system calls, about
//! 3 us), so one read serves every request that arrived before it started: a request
//! takes a [`ReadPoint`] when its datagram is received, and any probe that *started*
//! after that point is fresh enough for it: every commit that finished before the
//! datagram arrived is in it. A batch of datagrams received together, or requests on
//! several threads waiting at once, share one probe.

use super::facts::Facts;
use super::{Store, StoreError};
use rusqlite::Connection;
// foldhash, seeded per process: these maps are keyed by what senders choose.
use foldhash::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The moment a request arrived, as the number of `data_version` probes started
/// before it: the request needs a probe numbered higher than this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPoint(u64);

/// Codes kept at most (unknown codes included, so a flood of guesses does not reach
/// the database either); past this the cache starts over.
const MAX_ENTRIES: usize = 200_000;

#[derive(Debug, Default)]
struct State {
    /// The `data_version` the entries belong to.
    version: i64,
    /// business -> code -> facts, `None` for a code that does not exist (two levels,
    /// so a lookup borrows the code instead of allocating a key).
    entries: HashMap<i64, HashMap<Box<str>, Option<Arc<Facts>>>>,
    /// Codes held, over all businesses.
    len: usize,
}

#[derive(Debug)]
pub(super) struct FactsCache {
    /// Reads `data_version` and nothing else; probes run one at a time under this lock.
    probe: Mutex<Connection>,
    /// Probes started so far (each takes the next number before it reads).
    started: AtomicU64,
    /// The number of the last finished probe and what it read. The version is stored
    /// before the number, so a reader that sees number n reads that probe's version
    /// or a later one: either is fresh enough for a point below n.
    last_number: AtomicU64,
    last_version: AtomicI64,
    state: Mutex<State>,
}

impl FactsCache {
    pub(super) fn new(probe: Connection) -> Self {
        Self {
            probe: Mutex::new(probe),
            started: AtomicU64::new(0),
            last_number: AtomicU64::new(0),
            last_version: AtomicI64::new(0),
            state: Mutex::new(State::default()),
        }
    }

    /// Now, as a point that later reads must be at least as fresh as.
    pub(super) fn read_point(&self) -> ReadPoint {
        ReadPoint(self.started.load(Ordering::SeqCst))
    }

    /// The database's version as of a probe started after `point`: a finished one if
    /// there is one, else a new one (waiting for one in progress, which may do).
    pub(super) fn version_after(&self, point: ReadPoint, store: &Store) -> Result<i64, StoreError> {
        if let Some(v) = self.fresh(point) {
            return Ok(v);
        }
        let probe = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = self.fresh(point) {
            return Ok(v); // another thread probed while this one waited
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let version = probe
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(|e| store.sql(e))?;
        self.last_version.store(version, Ordering::SeqCst);
        self.last_number.store(number, Ordering::SeqCst);
        Ok(version)
    }

    fn fresh(&self, point: ReadPoint) -> Option<i64> {
        (self.last_number.load(Ordering::SeqCst) > point.0)
            .then(|| self.last_version.load(Ordering::SeqCst))
    }

    pub(super) fn get(
        &self,
        version: i64,
        business_id: i64,
        code: &str,
    ) -> Option<Option<Arc<Facts>>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // One probe connection's data_version only grows: a newer version empties the
        // cache; an older one (a thread that read its version before another moved
        // the cache on) misses without throwing the newer entries away.
        if version > state.version {
            state.entries.clear();
            state.len = 0;
            state.version = version;
            return None;
        }
        if version < state.version {
            return None;
        }
        state.entries.get(&business_id)?.get(code).cloned()
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
        if state.len >= MAX_ENTRIES {
            state.entries.clear();
            state.len = 0;
        }
        let added = state
            .entries
            .entry(business_id)
            .or_default()
            .insert(code.into(), facts)
            .is_none();
        state.len += usize::from(added);
    }
}
