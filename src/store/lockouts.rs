//! Persisted guessing locks: one row per subject (a device, an account, a client's
//! NAS, the whole server) that has been locked, written when a lock starts and kept
//! after it ends so repeated locks double. Read at startup and whenever the server is
//! about to refuse a subject it remembers as locked, so `lockout clear` from the CLI
//! takes effect on the very next request.

use super::sql::{Db, DbError, Row};
use super::{Store, StoreError, from_ms, ms};
pub use crate::model::LockScope;
use chrono::{DateTime, Utc};

/// A lock record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockoutRow {
    pub scope: LockScope,
    /// Who is locked, as text: a normalised MAC, `business_id:email`, a NAS
    /// (`source [nas-ip] [nas-id]`), or `server`.
    pub subject: String,
    /// How many times it has been locked (the doubling level).
    pub lockouts: u32,
    pub locked_until: DateTime<Utc>,
    /// The client (NAS) the last failure came through.
    pub client: String,
    pub updated_at: DateTime<Utc>,
}

/// A row of [`COLUMNS`]; `None` for a scope this version does not know.
fn read(r: &Row) -> Result<Option<LockoutRow>, DbError> {
    let scope: String = r.get(0)?;
    Ok(LockScope::parse(&scope).map(|scope| LockoutRow {
        scope,
        subject: r.get(1).unwrap_or_default(),
        lockouts: r
            .get::<i64>(2)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            .unwrap_or(1),
        locked_until: from_ms(r.get(3).unwrap_or(0)),
        client: r.get(4).unwrap_or_default(),
        updated_at: from_ms(r.get(5).unwrap_or(0)),
    }))
}

const COLUMNS: &str = "scope, subject, lockouts, locked_until, client, updated_at";

impl Store {
    pub fn lockout(
        &self,
        scope: LockScope,
        subject: &str,
    ) -> Result<Option<LockoutRow>, StoreError> {
        self.with_db(|db| {
            let row = db.query_opt(
                &format!("SELECT {COLUMNS} FROM guard_locks WHERE scope = $1 AND subject = $2"),
                &[&scope.as_str(), &subject],
            )?;
            Ok(row.map(|r| read(&r)).transpose()?.flatten())
        })
    }

    /// Every lock record (`active_at`: only those still locked at that time).
    pub fn list_lockouts(
        &self,
        active_at: Option<DateTime<Utc>>,
    ) -> Result<Vec<LockoutRow>, StoreError> {
        self.with_db(|db| {
            let rows = db.query(
                &format!(
                    "SELECT {COLUMNS} FROM guard_locks WHERE (CAST($1 AS BIGINT) IS NULL OR locked_until > $1) ORDER BY locked_until DESC"
                ),
                &[&active_at.map(ms)],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.extend(read(r)?);
            }
            Ok(out)
        })
    }

    /// Forgets locks entirely (level included): of `scope`, the one of `subject` when
    /// given, and only those last seen through `client` when given. Returns how many.
    pub fn clear_lockouts(
        &self,
        scope: LockScope,
        subject: Option<&str>,
        client: Option<&str>,
    ) -> Result<usize, StoreError> {
        // A write transaction: the write lock first, then the rows (a change
        // trigger asking for it after would deadlock with another server's writer).
        self.write(|db| {
            let n = db.execute(
                "DELETE FROM guard_locks WHERE scope = $1 AND (CAST($2 AS TEXT) IS NULL OR subject = $2) AND (CAST($3 AS TEXT) IS NULL OR client = $3)",
                &[&scope.as_str(), &subject, &client],
            )?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}

/// A refused login counted against a subject, as one server shares it with the
/// others on the same database (PostgreSQL), so a budget is one budget whichever
/// server an attacker asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedFailure {
    pub scope: LockScope,
    /// As in [`LockoutRow::subject`].
    pub subject: String,
    pub at: DateTime<Utc>,
    /// The lock it started on its server (level, end), if it started one: its row is
    /// written in the same transaction.
    pub lock: Option<(u32, DateTime<Utc>)>,
}

/// Failures other servers shared, kept at most (the oldest are pruned with the
/// change feed): far more than any budget holds.
const KEPT_FAILURES: i64 = 100_000;

impl Store {
    /// Failures other servers shared after number `seen`, oldest first (at most
    /// `limit`), with their numbers. `seen` 0 at start: use [`Store::newest_failure`].
    pub fn failures_since(
        &self,
        seen: i64,
        limit: usize,
    ) -> Result<Vec<(i64, SharedFailure)>, StoreError> {
        let me = self.instance().to_string();
        self.with_db(|db| {
            let rows = db.query(
                "SELECT seq, scope, subject, at, lockouts, locked_until FROM guard_failures \
                 WHERE seq > $1 AND server <> $2 ORDER BY seq LIMIT $3",
                &[&seen, &me, &limit],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                let Some(scope) = LockScope::parse(&r.get::<String>(1)?) else {
                    continue;
                };
                let lock = match (r.get::<Option<u32>>(4)?, r.get::<Option<i64>>(5)?) {
                    (Some(n), Some(until)) => Some((n, from_ms(until))),
                    _ => None,
                };
                out.push((
                    r.get(0)?,
                    SharedFailure {
                        scope,
                        subject: r.get(2)?,
                        at: from_ms(r.get(3)?),
                        lock,
                    },
                ));
            }
            Ok(out)
        })
    }

    /// The number of the newest shared failure: where a server starting now begins
    /// to read (older failures it learns from the lock rows it loads).
    pub fn newest_failure(&self) -> Result<i64, StoreError> {
        self.with_db(|db| {
            Ok(db
                .query_one("SELECT COALESCE(max(seq), 0) FROM guard_failures", &[])?
                .get(0)?)
        })
    }
}

/// Shares a failure counted on server `server` (the login writer, in its batch).
pub(super) fn share(db: &mut dyn Db, f: &SharedFailure, server: &str) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO guard_failures (scope, subject, at, lockouts, locked_until, server) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &f.scope.as_str(),
            &f.subject,
            &ms(f.at),
            &f.lock.map(|(n, _)| n),
            &f.lock.map(|(_, until)| ms(until)),
            &server,
        ],
    )?;
    Ok(())
}

/// Deletes all but the newest [`KEPT_FAILURES`] shared failures.
pub(super) fn prune_failures(db: &mut dyn Db) -> Result<u64, DbError> {
    db.execute(
        "DELETE FROM guard_failures WHERE seq <= (SELECT max(seq) FROM guard_failures) - $1",
        &[&KEPT_FAILURES],
    )
}

/// Records that a subject is locked until `locked_until` (its `lockouts`-th time): one
/// row per scope and subject, written by the login writer.
pub(super) fn upsert(db: &mut dyn Db, row: &LockoutRow) -> Result<(), DbError> {
    db.execute(
        "INSERT INTO guard_locks (scope, subject, lockouts, locked_until, client, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (scope, subject) DO UPDATE SET lockouts = excluded.lockouts, locked_until = excluded.locked_until, \
         client = excluded.client, updated_at = excluded.updated_at",
        &[
            &row.scope.as_str(),
            &row.subject,
            &row.lockouts,
            &ms(row.locked_until),
            &row.client,
            &ms(row.updated_at),
        ],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{now, on_each_backend};

    fn lock(
        scope: LockScope,
        subject: &str,
        lockouts: u32,
        minutes: i64,
        client: &str,
    ) -> LockoutRow {
        LockoutRow {
            scope,
            subject: subject.into(),
            lockouts,
            locked_until: now() + chrono::Duration::minutes(minutes),
            client: client.into(),
            updated_at: now(),
        }
    }

    #[test]
    fn shared_failures_reach_the_other_servers_only() {
        on_each_backend(|s| {
            let other = s.another();
            let start = other.newest_failure().unwrap();
            let failure = SharedFailure {
                scope: LockScope::Device,
                subject: "AA:BB:CC:DD:EE:FF".into(),
                at: now(),
                lock: Some((1, now() + chrono::Duration::minutes(10))),
            };
            s.with_db(|db| Ok(share(db, &failure, s.instance())?))
                .unwrap();
            assert!(s.failures_since(0, 10).unwrap().is_empty(), "its own");
            let got = other.failures_since(start, 10).unwrap();
            assert_eq!(got.len(), 1, "{}", s.backend());
            assert_eq!(got[0].1, failure);
            assert!(other.failures_since(got[0].0, 10).unwrap().is_empty());
            assert_eq!(other.newest_failure().unwrap(), got[0].0);
        });
    }

    #[test]
    fn upsert_keeps_one_row_per_subject_and_clear_filters() {
        on_each_backend(|s| {
            let first = lock(LockScope::Device, "AA:BB:CC:DD:EE:FF", 1, 5, "ap1");
            let again = lock(LockScope::Device, "AA:BB:CC:DD:EE:FF", 2, 10, "ap2");
            let ended = lock(LockScope::Account, "1:a@b.c", 1, -5, "ap1");
            s.with_db(|db| {
                for row in [&first, &again, &ended] {
                    upsert(db, row)?;
                }
                Ok(())
            })
            .unwrap();
            let got = s.lockout(LockScope::Device, "AA:BB:CC:DD:EE:FF").unwrap();
            assert_eq!(got, Some(again.clone()), "{}", s.backend());
            assert_eq!(s.lockout(LockScope::Device, "other").unwrap(), None);
            assert_eq!(
                s.list_lockouts(None).unwrap(),
                vec![again.clone(), ended.clone()]
            );
            assert_eq!(s.list_lockouts(Some(now())).unwrap(), vec![again]);
            assert_eq!(
                s.clear_lockouts(LockScope::Device, None, Some("ap1"))
                    .unwrap(),
                0
            );
            assert_eq!(
                s.clear_lockouts(LockScope::Device, None, Some("ap2"))
                    .unwrap(),
                1
            );
            assert_eq!(
                s.clear_lockouts(LockScope::Account, Some("1:a@b.c"), None)
                    .unwrap(),
                1
            );
            assert!(s.list_lockouts(None).unwrap().is_empty());
        });
    }
}
