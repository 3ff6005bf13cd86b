//! RFC 5080 section 2.2.2 duplicate detection: a retransmitted request (same source
//! address and port, Identifier and Request Authenticator) gets the byte-identical
//! response and is not processed again, so a retransmit never binds a device twice.
//!
//! Every request passes through here twice (begin, complete), from every auth thread,
//! so the cache is built for that: the key is hashed once per call (foldhash, seeded
//! per process, so a sender cannot choose colliding keys offline), the table is split
//! into shards with a lock each, and entries are never removed one by one. Each shard
//! keeps two generations: new entries go into the current one; when it is `ttl` old
//! or full, the previous generation is dropped whole and the current one takes its
//! place. An entry thus lives at least `ttl` (unless a flood fills the shard first,
//! when the oldest go), and one older than `ttl` is never replayed. A generation keeps
//! its answers' bytes in one buffer of its own, so recording an answer allocates
//! nothing once the buffers have grown, and dropping a generation frees nothing.

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::Mutex;
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
    Answered(Vec<u8>),
}

#[derive(Debug)]
struct Entry {
    key: RequestKey,
    /// Where the answer is in its generation's `answers`; `None` while in flight.
    response: Option<(u32, u32)>,
    /// When the entry was created; it is not replayed `ttl` later.
    created: Instant,
}

/// What `e` says to a retransmit: its answer from `answers`, or in flight.
fn seen(answers: &[u8], e: &Entry) -> Seen {
    match e.response {
        Some((start, len)) => {
            let start = start as usize;
            Seen::Answered(answers[start..start + len as usize].to_vec())
        }
        None => Seen::InFlight,
    }
}

#[derive(Debug, Default)]
struct Generation {
    entries: HashTable<Entry>,
    /// The answers of `entries`, one after the other.
    answers: Vec<u8>,
}

impl Generation {
    /// Empties it, keeping its allocations for the next use.
    fn clear(&mut self) {
        self.entries.clear();
        self.answers.clear();
    }

    /// Records `response` as the answer of `key`, if it is here.
    fn complete(&mut self, hash: u64, key: &RequestKey, response: &[u8]) -> bool {
        let Some(e) = self.entries.find_mut(hash, |e| e.key == *key) else {
            return false;
        };
        // A generation holds at most a few thousand answers of at most 4 KiB.
        let (Ok(start), Ok(len)) = (
            u32::try_from(self.answers.len()),
            u32::try_from(response.len()),
        ) else {
            return true;
        };
        self.answers.extend_from_slice(response);
        e.response = Some((start, len));
        true
    }
}

#[derive(Debug)]
struct Shard {
    current: Generation,
    previous: Generation,
    /// When `current` started taking entries.
    since: Instant,
}

impl Shard {
    /// Drops the previous generation when the current one is `ttl` old or holds
    /// `limit` entries; both when even the current one is past `ttl`.
    fn rotate(&mut self, now: Instant, ttl: Duration, limit: usize) {
        let age = now.saturating_duration_since(self.since);
        if age >= ttl.saturating_mul(2) {
            self.current.clear();
            self.previous.clear();
            self.since = now;
        } else if age >= ttl || self.current.entries.len() >= limit {
            // The emptied generation keeps its allocations for the next one.
            std::mem::swap(&mut self.current, &mut self.previous);
            self.current.clear();
            self.since = now;
        }
    }
}

/// Bounded in time (`ttl`) and size (`capacity`): under a flood the oldest entries go
/// first, so memory stays flat.
#[derive(Debug)]
pub struct RetransmitCache {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    /// How long an answer is replayed; NASes retransmit within seconds.
    ttl: Duration,
    /// Most entries in one generation of one shard.
    per_generation: usize,
}

/// Entries per shard at full capacity, at least; fewer shards for small caches keep
/// the bound tight.
const MIN_SHARD_CAPACITY: usize = 4096;
const MAX_SHARDS: usize = 16;

impl RetransmitCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        let capacity = capacity.max(2);
        let shards = (capacity / MIN_SHARD_CAPACITY).clamp(1, MAX_SHARDS);
        let now = Instant::now();
        Self {
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Shard {
                        current: Generation::default(),
                        previous: Generation::default(),
                        since: now,
                    })
                })
                .collect(),
            hasher: RandomState::default(),
            ttl,
            per_generation: capacity / shards / 2,
        }
    }

    /// The key's hash and its shard, locked. The shard is chosen by bits the tables
    /// use for neither bucket index (low bits) nor tag (top seven).
    fn shard(&self, key: &RequestKey) -> (u64, std::sync::MutexGuard<'_, Shard>) {
        let hash = self.hasher.hash_one(key);
        let shard = &self.shards[(hash >> 32) as usize % self.shards.len()];
        (hash, shard.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Looks `key` up, recording it as in flight when new.
    pub fn begin(&self, key: RequestKey, now: Instant) -> Seen {
        let (hash, mut shard) = self.shard(&key);
        shard.rotate(now, self.ttl, self.per_generation);
        let ttl = self.ttl;
        let eq = |e: &Entry| e.key == key;
        let shard = &mut *shard;
        let current = &mut shard.current;
        if let Some(e) = current.entries.find_mut(hash, eq) {
            if now.saturating_duration_since(e.created) < ttl {
                return seen(&current.answers, e);
            }
            // Expired: the same key is a new request now (its old answer's bytes stay
            // in the buffer until the generation goes).
            e.response = None;
            e.created = now;
            return Seen::New;
        }
        if let Some(e) = shard.previous.entries.find(hash, eq)
            && now.saturating_duration_since(e.created) < ttl
        {
            return seen(&shard.previous.answers, e);
        }
        // New, or expired in the previous generation: recorded in the current one,
        // which lookups search first.
        let entry = Entry {
            key,
            response: None,
            created: now,
        };
        let hasher = &self.hasher;
        shard
            .current
            .entries
            .insert_unique(hash, entry, |e| hasher.hash_one(e.key));
        Seen::New
    }

    /// Records the answer sent for `key` (copied into the cache).
    pub fn complete(&self, key: RequestKey, response: &[u8]) {
        let (hash, mut shard) = self.shard(&key);
        if !shard.current.complete(hash, &key, response) {
            shard.previous.complete(hash, &key, response);
        }
    }

    /// Forgets `key` (processing failed without an answer), so a retransmit is
    /// processed afresh.
    pub fn abandon(&self, key: RequestKey) {
        let (hash, mut shard) = self.shard(&key);
        let eq = |e: &Entry| e.key == key;
        if let Ok(e) = shard.current.entries.find_entry(hash, eq) {
            e.remove();
        } else if let Ok(e) = shard.previous.entries.find_entry(hash, eq) {
            e.remove();
        }
    }

    /// Entries held (live or not yet dropped).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().unwrap_or_else(|e| e.into_inner());
                s.current.entries.len() + s.previous.entries.len()
            })
            .sum()
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
        c.complete(key(1), &b"answer"[..]);
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

    #[test]
    fn entries_outlive_a_rotation_but_never_their_ttl() {
        let ttl = Duration::from_secs(30);
        let c = RetransmitCache::new(ttl, 1000);
        let t0 = Instant::now() + Duration::from_secs(1);
        let at = |s| t0 + Duration::from_secs(s);
        assert!(matches!(c.begin(key(1), at(0)), Seen::New));
        c.complete(key(1), &b"one"[..]);
        assert!(matches!(c.begin(key(2), at(25)), Seen::New));
        // key(3) at 31 s rotates: key(1) (expired) and key(2) move to the previous
        // generation; key(2) is still answered from there until its own 30 s pass.
        assert!(matches!(c.begin(key(3), at(31)), Seen::New));
        assert!(matches!(c.begin(key(2), at(54)), Seen::InFlight));
        c.complete(key(2), &b"two"[..]);
        assert!(matches!(c.begin(key(2), at(54)), Seen::Answered(r) if &*r == b"two"));
        assert!(matches!(c.begin(key(2), at(56)), Seen::New));
        // Long idle: nothing old is replayed.
        assert!(matches!(c.begin(key(3), at(500)), Seen::New));
    }

    proptest::proptest! {
        /// Against a plain map of every key ever seen: with room for all of them, the
        /// cache answers exactly as the map does, whatever the order and timing.
        #[test]
        fn behaves_like_a_map_with_expiry(
            ops in proptest::collection::vec((0u8..3, 0u8..12, 0u64..20), 1..300),
        ) {
            let ttl = Duration::from_secs(30);
            let c = RetransmitCache::new(ttl, 100_000);
            let mut model: std::collections::HashMap<u8, (Instant, Option<u8>)> =
                Default::default();
            let mut now = Instant::now();
            for (op, k, step) in ops {
                now += Duration::from_secs(step);
                match op {
                    0 => {
                        let expected = match model.get(&k) {
                            Some((created, answer)) if now.duration_since(*created) < ttl => {
                                answer.map_or("in flight", |_| "answered")
                            }
                            _ => {
                                model.insert(k, (now, None));
                                "new"
                            }
                        };
                        let got = match c.begin(key(k), now) {
                            Seen::New => "new",
                            Seen::InFlight => "in flight",
                            Seen::Answered(r) => {
                                proptest::prop_assert_eq!(Some(r[0]), model[&k].1);
                                "answered"
                            }
                        };
                        proptest::prop_assert_eq!(got, expected);
                    }
                    1 => {
                        c.complete(key(k), &[k][..]);
                        if let Some(e) = model.get_mut(&k) {
                            e.1 = Some(k);
                        }
                    }
                    _ => {
                        c.abandon(key(k));
                        model.remove(&k);
                    }
                }
            }
        }
    }
}
