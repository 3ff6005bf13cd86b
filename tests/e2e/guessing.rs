//! Guessing over the wire (issue 12): failure budgets per NAS and per account, the
//! exact device lockout under concurrency, and email + PIN logins.

use crate::harness::{Harness, Reply, ask, chap, pap, t0};
use chrono::Duration;
use pinradius::commands::people::{self, CustomerInput, VisitorInput};
use pinradius::config::{CustomerSettings, VisitorSettings};
use pinradius::model::{LockScope, NewAccessToken};
use radius::core::code::Code;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Tokens for every fifth 5-digit PIN (00000, 00005, ...): a fifth of the space valid.
fn a_fifth_of_all_pins(h: &Harness) {
    let tokens: Vec<NewAccessToken> = (0..100_000u32)
        .step_by(5)
        .map(|n| NewAccessToken {
            business_id: 1,
            access_code: format!("{n:05}"),
            minutes_included: 600,
            ..Default::default()
        })
        .collect();
    h.store.create_tokens(&tokens, t0()).unwrap();
}

/// Logs in by PAP; the checked reply.
async fn login(h: &Harness, user: &str, password: &str, mac: Option<&str>) -> Reply {
    ask(h.auth, pap(user, password, mac))
        .await
        .expect("answered")
}

/// The reply is a reject whose Reply-Message starts with `message`.
fn assert_refused(r: &Reply, message: &str) {
    assert_eq!(r.code, Code::AccessReject, "{}", r.reply_message());
    assert!(
        r.reply_message().starts_with(message),
        "{}",
        r.reply_message()
    );
}

/// What a guessing run got back.
#[derive(Debug, Default)]
struct Run {
    accepts: usize,
    paused: usize,
    other_rejects: usize,
}

/// Guesses PINs in order from 32 sockets at once, a new random-looking MAC for each
/// (or none), for 20 s or 20,000 guesses, whichever comes first.
async fn guess(h: &Harness, rotate_macs: bool) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut workers = Vec::new();
    for _ in 0..32 {
        let (next, auth) = (next.clone(), h.auth);
        workers.push(tokio::spawn(async move {
            let mut run = Run::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= 20_000 || tokio::time::Instant::now() >= deadline {
                    return run;
                }
                let code = format!("{:05}", n % 100_000);
                let mac = format!(
                    "02:{:02x}:{:02x}:{:02x}:7e:01",
                    n >> 16,
                    (n >> 8) & 0xff,
                    n & 0xff
                );
                let Some(r) =
                    ask(auth, pap(&code, &code, rotate_macs.then_some(mac.as_str()))).await
                else {
                    continue;
                };
                match r.code {
                    Code::AccessAccept => run.accepts += 1,
                    _ if r
                        .reply_message()
                        .starts_with("Too many failed logins at this hotspot") =>
                    {
                        run.paused += 1
                    }
                    _ => run.other_rejects += 1,
                }
            }
        }));
    }
    let mut total = Run::default();
    for w in workers {
        let r = w.await.unwrap();
        total.accepts += r.accepts;
        total.paused += r.paused;
        total.other_rejects += r.other_rejects;
    }
    total
}

async fn rotating_guesses_are_stopped(rotate_macs: bool) {
    let h = Harness::start("").await;
    a_fifth_of_all_pins(&h);
    // A returning visitor's device, bound to its code before the attack.
    let regular = "aa-bb-cc-00-00-01";
    assert_eq!(
        login(&h, "55555", "55555", Some(regular)).await.code,
        Code::AccessAccept
    );

    let run = guess(&h, rotate_macs).await;
    // The NAS's budget is 30 refused logins: at most that many wrong guesses are
    // checked, and the right ones among them (one in five) are all an attacker gets.
    assert!(run.accepts <= 15, "{run:?}");
    assert!(run.other_rejects <= 30, "{run:?}");
    assert!(run.paused > 1_000, "{run:?}");

    // During the pause: the bound device gets in, a new device with a right code
    // does not, and is told why.
    assert_eq!(
        login(&h, "55555", "55555", Some(regular)).await.code,
        Code::AccessAccept
    );
    let r = login(&h, "60000", "60000", Some("aa-bb-cc-00-00-02")).await;
    assert_refused(
        &r,
        "Too many failed logins at this hotspot; try again in 10 minute",
    );
    // The pause is listed, and lifting it lets new devices in on the next request.
    let locks = h.store.list_lockouts(Some(t0())).unwrap();
    let pause: Vec<_> = locks
        .iter()
        .filter(|l| l.scope == LockScope::Client)
        .collect();
    assert_eq!(pause.len(), 1, "{locks:?}");
    assert!(
        pause[0].subject.starts_with("nas 127.0.0.1"),
        "{:?}",
        pause[0]
    );
    assert_eq!(
        h.store
            .clear_lockouts(LockScope::Client, None, Some("nas"))
            .unwrap(),
        1
    );
    let r = login(&h, "60000", "60000", Some("aa-bb-cc-00-00-02")).await;
    assert_eq!(r.code, Code::AccessAccept, "{}", r.reply_message());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_mac_guessing_yields_a_handful_and_bound_devices_get_in() {
    rotating_guesses_are_stopped(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_without_a_calling_station_id_is_stopped_the_same_way() {
    rotating_guesses_are_stopped(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pause_doubles_while_the_attack_goes_on_and_rejects_of_right_codes_count() {
    let h =
        Harness::start("[lockout]\nclient_max_failures = 5\nclient_window_seconds = 600\n").await;
    let t = NewAccessToken {
        business_id: 1,
        access_code: "31337".into(),
        minutes_included: 60,
        valid_to: Some(t0() - Duration::days(1)),
        ..Default::default()
    };
    h.store.create_token(&t, t0()).unwrap();
    let new_mac = |n: u32| format!("02:00:00:00:{:02x}:{:02x}", n >> 8, n & 0xff);
    let mut n = 0;
    for (round, pause_minutes) in [10, 20, 40].into_iter().enumerate() {
        // An expired code from new devices counts like a wrong one: it tells an
        // attacker the code exists.
        for _ in 0..5 {
            n += 1;
            let r = login(&h, "31337", "31337", Some(&new_mac(n))).await;
            assert_eq!(
                r.reply_message(),
                "This access code has expired",
                "round {round}"
            );
        }
        n += 1;
        let r = login(&h, "31337", "31337", Some(&new_mac(n))).await;
        assert!(
            r.reply_message().contains("try again in"),
            "round {round}: {}",
            r.reply_message()
        );
        let lock = h
            .store
            .list_lockouts(None)
            .unwrap()
            .into_iter()
            .find(|l| l.scope == LockScope::Client)
            .unwrap();
        assert_eq!(lock.lockouts as usize, round + 1);
        assert_eq!(
            lock.locked_until - lock.updated_at,
            Duration::minutes(pause_minutes)
        );
        // The pause ends on time; the budget refilled as much as the pause lasted.
        h.clock.set(lock.locked_until + Duration::minutes(60));
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_failures_from_one_mac_lock_it_at_exactly_max_failures() {
    let h = Harness::start("").await;
    let guesser = "aa-bb-cc-00-00-99";
    let mut at = t0();
    for (level, minutes) in [(1, 10), (2, 20), (3, 40)] {
        let answers =
            futures_join_all(
                (0..128u32).map(|n| {
                    let auth = h.auth;
                    async move {
                        ask(auth, pap(&format!("{:05}", 40_000 + n), "x", Some(guesser))).await
                    }
                }),
            )
            .await;
        let checked = answers
            .iter()
            .flatten()
            .filter(|r| r.reply_message() == "Unknown or wrong access code")
            .count();
        let refused = answers
            .iter()
            .flatten()
            .filter(|r| {
                r.reply_message()
                    .starts_with("Too many failed attempts from this device")
            })
            .count();
        assert_eq!((checked, refused), (10, 118), "level {level}");
        let lock = h
            .store
            .lockout(LockScope::Device, "AA:BB:CC:00:00:99")
            .unwrap()
            .unwrap();
        assert_eq!(lock.lockouts, level);
        assert_eq!(lock.locked_until - at, Duration::minutes(minutes));
        at = lock.locked_until;
        h.clock.set(at);
    }
    h.stop().await;
}

/// Runs the futures concurrently and collects their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

fn visitor(h: &Harness, email: Option<&str>) -> String {
    let input = VisitorInput {
        business_id: "1".into(),
        name: "Ada Lovelace".into(),
        email: email.map(str::to_string),
        expected_arrival: None,
    };
    people::register_visitor(&h.store, &VisitorSettings::default(), &input, t0())
        .unwrap()
        .pin
}

fn member(h: &Harness, email: Option<&str>, pin: &str) {
    let input = CustomerInput {
        business_id: "1".into(),
        name: "Grace Hopper".into(),
        email: email.map(str::to_string),
        pin: Some(pin.into()),
    };
    people::create_customer(&h.store, &CustomerSettings::default(), &input, t0()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_and_pin_log_visitors_and_members_in_by_pap_and_chap() {
    let h = Harness::start("").await;
    let pin = visitor(&h, Some("Ada@Example.com"));
    member(&h, Some("grace@example.org"), "24680");
    member(&h, None, "13579");
    let accepted = |r: Option<crate::harness::Reply>| {
        let r = r.expect("answered");
        assert_eq!(r.code, Code::AccessAccept, "{}", r.reply_message());
        r
    };
    // The visitor: PAP, exact and other case; the window starts at this first login.
    let r = accepted(
        ask(
            h.auth,
            pap("Ada@Example.com", &pin, Some("aa-bb-cc-00-00-01")),
        )
        .await,
    );
    assert_eq!(r.session_timeout(), Some(3600));
    accepted(
        ask(
            h.auth,
            pap("ADA@example.COM", &pin, Some("aa-bb-cc-00-00-01")),
        )
        .await,
    );
    // CHAP, with CHAP-Challenge and with the Request Authenticator.
    accepted(
        ask(
            h.auth,
            chap(
                "ada@example.com",
                &pin,
                Some([7; 16]),
                Some("aa-bb-cc-00-00-02"),
            ),
        )
        .await,
    );
    accepted(
        ask(
            h.auth,
            chap(
                "grace@example.org",
                "24680",
                None,
                Some("aa-bb-cc-00-00-03"),
            ),
        )
        .await,
    );
    accepted(
        ask(
            h.auth,
            pap("Grace@Example.org", "24680", Some("aa-bb-cc-00-00-03")),
        )
        .await,
    );
    // Refused: a wrong PIN, an unknown email, the PIN of someone else, a member with no
    // email (their PIN alone still works).
    for (user, password) in [
        ("ada@example.com", "00000"),
        ("nobody@example.com", pin.as_str()),
        ("ada@example.com", "24680"),
        ("grace@example.org", "13579"),
    ] {
        let r = login(&h, user, password, Some("aa-bb-cc-00-00-04")).await;
        assert_eq!(r.code, Code::AccessReject, "{user} / {password}");
        assert_eq!(r.reply_message(), "Unknown or wrong access code");
    }
    accepted(ask(h.auth, pap("13579", "13579", Some("aa-bb-cc-00-00-05"))).await);
    h.stop().await;

    // email_login = false on the client: the email is just an unknown code.
    let h = Harness::start("email_login = false\n").await;
    let pin = visitor(&h, Some("ada@example.com"));
    let r = login(&h, "ada@example.com", &pin, Some("aa-bb-cc-00-00-01")).await;
    assert_eq!(r.code, Code::AccessReject);
    accepted(ask(h.auth, pap(&pin, &pin, Some("aa-bb-cc-00-00-01"))).await);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_against_one_email_lock_the_account_for_new_devices_only() {
    let h = Harness::start("").await;
    member(&h, Some("grace@example.org"), "24680");
    let phone = "aa-bb-cc-00-00-01";
    assert_eq!(
        login(&h, "grace@example.org", "24680", Some(phone))
            .await
            .code,
        Code::AccessAccept
    );
    // Ten wrong PINs from ten different devices (no device lockout helps here).
    for n in 0..10u32 {
        let mac = format!("02:00:00:00:01:{n:02x}");
        let r = login(
            &h,
            "GRACE@example.org",
            &format!("{:05}", 50_000 + n),
            Some(&mac),
        )
        .await;
        assert_eq!(r.reply_message(), "Unknown or wrong access code");
    }
    // The right PIN from a new device: refused; from her phone: accepted.
    let r = login(&h, "grace@example.org", "24680", Some("02:00:00:00:02:01")).await;
    assert_refused(&r, "Too many failed logins for this account");
    assert_eq!(
        login(&h, "grace@example.org", "24680", Some(phone))
            .await
            .code,
        Code::AccessAccept
    );
    let lock = h
        .store
        .lockout(LockScope::Account, "1:grace@example.org")
        .unwrap()
        .unwrap();
    // The account's budget refills over a day (one try per 2.4 hours): the lock
    // lasts until there is room for one try, and one wrong try locks it again.
    let step = Duration::minutes(144);
    assert_eq!(lock.locked_until, t0() + step);
    h.clock.set(t0() + step);
    let r = login(&h, "grace@example.org", "11111", Some("02:00:00:00:02:02")).await;
    assert_eq!(r.reply_message(), "Unknown or wrong access code");
    let r = login(&h, "grace@example.org", "24680", Some("02:00:00:00:02:03")).await;
    assert_refused(
        &r,
        "Too many failed logins for this account; try again in 144 minute",
    );
    let lock = h
        .store
        .lockout(LockScope::Account, "1:grace@example.org")
        .unwrap()
        .unwrap();
    assert_eq!(lock.lockouts, 2);
    h.clock.set(t0() + step * 2);
    let r = login(&h, "grace@example.org", "24680", Some("02:00:00:00:02:03")).await;
    assert_eq!(r.code, Code::AccessAccept, "{}", r.reply_message());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_bound_mac_gets_no_free_guesses_during_a_pause() {
    let h = Harness::start("[lockout]\nclient_max_failures = 5\n").await;
    a_fifth_of_all_pins(&h);
    let regular = "aa-bb-cc-00-00-01";
    assert_eq!(
        login(&h, "55555", "55555", Some(regular)).await.code,
        Code::AccessAccept
    );
    for n in 0..5u32 {
        let mac = format!("02:00:00:00:03:{n:02x}");
        login(&h, &format!("{:05}", 1 + 5 * n), "x", Some(&mac)).await;
    }
    // The NAS is paused. An attacker who copied the regular device's MAC tries codes:
    // each unbound one counts against that MAC, which is locked after ten.
    let mut answers = Vec::new();
    for n in 0..20u32 {
        let code = format!("{:05}", 70_000 + 5 * n);
        answers.push(login(&h, &code, &code, Some(regular)).await.reply_message());
    }
    let paused = answers
        .iter()
        .filter(|m| m.starts_with("Too many failed logins at this hotspot"))
        .count();
    let locked = answers
        .iter()
        .filter(|m| m.starts_with("Too many failed attempts from this device"))
        .count();
    assert_eq!((paused, locked), (10, 10), "{answers:?}");
    h.stop().await;
}
