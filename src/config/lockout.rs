//! `[lockout]`: the failure budgets against guessing (per device, per account, per
//! client's NAS, for the whole server), and how they are validated.

use super::{ConfigError, bounded, invalid};
use crate::policy::lockout::{GuardRules, LockoutRules};
use serde::Deserialize;

/// `[lockout]`: guessing protection (all durations in seconds). Each budget lets
/// `*max_failures` refused logins come at once and refills evenly over
/// `*window_seconds`; the failure that fills it starts a lock of `*lockout_seconds`
/// (`*pause_seconds`), doubled on each repeat up to the `max_` value.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LockoutSection {
    /// Per device (Calling-Station-Id): refused logins that lock it out.
    pub max_failures: i64,
    pub window_seconds: i64,
    /// First lockout; doubled on each repeat up to `max_lockout_seconds`.
    pub lockout_seconds: i64,
    pub max_lockout_seconds: i64,
    /// Per account (email + PIN logins): `max_failures` refused logins lock the
    /// account for new devices, with the device lockout's lengths; the budget refills
    /// over this much time, so a known email gets a handful of tries a day.
    pub account_window_seconds: i64,
    /// Per NAS of each client: refused logins from devices not bound to their code.
    pub client_max_failures: i64,
    pub client_window_seconds: i64,
    pub client_pause_seconds: i64,
    pub client_max_pause_seconds: i64,
    /// The whole server, all clients together.
    pub server_max_failures: i64,
    pub server_window_seconds: i64,
    pub server_pause_seconds: i64,
    pub server_max_pause_seconds: i64,
    /// Accepted from older configs and ignored: the client budgets above replace the
    /// per-minute alarm.
    pub client_alarm_per_minute: Option<i64>,
}

impl Default for LockoutSection {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window_seconds: 600,
            lockout_seconds: 600,
            max_lockout_seconds: 86_400,
            account_window_seconds: 86_400,
            client_max_failures: 30,
            client_window_seconds: 7_200,
            client_pause_seconds: 600,
            client_max_pause_seconds: 86_400,
            server_max_failures: 300,
            server_window_seconds: 7_200,
            server_pause_seconds: 600,
            server_max_pause_seconds: 86_400,
            client_alarm_per_minute: None,
        }
    }
}

/// One budget from its four keys (`prefix` + the key names).
fn budget(keys: [(&str, i64); 4]) -> Result<LockoutRules, ConfigError> {
    const YEAR: i64 = 31_536_000;
    let [
        (k_max, max_failures),
        (k_window, window),
        (k_base, base),
        (k_longest, longest),
    ] = keys;
    let rules = LockoutRules {
        max_failures: bounded(k_max, max_failures, 1, 1_000_000)? as u32,
        window: chrono::Duration::seconds(bounded(k_window, window, 1, YEAR)?),
        base: chrono::Duration::seconds(bounded(k_base, base, 1, YEAR)?),
        max: chrono::Duration::seconds(bounded(k_longest, longest, 1, YEAR)?),
    };
    if rules.window.num_milliseconds() < i64::from(rules.max_failures) {
        return Err(invalid(
            k_window,
            window,
            format!(
                "is shorter than {k_max} milliseconds: the budget could not refill that finely"
            ),
        ));
    }
    if rules.max < rules.base {
        return Err(invalid(
            k_longest,
            longest,
            format!("is shorter than {k_base}"),
        ));
    }
    Ok(rules)
}

impl LockoutSection {
    /// The budgets the guard applies.
    pub(super) fn rules(&self) -> Result<GuardRules, ConfigError> {
        let device = budget([
            ("lockout.max_failures", self.max_failures),
            ("lockout.window_seconds", self.window_seconds),
            ("lockout.lockout_seconds", self.lockout_seconds),
            ("lockout.max_lockout_seconds", self.max_lockout_seconds),
        ])?;
        let account = budget([
            ("lockout.max_failures", self.max_failures),
            (
                "lockout.account_window_seconds",
                self.account_window_seconds,
            ),
            ("lockout.lockout_seconds", self.lockout_seconds),
            ("lockout.max_lockout_seconds", self.max_lockout_seconds),
        ])?;
        let client = budget([
            ("lockout.client_max_failures", self.client_max_failures),
            ("lockout.client_window_seconds", self.client_window_seconds),
            ("lockout.client_pause_seconds", self.client_pause_seconds),
            (
                "lockout.client_max_pause_seconds",
                self.client_max_pause_seconds,
            ),
        ])?;
        let server = budget([
            ("lockout.server_max_failures", self.server_max_failures),
            ("lockout.server_window_seconds", self.server_window_seconds),
            ("lockout.server_pause_seconds", self.server_pause_seconds),
            (
                "lockout.server_max_pause_seconds",
                self.server_max_pause_seconds,
            ),
        ])?;
        Ok(GuardRules {
            device,
            account,
            client,
            server,
        })
    }
}
