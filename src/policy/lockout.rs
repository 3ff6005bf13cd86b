//! Failure budgets against guessing. A 5-digit PIN has 100,000 values and a hotspot
//! client picks its own MAC address, so refused logins are counted against several
//! subjects at once: the device (Calling-Station-Id), the account (email + PIN), the
//! client (NAS) and the whole server. Each subject has a budget:
//!
//! - `max_failures` refused logins may come at once; the budget refills evenly over
//!   `window` (one failure is forgotten every `window / max_failures`), so the most a
//!   subject can sustain without ever being locked is `max_failures` per `window`. This
//!   is a leaky bucket (GCRA): the record is one instant, `clear_at`, when every
//!   failure on record will have been forgotten.
//! - The failure that fills the budget locks the subject for `base`; each further lock
//!   doubles, up to `max`. After `max` of quiet following a lock the doubling starts
//!   over (the level decays).
//! - Attempts are admitted before they are decided and counted while in flight, so
//!   many concurrent guesses get no more checks than sequential ones: with
//!   `max_failures` = 10, exactly 10 are looked up, whatever the concurrency.
//!
//! Pure: the caller keeps the records and passes `now`.

use crate::model::LockScope;
use chrono::{DateTime, Duration, Utc};

/// The budgets in force (from `[lockout]`), one per scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuardRules {
    pub device: LockoutRules,
    pub account: LockoutRules,
    pub client: LockoutRules,
    pub server: LockoutRules,
}

impl GuardRules {
    pub fn of(&self, scope: LockScope) -> &LockoutRules {
        match scope {
            LockScope::Device => &self.device,
            LockScope::Account => &self.account,
            LockScope::Client => &self.client,
            LockScope::Server => &self.server,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutRules {
    /// Refused logins that may come at once; the one that fills the budget locks.
    pub max_failures: u32,
    /// Time for a full budget to refill.
    pub window: Duration,
    /// First lock; each further one doubles it.
    pub base: Duration,
    /// Longest lock. Also how long a subject must stay quiet after a lock ends
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

/// One subject's failed logins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRecord {
    /// When every failure on record will have been forgotten (the budget full again).
    pub clear_at: DateTime<Utc>,
    /// Attempts admitted and not yet settled.
    pub in_flight: u32,
    /// Locks so far (the doubling level).
    pub lockouts: u32,
    /// End of the latest lock.
    pub locked_until: Option<DateTime<Utc>>,
}

impl FailureRecord {
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            clear_at: now,
            in_flight: 0,
            lockouts: 0,
            locked_until: None,
        }
    }
}

/// Whether an attempt may be decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Admitted: it counts as in flight until settled.
    Admitted,
    /// The subject is locked until `until`.
    Locked { until: DateTime<Utc> },
    /// Failures on record and attempts in flight already fill the budget: were they
    /// all to fail, a lock would start. Refused without being decided; `until` is
    /// when that lock would end.
    Full { until: DateTime<Utc> },
}

impl LockoutRules {
    /// Time after which one failure is forgotten.
    fn per_failure(&self) -> Duration {
        let ms = self.window.num_milliseconds() / i64::from(self.max_failures.max(1));
        Duration::milliseconds(ms.max(1))
    }

    /// Length of the `nth` lock (1-based): base x 2^(n-1), at most `max`.
    pub fn lockout_length(&self, nth: u32) -> Duration {
        let factor = 1i64
            .checked_shl(nth.saturating_sub(1).min(40))
            .unwrap_or(i64::MAX);
        let ms = self.base.num_milliseconds().saturating_mul(factor);
        Duration::milliseconds(ms).min(self.max)
    }

    /// Failures still on record at `now` (rounded up: a failure half forgotten counts).
    pub fn failures_on_record(&self, record: &FailureRecord, now: DateTime<Utc>) -> u32 {
        let left = (record.clear_at - now).num_milliseconds();
        if left <= 0 {
            return 0;
        }
        let per = self.per_failure().num_milliseconds();
        u32::try_from((left + per - 1) / per).unwrap_or(u32::MAX)
    }

    /// When the subject's lock ends, if it is locked at `now`.
    pub fn locked_until(
        &self,
        record: &FailureRecord,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        record.locked_until.filter(|until| now < *until)
    }

    /// Whether `max` of quiet has passed since the lock that ended at `until`.
    fn quiet_since(&self, until: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        until
            .checked_add_signed(self.max)
            .is_some_and(|quiet| now >= quiet)
    }

    /// The doubling level the next lock would start from: reset after `max` of quiet.
    fn level(&self, record: &FailureRecord, now: DateTime<Utc>) -> u32 {
        match record.locked_until {
            Some(until) if self.quiet_since(until, now) => 0,
            _ => record.lockouts,
        }
    }

    /// Admits an attempt at `now` (counted in flight) or says why not.
    pub fn admit(&self, record: &mut FailureRecord, now: DateTime<Utc>) -> Admission {
        if let Some(until) = self.locked_until(record, now) {
            return Admission::Locked { until };
        }
        let pending = self
            .failures_on_record(record, now)
            .saturating_add(record.in_flight);
        if pending >= self.max_failures {
            // Only attempts in flight can fill it (a lock ends with room for one
            // more failure): they will have settled long before one is forgotten.
            return Admission::Full {
                until: now + self.per_failure(),
            };
        }
        record.in_flight += 1;
        Admission::Admitted
    }

    /// Counts a failure another server counted at `at` (and the lock it started
    /// there, if any): the budget is one budget whichever server is asked.
    pub fn failed_elsewhere(
        &self,
        record: &mut FailureRecord,
        at: DateTime<Utc>,
        lock: Option<(u32, DateTime<Utc>)>,
    ) {
        record.clear_at = record.clear_at.max(at) + self.per_failure();
        if let Some((lockouts, until)) = lock {
            record.lockouts = record.lockouts.max(lockouts);
            record.locked_until = record.locked_until.max(Some(until));
        }
    }

    /// Settles an admitted attempt: `failed` when it was refused and counts. Returns
    /// the end of the lock this failure started, if it started one.
    pub fn settle(
        &self,
        record: &mut FailureRecord,
        failed: bool,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        record.in_flight = record.in_flight.saturating_sub(1);
        if !failed {
            return None;
        }
        record.clear_at = record.clear_at.max(now) + self.per_failure();
        if self.locked_until(record, now).is_some()
            || self.failures_on_record(record, now) < self.max_failures
        {
            return None;
        }
        record.lockouts = self.level(record, now) + 1;
        // The lock lasts its length, or until the budget has room for one failure
        // again, whichever is later: with a window longer than the lock (an account:
        // 10 a day, locks from 10 minutes), the budget would otherwise still be full
        // when the lock ends, refusing with no lock to show for it, and with a lock
        // shorter than one refill step, every lock's end would give a free try.
        let room =
            record.clear_at - self.per_failure() * (self.max_failures.saturating_sub(1) as i32);
        let until = (now + self.lockout_length(record.lockouts)).max(room);
        record.locked_until = Some(until);
        Some(until)
    }

    /// Whether a record can be forgotten at `now` (nothing it holds matters any more).
    pub fn expired(&self, record: &FailureRecord, now: DateTime<Utc>) -> bool {
        record.in_flight == 0
            && record.clear_at <= now
            && record
                .locked_until
                .is_none_or(|until| self.quiet_since(until, now))
    }

    /// Refused logins a subject can sustain per day without ever being locked (the
    /// refill rate; the README's arithmetic of guessing times rests on it).
    pub fn sustained_per_day(&self) -> f64 {
        let per = self.per_failure().num_milliseconds() as f64;
        86_400_000.0 / per
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
    }

    /// `n` sequential failures at `at`; the lock ends they started.
    fn fail(
        rules: &LockoutRules,
        r: &mut FailureRecord,
        at: DateTime<Utc>,
        n: u32,
    ) -> Vec<DateTime<Utc>> {
        let mut locks = Vec::new();
        for _ in 0..n {
            if rules.admit(r, at) == Admission::Admitted {
                locks.extend(rules.settle(r, true, at));
            }
        }
        locks
    }

    #[test]
    fn ten_failures_at_once_lock_for_ten_minutes() {
        let rules = LockoutRules::default();
        let mut r = FailureRecord::new(t0());
        assert!(
            fail(&rules, &mut r, t0(), 9).is_empty(),
            "nine are not enough"
        );
        assert_eq!(rules.locked_until(&r, t0()), None);
        let until = t0() + Duration::minutes(10);
        assert_eq!(fail(&rules, &mut r, t0(), 1), vec![until]);
        assert_eq!(
            rules.admit(&mut r, until - Duration::seconds(1)),
            Admission::Locked { until }
        );
        assert_eq!(
            rules.admit(&mut r, until),
            Admission::Admitted,
            "free exactly at the end"
        );
    }

    #[test]
    fn the_budget_refills_evenly_over_the_window() {
        let rules = LockoutRules::default(); // one failure forgotten per minute
        let mut r = FailureRecord::new(t0());
        fail(&rules, &mut r, t0(), 9);
        // Five minutes later five are forgotten: five more fit, the sixth locks.
        let at = t0() + Duration::minutes(5);
        assert_eq!(rules.failures_on_record(&r, at), 4);
        assert!(fail(&rules, &mut r, at, 5).is_empty());
        assert_eq!(fail(&rules, &mut r, at, 1).len(), 1);
    }

    #[test]
    fn a_sustained_rate_under_the_refill_never_locks_and_one_above_does() {
        let rules = LockoutRules::default();
        let mut r = FailureRecord::new(t0());
        for i in 0..1000 {
            assert!(fail(&rules, &mut r, t0() + Duration::seconds(61 * i), 1).is_empty());
        }
        let mut r = FailureRecord::new(t0());
        let locks: usize = (0..100)
            .map(|i| fail(&rules, &mut r, t0() + Duration::seconds(50 * i), 1).len())
            .sum();
        assert!(locks >= 1);
    }

    #[test]
    fn concurrent_attempts_are_admitted_only_up_to_the_budget() {
        let rules = LockoutRules::default();
        let mut r = FailureRecord::new(t0());
        let admitted = (0..128)
            .filter(|_| rules.admit(&mut r, t0()) == Admission::Admitted)
            .count();
        assert_eq!(admitted, 10);
        assert!(matches!(rules.admit(&mut r, t0()), Admission::Full { .. }));
        let locks: Vec<_> = (0..10)
            .filter_map(|_| rules.settle(&mut r, true, t0()))
            .collect();
        assert_eq!(locks, vec![t0() + Duration::minutes(10)]);
        assert_eq!(r.lockouts, 1);
        assert_eq!(r.in_flight, 0);
    }

    #[test]
    fn a_lock_lasts_until_the_budget_has_room_and_no_lock_gives_more() {
        // The account budget: 10 per day (one per 2.4 h), locks from 10 minutes. The
        // lock lasts until there is room for one try, then one try locks again.
        let rules = LockoutRules {
            window: Duration::days(1),
            ..LockoutRules::default()
        };
        let step = Duration::minutes(144);
        let mut r = FailureRecord::new(t0());
        let until = fail(&rules, &mut r, t0(), 10)[0];
        assert_eq!(until - t0(), step);
        assert_eq!(
            rules.admit(&mut r, until - Duration::seconds(1)),
            Admission::Locked { until }
        );
        assert_eq!(rules.admit(&mut r, until), Admission::Admitted);
        let next = rules.settle(&mut r, true, until).unwrap();
        assert_eq!(next - until, step);
        // Locks shorter than one refill step: a sustained attacker still gets only the
        // refill rate (here 30 a minute), not a try at every lock's end.
        let rules = LockoutRules {
            max_failures: 30,
            window: Duration::minutes(1),
            base: Duration::seconds(1),
            max: Duration::seconds(1),
        };
        let mut r = FailureRecord::new(t0());
        let mut failed = 0;
        for ms in (0..600_000).step_by(100) {
            let at = t0() + Duration::milliseconds(ms);
            if rules.admit(&mut r, at) == Admission::Admitted {
                rules.settle(&mut r, true, at);
                failed += 1;
            }
        }
        assert!(failed <= 30 + 10 * 30, "{failed} failures in 10 minutes");
    }

    #[test]
    fn extreme_times_do_not_panic() {
        let rules = LockoutRules::default();
        let mut r = FailureRecord::new(t0());
        r.locked_until = Some(DateTime::<Utc>::MAX_UTC);
        r.lockouts = u32::MAX;
        assert!(!rules.expired(&r, t0()));
        assert!(matches!(
            rules.admit(&mut r, t0()),
            Admission::Locked { .. }
        ));
    }

    #[test]
    fn successes_free_their_place_and_are_not_counted() {
        let rules = LockoutRules::default();
        let mut r = FailureRecord::new(t0());
        for _ in 0..100 {
            assert_eq!(rules.admit(&mut r, t0()), Admission::Admitted);
            assert_eq!(rules.settle(&mut r, false, t0()), None);
        }
        assert_eq!(rules.failures_on_record(&r, t0()), 0);
        assert!(rules.expired(&r, t0()));
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
        let mut r = FailureRecord::new(t0());
        let mut at = t0();
        for expected in [10, 20, 40] {
            let until = fail(&rules, &mut r, at, 10)[0];
            assert_eq!(until - at, Duration::minutes(expected));
            at = until;
        }
        // A day of quiet after the lock ends: back to ten minutes.
        let quiet = r.locked_until.unwrap() + Duration::days(1);
        let until = fail(&rules, &mut r, quiet, 10)[0];
        assert_eq!(until - quiet, Duration::minutes(10));
        assert!(!rules.expired(&r, quiet + Duration::minutes(10)));
        assert!(rules.expired(&r, quiet + Duration::minutes(10) + Duration::days(1)));
    }

    proptest! {
        /// Whatever the interleaving of admissions and settlements, the failed
        /// attempts admitted within any stretch of time never exceed the budget plus
        /// what refilled during it: concurrency buys no extra guesses.
        #[test]
        fn no_interleaving_checks_more_than_the_budget(
            steps in proptest::collection::vec((0u8..3, 0i64..90), 1..300)
        ) {
            let rules = LockoutRules::default();
            let per = rules.per_failure().num_milliseconds();
            let mut r = FailureRecord::new(t0());
            let mut now = t0();
            // Admission times of attempts in flight, and of those that failed.
            let (mut in_flight, mut failed) = (Vec::new(), Vec::new());
            for (op, advance) in steps {
                now += Duration::seconds(advance);
                match op {
                    0 => if rules.admit(&mut r, now) == Admission::Admitted { in_flight.push(now) },
                    _ => if let Some(admitted) = in_flight.pop() {
                        rules.settle(&mut r, op == 1, now);
                        if op == 1 { failed.push(admitted) }
                    },
                }
                prop_assert_eq!(r.in_flight as usize, in_flight.len());
            }
            failed.sort();
            for (i, a) in failed.iter().enumerate() {
                for (j, b) in failed.iter().enumerate().skip(i) {
                    let refilled = ((*b - *a).num_milliseconds() / per) as usize;
                    prop_assert!(j - i < rules.max_failures as usize + refilled + 1,
                        "{} failures admitted within {}", j - i + 1, *b - *a);
                }
            }
        }
    }
}
