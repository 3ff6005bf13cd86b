//! Guessing lockout and hostile input over the wire (issue 5).

use crate::harness::{Harness, answered, ask, pap, t0};
use chrono::Duration;
use pinradius::model::{LockScope, NewAccessToken};
use pinradius::server::{Charge, NasLabel, Verdict};
use radius::core::code::Code;

fn token(h: &Harness, code: &str) {
    let t = NewAccessToken {
        business_id: 1,
        access_code: code.into(),
        minutes_included: 600,
        ..Default::default()
    };
    h.store.create_token(&t, t0()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_wrong_codes_lock_the_device_out_but_not_the_others() {
    let h = Harness::start("").await;
    token(&h, "48213");
    let guesser = "aa-bb-cc-00-00-66";
    for guess in 0..40 {
        let r = ask(
            h.auth,
            pap(&format!("{:05}", 10_000 + guess), "x", Some(guesser)),
        )
        .await
        .unwrap();
        assert_eq!(r.code, Code::AccessReject);
    }
    // The right code from the guessing device: refused, and told why.
    let r = ask(h.auth, pap("48213", "48213", Some(guesser)))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessReject);
    assert!(
        r.reply_message()
            .starts_with("Too many failed attempts from this device"),
        "{}",
        r.reply_message()
    );
    // Another device with the right code: unaffected.
    let r = ask(h.auth, pap("48213", "48213", Some("aa-bb-cc-00-00-01")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessAccept);
    // The lockout is in the store (it survives a restart) ...
    let locked = h.store.list_lockouts(Some(t0())).unwrap();
    assert_eq!(locked.len(), 1);
    assert_eq!(
        (locked[0].scope, locked[0].subject.as_str()),
        (LockScope::Device, "AA:BB:CC:00:00:66")
    );
    assert_eq!(
        locked[0].lockouts, 1,
        "failures while locked out do not extend the lockout"
    );
    assert_eq!(locked[0].locked_until, t0() + Duration::minutes(10));
    // ... ends on time ...
    h.clock.set(t0() + Duration::minutes(10));
    assert_eq!(
        ask(h.auth, pap("48213", "48213", Some(guesser)))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    // ... doubles on the next round ...
    for guess in 0..10 {
        ask(
            h.auth,
            pap(&format!("{:05}", 20_000 + guess), "x", Some(guesser)),
        )
        .await
        .unwrap();
    }
    let locked = h.store.list_lockouts(Some(h.clock_now())).unwrap();
    assert_eq!(
        locked[0].locked_until - h.clock_now(),
        Duration::minutes(20)
    );
    // ... and an admin's clear takes effect on the very next request.
    assert_eq!(
        h.store
            .clear_lockouts(LockScope::Device, Some(&locked[0].subject), None)
            .unwrap(),
        1
    );
    assert_eq!(
        ask(h.auth, pap("48213", "48213", Some(guesser)))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_garbage_does_not_stop_valid_requests() {
    let h = Harness::start("").await;
    token(&h, "48213");
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let valid = pap("48213", "48213", None);
    let mut sent = 0;
    for i in 0..6_000u32 {
        let mut d = valid.clone();
        match i % 6 {
            0 => d.truncate((i % 20) as usize), // shorter than a header
            1 => d[2..4].copy_from_slice(&4000u16.to_be_bytes()), // Length past the datagram
            2 => d[21] = 0,                     // attribute length 0
            3 => d[39] = 1,                     // attribute length 1
            4 => d[25] ^= 0x55,                 // Message-Authenticator wrong
            _ => d[0] = 200,                    // unknown code
        }
        sock.send_to(&d, h.auth).await.unwrap();
        sent += 1;
    }
    assert_eq!(sent, 6_000);
    // Nothing answered the garbage; the valid request is answered correctly.
    let mut buf = [0u8; 4096];
    assert!(
        tokio::time::timeout(
            std::time::Duration::from_millis(300),
            sock.recv_from(&mut buf)
        )
        .await
        .is_err()
    );
    let r = ask(h.auth, pap("48213", "48213", None))
        .await
        .expect("valid request answered after the flood");
    assert_eq!(
        (r.code, r.session_timeout()),
        (Code::AccessAccept, Some(36_000))
    );
    assert!(answered(h.auth, &pap("48213", "48213", None)).await);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_counters_are_bounded_under_a_flood_of_random_devices() {
    // Budgets large enough that the NAS is never paused: every device is tracked.
    let h =
        Harness::start("[lockout]\nclient_max_failures = 1000000\nserver_max_failures = 1000000\n")
            .await;
    let settings = h.ctx.settings();
    let client: std::sync::Arc<str> = "nas".into();
    let nas = NasLabel {
        client: &client,
        nas: pinradius::model::NasKey {
            source: "127.0.0.1".parse().unwrap(),
            nas_ip: None,
            nas_id: None,
        },
    };
    let metrics = pinradius::metrics::Metrics::new();
    for i in 0..110_000u32 {
        let mac = format!(
            "02:{:02x}:{:02x}:{:02x}:00:01",
            i >> 16,
            (i >> 8) & 0xff,
            i & 0xff
        )
        .parse()
        .unwrap();
        let charge = Charge {
            nas,
            device: Some(mac),
            account: None,
            user_name: None,
        };
        let Verdict::Go(ticket) = h
            .ctx
            .guard
            .admit(&h.store, &settings.lockout, &charge, 0, t0())
            .unwrap()
        else {
            panic!("refused")
        };
        let locks = h
            .ctx
            .guard
            .settle(&settings.lockout, ticket, true, &charge, &metrics, t0());
        h.ctx.persist_locks(locks, t0(), None);
    }
    let [devices, _, nases] = h.ctx.guard.tracked();
    assert!(devices <= 100_000, "{devices}");
    assert_eq!(nases, 1);
    h.stop().await;
}

trait Now {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc>;
}

impl Now for Harness {
    fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        use pinradius::clock::Clock;
        self.clock.now()
    }
}
