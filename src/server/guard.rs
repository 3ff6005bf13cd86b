//! Keeps the guessing lockout: failed logins per device in memory (bounded), lockouts
//! persisted in the store (they survive a restart and `lockout clear` reaches the
//! running server), and a per-client failure rate that logs an attack once a minute
//! instead of once a packet.

use crate::model::{Mac, MaskedCode};
use crate::policy::lockout::{DeviceFailures, LockoutRules};
use crate::store::{LockoutRow, Store, StoreError};
use chrono::{DateTime, Utc};
// foldhash, seeded per process: these maps are keyed by what senders choose.
use foldhash::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Devices tracked in memory at most; under a flood of random MACs the records that
/// no longer matter go first, then unlocked ones.
const MAX_DEVICES: usize = 100_000;

#[derive(Debug, Default)]
struct ClientRate {
    /// Minute (Unix seconds / 60) being counted.
    minute: i64,
    failures: u32,
    /// Whether this minute's alarm was logged.
    alarmed: bool,
}

#[derive(Debug, Default)]
pub struct Guard {
    devices: Mutex<HashMap<Mac, DeviceFailures>>,
    /// `devices.len()` as of its last unlock: a login while no device has failed (the
    /// common case) is checked without taking the lock.
    tracked: AtomicUsize,
    clients: Mutex<HashMap<String, ClientRate>>,
}

/// The locked device map; publishes its size to `Guard::tracked` when released.
struct Devices<'a> {
    map: MutexGuard<'a, HashMap<Mac, DeviceFailures>>,
    tracked: &'a AtomicUsize,
}

impl std::ops::Deref for Devices<'_> {
    type Target = HashMap<Mac, DeviceFailures>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::ops::DerefMut for Devices<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

impl Drop for Devices<'_> {
    fn drop(&mut self) {
        self.tracked.store(self.map.len(), Ordering::Release);
    }
}

impl Guard {
    /// A guard that knows the lockouts still active in the store.
    pub fn load(store: &Store, now: DateTime<Utc>) -> Result<Guard, StoreError> {
        let guard = Guard::default();
        let mut devices = guard.devices();
        for row in store.list_lockouts(Some(now))? {
            devices.insert(
                row.mac,
                DeviceFailures {
                    failures: 0,
                    window_start: now,
                    lockouts: row.lockouts,
                    locked_until: Some(row.locked_until),
                },
            );
        }
        drop(devices);
        Ok(guard)
    }

    fn devices(&self) -> Devices<'_> {
        Devices {
            map: self.devices.lock().unwrap_or_else(|e| e.into_inner()),
            tracked: &self.tracked,
        }
    }

    /// Whether no device has a failure or lockout on record (no lock taken).
    fn none_tracked(&self) -> bool {
        self.tracked.load(Ordering::Acquire) == 0
    }

    /// When the device's lockout ends, if it is locked out now. Memory answers for the
    /// common case; a lockout in memory is confirmed against the store, so one cleared
    /// from the CLI ends at once.
    pub fn locked_until(
        &self,
        store: &Store,
        rules: &LockoutRules,
        mac: Mac,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        if self.none_tracked() {
            return Ok(None);
        }
        let remembered = self
            .devices()
            .get(&mac)
            .and_then(|r| rules.locked_until(r, now));
        let Some(_) = remembered else { return Ok(None) };
        match store.lockout(mac)? {
            Some(row) if row.locked_until > now => Ok(Some(row.locked_until)),
            _ => {
                // Cleared by an admin: forget the device entirely.
                self.devices().remove(&mac);
                Ok(None)
            }
        }
    }

    /// Counts a failed login (unknown code, wrong password) from `mac` through
    /// `client`; locks the device out when it has failed too often. True when this
    /// failure started a lockout.
    pub fn failure(
        &self,
        store: &Store,
        settings: &super::Settings,
        mac: Option<Mac>,
        client: &str,
        code: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let rules = &settings.lockout;
        self.count_client(client, settings.client_alarm_per_minute, now);
        let Some(mac) = mac else { return Ok(false) };
        let record = {
            let mut devices = self.devices();
            if devices.len() >= MAX_DEVICES && !devices.contains_key(&mac) {
                devices.retain(|_, r| !rules.expired(r, now));
                if devices.len() >= MAX_DEVICES {
                    devices.retain(|_, r| rules.locked_until(r, now).is_some());
                }
            }
            let before = devices.get(&mac).copied();
            let after = rules.after_failure(before, now);
            devices.insert(mac, after);
            (before.map(|b| b.lockouts) != Some(after.lockouts) && after.lockouts > 0)
                .then_some(after)
        };
        if let Some(locked) = record {
            let until = locked.locked_until.unwrap_or(now);
            tracing::warn!(
                client,
                device = %mac,
                code = %MaskedCode(code),
                lockouts = locked.lockouts,
                until = %until.to_rfc3339(),
                "device locked out after {} failed logins",
                rules.max_failures
            );
            store.save_lockout(&LockoutRow {
                mac,
                lockouts: locked.lockouts,
                locked_until: until,
                client: client.to_string(),
                updated_at: now,
            })?;
            return Ok(true);
        }
        Ok(false)
    }

    /// A successful login clears the device's failure count (not its lockout level).
    pub fn success(&self, mac: Option<Mac>) {
        if let Some(mac) = mac
            && !self.none_tracked()
            && let Some(r) = self.devices().get_mut(&mac)
        {
            r.failures = 0;
        }
    }

    fn count_client(&self, client: &str, alarm_per_minute: u32, now: DateTime<Utc>) {
        let minute = now.timestamp().div_euclid(60);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let rate = clients.entry(client.to_string()).or_default();
        if rate.minute != minute {
            *rate = ClientRate {
                minute,
                failures: 0,
                alarmed: false,
            };
        }
        rate.failures += 1;
        if rate.failures > alarm_per_minute && !rate.alarmed {
            rate.alarmed = true;
            tracing::warn!(
                client,
                failures = rate.failures,
                threshold = alarm_per_minute,
                "possible guessing attack: more than {alarm_per_minute} failed logins this minute through this client"
            );
        }
    }

    /// Devices tracked in memory (for tests of the bound).
    pub fn tracked_devices(&self) -> usize {
        self.devices().len()
    }
}
