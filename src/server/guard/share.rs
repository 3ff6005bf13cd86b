//! One budget across servers (PostgreSQL: several servers on one database). Each
//! counted failure is shared through the store (`guard_failures`, written by the
//! login writer with the lock rows, before the refusal is sent), and before a server
//! admits an attempt it folds in the failures the others shared since it last looked
//! (read when the database's version moved: a shared failure moves it). An attacker
//! taking turns between servers thus spends one budget: each guess is refused only
//! once it is on record where the next one will be checked.
//!
//! What stays per server: attempts in flight (admitted, not yet decided). Guesses
//! sent to several servers at the same instant are each admitted against the failures
//! on record, so at most one budget per server is in flight at once, as with one
//! server and one budget per NAS.

use super::{Guard, State, Tracked};
use crate::model::{LockScope, Mac};
use crate::policy::lockout::GuardRules;
use crate::store::{SharedFailure, Store, StoreError};
use chrono::{DateTime, Utc};
use std::sync::Mutex;

/// Shared failures read at once at most (more wait for the next request).
const READ_AT_ONCE: usize = 4096;

/// What this server has read of the others' failures.
#[derive(Debug, Default)]
pub(super) struct Sharing {
    /// Off for a single server (SQLite): nothing is shared or read.
    on: bool,
    /// The database version the last read was at, and the newest failure read.
    read: Mutex<(Option<i64>, i64)>,
    /// This server's counted failures, not yet handed to the login writer.
    outbox: Mutex<Vec<SharedFailure>>,
}

impl Sharing {
    /// Sharing for `store`: on when it is shared, reading from its newest failure
    /// (older ones are in the lock rows the guard loads at start).
    pub(super) fn for_store(store: &Store) -> Result<Sharing, StoreError> {
        if !store.is_shared() {
            return Ok(Sharing::default());
        }
        Ok(Sharing {
            on: true,
            read: Mutex::new((None, store.newest_failure()?)),
            outbox: Mutex::default(),
        })
    }
}

/// Where a subject's record is, by its stored text (made if new, within the bounds
/// of its scope).
fn record_of<'s>(
    state: &'s mut State,
    rules: &GuardRules,
    scope: LockScope,
    subject: &str,
    now: DateTime<Utc>,
) -> Option<&'s mut Tracked> {
    match scope {
        LockScope::Device => {
            let mac = subject.parse::<Mac>().ok()?;
            Some(state.devices.entry(&mac, &rules.device, now))
        }
        LockScope::Account => {
            let (b, email) = subject.split_once(':')?;
            let key = (b.parse::<i64>().ok()?, email.into());
            Some(state.accounts.entry(&key, &rules.account, now))
        }
        LockScope::Client => {
            // A NAS this server has seen, by its label; else kept by label until seen.
            let live = state.labels.get(subject).copied();
            match live {
                Some(id) if state.nases.map.contains_key(&id) => state.nases.map.get_mut(&id),
                _ => Some(
                    state
                        .loaded_nases
                        .entry(subject.into())
                        .or_insert_with(|| Tracked::new(now)),
                ),
            }
        }
        LockScope::Server => Some(state.server.get_or_insert_with(|| Tracked::new(now))),
    }
}

impl Guard {
    /// Whether failures are shared with other servers.
    pub fn shares(&self) -> bool {
        self.sharing.on
    }

    /// Folds in the failures other servers shared since the last read, when the
    /// database's `version` moved since then.
    pub fn catch_up(
        &self,
        store: &Store,
        rules: &GuardRules,
        version: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        if !self.sharing.on {
            return Ok(());
        }
        let mut read = self.sharing.read.lock().unwrap_or_else(|e| e.into_inner());
        if read.0 == Some(version) {
            return Ok(());
        }
        let failures = store.failures_since(read.1, READ_AT_ONCE)?;
        if failures.len() < READ_AT_ONCE {
            read.0 = Some(version);
        }
        let Some((newest, _)) = failures.last() else {
            return Ok(());
        };
        read.1 = *newest;
        let mut state = self.state();
        for (_, f) in &failures {
            if let Some(t) = record_of(&mut state, rules, f.scope, &f.subject, now) {
                rules
                    .of(f.scope)
                    .failed_elsewhere(&mut t.record, f.at, f.lock);
                if f.lock.is_some() {
                    // Its row was written with the failure: confirmed against the
                    // store like a lock of this server's (an admin's clear ends it).
                    t.saved = true;
                    t.confirmed = None;
                }
            }
        }
        Ok(())
    }

    /// Queues a counted failure to share (nothing when not shared): from the guard's
    /// settle, or again when the write that carried it failed.
    pub fn share(&self, f: SharedFailure) {
        if self.sharing.on {
            self.sharing
                .outbox
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(f);
        }
    }

    /// The failures to hand to the login writer now.
    pub fn take_shared(&self) -> Vec<SharedFailure> {
        if !self.sharing.on {
            return Vec::new();
        }
        std::mem::take(
            &mut *self
                .sharing
                .outbox
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }
}
