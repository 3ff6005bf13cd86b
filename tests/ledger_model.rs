//! A model-based property test of the accounting ledger (issue 13).
//!
//! A simulated pair of NASes behind one CIDR client runs sessions for two tokens and
//! reports them as real NASes do: Start, Interims with cumulative times, Stop, some
//! records lost, some retransmitted (later, with a larger Acct-Delay-Time), Interims
//! without Calling-Station-Id, Acct-Session-Ids used again after a session ended or
//! the NAS rebooted (Accounting-On), malformed attributes, the client renamed between
//! records, tokens deleted and created again with the same code. Every record goes
//! through the same parsing as on the wire (`record_of`) into the store.
//!
//! The model is plain maps: per token, the most time delivered for each of the NAS's
//! sessions (every second counted exactly once), and which sessions are open. After
//! every step the store's used seconds and open sessions per token must equal it.
//!
//! Every case runs on SQLite (in memory) and, when `PINRADIUS_TEST_POSTGRES` names a
//! server (as for the store's unit tests), on PostgreSQL in a schema of its own.

use chrono::{DateTime, Duration, TimeZone, Utc};
#[path = "common/pg.rs"]
mod pg;

use pinradius::model::{Database, NewAccessToken};
use pinradius::protocol::{self, Code, PacketBuilder, attr};
use pinradius::server::record_of;
use pinradius::store::{AcctOutcome, Store};
use proptest::prelude::*;
use std::collections::HashMap;
use std::net::IpAddr;

const SECRET: &[u8] = b"model-secret";
const CODES: [&str; 2] = ["11111", "22222"];

#[derive(Debug, Clone)]
enum Op {
    /// A NAS starts a session for a token on a free Acct-Session-Id.
    Begin { nas: usize, sid: u8, token: usize },
    /// Time passes; the NAS reports an Interim for one of its open sessions.
    Interim {
        nas: usize,
        pick: usize,
        secs: u32,
        fault: Fault,
    },
    /// A session ends; the NAS sends a Stop.
    End {
        nas: usize,
        pick: usize,
        secs: u32,
        fault: Fault,
    },
    /// The last delivered record again, `secs` later (Acct-Delay-Time grows).
    Retransmit { secs: u32 },
    /// The NAS reboots: Accounting-On; its sessions are over.
    Reboot { nas: usize },
    /// A token is deleted and created again with the same code.
    Recreate { token: usize },
}

/// What happens to a record on its way.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    None,
    Lost,
    NoMac,
    /// Acct-Session-Time of 3 octets: kept as unmatched, not counted.
    BadTime,
    /// No Acct-Session-Id: kept as unmatched.
    NoSessionId,
}

fn fault() -> impl Strategy<Value = Fault> {
    prop_oneof![
        6 => Just(Fault::None),
        2 => Just(Fault::Lost),
        2 => Just(Fault::NoMac),
        1 => Just(Fault::BadTime),
        1 => Just(Fault::NoSessionId),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 0..3u8, 0..2usize).prop_map(|(nas, sid, token)| Op::Begin { nas, sid, token }),
        4 => (0..2usize, 0..4usize, 1..400u32, fault()).prop_map(|(nas, pick, secs, fault)| Op::Interim { nas, pick, secs, fault }),
        3 => (0..2usize, 0..4usize, 1..400u32, fault()).prop_map(|(nas, pick, secs, fault)| Op::End { nas, pick, secs, fault }),
        2 => (0..30u32).prop_map(|secs| Op::Retransmit { secs }),
        1 => (0..2usize).prop_map(|nas| Op::Reboot { nas }),
        1 => (0..2usize).prop_map(|token| Op::Recreate { token }),
    ]
}

/// One session as the NAS knows it.
#[derive(Debug, Clone)]
struct NasSession {
    sid: u8,
    token: usize,
    /// Generation of the token it logged in with (a recreated token is another).
    generation: usize,
    began: DateTime<Utc>,
    /// Cumulative seconds so far.
    time: u32,
}

/// The reference ledger: per session the NAS ran (by number), the token generation
/// it charges, the most time delivered, and whether the store holds it open.
#[derive(Default)]
struct Model {
    sessions: HashMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    token: usize,
    generation: usize,
    nas: usize,
    time: u32,
    open: bool,
}

struct Sim {
    store: Store,
    /// Which backend, for failure messages.
    backend: &'static str,
    now: DateTime<Utc>,
    /// Per NAS, its sessions in progress (with their session number).
    open: [Vec<(u64, NasSession)>; 2],
    /// Per NAS, the Acct-Session-Ids whose last session's end reached the store
    /// (or the NAS rebooted since): only those may be used again.
    free_sids: [Vec<u8>; 2],
    next_session: u64,
    /// Per token: the store's id, the uid, the generation.
    tokens: [(i64, String, usize); 2],
    model: Model,
    last: Option<(Vec<u8>, DateTime<Utc>, u32, usize)>,
    renames: usize,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 9, 0, 0).unwrap()
}

fn create(store: &Store, code: &str) -> (i64, String) {
    let t = NewAccessToken {
        business_id: 1,
        access_code: code.into(),
        minutes_included: 100_000,
        ..Default::default()
    };
    let id = store.create_token(&t, t0()).unwrap();
    (id, store.token_by_id(id).unwrap().unwrap().uid)
}

/// A fresh database of one backend; a PostgreSQL schema is dropped with it.
struct Fresh {
    backend: &'static str,
    _schema: Option<pg::Schema>,
}

impl Fresh {
    /// A fresh database on each backend available (SQLite always).
    fn each() -> Vec<(Fresh, Store)> {
        let mut out = vec![(
            Fresh {
                backend: "sqlite",
                _schema: None,
            },
            Store::open_in_memory().unwrap(),
        )];
        if let Some(schema) = pg::Schema::new() {
            let store = Store::open_database(&Database::Postgres {
                url: schema.url.clone(),
                password_file: None,
            })
            .unwrap();
            out.push((
                Fresh {
                    backend: "postgres",
                    _schema: Some(schema),
                },
                store,
            ));
        }
        out
    }
}

impl Sim {
    fn new(store: Store, backend: &'static str) -> Sim {
        let a = create(&store, CODES[0]);
        let b = create(&store, CODES[1]);
        Sim {
            store,
            backend,
            now: t0(),
            open: [Vec::new(), Vec::new()],
            free_sids: [vec![0, 1, 2], vec![0, 1, 2]],
            next_session: 0,
            tokens: [(a.0, a.1, 0), (b.0, b.1, 0)],
            model: Model::default(),
            last: None,
            renames: 0,
        }
    }

    /// An Accounting-Request from NAS `nas` (both behind one CIDR client: told
    /// apart by NAS-IP-Address).
    fn packet(&self, nas: usize, status: u32, s: &NasSession, fault: Fault, delay: u32) -> Vec<u8> {
        let mut b = PacketBuilder::without_message_authenticator(Code::AccountingRequest, 1);
        b.add_u32(attr::ACCT_STATUS_TYPE, status).unwrap();
        if fault != Fault::NoSessionId {
            b.add(attr::ACCT_SESSION_ID, format!("{:08X}", s.sid).as_bytes())
                .unwrap();
        }
        b.add(attr::USER_NAME, CODES[s.token].as_bytes()).unwrap();
        if fault != Fault::NoMac {
            b.add(
                attr::CALLING_STATION_ID,
                format!("02:00:00:00:0{nas}:{:02x}", s.sid).as_bytes(),
            )
            .unwrap();
        }
        if status != 1 {
            if fault == Fault::BadTime {
                b.add(attr::ACCT_SESSION_TIME, &s.time.to_be_bytes()[1..])
                    .unwrap();
            } else {
                b.add_u32(attr::ACCT_SESSION_TIME, s.time).unwrap();
            }
        }
        if delay > 0 {
            b.add_u32(attr::ACCT_DELAY_TIME, delay).unwrap();
        }
        b.add_u32(
            attr::NAS_IP_ADDRESS,
            u32::from_be_bytes([10, 0, 0, 1 + nas as u8]),
        )
        .unwrap();
        // The Class of the token generation the session logged in with.
        let uid = if self.tokens[s.token].2 == s.generation {
            self.tokens[s.token].1.clone()
        } else {
            "d".repeat(32) // deleted since: a uid no token has
        };
        b.add(attr::CLASS, format!("pinradius:uid={uid}").as_bytes())
            .unwrap();
        b.finish_accounting_request(SECRET)
    }

    fn deliver(
        &mut self,
        bytes: &[u8],
        at: DateTime<Utc>,
        delay_marker: u32,
        nas: usize,
    ) -> AcctOutcome {
        let packet = protocol::validate(bytes).unwrap();
        // The client is renamed now and then: it must change nothing.
        let client = format!("client-{}", self.renames % 3);
        let source: IpAddr = "192.0.2.7".parse().unwrap();
        let record = record_of(&packet, &client, 1, source, at);
        self.last = Some((bytes.to_vec(), at, delay_marker, nas));
        self.store.apply_accounting(&record).unwrap()
    }

    fn step(&mut self, op: &Op) {
        self.now += Duration::seconds(1);
        match *op {
            Op::Begin { nas, sid, token } => {
                let Some(i) = self.free_sids[nas].iter().position(|s| *s == sid) else {
                    return;
                };
                self.free_sids[nas].remove(i);
                let s = NasSession {
                    sid,
                    token,
                    generation: self.tokens[token].2,
                    began: self.now,
                    time: 0,
                };
                let n = self.next_session;
                self.next_session += 1;
                let bytes = self.packet(nas, 1, &s, Fault::None, 0);
                self.deliver(&bytes, self.now, 0, nas);
                self.delivered(nas, n, &s, false);
                self.open[nas].push((n, s));
            }
            Op::Interim {
                nas,
                pick,
                secs,
                fault,
            }
            | Op::End {
                nas,
                pick,
                secs,
                fault,
            } => {
                if self.open[nas].is_empty() {
                    return;
                }
                let stop = matches!(op, Op::End { .. });
                let i = pick % self.open[nas].len();
                self.now += Duration::seconds(i64::from(secs));
                let (n, mut s) = self.open[nas][i].clone();
                s.time = (self.now - s.began).num_seconds() as u32;
                self.open[nas][i].1 = s.clone();
                let bytes = self.packet(nas, if stop { 2 } else { 3 }, &s, fault, 0);
                if stop {
                    self.open[nas].remove(i);
                }
                let delivered = match fault {
                    Fault::Lost => false,
                    _ => {
                        let outcome = self.deliver(&bytes, self.now, 0, nas);
                        !matches!(outcome, AcctOutcome::Unmatched { .. })
                    }
                };
                if delivered {
                    self.delivered(nas, n, &s, stop);
                }
                if stop && delivered {
                    // The store closed the session: the id may be used again.
                    self.free_sids[nas].push(s.sid);
                }
                self.renames += 1;
            }
            Op::Retransmit { secs } => {
                let Some((bytes, at, delay, nas)) = self.last.clone() else {
                    return;
                };
                // The same record later, with Acct-Delay-Time grown by as much: the
                // NAS rebuilds it, so it is re-encoded with the new delay.
                let packet = protocol::validate(&bytes).unwrap();
                let mut b =
                    PacketBuilder::without_message_authenticator(Code::AccountingRequest, 2);
                for a in packet
                    .attributes()
                    .filter(|a| a.typ != attr::ACCT_DELAY_TIME)
                {
                    b.add(a.typ, a.value).unwrap();
                }
                b.add_u32(attr::ACCT_DELAY_TIME, delay + secs).unwrap();
                let again = b.finish_accounting_request(SECRET);
                let at = at + Duration::seconds(i64::from(secs));
                self.deliver(&again, at, delay + secs, nas);
            }
            Op::Reboot { nas } => {
                let mut b =
                    PacketBuilder::without_message_authenticator(Code::AccountingRequest, 3);
                b.add_u32(attr::ACCT_STATUS_TYPE, 7).unwrap();
                b.add_u32(
                    attr::NAS_IP_ADDRESS,
                    u32::from_be_bytes([10, 0, 0, 1 + nas as u8]),
                )
                .unwrap();
                let bytes = b.finish_accounting_request(SECRET);
                self.deliver(&bytes, self.now, 0, nas);
                // Every session of this NAS ends, in the store too: all ids are free.
                self.open[nas].clear();
                for e in self.model.sessions.values_mut().filter(|e| e.nas == nas) {
                    e.open = false;
                }
                self.free_sids[nas] = vec![0, 1, 2];
                self.last = None;
            }
            Op::Recreate { token } => {
                assert!(
                    self.store
                        .delete_token(self.tokens[token].0, self.now)
                        .unwrap()
                );
                let (id, uid) = create(&self.store, CODES[token]);
                let generation = self.tokens[token].2 + 1;
                self.tokens[token] = (id, uid, generation);
                self.last = None;
            }
        }
    }

    /// A record of session `n` reached the store: its time counts (the most
    /// delivered), and it is open unless this was its Stop.
    fn delivered(&mut self, nas: usize, n: u64, s: &NasSession, stop: bool) {
        let e = self.model.sessions.entry(n).or_insert(Entry {
            token: s.token,
            generation: s.generation,
            nas,
            time: 0,
            open: true,
        });
        e.time = e.time.max(s.time);
        if stop {
            e.open = false;
        }
    }

    /// Store and model agree on every current token.
    fn check(&self) -> Result<(), TestCaseError> {
        let open = self.store.list_sessions(true).unwrap();
        for (token, (id, _, generation)) in self.tokens.iter().enumerate() {
            let (want_used, want_open) = self
                .model
                .sessions
                .values()
                .filter(|e| e.token == token && e.generation == *generation)
                .fold((0u64, 0usize), |(u, o), e| {
                    (u + u64::from(e.time), o + usize::from(e.open))
                });
            let used = self
                .store
                .token_usage(*id, None, self.now, self.now)
                .unwrap()
                .used_seconds;
            let open_here = open.iter().filter(|s| s.token_id == *id).count();
            prop_assert_eq!(
                used,
                want_used,
                "{}: used seconds of token {}",
                self.backend,
                token
            );
            prop_assert_eq!(
                open_here,
                want_open,
                "{}: open sessions of token {}",
                self.backend,
                token
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn the_store_counts_what_the_model_counts(ops in proptest::collection::vec(op(), 1..80)) {
        for (fresh, store) in Fresh::each() {
            let mut sim = Sim::new(store, fresh.backend);
            for op in &ops {
                sim.step(op);
                sim.check()?;
            }
        }
    }
}
