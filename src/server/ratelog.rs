//! Logging drops without flooding: at most one line per cause per interval, carrying
//! the number of drops it stands for. Memory is one slot per cause, whatever the number
//! of senders.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct LogLimiter {
    /// Per cause: when a line was last allowed, and drops since then.
    slots: Mutex<HashMap<&'static str, (Option<Instant>, u64)>>,
    interval: Duration,
}

impl LogLimiter {
    pub fn new(interval: Duration) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            interval,
        }
    }

    /// Counts one event of `cause`; returns `Some(n)` when a line may be logged now,
    /// `n` being the events it covers (this one included).
    pub fn allow(&self, cause: &'static str, now: Instant) -> Option<u64> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = slots.entry(cause).or_insert((None, 0));
        slot.1 += 1;
        match slot.0 {
            Some(last) if now.saturating_duration_since(last) < self.interval => None,
            _ => {
                let n = slot.1;
                *slot = (Some(now), 0);
                Some(n)
            }
        }
    }
}

/// One client's reject counts: when its last line was written, and the counts since.
type Tally = (Instant, BTreeMap<&'static str, u64>);

/// Rejects as log lines: one at info per client at most once an interval, counting
/// each reason since the last, instead of a line per packet (a guessing run would
/// otherwise write a line per guess). Each reject is also logged at debug.
#[derive(Debug)]
pub struct RejectTally {
    slots: Mutex<HashMap<Arc<str>, Tally>>,
    interval: Duration,
}

impl RejectTally {
    pub fn new(interval: Duration) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            interval,
        }
    }

    /// Counts one reject of `client` for `reason`; writes the client's line when an
    /// interval has passed since its last.
    pub fn count(&self, client: &Arc<str>, reason: &'static str, now: Instant) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot = match slots.get_mut(&**client) {
            Some(slot) => slot,
            None => slots.entry(client.clone()).or_insert((
                now.checked_sub(self.interval).unwrap_or(now),
                BTreeMap::new(),
            )),
        };
        *slot.1.entry(reason).or_insert(0) += 1;
        if now.saturating_duration_since(slot.0) >= self.interval {
            write_tally(client, &mut slot.1);
            slot.0 = now;
        }
    }

    /// Writes the lines of clients with counts whose interval has passed.
    pub fn flush_due(&self, now: Instant) {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for (client, (last, counts)) in slots.iter_mut() {
            if !counts.is_empty() && now.saturating_duration_since(*last) >= self.interval {
                write_tally(client, counts);
                *last = now;
            }
        }
    }
}

fn write_tally(client: &str, counts: &mut BTreeMap<&'static str, u64>) {
    use std::fmt::Write;
    let total: u64 = counts.values().sum();
    let mut by_reason = String::new();
    for (reason, n) in counts.iter() {
        let _ = write!(
            by_reason,
            "{}{reason}={n}",
            if by_reason.is_empty() { "" } else { " " }
        );
    }
    tracing::info!(
        client,
        rejects = total,
        "Access-Rejects since the last count: {by_reason}"
    );
    counts.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_count() {
        let l = LogLimiter::new(Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(l.allow("unknown", t), Some(1));
        for _ in 0..99 {
            assert_eq!(l.allow("unknown", t + Duration::from_secs(1)), None);
        }
        assert_eq!(l.allow("other", t), Some(1));
        assert_eq!(l.allow("unknown", t + Duration::from_secs(10)), Some(100));
    }
}
