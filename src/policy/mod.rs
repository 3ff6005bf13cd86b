//! Pure decisions. Every function takes `now` and the facts the store gathered and
//! returns a value; nothing here reads a clock, a socket or the database, so the rules
//! are tested as tables.

use crate::model::{AccessToken, Mac, TokenUsage};
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
}

impl RejectReason {
    /// Stable snake_case name for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Self::UnknownCode => "unknown_code",
            Self::BadPassword => "bad_password",
            Self::NoCredentials => "no_credentials",
            Self::Revoked => "revoked",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::Expired => "expired",
            Self::MinutesUsedUp => "minutes_used_up",
            Self::WrongDevice => "wrong_device",
            Self::NoDevice => "no_device",
            Self::DeviceLimitReached { .. } => "device_limit_reached",
            Self::SimultaneousUseLimit { .. } => "simultaneous_use_limit",
        }
    }

    /// Whether the reject counts as a failed guess (wrong code or password), as
    /// opposed to a right code refused for a rule of its own.
    pub fn is_bad_credential(&self) -> bool {
        matches!(
            self,
            Self::UnknownCode | Self::BadPassword | Self::NoCredentials
        )
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownCode | Self::BadPassword => f.write_str("Unknown or wrong access code"),
            Self::NoCredentials => f.write_str("No password in the request (PAP or CHAP required)"),
            Self::Revoked => f.write_str("This access code has been revoked"),
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
        }
    }
}

/// Which limit set the Session-Timeout (for `token explain` and the logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingLimit {
    /// Time to the token's `valid_to`.
    ValidTo,
    /// Minutes included minus minutes used.
    MinutesLeft,
}

impl fmt::Display for BindingLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ValidTo => "time until valid_to",
            Self::MinutesLeft => "minutes left",
        })
    }
}

/// An accepted login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Whole seconds left, at least 1: the Session-Timeout to send.
    pub session_timeout: u32,
    pub limited_by: BindingLimit,
    /// The device is new to this token and must be bound (atomically, by the store,
    /// which re-checks `device_limit` inside its transaction).
    pub bind_device: Option<Mac>,
}

/// Time left in whole seconds, the least of the token's limits. `Err` when nothing is
/// left: a Session-Timeout is never 0 (RFC 2865 5.27 would read 0 as "no limit" on
/// some NASes), so less than one whole second left is a reject.
pub fn session_timeout(
    now: DateTime<Utc>,
    token: &AccessToken,
    used_seconds: u64,
) -> Result<(u32, BindingLimit), RejectReason> {
    let included = u64::from(token.minutes_included) * 60;
    let minutes_left = included.saturating_sub(used_seconds);
    if minutes_left == 0 {
        return Err(RejectReason::MinutesUsedUp);
    }
    let mut best = (minutes_left, BindingLimit::MinutesLeft);
    if let Some(valid_to) = token.valid_to {
        // Floor to whole seconds: never promise a fraction we do not have.
        let left = (valid_to - now).num_seconds();
        if left < 1 {
            return Err(RejectReason::Expired);
        }
        if (left as u64) < best.0 {
            best = (left as u64, BindingLimit::ValidTo);
        }
    }
    Ok((u32::try_from(best.0).unwrap_or(u32::MAX), best.1))
}

/// Decides a login with a known code whose password already matched. Checks, in
/// order: revoked, not yet valid, expired, device rules, minutes, simultaneous use.
pub fn decide(
    now: DateTime<Utc>,
    token: &AccessToken,
    usage: &TokenUsage,
    device: Option<Mac>,
) -> Result<Grant, RejectReason> {
    if token.revoked_at.is_some() {
        return Err(RejectReason::Revoked);
    }
    if let Some(valid_from) = token.valid_from
        && now < valid_from
    {
        return Err(RejectReason::NotYetValid { valid_from });
    }
    if token.valid_to.is_some_and(|t| now >= t) {
        return Err(RejectReason::Expired);
    }
    if let Some(required) = token.mac_address {
        match device {
            None => return Err(RejectReason::NoDevice),
            Some(d) if d != required => return Err(RejectReason::WrongDevice),
            Some(_) => {}
        }
    }
    let already_bound = device.is_some_and(|d| usage.bound_devices.contains(&d));
    if let Some(limit) = token.device_limit {
        match device {
            None => return Err(RejectReason::NoDevice),
            Some(_) if !already_bound && usage.bound_devices.len() >= limit as usize => {
                return Err(RejectReason::DeviceLimitReached { limit });
            }
            Some(_) => {}
        }
    }
    let (session_timeout, limited_by) = session_timeout(now, token, usage.used_seconds)?;
    if let Some(limit) = token.user_limit
        && usage.open_sessions_elsewhere >= limit
    {
        return Err(RejectReason::SimultaneousUseLimit { limit });
    }
    Ok(Grant {
        session_timeout,
        limited_by,
        bind_device: device.filter(|_| !already_bound),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
    }

    fn token() -> AccessToken {
        AccessToken {
            id: 1,
            business_id: 1,
            access_code: "12345".into(),
            minutes_included: 60,
            description: None,
            valid_from: None,
            valid_to: None,
            user_limit: None,
            device_limit: None,
            mac_address: None,
            booking_guid: None,
            visitor_guid: None,
            created_at: now() - Duration::days(1),
            revoked_at: None,
        }
    }

    fn mac(n: u8) -> Mac {
        format!("02:00:00:00:00:{n:02x}").parse().unwrap()
    }

    #[test]
    fn fresh_token_gets_all_its_minutes() {
        let g = decide(now(), &token(), &TokenUsage::default(), Some(mac(1))).unwrap();
        assert_eq!(g.session_timeout, 3600);
        assert_eq!(g.limited_by, BindingLimit::MinutesLeft);
        assert_eq!(g.bind_device, Some(mac(1)));
    }

    #[test]
    fn session_timeout_is_the_least_limit_in_whole_seconds() {
        let mut t = token();
        let usage = TokenUsage {
            used_seconds: 600,
            ..Default::default()
        };
        // 50 minutes left, valid_to in 30 min 0.9 s -> 1800 (floored).
        t.valid_to = Some(now() + Duration::milliseconds(1_800_900));
        assert_eq!(
            session_timeout(now(), &t, usage.used_seconds),
            Ok((1800, BindingLimit::ValidTo))
        );
        t.valid_to = Some(now() + Duration::hours(5));
        assert_eq!(
            session_timeout(now(), &t, usage.used_seconds),
            Ok((3000, BindingLimit::MinutesLeft))
        );
        // One second of minutes left is still a login; none is not.
        assert_eq!(
            session_timeout(now(), &t, 3599),
            Ok((1, BindingLimit::MinutesLeft))
        );
        assert_eq!(
            session_timeout(now(), &t, 3600),
            Err(RejectReason::MinutesUsedUp)
        );
        assert_eq!(
            session_timeout(now(), &t, 99_999),
            Err(RejectReason::MinutesUsedUp)
        );
        // Less than a whole second before valid_to: never a Session-Timeout of 0.
        t.valid_to = Some(now() + Duration::milliseconds(999));
        assert_eq!(session_timeout(now(), &t, 0), Err(RejectReason::Expired));
    }

    #[test]
    fn validity_window_boundaries() {
        let mut t = token();
        t.valid_from = Some(now());
        t.valid_to = Some(now() + Duration::minutes(10));
        assert!(
            decide(now(), &t, &TokenUsage::default(), None).is_ok(),
            "usable from valid_from exactly"
        );
        assert_eq!(
            decide(
                now() - Duration::seconds(1),
                &t,
                &TokenUsage::default(),
                None
            ),
            Err(RejectReason::NotYetValid { valid_from: now() })
        );
        assert_eq!(
            decide(
                now() + Duration::minutes(10),
                &t,
                &TokenUsage::default(),
                None
            ),
            Err(RejectReason::Expired)
        );
        let g = decide(
            now() + Duration::minutes(9),
            &t,
            &TokenUsage::default(),
            None,
        )
        .unwrap();
        assert_eq!(g.session_timeout, 60);
    }

    #[test]
    fn revoked_wins_over_everything() {
        let mut t = token();
        t.revoked_at = Some(now());
        t.valid_to = Some(now() - Duration::days(1));
        assert_eq!(
            decide(now(), &t, &TokenUsage::default(), None),
            Err(RejectReason::Revoked)
        );
    }

    #[test]
    fn device_rules() {
        let mut t = token();
        t.mac_address = Some(mac(1));
        assert!(decide(now(), &t, &TokenUsage::default(), Some(mac(1))).is_ok());
        assert_eq!(
            decide(now(), &t, &TokenUsage::default(), Some(mac(2))),
            Err(RejectReason::WrongDevice)
        );
        assert_eq!(
            decide(now(), &t, &TokenUsage::default(), None),
            Err(RejectReason::NoDevice)
        );

        let mut t = token();
        t.device_limit = Some(2);
        let usage = TokenUsage {
            bound_devices: vec![mac(1), mac(2)],
            ..Default::default()
        };
        let g = decide(now(), &t, &usage, Some(mac(2))).unwrap();
        assert_eq!(
            g.bind_device, None,
            "already bound devices come back without a new binding"
        );
        assert_eq!(
            decide(now(), &t, &usage, Some(mac(3))),
            Err(RejectReason::DeviceLimitReached { limit: 2 })
        );
        assert_eq!(decide(now(), &t, &usage, None), Err(RejectReason::NoDevice));
        let one = TokenUsage {
            bound_devices: vec![mac(1)],
            ..Default::default()
        };
        assert_eq!(
            decide(now(), &t, &one, Some(mac(3))).unwrap().bind_device,
            Some(mac(3))
        );
    }

    #[test]
    fn simultaneous_use() {
        let mut t = token();
        t.user_limit = Some(1);
        let busy = TokenUsage {
            open_sessions_elsewhere: 1,
            ..Default::default()
        };
        assert_eq!(
            decide(now(), &t, &busy, Some(mac(2))),
            Err(RejectReason::SimultaneousUseLimit { limit: 1 })
        );
        assert!(decide(now(), &t, &TokenUsage::default(), Some(mac(2))).is_ok());
    }

    #[test]
    fn reply_messages_are_distinct_per_reason() {
        let reasons = [
            RejectReason::UnknownCode,
            RejectReason::NoCredentials,
            RejectReason::Revoked,
            RejectReason::NotYetValid { valid_from: now() },
            RejectReason::Expired,
            RejectReason::MinutesUsedUp,
            RejectReason::WrongDevice,
            RejectReason::NoDevice,
            RejectReason::DeviceLimitReached { limit: 2 },
            RejectReason::SimultaneousUseLimit { limit: 1 },
        ];
        let texts: std::collections::HashSet<String> =
            reasons.iter().map(|r| r.to_string()).collect();
        assert_eq!(texts.len(), reasons.len());
        assert!(texts.iter().all(|t| t.len() <= 253));
        // A wrong password reads like an unknown code, so the portal does not confirm
        // that a guessed code exists.
        assert_eq!(
            RejectReason::BadPassword.to_string(),
            RejectReason::UnknownCode.to_string()
        );
    }
}
