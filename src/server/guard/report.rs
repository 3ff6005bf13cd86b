//! What the guard tells the operator: a lock's start and end in the log (once each),
//! the gauges of subjects locked now, and the sweep that forgets records that no
//! longer matter.

use super::{Charge, Guard, LogSafe, MaskedCode, Started, Tracked, minutes_until};
use crate::model::LockScope;
use crate::policy::lockout::GuardRules;
use chrono::{DateTime, Utc};

impl Guard {
    /// Logs the end of locks that have ended (once each) and forgets records that no
    /// longer matter; sets the gauges of subjects locked now. Run periodically.
    pub fn sweep(&self, rules: &GuardRules, metrics: &crate::metrics::Metrics, now: DateTime<Utc>) {
        let mut state = self.state();
        let state = &mut *state;
        let mut locked = [0i64; 4];
        let mut visit = |scope: LockScope, subject: &dyn std::fmt::Display, t: &mut Tracked| {
            let r = rules.of(scope);
            if r.locked_until(&t.record, now).is_some() {
                locked[scope as usize] += 1;
            } else if t.announced {
                t.announced = false;
                announce_end(scope, subject);
            }
        };
        for (mac, t) in state.devices.map.iter_mut() {
            visit(LockScope::Device, mac, t);
        }
        for ((b, email), t) in state.accounts.map.iter_mut() {
            visit(
                LockScope::Account,
                &format_args!("{b}:{}", LogSafe(email)),
                t,
            );
        }
        for t in state.nases.map.values_mut() {
            let label = t.label.clone().unwrap_or_default();
            visit(LockScope::Client, &label, t);
        }
        if let Some(t) = state.server.as_mut() {
            visit(LockScope::Server, &"server", t);
        }
        state
            .devices
            .map
            .retain(|_, t| t.announced || !rules.device.expired(&t.record, now));
        state
            .accounts
            .map
            .retain(|_, t| t.announced || !rules.account.expired(&t.record, now));
        state
            .nases
            .map
            .retain(|_, t| t.announced || !rules.client.expired(&t.record, now));
        for scope in LockScope::ALL {
            metrics.guard_locked(scope, locked[scope as usize]);
        }
    }

    /// Subjects tracked in memory, per scope (for tests of the bound).
    pub fn tracked(&self) -> [usize; 3] {
        let state = self.state();
        [
            state.devices.map.len(),
            state.accounts.map.len(),
            state.nases.map.len(),
        ]
    }
}

pub(super) fn announce_start(
    lock: &Started,
    rules: &GuardRules,
    charge: &Charge<'_>,
    now: DateTime<Utc>,
) {
    let r = rules.of(lock.scope);
    let minutes = minutes_until(now, lock.until);
    let until = lock.until.to_rfc3339();
    match lock.scope {
        LockScope::Device => tracing::warn!(
            nas = %charge.nas, device = %lock.subject, code = %MaskedCode(charge.user_name),
            lockouts = lock.lockouts, %until,
            "device locked out for {minutes} min after {} failed logins", r.max_failures
        ),
        LockScope::Account => tracing::warn!(
            nas = %charge.nas, account = %lock.subject, lockouts = lock.lockouts, %until,
            "account locked for new devices for {minutes} min after {} failed logins", r.max_failures
        ),
        LockScope::Client => tracing::warn!(
            nas = %lock.subject, lockouts = lock.lockouts, %until,
            "guessing suspected: logins from new devices paused at this NAS for {minutes} min \
             after {} failed logins (devices already bound still get in)", r.max_failures
        ),
        LockScope::Server => tracing::warn!(
            lockouts = lock.lockouts, %until,
            "guessing suspected: logins from new devices paused on the whole server for {minutes} min \
             after {} failed logins (devices already bound still get in)", r.max_failures
        ),
    }
}

pub(super) fn announce_end(scope: LockScope, subject: &dyn std::fmt::Display) {
    match scope {
        LockScope::Device => tracing::info!(device = %subject, "device lockout ended"),
        LockScope::Account => tracing::info!(account = %subject, "account lock ended"),
        LockScope::Client => {
            tracing::warn!(nas = %subject, "pause of new-device logins ended at this NAS")
        }
        LockScope::Server => tracing::warn!("pause of new-device logins ended on the whole server"),
    }
}
