//! Visitors and customers over the wire (issue 3).

use crate::harness::{Harness, ask, pap, t0};
use chrono::Duration;
use pinradius::commands::people::{self, CustomerInput, VisitorInput};
use pinradius::config::{CustomerSettings, VisitorSettings};
use pinradius::model::NewVisitor;
use pinradius::store::{StoreError, VisitorTokenSettings};
use radius::core::code::Code;
use std::collections::HashSet;
use std::sync::Arc;

fn register(h: &Harness, settings: &VisitorSettings) -> (String, String) {
    let input = VisitorInput {
        business_id: "1".into(),
        name: "Ada Lovelace".into(),
        email: Some("ada@example.com".into()),
        expected_arrival: None,
    };
    let v = people::register_visitor(&h.store, settings, &input, t0()).unwrap();
    (v.guid, v.pin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_two_devices_then_a_third_rejected_within_a_window_from_arrival() {
    let h = Harness::start("").await;
    let (guid, pin) = register(&h, &VisitorSettings::default());
    // First login checks the visitor in: the whole default hour from now.
    let r = ask(h.auth, pap(&pin, &pin, Some("aa-bb-cc-00-00-01")))
        .await
        .unwrap();
    assert_eq!(
        (r.code, r.session_timeout()),
        (Code::AccessAccept, Some(3600))
    );
    assert_eq!(
        h.store.visitor(&guid).unwrap().unwrap().arrived_at,
        Some(t0())
    );
    // 45 minutes later the second device gets the 15 minutes left of the window.
    h.clock.set(t0() + Duration::minutes(45));
    let r = ask(h.auth, pap(&pin, &pin, Some("AA:BB:CC:00:00:02")))
        .await
        .unwrap();
    assert_eq!(
        (r.code, r.session_timeout()),
        (Code::AccessAccept, Some(900))
    );
    // A third device is over the visitor device limit (2).
    let r = ask(h.auth, pap(&pin, &pin, Some("aabb.cc00.0003")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessReject);
    assert!(
        r.reply_message().contains("Device limit reached"),
        "{}",
        r.reply_message()
    );
    // A bound device may come back any time inside the window ...
    let r = ask(h.auth, pap(&pin, &pin, Some("aa-bb-cc-00-00-01")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessAccept);
    // ... and not at its end.
    h.clock.set(t0() + Duration::minutes(60));
    let r = ask(h.auth, pap(&pin, &pin, Some("aa-bb-cc-00-00-01")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessReject);
    assert!(
        r.reply_message().contains("expired"),
        "{}",
        r.reply_message()
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_checked_in_is_rejected_when_first_login_check_in_is_off() {
    let h = Harness::start("[visitors]\ncheck_in_on_first_login = false\n").await;
    let settings = VisitorSettings {
        check_in_on_first_login: false,
        ..Default::default()
    };
    let (guid, pin) = register(&h, &settings);
    let r = ask(h.auth, pap(&pin, &pin, Some("aa-bb-cc-00-00-01")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessReject);
    assert!(
        r.reply_message().contains("check in"),
        "{}",
        r.reply_message()
    );
    assert_eq!(
        h.store.visitor(&guid).unwrap().unwrap().arrived_at,
        None,
        "a reject checks nobody in"
    );
    // Checked in by an admin ten minutes ago: fifty minutes left.
    h.store
        .check_in_visitor(&guid, t0() - Duration::minutes(10))
        .unwrap();
    let r = ask(h.auth, pap(&pin, &pin, Some("aa-bb-cc-00-00-01")))
        .await
        .unwrap();
    assert_eq!(
        (r.code, r.session_timeout()),
        (Code::AccessAccept, Some(3000))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_registered_while_generation_is_off_get_no_wifi_and_delete_stops_the_token() {
    let h = Harness::start("").await;
    let off = VisitorSettings {
        generate_access_tokens: false,
        ..Default::default()
    };
    let (_, pin) = register(&h, &off);
    let r = ask(h.auth, pap(&pin, &pin, Some("aa-bb-cc-00-00-01")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessReject);
    let (guid, pin) = register(&h, &VisitorSettings::default());
    assert_eq!(
        ask(h.auth, pap(&pin, &pin, Some("aa-bb-cc-00-00-01")))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );
    people::delete_visitor(&h.store, &guid, false, t0()).unwrap();
    assert_eq!(
        ask(h.auth, pap(&pin, &pin, Some("aa-bb-cc-00-00-01")))
            .await
            .unwrap()
            .code,
        Code::AccessReject
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_pin_change_deactivation_and_collisions() {
    let h = Harness::start("[customers]\nsession_minutes = 480\nmax_devices = 1\n").await;
    let settings = CustomerSettings {
        session_minutes: 480,
        max_devices: 1,
    };
    let input = CustomerInput {
        business_id: "1".into(),
        name: "Bob".into(),
        email: None,
        pin: Some("24680".into()),
    };
    let c = people::create_customer(&h.store, &settings, &input, t0()).unwrap();
    let r = ask(h.auth, pap("24680", "24680", Some("aa-bb-cc-00-00-01")))
        .await
        .unwrap();
    assert_eq!(
        (r.code, r.session_timeout()),
        (Code::AccessAccept, Some(480 * 60))
    );
    // max_devices = 1 for customers.
    let r = ask(h.auth, pap("24680", "24680", Some("aa-bb-cc-00-00-02")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessReject);

    // New PIN: the old one fails and the new one works on the very next request.
    people::set_pin(&h.store, &c.id.to_string(), "13579", false, t0()).unwrap();
    assert_eq!(
        ask(h.auth, pap("24680", "24680", Some("aa-bb-cc-00-00-01")))
            .await
            .unwrap()
            .code,
        Code::AccessReject
    );
    assert_eq!(
        ask(h.auth, pap("13579", "13579", Some("aa-bb-cc-00-00-01")))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );

    // Deactivated: rejected with its own reason; activated again: back in.
    people::set_active(&h.store, &c.id.to_string(), false, false, t0()).unwrap();
    let r = ask(h.auth, pap("13579", "13579", Some("aa-bb-cc-00-00-01")))
        .await
        .unwrap();
    assert_eq!(r.code, Code::AccessReject);
    assert!(
        r.reply_message().contains("deactivated"),
        "{}",
        r.reply_message()
    );
    people::set_active(&h.store, &c.id.to_string(), true, false, t0()).unwrap();
    assert_eq!(
        ask(h.auth, pap("13579", "13579", Some("aa-bb-cc-00-00-01")))
            .await
            .unwrap()
            .code,
        Code::AccessAccept
    );

    // One code, one owner: a token, another customer and a PIN change are refused a
    // code in use; the refused writes leave nothing behind.
    let token = pinradius::commands::tokens::TokenInput {
        business_id: Some("1".into()),
        access_code: Some("13579".into()),
        minutes_included: Some("10".into()),
        ..Default::default()
    };
    let e = pinradius::commands::tokens::create(&h.store, &token, t0())
        .unwrap_err()
        .to_string();
    assert!(e.contains("already used by customer"), "{e}");
    let other = CustomerInput {
        business_id: "1".into(),
        name: "Eve".into(),
        email: None,
        pin: Some("13579".into()),
    };
    assert!(people::create_customer(&h.store, &settings, &other, t0()).is_err());
    let (_, visitor_pin) = register(&h, &VisitorSettings::default());
    let e = people::set_pin(&h.store, &c.id.to_string(), &visitor_pin, false, t0())
        .unwrap_err()
        .to_string();
    assert!(e.contains("already used by visitor"), "{e}");
    assert_eq!(h.store.list_customers(None).unwrap().len(), 1);
    assert!(
        people::set_pin(&h.store, &c.id.to_string(), "1234", false, t0()).is_err(),
        "PINs are 5 digits"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_generated_pins_are_unique_five_digit_codes() {
    let h = Harness::start("").await;
    let mut pins = HashSet::new();
    for _ in 0..1000 {
        let (_, pin) = register(
            &h,
            &VisitorSettings {
                generate_access_tokens: false,
                ..Default::default()
            },
        );
        assert!(
            pin.len() == 5 && pin.bytes().all(|b| b.is_ascii_digit()),
            "{pin}"
        );
        assert!(pins.insert(pin.clone()), "PIN {pin} given twice");
    }
    // Not sequential: far more distinct first digits than a counter would produce.
    let leading: HashSet<u8> = pins.iter().map(|p| p.as_bytes()[0]).collect();
    assert!(leading.len() >= 8, "{leading:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_registrations_drawing_the_same_pin_both_succeed_with_different_pins() {
    let h = Harness::start("").await;
    let store = h.store.clone();
    // Both registrations first draw the same PIN; the transaction that comes second
    // sees it taken and draws again, so neither fails and no PIN is shared.
    let handles: Vec<_> = (0..2)
        .map(|i| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut first = true;
                let mut draw = move || {
                    if std::mem::take(&mut first) {
                        "42424".to_string()
                    } else {
                        pinradius::policy::pin::random_pin()
                    }
                };
                let v = NewVisitor {
                    business_id: 1,
                    name: format!("racer {i}"),
                    ..Default::default()
                };
                let settings = Some(VisitorTokenSettings {
                    minutes: 60,
                    max_devices: 2,
                });
                store.register_visitor(
                    &v,
                    &format!("00000000-0000-4000-8000-00000000000{i}"),
                    settings,
                    t0(),
                    &mut draw,
                )
            })
        })
        .collect();
    let pins: Vec<String> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap().pin)
        .collect();
    assert_ne!(pins[0], pins[1]);
    assert!(pins.contains(&"42424".to_string()));
    assert!(matches!(
        h.store.register_visitor(
            &NewVisitor {
                business_id: 1,
                name: "x".into(),
                ..Default::default()
            },
            "g",
            None,
            t0(),
            &mut || "42424".into()
        ),
        Err(StoreError::PinSpaceFull { .. })
    ));
    h.stop().await;
}
