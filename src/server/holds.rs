//! Simultaneous-use places held by Access-Accepts whose accounting has not started.
//! `user_limit` counts the sessions accounting has opened; a login that races ahead of
//! its NAS's Accounting-Start would otherwise not count at all, and 50 devices logging
//! in at once with `user_limit = 1` would all be accepted. An accept holds a place for
//! its device until the ledger records that device's session on the token, or
//! `[accounting] login_hold_seconds` pass (a NAS that never sends accounting).
//! In memory: a restart drops the holds, and accounting takes over within a minute.

use crate::model::Mac;
use chrono::{DateTime, Duration, Utc};
use foldhash::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy)]
struct Hold {
    device: Option<Mac>,
    until: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct Holds {
    /// token id -> the places held on it.
    by_token: Mutex<HashMap<i64, Vec<Hold>>>,
}

impl Holds {
    /// Holds a place on `token` for `device` until `now + hold`, unless `limit`
    /// places are taken: `open_elsewhere` sessions of other devices (from accounting)
    /// and the places other devices hold. False: no place (the login is refused).
    /// Checked and taken under one lock, so of logins racing for the last place, one
    /// wins.
    pub fn claim(
        &self,
        token: i64,
        device: Option<Mac>,
        limit: u32,
        open_elsewhere: u32,
        now: DateTime<Utc>,
        hold: Duration,
    ) -> bool {
        let mut by_token = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        let holds = by_token.entry(token).or_default();
        holds.retain(|h| h.until > now);
        let mine = |h: &Hold| device.is_some() && h.device == device;
        let others = holds.iter().filter(|h| !mine(h)).count() as u32;
        if open_elsewhere.saturating_add(others) >= limit {
            return false;
        }
        holds.retain(|h| !mine(h));
        holds.push(Hold {
            device,
            until: now + hold,
        });
        true
    }

    /// Gives up `device`'s place on `token`: its accounting started (the session
    /// counts from now on), or the login was refused after all.
    pub fn release(&self, token: i64, device: Option<Mac>) {
        let Some(device) = device else { return };
        let mut by_token = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(holds) = by_token.get_mut(&token) {
            holds.retain(|h| h.device != Some(device));
            if holds.is_empty() {
                by_token.remove(&token);
            }
        }
    }

    /// Forgets holds that have run out (run by the sweeper, so memory stays bounded
    /// by the logins of the last `login_hold_seconds`).
    pub fn sweep(&self, now: DateTime<Utc>) {
        let mut by_token = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        by_token.retain(|_, holds| {
            holds.retain(|h| h.until > now);
            !holds.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn mac(n: u8) -> Option<Mac> {
        Some(format!("02:00:00:00:00:{n:02x}").parse().unwrap())
    }

    #[test]
    fn one_place_one_device_until_accounting_or_the_hold_ends() {
        let holds = Holds::default();
        let now = Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap();
        let hold = Duration::seconds(60);
        assert!(holds.claim(1, mac(1), 1, 0, now, hold));
        assert!(
            !holds.claim(1, mac(2), 1, 0, now, hold),
            "the place is held"
        );
        assert!(
            holds.claim(1, mac(1), 1, 0, now, hold),
            "the same device again"
        );
        assert!(holds.claim(2, mac(2), 1, 0, now, hold), "another token");
        // Accounting started for device 1: its open session counts instead.
        holds.release(1, mac(1));
        assert!(!holds.claim(1, mac(2), 1, 1, now, hold));
        assert!(holds.claim(1, mac(2), 1, 0, now, hold));
        // A hold ends by itself.
        assert!(holds.claim(1, mac(3), 1, 0, now + hold, hold));
        holds.sweep(now + hold * 3);
        assert!(holds.by_token.lock().unwrap().is_empty());
    }
}
