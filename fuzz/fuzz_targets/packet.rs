//! Validation and decoding of arbitrary datagrams must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pinradius::fuzz::packet(data);
});
