//! One group commit, as the writer threads (accounting ledger, login writes) make it:
//! the file is checked before and after ([`super::health`]), the batch goes in one
//! `BEGIN IMMEDIATE` transaction, and whatever went wrong is sorted into what the
//! caller must do: try again (another process holds the write lock), refuse until
//! the file is fine again, or report a failure.

use super::health::FileState;
use super::{Store, cache};
use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};
use std::time::{Duration, Instant};

/// Why a batch was not committed (nothing of it may be acknowledged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Another connection held the write lock for the whole busy timeout (not counted
    /// as refused here: the caller may try again; it counts what it gives up).
    #[error("the database is locked by another process")]
    Busy,
    /// The file is missing, replaced, read-only or full (see [`FileState`]).
    #[error("database not writable: {}", .0.label())]
    Unavailable(FileState),
    #[error("{0}")]
    Failed(String),
}

/// How often a writer prunes `fact_changes`.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// What a writer thread keeps between batches.
pub(super) struct BatchWriter {
    pub(super) conn: Connection,
    pruned: Instant,
}

impl BatchWriter {
    pub(super) fn new(conn: Connection) -> Self {
        Self {
            conn,
            pruned: Instant::now(),
        }
    }

    /// Commits `body`'s writes for a batch of `n` requests, or says why not. `body`
    /// keeps a request's own failure (a constraint) in its `T`, and returns `Err` for
    /// one that concerns the whole batch (see [`aborts_batch`]): nothing is committed.
    pub(super) fn commit<T>(
        &mut self,
        store: &Store,
        n: usize,
        body: impl FnOnce(&mut Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, BatchError> {
        let health = store.health();
        // A look at the file, or a write that failed for want of space or of write
        // permission: refused (counted), and the state recorded by its kind.
        let refuse = |state: FileState, from_write: bool| {
            if from_write {
                health.set_write(state);
            } else {
                health.set_file(state);
            }
            health.refuse(n);
            Err(BatchError::Unavailable(state))
        };
        let before = store.file_state();
        health.set_file(before);
        if before != FileState::Fine {
            return refuse(before, false);
        }
        let mut tx = match self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
        {
            Ok(tx) => tx,
            Err(e) => return classify(e).and_then(|s| refuse(s, true)),
        };
        let out = match body(&mut tx) {
            Ok(out) => out,
            Err(e) => return classify(e).and_then(|s| refuse(s, true)),
        };
        if self.pruned.elapsed() >= PRUNE_EVERY {
            // Best effort: a failed prune is retried at the next interval.
            let _ = cache::prune_changes(&tx);
            self.pruned = Instant::now();
        }
        if let Err(e) = tx.commit() {
            return classify(e).and_then(|s| refuse(s, true));
        }
        // Committed into the file it opened; should that no longer be the file at the
        // path, the rows went with it and nothing may be acknowledged.
        let after = store.file_state();
        if after != FileState::Fine {
            return refuse(after, false);
        }
        health.set_write(FileState::Fine);
        Ok(out)
    }
}

/// Applies each of `jobs` in a savepoint of its own, so one that fails (a constraint:
/// its token deleted meanwhile) rolls back alone and is returned as its `Err`; a
/// failure that concerns the whole batch ([`aborts_batch`]) gives it all up.
pub(super) fn each_in_savepoint<J, T>(
    tx: &mut Transaction<'_>,
    jobs: &[J],
    apply: impl Fn(&Connection, &J) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<Result<T, String>>> {
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let mut sp = tx.savepoint()?;
        match apply(&sp, job) {
            Ok(out) => {
                sp.commit()?;
                results.push(Ok(out));
            }
            Err(e) if aborts_batch(&e) => return Err(e),
            Err(e) => {
                sp.rollback()?;
                results.push(Err(e.to_string()));
            }
        }
    }
    Ok(results)
}

/// Whether a statement's error concerns the whole batch (the file, the disk, the lock)
/// rather than the one request: the batch is then given up as a whole.
fn aborts_batch(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
        )
    )
}

/// Sorts a failed BEGIN or COMMIT: `Ok(state)` when it means the file cannot be
/// written (the caller refuses), `Err` otherwise.
fn classify(e: rusqlite::Error) -> Result<FileState, BatchError> {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => Err(BatchError::Busy),
        Some(ErrorCode::DiskFull) => Ok(FileState::Full),
        Some(ErrorCode::ReadOnly) => Ok(FileState::ReadOnly),
        _ => Err(BatchError::Failed(e.to_string())),
    }
}
