//! Entry points of the fuzzers (`fuzz/`, run with cargo-fuzz) and of
//! `tests/fuzz_corpus.rs`, which replays their corpus in every `cargo test` on stable.
//! Both call exactly these functions, so what the fuzzers explored is what CI checks.

use crate::clock::FixedClock;
use crate::config::Config;
use crate::model::NewAccessToken;
use crate::protocol::{self, Code};
use crate::server::{Arrived, Context, Processed, Responder, process_auth_datagram, record_of};
use crate::store::Store;
use chrono::{TimeZone, Utc};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Shared secret of the fuzzing client (127.0.0.1, business 1).
pub const SECRET: &str = "fuzz";

/// Target `packet`: validation, then everything that reads a validated packet.
pub fn packet(data: &[u8]) {
    let Ok(p) = protocol::validate(data) else {
        return;
    };
    let total: usize = p.attributes().map(|a| a.value.len() + 2).sum();
    assert_eq!(
        total + protocol::HEADER_LEN,
        p.bytes().len(),
        "attributes tile the packet"
    );
    let _ = protocol::verify_message_authenticator(&p, SECRET.as_bytes(), None);
    let _ = protocol::verify_accounting_request(&p, SECRET.as_bytes());
    let _ = protocol::verify_response(&p, &[0u8; 16], SECRET.as_bytes());
    for a in p.attributes() {
        let _ = protocol::vendor_specific(a.value);
        let _ = protocol::pap_decrypt(a.value, SECRET.as_bytes(), p.authenticator());
        let _ = protocol::chap_matches(a.value, p.authenticator(), b"12345");
    }
}

/// Target `request_path`: a whole server (in-memory store, fixed clock) answering the
/// datagram as the receive loop and a worker would, accounting included.
pub struct RequestPath {
    ctx: Arc<Context>,
    /// Where answers given after their writes arrive.
    later: std::sync::mpsc::Receiver<Vec<u8>>,
    responder: Arc<dyn Responder>,
}

/// Collects the answers of logins answered after their writes.
struct Collect(std::sync::Mutex<std::sync::mpsc::Sender<Vec<u8>>>);

impl Responder for Collect {
    fn respond(&self, answer: &[u8], _to: SocketAddr) {
        let _ = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(answer.to_vec());
    }
}

impl RequestPath {
    /// A server with tokens "12345" (two devices), "55555" (one MAC only) and
    /// "77777" (one minute), and a client that does not require Message-Authenticator
    /// so the fuzzer reaches the decision without forging HMACs.
    pub fn new() -> Self {
        let config = Config::from_toml(
            std::path::Path::new("fuzz.toml"),
            &format!(
                "[server]\n[reply]\nidle_timeout = 600\n[reply.attributes]\n\"Mikrotik-Rate-Limit\" = \"1M/1M\"\n\
                 [[client]]\nname = \"fuzz\"\naddress = \"127.0.0.1\"\nsecret = \"{SECRET}\"\nbusiness_id = 1\n\
                 require_message_authenticator = false\n"
            ),
        )
        .expect("fuzz config");
        let store = Arc::new(Store::open_in_memory().expect("in-memory store"));
        let now = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        for (code, minutes, device_limit, mac) in [
            ("12345", 60, Some(2), None),
            ("55555", 60, None, Some("02:00:00:00:00:01")),
            ("77777", 1, None, None),
        ] {
            let t = NewAccessToken {
                business_id: 1,
                access_code: code.into(),
                minutes_included: minutes,
                device_limit,
                mac_address: mac.map(|m| m.parse().unwrap()),
                ..Default::default()
            };
            store.create_token(&t, now).expect("fuzz token");
        }
        let ctx =
            Context::new(&config, store, Arc::new(FixedClock::new(now))).expect("fuzz context");
        let (tx, later) = std::sync::mpsc::channel();
        Self {
            ctx: Arc::new(ctx),
            later,
            responder: Arc::new(Collect(std::sync::Mutex::new(tx))),
        }
    }

    /// Feeds one datagram; returns the answer, if any, after checking that it is a
    /// valid RADIUS packet carrying a Message-Authenticator first.
    pub fn run(&self, data: &[u8]) -> Option<Vec<u8>> {
        let source: SocketAddr = "127.0.0.1:50000".parse().unwrap();
        if let Ok(p) = protocol::validate(data)
            && p.code() == Code::AccountingRequest
        {
            let record = record_of(&p, "fuzz", 1, source.ip(), self.ctx.clock.now());
            let _ = self.ctx.store.apply_accounting(&record);
            return None;
        }
        let at = Arrived {
            source,
            received: Instant::now(),
            read_point: self.ctx.store.read_point(),
        };
        let answer =
            match process_auth_datagram(&self.ctx, &self.ctx.settings(), &self.responder, data, at)
            {
                Processed::Answer(a) => a.bytes,
                Processed::Nothing => return None,
                // Its writes go to the login writer thread, which answers it (or not, when
                // a write failed outright) within the configured wait.
                Processed::Later => self
                    .later
                    .recv_timeout(std::time::Duration::from_secs(5))
                    .ok()?,
            };
        let p = protocol::validate(&answer).expect("our answers are valid packets");
        assert_eq!(
            p.attributes().next().map(|a| a.typ),
            Some(protocol::attr::MESSAGE_AUTHENTICATOR)
        );
        Some(answer)
    }
}

impl Default for RequestPath {
    fn default() -> Self {
        Self::new()
    }
}
