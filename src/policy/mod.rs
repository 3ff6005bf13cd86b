//! Pure decisions. Every function takes `now` and the facts the store gathered and
//! returns a value; nothing here reads a clock, a socket or the database, so the rules
//! are tested as tables.

pub mod lockout;
pub mod pin;
mod reject;

pub use reject::RejectReason;

use crate::model::{AccessToken, Mac, TokenOwner, TokenUsage};
use chrono::Duration;
use chrono::{DateTime, Utc};
use std::fmt;

/// Which limit set the Session-Timeout (for `token explain` and the logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingLimit {
    /// Time to the token's `valid_to`.
    ValidTo,
    /// Minutes included minus minutes used.
    MinutesLeft,
    /// End of the visitor's window: arrival + minutes included.
    VisitorWindow,
    /// `[customers] session_minutes`.
    CustomerSession,
}

impl fmt::Display for BindingLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ValidTo => "time until valid_to",
            Self::MinutesLeft => "minutes left",
            Self::VisitorWindow => "end of the visitor's window",
            Self::CustomerSession => "customers.session_minutes",
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
    /// The distinct-device limit in force (token, or `[customers] max_devices`).
    pub device_limit: Option<u32>,
    /// The visitor is not checked in yet and this login checks them in at `now`.
    pub check_in: bool,
}

/// Rules from the config that decide logins of visitors and customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginRules {
    pub check_in_on_first_login: bool,
    pub customer_session_minutes: u32,
    pub customer_max_devices: u32,
    /// An open session not updated for this long no longer counts as online.
    pub stale_after: Duration,
}

impl LoginRules {
    /// Open sessions last updated before this instant are stale at `now`.
    pub fn stale_before(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now - self.stale_after
    }
}

impl Default for LoginRules {
    fn default() -> Self {
        Self {
            check_in_on_first_login: true,
            customer_session_minutes: 1440,
            customer_max_devices: 3,
            stale_after: Duration::seconds(660),
        }
    }
}

/// Time left in whole seconds, the least of the token's limits; `spent_seconds` is
/// the ledger's used time plus the live time of the token's other open sessions. `Err` when nothing is
/// left: a Session-Timeout is never 0 (RFC 2865 5.27 would read 0 as "no limit" on
/// some NASes), so less than one whole second left is a reject.
pub fn session_timeout(
    now: DateTime<Utc>,
    token: &AccessToken,
    spent_seconds: u64,
    window_end: Option<DateTime<Utc>>,
) -> Result<(u32, BindingLimit), RejectReason> {
    let included = u64::from(token.minutes_included) * 60;
    let minutes_left = included.saturating_sub(spent_seconds);
    if minutes_left == 0 {
        return Err(RejectReason::MinutesUsedUp);
    }
    let mut best = (minutes_left, BindingLimit::MinutesLeft);
    for (end, limit) in [
        (token.valid_to, BindingLimit::ValidTo),
        (window_end, BindingLimit::VisitorWindow),
    ] {
        let Some(end) = end else { continue };
        // Floor to whole seconds: never promise a fraction we do not have.
        let left = (end - now).num_seconds();
        if left < 1 {
            return Err(RejectReason::Expired);
        }
        if (left as u64) < best.0 {
            best = (left as u64, limit);
        }
    }
    Ok((u32::try_from(best.0).unwrap_or(u32::MAX), best.1))
}

/// Whether a token's open sessions must end now, whatever their device: revoked, its
/// customer deactivated, past `valid_to` or the visitor's window, or its minutes used
/// up (`spent_seconds`: the ledger's used time plus the live time of its open
/// sessions). The reaper's question: device and simultaneous-use rules only decide
/// who may log in, not whether a session already running goes on. A customer's PIN
/// has no minute budget (each login gets the configured session).
pub fn run_out(
    now: DateTime<Utc>,
    token: &AccessToken,
    owner: TokenOwner,
    spent_seconds: u64,
) -> Option<RejectReason> {
    if token.revoked_at.is_some() {
        return Some(RejectReason::Revoked);
    }
    let window_end = match owner {
        TokenOwner::Customer { active: false, .. } => return Some(RejectReason::Deactivated),
        TokenOwner::Customer { .. } => {
            return token
                .valid_to
                .filter(|t| now >= *t)
                .map(|_| RejectReason::Expired);
        }
        TokenOwner::Visitor {
            arrived_at: Some(arrival),
            ..
        } => Some(arrival + Duration::minutes(i64::from(token.minutes_included))),
        TokenOwner::Visitor { .. } | TokenOwner::Standalone => None,
    };
    session_timeout(now, token, spent_seconds, window_end).err()
}

/// Decides a login with a known code whose password already matched. Checks, in
/// order: revoked, the owner's state (customer deactivated; visitor not checked in,
/// not arrived yet, window over), the token's validity window, device rules, time
/// left, simultaneous use.
pub fn decide(
    now: DateTime<Utc>,
    token: &AccessToken,
    owner: TokenOwner,
    usage: &TokenUsage,
    device: Option<Mac>,
    rules: &LoginRules,
) -> Result<Grant, RejectReason> {
    if token.revoked_at.is_some() {
        return Err(RejectReason::Revoked);
    }
    let mut check_in = false;
    let mut window_end = None;
    match owner {
        TokenOwner::Customer { active: false, .. } => return Err(RejectReason::Deactivated),
        TokenOwner::Visitor { arrived_at, .. } => {
            let arrival = match arrived_at {
                Some(a) => a,
                None if rules.check_in_on_first_login => {
                    check_in = true;
                    now
                }
                None => return Err(RejectReason::NotCheckedIn),
            };
            if now < arrival {
                return Err(RejectReason::NotYetValid {
                    valid_from: arrival,
                });
            }
            let end = arrival + Duration::minutes(i64::from(token.minutes_included));
            if now >= end {
                return Err(RejectReason::Expired);
            }
            window_end = Some(end);
        }
        TokenOwner::Customer { .. } | TokenOwner::Standalone => {}
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
    let device_limit = match owner {
        TokenOwner::Customer { .. } => Some(rules.customer_max_devices),
        _ => token.device_limit,
    };
    let already_bound = device.is_some_and(|d| usage.bound_devices.contains(&d));
    if let Some(limit) = device_limit {
        match device {
            None => return Err(RejectReason::NoDevice),
            Some(_) if !already_bound && usage.bound_devices.len() >= limit as usize => {
                return Err(RejectReason::DeviceLimitReached { limit });
            }
            Some(_) => {}
        }
    }
    let (session_timeout, limited_by) = match owner {
        // A member's PIN has no minute budget: each login gets the configured session,
        // cut short only by the token's own valid_to if an admin set one.
        TokenOwner::Customer { .. } => {
            let session = u64::from(rules.customer_session_minutes) * 60;
            match token.valid_to.map(|t| (t - now).num_seconds()) {
                Some(left) if left < 1 => return Err(RejectReason::Expired),
                Some(left) if (left as u64) < session => (left as u32, BindingLimit::ValidTo),
                _ => (
                    u32::try_from(session).unwrap_or(u32::MAX),
                    BindingLimit::CustomerSession,
                ),
            }
        }
        _ => session_timeout(
            now,
            token,
            usage.used_seconds + usage.live_seconds_elsewhere,
            window_end,
        )?,
    };
    if let Some(limit) = token.user_limit
        && usage.open_sessions_elsewhere >= limit
    {
        return Err(RejectReason::SimultaneousUseLimit { limit });
    }
    Ok(Grant {
        session_timeout,
        limited_by,
        bind_device: device.filter(|_| !already_bound),
        device_limit,
        check_in,
    })
}

#[cfg(test)]
mod tests;
