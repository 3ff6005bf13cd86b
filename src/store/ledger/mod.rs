//! The accounting ledger (RFC 2866). A token's used time is the sum of its sessions'
//! Acct-Session-Time; which session a record belongs to is `apply.rs`. Every
//! acknowledged record is kept: one that cannot be tied to a session or a token goes
//! to `unmatched_accounting`.
//!
//! One writer thread owns a connection and commits records in batches (group commit):
//! every record that arrived while the previous commit was running goes into the next
//! transaction. A record is acknowledged only after its transaction is durable
//! (SQLite's `synchronous=FULL`, PostgreSQL's commit), so durability costs one fsync
//! per batch, not per packet.

mod apply;
mod reaping;
#[cfg(test)]
mod tests;

pub use reaping::OpenToken;

use super::batch::{BatchError, BatchWriter};
use super::sql::{DbError, Row};
use super::{Store, StoreError, from_ms, ms};
use crate::model::Mac;
use apply::apply;
use chrono::{DateTime, Utc};
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
    /// locked by another process, or its server unreachable): counted and logged by
    /// the store's watcher.
    #[error("accounting record not stored: {0}")]
    Unavailable(super::BatchError),
    #[error("accounting record not stored: {0}")]
    Write(String),
}

impl LedgerWriter {
    /// Starts the writer thread with its own connection to `store`.
    pub fn start(store: &Arc<Store>) -> Result<LedgerWriter, StoreError> {
        let writer = BatchWriter::connect(store, None)?;
        let (queue, jobs) = mpsc::sync_channel(QUEUE);
        let path = store.path().to_path_buf();
        let store = store.clone();
        std::thread::Builder::new()
            .name("pinradius-ledger".into())
            .spawn(move || run_writer(&store, writer, jobs))
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
        let shared = store.is_shared();
        let written = writer.commit_each(store, &batch, |db, job| apply(db, &job.record, shared));
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

impl SessionRow {
    /// A row of `list_sessions`'s query.
    fn read(r: &Row) -> Result<SessionRow, DbError> {
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
            stopped_at: r.get::<Option<i64>>(9)?.map(from_ms),
            closed_by: r.get(10)?,
            framed_ip: r.get(11)?,
        })
    }
}

impl UnmatchedRow {
    /// A row of `list_unmatched`'s query.
    fn read(r: &Row) -> Result<UnmatchedRow, DbError> {
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
    }
}

impl Store {
    /// The newest `limit` unmatched accounting records, newest first.
    pub fn list_unmatched(&self, limit: usize) -> Result<Vec<UnmatchedRow>, StoreError> {
        self.with_db(|db| {
            let rows = db.query(
                "SELECT id, received_at, client, nas, status, acct_session_id, user_name, class, mac, session_time, reason \
                 FROM unmatched_accounting ORDER BY id DESC LIMIT $1",
                &[&limit],
            )?;
            Ok(rows.iter().map(UnmatchedRow::read).collect::<Result<_, _>>()?)
        })
    }

    /// Applies one record directly (no writer thread): for tests and tools.
    pub fn apply_accounting(&self, record: &AcctRecord) -> Result<AcctOutcome, StoreError> {
        self.write(|db| Ok(apply(db, record, self.is_shared())?))
    }

    pub fn list_sessions(&self, open_only: bool) -> Result<Vec<SessionRow>, StoreError> {
        self.with_db(|db| {
            let rows = db.query(
                "SELECT id, token_id, client, acct_session_id, mac, user_name, started_at, updated_at, session_time, \
                 stopped_at, closed_by, framed_ip FROM sessions WHERE ($1 = 0 OR stopped_at IS NULL) ORDER BY id",
                &[&open_only],
            )?;
            Ok(rows.iter().map(SessionRow::read).collect::<Result<_, _>>()?)
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
        // A write transaction: the write lock first, then the rows (a change
        // trigger asking for it after would deadlock with another server's writer).
        self.write(|db| {
            let n = db.execute(
                "UPDATE sessions SET stopped_at = $2, closed_by = $3 WHERE id = $1 AND stopped_at IS NULL",
                &[&id, &ms(at), &closed_by],
            )?;
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
        // A write transaction: the write lock first, then the rows (a change
        // trigger asking for it after would deadlock with another server's writer).
        self.write(|db| {
            let n = db.execute(
                "UPDATE sessions SET stopped_at = $2, closed_by = 'stale' WHERE stopped_at IS NULL AND updated_at < $1",
                &[&ms(cutoff), &ms(at)],
            )?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }

    /// How many sessions are open (for the `open_sessions` gauge).
    pub fn count_open_sessions(&self) -> Result<u64, StoreError> {
        self.with_db(|db| {
            Ok(db
                .query_one(
                    "SELECT count(*) FROM sessions WHERE stopped_at IS NULL",
                    &[],
                )?
                .get(0)?)
        })
    }
}
