//! Logging drops without flooding: at most one line per cause per interval, carrying
//! the number of drops it stands for. Memory is one slot per cause, whatever the number
//! of senders.

use std::collections::HashMap;
use std::sync::Mutex;
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
