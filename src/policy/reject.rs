//! Why a login is refused: the value, its Reply-Message and its label.

use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt;

/// Why a login is refused. A reject is a value, not an error: its `Display` is the
/// Reply-Message the person at the portal sees, and [`RejectReason::label`] is what
/// logs and metrics count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    /// No token with this code in the client's business.
    UnknownCode,
    /// The password did not match (password mode `code`: it must equal the code).
    BadPassword,
    /// The request carried neither a usable User-Password nor CHAP-Password.
    NoCredentials,
    Revoked,
    /// A customer whose account is deactivated.
    Deactivated,
    /// A visitor not checked in, with `check_in_on_first_login = false`.
    NotCheckedIn,
    NotYetValid {
        valid_from: DateTime<Utc>,
    },
    Expired,
    MinutesUsedUp,
    /// The token is tied to another device (its `mac_address`).
    WrongDevice,
    /// The token is tied to devices but the request named none (no Calling-Station-Id
    /// that reads as a MAC address).
    NoDevice,
    /// A device not yet bound, and the token already has `limit` distinct devices.
    DeviceLimitReached {
        limit: u32,
    },
    /// `limit` devices are already online with the token.
    SimultaneousUseLimit {
        limit: u32,
    },
    /// Too many failed logins from this device: refused, even with a right code,
    /// until `until`.
    LockedOut {
        until: DateTime<Utc>,
    },
    /// Too many refused logins at this NAS (or on the whole server): devices not
    /// bound to the code they present are refused, without the code being looked up,
    /// for about `minutes` more.
    HotspotPaused {
        minutes: u32,
    },
    /// Too many refused email + PIN logins for this email: new devices are refused
    /// for about `minutes` more; the person's bound devices still get in.
    AccountLocked {
        minutes: u32,
    },
    /// The login needed a write (binding its device, checking its visitor in) that
    /// could not be made in time: the database is locked by another process, or
    /// cannot be written (deleted, read-only, full). Not the person's fault: not
    /// counted against any failure budget.
    Unavailable,
}

impl RejectReason {
    /// Stable snake_case name for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::UnknownCode => "unknown_code",
            Self::BadPassword => "bad_password",
            Self::NoCredentials => "no_credentials",
            Self::Revoked => "revoked",
            Self::Deactivated => "deactivated",
            Self::NotCheckedIn => "not_checked_in",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::Expired => "expired",
            Self::MinutesUsedUp => "minutes_used_up",
            Self::WrongDevice => "wrong_device",
            Self::NoDevice => "no_device",
            Self::DeviceLimitReached { .. } => "device_limit_reached",
            Self::SimultaneousUseLimit { .. } => "simultaneous_use_limit",
            Self::LockedOut { .. } => "locked_out",
            Self::HotspotPaused { .. } => "hotspot_paused",
            Self::AccountLocked { .. } => "account_locked",
            Self::Unavailable => "unavailable",
        }
    }

    /// Whether the refusal came from the failure budgets themselves (nothing was
    /// decided, so it is not counted against them again).
    pub fn is_guard_refusal(&self) -> bool {
        matches!(
            self,
            Self::LockedOut { .. } | Self::HotspotPaused { .. } | Self::AccountLocked { .. }
        )
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCode | Self::BadPassword => f.write_str("Unknown or wrong access code"),
            Self::NoCredentials => f.write_str("No password in the request (PAP or CHAP required)"),
            Self::Revoked => f.write_str("This access code has been revoked"),
            Self::Deactivated => f.write_str("This member account is deactivated"),
            Self::NotCheckedIn => {
                f.write_str("Please check in at reception before using the Wi-Fi")
            }
            Self::NotYetValid { valid_from } => write!(
                f,
                "This access code is not valid before {}",
                valid_from.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            Self::Expired => f.write_str("This access code has expired"),
            Self::MinutesUsedUp => f.write_str("All minutes of this access code have been used"),
            Self::WrongDevice => f.write_str("This access code belongs to another device"),
            Self::NoDevice => {
                f.write_str("This access code needs a device address (Calling-Station-Id)")
            }
            Self::DeviceLimitReached { limit } => {
                write!(
                    f,
                    "Device limit reached: this access code is already used on {limit} device(s)"
                )
            }
            Self::SimultaneousUseLimit { limit } => {
                write!(
                    f,
                    "Simultaneous-use limit reached: {limit} device(s) already online with this access code"
                )
            }
            Self::LockedOut { until } => write!(
                f,
                "Too many failed attempts from this device; try again after {}",
                until.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
            Self::HotspotPaused { minutes } => write!(
                f,
                "Too many failed logins at this hotspot; try again in {minutes} minute(s)"
            ),
            Self::AccountLocked { minutes } => write!(
                f,
                "Too many failed logins for this account; try again in {minutes} minute(s) or use a device already signed in"
            ),
            Self::Unavailable => {
                f.write_str("Wi-Fi login is briefly unavailable; please try again in a moment")
            }
        }
    }
}
