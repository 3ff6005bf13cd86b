//! Micro-benchmarks of the per-packet work: `cargo bench --bench hot_paths`.
//! (Throughput of the whole server is measured by `pinradius bench` and
//! bench/compare-freeradius.sh; these say where a request's time goes.)

use chrono::{TimeZone, Utc};
use criterion::{Criterion, criterion_group, criterion_main};
use pinradius::model::{AccessToken, TokenOwner, TokenUsage};
use pinradius::policy::{self, LoginRules};
use pinradius::protocol::{self, Code, PacketBuilder, attr};
use std::hint::black_box;

const SECRET: &[u8] = b"bench-shared-secret-0123456789";

fn request() -> Vec<u8> {
    let auth = [7u8; 16];
    let mut b = PacketBuilder::with_message_authenticator(Code::AccessRequest, 42);
    b.add(attr::USER_NAME, b"48213").unwrap();
    b.add(
        attr::USER_PASSWORD,
        &protocol::pap_encrypt(b"48213", SECRET, &auth).unwrap(),
    )
    .unwrap();
    b.add(attr::CALLING_STATION_ID, b"AA-BB-CC-DD-EE-01")
        .unwrap();
    b.add(4, &[10, 0, 0, 1]).unwrap(); // NAS-IP-Address
    b.add(attr::NAS_IDENTIFIER, b"lobby-mikrotik").unwrap();
    b.finish_request(&auth, SECRET)
}

fn hot_paths(c: &mut Criterion) {
    let bytes = request();
    let packet = protocol::validate(&bytes).unwrap();
    let hidden = packet.value(attr::USER_PASSWORD).unwrap().to_vec();

    c.bench_function("validate + read attributes", |b| {
        b.iter(|| {
            let p = protocol::validate(black_box(&bytes)).unwrap();
            black_box(p.value(attr::USER_NAME));
            black_box(p.value(attr::CALLING_STATION_ID));
        })
    });
    c.bench_function("PAP decrypt", |b| {
        b.iter(|| protocol::pap_decrypt(black_box(&hidden), SECRET, packet.authenticator()))
    });
    c.bench_function("Message-Authenticator verify", |b| {
        b.iter(|| protocol::verify_message_authenticator(black_box(&packet), SECRET, None))
    });

    let now = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
    let token = AccessToken {
        id: 1,
        business_id: 1,
        access_code: "48213".into(),
        minutes_included: 60,
        description: None,
        valid_from: None,
        valid_to: Some(now + chrono::Duration::hours(8)),
        user_limit: Some(2),
        device_limit: Some(3),
        mac_address: None,
        booking_guid: None,
        visitor_guid: None,
        customer_id: None,
        created_at: now,
        revoked_at: None,
        uid: "0123456789abcdef0123456789abcdef".into(),
    };
    let usage = TokenUsage {
        bound_devices: ["AA:BB:CC:DD:EE:01".parse().unwrap()].into(),
        used_seconds: 600,
        ..Default::default()
    };
    let device = Some("AA:BB:CC:DD:EE:01".parse().unwrap());
    let rules = LoginRules::default();
    c.bench_function("policy decide", |b| {
        b.iter(|| {
            policy::decide(
                black_box(now),
                &token,
                TokenOwner::Standalone,
                &usage,
                device,
                &rules,
            )
        })
    });

    c.bench_function("encode Access-Accept", |b| {
        b.iter(|| {
            let mut r = PacketBuilder::with_message_authenticator(Code::AccessAccept, 42);
            r.add_u32(attr::SESSION_TIMEOUT, 3000).unwrap();
            r.add_u32(attr::IDLE_TIMEOUT, 900).unwrap();
            r.add(attr::CLASS, b"pinradius:token=1").unwrap();
            r.add_vendor(14988, 8, b"10M/10M").unwrap();
            black_box(r.finish_response(packet.authenticator(), SECRET))
        })
    });
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
