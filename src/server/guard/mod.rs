//! Keeps the failure budgets against guessing (`policy::lockout`): per device, per
//! account (email + PIN), per NAS of each client and for the whole server, in memory
//! (bounded), with locks persisted in the store (they survive a restart, and
//! `lockout clear` reaches the running server).
//!
//! Every attempt is admitted before it is decided and settled after, under one lock,
//! so concurrent attempts cannot get past a budget, and a failure and the check that
//! reads it cannot interleave. A lock is remembered in memory first and written to the
//! store after; memory alone answers until the write is done, so a check racing the
//! write never mistakes "not written yet" for "cleared by an admin".

mod report;
use report::announce_start;
mod share;

use crate::model::{LogSafe, Mac, MaskedCode, NasKey};
use crate::policy::RejectReason;
use crate::policy::lockout::{Admission, FailureRecord, GuardRules, LockoutRules};
use crate::store::{LockScope, LockoutRow, SharedFailure, Store, StoreError};
use chrono::{DateTime, Utc};
// foldhash, seeded per process: these maps are keyed by what senders choose.
use foldhash::HashMap;
use std::hash::BuildHasher;
use std::hash::Hash;
use std::sync::{Mutex, MutexGuard};

/// Subjects tracked in memory at most, per scope; under a flood of random MACs or
/// emails the records that no longer matter go first, then unlocked ones.
const MAX_TRACKED: usize = 100_000;

/// One subject's record and what the store knows of it.
#[derive(Debug, Clone)]
struct Tracked {
    record: FailureRecord,
    /// The record's lock is in the store. False from the moment a lock starts until
    /// its row is written: meanwhile memory alone answers.
    saved: bool,
    /// The database version at which the store last confirmed the lock (an admin's
    /// `lockout clear` moves the version, so it is asked again after any change).
    confirmed: Option<i64>,
    /// The start of the current lock was logged and its end not yet.
    announced: bool,
    /// A NAS's subject text ([`NasLabel`]), made once when the NAS is first seen.
    label: Option<Box<str>>,
}

impl Tracked {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            record: FailureRecord::new(now),
            saved: false,
            confirmed: None,
            announced: false,
            label: None,
        }
    }
}

/// A NAS as the budgets' map keys it: fixed-size and made without formatting, so the
/// per-request lookup allocates nothing (hashes of the client's name and of
/// NAS-Identifier, seeded per process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct NasId {
    client: u64,
    source: std::net::IpAddr,
    nas_ip: Option<std::net::IpAddr>,
    nas_id: Option<u64>,
}

/// The subjects of one scope.
#[derive(Debug)]
struct Scope<K> {
    map: HashMap<K, Tracked>,
}

impl<K> Default for Scope<K> {
    fn default() -> Self {
        Self {
            map: HashMap::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> Scope<K> {
    /// The record of `key`, created if new (making room if the scope is full).
    /// One hash lookup while the scope has room (a login's common case).
    fn entry(&mut self, key: &K, rules: &LockoutRules, now: DateTime<Utc>) -> &mut Tracked {
        if self.map.len() >= MAX_TRACKED && !self.map.contains_key(key) {
            self.map.retain(|_, t| !rules.expired(&t.record, now));
            if self.map.len() >= MAX_TRACKED {
                self.map.retain(|_, t| {
                    t.record.in_flight > 0 || rules.locked_until(&t.record, now).is_some()
                });
            }
        }
        self.map
            .entry(key.clone())
            .or_insert_with(|| Tracked::new(now))
    }
}

#[derive(Debug, Default)]
struct State {
    devices: Scope<Mac>,
    /// (business, lower-cased email).
    accounts: Scope<(i64, Box<str>)>,
    nases: Scope<NasId>,
    /// NAS locks read from the store at start (and failures other servers shared),
    /// by subject text, until their NAS is seen here.
    loaded_nases: HashMap<Box<str>, Tracked>,
    /// The NASes seen here by subject text, for the failures other servers share.
    labels: HashMap<Box<str>, NasId>,
    server: Option<Tracked>,
}

/// A NAS as budgets and logs name it: the client's name and the NAS's key (its
/// address, NAS-IP-Address and NAS-Identifier: several NASes behind one CIDR client,
/// or behind one proxy, each get a budget of their own).
#[derive(Debug, Clone, Copy)]
pub struct NasLabel<'a> {
    pub client: &'a std::sync::Arc<str>,
    pub nas: NasKey<'a>,
}

impl std::fmt::Display for NasLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.client, self.nas)
    }
}

/// Who one login attempt is charged to.
#[derive(Debug, Clone, Copy)]
pub struct Charge<'a> {
    pub nas: NasLabel<'a>,
    pub device: Option<Mac>,
    /// The business and the email, for an email + PIN login.
    pub account: Option<(i64, &'a str)>,
    /// The User-Name, for log lines (masked).
    pub user_name: Option<&'a str>,
}

/// What the guard says of an attempt before it is decided.
#[derive(Debug)]
pub enum Verdict {
    /// Decide it, then settle the ticket.
    Go(Ticket),
    /// Refuse it without deciding: the device is locked.
    Refuse(RejectReason),
    /// A budget it would draw on (account, NAS, server: `scope`) is spent: only a
    /// device already bound to the code it presents may go on, and uncounted; any
    /// other gets `reason`, whatever its code.
    BoundOnly {
        scope: LockScope,
        reason: RejectReason,
        /// The places the attempt took before the spent scope (its device, its
        /// account): settle it like any other, counted when the device was not bound.
        ticket: Ticket,
    },
}

/// An admitted attempt: which subjects hold a place for it.
#[derive(Debug)]
#[must_use = "settle the ticket, or the attempt holds a place in its budgets"]
pub struct Ticket {
    device: Option<Mac>,
    account: Option<(i64, Box<str>)>,
    nas: Option<NasId>,
    server: bool,
    /// The client, for the rows of locks this attempt starts.
    client: std::sync::Arc<str>,
}

impl Ticket {
    /// A copy that finds the same records (not a place of its own: never settled).
    fn locator(&self) -> Ticket {
        Ticket {
            device: self.device,
            account: self.account.clone(),
            nas: self.nas,
            server: self.server,
            client: self.client.clone(),
        }
    }

    /// The records holding a place for this attempt, with their scopes.
    fn places_with_scope<'s>(
        &self,
        state: &'s mut State,
    ) -> impl Iterator<Item = (LockScope, &'s mut Tracked)> {
        let State {
            devices,
            accounts,
            nases,
            server,
            ..
        } = state;
        let device = self.device.and_then(|m| devices.map.get_mut(&m));
        let account = self.account.as_ref().and_then(|k| accounts.map.get_mut(k));
        let nas = self.nas.and_then(|n| nases.map.get_mut(&n));
        let server = server.as_mut().filter(|_| self.server);
        [
            device.map(|t| (LockScope::Device, t)),
            account.map(|t| (LockScope::Account, t)),
            nas.map(|t| (LockScope::Client, t)),
            server.map(|t| (LockScope::Server, t)),
        ]
        .into_iter()
        .flatten()
    }

    fn places<'s>(&self, state: &'s mut State) -> impl Iterator<Item = &'s mut Tracked> {
        self.places_with_scope(state).map(|(_, t)| t)
    }

    /// The stored subject of this attempt's record in `scope`.
    fn subject(&self, scope: LockScope) -> String {
        match scope {
            LockScope::Device => self.device.map(|m| m.to_string()).unwrap_or_default(),
            LockScope::Account => self
                .account
                .as_ref()
                .map(|(b, e)| account_subject(*b, e))
                .unwrap_or_default(),
            // A NAS's text is its record's label (see `settle`).
            LockScope::Client => String::new(),
            LockScope::Server => "server".to_string(),
        }
    }
}

/// A lock that has just started, to persist: its row, and where its record is.
#[derive(Debug)]
pub struct LockToSave {
    pub row: LockoutRow,
    place: Ticket,
}

/// A lock that has just started, to log and persist outside the guard's lock.
struct Started {
    scope: LockScope,
    subject: String,
    lockouts: u32,
    until: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct Guard {
    state: Mutex<State>,
    /// Seeds the hashes in [`NasId`].
    ids: foldhash::fast::RandomState,
    /// The budgets shared with other servers on the same database.
    sharing: share::Sharing,
}

/// Minutes from `now` to `until`, rounded up, at least 1 (for Reply-Messages).
fn minutes_until(now: DateTime<Utc>, until: DateTime<Utc>) -> u32 {
    let secs = (until - now).num_seconds().max(1);
    u32::try_from((secs + 59) / 60).unwrap_or(u32::MAX)
}

use crate::model::account_lock_subject as account_subject;

impl Guard {
    /// A guard that knows the locks in the store that still matter: active, or
    /// recent enough that the next lock doubles from their level.
    pub fn load(
        store: &Store,
        rules: &GuardRules,
        now: DateTime<Utc>,
    ) -> Result<Guard, StoreError> {
        let guard = Guard {
            sharing: share::Sharing::for_store(store)?,
            ..Guard::default()
        };
        let mut state = guard.state();
        for row in store.list_lockouts(None)? {
            let tracked = Tracked {
                record: FailureRecord {
                    clear_at: now,
                    in_flight: 0,
                    lockouts: row.lockouts,
                    locked_until: Some(row.locked_until),
                },
                saved: true,
                confirmed: None,
                announced: row.locked_until > now,
                label: None,
            };
            if rules.of(row.scope).expired(&tracked.record, now) {
                continue;
            }
            match row.scope {
                LockScope::Device => {
                    if let Ok(mac) = row.subject.parse::<Mac>() {
                        state.devices.map.insert(mac, tracked);
                    }
                }
                LockScope::Account => {
                    if let Some((b, email)) = row.subject.split_once(':')
                        && let Ok(b) = b.parse::<i64>()
                    {
                        state.accounts.map.insert((b, email.into()), tracked);
                    }
                }
                LockScope::Client => {
                    state.loaded_nases.insert(row.subject.into(), tracked);
                }
                LockScope::Server => state.server = Some(tracked),
            }
        }
        drop(state);
        Ok(guard)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits an attempt, or says why it is refused. `version` is the database's
    /// version as of the request's arrival (locks remembered in memory are confirmed
    /// against the store once per version, so an admin's clear ends them at once).
    /// Whatever the verdict, a ticket it carries must be settled.
    pub fn admit(
        &self,
        store: &Store,
        rules: &GuardRules,
        charge: &Charge<'_>,
        version: i64,
        now: DateTime<Utc>,
    ) -> Result<Verdict, StoreError> {
        let nas = NasId {
            client: self.ids.hash_one(&**charge.nas.client),
            source: charge.nas.nas.source,
            nas_ip: charge.nas.nas.nas_ip,
            nas_id: charge.nas.nas.nas_id.map(|id| self.ids.hash_one(id)),
        };
        let mut ticket = Ticket {
            device: None,
            account: None,
            nas: None,
            server: false,
            client: charge.nas.client.clone(),
        };
        let mut state = self.state();
        let state = &mut *state;
        let refusal = admit_scopes(store, rules, charge, nas, &mut ticket, state, version, now);
        let (scope, admission) = match refusal {
            Ok(None) => return Ok(Verdict::Go(ticket)),
            Ok(Some(refused)) => refused,
            Err(e) => {
                release(state, &ticket);
                return Err(e);
            }
        };
        // A spent budget refuses faster than one failure is forgotten.
        let until = match admission {
            Admission::Locked { until } | Admission::Full { until } => until,
            Admission::Admitted => now,
        };
        if scope == LockScope::Device {
            return Ok(Verdict::Refuse(RejectReason::LockedOut { until }));
        }
        let minutes = minutes_until(now, until);
        let reason = match scope {
            LockScope::Account => RejectReason::AccountLocked { minutes },
            _ => RejectReason::HotspotPaused { minutes },
        };
        // The device (and account) keep their places: whatever happens next counts
        // against them like any other attempt.
        Ok(Verdict::BoundOnly {
            scope,
            reason,
            ticket,
        })
    }

    /// Settles an admitted attempt: `counted` when it was refused and the device was
    /// not bound to the code it presented. Locks this failure started are logged
    /// (once, at warn) and counted in `metrics`; they are returned to be persisted
    /// (by the login writer: the caller must not wait for it). Memory answers for a
    /// lock until [`Guard::saved`] says its row is in the store.
    #[must_use = "persist the locks that started"]
    pub fn settle(
        &self,
        rules: &GuardRules,
        ticket: Ticket,
        counted: bool,
        charge: &Charge<'_>,
        metrics: &crate::metrics::Metrics,
        now: DateTime<Utc>,
    ) -> Vec<LockToSave> {
        let mut started = Vec::new();
        let mut shared = Vec::new();
        {
            let mut state = self.state();
            for (scope, t) in ticket.places_with_scope(&mut state) {
                let lock = rules.of(scope).settle(&mut t.record, counted, now);
                let subject = || match &t.label {
                    Some(label) => label.to_string(),
                    None => ticket.subject(scope),
                };
                if counted && self.shares() {
                    shared.push(SharedFailure {
                        scope,
                        subject: subject(),
                        at: now,
                        lock: lock.map(|until| (t.record.lockouts, until)),
                    });
                }
                if let Some(until) = lock {
                    let subject = subject();
                    t.saved = false;
                    t.announced = true;
                    started.push(Started {
                        scope,
                        subject,
                        lockouts: t.record.lockouts,
                        until,
                    });
                }
            }
        }
        shared.into_iter().for_each(|f| self.share(f));
        started
            .into_iter()
            .map(|lock| {
                announce_start(&lock, rules, charge, now);
                metrics.guard_lock_started(lock.scope);
                LockToSave {
                    row: LockoutRow {
                        scope: lock.scope,
                        subject: lock.subject,
                        lockouts: lock.lockouts,
                        locked_until: lock.until,
                        client: ticket.client.to_string(),
                        updated_at: now,
                    },
                    place: ticket.locator(),
                }
            })
            .collect()
    }

    /// The lock's row is in the store now: a lock cleared there is seen from now on.
    pub fn saved(&self, lock: &LockToSave) {
        let mut state = self.state();
        for (s, t) in lock.place.places_with_scope(&mut state) {
            if s == lock.row.scope && t.record.locked_until == Some(lock.row.locked_until) {
                t.saved = true;
            }
        }
    }
}

/// Admits the attempt in each scope in turn (device, account, NAS, server), noting
/// each place taken in `ticket`; stops at the first scope that refuses.
#[allow(clippy::too_many_arguments)]
fn admit_scopes(
    store: &Store,
    rules: &GuardRules,
    charge: &Charge<'_>,
    nas: NasId,
    ticket: &mut Ticket,
    state: &mut State,
    version: i64,
    now: DateTime<Utc>,
) -> Result<Option<(LockScope, Admission)>, StoreError> {
    if let Some(mac) = charge.device {
        let t = state.devices.entry(&mac, &rules.device, now);
        let subject = || mac.to_string();
        if let Some(refused) = admit_one(
            store,
            &rules.device,
            t,
            LockScope::Device,
            &subject,
            version,
            now,
        )? {
            return Ok(Some((LockScope::Device, refused)));
        }
        ticket.device = Some(mac);
    }
    if let Some((business_id, email)) = charge.account {
        let key = (business_id, email.to_lowercase().into_boxed_str());
        let t = state.accounts.entry(&key, &rules.account, now);
        let subject = || account_subject(business_id, &key.1);
        if let Some(refused) = admit_one(
            store,
            &rules.account,
            t,
            LockScope::Account,
            &subject,
            version,
            now,
        )? {
            return Ok(Some((LockScope::Account, refused)));
        }
        ticket.account = Some(key);
    }
    let t = state.nases.entry(&nas, &rules.client, now);
    if t.label.is_none() {
        // First sight of this NAS (since start): its text, and any lock read at start.
        let label: Box<str> = charge.nas.to_string().into();
        if let Some(loaded) = state.loaded_nases.remove(&label) {
            *t = loaded;
        }
        if state.labels.len() >= 2 * MAX_TRACKED {
            state.labels.clear();
        }
        state.labels.insert(label.clone(), nas);
        t.label = Some(label);
    }
    let subject = || charge.nas.to_string();
    if let Some(refused) = admit_one(
        store,
        &rules.client,
        t,
        LockScope::Client,
        &subject,
        version,
        now,
    )? {
        return Ok(Some((LockScope::Client, refused)));
    }
    ticket.nas = Some(nas);
    let t = state.server.get_or_insert_with(|| Tracked::new(now));
    if let Some(refused) = admit_one(
        store,
        &rules.server,
        t,
        LockScope::Server,
        &|| "server".to_string(),
        version,
        now,
    )? {
        return Ok(Some((LockScope::Server, refused)));
    }
    ticket.server = true;
    Ok(None)
}

/// Admits one subject; `Some` is its refusal. A lock remembered in memory and saved
/// is confirmed against the store once per database version: gone or shortened
/// there (an admin's `lockout clear`), it is forgotten here too.
fn admit_one(
    store: &Store,
    rules: &LockoutRules,
    t: &mut Tracked,
    scope: LockScope,
    subject: &dyn Fn() -> String,
    version: i64,
    now: DateTime<Utc>,
) -> Result<Option<Admission>, StoreError> {
    match rules.admit(&mut t.record, now) {
        Admission::Admitted => Ok(None),
        Admission::Locked { until } if t.saved && t.confirmed != Some(version) => {
            match store.lockout(scope, &subject())? {
                Some(row) if row.locked_until > now => {
                    t.confirmed = Some(version);
                    Ok(Some(Admission::Locked { until }))
                }
                _ => {
                    // Cleared by an admin: forget the subject entirely (its level too),
                    // but not the attempts in flight, which will still be settled.
                    let in_flight = t.record.in_flight;
                    *t = Tracked::new(now);
                    t.record.in_flight = in_flight;
                    Ok(match rules.admit(&mut t.record, now) {
                        Admission::Admitted => None,
                        refused => Some(refused),
                    })
                }
            }
        }
        refused => Ok(Some(refused)),
    }
}

/// Gives back every place `ticket` holds (nothing was decided).
fn release(state: &mut State, ticket: &Ticket) {
    for t in ticket.places(state) {
        t.record.in_flight = t.record.in_flight.saturating_sub(1);
    }
}
