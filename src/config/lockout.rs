//! `[lockout]`: guessing protection per device and the attack alarm per client, and
//! how they are validated.

use super::{ConfigError, bounded, invalid};
use crate::policy::lockout::LockoutRules;
use serde::Deserialize;

/// `[lockout]`: guessing protection (all durations in seconds).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutSection {
    /// Failed logins from one device within `window_seconds` that lock it out.
    pub max_failures: i64,
    pub window_seconds: i64,
    /// First lockout; doubled on each repeat up to `max_lockout_seconds`.
    pub lockout_seconds: i64,
    pub max_lockout_seconds: i64,
    /// Failed logins per minute through one client above which an attack is logged
    /// (once a minute).
    pub client_alarm_per_minute: i64,
}

impl Default for LockoutSection {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window_seconds: 600,
            lockout_seconds: 600,
            max_lockout_seconds: 86_400,
            client_alarm_per_minute: 100,
        }
    }
}

impl LockoutSection {
    /// The lockout rules the policy applies per device.
    pub(super) fn rules(&self) -> Result<LockoutRules, ConfigError> {
        let lockout = LockoutRules {
            max_failures: bounded("lockout.max_failures", self.max_failures, 1, 1_000_000)? as u32,
            window: chrono::Duration::seconds(bounded(
                "lockout.window_seconds",
                self.window_seconds,
                1,
                31_536_000,
            )?),
            base: chrono::Duration::seconds(bounded(
                "lockout.lockout_seconds",
                self.lockout_seconds,
                1,
                31_536_000,
            )?),
            max: chrono::Duration::seconds(bounded(
                "lockout.max_lockout_seconds",
                self.max_lockout_seconds,
                1,
                31_536_000,
            )?),
        };
        if lockout.max < lockout.base {
            return Err(invalid(
                "lockout.max_lockout_seconds",
                self.max_lockout_seconds,
                "is shorter than lockout.lockout_seconds",
            ));
        }
        Ok(lockout)
    }

    /// `client_alarm_per_minute`, checked.
    pub(super) fn client_alarm_per_minute(&self) -> Result<u32, ConfigError> {
        Ok(bounded(
            "lockout.client_alarm_per_minute",
            self.client_alarm_per_minute,
            1,
            100_000_000,
        )? as u32)
    }
}
