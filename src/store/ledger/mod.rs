//! The accounting ledger (RFC 2866). A token's used time is the sum of its sessions'
//! Acct-Session-Time; which session a record belongs to is `apply.rs`. Every
//! acknowledged record is kept: one that cannot be tied to a session or a token goes
//! to `unmatched_accounting`.
//!
//! One writer thread owns a connection and commits records in batches (group commit):
//! every record that arrived while the previous commit was running goes into the next
//! transaction. A record is acknowledged only after its transaction is durable
//! (`synchronous=FULL`), so durability costs one fsync per batch, not per packet.

mod apply;
mod reaping;

pub use reaping::OpenToken;

use super::batch::{BatchError, BatchWriter, each_in_savepoint};
use super::{Store, StoreError, from_ms, ms};
use crate::model::Mac;
use apply::apply;
use chrono::{DateTime, Utc};
use rusqlite::params;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};

/// Acct-Status-Type values handled (RFC 2866 section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcctStatus {
    Start,
    Stop,
    InterimUpdate,
    /// The NAS (re)started: none of its sessions survive.
    AccountingOn,
    /// The NAS is shutting down: all of its sessions end.
    AccountingOff,
    /// Any other Acct-Status-Type (kept with the unmatched records).
    Other(u32),
}

impl AcctStatus {
    pub fn from_code(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Start,
            2 => Self::Stop,
            3 => Self::InterimUpdate,
            7 => Self::AccountingOn,
            8 => Self::AccountingOff,
            _ => return None,
        })
    }

    /// The status as the unmatched records name it.
    pub fn label(self) -> String {
        match self {
            Self::Start => "Start".into(),
            Self::Stop => "Stop".into(),
            Self::InterimUpdate => "Interim-Update".into(),
            Self::AccountingOn => "Accounting-On".into(),
            Self::AccountingOff => "Accounting-Off".into(),
            Self::Other(n) => format!("Acct-Status-Type {n}"),
        }
    }
}

/// How our Class in an Accounting-Request names a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    /// `pinradius:uid=...`: the token's uid, which no other token will ever have.
    Uid(String),
    /// `pinradius:token=N`: the id, as versions before uids wrote it (sessions that
    /// were open across the upgrade); ids are never reused since.
    Id(i64),
}

impl std::fmt::Display for TokenRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Uid(uid) => write!(f, "pinradius:uid={uid}"),
            Self::Id(id) => write!(f, "pinradius:token={id}"),
        }
    }
}

/// One Accounting-Request, reduced to what the ledger keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcctRecord {
    /// The configured client's name when the record came (shown, not a key).
    pub client: String,
    /// The NAS that sent it ([`crate::model::NasKey`] as text): sessions are its own.
    pub nas: String,
    /// The client's business: User-Name is looked up there.
    pub business_id: i64,
    pub status: AcctStatus,
    pub acct_session_id: String,
    /// The token our Class names, when the NAS echoed it.
    pub class: Option<TokenRef>,
    pub user_name: Option<String>,
    pub mac: Option<Mac>,
    /// Acct-Session-Time: cumulative seconds of this session so far.
    pub session_time: Option<u32>,
    /// Acct-Delay-Time: how long the NAS has been trying to send this record.
    pub delay: u32,
    pub nas_ip: Option<String>,
    /// The address the record came from: where a Disconnect-Request goes.
    pub nas_address: Option<String>,
    pub framed_ip: Option<String>,
    /// When the record arrived.
    pub at: DateTime<Utc>,
    /// Why a well-formed, authentic record cannot be applied (a reason label and the
    /// detail): it is kept with the unmatched records instead.
    pub problem: Option<(&'static str, String)>,
}

/// What a record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcctOutcome {
    /// The session (row id) of the token was created or updated.
    Recorded { session: i64, token: i64 },
    /// Accounting-On/Off closed this many open sessions of the NAS.
    NasSessionsClosed(usize),
    /// Kept with the unmatched records (`reason`: malformed, unknown_status,
    /// unknown_token, deleted_token); nothing is counted.
    Unmatched { reason: &'static str },
}

/// A queued record and where its outcome goes.
struct Job {
    record: AcctRecord,
    done: tokio::sync::oneshot::Sender<Result<AcctOutcome, Failure>>,
}

/// Records waiting for the writer, at most; beyond, records are refused (not
/// acknowledged) and the NAS retransmits them later.
const QUEUE: usize = 16_384;
/// Records per transaction, at most.
const BATCH: usize = 1_024;

/// Handle on the writer thread. Cloning shares the thread; it exits when the last
/// handle is dropped.
#[derive(Clone)]
pub struct LedgerWriter {
    queue: SyncSender<Job>,
}

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("accounting queue is full ({QUEUE} records waiting)")]
    QueueFull,
    #[error("accounting writer has stopped")]
    Stopped,
    /// The database cannot be written now (deleted, replaced, read-only, disk full,
    /// or locked by another process): counted and logged by the store's watcher.
    #[error("accounting record not stored: {0}")]
    Unavailable(super::BatchError),
    #[error("accounting record not stored: {0}")]
    Write(String),
}

impl LedgerWriter {
    /// Starts the writer thread with its own connection to `store`.
    pub fn start(store: &Arc<Store>) -> Result<LedgerWriter, StoreError> {
        let conn = store.connect()?;
        let (queue, jobs) = mpsc::sync_channel(QUEUE);
        let path = store.path().to_path_buf();
        let store = store.clone();
        std::thread::Builder::new()
            .name("pinradius-ledger".into())
            .spawn(move || run_writer(&store, BatchWriter::new(conn), jobs))
            .map_err(|source| StoreError::Open { path, source })?;
        Ok(LedgerWriter { queue })
    }

    /// Queues a record; resolves once it is committed to disk (or failed).
    pub async fn record(&self, record: AcctRecord) -> Result<AcctOutcome, LedgerError> {
        let (done, outcome) = tokio::sync::oneshot::channel();
        self.queue
            .try_send(Job { record, done })
            .map_err(|e| match e {
                TrySendError::Full(_) => LedgerError::QueueFull,
                TrySendError::Disconnected(_) => LedgerError::Stopped,
            })?;
        outcome
            .await
            .map_err(|_| LedgerError::Stopped)?
            .map_err(|e| match e {
                Failure::Batch(BatchError::Failed(m)) | Failure::Record(m) => LedgerError::Write(m),
                Failure::Batch(b) => LedgerError::Unavailable(b),
            })
    }
}

/// Why a record was not stored: its batch, or the record itself.
#[derive(Debug, Clone)]
enum Failure {
    Batch(BatchError),
    Record(String),
}

fn run_writer(store: &Store, mut writer: BatchWriter, jobs: Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        // Nothing is acknowledged that is not on disk: a record whose own write
        // failed is refused alone, a batch that was not committed all of it.
        let written = writer.commit(store, batch.len(), |tx| {
            each_in_savepoint(tx, &batch, |conn, job| apply(conn, &job.record))
        });
        let results = match written {
            Ok(results) => results
                .into_iter()
                .map(|r| r.map_err(Failure::Record))
                .collect(),
            Err(e) => {
                if e == BatchError::Busy {
                    // Locked by another process for the whole busy timeout: refused.
                    store.health().refuse(batch.len());
                }
                vec![Err(Failure::Batch(e)); batch.len()]
            }
        };
        for (job, result) in batch.into_iter().zip(results) {
            let _ = job.done.send(result);
        }
    }
}

/// A session as listed by `session list`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SessionRow {
    pub id: i64,
    pub token_id: i64,
    pub client: String,
    pub acct_session_id: String,
    pub mac: Option<String>,
    pub user_name: Option<String>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub session_time: i64,
    pub stopped_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub framed_ip: Option<String>,
}

/// A record that could not be tied to a session or a token.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnmatchedRow {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub client: String,
    pub nas: String,
    pub status: String,
    pub acct_session_id: Option<String>,
    pub user_name: Option<String>,
    pub class: Option<String>,
    pub mac: Option<String>,
    pub session_time: Option<i64>,
    pub reason: String,
}

impl Store {
    /// The newest `limit` unmatched accounting records, newest first.
    pub fn list_unmatched(&self, limit: usize) -> Result<Vec<UnmatchedRow>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "SELECT id, received_at, client, nas, status, acct_session_id, user_name, class, mac, session_time, reason \
                 FROM unmatched_accounting ORDER BY id DESC LIMIT ?1",
            )
            .and_then(|mut s| {
                s.query_map(params![limit as i64], |r| {
                    Ok(UnmatchedRow {
                        id: r.get(0)?,
                        received_at: from_ms(r.get(1)?),
                        client: r.get(2)?,
                        nas: r.get(3)?,
                        status: r.get(4)?,
                        acct_session_id: r.get(5)?,
                        user_name: r.get(6)?,
                        class: r.get(7)?,
                        mac: r.get(8)?,
                        session_time: r.get(9)?,
                        reason: r.get(10)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| self.sql(e))
        })
    }

    /// Applies one record directly (no writer thread): for tests and tools.
    pub fn apply_accounting(&self, record: &AcctRecord) -> Result<AcctOutcome, StoreError> {
        self.with_conn(|conn| {
            let tx = conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|e| self.sql(e))?;
            let outcome = apply(&tx, record).map_err(|e| self.sql(e))?;
            tx.commit().map_err(|e| self.sql(e))?;
            Ok(outcome)
        })
    }

    pub fn list_sessions(&self, open_only: bool) -> Result<Vec<SessionRow>, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached(
                "SELECT id, token_id, client, acct_session_id, mac, user_name, started_at, updated_at, session_time, \
                 stopped_at, closed_by, framed_ip FROM sessions WHERE (?1 = 0 OR stopped_at IS NULL) ORDER BY id",
            )
            .and_then(|mut s| {
                s.query_map(params![open_only], |r| {
                    Ok(SessionRow {
                        id: r.get(0)?,
                        token_id: r.get(1)?,
                        client: r.get(2)?,
                        acct_session_id: r.get(3)?,
                        mac: r.get(4)?,
                        user_name: r.get(5)?,
                        started_at: from_ms(r.get(6)?),
                        updated_at: from_ms(r.get(7)?),
                        session_time: r.get(8)?,
                        stopped_at: r.get::<_, Option<i64>>(9)?.map(from_ms),
                        closed_by: r.get(10)?,
                        framed_ip: r.get(11)?,
                    })
                })?
                .collect()
            })
            .map_err(|e| self.sql(e))
        })
    }

    /// Closes one open session (`closed_by` says why: "admin", "stale", "expired").
    /// Returns false when it was not open.
    pub fn close_session(
        &self,
        id: i64,
        at: DateTime<Utc>,
        closed_by: &str,
    ) -> Result<bool, StoreError> {
        self.with_conn(|conn| {
            let n = conn
                .execute(
                    "UPDATE sessions SET stopped_at = ?2, closed_by = ?3 WHERE id = ?1 AND stopped_at IS NULL",
                    params![id, ms(at), closed_by],
                )
                .map_err(|e| self.sql(e))?;
            Ok(n == 1)
        })
    }

    /// Closes every open session not updated since `cutoff` (a NAS that vanished must
    /// not hold simultaneous-use places forever). Their used time stays what was last
    /// reported. Returns how many were closed.
    pub fn close_stale_sessions(
        &self,
        cutoff: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<usize, StoreError> {
        self.with_conn(|conn| {
            conn.execute(
                "UPDATE sessions SET stopped_at = ?2, closed_by = 'stale' WHERE stopped_at IS NULL AND updated_at < ?1",
                params![ms(cutoff), ms(at)],
            )
            .map_err(|e| self.sql(e))
        })
    }

    /// How many sessions are open (for the `open_sessions` gauge).
    pub fn count_open_sessions(&self) -> Result<u64, StoreError> {
        self.with_conn(|conn| {
            conn.prepare_cached("SELECT count(*) FROM sessions WHERE stopped_at IS NULL")
                .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
                .map(|n| n as u64)
                .map_err(|e| self.sql(e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewAccessToken;
    use chrono::{Duration, TimeZone};

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap()
    }

    fn setup() -> (tempfile::TempDir, Store, i64) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db")).unwrap();
        let id = s
            .create_token(
                &NewAccessToken {
                    business_id: 1,
                    access_code: "12345".into(),
                    minutes_included: 60,
                    ..Default::default()
                },
                t0(),
            )
            .unwrap();
        (dir, s, id)
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
        let (_d, s, id) = setup();
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
            assert_eq!(used(&s, id), *want, "after {status:?} {session} {time:?}");
        }
        let open = s.list_sessions(true).unwrap();
        assert!(open.is_empty(), "{open:?}");
    }

    #[test]
    fn stop_without_start_and_class_lookup() {
        let (_d, s, id) = setup();
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
        assert_eq!(used(&s, id), 42);
        r.class = Some(TokenRef::Uid("0".repeat(32)));
        r.user_name = Some("12345".into());
        r.acct_session_id = "y".into();
        assert_eq!(
            s.apply_accounting(&r).unwrap(),
            AcctOutcome::Unmatched {
                reason: "deleted_token"
            }
        );
        assert_eq!(used(&s, id), 42, "a Class naming no token charges nothing");
        assert_eq!(s.list_unmatched(10).unwrap().len(), 2);
    }

    #[test]
    fn accounting_on_closes_the_nas_sessions_and_stale_sessions_close() {
        let (_d, s, _id) = setup();
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
    }

    #[tokio::test]
    async fn writer_commits_in_batches_and_acknowledges_each() {
        let (_d, s, id) = setup();
        let s = Arc::new(s);
        let w = LedgerWriter::start(&s).unwrap();
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
        assert_eq!(used(&s, id), 200);
    }
}
