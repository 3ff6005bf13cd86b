//! Guessing lockout. A 5-digit PIN has 100,000 values, so failed logins are counted
//! per device (Calling-Station-Id): `max_failures` failures within `window` lock the
//! device out for `base`, doubling with each further lockout up to `max`. A locked-out
//! device is refused even with a right code; other devices are unaffected. Pure: the
//! caller keeps the records and passes `now`.

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutRules {
    /// Failures within `window` that trigger a lockout.
    pub max_failures: u32,
    pub window: Duration,
    /// First lockout; each further one doubles it.
    pub base: Duration,
    /// Longest lockout. Also how long a device must stay quiet after a lockout ends
    /// before the doubling starts over.
    pub max: Duration,
}

impl Default for LockoutRules {
    fn default() -> Self {
        Self {
            max_failures: 10,
            window: Duration::minutes(10),
            base: Duration::minutes(10),
            max: Duration::days(1),
        }
    }
}

/// One device's failed logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceFailures {
    /// Failures in the current window.
    pub failures: u32,
    pub window_start: DateTime<Utc>,
    /// Lockouts so far (the doubling level).
    pub lockouts: u32,
    /// End of the latest lockout.
    pub locked_until: Option<DateTime<Utc>>,
}

impl LockoutRules {
    /// Length of the `nth` lockout (1-based): base x 2^(n-1), at most `max`.
    pub fn lockout_length(&self, nth: u32) -> Duration {
        let factor = 1i64
            .checked_shl(nth.saturating_sub(1).min(40))
            .unwrap_or(i64::MAX);
        let ms = self.base.num_milliseconds().saturating_mul(factor);
        Duration::milliseconds(ms).min(self.max)
    }

    /// When the device's lockout ends, if it is locked out at `now`.
    pub fn locked_until(
        &self,
        record: &DeviceFailures,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        record.locked_until.filter(|until| now < *until)
    }

    /// The record after one more failed login at `now`.
    pub fn after_failure(
        &self,
        record: Option<DeviceFailures>,
        now: DateTime<Utc>,
    ) -> DeviceFailures {
        let mut r = record.unwrap_or(DeviceFailures {
            failures: 0,
            window_start: now,
            lockouts: 0,
            locked_until: None,
        });
        if r.locked_until.is_some_and(|until| now >= until + self.max) {
            r.lockouts = 0; // quiet for long enough: start over
        }
        if now - r.window_start >= self.window {
            r.failures = 0;
            r.window_start = now;
        }
        r.failures += 1;
        if r.failures >= self.max_failures {
            r.lockouts += 1;
            r.locked_until = Some(now + self.lockout_length(r.lockouts));
            r.failures = 0;
            r.window_start = now;
        }
        r
    }

    /// Whether a record can be forgotten at `now` (nothing it holds matters any more).
    pub fn expired(&self, record: &DeviceFailures, now: DateTime<Utc>) -> bool {
        let window_over = now - record.window_start >= self.window;
        let lock_over = record
            .locked_until
            .is_none_or(|until| now >= until + self.max);
        window_over && lock_over
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
    }

    fn fail(
        rules: &LockoutRules,
        r: Option<DeviceFailures>,
        at: DateTime<Utc>,
        n: u32,
    ) -> DeviceFailures {
        (0..n)
            .fold(r, |r, _| Some(rules.after_failure(r, at)))
            .unwrap()
    }

    #[test]
    fn ten_failures_in_ten_minutes_lock_for_ten_minutes() {
        let rules = LockoutRules::default();
        let r = fail(&rules, None, t0(), 9);
        assert_eq!(rules.locked_until(&r, t0()), None, "nine are not enough");
        let r = rules.after_failure(Some(r), t0() + Duration::minutes(9));
        let until = t0() + Duration::minutes(19);
        assert_eq!(
            rules.locked_until(&r, t0() + Duration::minutes(9)),
            Some(until)
        );
        assert_eq!(
            rules.locked_until(&r, until - Duration::seconds(1)),
            Some(until)
        );
        assert_eq!(
            rules.locked_until(&r, until),
            None,
            "free exactly at the end"
        );
    }

    #[test]
    fn failures_spread_over_more_than_the_window_do_not_lock() {
        let rules = LockoutRules::default();
        let mut r = None;
        for i in 0..30 {
            r = Some(rules.after_failure(r, t0() + Duration::minutes(2 * i)));
        }
        assert_eq!(r.unwrap().lockouts, 0);
    }

    #[test]
    fn each_repeat_doubles_up_to_a_day_and_quiet_resets() {
        let rules = LockoutRules::default();
        let lengths: Vec<i64> = (1..=10)
            .map(|n| rules.lockout_length(n).num_minutes())
            .collect();
        assert_eq!(
            lengths,
            vec![10, 20, 40, 80, 160, 320, 640, 1280, 1440, 1440]
        );
        assert_eq!(rules.lockout_length(u32::MAX), Duration::days(1));
        let mut r = fail(&rules, None, t0(), 10);
        let mut at = t0();
        for expected in [10, 20, 40] {
            assert_eq!(r.locked_until.unwrap() - at, Duration::minutes(expected));
            at = r.locked_until.unwrap();
            r = fail(&rules, Some(r), at, 10);
        }
        // A day of quiet after the lockout ends: back to ten minutes.
        let quiet = r.locked_until.unwrap() + Duration::days(1);
        let r = fail(&rules, Some(r), quiet, 10);
        assert_eq!(r.locked_until.unwrap() - quiet, Duration::minutes(10));
        assert!(!rules.expired(&r, quiet + Duration::minutes(10)));
        assert!(rules.expired(&r, quiet + Duration::minutes(10) + Duration::days(1)));
    }
}
