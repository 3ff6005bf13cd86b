//! The policy's decision tables, with a fixed `now`.

use super::*;
use chrono::TimeZone;

const STANDALONE: TokenOwner = TokenOwner::Standalone;
const RULES: LoginRules = LoginRules {
    check_in_on_first_login: true,
    customer_session_minutes: 1440,
    customer_max_devices: 3,
    stale_after: Duration::seconds(660),
};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
}

fn token() -> AccessToken {
    AccessToken {
        id: 1,
        business_id: 1,
        access_code: "12345".into(),
        minutes_included: 60,
        description: None,
        valid_from: None,
        valid_to: None,
        user_limit: None,
        device_limit: None,
        mac_address: None,
        booking_guid: None,
        visitor_guid: None,
        customer_id: None,
        created_at: now() - Duration::days(1),
        revoked_at: None,
        uid: "0123456789abcdef0123456789abcdef".into(),
    }
}

fn mac(n: u8) -> Mac {
    format!("02:00:00:00:00:{n:02x}").parse().unwrap()
}

#[test]
fn run_out_is_decided_by_time_alone_whatever_the_device_rules() {
    let mut t = token();
    t.device_limit = Some(1);
    t.mac_address = Some(mac(1));
    assert_eq!(run_out(now(), &t, STANDALONE, 3599), None);
    assert_eq!(
        run_out(now(), &t, STANDALONE, 3600),
        Some(RejectReason::MinutesUsedUp)
    );
    let visitor = TokenOwner::Visitor {
        visitor_id: 1,
        arrived_at: Some(now() - Duration::minutes(60)),
    };
    assert_eq!(run_out(now(), &t, visitor, 0), Some(RejectReason::Expired));
    let member = TokenOwner::Customer {
        customer_id: 1,
        active: true,
    };
    assert_eq!(run_out(now(), &t, member, u64::MAX), None);
    t.revoked_at = Some(now());
    assert_eq!(
        run_out(now(), &t, STANDALONE, 0),
        Some(RejectReason::Revoked)
    );
}

#[test]
fn fresh_token_gets_all_its_minutes() {
    let g = decide(
        now(),
        &token(),
        STANDALONE,
        &TokenUsage::default(),
        Some(mac(1)),
        &RULES,
    )
    .unwrap();
    assert_eq!(g.session_timeout, 3600);
    assert_eq!(g.limited_by, BindingLimit::MinutesLeft);
    assert_eq!(g.bind_device, Some(mac(1)));
}

#[test]
fn session_timeout_is_the_least_limit_in_whole_seconds() {
    let mut t = token();
    let usage = TokenUsage {
        used_seconds: 600,
        ..Default::default()
    };
    // 50 minutes left, valid_to in 30 min 0.9 s -> 1800 (floored).
    t.valid_to = Some(now() + Duration::milliseconds(1_800_900));
    assert_eq!(
        session_timeout(now(), &t, usage.used_seconds, None),
        Ok((1800, BindingLimit::ValidTo))
    );
    t.valid_to = Some(now() + Duration::hours(5));
    assert_eq!(
        session_timeout(now(), &t, usage.used_seconds, None),
        Ok((3000, BindingLimit::MinutesLeft))
    );
    // One second of minutes left is still a login; none is not.
    assert_eq!(
        session_timeout(now(), &t, 3599, None),
        Ok((1, BindingLimit::MinutesLeft))
    );
    assert_eq!(
        session_timeout(now(), &t, 3600, None),
        Err(RejectReason::MinutesUsedUp)
    );
    assert_eq!(
        session_timeout(now(), &t, 99_999, None),
        Err(RejectReason::MinutesUsedUp)
    );
    // Less than a whole second before valid_to: never a Session-Timeout of 0.
    t.valid_to = Some(now() + Duration::milliseconds(999));
    assert_eq!(
        session_timeout(now(), &t, 0, None),
        Err(RejectReason::Expired)
    );
}

#[test]
fn validity_window_boundaries() {
    let mut t = token();
    t.valid_from = Some(now());
    t.valid_to = Some(now() + Duration::minutes(10));
    assert!(
        decide(now(), &t, STANDALONE, &TokenUsage::default(), None, &RULES).is_ok(),
        "usable from valid_from exactly"
    );
    assert_eq!(
        decide(
            now() - Duration::seconds(1),
            &t,
            STANDALONE,
            &TokenUsage::default(),
            None,
            &RULES
        ),
        Err(RejectReason::NotYetValid { valid_from: now() })
    );
    assert_eq!(
        decide(
            now() + Duration::minutes(10),
            &t,
            STANDALONE,
            &TokenUsage::default(),
            None,
            &RULES
        ),
        Err(RejectReason::Expired)
    );
    let g = decide(
        now() + Duration::minutes(9),
        &t,
        STANDALONE,
        &TokenUsage::default(),
        None,
        &RULES,
    )
    .unwrap();
    assert_eq!(g.session_timeout, 60);
}

#[test]
fn revoked_wins_over_everything() {
    let mut t = token();
    t.revoked_at = Some(now());
    t.valid_to = Some(now() - Duration::days(1));
    assert_eq!(
        decide(now(), &t, STANDALONE, &TokenUsage::default(), None, &RULES),
        Err(RejectReason::Revoked)
    );
}

#[test]
fn device_rules() {
    let mut t = token();
    t.mac_address = Some(mac(1));
    assert!(
        decide(
            now(),
            &t,
            STANDALONE,
            &TokenUsage::default(),
            Some(mac(1)),
            &RULES
        )
        .is_ok()
    );
    assert_eq!(
        decide(
            now(),
            &t,
            STANDALONE,
            &TokenUsage::default(),
            Some(mac(2)),
            &RULES
        ),
        Err(RejectReason::WrongDevice)
    );
    assert_eq!(
        decide(now(), &t, STANDALONE, &TokenUsage::default(), None, &RULES),
        Err(RejectReason::NoDevice)
    );

    let mut t = token();
    t.device_limit = Some(2);
    let usage = TokenUsage {
        bound_devices: [mac(1), mac(2)].into(),
        ..Default::default()
    };
    let g = decide(now(), &t, STANDALONE, &usage, Some(mac(2)), &RULES).unwrap();
    assert_eq!(
        g.bind_device, None,
        "already bound devices come back without a new binding"
    );
    assert_eq!(
        decide(now(), &t, STANDALONE, &usage, Some(mac(3)), &RULES),
        Err(RejectReason::DeviceLimitReached { limit: 2 })
    );
    assert_eq!(
        decide(now(), &t, STANDALONE, &usage, None, &RULES),
        Err(RejectReason::NoDevice)
    );
    let one = TokenUsage {
        bound_devices: [mac(1)].into(),
        ..Default::default()
    };
    assert_eq!(
        decide(now(), &t, STANDALONE, &one, Some(mac(3)), &RULES)
            .unwrap()
            .bind_device,
        Some(mac(3))
    );
}

#[test]
fn simultaneous_use() {
    let mut t = token();
    t.user_limit = Some(1);
    let busy = TokenUsage {
        open_sessions_elsewhere: 1,
        ..Default::default()
    };
    assert_eq!(
        decide(now(), &t, STANDALONE, &busy, Some(mac(2)), &RULES),
        Err(RejectReason::SimultaneousUseLimit { limit: 1 })
    );
    assert!(
        decide(
            now(),
            &t,
            STANDALONE,
            &TokenUsage::default(),
            Some(mac(2)),
            &RULES
        )
        .is_ok()
    );
}

#[test]
fn reply_messages_are_distinct_per_reason() {
    let reasons = [
        RejectReason::UnknownCode,
        RejectReason::NoCredentials,
        RejectReason::Revoked,
        RejectReason::Deactivated,
        RejectReason::NotCheckedIn,
        RejectReason::NotYetValid { valid_from: now() },
        RejectReason::Expired,
        RejectReason::MinutesUsedUp,
        RejectReason::WrongDevice,
        RejectReason::NoDevice,
        RejectReason::DeviceLimitReached { limit: 2 },
        RejectReason::SimultaneousUseLimit { limit: 1 },
        RejectReason::LockedOut { until: now() },
    ];
    let texts: std::collections::HashSet<String> = reasons.iter().map(|r| r.to_string()).collect();
    assert_eq!(texts.len(), reasons.len());
    assert!(texts.iter().all(|t| t.len() <= 253));
    // A wrong password reads like an unknown code, so the portal does not confirm
    // that a guessed code exists.
    assert_eq!(
        RejectReason::BadPassword.to_string(),
        RejectReason::UnknownCode.to_string()
    );
}

fn visitor(arrived_at: Option<DateTime<Utc>>) -> TokenOwner {
    TokenOwner::Visitor {
        visitor_id: 1,
        arrived_at,
    }
}

#[test]
fn visitor_window_runs_from_arrival_for_the_minutes() {
    let t = token(); // 60 minutes
    let arrival = now();
    let owner = visitor(Some(arrival));
    let u = TokenUsage::default();
    // Exactly at arrival: the whole hour.
    let g = decide(arrival, &t, owner, &u, None, &RULES).unwrap();
    assert_eq!((g.session_timeout, g.check_in), (3600, false));
    // 45 minutes in, with 10 minutes used: the window (15 min) is the least.
    let used = TokenUsage {
        used_seconds: 600,
        ..Default::default()
    };
    let g = decide(
        arrival + Duration::minutes(45),
        &t,
        owner,
        &used,
        None,
        &RULES,
    )
    .unwrap();
    assert_eq!(
        (g.session_timeout, g.limited_by),
        (900, BindingLimit::VisitorWindow)
    );
    // One second before the end: one second. Exactly at the end: over.
    let g = decide(
        arrival + Duration::seconds(3599),
        &t,
        owner,
        &u,
        None,
        &RULES,
    )
    .unwrap();
    assert_eq!(g.session_timeout, 1);
    assert_eq!(
        decide(arrival + Duration::minutes(60), &t, owner, &u, None, &RULES),
        Err(RejectReason::Expired)
    );
    // Checked in for later (admin --at in the future): not yet.
    assert_eq!(
        decide(arrival - Duration::seconds(1), &t, owner, &u, None, &RULES),
        Err(RejectReason::NotYetValid {
            valid_from: arrival
        })
    );
}

#[test]
fn first_login_checks_in_unless_turned_off() {
    let t = token();
    let g = decide(
        now(),
        &t,
        visitor(None),
        &TokenUsage::default(),
        None,
        &RULES,
    )
    .unwrap();
    assert!(g.check_in);
    assert_eq!(g.session_timeout, 3600);
    let off = LoginRules {
        check_in_on_first_login: false,
        ..RULES
    };
    assert_eq!(
        decide(now(), &t, visitor(None), &TokenUsage::default(), None, &off),
        Err(RejectReason::NotCheckedIn)
    );
}

#[test]
fn visitor_device_limit_counts_distinct_devices() {
    let mut t = token();
    t.device_limit = Some(2);
    let owner = visitor(Some(now()));
    let two = TokenUsage {
        bound_devices: [mac(1), mac(2)].into(),
        ..Default::default()
    };
    assert!(decide(now(), &t, owner, &two, Some(mac(1)), &RULES).is_ok());
    assert_eq!(
        decide(now(), &t, owner, &two, Some(mac(3)), &RULES),
        Err(RejectReason::DeviceLimitReached { limit: 2 })
    );
}

#[test]
fn customers_get_the_configured_session_and_device_limit() {
    let t = token();
    let active = TokenOwner::Customer {
        customer_id: 1,
        active: true,
    };
    // The ledger does not limit a member: minutes used beyond the token's do not matter.
    let u = TokenUsage {
        used_seconds: 999_999,
        ..Default::default()
    };
    let g = decide(now(), &t, active, &u, Some(mac(1)), &RULES).unwrap();
    assert_eq!(
        (g.session_timeout, g.limited_by, g.device_limit),
        (86_400, BindingLimit::CustomerSession, Some(3))
    );
    let three = TokenUsage {
        bound_devices: [mac(1), mac(2), mac(3)].into(),
        ..Default::default()
    };
    assert_eq!(
        decide(now(), &t, active, &three, Some(mac(4)), &RULES),
        Err(RejectReason::DeviceLimitReached { limit: 3 })
    );
    let inactive = TokenOwner::Customer {
        customer_id: 1,
        active: false,
    };
    assert_eq!(
        decide(now(), &t, inactive, &u, Some(mac(1)), &RULES),
        Err(RejectReason::Deactivated)
    );
}

#[test]
fn live_time_of_other_devices_is_spent_budget() {
    let t = token(); // 3600 s
    let u = TokenUsage {
        used_seconds: 1200,
        open_sessions_elsewhere: 1,
        live_seconds_elsewhere: 600,
        ..Default::default()
    };
    assert_eq!(
        decide(now(), &t, STANDALONE, &u, Some(mac(2)), &RULES)
            .unwrap()
            .session_timeout,
        1800
    );
    let u = TokenUsage {
        used_seconds: 3000,
        open_sessions_elsewhere: 1,
        live_seconds_elsewhere: 600,
        ..Default::default()
    };
    assert_eq!(
        decide(now(), &t, STANDALONE, &u, Some(mac(2)), &RULES),
        Err(RejectReason::MinutesUsedUp)
    );
}
