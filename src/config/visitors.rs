//! `[visitors]` and `[customers]`: the login rules for pre-registered visitors and for
//! members logging in with their PIN, and how they are validated.

use super::{ConfigError, invalid};
use serde::Deserialize;

/// `[visitors]`: the platform's "Network check-in" settings (seed 000).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct VisitorSettings {
    /// "Generate an access token for every pre-registered visitor".
    pub generate_access_tokens: bool,
    /// "Default duration for visitor access tokens", in minutes, for all visitors.
    /// Read when a visitor is registered: changing it does not rewrite existing tokens.
    pub default_minutes: i64,
    /// "Maximum number of devices per visitor" (distinct devices).
    pub max_devices: i64,
    /// A visitor not yet checked in is checked in by the first accepted Wi-Fi login;
    /// when false such a login is rejected until an admin checks the visitor in.
    pub check_in_on_first_login: bool,
    /// When a visitor's window starts: at check-in (`arrival`, the platform's current
    /// help), at the expected arrival (`expected_arrival`, an older help page), or at
    /// the first Wi-Fi login (`first_login`: check-ins at the platform are not taken).
    pub window_starts: WindowStart,
}

/// `[visitors] window_starts`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum WindowStart {
    #[default]
    Arrival,
    ExpectedArrival,
    FirstLogin,
}

impl Default for VisitorSettings {
    fn default() -> Self {
        Self {
            generate_access_tokens: true,
            default_minutes: 60,
            max_devices: 2,
            check_in_on_first_login: true,
            window_starts: WindowStart::Arrival,
        }
    }
}

/// `[customers]`: Wi-Fi rules for members logging in with their PIN.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct CustomerSettings {
    /// Session-Timeout of each login, in minutes.
    pub session_minutes: i64,
    /// Distinct devices a customer may use.
    pub max_devices: i64,
}

impl Default for CustomerSettings {
    fn default() -> Self {
        Self {
            session_minutes: 1440,
            max_devices: 3,
        }
    }
}

fn minutes(key: &str, v: i64) -> Result<(), ConfigError> {
    if (1..=crate::model::MAX_MINUTES).contains(&v) {
        Ok(())
    } else {
        Err(invalid(
            key,
            v,
            format!(
                "must be a whole number of minutes from 1 to {}",
                crate::model::MAX_MINUTES
            ),
        ))
    }
}

fn devices(key: &str, v: i64) -> Result<(), ConfigError> {
    if (1..=10_000).contains(&v) {
        Ok(())
    } else {
        Err(invalid(key, v, "must be a whole number from 1 to 10000"))
    }
}

impl VisitorSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        minutes("visitors.default_minutes", self.default_minutes)?;
        devices("visitors.max_devices", self.max_devices)?;
        if self.window_starts == WindowStart::FirstLogin && !self.check_in_on_first_login {
            return Err(invalid(
                "visitors.window_starts",
                "first_login",
                "needs visitors.check_in_on_first_login = true (the first login is the check-in)",
            ));
        }
        Ok(())
    }
}

impl CustomerSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        minutes("customers.session_minutes", self.session_minutes)?;
        devices("customers.max_devices", self.max_devices)
    }
}
