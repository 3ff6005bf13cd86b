//! One group commit, as the writer threads (accounting ledger, login writes) make it:
//! the file is checked before and after ([`super::health`]), the batch goes in one
//! `BEGIN IMMEDIATE` transaction, and whatever went wrong is sorted into what the
//! caller must do: try again (another process holds the write lock), refuse until
//! the file is fine again, or report a failure.

use super::health::FileState;
use super::sql::{self, Db, DbError, DbErrorKind, TxKind};
use super::{Conn, Store, StoreError, cache};
use std::time::{Duration, Instant};

/// Why a batch was not committed (nothing of it may be acknowledged).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Another connection held the write lock for the whole busy timeout (not counted
    /// as refused here: the caller may try again; it counts what it gives up).
    #[error("the database is locked by another process")]
    Busy,
    /// The file is missing, replaced, read-only or full, or the database server
    /// cannot be reached (see [`FileState`]).
    #[error("database not writable: {}", .0.label())]
    Unavailable(FileState),
    #[error("{0}")]
    Failed(String),
}

/// How often a writer prunes `fact_changes`.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// What a writer thread keeps between batches.
pub(super) struct BatchWriter {
    /// The writer's own connection; `None` after it was lost (PostgreSQL), until a
    /// batch connects again.
    conn: Option<Conn>,
    /// How long the connection waits for the write lock at a time (`None`: the
    /// backend's default), set again on a new connection.
    lock_wait: Option<Duration>,
    pruned: Instant,
}

impl BatchWriter {
    /// A writer with a connection of its own to `store`, waiting at most `lock_wait`
    /// for the write lock at a time (`None`: the backend's default).
    pub(super) fn connect(store: &Store, lock_wait: Option<Duration>) -> Result<Self, StoreError> {
        Ok(Self {
            conn: Some(Self::open(store, lock_wait)?),
            lock_wait,
            pruned: Instant::now(),
        })
    }

    fn open(store: &Store, lock_wait: Option<Duration>) -> Result<Conn, StoreError> {
        let mut conn = store.connect()?;
        if let Some(wait) = lock_wait {
            conn.set_lock_wait(wait)
                .map_err(|e| store.located(e.into()))?;
        }
        Ok(conn)
    }

    /// Commits `body`'s writes for a batch of `n` requests, or says why not. `body`
    /// keeps a request's own failure (a constraint) in its `T`, and returns `Err` for
    /// one that concerns the whole batch (see [`DbError::aborts_batch`]): nothing is
    /// committed.
    pub(super) fn commit<T>(
        &mut self,
        store: &Store,
        n: usize,
        body: impl FnOnce(&mut dyn Db) -> Result<T, DbError>,
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
        let fresh = self.conn.as_ref().is_none_or(|c| !c.reusable());
        let connected = if fresh {
            Self::open(store, self.lock_wait)
        } else {
            Ok(self.conn.take().expect("checked above"))
        };
        let conn = match connected {
            Ok(c) => self.conn.insert(c),
            Err(e) => {
                return match e.db_kind() {
                    Some(DbErrorKind::Unreachable) | None if store.is_shared() => {
                        health.set_reach(FileState::Unreachable);
                        refuse(FileState::Unreachable, true)
                    }
                    _ => Err(BatchError::Failed(e.to_string())),
                };
            }
        };
        let prune = self.pruned.elapsed() >= PRUNE_EVERY;
        let out = sql::transaction(conn.db(), TxKind::Write, |db| {
            let out = body(db)?;
            if prune {
                // Best effort: a failed prune is retried at the next interval.
                let _ = sql::savepoint(db, cache::prune_changes);
                let _ = sql::savepoint(db, super::lockouts::prune_failures);
            }
            Ok::<_, DbError>(out)
        });
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                if e.kind == DbErrorKind::Unreachable && store.is_shared() {
                    health.set_reach(FileState::Unreachable);
                }
                return classify(&e).and_then(|s| refuse(s, true));
            }
        };
        if prune {
            self.pruned = Instant::now();
        }
        // Committed into the file it opened; should that no longer be the file at the
        // path, the rows went with it and nothing may be acknowledged.
        let after = store.file_state();
        if after != FileState::Fine {
            return refuse(after, false);
        }
        health.set_write(FileState::Fine);
        if store.is_shared() {
            health.set_reach(FileState::Fine);
        }
        Ok(out)
    }
}

impl BatchWriter {
    /// Commits `apply` of each of `jobs` in one transaction; each job's result, or its
    /// own failure. First all in a row, with nothing between them: a savepoint per job
    /// would cost two more round trips each on PostgreSQL (measured: 5 instead of 3
    /// per accounting record). Should one job fail on its own (a constraint: its token
    /// deleted meanwhile), nothing was committed and the batch runs again with a
    /// savepoint per job ([`each_in_savepoint`]), so that job fails alone.
    pub(super) fn commit_each<J, T>(
        &mut self,
        store: &Store,
        jobs: &[J],
        apply: impl Fn(&mut dyn Db, &J) -> Result<T, DbError>,
    ) -> Result<Vec<Result<T, String>>, BatchError> {
        let all = self.commit(store, jobs.len(), |db| {
            jobs.iter()
                .map(|job| apply(db, job).map(Ok))
                .collect::<Result<Vec<_>, DbError>>()
        });
        match all {
            Err(BatchError::Failed(_)) => {
                self.commit(store, jobs.len(), |db| each_in_savepoint(db, jobs, &apply))
            }
            other => other,
        }
    }
}

/// Applies each of `jobs` in a savepoint of its own, so one that fails (a constraint:
/// its token deleted meanwhile) rolls back alone and is returned as its `Err`; a
/// failure that concerns the whole batch ([`DbError::aborts_batch`]) gives it all up.
pub(super) fn each_in_savepoint<J, T>(
    db: &mut dyn Db,
    jobs: &[J],
    apply: impl Fn(&mut dyn Db, &J) -> Result<T, DbError>,
) -> Result<Vec<Result<T, String>>, DbError> {
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        match sql::savepoint(db, |db| apply(db, job)) {
            Ok(out) => results.push(Ok(out)),
            Err(e) if e.aborts_batch() => return Err(e),
            Err(e) => results.push(Err(e.to_string())),
        }
    }
    Ok(results)
}

/// Sorts a failed batch: `Ok(state)` when it means the database cannot be written
/// (the caller refuses), `Err` otherwise.
fn classify(e: &DbError) -> Result<FileState, BatchError> {
    match e.kind {
        DbErrorKind::Busy => Err(BatchError::Busy),
        DbErrorKind::Full => Ok(FileState::Full),
        DbErrorKind::ReadOnly => Ok(FileState::ReadOnly),
        DbErrorKind::Unreachable => Ok(FileState::Unreachable),
        DbErrorKind::Constraint | DbErrorKind::Io | DbErrorKind::Other => {
            Err(BatchError::Failed(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_each_backend;

    /// A writer that gave up waiting for another's write lock commits on the same
    /// connection once the lock is free (PostgreSQL left the timed-out transaction
    /// open, failing every later statement on that connection, until this was fixed).
    #[test]
    fn a_writer_that_timed_out_on_the_lock_commits_once_it_is_free() {
        on_each_backend(|s| {
            let other = s.another();
            let mut writer = BatchWriter::connect(s, Some(Duration::from_millis(50))).unwrap();
            let (held, is_held) = std::sync::mpsc::channel();
            let holder = std::thread::spawn(move || {
                other
                    .write(|_| {
                        held.send(()).unwrap();
                        std::thread::sleep(Duration::from_millis(400));
                        Ok(())
                    })
                    .unwrap();
            });
            is_held.recv().unwrap();
            let insert = |db: &mut dyn Db| {
                db.execute(
                    "INSERT INTO guard_locks (scope, subject, lockouts, locked_until, client, updated_at) \
                     VALUES ('server', 'server', 1, 0, 'nas', 0)",
                    &[],
                )
            };
            assert_eq!(
                writer.commit(s, 1, insert),
                Err(BatchError::Busy),
                "{}",
                s.backend()
            );
            holder.join().unwrap();
            assert_eq!(writer.commit(s, 1, insert), Ok(1), "{}", s.backend());
        });
    }

    /// A job that fails on its own fails alone: the others of its batch commit.
    #[test]
    fn one_failing_job_fails_alone() {
        on_each_backend(|s| {
            let mut writer = BatchWriter::connect(s, None).unwrap();
            let results = writer
                .commit_each(s, &["a", "a", "b"], |db, subject| {
                    db.execute(
                        "INSERT INTO guard_locks (scope, subject, lockouts, locked_until, client, updated_at) \
                         VALUES ('server', $1, 1, 0, 'nas', 0)",
                        &[subject],
                    )
                })
                .unwrap();
            assert!(
                results[0].is_ok() && results[2].is_ok(),
                "{}: {results:?}",
                s.backend()
            );
            assert!(results[1].is_err(), "the second 'a' breaks the primary key");
            let kept: i64 = s
                .with_db(|db| {
                    Ok(db
                        .query_one("SELECT count(*) FROM guard_locks", &[])?
                        .get(0)?)
                })
                .unwrap();
            assert_eq!(kept, 2);
        });
    }

    /// On a single SQLite server, an I/O error fails its batch and leaves no state
    /// behind (the database server's reachability is PostgreSQL's alone).
    #[test]
    fn an_io_error_fails_the_batch_and_leaves_no_state() {
        let (_dir, s) = {
            let dir = tempfile::tempdir().unwrap();
            let s = Store::open(&dir.path().join("t.db")).unwrap();
            (dir, s)
        };
        let mut writer = BatchWriter::connect(&s, None).unwrap();
        let io = DbError {
            kind: DbErrorKind::Io,
            message: "disk I/O error".into(),
        };
        assert!(matches!(
            writer.commit(&s, 1, |_| Err::<(), _>(io.clone())),
            Err(BatchError::Failed(_))
        ));
        assert_eq!(s.health().state(), FileState::Fine);
    }
}
