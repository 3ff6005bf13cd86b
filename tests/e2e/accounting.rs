//! Accounting and the minutes ledger over the wire (issue 4).

use crate::harness::{
    Client, Harness, Reply, acct, acct_with_proxy_states, ask, pap, status_server, t0,
};
use chrono::Duration;
use pinradius::model::NewAccessToken;
use radius::core::code::Code;

const START: u32 = 1;
const STOP: u32 = 2;
const INTERIM: u32 = 3;
const ACCOUNTING_ON: u32 = 7;

fn token(h: &Harness, code: &str, minutes: u32, user_limit: Option<u32>) -> i64 {
    let t = NewAccessToken {
        business_id: 1,
        access_code: code.into(),
        minutes_included: minutes,
        user_limit,
        ..Default::default()
    };
    h.store.create_token(&t, t0()).unwrap()
}

async fn account(h: &Harness, request: Vec<u8>) {
    let r = ask(h.acct, request).await.expect("accounting acknowledged");
    assert_eq!(r.code, Code::AccountingResponse);
}

fn used(h: &Harness, id: i64) -> u64 {
    h.store
        .token_usage(id, None, h.clock_now(), h.clock_now())
        .unwrap()
        .used_seconds
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_interim_stop_then_the_next_login_gets_the_rest() {
    let h = Harness::start("").await;
    let id = token(&h, "12345", 60, None);
    let login = ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-01")))
        .await
        .unwrap();
    assert_eq!(login.session_timeout(), Some(3600));
    let class = login.class().expect("Class in the Access-Accept");
    account(
        &h,
        acct(
            START,
            "s1",
            "12345",
            "02-00-00-00-00-01",
            Some(0),
            Some(&class),
        ),
    )
    .await;
    h.clock.set(t0() + Duration::seconds(300));
    account(
        &h,
        acct(
            INTERIM,
            "s1",
            "12345",
            "02-00-00-00-00-01",
            Some(300),
            Some(&class),
        ),
    )
    .await;
    h.clock.set(t0() + Duration::seconds(1250));
    account(
        &h,
        acct(
            STOP,
            "s1",
            "12345",
            "02-00-00-00-00-01",
            Some(1250),
            Some(&class),
        ),
    )
    .await;
    assert_eq!(used(&h, id), 1250);
    let r = ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-01")))
        .await
        .unwrap();
    assert_eq!(r.session_timeout(), Some(3600 - 1250));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_stop_three_times_counts_once_and_retransmits_get_identical_answers() {
    let h = Harness::start("").await;
    let id = token(&h, "12345", 60, None);
    let stop = acct(STOP, "s1", "12345", "02-00-00-00-00-01", Some(700), None);
    let c = Client::new().await;
    let first = c.exchange(h.acct, &stop).await.unwrap();
    // The same datagram again (a retransmit) gets the byte-identical answer.
    assert_eq!(c.exchange(h.acct, &stop).await.unwrap(), first);
    // The same Stop as a new request (new authenticator), as a NAS re-sending later.
    account(
        &h,
        acct(STOP, "s1", "12345", "02-00-00-00-00-01", Some(700), None),
    )
    .await;
    assert_eq!(used(&h, id), 700);
    // An Interim that arrives after the Stop, and a counter going backwards.
    account(
        &h,
        acct(INTERIM, "s1", "12345", "02-00-00-00-00-01", Some(650), None),
    )
    .await;
    assert_eq!(used(&h, id), 700);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_accounting_is_ignored() {
    let h = Harness::start("").await;
    let id = token(&h, "12345", 60, None);
    let mut forged = acct(STOP, "s1", "12345", "02-00-00-00-00-01", Some(3600), None);
    forged[4] ^= 0xff; // the Request Authenticator no longer matches the secret
    assert!(
        Client::new()
            .await
            .exchange(h.acct, &forged)
            .await
            .is_none(),
        "no answer to a forged request"
    );
    assert_eq!(used(&h, id), 0);
    assert_eq!(
        ask(h.auth, pap("12345", "12345", None))
            .await
            .unwrap()
            .session_timeout(),
        Some(3600)
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minutes_used_up_are_rejected() {
    let h = Harness::start("").await;
    token(&h, "12345", 10, None);
    account(
        &h,
        acct(STOP, "s1", "12345", "02-00-00-00-00-01", Some(600), None),
    )
    .await;
    let r = ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-01")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessReject);
    assert!(
        r.reply_message().contains("minutes"),
        "{}",
        r.reply_message()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_sharing_a_budget_never_get_more_than_the_budget() {
    let h = Harness::start("").await;
    token(&h, "12345", 60, None);
    let a = ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-0a")))
        .await
        .unwrap();
    assert_eq!(a.session_timeout(), Some(3600));
    account(
        &h,
        acct(START, "a", "12345", "02-00-00-00-00-0a", Some(0), None),
    )
    .await;
    // Device A has been online for 10 minutes without an interim update yet (not
    // stale: that takes 2 x 300 + 60 s): B gets what is left after A's live time.
    h.clock.set(t0() + Duration::minutes(10));
    let b = ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-0b")))
        .await
        .unwrap();
    assert_eq!(b.session_timeout(), Some(3000));
    // A reports 8 minutes at 12 minutes (its counter lags): live time since then counts.
    h.clock.set(t0() + Duration::minutes(12));
    account(
        &h,
        acct(INTERIM, "a", "12345", "02-00-00-00-00-0a", Some(480), None),
    )
    .await;
    h.clock.set(t0() + Duration::minutes(15));
    let b = ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-0b")))
        .await
        .unwrap();
    assert_eq!(b.session_timeout(), Some(3600 - 480 - 180));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_limit_one_holds_until_stop_or_staleness() {
    let h = Harness::start("[reply]\nacct_interim_interval = 60\n").await; // stale after 2*60+60 s
    token(&h, "12345", 600, Some(1));
    assert_eq!(
        ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-01")))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    account(
        &h,
        acct(START, "s1", "12345", "02-00-00-00-00-01", Some(0), None),
    )
    .await;
    let busy = ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-02")))
        .await
        .unwrap();
    assert_eq!(busy.code, Code::AccessReject);
    assert!(
        busy.reply_message().contains("Simultaneous-use"),
        "{}",
        busy.reply_message()
    );
    // The same device logging in again is not competing with itself.
    assert_eq!(
        ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-01")))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    // Stop frees the place.
    h.clock.set(t0() + Duration::seconds(30));
    account(
        &h,
        acct(STOP, "s1", "12345", "02-00-00-00-00-01", Some(30), None),
    )
    .await;
    assert_eq!(
        ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-02")))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    // A session that stops reporting holds the place only until it is stale.
    account(
        &h,
        acct(START, "s2", "12345", "02-00-00-00-00-02", Some(0), None),
    )
    .await;
    h.clock.set(t0() + Duration::seconds(30 + 179));
    assert_eq!(
        ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-03")))
            .await
            .unwrap()
            .code,
        Code::AccessReject
    );
    h.clock.set(t0() + Duration::seconds(30 + 181));
    let r = ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-03")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessAccept, "{}", r.reply_message());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_on_closes_every_session_of_the_nas() {
    let h = Harness::start("").await;
    token(&h, "12345", 600, Some(1));
    account(
        &h,
        acct(START, "s1", "12345", "02-00-00-00-00-01", Some(0), None),
    )
    .await;
    assert_eq!(
        ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-02")))
            .await
            .unwrap()
            .code,
        Code::AccessReject
    );
    account(
        &h,
        acct(ACCOUNTING_ON, "", "12345", "02-00-00-00-00-01", None, None),
    )
    .await;
    assert_eq!(
        ask(h.auth, pap("12345", "12345", Some("02-00-00-00-00-02")))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_closes_stale_sessions_and_sessions_whose_code_ran_out() {
    let h = Harness::start("").await;
    let short = token(&h, "11111", 10, None);
    let long = token(&h, "22222", 600, None);
    account(
        &h,
        acct(START, "a", "11111", "02-00-00-00-00-01", Some(0), None),
    )
    .await;
    account(
        &h,
        acct(START, "b", "22222", "02-00-00-00-00-02", Some(0), None),
    )
    .await;
    // Five minutes in: nothing to close.
    h.clock.set(t0() + Duration::minutes(5));
    account(
        &h,
        acct(INTERIM, "b", "22222", "02-00-00-00-00-02", Some(300), None),
    )
    .await;
    assert_eq!(pinradius::server::reap(&h.ctx).unwrap(), (0, 0));
    // Ten minutes in, no Stop for the 10-minute code: its session is closed as run out;
    // the other one is still reporting.
    h.clock.set(t0() + Duration::minutes(10));
    account(
        &h,
        acct(INTERIM, "b", "22222", "02-00-00-00-00-02", Some(600), None),
    )
    .await;
    assert_eq!(pinradius::server::reap(&h.ctx).unwrap(), (0, 1));
    let open: Vec<i64> = h
        .store
        .list_sessions(true)
        .unwrap()
        .iter()
        .map(|s| s.token_id)
        .collect();
    assert_eq!(open, vec![long]);
    // The late Stop of the closed session still raises its count, once.
    account(
        &h,
        acct(STOP, "a", "11111", "02-00-00-00-00-01", Some(605), None),
    )
    .await;
    assert_eq!(used(&h, short), 605);
    // b stops reporting: stale after 2 x 300 + 60 s.
    h.clock
        .set(t0() + Duration::minutes(10) + Duration::seconds(661));
    assert_eq!(pinradius::server::reap(&h.ctx).unwrap(), (1, 0));
    assert!(h.store.list_sessions(true).unwrap().is_empty());
    h.stop().await;
}

#[allow(dead_code)]
fn _reply_is_used(_: Reply) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_get_status_server_on_both_ports_and_their_proxy_states_back() {
    let h = Harness::start("").await;
    let states: [&[u8]; 2] = [b"proxy-one", b"proxy-two"];
    let proxy_states = |r: &Reply| -> Vec<Vec<u8>> {
        r.packet
            .lookup_all(33)
            .iter()
            .map(|a| a.encode_bytes())
            .collect()
    };
    // Status-Server: Access-Accept on the auth port, Accounting-Response on the
    // accounting port (RFC 5997 3), each with a Message-Authenticator computed with
    // the request's authenticator (Reply::check verifies it) and the Proxy-States.
    for (port, code) in [
        (h.auth, Code::AccessAccept),
        (h.acct, Code::AccountingResponse),
    ] {
        let request = status_server(&states);
        let r = ask(port, request).await.expect("Status-Server answered");
        assert_eq!(r.code, code);
        assert_eq!(
            proxy_states(&r),
            vec![b"proxy-one".to_vec(), b"proxy-two".to_vec()]
        );
    }
    // Accounting-Response: the Proxy-States in order, no Message-Authenticator.
    let r = ask(h.acct, acct_with_proxy_states(1, "s-1", "12345", &states))
        .await
        .expect("answered");
    assert_eq!(r.code, Code::AccountingResponse);
    assert_eq!(
        proxy_states(&r),
        vec![b"proxy-one".to_vec(), b"proxy-two".to_vec()]
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_racing_ahead_of_their_accounting_still_respect_user_limit() {
    // 49 refusals would pause the NAS at its default budget of 30.
    let h = std::sync::Arc::new(
        Harness::start(
            "[lockout]\nclient_max_failures = 1000\n[accounting]\nlogin_hold_seconds = 60\n",
        )
        .await,
    );
    token(&h, "12345", 600, Some(1));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let h = h.clone();
            tokio::spawn(async move {
                let mac = format!("02-00-00-00-02-{i:02x}");
                let r = ask(h.auth, pap("12345", "12345", Some(&mac)))
                    .await
                    .unwrap();
                (r.code, mac)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (code, mac) = t.await.unwrap();
        if code == Code::AccessAccept {
            winners.push(mac);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    // The winner's NAS never starts accounting: the place is free again after the
    // hold, not before.
    h.clock.set(t0() + Duration::seconds(59));
    let r = ask(h.auth, pap("12345", "12345", Some("02-00-00-00-03-01")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessReject, "{}", r.reply_message());
    h.clock.set(t0() + Duration::seconds(60));
    let r = ask(h.auth, pap("12345", "12345", Some("02-00-00-00-03-01")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessAccept, "{}", r.reply_message());
    // Its accounting starts: the session holds the place from now on.
    account(
        &h,
        acct(START, "s9", "12345", "02-00-00-00-03-01", Some(0), None),
    )
    .await;
    h.clock.set(t0() + Duration::seconds(200));
    let r = ask(h.auth, pap("12345", "12345", Some("02-00-00-00-03-02")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessReject, "{}", r.reply_message());
}
