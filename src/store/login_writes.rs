//! The writes logins need: binding a device on its first login, checking a visitor
//! in, recording a guessing lock. Auth threads never make them: they queue them here
//! and go on with the next datagram, and one writer thread commits whatever is queued
//! in one transaction (group commit, one fsync per batch), then calls each login back
//! to be answered.
//!
//! The callbacks run on a second thread, so the writer goes straight back to SQLite
//! while the answers of its last batch are encoded and sent.
//!
//! The thread's connection waits at most [`BUSY_SLICE`] for the write lock at a time:
//! while another process holds it (an admin's long import, the sqlite3 shell, another
//! server's batch on PostgreSQL), the
//! writer keeps taking new writes, gives up those whose deadline passed (their login
//! is refused in time for the NAS to hear it) and commits the rest the moment the lock
//! frees.

use super::batch::{BatchError, BatchWriter};
use super::facts::{BindOutcome, bind};
use super::lockouts::{LockoutRow, SharedFailure};
use super::sql::{Db, DbError};
use super::{Store, StoreError};
use crate::model::Mac;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// The longest the writer waits for the write lock before looking at deadlines again.
const BUSY_SLICE: Duration = Duration::from_millis(50);
/// Writes waiting, at most; beyond, a write is refused at once.
const QUEUE: usize = 16_384;
/// Writes per transaction, at most.
const BATCH: usize = 2_048;

/// A device to bind.
#[derive(Debug, Clone, Copy)]
pub struct Bind {
    pub token_id: i64,
    pub mac: Mac,
    pub device_limit: Option<u32>,
}

/// A simultaneous-use place to hold (servers sharing the database): taken unless
/// `limit` places are taken by other devices' open sessions (updated since
/// `stale_before`) and holds.
#[derive(Debug, Clone, Copy)]
pub struct Hold {
    pub token_id: i64,
    pub device: Option<Mac>,
    pub limit: u32,
    pub stale_before: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// What one login (or one lock) needs written.
#[derive(Debug, Clone)]
pub struct LoginWrite {
    /// Checked and taken first: a login refused for want of a place writes nothing.
    pub hold: Option<Hold>,
    pub bind: Option<Bind>,
    /// A visitor to check in (first login), unless the bind found the limit reached.
    pub check_in: Option<i64>,
    /// Guessing locks that started.
    pub locks: Vec<LockoutRow>,
    /// Failures to share with the other servers on the database (PostgreSQL only).
    pub failures: Vec<SharedFailure>,
    pub now: DateTime<Utc>,
    /// Still waiting for the write lock at this instant, the write is given up
    /// ([`BatchError::Busy`]).
    pub deadline: Instant,
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Written {
    /// Whether the place was held, when one was asked.
    pub held: Option<bool>,
    pub bound: Option<BindOutcome>,
    /// The visitor's arrival that stands, when a check-in was asked.
    pub arrived_at: Option<DateTime<Utc>>,
}

/// Called once per write, after its batch is durable (or given up), on the answers
/// thread (at once, on the caller's, when the queue is full): it must not block.
pub type WriteDone = Box<dyn FnOnce(Result<Written, BatchError>) + Send>;

struct Job {
    write: LoginWrite,
    done: WriteDone,
}

/// Handle on the writer thread; it exits when the last handle is dropped.
#[derive(Clone)]
pub struct LoginWriter {
    queue: SyncSender<Job>,
}

impl LoginWriter {
    /// Starts the writer thread with its own connection to `store`.
    pub fn start(store: &Arc<Store>) -> Result<LoginWriter, StoreError> {
        let writer = BatchWriter::connect(store, Some(BUSY_SLICE))?;
        let (queue, jobs) = mpsc::sync_channel(QUEUE);
        let (finished, to_call) = mpsc::channel::<Vec<Finished>>();
        let store = store.clone();
        let thread = |name: &str| {
            let name = name.to_string();
            move |source| StoreError::Open {
                path: std::path::PathBuf::from(format!("{name} thread")),
                source,
            }
        };
        std::thread::Builder::new()
            .name("pinradius-answers".into())
            .spawn(move || {
                for batch in to_call {
                    for (done, result) in batch {
                        done(result);
                    }
                }
            })
            .map_err(thread("answers"))?;
        std::thread::Builder::new()
            .name("pinradius-logins".into())
            .spawn(move || run(&store, writer, jobs, &finished))
            .map_err(thread("login writer"))?;
        Ok(LoginWriter { queue })
    }

    /// Waits up to `wait` until every write queued before this call is done (and its
    /// callback called): at shutdown, so queued lock rows and first logins are kept
    /// and answered. False when the wait ran out.
    pub fn flush(&self, wait: Duration) -> bool {
        let (done, finished) = mpsc::channel();
        let marker = LoginWrite {
            hold: None,
            bind: None,
            check_in: None,
            locks: Vec::new(),
            failures: Vec::new(),
            now: chrono::Utc::now(),
            deadline: Instant::now() + wait,
        };
        self.submit(
            marker,
            Box::new(move |_| {
                let _ = done.send(());
            }),
        );
        finished.recv_timeout(wait).is_ok()
    }

    /// Queues a write; never blocks. `done` is called once: after the commit, or at
    /// once when the queue is full.
    pub fn submit(&self, write: LoginWrite, done: WriteDone) {
        if let Err(e) = self.queue.try_send(Job { write, done }) {
            let job = match e {
                TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
            };
            (job.done)(Err(BatchError::Busy));
        }
    }
}

/// A callback with its result, for the answers thread.
type Finished = (WriteDone, Result<Written, BatchError>);

fn run(
    store: &Store,
    mut writer: BatchWriter,
    jobs: Receiver<Job>,
    finished: &Sender<Vec<Finished>>,
) {
    let mut pending: Vec<Job> = Vec::new();
    let call = |batch: Vec<Finished>| {
        if let Err(mpsc::SendError(batch)) = finished.send(batch) {
            // The answers thread is gone (shutting down): call them here.
            batch.into_iter().for_each(|(done, result)| done(result));
        }
    };
    loop {
        if pending.is_empty() {
            match jobs.recv() {
                Ok(j) => pending.push(j),
                Err(_) => return,
            }
        }
        while pending.len() < BATCH {
            match jobs.try_recv() {
                Ok(j) => pending.push(j),
                Err(_) => break,
            }
        }
        let now = Instant::now();
        let (late, waiting): (Vec<Job>, Vec<Job>) =
            pending.drain(..).partition(|j| j.write.deadline <= now);
        pending = waiting;
        if !late.is_empty() {
            store.health().refuse(late.len());
            call(
                late.into_iter()
                    .map(|j| (j.done, Err(BatchError::Busy)))
                    .collect(),
            );
        }
        if pending.is_empty() {
            continue;
        }
        let started = Instant::now();
        let written = writer.commit_each(store, &pending, |db, job| {
            apply(db, &job.write, store.instance())
        });
        match written {
            Ok(results) => call(
                pending
                    .drain(..)
                    .map(|j| j.done)
                    .zip(results.into_iter().map(|r| r.map_err(BatchError::Failed)))
                    .collect(),
            ),
            Err(BatchError::Busy) => {
                // Kept for the next round. SQLite may say busy before the slice is up
                // (it does not wait where waiting could deadlock): wait the rest here.
                std::thread::sleep(BUSY_SLICE.saturating_sub(started.elapsed()));
            }
            Err(e) => call(
                pending
                    .drain(..)
                    .map(|j| (j.done, Err(e.clone())))
                    .collect(),
            ),
        }
    }
}

fn apply(db: &mut dyn Db, w: &LoginWrite, server: &str) -> Result<Written, DbError> {
    let mut out = Written::default();
    if let Some(h) = w.hold {
        let held = super::holds::hold(db, &h, w.now)?;
        out.held = Some(held);
        if !held {
            return Ok(out);
        }
    }
    if let Some(b) = w.bind {
        let outcome = bind(db, b.token_id, b.mac, b.device_limit, w.now)?;
        out.bound = Some(outcome);
        if outcome == BindOutcome::LimitReached {
            if let Some(h) = w.hold {
                super::holds::release(db, h.token_id, h.device)?;
            }
            return Ok(out);
        }
    }
    if let Some(visitor_id) = w.check_in {
        out.arrived_at = Some(super::people::check_in(db, visitor_id, w.now)?);
    }
    for row in &w.locks {
        super::lockouts::upsert(db, row)?;
    }
    for f in &w.failures {
        super::lockouts::share(db, f, server)?;
    }
    Ok(out)
}
