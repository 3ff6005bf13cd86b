//! Disconnect-Requests (RFC 5176) sent to a fake NAS over real UDP, issue 7. The fake
//! NAS checks the request with its own MD5/HMAC code and the `radius` crate, not with
//! `pinradius::protocol`.

use crate::api::{ADMIN, call, http_config};
use crate::harness::{Harness, SECRET, ask, pap, t0};
use hmac::{Hmac, Mac as _};
use md5::{Digest, Md5};
use pinradius::commands::{people, tokens};
use pinradius::model::{NewAccessToken, NewCustomer};
use radius::core::code::Code;
use radius::core::packet::Packet;
use radius::core::{rfc2865, rfc2866};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;

const ACK: u8 = 41;
const NAK: u8 = 42;

struct FakeNas {
    sock: UdpSocket,
}

impl FakeNas {
    async fn new() -> FakeNas {
        FakeNas {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    /// The next datagram within `within`, checked as an authentic Disconnect-Request.
    async fn next_request(&self, within: Duration) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = vec![0u8; 4096];
        let (n, from) = tokio::time::timeout(within, self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .unwrap();
        let bytes = buf[..n].to_vec();
        assert_eq!(bytes[0], 40, "Disconnect-Request");
        assert_eq!(
            usize::from(u16::from_be_bytes([bytes[2], bytes[3]])),
            n,
            "Length"
        );
        // Message-Authenticator first, over the packet with a zero authenticator.
        assert_eq!(
            (bytes[20], bytes[21]),
            (80, 18),
            "Message-Authenticator first"
        );
        let mut copy = bytes.clone();
        copy[4..20].fill(0);
        copy[22..38].fill(0);
        let mut mac = <Hmac<Md5> as hmac::Mac>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(&copy);
        assert_eq!(
            mac.finalize().into_bytes().as_slice(),
            &bytes[22..38],
            "Message-Authenticator"
        );
        // Request Authenticator: MD5(Code+Id+Length+16 zeros+Attributes+Secret).
        let mut md5 = Md5::new();
        md5.update(&bytes[..4]);
        md5.update([0u8; 16]);
        md5.update(&bytes[20..]);
        md5.update(SECRET.as_bytes());
        assert_eq!(
            md5.finalize().as_slice(),
            &bytes[4..20],
            "Request Authenticator"
        );
        Some((bytes, from))
    }

    /// Answers `request` with an ACK or a NAK (with an Error-Cause).
    async fn answer(&self, request: &[u8], to: SocketAddr, code: u8, cause: Option<u32>) {
        let mut out = vec![code, request[1], 0, 0];
        out.extend_from_slice(&request[4..20]);
        if let Some(c) = cause {
            out.extend_from_slice(&[101, 6]);
            out.extend_from_slice(&c.to_be_bytes());
        }
        let len = out.len() as u16;
        out[2..4].copy_from_slice(&len.to_be_bytes());
        let mut md5 = Md5::new();
        md5.update(&out);
        md5.update(SECRET.as_bytes());
        let auth = md5.finalize();
        out[4..20].copy_from_slice(&auth);
        self.sock.send_to(&out, to).await.unwrap();
    }
}

/// The session attributes of a Disconnect-Request, decoded by the `radius` crate.
fn identity(bytes: &[u8]) -> (String, String, Option<Ipv4Addr>, String) {
    let p = Packet::decode(bytes, SECRET.as_bytes()).unwrap();
    (
        rfc2865::lookup_user_name(&p).unwrap().unwrap(),
        rfc2866::lookup_acct_session_id(&p).unwrap().unwrap(),
        rfc2865::lookup_framed_ip_address(&p).map(|r| r.unwrap()),
        rfc2865::lookup_calling_station_id(&p).unwrap().unwrap(),
    )
}

/// Accounting Start with a Framed-IP-Address, as a MikroTik hotspot sends it.
fn start(session: &str, code: &str, mac: &str, ip: Ipv4Addr) -> Vec<u8> {
    let mut p = Packet::new(Code::AccountingRequest, SECRET.as_bytes());
    rfc2866::add_acct_status_type(&mut p, 1);
    rfc2866::add_acct_session_id(&mut p, session);
    rfc2865::add_user_name(&mut p, code);
    rfc2865::add_calling_station_id(&mut p, mac);
    rfc2865::add_framed_ip_address(&mut p, &ip);
    p.encode().unwrap()
}

async fn harness(nas: &FakeNas, extra: &str) -> Harness {
    Harness::start(&format!(
        "coa_port = {}\n[disconnect]\ntimeout_seconds = 1\nattempts = 2\n{extra}",
        nas.port()
    ))
    .await
}

/// Logs `code` in from `mac` and starts an accounting session for it.
async fn online(h: &Harness, code: &str, mac: &str, session: &str) {
    let r = ask(h.auth, pap(code, code, Some(mac))).await.unwrap();
    assert_eq!(r.code, Code::AccessAccept, "{}", r.reply_message());
    let r = ask(
        h.acct,
        start(session, code, mac, Ipv4Addr::new(10, 5, 50, 7)),
    )
    .await
    .unwrap();
    assert_eq!(r.code, Code::AccountingResponse);
}

fn token(h: &Harness, code: &str, minutes: u32) -> i64 {
    h.store
        .create_token(
            &NewAccessToken {
                business_id: 1,
                access_code: code.into(),
                minutes_included: minutes,
                ..Default::default()
            },
            t0(),
        )
        .unwrap()
}

/// Waits until the disconnect queue has a finished row and returns its result.
async fn finished_result(h: &Harness) -> String {
    for _ in 0..100 {
        if let Some(r) = h
            .store
            .list_disconnects(10)
            .unwrap()
            .into_iter()
            .find_map(|d| d.result)
        {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no disconnect finished");
}

fn closed_by(h: &Harness, acct_session_id: &str) -> Option<String> {
    h.store
        .list_sessions(false)
        .unwrap()
        .into_iter()
        .find(|s| s.acct_session_id == acct_session_id)
        .and_then(|s| s.closed_by)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_disconnects_the_session_and_the_ack_closes_it() {
    let nas = FakeNas::new().await;
    let h = harness(&nas, "").await;
    token(&h, "40404", 60);
    online(&h, "40404", "aa-bb-cc-00-00-01", "81a00001").await;

    // As `pinradius token revoke 40404` does (no wake-up: the daemon polls the queue).
    tokens::revoke(&h.store, "40404", None, t0()).unwrap();
    let (request, from) = nas
        .next_request(Duration::from_secs(5))
        .await
        .expect("a Disconnect-Request reaches the NAS");
    // A reaper pass before the NAS answers leaves the session to the disconnector.
    assert_eq!(pinradius::server::reap(&h.ctx).unwrap(), (0, 0));
    assert_eq!(closed_by(&h, "81a00001"), None);
    assert_eq!(
        identity(&request),
        (
            "40404".into(),
            "81a00001".into(),
            Some(Ipv4Addr::new(10, 5, 50, 7)),
            "AA:BB:CC:00:00:01".into()
        )
    );
    nas.answer(&request, from, ACK, None).await;
    let result = finished_result(&h).await;
    assert!(result.starts_with("ack from 127.0.0.1:"), "{result}");
    assert_eq!(closed_by(&h, "81a00001").as_deref(), Some("disconnected"));
    let metrics = h.ctx.metrics.encode();
    assert!(
        metrics.contains("pinradius_disconnects_total{result=\"ack\"} 1"),
        "{metrics}"
    );
    // Nothing more is sent for it.
    assert!(
        nas.next_request(Duration::from_millis(1500))
            .await
            .is_none()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_nas_gets_the_same_request_again_then_a_timeout_is_recorded() {
    let nas = FakeNas::new().await;
    let h = harness(&nas, "").await;
    token(&h, "50505", 60);
    online(&h, "50505", "aa-bb-cc-00-00-02", "81a00002").await;
    tokens::revoke(&h.store, "50505", None, t0()).unwrap();
    let (first, _) = nas.next_request(Duration::from_secs(5)).await.unwrap();
    let (second, _) = nas.next_request(Duration::from_secs(3)).await.unwrap();
    assert_eq!(first, second, "a retransmission is the same packet");
    let result = finished_result(&h).await;
    assert!(result.starts_with("timeout"), "{result}");
    // Not acknowledged: the ledger does not pretend the session ended.
    assert_eq!(closed_by(&h, "81a00002"), None);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_running_out_without_a_stop_disconnects_and_a_nak_is_logged() {
    let nas = FakeNas::new().await;
    let h = harness(&nas, "").await;
    token(&h, "60606", 1);
    online(&h, "60606", "aa-bb-cc-00-00-03", "81a00003").await;
    // The NAS keeps the session past its minute and sends no Stop.
    h.clock.advance(chrono::Duration::seconds(90));
    let (_, expired) = pinradius::server::reap(&h.ctx).unwrap();
    assert_eq!(expired, 1);
    let (request, from) = nas.next_request(Duration::from_secs(5)).await.unwrap();
    assert_eq!(identity(&request).1, "81a00003");
    nas.answer(&request, from, NAK, Some(503)).await;
    let result = finished_result(&h).await;
    assert!(
        result.contains("Error-Cause 503 (Session Context Not Found)"),
        "{result}"
    );
    let row = &h.store.list_disconnects(1).unwrap()[0];
    assert_eq!(row.reason, "minutes_used_up");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_change_deactivation_and_api_delete_disconnect_too() {
    let nas = FakeNas::new().await;
    let h = harness(&nas, &http_config()).await;
    let c = h
        .store
        .create_customer(
            &NewCustomer {
                business_id: 1,
                name: "Ada".into(),
                email: None,
            },
            Some("13579"),
            60,
            t0(),
            &mut || unreachable!(),
        )
        .unwrap();
    online(&h, "13579", "aa-bb-cc-00-00-04", "81a00004").await;
    people::set_pin(&h.store, &c.id.to_string(), "97531", false, t0()).unwrap();
    let (request, from) = nas.next_request(Duration::from_secs(5)).await.unwrap();
    assert_eq!(identity(&request).0, "13579", "the session's own User-Name");
    nas.answer(&request, from, ACK, None).await;
    finished_result(&h).await;
    assert_eq!(
        h.store.list_disconnects(1).unwrap()[0].reason,
        "pin_changed"
    );

    // Back online with the new PIN; deactivating the member ends that session too.
    online(&h, "97531", "aa-bb-cc-00-00-04", "81a00006").await;
    people::set_active(&h.store, &c.id.to_string(), false, false, t0()).unwrap();
    let (request, from) = nas.next_request(Duration::from_secs(5)).await.unwrap();
    assert_eq!(identity(&request).1, "81a00006");
    nas.answer(&request, from, ACK, None).await;
    for _ in 0..100 {
        if closed_by(&h, "81a00006").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(closed_by(&h, "81a00006").as_deref(), Some("disconnected"));
    assert_eq!(
        h.store.list_disconnects(1).unwrap()[0].reason,
        "deactivated"
    );

    let id = token(&h, "80808", 60);
    online(&h, "80808", "aa-bb-cc-00-00-05", "81a00005").await;
    let (s, v, _) = call(
        &h,
        "DELETE",
        &format!("/api/spaces/accesstokens/{id}"),
        Some(ADMIN),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // Woken at once by the API, well before the next poll.
    let (request, from) = nas.next_request(Duration::from_secs(3)).await.unwrap();
    assert_eq!(identity(&request).1, "81a00005");
    nas.answer(&request, from, ACK, None).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_limited_token_that_runs_out_is_disconnected_too() {
    // Every visitor token has a device limit, and this one a MAC too: the reaper
    // decides from the minutes alone (it once saw "no device" first and never closed
    // such sessions).
    let nas = FakeNas::new().await;
    let h = harness(&nas, "").await;
    h.store
        .create_token(
            &NewAccessToken {
                business_id: 1,
                access_code: "70707".into(),
                minutes_included: 1,
                device_limit: Some(2),
                mac_address: Some("aa:bb:cc:00:00:04".parse().unwrap()),
                ..Default::default()
            },
            t0(),
        )
        .unwrap();
    online(&h, "70707", "aa-bb-cc-00-00-04", "81a00004").await;
    h.clock.advance(chrono::Duration::seconds(30));
    assert_eq!(pinradius::server::reap(&h.ctx).unwrap(), (0, 0));
    h.clock.advance(chrono::Duration::seconds(31));
    assert_eq!(pinradius::server::reap(&h.ctx).unwrap(), (0, 1));
    let (request, from) = nas.next_request(Duration::from_secs(5)).await.unwrap();
    assert_eq!(identity(&request).1, "81a00004");
    nas.answer(&request, from, ACK, None).await;
    finished_result(&h).await;
    assert_eq!(
        h.store.list_disconnects(1).unwrap()[0].reason,
        "minutes_used_up"
    );
    h.stop().await;
}
