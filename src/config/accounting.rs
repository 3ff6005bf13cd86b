//! `[accounting]`: when open sessions count as stale and how often the reaper runs,
//! and how they are validated.

use super::{ConfigError, invalid};
use serde::Deserialize;

/// `[accounting]`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountingSection {
    /// An open session with no accounting update for this long is closed (its NAS
    /// vanished). Default: 2 x Acct-Interim-Interval + 60.
    pub stale_after_seconds: Option<i64>,
    /// How often the reaper looks for stale and run-out sessions. Default 30.
    pub reap_interval_seconds: Option<i64>,
    /// How long an Access-Accept holds its device's simultaneous-use place while the
    /// NAS has not started accounting for it. Default 60.
    pub login_hold_seconds: Option<i64>,
}

impl AccountingSection {
    /// `stale_after_seconds`, or its default from the validated
    /// `[reply] acct_interim_interval` (300 when unset).
    pub(super) fn stale_after_seconds(
        &self,
        acct_interim_interval: Option<u32>,
    ) -> Result<u64, ConfigError> {
        match self.stale_after_seconds {
            None => Ok(2 * u64::from(acct_interim_interval.unwrap_or(300)) + 60),
            Some(v) if (1..=31_536_000).contains(&v) => Ok(v as u64),
            Some(v) => Err(invalid(
                "accounting.stale_after_seconds",
                v,
                "must be 1 to 31536000 seconds",
            )),
        }
    }

    /// `login_hold_seconds`, or its default.
    pub(super) fn login_hold_seconds(&self) -> Result<u64, ConfigError> {
        match self.login_hold_seconds {
            None => Ok(60),
            Some(v) if (1..=3600).contains(&v) => Ok(v as u64),
            Some(v) => Err(invalid(
                "accounting.login_hold_seconds",
                v,
                "must be 1 to 3600 seconds",
            )),
        }
    }

    /// `reap_interval_seconds`, or its default.
    pub(super) fn reap_interval_seconds(&self) -> Result<u64, ConfigError> {
        match self.reap_interval_seconds {
            None => Ok(30),
            Some(v) if (1..=3600).contains(&v) => Ok(v as u64),
            Some(v) => Err(invalid(
                "accounting.reap_interval_seconds",
                v,
                "must be 1 to 3600 seconds",
            )),
        }
    }
}
