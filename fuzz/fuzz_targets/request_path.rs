//! The whole request path (triage, authenticate, decide against an in-memory store,
//! encode; accounting into the ledger) must never panic and only ever answers with a
//! valid packet whose first attribute is the Message-Authenticator.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static SERVER: OnceLock<pinradius::fuzz::RequestPath> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let _ = SERVER.get_or_init(pinradius::fuzz::RequestPath::new).run(data);
});
