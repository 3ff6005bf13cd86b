//! RFC 5080 section 2.2.2 duplicate detection: a retransmitted request (same source
//! address and port, Identifier and Request Authenticator) gets the byte-identical
//! response and is not processed again, so a retransmit never binds a device twice.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What identifies a request for duplicate detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestKey {
    pub source: SocketAddr,
    pub identifier: u8,
    pub authenticator: [u8; 16],
}

/// State of a request we have seen.
#[derive(Debug, Clone)]
pub enum Seen {
    /// Not seen before (now recorded as in flight): process it.
    New,
    /// Being processed: drop the duplicate, the answer is on its way.
    InFlight,
    /// Answered: send these bytes again.
    Answered(Arc<[u8]>),
}

#[derive(Debug)]
struct Entry {
    /// `None` while in flight.
    response: Option<Arc<[u8]>>,
    /// When the entry was created; it expires `ttl` later.
    created: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<RequestKey, Entry>,
    /// Insertion order, for expiry and eviction without scanning the map.
    order: VecDeque<(Instant, RequestKey)>,
}

/// Bounded in time (`ttl`) and size (`capacity`): under a flood the oldest entries go
/// first, so memory stays flat.
#[derive(Debug)]
pub struct RetransmitCache {
    inner: Mutex<Inner>,
    /// How long an answer is replayed; NASes retransmit within seconds.
    ttl: Duration,
    /// Most entries kept at once.
    capacity: usize,
}

impl RetransmitCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            ttl,
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Looks `key` up, recording it as in flight when new.
    pub fn begin(&self, key: RequestKey, now: Instant) -> Seen {
        let mut inner = self.lock();
        // Expire from the front of the insertion order.
        while let Some(&(created, k)) = inner.order.front() {
            if now.saturating_duration_since(created) < self.ttl
                && inner.order.len() < self.capacity
            {
                break;
            }
            inner.order.pop_front();
            if inner.entries.get(&k).is_some_and(|e| e.created == created) {
                inner.entries.remove(&k);
            }
        }
        if let Some(e) = inner.entries.get(&key) {
            return match &e.response {
                Some(r) => Seen::Answered(r.clone()),
                None => Seen::InFlight,
            };
        }
        inner.entries.insert(
            key,
            Entry {
                response: None,
                created: now,
            },
        );
        inner.order.push_back((now, key));
        Seen::New
    }

    /// Records the answer sent for `key`.
    pub fn complete(&self, key: RequestKey, response: Arc<[u8]>) {
        if let Some(e) = self.lock().entries.get_mut(&key) {
            e.response = Some(response);
        }
    }

    /// Forgets `key` (processing failed without an answer), so a retransmit is
    /// processed afresh.
    pub fn abandon(&self, key: RequestKey) {
        self.lock().entries.remove(&key);
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u8) -> RequestKey {
        RequestKey {
            source: "127.0.0.1:5000".parse().unwrap(),
            identifier: id,
            authenticator: [id; 16],
        }
    }

    #[test]
    fn new_inflight_answered_expired() {
        let c = RetransmitCache::new(Duration::from_secs(30), 100);
        let t0 = Instant::now();
        assert!(matches!(c.begin(key(1), t0), Seen::New));
        assert!(matches!(c.begin(key(1), t0), Seen::InFlight));
        c.complete(key(1), Arc::from(&b"answer"[..]));
        match c.begin(key(1), t0 + Duration::from_secs(29)) {
            Seen::Answered(r) => assert_eq!(&*r, b"answer"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            c.begin(key(1), t0 + Duration::from_secs(31)),
            Seen::New
        ));
    }

    #[test]
    fn abandon_allows_reprocessing_and_capacity_bounds_memory() {
        let c = RetransmitCache::new(Duration::from_secs(30), 10);
        let t0 = Instant::now();
        assert!(matches!(c.begin(key(1), t0), Seen::New));
        c.abandon(key(1));
        assert!(matches!(c.begin(key(1), t0), Seen::New));
        for i in 0..=255u8 {
            c.begin(key(i), t0);
        }
        assert!(c.len() <= 11, "{}", c.len());
    }
}
