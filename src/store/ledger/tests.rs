//! The ledger's rules through the store, on each backend.

use super::*;
use crate::model::TokenOwner;
use crate::store::testing::{self, on_each_backend};
use chrono::Duration;

fn t0() -> DateTime<Utc> {
    testing::now()
}

/// Token "12345" of business 1, 60 minutes: its id.
fn setup(s: &Store) -> i64 {
    s.create_token(&testing::new("12345"), t0()).unwrap()
}

fn rec(status: AcctStatus, session: &str, time: Option<u32>, at: DateTime<Utc>) -> AcctRecord {
    AcctRecord {
        client: "nas".into(),
        nas: "127.0.0.1".into(),
        business_id: 1,
        status,
        acct_session_id: session.into(),
        class: None,
        delay: 0,
        problem: None,
        user_name: Some("12345".into()),
        mac: Some("02:00:00:00:00:01".parse().unwrap()),
        session_time: time,
        nas_ip: None,
        nas_address: None,
        framed_ip: None,
        at,
    }
}

fn used(s: &Store, id: i64) -> u64 {
    s.token_usage(id, None, t0(), t0()).unwrap().used_seconds
}

/// Ledger table: (record, used seconds after it).
#[test]
fn every_second_counted_once() {
    on_each_backend(|s| {
        let id = setup(s);
        use AcctStatus::*;
        let steps: &[(AcctStatus, &str, Option<u32>, i64, u64)] = &[
            (Start, "a", Some(0), 0, 0),
            (InterimUpdate, "a", Some(300), 300, 300),
            (InterimUpdate, "a", Some(300), 301, 300), // retransmit
            (InterimUpdate, "a", Some(200), 302, 300), // counter backwards
            (Stop, "a", Some(600), 600, 600),
            (Stop, "a", Some(600), 601, 600), // duplicate Stop
            (Stop, "a", Some(600), 602, 600), // and again
            (InterimUpdate, "a", Some(550), 603, 600), // late Interim after Stop
            (Stop, "a", Some(620), 604, 620), // a later Stop with more time raises it
            (Start, "b", None, 700, 620),
            (Stop, "b", Some(100), 800, 720),
        ];
        for (status, session, time, offset, want) in steps {
            s.apply_accounting(&rec(
                *status,
                session,
                *time,
                t0() + Duration::seconds(*offset),
            ))
            .unwrap();
            assert_eq!(
                used(s, id),
                *want,
                "{}: after {status:?} {session} {time:?}",
                s.backend()
            );
        }
        let open = s.list_sessions(true).unwrap();
        assert!(open.is_empty(), "{}: {open:?}", s.backend());
    });
}

#[test]
fn stop_without_start_and_class_lookup() {
    on_each_backend(|s| {
        let id = setup(s);
        let mut r = rec(AcctStatus::Stop, "x", Some(42), t0());
        r.user_name = Some("renamed".into());
        assert_eq!(
            s.apply_accounting(&r).unwrap(),
            AcctOutcome::Unmatched {
                reason: "unknown_token"
            }
        );
        let uid = s.token_by_id(id).unwrap().unwrap().uid;
        r.class = Some(TokenRef::Uid(uid));
        assert!(matches!(
            s.apply_accounting(&r).unwrap(),
            AcctOutcome::Recorded { .. }
        ));
        assert_eq!(used(s, id), 42);
        r.class = Some(TokenRef::Uid("0".repeat(32)));
        r.user_name = Some("12345".into());
        r.acct_session_id = "y".into();
        assert_eq!(
            s.apply_accounting(&r).unwrap(),
            AcctOutcome::Unmatched {
                reason: "deleted_token"
            }
        );
        assert_eq!(used(s, id), 42, "a Class naming no token charges nothing");
        assert_eq!(s.list_unmatched(10).unwrap().len(), 2);
    });
}

/// A User-Name that is an email charges the one token of that email, whatever the
/// case of either; an email with several codes charges none.
#[test]
fn email_user_name_matches_case_insensitively_and_only_one_code() {
    on_each_backend(|s| {
        setup(s);
        let customer = s
            .create_customer(
                &crate::model::NewCustomer {
                    business_id: 1,
                    name: "Ann".into(),
                    email: Some("Ann@Example.com".into()),
                },
                Some("54321"),
                60,
                t0(),
                &mut || unreachable!("the PIN is given"),
            )
            .unwrap();
        let mut r = rec(AcctStatus::Stop, "m", Some(30), t0());
        r.user_name = Some("ann@EXAMPLE.com".into());
        assert!(
            matches!(
                s.apply_accounting(&r).unwrap(),
                AcctOutcome::Recorded { token, .. } if token == customer.token_id
            ),
            "{}",
            s.backend()
        );
        assert_eq!(used(s, customer.token_id), 30, "{}", s.backend());
        let mut pins = ["67890".to_string()].into_iter();
        s.register_visitor(
            &crate::model::NewVisitor {
                business_id: 1,
                name: "Ann again".into(),
                email: Some("ANN@example.com".into()),
                expected_arrival: None,
            },
            "visitor-guid-1",
            Some(crate::store::VisitorTokenSettings {
                minutes: 60,
                max_devices: 1,
            }),
            t0(),
            &mut || pins.next().unwrap(),
        )
        .unwrap();
        r.acct_session_id = "n".into();
        assert_eq!(
            s.apply_accounting(&r).unwrap(),
            AcctOutcome::Unmatched {
                reason: "unknown_token"
            },
            "{}",
            s.backend()
        );
        assert_eq!(used(s, customer.token_id), 30, "{}", s.backend());
    });
}

/// A Start on an open session's id, begun after its last update: the NAS used
/// the id again without a Stop. The first ends where it was; the new one counts.
#[test]
fn start_on_an_open_id_replaces_the_session() {
    on_each_backend(|s| {
        let id = setup(s);
        s.apply_accounting(&rec(AcctStatus::Start, "a", Some(0), t0()))
            .unwrap();
        s.apply_accounting(&rec(
            AcctStatus::InterimUpdate,
            "a",
            Some(100),
            t0() + Duration::seconds(100),
        ))
        .unwrap();
        s.apply_accounting(&rec(
            AcctStatus::Start,
            "a",
            Some(0),
            t0() + Duration::seconds(500),
        ))
        .unwrap();
        s.apply_accounting(&rec(
            AcctStatus::Stop,
            "a",
            Some(40),
            t0() + Duration::seconds(540),
        ))
        .unwrap();
        assert_eq!(used(s, id), 140, "{}", s.backend());
        let sessions = s.list_sessions(false).unwrap();
        let closed_by: Vec<_> = sessions.iter().map(|r| r.closed_by.as_deref()).collect();
        assert_eq!(
            closed_by,
            [Some("replaced"), Some("stop")],
            "{}",
            s.backend()
        );
        assert_eq!(
            sessions[0].stopped_at,
            Some(t0() + Duration::seconds(100)),
            "{}",
            s.backend()
        );
    });
}

#[test]
fn accounting_on_closes_the_nas_sessions_and_stale_sessions_close() {
    on_each_backend(|s| {
        setup(s);
        s.apply_accounting(&rec(AcctStatus::Start, "a", Some(0), t0()))
            .unwrap();
        s.apply_accounting(&rec(AcctStatus::Start, "b", Some(0), t0()))
            .unwrap();
        let mut on = rec(
            AcctStatus::AccountingOn,
            "",
            None,
            t0() + Duration::seconds(5),
        );
        on.user_name = None;
        assert_eq!(
            s.apply_accounting(&on).unwrap(),
            AcctOutcome::NasSessionsClosed(2)
        );
        s.apply_accounting(&rec(
            AcctStatus::Start,
            "c",
            Some(0),
            t0() + Duration::seconds(10),
        ))
        .unwrap();
        assert_eq!(
            s.close_stale_sessions(t0() + Duration::seconds(10), t0() + Duration::seconds(700))
                .unwrap(),
            0
        );
        assert_eq!(
            s.close_stale_sessions(t0() + Duration::seconds(11), t0() + Duration::seconds(700))
                .unwrap(),
            1
        );
        // The NAS reports again: the session is live again.
        s.apply_accounting(&rec(
            AcctStatus::InterimUpdate,
            "c",
            Some(900),
            t0() + Duration::seconds(910),
        ))
        .unwrap();
        assert_eq!(s.list_sessions(true).unwrap().len(), 1);
    });
}

/// The reaper's view: used time plus the live time of sessions updated since
/// `stale_before`; a session with a disconnect pending is not offered again.
#[test]
fn open_tokens_add_live_time_and_leave_pending_disconnects_out() {
    on_each_backend(|s| {
        let id = setup(s);
        let at = |secs| t0() + Duration::seconds(secs);
        let session = |outcome| match outcome {
            AcctOutcome::Recorded { session, .. } => session,
            other => panic!("{}: {other:?}", s.backend()),
        };
        s.apply_accounting(&rec(AcctStatus::Stop, "closed", Some(30), at(0)))
            .unwrap();
        let live = session(
            s.apply_accounting(&rec(AcctStatus::Start, "live", Some(0), at(0)))
                .unwrap(),
        );
        s.apply_accounting(&rec(AcctStatus::InterimUpdate, "live", Some(100), at(100)))
            .unwrap();
        let quiet = session(
            s.apply_accounting(&rec(AcctStatus::Start, "quiet", Some(0), at(50)))
                .unwrap(),
        );
        assert!(s.queue_disconnect(quiet, "expired", at(55)).unwrap());
        let open = s.open_tokens(at(160), at(60)).unwrap();
        assert_eq!(open.len(), 1, "{}", s.backend());
        assert_eq!(open[0].token.id, id, "{}", s.backend());
        assert_eq!(open[0].owner, TokenOwner::Standalone, "{}", s.backend());
        assert_eq!(open[0].spent_seconds, 30 + 100 + 60, "{}", s.backend());
        assert_eq!(open[0].sessions, [live], "{}", s.backend());
    });
}

#[test]
fn writer_commits_in_batches_and_acknowledges_each() {
    on_each_backend(|s| {
        let id = setup(s);
        // The writer takes a shared handle: another one on the same database.
        let shared = Arc::new(s.another());
        let w = LedgerWriter::start(&shared).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..200u32 {
                let w = w.clone();
                tasks.push(tokio::spawn(async move {
                    w.record(rec(AcctStatus::Stop, &format!("s{i}"), Some(1), t0()))
                        .await
                }));
            }
            for t in tasks {
                assert!(matches!(
                    t.await.unwrap().unwrap(),
                    AcctOutcome::Recorded { .. }
                ));
            }
        });
        assert_eq!(used(s, id), 200, "{}", s.backend());
    });
}
