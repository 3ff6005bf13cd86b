//! The login facts cache. A login needs a token, its owner and its usage: five
//! queries. While those rows are unchanged the answers are the same, so they are kept
//! in memory and served again; in steady state (devices bound, no admin activity) a
//! login reads no table at all.
//!
//! "Unchanged" is told in two steps. SQLite's `PRAGMA data_version`, read on a
//! connection of its own that never writes, moves whenever any other connection, in
//! this process or another (the admin CLI), commits. When it has moved, the same
//! connection reads `fact_changes`, which triggers fill with the (business, code) of
//! every token whose facts a commit touched (schema V9), and drops just those entries:
//! a device bound to one code leaves the other 9,999 cached. A cache that fell behind
//! the pruned rows, or sees a flood of changes, starts over.
//!
//! The version and the changes are applied before the version is published, so an
//! entry is only ever stored under a version by a reader whose facts were read after
//! that version's changes were dropped, and nothing stale is ever served.
//!
//! Reading `data_version` is a read transaction (two file-lock system calls, about
//! 3 us), so one read serves every request that arrived before it started: a request
//! takes a [`ReadPoint`] when its datagram is received, and any probe that *started*
//! after that point is fresh enough for it: every commit that finished before the
//! datagram arrived is in it. A batch of datagrams received together, or requests on
//! several threads waiting at once, share one probe.

use super::facts::Facts;
use super::sql::{Db, DbError};
use super::{Conn, Store, StoreError};
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

/// Changes read at once at most; more than this (a bulk import) and the cache starts
/// over, which is cheaper than dropping them one by one.
const MAX_CHANGES: usize = 4096;

/// The probe's connection and what it has applied.
#[derive(Debug)]
struct Probe {
    conn: Conn,
    /// The `data_version` last read (`None` before the first probe).
    version: Option<i64>,
    /// The newest `fact_changes.seq` applied.
    seen: i64,
}

/// What moved since the last probe.
enum Changed {
    /// Anything may have: drop every entry.
    All,
    /// Only these (business, code) entries, in commit order.
    Codes(Vec<Change>),
}

/// One row of `fact_changes`.
struct Change {
    business_id: i64,
    code: String,
    /// A device was bound to the code, and nothing else changed: the entry is kept
    /// with the device added (read as text; one that does not parse drops it).
    bound: Option<String>,
}

#[derive(Debug)]
pub(super) struct FactsCache {
    /// Reads `data_version` and `fact_changes` and nothing else; probes run one at a
    /// time under this lock.
    probe: Mutex<Probe>,
    /// Probes started so far (each takes the next number before it reads).
    started: AtomicU64,
    /// The number of the last finished probe and what it read. The version is stored
    /// before the number, so a reader that sees number n reads that probe's version
    /// or a later one: either is fresh enough for a point below n.
    last_number: AtomicU64,
    last_version: AtomicI64,
    state: Mutex<State>,
    /// Lookups answered from the database (a miss), for the metrics and tests.
    misses: AtomicU64,
}

impl FactsCache {
    pub(super) fn new(probe: Conn) -> Self {
        Self {
            probe: Mutex::new(Probe {
                conn: probe,
                version: None,
                seen: 0,
            }),
            started: AtomicU64::new(0),
            last_number: AtomicU64::new(0),
            last_version: AtomicI64::new(0),
            state: Mutex::new(State::default()),
            misses: AtomicU64::new(0),
        }
    }

    /// Now, as a point that later reads must be at least as fresh as.
    pub(super) fn read_point(&self) -> ReadPoint {
        ReadPoint(self.started.load(Ordering::SeqCst))
    }

    /// The database's version as of a probe started after `point`: a finished one if
    /// there is one, else a new one (waiting for one in progress, which may do). A
    /// probe that finds the version moved drops the entries of the codes that changed
    /// before it publishes the version.
    pub(super) fn version_after(&self, point: ReadPoint, store: &Store) -> Result<i64, StoreError> {
        if let Some(v) = self.fresh(point) {
            return Ok(v);
        }
        let mut probe = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = self.fresh(point) {
            return Ok(v); // another thread probed while this one waited
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        if !probe.conn.reusable() {
            probe.conn = store.connect()?; // lost (PostgreSQL): connect again
        }
        let version = probe.conn.version().map_err(|e| store.located(e.into()))?;
        if probe.version != Some(version) {
            // Read after the version: whatever it misses moves the next version.
            let seen = probe.version.map(|_| probe.seen);
            let (changed, seen) =
                changes_since(probe.conn.db(), seen).map_err(|e| store.located(e.into()))?;
            self.apply(version, changed);
            probe.version = Some(version);
            probe.seen = seen;
        }
        self.last_version.store(version, Ordering::SeqCst);
        self.last_number.store(number, Ordering::SeqCst);
        Ok(version)
    }

    /// The version of the last finished probe, if any probe finished.
    pub(super) fn last_version(&self) -> Option<i64> {
        (self.last_number.load(Ordering::SeqCst) > 0)
            .then(|| self.last_version.load(Ordering::SeqCst))
    }

    fn fresh(&self, point: ReadPoint) -> Option<i64> {
        (self.last_number.load(Ordering::SeqCst) > point.0)
            .then(|| self.last_version.load(Ordering::SeqCst))
    }

    /// Moves the entries to `version`, without those `changed` names.
    fn apply(&self, version: i64, changed: Changed) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match changed {
            Changed::All => {
                state.entries.clear();
                state.len = 0;
            }
            Changed::Codes(changes) => {
                for change in changes {
                    let Some(codes) = state.entries.get_mut(&change.business_id) else {
                        continue;
                    };
                    let Some(entry) = codes.get_mut(change.code.as_str()) else {
                        continue;
                    };
                    // An entry is at least as new as the version it is stored under,
                    // so it may already hold the device: adding is idempotent.
                    let added = match (change.bound.and_then(|m| m.parse().ok()), entry) {
                        (Some(mac), Some(facts)) => {
                            if !facts.2.is_bound(mac) {
                                *facts = Arc::new(with_device(facts, mac));
                            }
                            true
                        }
                        _ => false,
                    };
                    if !added {
                        codes.remove(change.code.as_str());
                        state.len -= 1;
                    }
                }
            }
        }
        state.version = version;
    }

    /// Lookups answered from the database so far.
    pub(super) fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// The entry of `code` as of `version`: `None` on a miss, `Some(None)` for a code
    /// known not to exist.
    pub(super) fn get(
        &self,
        version: i64,
        business_id: i64,
        code: &str,
    ) -> Option<Option<Arc<Facts>>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // A thread that read its version before a newer probe moved the cache on
        // misses (and will not store what it reads).
        let hit = if version == state.version {
            state
                .entries
                .get(&business_id)
                .and_then(|m| m.get(code))
                .cloned()
        } else {
            None
        };
        if hit.is_none() {
            self.misses.fetch_add(1, Ordering::Relaxed);
        }
        hit
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

/// What `fact_changes` says changed after `seen` (`None`: nothing is known yet), and
/// the newest change now.
fn changes_since(db: &mut dyn Db, seen: Option<i64>) -> Result<(Changed, i64), DbError> {
    let newest = |db: &mut dyn Db| -> Result<i64, DbError> {
        db.query_one("SELECT COALESCE(max(seq), 0) FROM fact_changes", &[])?
            .get(0)
    };
    let Some(seen) = seen else {
        return Ok((Changed::All, newest(db)?));
    };
    let rows = db.query(
        "SELECT seq, business_id, code, bound_mac FROM fact_changes WHERE seq > $1 ORDER BY seq LIMIT $2",
        &[&seen, &(MAX_CHANGES as i64 + 1)],
    )?;
    let rows: Vec<(i64, Change)> = rows
        .iter()
        .map(|r| {
            Ok((
                r.get(0)?,
                Change {
                    business_id: r.get(1)?,
                    code: r.get(2)?,
                    bound: r.get(3)?,
                },
            ))
        })
        .collect::<Result<_, DbError>>()?;
    // Rows after `seen` already pruned (the first is not the next one), or too many.
    // PostgreSQL numbers may skip (a rolled-back change), so a gap is only known when
    // the next number's row is gone while older rows were deleted (pruned past it).
    let gap = rows.first().is_some_and(|(seq, _)| *seq != seen + 1) && pruned_past(db, seen)?;
    if gap || rows.len() > MAX_CHANGES {
        return Ok((Changed::All, newest(db)?));
    }
    let last = rows.last().map_or(seen, |(seq, _)| *seq);
    Ok((
        Changed::Codes(rows.into_iter().map(|(_, c)| c).collect()),
        last,
    ))
}

/// Whether rows after `seen` were pruned: the oldest row kept is newer than the next
/// one this probe needs.
fn pruned_past(db: &mut dyn Db, seen: i64) -> Result<bool, DbError> {
    let oldest: Option<i64> = db
        .query_one("SELECT min(seq) FROM fact_changes", &[])?
        .get(0)?;
    Ok(oldest.is_none_or(|o| o > seen + 1))
}

/// `facts` with `mac` among the bound devices.
fn with_device(facts: &Facts, mac: crate::model::Mac) -> Facts {
    let (token, owner, usage) = facts;
    (token.clone(), *owner, usage.with_device(mac))
}

/// `fact_changes` rows kept: enough for a cache probed a few times a second to follow
/// any rate of writes; one idle longer than that starts over.
const KEPT_CHANGES: i64 = 100_000;

/// Deletes all but the newest [`KEPT_CHANGES`] rows of `fact_changes` (the writer
/// threads call this now and then, inside their own transactions).
pub(super) fn prune_changes(db: &mut dyn Db) -> Result<u64, DbError> {
    db.execute(
        "DELETE FROM fact_changes WHERE seq <= (SELECT max(seq) FROM fact_changes) - $1",
        &[&KEPT_CHANGES],
    )
}

#[cfg(test)]
mod tests {
    use crate::model::Mac;
    use crate::store::testing::{backends, new, now};

    fn mac(n: u8) -> Mac {
        format!("02:00:00:00:00:{n:02x}").parse().unwrap()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Whatever another connection writes, in whatever order, a login's facts read
        /// through the cache equal the facts read from the database: the cache keeps
        /// what no change touched, adds the devices changes name, and drops the rest.
        #[test]
        fn cached_facts_always_equal_a_fresh_read(
            ops in proptest::collection::vec((0u8..7, 0usize..4, 0u8..6), 1..60),
        ) {
          for server in backends() {
            let admin = server.another();
            let codes = ["10000", "10001", "10002", "10003"];
            let mut ids: Vec<Option<i64>> = codes
                .iter()
                .map(|c| Some(admin.create_token(&new(c), now()).unwrap()))
                .collect();
            let mut session = 0;
            for &(op, i, m) in &ops {
                let id = ids[i];
                match (op, id) {
                    (0 | 1, Some(id)) => {
                        let _ = admin.bind_device(id, mac(m), Some(4), now()).unwrap();
                    }
                    (2, Some(id)) => {
                        admin.unbind_device(id, mac(m)).unwrap();
                    }
                    (3, Some(id)) => {
                        admin.revoke_token(id, now()).unwrap();
                    }
                    (4, Some(id)) => {
                        session += 1;
                        admin
                            .with_db(|db| {
                                Ok(db.execute(
                                    "INSERT INTO sessions (token_id, client, acct_session_id, mac, started_at, updated_at, session_time, nas) \
                                     VALUES ($1, 'nas', $2, $3, 0, 0, $4, 'nas')",
                                    &[&id, &format!("s{session}"), &mac(m).to_string(), &(i64::from(m) * 60)],
                                )?)
                            })
                            .unwrap();
                    }
                    (5, Some(id)) => {
                        admin.delete_token(id, now()).unwrap();
                        ids[i] = None;
                    }
                    (5, None) => ids[i] = Some(admin.create_token(&new(codes[i]), now()).unwrap()),
                    _ => {}
                }
                // Every code, through the cache, against a read that bypasses it.
                for (code, id) in codes.iter().zip(&ids) {
                    let cached = server
                        .login_facts(server.read_point(), 1, code, None, now(), now())
                        .unwrap();
                    let fresh = id.and_then(|id| server.token_facts(id, None, now(), now()).unwrap());
                    match (cached, fresh) {
                        (None, None) => {}
                        (Some((token, owner, usage)), Some((t, o, u))) => {
                            proptest::prop_assert_eq!(&*token, &t);
                            proptest::prop_assert_eq!(owner, o);
                            let mut seen: Vec<Mac> = usage.bound_devices.to_vec();
                            let mut truth: Vec<Mac> = u.bound_devices.to_vec();
                            seen.sort();
                            truth.sort();
                            proptest::prop_assert_eq!(seen, truth);
                            proptest::prop_assert_eq!(usage.used_seconds, u.used_seconds);
                            proptest::prop_assert_eq!(usage.open_sessions_elsewhere, u.open_sessions_elsewhere);
                        }
                        (cached, fresh) => proptest::prop_assert!(
                            false,
                            "{code} on {}: cached {:?} but the database says {:?}",
                            server.backend(),
                            cached.map(|c| c.0.id),
                            fresh.map(|f| f.0.id)
                        ),
                    }
                }
            }
          }
        }
    }
}
