//! `[disconnect]`: RFC 5176 Disconnect-Requests to the NAS, and how the section is
//! validated.

use super::{ConfigError, bounded};
use serde::Deserialize;

/// `[disconnect]`: RFC 5176 Disconnect-Requests sent to a NAS when a session must end
/// (token revoked or deleted, customer deactivated, PIN changed, time run out).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DisconnectSection {
    pub enabled: bool,
    /// Seconds to wait for the NAS's ACK/NAK before sending again.
    pub timeout_seconds: i64,
    /// Sends of one request, the first included, before giving up.
    pub attempts: i64,
}

impl Default for DisconnectSection {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout_seconds: 2,
            attempts: 3,
        }
    }
}

/// Disconnect settings as the server uses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisconnectSettings {
    pub enabled: bool,
    pub timeout: std::time::Duration,
    pub attempts: u32,
}

impl DisconnectSection {
    pub(super) fn validate(&self) -> Result<DisconnectSettings, ConfigError> {
        Ok(DisconnectSettings {
            enabled: self.enabled,
            timeout: std::time::Duration::from_secs(bounded(
                "disconnect.timeout_seconds",
                self.timeout_seconds,
                1,
                60,
            )? as u64),
            attempts: bounded("disconnect.attempts", self.attempts, 1, 10)? as u32,
        })
    }
}
