//! The authentication core over the wire (issue 2).

use crate::harness::{
    Client, Harness, Reply, SECRET, answered, ask, chap, pap, pap_without_message_authenticator, t0,
};
use chrono::Duration;
use pinradius::model::NewAccessToken;
use radius::core::code::Code;
use radius::core::packet::Packet;
use radius::core::{rfc2865, rfc2869};
use std::sync::Arc;

fn token(h: &Harness, code: &str, f: impl FnOnce(&mut NewAccessToken)) -> i64 {
    let mut t = NewAccessToken {
        business_id: 1,
        access_code: code.into(),
        minutes_included: 60,
        ..Default::default()
    };
    f(&mut t);
    h.store.create_token(&t, t0()).unwrap()
}

async fn reject_message(h: &Harness, request: Vec<u8>) -> String {
    let r = ask(h.auth, request).await.expect("an answer");
    assert_eq!(r.code, Code::AccessReject, "expected a reject");
    r.reply_message()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_carries_session_timeout_class_and_reply_attributes() {
    let h = Harness::start(
        "reply_attributes = { \"Mikrotik-Rate-Limit\" = \"10M/10M\" }\n[reply]\nidle_timeout = 900\nacct_interim_interval = 300\n",
    )
    .await;
    let id = token(&h, "12345", |_| {});
    let r = ask(h.auth, pap("12345", "12345", Some("aa-bb-cc-dd-ee-01")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessAccept);
    assert_eq!(r.session_timeout(), Some(3600));
    assert_eq!(
        rfc2865::lookup_idle_timeout(&r.packet).unwrap().unwrap(),
        900
    );
    assert_eq!(
        rfc2869::lookup_acct_interim_interval(&r.packet)
            .unwrap()
            .unwrap(),
        300
    );
    let uid = h.store.token_by_id(id).unwrap().unwrap().uid;
    assert_eq!(
        r.class().unwrap(),
        format!("pinradius:uid={uid}").into_bytes()
    );
    // Mikrotik-Rate-Limit: Vendor-Specific, vendor 14988, type 8.
    let vsa = r
        .packet
        .lookup(rfc2865::VENDOR_SPECIFIC_TYPE)
        .expect("a Vendor-Specific attribute")
        .encode_bytes();
    assert_eq!(&vsa[..4], &14988u32.to_be_bytes());
    assert_eq!(vsa[4], 8);
    assert_eq!(&vsa[6..], b"10M/10M");
    // valid_to ten minutes away is the least limit.
    token(&h, "22222", |t| {
        t.valid_to = Some(t0() + Duration::minutes(10))
    });
    assert_eq!(
        ask(h.auth, pap("22222", "22222", None))
            .await
            .unwrap()
            .session_timeout(),
        Some(600)
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reject_reason_has_its_own_reply_message() {
    let h = Harness::start("").await;
    let mac1 = "aa-bb-cc-dd-ee-01";
    assert!(
        reject_message(&h, pap("99999", "99999", Some(mac1)))
            .await
            .contains("Unknown or wrong")
    );
    token(&h, "10001", |_| {});
    assert!(
        reject_message(&h, pap("10001", "wrong", Some(mac1)))
            .await
            .contains("Unknown or wrong")
    );
    let revoked = token(&h, "10002", |_| {});
    h.store.revoke_token(revoked, t0()).unwrap();
    assert!(
        reject_message(&h, pap("10002", "10002", Some(mac1)))
            .await
            .contains("revoked")
    );
    token(&h, "10003", |t| {
        t.valid_from = Some(t0() + Duration::hours(1))
    });
    assert!(
        reject_message(&h, pap("10003", "10003", Some(mac1)))
            .await
            .contains("not valid before 2026-11-23T10:00:00Z")
    );
    token(&h, "10004", |t| t.valid_to = Some(t0()));
    assert!(
        reject_message(&h, pap("10004", "10004", Some(mac1)))
            .await
            .contains("expired")
    );
    let spent = token(&h, "10005", |t| t.minutes_included = 1);
    h.sql(
        "INSERT INTO sessions (token_id, client, nas, acct_session_id, mac, started_at, updated_at, session_time, stopped_at) VALUES ($1, 'nas', '127.0.0.1', 's', NULL, 0, 0, 60, 0)",
        &[&spent],
    );
    assert!(
        reject_message(&h, pap("10005", "10005", Some(mac1)))
            .await
            .contains("minutes")
    );
    token(&h, "10006", |t| {
        t.mac_address = Some("aa:bb:cc:dd:ee:02".parse().unwrap())
    });
    assert!(
        reject_message(&h, pap("10006", "10006", Some(mac1)))
            .await
            .contains("another device")
    );
    assert!(
        reject_message(&h, pap("10006", "10006", None))
            .await
            .contains("device address")
    );
    token(&h, "10007", |t| t.device_limit = Some(1));
    assert_eq!(
        ask(h.auth, pap("10007", "10007", Some(mac1)))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    assert!(
        reject_message(&h, pap("10007", "10007", Some("aa-bb-cc-dd-ee-09")))
            .await
            .contains("Device limit reached")
    );
    let busy = token(&h, "10008", |t| t.user_limit = Some(1));
    h.sql(
        "INSERT INTO sessions (token_id, client, nas, acct_session_id, mac, started_at, updated_at, session_time) VALUES ($1, 'nas', '127.0.0.1', 'live', 'AA:BB:CC:DD:EE:07', $2, $2, 0)",
        &[&busy, &t0().timestamp_millis()],
    );
    assert!(
        reject_message(&h, pap("10008", "10008", Some(mac1)))
            .await
            .contains("Simultaneous-use")
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chap_and_pap() {
    let h = Harness::start("").await;
    token(&h, "48213", |_| {});
    let long = "a-rather-long-access-code-of-40-chars-xx";
    token(&h, long, |_| {});
    assert_eq!(
        ask(h.auth, chap("48213", "48213", Some([7u8; 16]), None))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    assert_eq!(
        ask(h.auth, chap("48213", "48213", None, None))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    assert_eq!(
        ask(h.auth, chap("48213", "48214", Some([7u8; 16]), None))
            .await
            .unwrap()
            .code,
        Code::AccessReject
    );
    assert_eq!(
        ask(h.auth, pap("48213", "48213", None)).await.unwrap().code,
        Code::AccessAccept
    );
    assert_eq!(
        ask(h.auth, pap(long, long, None)).await.unwrap().code,
        Code::AccessAccept
    );
    assert_eq!(
        ask(h.auth, chap(long, long, None, None))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    h.stop().await;

    let any = Harness::start("password_mode = \"any\"\n").await;
    token(&any, "48213", |_| {});
    assert_eq!(
        ask(any.auth, pap("48213", "whatever", None))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    assert_eq!(
        ask(any.auth, chap("48213", "x", None, None))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    assert_eq!(
        ask(any.auth, pap("00000", "whatever", None))
            .await
            .unwrap()
            .code,
        Code::AccessReject
    );
    any.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_authenticator_rules_and_unknown_clients() {
    let h = Harness::start("").await;
    token(&h, "12345", |_| {});
    assert!(
        !answered(h.auth, &pap_without_message_authenticator("12345", "12345")).await,
        "missing MA dropped"
    );
    let mut bad = pap("12345", "12345", None);
    bad[30] ^= 1; // inside the Message-Authenticator value
    assert!(!answered(h.auth, &bad).await, "invalid MA dropped");
    // Signed with another secret.
    let mut p = Packet::new(Code::AccessRequest, b"not-the-secret");
    rfc2865::add_user_name(&mut p, "12345");
    let mut forged = p.encode().unwrap();
    let len = forged.len() as u16 + 18;
    forged.splice(20..20, [80u8, 18].into_iter().chain([0u8; 16]));
    forged[2..4].copy_from_slice(&len.to_be_bytes());
    assert!(!answered(h.auth, &forged).await, "wrong secret dropped");
    // Unknown client: the same valid request from 127.0.0.2 is dropped, from 127.0.0.1 answered.
    let request = pap("12345", "12345", None);
    let stranger = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
    stranger.send_to(&request, h.auth).await.unwrap();
    let mut buf = [0u8; 4096];
    assert!(
        tokio::time::timeout(
            std::time::Duration::from_millis(400),
            stranger.recv_from(&mut buf)
        )
        .await
        .is_err()
    );
    assert!(answered(h.auth, &request).await);
    h.stop().await;

    let lax = Harness::start("require_message_authenticator = false\n").await;
    token(&lax, "12345", |_| {});
    let request = pap_without_message_authenticator("12345", "12345");
    let response = Client::new()
        .await
        .exchange(lax.auth, &request)
        .await
        .expect("answered without MA");
    assert_eq!(Reply::check(&request, response).code, Code::AccessAccept);
    lax.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmit_gets_identical_bytes_and_binds_once() {
    let h = Harness::start("").await;
    let id = token(&h, "12345", |t| t.device_limit = Some(2));
    let request = pap("12345", "12345", Some("aa-bb-cc-dd-ee-01"));
    let c = Client::new().await;
    let first = c.exchange(h.auth, &request).await.unwrap();
    let again = c.exchange(h.auth, &request).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(
        h.store
            .token_usage(id, None, t0(), t0())
            .unwrap()
            .bound_devices
            .len(),
        1
    );
    // Revoked meanwhile: the retransmit still replays the cached accept; a new request
    // (new authenticator) is rejected.
    h.store.revoke_token(id, t0()).unwrap();
    assert_eq!(c.exchange(h.auth, &request).await.unwrap(), first);
    let r = ask(h.auth, pap("12345", "12345", Some("aa-bb-cc-dd-ee-01")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessReject);
    assert!(r.reply_message().contains("revoked"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_devices_racing_for_one_place_one_wins() {
    // 49 refusals from new devices would pause the NAS at its default budget of 30.
    let h = Arc::new(Harness::start("[lockout]\nclient_max_failures = 1000\n").await);
    let id = token(&h, "12345", |t| t.device_limit = Some(1));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                ask(
                    h.auth,
                    pap("12345", "12345", Some(&format!("02-00-00-00-01-{i:02x}"))),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    let mut accepts = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.code {
            Code::AccessAccept => accepts += 1,
            _ => assert!(
                r.reply_message().contains("Device limit reached"),
                "{}",
                r.reply_message()
            ),
        }
    }
    assert_eq!(accepts, 1);
    assert_eq!(
        h.store
            .token_usage(id, None, t0(), t0())
            .unwrap()
            .bound_devices
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_datagrams_are_never_answered_and_do_not_stop_the_server() {
    let h = Harness::start("").await;
    token(&h, "12345", |_| {});
    let good = pap("12345", "12345", None);
    let mut cases: Vec<Vec<u8>> = vec![vec![], vec![1u8; 19], (0..255).map(|i| i as u8).collect()];
    let mut longer = good.clone();
    longer[2..4].copy_from_slice(&((good.len() + 10) as u16).to_be_bytes());
    cases.push(longer);
    for bad_len in [0u8, 1, 250] {
        let mut c = good.clone();
        c.extend_from_slice(&[1, bad_len]);
        let len = c.len() as u16;
        c[2..4].copy_from_slice(&len.to_be_bytes());
        cases.push(c);
    }
    let mut dup_ma = good.clone();
    dup_ma.extend_from_slice(&good[20..38]);
    let len = dup_ma.len() as u16;
    dup_ma[2..4].copy_from_slice(&len.to_be_bytes());
    cases.push(dup_ma);
    let mut unknown_code = good.clone();
    unknown_code[0] = 99;
    cases.push(unknown_code);
    let mut accept = good.clone();
    accept[0] = 2; // an Access-Accept sent to the server
    cases.push(accept);
    for (i, c) in cases.iter().enumerate() {
        assert!(!answered(h.auth, c).await, "case {i} answered");
    }
    let r = ask(h.auth, pap("12345", "12345", None)).await.unwrap();
    assert_eq!(
        (r.code, r.session_timeout()),
        (Code::AccessAccept, Some(3600))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_server_and_proxy_state() {
    let h = Harness::start("").await;
    token(&h, "12345", |_| {});
    // Status-Server with a Message-Authenticator is answered; without one it is not.
    let mut status = vec![12u8, 77, 0, 38];
    status.extend_from_slice(&[5u8; 16]);
    status.extend_from_slice(&[80, 18]);
    status.extend_from_slice(&[0u8; 16]);
    let mut m = <hmac::Hmac<md5::Md5> as hmac::Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    hmac::Mac::update(&mut m, &status);
    let ma: [u8; 16] = hmac::Mac::finalize(m).into_bytes().into();
    status[22..38].copy_from_slice(&ma);
    let response = Client::new()
        .await
        .exchange(h.auth, &status)
        .await
        .expect("Status-Server answered");
    assert_eq!(Reply::check(&status, response).code, Code::AccessAccept);
    let mut bare = status[..20].to_vec();
    bare[3] = 20; // Length: a Status-Server with no attributes, so no Message-Authenticator
    assert!(
        !answered(h.auth, &bare).await,
        "Status-Server without Message-Authenticator dropped"
    );

    // Proxy-State is copied into the reply, in order.
    let mut p = Packet::new(Code::AccessRequest, SECRET.as_bytes());
    rfc2865::add_user_name(&mut p, "12345");
    rfc2865::add_user_password(&mut p, b"12345").unwrap();
    p.add(radius::core::avp::AVP::from_bytes(33, b"first"));
    p.add(radius::core::avp::AVP::from_bytes(33, b"second"));
    let mut req = p.encode().unwrap();
    let len = req.len() as u16 + 18;
    req.splice(20..20, [80u8, 18].into_iter().chain([0u8; 16]));
    req[2..4].copy_from_slice(&len.to_be_bytes());
    let mut m = <hmac::Hmac<md5::Md5> as hmac::Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
    hmac::Mac::update(&mut m, &req);
    let ma: [u8; 16] = hmac::Mac::finalize(m).into_bytes().into();
    req[22..38].copy_from_slice(&ma);
    let response = Client::new().await.exchange(h.auth, &req).await.unwrap();
    let r = Reply::check(&req, response);
    let states: Vec<Vec<u8>> = r
        .packet
        .lookup_all(33)
        .iter()
        .map(|a| a.encode_bytes())
        .collect();
    assert_eq!(states, vec![b"first".to_vec(), b"second".to_vec()]);
    h.stop().await;
}
